//! "How to pick the right one? Just try and see": the active-learning experiment behind
//! `lens-inspect bench active-learning`.
//!
//! A labelled pool (typically from another simulator, PSF or depth than the model was trained
//! on) is split into a held-out part, on which every model is judged, and a query part. For each
//! strategy, a simulated oracle labels `batch` candidates per round chosen by that strategy from
//! the current model's view of the query part; the shipped model is then fine-tuned (backbone
//! frozen, augmented views, a share of simulations from its own training domain against
//! forgetting) on everything labelled so far, and judged on the held-out part.
//!
//! Every strategy sees the same split, the same cached features and the same fine-tuning recipe,
//! so the curves differ only by which candidates were asked about.

use super::features::{
    classifier_probs, fine_tune_classifier, fine_tune_head, head_outputs, mc_dropout, FeatureBank, HeadOutputs,
    HeadTuning, Level,
};
use super::strategies::{select, Pool, Strategy};
use crate::model::data::{Augment, Dataset};
use crate::model::metrics::challenge_metrics;
use crate::model::net::LensNet;
use crate::sim::{SimConfig, Simulator};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

/// What fine-tuning may change (the convolutional backbone is frozen in both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tune {
    /// Attention layers and classifier.
    Head,
    /// The last convolutional stage, attention layers and classifier.
    TopStage,
    /// The classifier MLP only.
    Classifier,
}

#[derive(Debug, Clone)]
pub struct ExperimentConfig {
    pub tune: Tune,
    /// Where to keep the backbone features between runs (same pool, seed, variants, sims).
    pub feature_cache: Option<std::path::PathBuf>,
    /// Strategy names as [`Strategy::parse`] reads them.
    pub strategies: Vec<String>,
    pub rounds: usize,
    /// Labels per round.
    pub batch: usize,
    pub seed: u64,
    /// Share of the pool held out for judging (stratified by class).
    pub holdout: f64,
    /// Views per query candidate: the cutout as it is plus `variants - 1` augmented ones.
    pub variants: usize,
    /// Simulations from the model's own training domain, mixed into fine-tuning batches.
    pub sims: usize,
    /// Monte-Carlo dropout passes for BALD.
    pub mc_passes: usize,
    /// Diversity: no two candidates of a batch closer than this fraction of the median distance
    /// between embeddings (0 = off).
    pub diversity: f32,
    pub tuning: HeadTuning,
    /// Fine-tuning steps: this many per labelled candidate, within [min_steps, max_steps].
    pub steps_per_label: f64,
    pub min_steps: usize,
    pub max_steps: usize,
}

impl Default for ExperimentConfig {
    fn default() -> ExperimentConfig {
        ExperimentConfig {
            tune: Tune::TopStage,
            feature_cache: None,
            strategies: ["random", "top-score", "entropy", "bald", "mixture"].map(String::from).to_vec(),
            rounds: 10,
            batch: 30,
            seed: 1,
            holdout: 0.3,
            variants: 2,
            sims: 400,
            mc_passes: 20,
            diversity: 0.15,
            tuning: HeadTuning { lr: 3e-4, sim_share: 0.15, ..HeadTuning::default() },
            steps_per_label: 0.5,
            min_steps: 60,
            max_steps: 150,
        }
    }
}

/// The held-out figures after one round of one strategy (round 0: the starting model).
#[derive(Debug, Clone, Serialize)]
pub struct RoundResult {
    pub strategy: String,
    pub round: usize,
    pub labels: usize,
    /// Lenses among the labelled candidates: what people would have found by then.
    pub lenses_labelled: usize,
    pub auroc: f64,
    pub tpr0: f64,
    pub tpr10: f64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExperimentResult {
    pub pool: usize,
    pub pool_lenses: usize,
    pub holdout: usize,
    pub holdout_lenses: usize,
    pub rounds: Vec<RoundResult>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("unknown strategy '{0}' (known: least-confidence, margin, entropy, bald, top-score, random, mixture)")]
    UnknownStrategy(String),
    #[error("the pool needs lenses and non-lenses in both the held-out and the query part ({0} lenses of {1})")]
    TooFewOfAClass(usize, usize),
    #[error("{0}")]
    Other(String),
}

/// What an experiment's cached features depend on, summed up for [`FeatureBank::key`]: the
/// model's weights, the pool's pixels and labels, which cutouts are held out and queried and in
/// which order (the rows of the bank follow it; the split follows the seed), the views per
/// candidate, the simulations mixed in (seed and count) and the level the maps come from. A
/// cache matched on its row count alone once fed one seed's features to another seed's split.
fn feature_key(
    base: &LensNet,
    pool: &Dataset,
    holdout: &[usize],
    query: &[usize],
    cfg: &ExperimentConfig,
    level: Level,
) -> Result<u64, String> {
    let mut h = crate::hash::Fnv1a::default();
    h.feed(&crate::model::checkpoint::weights_fingerprint(base)?.to_le_bytes());
    h.feed(&(pool.size as u64).to_le_bytes());
    for v in pool.inputs.iter().chain(&pool.labels) {
        h.feed(&v.to_le_bytes());
    }
    for list in [holdout, query] {
        h.feed(&(list.len() as u64).to_le_bytes());
        for &k in list {
            h.feed(&(k as u64).to_le_bytes());
        }
    }
    for n in [cfg.variants as u64, cfg.sims as u64, cfg.seed, matches!(level, Level::Stem) as u64] {
        h.feed(&n.to_le_bytes());
    }
    Ok(h.finish())
}

/// Median distance between embeddings of up to 300 evenly spaced candidates: the scale the
/// diversity fraction is relative to.
fn median_distance(e: &[Vec<f32>]) -> f32 {
    let step = (e.len() / 300).max(1);
    let sample: Vec<&Vec<f32>> = e.iter().step_by(step).collect();
    let mut d = Vec::new();
    for i in 0..sample.len() {
        for j in i + 1..sample.len() {
            d.push(sample[i].iter().zip(sample[j]).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt());
        }
    }
    if d.is_empty() {
        return 0.0;
    }
    let mid = d.len() / 2;
    *d.select_nth_unstable_by(mid, f32::total_cmp).1
}

/// Runs the experiment. `progress` gets one line per step worth telling.
pub fn run(
    base: &LensNet,
    pool: &Dataset,
    cfg: &ExperimentConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<ExperimentResult, ExperimentError> {
    let strategies: Vec<(String, Strategy)> = cfg
        .strategies
        .iter()
        .map(|s| Strategy::parse(s).map(|p| (s.clone(), p)).ok_or_else(|| ExperimentError::UnknownStrategy(s.clone())))
        .collect::<Result<_, _>>()?;
    // Stratified split.
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(cfg.seed ^ 0xA11E);
    let (mut lenses, mut others): (Vec<usize>, Vec<usize>) = (0..pool.len()).partition(|&k| pool.labels[k] >= 0.5);
    lenses.shuffle(&mut rng);
    others.shuffle(&mut rng);
    let cut = |v: &[usize]| ((v.len() as f64 * cfg.holdout).round() as usize).min(v.len());
    let (nl, no) = (cut(&lenses), cut(&others));
    if nl < 2 || no < 2 || lenses.len() - nl < 2 || others.len() - no < 2 {
        return Err(ExperimentError::TooFewOfAClass(lenses.len(), pool.len()));
    }
    let holdout: Vec<usize> = lenses[..nl].iter().chain(&others[..no]).copied().collect();
    let mut query: Vec<usize> = lenses[nl..].iter().chain(&others[no..]).copied().collect();
    query.sort_unstable();

    // Features, once (or from the cache of an earlier run with the same pool and settings).
    let mut sims = Dataset::default();
    let simulator = Simulator::new(SimConfig { size: pool.size, ..SimConfig::default() });
    let clip = crate::cutout::DEFAULT_CLIP_SIGMA;
    for k in 0..cfg.sims as u64 {
        let o = simulator.simulate(&format!("sim{k}"), cfg.seed ^ 0x51A5, k, None);
        sims.push(&o.cutout, if o.truth.is_lens { 1.0 } else { 0.0 }, clip);
    }
    let variants = cfg.variants.max(1);
    let total_views = holdout.len() + query.len() * variants + sims.len() * 2;
    let level = if cfg.tune == Tune::TopStage { Level::Stem } else { Level::Backbone };
    let key = feature_key(base, pool, &holdout, &query, cfg, level).map_err(ExperimentError::Other)?;
    let cached = match cfg.feature_cache.as_deref() {
        Some(path) if path.exists() => {
            let bank = FeatureBank::load(path).filter(|b| b.key == key && b.len() == total_views && b.level == level);
            if bank.is_none() {
                progress(&format!(
                    "the feature cache {} was made from another model, pool, split (seed) or settings, or is damaged: \
                     computing the features again",
                    path.display()
                ));
            }
            bank
        }
        _ => None,
    };
    let bank = match cached {
        Some(b) => {
            progress(&format!("features: {} views from the cache", b.len()));
            b
        }
        None => {
            let mut bank = FeatureBank { level, key, ..FeatureBank::default() };
            let mut done = 0usize;
            let mut tell = |n: usize, progress: &mut dyn FnMut(&str)| {
                done += n;
                if done % 512 < n {
                    progress(&format!("features {done}/{total_views}"));
                }
            };
            let augment = Augment::default();
            bank.push(base, pool, &holdout, None, 64, &mut |n| tell(n, &mut *progress));
            bank.push(base, pool, &query, None, 64, &mut |n| tell(n, &mut *progress));
            for v in 1..variants {
                let aug = Some((&augment, cfg.seed ^ (v as u64) << 20));
                bank.push(base, pool, &query, aug, 64, &mut |n| tell(n, &mut *progress));
            }
            let all_sims: Vec<usize> = (0..sims.len()).collect();
            bank.push(base, &sims, &all_sims, None, 64, &mut |n| tell(n, &mut *progress));
            let aug = Some((&augment, cfg.seed ^ 0x5A));
            bank.push(base, &sims, &all_sims, aug, 64, &mut |n| tell(n, &mut *progress));
            if let Some(path) = &cfg.feature_cache {
                if let Err(e) = bank.save(path) {
                    progress(&format!("could not write the feature cache {}: {e}", path.display()));
                }
            }
            bank
        }
    };
    // Rows in the bank, in the order they were pushed.
    let holdout_rows: Vec<usize> = (0..holdout.len()).collect();
    let q0 = holdout.len();
    let query_identity: Vec<usize> = (0..query.len()).map(|q| q0 + q).collect();
    let query_views: Vec<Vec<usize>> =
        (0..query.len()).map(|q| (0..variants).map(|v| q0 + v * query.len() + q).collect()).collect();
    let s0 = q0 + variants * query.len();
    let sim_rows: Vec<(usize, f32)> =
        (0..2 * sims.len()).map(|k| (s0 + k, sims.labels[k % sims.len().max(1)])).collect();
    // Tuning the classifier only: the frozen encoder's embeddings never change either.
    let all_rows: Vec<usize> = (0..bank.len()).collect();
    let embeddings: Option<Vec<Vec<f32>>> =
        (cfg.tune == Tune::Classifier).then(|| head_outputs(base, &bank, &all_rows, 128).embeddings);
    let probs = |net: &LensNet, rows: &[usize]| -> HeadOutputs {
        match &embeddings {
            Some(e) => HeadOutputs {
                p: classifier_probs(net, e, rows),
                embeddings: rows.iter().map(|&r| e[r].clone()).collect(),
            },
            None => head_outputs(net, &bank, rows, 128),
        }
    };

    let truth_holdout: Vec<bool> = holdout.iter().map(|&k| pool.labels[k] >= 0.5).collect();
    let judge = |net: &LensNet| {
        let out = probs(net, &holdout_rows);
        let s: Vec<f64> = out.p.iter().map(|&v| v as f64).collect();
        challenge_metrics(&s, &truth_holdout)
    };
    let start = std::time::Instant::now();
    let m0 = judge(base);
    progress(&format!("starting model on the held-out part: AUROC {:.4}, TPR10 {:.3}", m0.auroc, m0.tpr10));
    let mut results = Vec::new();
    for (name, strategy) in &strategies {
        results.push(RoundResult {
            strategy: name.clone(),
            round: 0,
            labels: 0,
            lenses_labelled: 0,
            auroc: m0.auroc,
            tpr0: m0.tpr0,
            tpr10: m0.tpr10,
            seconds: start.elapsed().as_secs_f64(),
        });
        let t0 = std::time::Instant::now();
        let mut labelled = vec![false; query.len()];
        let mut net = base.clone();
        for round in 1..=cfg.rounds {
            // The current model's view of the unlabelled query candidates.
            let open: Vec<usize> = (0..query.len()).filter(|&q| !labelled[q]).collect();
            if open.is_empty() {
                break;
            }
            let rows: Vec<usize> = open.iter().map(|&q| query_identity[q]).collect();
            let out = probs(&net, &rows);
            let passes = matches!(strategy, Strategy::Bald)
                .then(|| mc_dropout(&net, &out.embeddings, cfg.mc_passes, cfg.seed ^ round as u64));
            let min_distance = cfg.diversity * median_distance(&out.embeddings);
            let exclude = vec![false; open.len()];
            let chosen = select(
                strategy,
                &Pool { p: &out.p, passes: passes.as_deref(), embeddings: Some(&out.embeddings), exclude: &exclude },
                min_distance,
                cfg.batch,
                cfg.seed ^ (round as u64) << 8,
            );
            for c in chosen {
                labelled[open[c]] = true;
            }
            let lab: Vec<(usize, f32)> = (0..query.len())
                .filter(|&q| labelled[q])
                .flat_map(|q| query_views[q].iter().map(move |&r| (r, q)))
                .map(|(r, q)| (r, pool.labels[query[q]]))
                .collect();
            let n_labels = labelled.iter().filter(|&&l| l).count();
            let lenses_labelled = (0..query.len()).filter(|&q| labelled[q] && pool.labels[query[q]] >= 0.5).count();
            let steps = ((n_labels as f64 * cfg.steps_per_label * cfg.variants.max(1) as f64).round() as usize)
                .clamp(cfg.min_steps, cfg.max_steps.max(cfg.min_steps));
            let tuning = HeadTuning { steps, seed: cfg.tuning.seed ^ round as u64, ..cfg.tuning.clone() };
            // Always from the starting model: a round's model depends on its labels, not on the
            // path that led to them.
            net = match &embeddings {
                Some(e) => fine_tune_classifier(base, e, &lab, &sim_rows, &tuning, |_, _| true).0,
                None => fine_tune_head(base, &bank, &lab, &sim_rows, &tuning, |_, _| true).0,
            };
            let m = judge(&net);
            progress(&format!(
                "{name:>16} round {round:>2}: {n_labels:>4} labels ({lenses_labelled:>3} lenses), AUROC {:.4}, TPR10 {:.3} ({:.0} s)",
                m.auroc,
                m.tpr10,
                t0.elapsed().as_secs_f64()
            ));
            results.push(RoundResult {
                strategy: name.clone(),
                round,
                labels: n_labels,
                lenses_labelled,
                auroc: m.auroc,
                tpr0: m.tpr0,
                tpr10: m.tpr10,
                seconds: t0.elapsed().as_secs_f64(),
            });
        }
    }
    Ok(ExperimentResult {
        pool: pool.len(),
        pool_lenses: lenses.len(),
        holdout: holdout.len(),
        holdout_lenses: nl,
        rounds: results,
    })
}

/// Labels each strategy needed to first reach `target` AUROC on the held-out part (None: never).
pub fn labels_to_target(rounds: &[RoundResult], target: f64) -> Vec<(String, Option<usize>)> {
    let mut names: Vec<String> = Vec::new();
    for r in rounds {
        if !names.contains(&r.strategy) {
            names.push(r.strategy.clone());
        }
    }
    names
        .into_iter()
        .map(|n| {
            let first = rounds.iter().filter(|r| r.strategy == n && r.auroc >= target).map(|r| r.labels).min();
            (n, first)
        })
        .collect()
}

/// The curves as two chart panels: AUROC and TPR10 against labels.
pub fn chart(rounds: &[RoundResult]) -> Vec<crate::render::chart::Panel> {
    use crate::render::chart::{Panel, Series, PALETTE};
    let mut names: Vec<String> = Vec::new();
    for r in rounds {
        if !names.contains(&r.strategy) {
            names.push(r.strategy.clone());
        }
    }
    let series = |f: &dyn Fn(&RoundResult) -> f64| -> Vec<Series> {
        names
            .iter()
            .enumerate()
            .map(|(k, n)| Series {
                name: n.clone(),
                colour: PALETTE[k % PALETTE.len()],
                points: rounds.iter().filter(|r| &r.strategy == n).map(|r| (r.labels as f64, f(r))).collect(),
            })
            .collect()
    };
    vec![
        Panel {
            title: "auroc on held-out pool".into(),
            x_label: "labels".into(),
            y_label: "auroc".into(),
            series: series(&|r| r.auroc),
        },
        Panel {
            title: "tpr10 on held-out pool".into(),
            x_label: "labels".into(),
            y_label: "tpr10".into(),
            series: series(&|r| r.tpr10),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(strategy: &str, labels: usize, auroc: f64) -> RoundResult {
        RoundResult {
            strategy: strategy.into(),
            round: labels / 10,
            labels,
            lenses_labelled: 0,
            auroc,
            tpr0: 0.0,
            tpr10: 0.0,
            seconds: 0.0,
        }
    }

    #[test]
    fn labels_to_target_is_the_first_round_reaching_it() {
        let _rng = crate::model::device_rng_lock();
        let rounds = vec![
            r("random", 0, 0.90),
            r("random", 10, 0.91),
            r("random", 20, 0.95),
            r("random", 30, 0.94),
            r("bald", 0, 0.90),
            r("bald", 10, 0.96),
            r("top", 0, 0.90),
            r("top", 10, 0.92),
        ];
        let t = labels_to_target(&rounds, 0.95);
        assert_eq!(t, vec![("random".into(), Some(20)), ("bald".into(), Some(10)), ("top".into(), None)]);
    }

    #[test]
    fn a_feature_cache_is_keyed_by_split_model_and_pixels() {
        let _rng = crate::model::device_rng_lock();
        use crate::model::net::{Arch, LensNet};
        let device = burn::tensor::Device::flex();
        let net = LensNet::new(Arch::Cnn, &device);
        let size = 8;
        let pool = Dataset {
            size,
            inputs: (0..6 * 4 * size * size).map(|k| (k % 17) as f32 * 0.1).collect(),
            labels: vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
            names: (0..6).map(|k| format!("c{k}")).collect(),
        };
        let cfg = ExperimentConfig::default();
        let key = |net: &LensNet, pool: &Dataset, holdout: &[usize], query: &[usize], cfg: &ExperimentConfig| {
            feature_key(net, pool, holdout, query, cfg, Level::Stem).unwrap()
        };
        let base = key(&net, &pool, &[0, 1], &[2, 3, 4, 5], &cfg);
        assert_eq!(base, key(&net, &pool, &[0, 1], &[2, 3, 4, 5], &cfg), "the same inputs give the same key");
        // Another seed's split holds out other cutouts, with the same row count.
        assert_ne!(base, key(&net, &pool, &[2, 3], &[0, 1, 4, 5], &cfg));
        let other_seed = ExperimentConfig { seed: 2, ..cfg.clone() };
        assert_ne!(base, key(&net, &pool, &[0, 1], &[2, 3, 4, 5], &other_seed));
        let more_views = ExperimentConfig { variants: 3, ..cfg.clone() };
        assert_ne!(base, key(&net, &pool, &[0, 1], &[2, 3, 4, 5], &more_views));
        assert_ne!(base, feature_key(&net, &pool, &[0, 1], &[2, 3, 4, 5], &cfg, Level::Backbone).unwrap());
        // Another model (fresh weights), and one changed pixel of the pool.
        let other_net = LensNet::new(Arch::Cnn, &device);
        assert_ne!(
            crate::model::checkpoint::weights_fingerprint(&net).unwrap(),
            crate::model::checkpoint::weights_fingerprint(&other_net).unwrap(),
            "two fresh networks should differ (random initialisation)"
        );
        assert_ne!(base, key(&other_net, &pool, &[0, 1], &[2, 3, 4, 5], &cfg));
        let mut changed = pool.clone();
        changed.inputs[123] += 1.0;
        assert_ne!(base, key(&net, &changed, &[0, 1], &[2, 3, 4, 5], &cfg));
    }

    #[test]
    fn a_feature_bank_file_keeps_its_key_and_refuses_the_keyless_format() {
        let _rng = crate::model::device_rng_lock();
        let dir = std::env::temp_dir().join(format!("lens-inspect-bank-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bank.stem");
        let bank =
            FeatureBank { level: Level::Stem, key: 0xDEAD_BEEF_0123, dims: [2, 1, 1], data: vec![1.0, -2.5, 3.0, 4.0] };
        bank.save(&path).unwrap();
        let back = FeatureBank::load(&path).unwrap();
        assert_eq!((back.level, back.key, back.dims, back.data.clone()), (bank.level, bank.key, bank.dims, bank.data));
        // The first format (no key): magic, dims, data.
        let mut old = b"LIFS0001".to_vec();
        for d in [2u64, 1, 1] {
            old.extend_from_slice(&d.to_le_bytes());
        }
        for v in [1.0f32, -2.5, 3.0, 4.0] {
            old.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(&path, old).unwrap();
        assert!(FeatureBank::load(&path).is_none());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn median_distance_of_points_on_a_line() {
        let _rng = crate::model::device_rng_lock();
        let e: Vec<Vec<f32>> = (0..5).map(|k| vec![k as f32, 0.0]).collect();
        // Pairwise distances 1,1,1,1,2,2,2,3,3,4: the median (6th of 10) is 2.
        assert_eq!(median_distance(&e), 2.0);
    }
}
