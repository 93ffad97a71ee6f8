//! Batched inference: scores for cutouts, a folder of cutouts, or every candidate of a project.

use super::checkpoint::{self, ModelCard, ModelFileError};
use super::data::Dataset;
use super::net::LensNet;
use super::train::evaluate;
use crate::cutout::Cutout;
use crate::project::{Project, ProjectError};
use burn::module::Module;
use burn::tensor::{activation::sigmoid, Device, Tensor};
use rayon::prelude::*;
use std::path::Path;

/// A model ready to score: network in validation mode on the CPU, with its card.
pub struct Scorer {
    /// The model (of an ensemble, the first member: the one maps and fine-tuning use).
    pub net: LensNet,
    /// An ensemble's other members, whose probabilities are averaged with `net`'s.
    pub members: Vec<LensNet>,
    pub card: ModelCard,
    device: Device,
    /// Test-time augmentation: how many of the 8 rotations and flips are averaged (1 = none).
    pub views: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error(transparent)]
    Model(#[from] ModelFileError),
    #[error(transparent)]
    Project(#[from] ProjectError),
}

impl Scorer {
    pub fn load(path: &Path) -> Result<Scorer, ModelFileError> {
        let device = Device::flex();
        let (nets, card) = checkpoint::load_members(path, &device)?;
        Ok(Scorer::ensemble(nets, card))
    }

    /// The shipped model, from the copy built into the program.
    pub fn shipped() -> Result<Scorer, ModelFileError> {
        let device = Device::flex();
        let name = Path::new("(built in) models/lens-detector.lensmodel");
        let (nets, card) = checkpoint::members_from_bytes(name, super::SHIPPED_MODEL_BYTES, &device)?;
        Ok(Scorer::ensemble(nets, card))
    }

    /// `model`, or the shipped model when none is given.
    pub fn load_or_shipped(model: Option<&Path>) -> Result<Scorer, ModelFileError> {
        match model {
            Some(path) => Scorer::load(path),
            None => Scorer::shipped(),
        }
    }

    pub fn new(net: LensNet, card: ModelCard) -> Scorer {
        Scorer::ensemble(vec![net], card)
    }

    /// Models whose probabilities are averaged (at least one).
    pub fn ensemble(nets: Vec<LensNet>, card: ModelCard) -> Scorer {
        let device = Device::flex();
        let views = card.tta_views.clamp(1, 8);
        let mut nets: Vec<LensNet> = nets.into_iter().map(|n| n.valid().to_device(&device)).collect();
        let net = nets.remove(0);
        Scorer { net, members: nets, card, device, views }
    }

    /// The same model without its other ensemble members (to measure what they add).
    pub fn first_member_only(mut self) -> Scorer {
        self.members.clear();
        self
    }

    /// The same model with another number of test-time views (1 - 8).
    pub fn with_views(mut self, views: usize) -> Scorer {
        self.views = views.clamp(1, 8);
        self
    }

    /// P(lens) for each item of a preprocessed data set.
    pub fn score_dataset(&self, data: &Dataset, batch: usize) -> Vec<f32> {
        let mut sum = predict(&self.net, data, batch, &self.device, self.views);
        for m in &self.members {
            for (s, p) in sum.iter_mut().zip(predict(m, data, batch, &self.device, self.views)) {
                *s += p;
            }
        }
        let n = 1 + self.members.len();
        if n > 1 {
            sum.iter_mut().for_each(|s| *s /= n as f32);
        }
        sum
    }

    /// The model a project works with: its current stored version (a kept retraining), else
    /// the shipped model. The first error names what could not be read.
    pub fn current_for(project: &Project) -> Result<Scorer, ScoreError> {
        match project.current_model_bytes()? {
            Some(bytes) => {
                let device = Device::flex();
                let (nets, card) = checkpoint::members_from_bytes(project.path(), &bytes, &device)?;
                Ok(Scorer::ensemble(nets, card))
            }
            None => Ok(Scorer::shipped()?),
        }
    }

    /// P(lens) for each cutout (preprocessed as the card says, then fitted to the model's
    /// input size: cropped around the centre or padded with sky), in batches of `batch`.
    pub fn score(&self, cutouts: &[Cutout], batch: usize) -> Vec<f32> {
        let mut data = Dataset::with_size(self.card.input_size);
        let items: Vec<(&Cutout, f32)> = cutouts.iter().map(|c| (c, 0.0)).collect();
        data.push_all(&items, self.card.normalisation());
        self.score_dataset(&data, batch)
    }
}

/// P(lens) of every item, averaged over `views` of the 8 symmetries of the square (identity,
/// 180-degree turn, the two flips, then the 90-degree turns and the two diagonal mirrors): a lens
/// has no preferred orientation, so each view is an equally valid look, and their mean is less
/// noisy than any one. `views` = 1 is plain inference.
pub fn predict(net: &LensNet, data: &Dataset, batch: usize, device: &Device, views: usize) -> Vec<f32> {
    let views = views.clamp(1, 8);
    if views == 1 {
        return evaluate(net, data, batch, device).0;
    }
    let mut out = Vec::with_capacity(data.len());
    let items: Vec<usize> = (0..data.len()).collect();
    for chunk in items.chunks(batch.max(1)) {
        let (x, _) = super::data::batch(data, chunk, None, device);
        out.extend(view_mean(net, x, views).try_into_vec_as::<f32>().unwrap_or_default());
    }
    out
}

/// P(lens) of a batch [B, 4, H, W], averaged over the first `views` (1 - 8) symmetries of the
/// square in [`dihedral`]'s order. With all 8 the result does not depend on which way up the
/// batch is, which is what lets it teach a network one view at a time (`train --teacher`).
pub fn view_mean(net: &LensNet, x: Tensor<4>, views: usize) -> Tensor<1> {
    let views = views.clamp(1, 8);
    let mut sum = sigmoid(net.forward(x.clone()));
    for v in 1..views {
        sum = sum + sigmoid(net.forward(dihedral(x.clone(), v)));
    }
    sum / views as f32
}

/// Symmetry `k` (0 - 7) of the square applied to images [B, C, H, W].
pub fn dihedral(x: Tensor<4>, k: usize) -> Tensor<4> {
    let x = if k >= 4 { x.swap_dims(2, 3) } else { x };
    match k % 4 {
        0 => x,
        1 => x.flip([2, 3]),
        2 => x.flip([3]),
        _ => x.flip([2]),
    }
}

/// What `score` did to a project.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProjectScoreSummary {
    pub model_version: i64,
    pub scored: usize,
    /// How many of the scored cutouts were resampled to the model's pixel scale, and how many
    /// were then not its size (cropped or padded to it).
    #[serde(flatten)]
    pub adapted: super::Adapted,
    pub failed: Vec<(String, String)>,
}

/// Scores every candidate of a project and stores the scores as predictions of a new model
/// version (named `name`). Pixels are read in parallel, a chunk at a time; a candidate whose
/// pixels cannot be read is listed and skipped.
pub fn score_project(
    project: &mut Project,
    scorer: &Scorer,
    name: &str,
    batch: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<ProjectScoreSummary, ScoreError> {
    let scored = score_candidates(project, scorer, batch, progress)?;
    log::info!("{name}: scored {} candidates, {} failed", scored.scores.len(), scored.failed.len());
    let card = serde_json::to_string(&scorer.card).unwrap_or_default();
    // The version and its scores land together: a kill while scoring leaves no version without
    // scores behind.
    let version = project.add_model_version_with_scores(
        &crate::project::ModelVersionWrite {
            name,
            card_json: &card,
            metrics_json: "{}",
            weights: None,
            current: false,
        },
        &scored.scores,
    )?;
    Ok(ProjectScoreSummary {
        model_version: version,
        scored: scored.scores.len(),
        adapted: scored.adapted,
        failed: scored.failed,
    })
}

/// A model's scores of a project's candidates, not yet stored.
pub struct CandidateScores {
    pub scores: Vec<(i64, f32)>,
    /// How many scored cutouts were resampled from another pixel scale (their WCS's), and how
    /// many were then not the model's size (centred in its field: cropped or padded with sky):
    /// a user learns that the model saw less, more or other pixels than they did.
    pub adapted: super::Adapted,
    /// (name, why) of candidates that could not be scored.
    pub failed: Vec<(String, String)>,
}

/// Scores every candidate without writing anything.
pub fn score_candidates(
    project: &Project,
    scorer: &Scorer,
    batch: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<CandidateScores, ScoreError> {
    score_candidates_where(project, scorer, batch, progress, &|_| true)
}

/// Scores the candidates `keep` accepts (a shard of them), without writing anything.
pub fn score_candidates_where(
    project: &Project,
    scorer: &Scorer,
    batch: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
    keep: &dyn Fn(&crate::project::CandidateRow) -> bool,
) -> Result<CandidateScores, ScoreError> {
    let mut candidates = project.candidates()?;
    candidates.retain(|c| keep(c));
    let mut scores = Vec::with_capacity(candidates.len());
    let mut failed = Vec::new();
    let mut adapted = super::Adapted::default();
    let total = candidates.len();
    let path = project.path().to_path_buf();
    for chunk in candidates.chunks(512) {
        // Readers on their own connections: the writer stays free.
        let loaded: Vec<(i64, String, Result<Cutout, String>)> = chunk
            .par_iter()
            .map_init(
                || Project::open_existing(&path).ok(),
                |reader, c| {
                    let r = match reader {
                        Some(p) => p.load_cutout(c).map_err(|e| e.to_string()),
                        None => Err("cannot open the project for reading".to_string()),
                    };
                    (c.id, c.name.clone(), r)
                },
            )
            .collect();
        let mut ids = Vec::new();
        let mut cutouts = Vec::new();
        for (id, name, r) in loaded {
            match r {
                Ok(c) => {
                    adapted.count(&c, scorer.card.input_size);
                    ids.push(id);
                    cutouts.push(c);
                }
                Err(e) => failed.push((name, e)),
            }
        }
        scores.extend(ids.into_iter().zip(scorer.score(&cutouts, batch)));
        progress(scores.len() + failed.len(), total);
    }
    Ok(CandidateScores { scores, adapted, failed })
}
