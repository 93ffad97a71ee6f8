//! The retraining job: fine-tune a copy of the current model on the labels people gave, keep it
//! only if it is not worse on labels it never saw, store it with its metrics and the labels it
//! used, and re-score, as one step.
//!
//! The labelled candidates are split three ways, disjoint and reproducible per seed: **train**
//! (fitted; hard negatives, high-scoring candidates people rejected, twice), **early stopping**
//! (picks the best epoch, with simulations beside them) and **decision** (decides keep or reject;
//! never seen by training or epoch selection, so the model is not judged on its own yardstick).
//! Simulations the job never trained on are scored beside the decision and reported, to show
//! forgetting. A kept model and its scores are written in one transaction: a version is current
//! only together with its scores, and a kill at any moment leaves the old model and its scores.

use super::labels::{labels_from_grades, LabelRule};
use crate::model::checkpoint::{self, ModelCard};
use crate::model::data::Dataset;
use crate::model::metrics::challenge_metrics;
use crate::model::net::LensNet;
use crate::model::score::{score_candidates, Scorer};
use crate::model::train::{evaluate, train, TrainConfig, TrainObserver};
use crate::project::{ModelVersionWrite, Project, ProjectError};
use crate::sim::{SimConfig, Simulator};
use burn::tensor::Device;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct RetrainConfig {
    pub train: TrainConfig,
    /// Share of simulations in the training set (against forgetting).
    pub sim_share: f64,
    /// Share of the labelled candidates held out to choose the best epoch.
    pub stop_fraction: f64,
    /// Share of the labelled candidates held out to decide keep or reject.
    pub decide_fraction: f64,
    /// Too few labels teach nothing: below this the job refuses to run.
    pub min_labels: usize,
    pub label_rule: LabelRule,
}

impl Default for RetrainConfig {
    fn default() -> RetrainConfig {
        RetrainConfig {
            // The last stage normalises by pre-training's statistics: a few dozen labels, mostly
            // lenses, say little about the survey's (docs/active-learning, "frozen statistics").
            train: TrainConfig {
                epochs: 3,
                lr: 3e-4,
                patience: 2,
                freeze_stem: true,
                freeze_norm_statistics: true,
                ..TrainConfig::default()
            },
            sim_share: 0.3,
            stop_fraction: 0.2,
            decide_fraction: 0.25,
            min_labels: 20,
            label_rule: LabelRule::default(),
        }
    }
}

/// Validation figures of one model on the shared validation set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Validation {
    pub loss: f64,
    pub auroc: f64,
}

/// The keep-only-if-not-worse guard: the new model stays if its validation loss is not higher
/// and its AUROC (when defined for both) not lower than the old one's.
pub fn keep_new(old: &Validation, new: &Validation) -> bool {
    let loss_ok = new.loss <= old.loss + 1e-9;
    let auroc_ok = old.auroc.is_nan() || new.auroc.is_nan() || new.auroc >= old.auroc - 1e-9;
    loss_ok && auroc_ok
}

/// The three disjoint parts of the labelled candidates.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Splits {
    pub train: Vec<i64>,
    pub stop: Vec<i64>,
    pub decide: Vec<i64>,
}

/// Splits labelled ids three ways, reproducibly for a seed; each part has at least one id when
/// there are three or more.
pub fn split_labels(ids: &[i64], cfg: &RetrainConfig, seed: u64) -> Splits {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.shuffle(&mut rand_pcg::Pcg64Mcg::seed_from_u64(seed ^ 0xAC71));
    let n = ids.len();
    let part = |f: f64| ((n as f64 * f).round() as usize).clamp(1, n.saturating_sub(2).max(1));
    let n_decide = if n >= 3 { part(cfg.decide_fraction) } else { 0 };
    let n_stop = if n >= 3 { part(cfg.stop_fraction).min(n - n_decide - 1) } else { 0 };
    Splits {
        decide: ids[..n_decide].to_vec(),
        stop: ids[n_decide..n_decide + n_stop].to_vec(),
        train: ids[n_decide + n_stop..].to_vec(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RetrainOutcome {
    pub labels: usize,
    pub label_ids: Vec<i64>,
    pub splits: Splits,
    /// The old and new model on the decision labels (what decides).
    pub old: Validation,
    pub new: Validation,
    /// The old and new model on simulations neither trained on (reported beside).
    pub old_sim: Validation,
    pub new_sim: Validation,
    pub kept: bool,
    pub model_version: i64,
    pub cancelled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RetrainError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error("only {0} labelled candidates (need {1}): grade more first")]
    TooFewLabels(usize, usize),
    #[error("{0}")]
    Other(String),
}

fn validate(net: &LensNet, data: &Dataset) -> Validation {
    let device = Device::flex();
    let (scores, loss) = evaluate(net, data, 64, &device);
    let s: Vec<f64> = scores.iter().map(|&v| v as f64).collect();
    let t: Vec<bool> = data.labels.iter().map(|&l| l >= 0.5).collect();
    Validation { loss, auroc: challenge_metrics(&s, &t).auroc }
}

/// Runs the whole job on a project with the given starting model.
pub fn retrain(
    project: &mut Project,
    base: &Scorer,
    cfg: &RetrainConfig,
    observer: &mut dyn TrainObserver,
) -> Result<RetrainOutcome, RetrainError> {
    let candidates = project.candidates()?;
    let events = project.grade_events()?;
    let labels = labels_from_grades(&candidates, &events, &cfg.label_rule);
    if labels.len() < cfg.min_labels {
        return Err(RetrainError::TooFewLabels(labels.len(), cfg.min_labels));
    }
    let (_, scores) = project.latest_predictions()?;
    let by_id: std::collections::HashMap<i64, &crate::project::CandidateRow> =
        candidates.iter().map(|c| (c.id, c)).collect();
    let ids: Vec<i64> = labels.keys().copied().collect();
    let splits = split_labels(&ids, cfg, cfg.train.seed);
    let clip = base.card.normalisation();
    // Every set at the model's input size: graded candidates of any size are fitted to it.
    let size = base.card.input_size;
    let (mut train_set, mut stop_set, mut decide_set) =
        (Dataset::with_size(size), Dataset::with_size(size), Dataset::with_size(size));
    for (part, target) in
        [(&splits.train, &mut train_set), (&splits.stop, &mut stop_set), (&splits.decide, &mut decide_set)]
    {
        for id in part {
            let cutout = project.load_cutout(by_id[id])?;
            let label = labels[id];
            target.push(&cutout, label, clip);
        }
    }
    // Hard negatives: the model liked them, people did not. Seen twice in training.
    for id in &splits.train {
        if labels[id] < 0.5 && scores.get(id).is_some_and(|&s| s >= 0.5) {
            train_set.push(&project.load_cutout(by_id[id])?, labels[id], clip);
        }
    }
    // Simulations against forgetting, with the look the shipped model trained on (domain
    // randomised), so fine-tuning keeps what makes it robust: in training, beside the
    // early-stopping labels, and a set of their own that only reports.
    let sim = Simulator::new(SimConfig { size: base.card.input_size, ..SimConfig::randomised() });
    let n_sim = ((train_set.len() as f64 * cfg.sim_share / (1.0 - cfg.sim_share).max(0.05)).round() as usize).max(8);
    let n_held = (n_sim / 4).max(32);
    let mut sim_report = Dataset::with_size(size);
    for k in 0..(n_sim + 2 * n_held) as u64 {
        let o = sim.simulate(&format!("sim{k}"), cfg.train.seed ^ 0x5133, k, None);
        let target = if k < n_sim as u64 {
            &mut train_set
        } else if k < (n_sim + n_held) as u64 {
            &mut stop_set
        } else {
            &mut sim_report
        };
        target.push(&o.cutout, if o.truth.is_lens { 1.0 } else { 0.0 }, clip);
    }
    let (old, old_sim) = (validate(&base.net, &decide_set), validate(&base.net, &sim_report));
    let outcome = train(&train_set, &stop_set, Some(base.net.clone()), &cfg.train, observer)
        .map_err(|e| RetrainError::Other(e.to_string()))?;
    let (new, new_sim) = (validate(&outcome.net, &decide_set), validate(&outcome.net, &sim_report));
    if outcome.cancelled {
        // Cancelled: nothing is stored, the current model and the scores stay as they were.
        return Ok(RetrainOutcome {
            labels: ids.len(),
            label_ids: ids,
            splits,
            old,
            new,
            old_sim,
            new_sim,
            kept: false,
            model_version: 0,
            cancelled: true,
        });
    }
    let kept = keep_new(&old, &new);
    log::info!(
        "retraining on {} labels: decision AUROC {:.4} -> {:.4}, unseen simulations {:.4} -> {:.4}: {}",
        ids.len(),
        old.auroc,
        new.auroc,
        old_sim.auroc,
        new_sim.auroc,
        if kept { "kept" } else { "rejected" }
    );
    let mut card: ModelCard = base.card.clone();
    card.provenance = serde_json::json!({ "retrained_from": base.card.provenance.get("command"), "labels": ids.len(), "history": outcome.history });
    card.metrics = serde_json::json!({
        "decision": {"loss": new.loss, "auroc": new.auroc, "previous_loss": old.loss, "previous_auroc": old.auroc, "labels": splits.decide.len()},
        "simulations": {"loss": new_sim.loss, "auroc": new_sim.auroc, "previous_loss": old_sim.loss, "previous_auroc": old_sim.auroc, "cutouts": sim_report.len()},
        "kept": kept,
    });
    let bytes = checkpoint::to_bytes(&outcome.net, &card).map_err(RetrainError::Other)?;
    let metrics = serde_json::json!({
        "old": old, "new": new, "old_sim": old_sim, "new_sim": new_sim, "kept": kept,
        "label_ids": ids, "train_ids": splits.train, "stop_ids": splits.stop, "decide_ids": splits.decide,
    });
    let card_json = serde_json::to_string(&card).unwrap_or_default();
    let version = if kept {
        // Scores first (nothing written yet), then the version and its scores in one transaction.
        let scorer = Scorer::new(outcome.net, card);
        let scored =
            score_candidates(project, &scorer, 64, &|_, _| {}).map_err(|e| RetrainError::Other(e.to_string()))?;
        project.add_model_version_with_scores(
            &ModelVersionWrite {
                name: "retrained",
                card_json: &card_json,
                metrics_json: &metrics.to_string(),
                weights: Some(&bytes),
                current: true,
            },
            &scored.scores,
        )?
    } else {
        project.add_model_version_with_weights("retrained", &card_json, &metrics.to_string(), &bytes, false)?
    };
    Ok(RetrainOutcome {
        labels: ids.len(),
        label_ids: ids,
        splits,
        old,
        new,
        old_sim,
        new_sim,
        kept,
        model_version: version,
        cancelled: outcome.cancelled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_keeps_only_models_that_are_not_worse() {
        let old = Validation { loss: 0.30, auroc: 0.90 };
        assert!(keep_new(&old, &Validation { loss: 0.25, auroc: 0.93 }), "better");
        assert!(keep_new(&old, &Validation { loss: 0.30, auroc: 0.90 }), "equal is not worse");
        assert!(!keep_new(&old, &Validation { loss: 0.31, auroc: 0.95 }), "higher loss");
        assert!(!keep_new(&old, &Validation { loss: 0.20, auroc: 0.85 }), "lower AUROC");
        assert!(
            keep_new(&Validation { loss: 0.3, auroc: f64::NAN }, &Validation { loss: 0.2, auroc: 0.8 }),
            "AUROC undefined before"
        );
    }

    #[test]
    fn the_three_splits_are_disjoint_cover_everything_and_are_reproducible() {
        let cfg = RetrainConfig::default();
        for n in [3usize, 4, 20, 101] {
            let ids: Vec<i64> = (0..n as i64).map(|k| k * 7 + 3).collect();
            let s = split_labels(&ids, &cfg, 5);
            assert!(!s.train.is_empty() && !s.stop.is_empty() && !s.decide.is_empty(), "n = {n}: {s:?}");
            let mut all: Vec<i64> = s.train.iter().chain(&s.stop).chain(&s.decide).copied().collect();
            all.sort_unstable();
            assert_eq!(all, ids, "n = {n}: every id once");
            let mut reversed = ids.clone();
            reversed.reverse();
            assert_eq!(split_labels(&reversed, &cfg, 5), s, "the input order does not matter");
        }
        let ids: Vec<i64> = (0..100).collect();
        let s = split_labels(&ids, &cfg, 5);
        assert_eq!((s.decide.len(), s.stop.len(), s.train.len()), (25, 20, 55));
        assert_ne!(split_labels(&ids, &cfg, 6), s, "another seed, another split");
    }
}
