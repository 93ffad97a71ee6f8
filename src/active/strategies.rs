//! Query strategies: which candidates to show people next so that their labels teach the model
//! the most (SPEC 6).
//!
//! # Definitions (p = P(lens))
//! least confidence 1 - max(p, 1 - p); smallest margin -|p - (1 - p)|; entropy
//! -p ln p - (1-p) ln(1-p); BALD = H(mean p) - mean H(p) over Monte-Carlo dropout passes (or an
//! ensemble); top score p; random. For one binary output the first three rank identically, which
//! is why mixtures with fixed shares (e.g. 70 % top score, 20 % uncertain, 10 % random) exist.
//! Diversity: a batch skips candidates closer than `min_distance` (in the model's embedding) to
//! one already chosen, so it is not twenty near-identical cutouts.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    LeastConfidence,
    Margin,
    Entropy,
    Bald,
    TopScore,
    Random,
    /// Shares of a batch filled by each strategy, in order.
    Mixture(Vec<(Strategy, f64)>),
}

impl Strategy {
    /// The seed's favourite: 70 % top score, 20 % most uncertain, 10 % random.
    pub fn default_mixture() -> Strategy {
        Strategy::Mixture(vec![(Strategy::TopScore, 0.7), (Strategy::Entropy, 0.2), (Strategy::Random, 0.1)])
    }

    pub fn parse(s: &str) -> Option<Strategy> {
        Some(match s {
            "least-confidence" => Strategy::LeastConfidence,
            "margin" => Strategy::Margin,
            "entropy" => Strategy::Entropy,
            "bald" => Strategy::Bald,
            "top-score" => Strategy::TopScore,
            "random" => Strategy::Random,
            "mixture" => Strategy::default_mixture(),
            _ => return None,
        })
    }
}

fn entropy(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    -p * p.ln() - (1.0 - p) * (1.0 - p).ln()
}

/// The acquisition value of each candidate (higher = ask first). `passes[k]` are Monte-Carlo
/// dropout (or ensemble) probabilities of candidate k, needed by BALD only (without them BALD is 0).
pub fn acquisition(strategy: &Strategy, p: &[f32], passes: Option<&[Vec<f32>]>, seed: u64) -> Vec<f64> {
    match strategy {
        Strategy::LeastConfidence => p.iter().map(|&x| 1.0 - (x as f64).max(1.0 - x as f64)).collect(),
        Strategy::Margin => p.iter().map(|&x| -((x as f64) - (1.0 - x as f64)).abs()).collect(),
        Strategy::Entropy => p.iter().map(|&x| entropy(x as f64)).collect(),
        Strategy::Bald => match passes {
            Some(passes) => passes
                .iter()
                .map(|ps| {
                    if ps.is_empty() {
                        return 0.0;
                    }
                    let mean = ps.iter().map(|&x| x as f64).sum::<f64>() / ps.len() as f64;
                    entropy(mean) - ps.iter().map(|&x| entropy(x as f64)).sum::<f64>() / ps.len() as f64
                })
                .collect(),
            None => vec![0.0; p.len()],
        },
        Strategy::TopScore => p.iter().map(|&x| x as f64).collect(),
        Strategy::Random => {
            let mut order: Vec<usize> = (0..p.len()).collect();
            order.shuffle(&mut rand_pcg::Pcg64Mcg::seed_from_u64(seed));
            let mut v = vec![0.0; p.len()];
            for (rank, k) in order.into_iter().enumerate() {
                v[k] = -(rank as f64);
            }
            v
        }
        Strategy::Mixture(_) => vec![0.0; p.len()],
    }
}

/// What is known of the unlabelled pool.
#[derive(Debug, Clone, Copy)]
pub struct Pool<'a> {
    /// P(lens) per candidate.
    pub p: &'a [f32],
    /// Monte-Carlo dropout or ensemble probabilities per candidate (for BALD).
    pub passes: Option<&'a [Vec<f32>]>,
    /// The model's embedding per candidate (for diversity).
    pub embeddings: Option<&'a [Vec<f32>]>,
    /// Candidates not to choose (already labelled or queued).
    pub exclude: &'a [bool],
}

/// Chooses `k` candidates (indices into the pool) by `strategy`, skipping excluded ones and, with
/// embeddings, ones within `min_distance` of a chosen one.
pub fn select(strategy: &Strategy, pool: &Pool, min_distance: f32, k: usize, seed: u64) -> Vec<usize> {
    let Pool { p, passes, embeddings, exclude } = *pool;
    let mut chosen: Vec<usize> = Vec::with_capacity(k);
    let far_enough = |c: usize, chosen: &[usize]| -> bool {
        match embeddings {
            Some(e) if min_distance > 0.0 => chosen
                .iter()
                .all(|&o| e[c].iter().zip(&e[o]).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt() >= min_distance),
            _ => true,
        }
    };
    let fill = |s: &Strategy, want: usize, chosen: &mut Vec<usize>| {
        let values = acquisition(s, p, passes, seed ^ chosen.len() as u64);
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
        let target = (chosen.len() + want).min(k);
        for c in order {
            if chosen.len() >= target {
                break;
            }
            if !exclude.get(c).copied().unwrap_or(false) && !chosen.contains(&c) && far_enough(c, chosen) {
                chosen.push(c);
            }
        }
    };
    match strategy {
        Strategy::Mixture(parts) => {
            let total: f64 = parts.iter().map(|p| p.1).sum();
            for (s, share) in parts {
                let want = ((share / total.max(1e-12)) * k as f64).round() as usize;
                fill(s, want, &mut chosen);
            }
            // Rounding may leave room: top it up with the first strategy.
            if let Some((s, _)) = parts.first() {
                fill(s, k.saturating_sub(chosen.len()), &mut chosen);
            }
        }
        s => fill(s, k, &mut chosen),
    }
    chosen
}

/// A whole queue ordered by `strategy` from the scores alone (no passes, no embeddings), for
/// inspectors' queues over a whole survey. A mixture interleaves its parts by their shares (with
/// 70/20/10, every 10 candidates hold 7 top-score, 2 uncertain, 1 random). O(n log n).
pub fn queue_order(strategy: &Strategy, p: &[f32], seed: u64) -> Vec<usize> {
    let ranked = |s: &Strategy| -> Vec<usize> {
        let values = acquisition(s, p, None, seed);
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
        order
    };
    let Strategy::Mixture(parts) = strategy else { return ranked(strategy) };
    let orders: Vec<Vec<usize>> = parts.iter().map(|(s, _)| ranked(s)).collect();
    let total: f64 = parts.iter().map(|(_, w)| w.max(0.0)).sum::<f64>().max(1e-12);
    let shares: Vec<f64> = parts.iter().map(|(_, w)| w.max(0.0) / total).collect();
    let mut cursor = vec![0usize; parts.len()];
    let mut taken_by = vec![0usize; parts.len()];
    let mut used = vec![false; p.len()];
    let mut out = Vec::with_capacity(p.len());
    while out.len() < p.len() {
        // The part furthest behind its share goes next.
        let n = (out.len() + 1) as f64;
        let Some(k) = (0..parts.len()).filter(|&k| shares[k] > 0.0).max_by(|&a, &b| {
            (shares[a] * n - taken_by[a] as f64).total_cmp(&(shares[b] * n - taken_by[b] as f64)).then(b.cmp(&a))
        }) else {
            break;
        };
        while cursor[k] < p.len() && used[orders[k][cursor[k]]] {
            cursor[k] += 1;
        }
        let Some(&c) = orders[k].get(cursor[k]) else { break };
        used[c] = true;
        taken_by[k] += 1;
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: [f32; 6] = [0.95, 0.5, 0.1, 0.6, 0.02, 0.45];

    fn pool<'a>(exclude: &'a [bool], embeddings: Option<&'a [Vec<f32>]>) -> Pool<'a> {
        Pool { p: &P, passes: None, embeddings, exclude }
    }

    fn pick(s: Strategy, k: usize) -> Vec<usize> {
        select(&s, &pool(&[false; 6], None), 0.0, k, 1)
    }

    #[test]
    fn each_strategy_ranks_hand_made_probabilities_as_defined() {
        assert_eq!(pick(Strategy::TopScore, 3), vec![0, 3, 1]);
        // Uncertainty: closest to 0.5 first; the three agree for a binary output.
        for s in [Strategy::LeastConfidence, Strategy::Margin, Strategy::Entropy] {
            assert_eq!(pick(s, 3), vec![1, 5, 3]);
        }
        let r = pick(Strategy::Random, 6);
        let mut sorted = r.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 3, 4, 5], "random is a permutation");
        assert_eq!(r, pick(Strategy::Random, 6), "and reproducible for a seed");
    }

    #[test]
    fn bald_prefers_disagreement_between_passes() {
        // Both have mean 0.5; only the second disagrees across passes.
        let passes = vec![vec![0.5, 0.5, 0.5, 0.5], vec![0.05, 0.95, 0.05, 0.95], vec![0.9, 0.9, 0.9, 0.9]];
        let v = acquisition(&Strategy::Bald, &[0.5, 0.5, 0.9], Some(&passes), 0);
        assert!(v[1] > v[0] && v[1] > v[2]);
        assert!(v[0].abs() < 1e-12, "agreeing passes carry no mutual information");
    }

    #[test]
    fn a_mixture_queue_interleaves_its_parts_by_share() {
        let p: Vec<f32> = (0..100).map(|k| k as f32 / 100.0).collect();
        let m = Strategy::Mixture(vec![(Strategy::TopScore, 0.7), (Strategy::Entropy, 0.3)]);
        let order = queue_order(&m, &p, 3);
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>(), "every candidate once");
        // The first ten: seven from the top (99, 98, ...) and three closest to 0.5.
        let first: Vec<usize> = order[..10].to_vec();
        let top: Vec<usize> = first.iter().copied().filter(|&c| c >= 90).collect();
        let middle: Vec<usize> = first.iter().copied().filter(|&c| (45..=55).contains(&c)).collect();
        assert_eq!(top.len(), 7, "{first:?}");
        assert_eq!(middle.len(), 3, "{first:?}");
        assert_eq!(order[0], 99);
        assert_eq!(queue_order(&Strategy::TopScore, &p, 3)[..3], [99, 98, 97]);
    }

    #[test]
    fn mixtures_fill_their_shares_and_exclusions_and_diversity_hold() {
        let m = Strategy::Mixture(vec![(Strategy::TopScore, 0.5), (Strategy::Entropy, 0.5)]);
        assert_eq!(select(&m, &pool(&[false; 6], None), 0.0, 4, 1), vec![0, 3, 1, 5]);
        let mut exclude = [false; 6];
        exclude[0] = true;
        assert_eq!(select(&Strategy::TopScore, &pool(&exclude, None), 0.0, 2, 1), vec![3, 1]);
        // Candidates 0 and 3 are near-identical in the embedding: only one of them is taken.
        let emb: Vec<Vec<f32>> =
            vec![vec![0.0, 0.0], vec![5.0, 0.0], vec![9.0, 9.0], vec![0.1, 0.0], vec![3.0, 3.0], vec![7.0, 1.0]];
        assert_eq!(select(&Strategy::TopScore, &pool(&[false; 6], Some(&emb)), 1.0, 3, 1), vec![0, 1, 5]);
    }
}
