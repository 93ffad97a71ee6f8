//! Honest validation: how sure a metric is (bootstrap intervals), and where the errors are (rates
//! per kind of object, or per bin of any truth column).
//!
//! A single AUROC on one test set hides both the sampling noise of a few hundred lenses and the
//! one kind of galaxy that the finder confuses with lenses. Everything here is a pure function of
//! (score, truth, group) triples.

use super::metrics::{challenge_metrics, roc_curve};
use rand::{RngExt, SeedableRng};
use serde::Serialize;

/// A value with its bootstrap 95 % interval (2.5th and 97.5th percentiles).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

/// AUROC, TPR0 and TPR10 with intervals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsWithIntervals {
    pub auroc: Interval,
    pub tpr0: Interval,
    pub tpr10: Interval,
    pub n: usize,
    pub n_lens: usize,
    pub resamples: usize,
}

/// The challenge metrics with bootstrap 95 % intervals: `resamples` data sets drawn with
/// replacement, stratified (lenses and non-lenses resampled apart, so every resample keeps the
/// test set's numbers of each; TPR10's "fewer than 10 false positives" then means the same in
/// every resample).
pub fn bootstrap(scores: &[f64], is_lens: &[bool], resamples: usize, seed: u64) -> MetricsWithIntervals {
    let m = challenge_metrics(scores, is_lens);
    let lenses: Vec<usize> = (0..scores.len()).filter(|&k| is_lens[k]).collect();
    let others: Vec<usize> = (0..scores.len()).filter(|&k| !is_lens[k]).collect();
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    let mut draws: [Vec<f64>; 3] = Default::default();
    let (mut s, mut l) = (Vec::with_capacity(scores.len()), Vec::with_capacity(scores.len()));
    for _ in 0..resamples {
        s.clear();
        l.clear();
        for group in [&lenses, &others] {
            for _ in 0..group.len() {
                let k = group[rng.random_range(0..group.len())];
                s.push(scores[k]);
                l.push(is_lens[k]);
            }
        }
        let r = challenge_metrics(&s, &l);
        draws[0].push(r.auroc);
        draws[1].push(r.tpr0);
        draws[2].push(r.tpr10);
    }
    let interval = |value: f64, d: &mut Vec<f64>| {
        d.retain(|v| v.is_finite());
        d.sort_by(f64::total_cmp);
        let q = |p: f64| if d.is_empty() { f64::NAN } else { d[((d.len() - 1) as f64 * p).round() as usize] };
        Interval { value, lo: q(0.025), hi: q(0.975) }
    };
    let [a, t0, t10] = &mut draws;
    MetricsWithIntervals {
        auroc: interval(m.auroc, a),
        tpr0: interval(m.tpr0, t0),
        tpr10: interval(m.tpr10, t10),
        n: m.n,
        n_lens: m.n_lens,
        resamples,
    }
}

/// The highest threshold at which at least `tpr` of the lenses score at or above it (the
/// operating point "keep this share of lenses").
pub fn threshold_at_tpr(scores: &[f64], is_lens: &[bool], tpr: f64) -> f64 {
    roc_curve(scores, is_lens).into_iter().find(|p| p.tpr >= tpr).map(|p| p.threshold).unwrap_or(f64::NEG_INFINITY)
}

/// How one group (a kind of object, or a bin of a truth column) fares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupRates {
    pub group: String,
    pub n: usize,
    pub n_lens: usize,
    /// Share of the group's non-lenses scoring at or above the operating threshold (the
    /// threshold that keeps half of all lenses), and above 0.5.
    pub fpr_at_tpr50: Option<f64>,
    pub fpr_at_half: Option<f64>,
    /// Share of the group's lenses at or above the operating threshold, and above 0.5.
    pub tpr_at_tpr50: Option<f64>,
    pub tpr_at_half: Option<f64>,
    /// The group against the rest of the other class: its non-lenses against all lenses, or its
    /// lenses against all non-lenses (how well the finder tells this group apart).
    pub auroc_vs_rest: Option<f64>,
}

/// Items sorted into named groups, and the order a table should list the groups in.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouping {
    /// `of_item[k]` names the group of item k.
    pub of_item: Vec<String>,
    /// Every name in `of_item` once, in display order.
    pub names: Vec<String>,
}

impl Grouping {
    /// Groups listed alphabetically (kinds, recipes: text with no order of its own).
    pub fn alphabetical(of_item: Vec<String>) -> Grouping {
        let mut names = of_item.clone();
        names.sort();
        names.dedup();
        Grouping { of_item, names }
    }
}

/// Rates per group, in the grouping's order.
pub fn by_group(scores: &[f64], is_lens: &[bool], grouping: &Grouping) -> Vec<GroupRates> {
    let threshold = threshold_at_tpr(scores, is_lens, 0.5);
    let groups = &grouping.of_item;
    let names = &grouping.names;
    let share = |items: &[usize], cut: &dyn Fn(f64) -> bool| -> Option<f64> {
        (!items.is_empty()).then(|| items.iter().filter(|&&k| cut(scores[k])).count() as f64 / items.len() as f64)
    };
    names
        .iter()
        .map(|name| {
            let members: Vec<usize> = (0..scores.len()).filter(|&k| &groups[k] == name).collect();
            let (lenses, others): (Vec<usize>, Vec<usize>) = members.iter().partition(|&&k| is_lens[k]);
            let at_op = |s: f64| s >= threshold;
            let at_half = |s: f64| s > 0.5;
            let vs_rest = |mine: &[usize], lens_side: bool| -> Option<f64> {
                if mine.is_empty() {
                    return None;
                }
                let rest: Vec<usize> = (0..scores.len()).filter(|&k| is_lens[k] != lens_side).collect();
                if rest.is_empty() {
                    return None;
                }
                let idx: Vec<usize> = mine.iter().chain(&rest).copied().collect();
                let s: Vec<f64> = idx.iter().map(|&k| scores[k]).collect();
                let l: Vec<bool> = idx.iter().map(|&k| is_lens[k]).collect();
                Some(challenge_metrics(&s, &l).auroc)
            };
            GroupRates {
                group: name.clone(),
                n: members.len(),
                n_lens: lenses.len(),
                fpr_at_tpr50: share(&others, &at_op),
                fpr_at_half: share(&others, &at_half),
                tpr_at_tpr50: share(&lenses, &at_op),
                tpr_at_half: share(&lenses, &at_half),
                auroc_vs_rest: if lenses.is_empty() { vs_rest(&others, false) } else { vs_rest(&lenses, true) },
            }
        })
        .collect()
}

/// Groups from a truth column: text as it is, listed alphabetically; numbers in `bins`
/// quantile bins named by their range (e.g. "theta_e_arcsec 0.60-1.05") and listed from the
/// lowest bin up, since "137.88-270.24" before "24.36-60.33" (text order) reads as noise;
/// missing values "(none)", listed first.
pub fn groups_from_column(column: &str, values: &[Option<serde_json::Value>], bins: usize) -> Grouping {
    let numbers: Vec<f64> = values.iter().filter_map(|v| v.as_ref().and_then(|v| v.as_f64())).collect();
    let numeric = !numbers.is_empty() && values.iter().flatten().all(|v| v.is_number());
    if !numeric {
        return Grouping::alphabetical(
            values
                .iter()
                .map(|v| match v {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => "(none)".into(),
                })
                .collect(),
        );
    }
    let mut sorted = numbers.clone();
    sorted.sort_by(f64::total_cmp);
    sorted.dedup();
    let bins = bins.clamp(1, sorted.len().max(1));
    let edges: Vec<f64> = (0..=bins).map(|b| sorted[((sorted.len() - 1) * b) / bins]).collect();
    let name = |b: usize| format!("{column} {:.2}-{:.2}", edges[b], edges[b + 1]);
    let bin_of: Vec<Option<usize>> = values
        .iter()
        .map(|v| v.as_ref().and_then(|v| v.as_f64()).map(|x| (1..bins).filter(|&b| x >= edges[b]).count()))
        .collect();
    let mut used = vec![false; bins];
    bin_of.iter().flatten().for_each(|&b| used[b] = true);
    let names = bin_of
        .iter()
        .any(Option::is_none)
        .then(|| "(none)".to_string())
        .into_iter()
        .chain((0..bins).filter(|&b| used[b]).map(name))
        .collect();
    let of_item = bin_of.iter().map(|b| b.map_or_else(|| "(none)".into(), name)).collect();
    Grouping { of_item, names }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_holds_the_value_and_narrows_with_more_data() {
        // Lenses score higher than non-lenses on average, with overlap.
        let make = |n: usize| -> (Vec<f64>, Vec<bool>) {
            let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(4);
            (0..n)
                .map(|k| {
                    let lens = k % 2 == 0;
                    (rng.random_range(0.0..1.0) + if lens { 0.5 } else { 0.0 }, lens)
                })
                .unzip()
        };
        let (s, l) = make(200);
        let small = bootstrap(&s, &l, 400, 1);
        assert!(small.auroc.lo <= small.auroc.value && small.auroc.value <= small.auroc.hi);
        // The true AUROC of U(0,1) + 0.5 against U(0,1) is 1 - 0.5 * 0.5^2 = 0.875.
        assert!(small.auroc.lo < 0.875 && 0.875 < small.auroc.hi, "{:?}", small.auroc);
        let (s, l) = make(4000);
        let big = bootstrap(&s, &l, 400, 1);
        assert!(big.auroc.hi - big.auroc.lo < 0.5 * (small.auroc.hi - small.auroc.lo));
    }

    #[test]
    fn group_rates_count_the_right_items_at_the_half_lens_threshold() {
        // Lenses 0.9, 0.8, 0.3, 0.2: keeping half of them means the threshold 0.8.
        let scores = [0.9, 0.8, 0.3, 0.2, 0.85, 0.1, 0.95, 0.4];
        let is_lens = [true, true, true, true, false, false, false, false];
        let groups: Vec<String> =
            ["arc", "arc", "ring", "ring", "ring_galaxy", "ring_galaxy", "spiral", "spiral"].map(String::from).to_vec();
        assert_eq!(threshold_at_tpr(&scores, &is_lens, 0.5), 0.8);
        let rows = by_group(&scores, &is_lens, &Grouping::alphabetical(groups));
        let get = |g: &str| rows.iter().find(|r| r.group == g).expect("group").clone();
        assert_eq!(get("ring_galaxy").fpr_at_tpr50, Some(0.5));
        assert_eq!(get("spiral").fpr_at_tpr50, Some(0.5));
        assert_eq!(get("arc").tpr_at_tpr50, Some(1.0));
        assert_eq!(get("ring").tpr_at_tpr50, Some(0.0));
        assert_eq!(get("ring").fpr_at_tpr50, None);
        // ring galaxies (0.85, 0.1) against all lenses (0.9, 0.8, 0.3, 0.2): 5 of 8 pairs won.
        assert_eq!(get("ring_galaxy").auroc_vs_rest, Some(5.0 / 8.0));
    }

    #[test]
    fn numeric_columns_are_binned_by_quantile_and_text_kept() {
        let values: Vec<Option<serde_json::Value>> =
            (0..10).map(|k| Some(serde_json::json!(k as f64))).chain([None]).collect();
        let g = groups_from_column("x", &values, 2);
        assert_eq!(g.of_item[0], "x 0.00-4.00");
        assert_eq!(g.of_item[9], "x 4.00-9.00");
        assert_eq!(g.of_item[10], "(none)");
        let text = groups_from_column("kind", &[Some(serde_json::json!("arc")), None], 5);
        assert_eq!(text.of_item, vec!["arc".to_string(), "(none)".to_string()]);
    }

    #[test]
    fn numeric_bins_are_listed_in_numeric_order_and_text_alphabetically() {
        // As text, "x 270.00-1000.00" sorts before "x 60.00-270.00" and "x -1.00-9.00" before
        // "x -3.00--1.00": a table in that order reads as noise.
        let values: Vec<Option<serde_json::Value>> = [-3.0, -1.0, 0.5, 9.0, 24.0, 60.0, 137.0, 270.0, 500.0, 1000.0]
            .into_iter()
            .rev()
            .map(|x| Some(serde_json::json!(x)))
            .chain([None])
            .collect();
        let g = groups_from_column("x", &values, 5);
        let expected =
            ["(none)", "x -3.00--1.00", "x -1.00-9.00", "x 9.00-60.00", "x 60.00-270.00", "x 270.00-1000.00"];
        assert_eq!(g.names, expected);
        let scores: Vec<f64> = (0..values.len()).map(|k| k as f64 / 20.0).collect();
        let is_lens: Vec<bool> = (0..values.len()).map(|k| k % 2 == 0).collect();
        let order: Vec<String> = by_group(&scores, &is_lens, &g).into_iter().map(|r| r.group).collect();
        assert_eq!(order, expected);
        let text = groups_from_column("kind", &[Some(serde_json::json!("b")), Some(serde_json::json!("a")), None], 5);
        assert_eq!(text.names, ["(none)", "a", "b"]);
    }
}
