//! The retraining job: fine-tune a copy of the current model on the labels people gave, keep it
//! only if it is not worse, store it with its metrics and the labels it used, re-score.
//!
//! Training data: every labelled candidate (hard negatives — high-scoring candidates people
//! rejected — twice), plus a share of fresh simulations against forgetting. Validation: a held-out
//! part of the labelled candidates plus simulations, the same for the old and the new model.

use super::labels::{labels_from_grades, LabelRule};
use crate::model::checkpoint::{self, ModelCard};
use crate::model::data::Dataset;
use crate::model::metrics::challenge_metrics;
use crate::model::net::LensNet;
use crate::model::score::{score_project, Scorer};
use crate::model::train::{evaluate, train, TrainConfig, TrainObserver};
use crate::project::{Project, ProjectError};
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
    /// Share of the labelled candidates held out for validation.
    pub val_fraction: f64,
    /// Too few labels teach nothing: below this the job refuses to run.
    pub min_labels: usize,
    pub label_rule: LabelRule,
}

impl Default for RetrainConfig {
    fn default() -> RetrainConfig {
        RetrainConfig {
            train: TrainConfig { epochs: 3, lr: 3e-4, patience: 2, freeze_stem: true, ..TrainConfig::default() },
            sim_share: 0.3,
            val_fraction: 0.25,
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

#[derive(Debug, Clone, Serialize)]
pub struct RetrainOutcome {
    pub labels: usize,
    pub label_ids: Vec<i64>,
    pub old: Validation,
    pub new: Validation,
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
    let mut ids: Vec<i64> = labels.keys().copied().collect();
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(cfg.train.seed ^ 0xAC71);
    ids.shuffle(&mut rng);
    let n_val = ((ids.len() as f64 * cfg.val_fraction).round() as usize).clamp(1, ids.len().saturating_sub(1).max(1));
    let clip = base.card.clip_sigma;
    let (mut train_set, mut val_set) = (Dataset::default(), Dataset::default());
    for (k, id) in ids.iter().enumerate() {
        let row = by_id[id];
        let cutout = project.load_cutout(row)?;
        let label = labels[id];
        let target = if k < n_val { &mut val_set } else { &mut train_set };
        target.push(&cutout, label, clip).map_err(RetrainError::Other)?;
        // Hard negative: the model liked it, people did not. Seen twice.
        if k >= n_val && label < 0.5 && scores.get(id).is_some_and(|&s| s >= 0.5) {
            train_set.push(&cutout, label, clip).map_err(RetrainError::Other)?;
        }
    }
    // Simulations against forgetting, in both sets, with the look the shipped model trained on
    // (domain randomised), so fine-tuning keeps what makes it robust.
    let sim = Simulator::new(SimConfig { size: base.card.input_size, ..SimConfig::randomised() });
    let n_sim = ((train_set.len() as f64 * cfg.sim_share / (1.0 - cfg.sim_share).max(0.05)).round() as usize).max(8);
    for k in 0..(n_sim + n_sim / 4) as u64 {
        let o = sim.simulate(&format!("sim{k}"), cfg.train.seed ^ 0x5133, k, None);
        let target = if k < n_sim as u64 { &mut train_set } else { &mut val_set };
        target.push(&o.cutout, if o.truth.is_lens { 1.0 } else { 0.0 }, clip).map_err(RetrainError::Other)?;
    }
    let old = validate(&base.net, &val_set);
    let outcome = train(&train_set, &val_set, Some(base.net.clone()), &cfg.train, observer)
        .map_err(|e| RetrainError::Other(e.to_string()))?;
    let new = validate(&outcome.net, &val_set);
    if outcome.cancelled {
        // Cancelled: nothing is stored, the current model and the scores stay as they were.
        return Ok(RetrainOutcome {
            labels: ids.len(),
            label_ids: ids,
            old,
            new,
            kept: false,
            model_version: 0,
            cancelled: true,
        });
    }
    let kept = keep_new(&old, &new);
    let mut card: ModelCard = base.card.clone();
    card.provenance = serde_json::json!({ "retrained_from": base.card.provenance.get("command"), "labels": ids.len(), "history": outcome.history });
    card.metrics = serde_json::json!({ "val_loss": new.loss, "val_auroc": new.auroc, "previous_val_loss": old.loss, "previous_val_auroc": old.auroc, "kept": kept });
    let bytes = checkpoint::to_bytes(&outcome.net, &card).map_err(RetrainError::Other)?;
    let metrics = serde_json::json!({ "old": old, "new": new, "kept": kept, "label_ids": ids });
    let version = project.add_model_version_with_weights(
        "retrained",
        &serde_json::to_string(&card).unwrap_or_default(),
        &metrics.to_string(),
        &bytes,
        kept,
    )?;
    if kept {
        let scorer = Scorer::new(outcome.net, card);
        score_project(project, &scorer, &format!("retrained#{version}"), 64, &|_, _| {})
            .map_err(|e| RetrainError::Other(e.to_string()))?;
    }
    Ok(RetrainOutcome {
        labels: ids.len(),
        label_ids: ids,
        old,
        new,
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
}
