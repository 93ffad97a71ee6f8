//! A project's survey candidates as unlabelled training data, for adapting a model to the
//! survey they came from (`adapt --project`).
//!
//! A project already holds every candidate's score, so the ones to adapt on are chosen from
//! those scores and only they are read: a survey of a million candidates is adapted on the few
//! thousand it ranks highest and a random sample of the rest, without holding the million in
//! memory (a folder is read whole; about 165 KB per cutout). Choosing by the project's one-view
//! scores instead of the teacher's eight views gained as much where both were measured
//! (docs/robustness.md, section 6).

use super::data::{highest_and_random, Dataset};
use super::Adapted;
use crate::cutout::{Cutout, Normalisation};
use crate::project::{CandidateRow, Project, ProjectError};
use rand::Rng;
use rayon::prelude::*;

/// What was chosen from a project and read.
#[derive(Debug, Default)]
pub struct ProjectSelection {
    /// The chosen candidates' model inputs, every label 0 (a teacher labels them).
    pub data: Dataset,
    /// (name, why) of chosen candidates whose pixels could not be read.
    pub problems: Vec<(String, String)>,
    pub adapted: Adapted,
    /// Survey candidates in the project (training candidates, whose truth is known, are not the
    /// survey and are never chosen).
    pub candidates: usize,
    /// The model version whose scores chose them (`name#id`), when the project has scores.
    pub scored_by: Option<String>,
    /// How many were taken as the highest scored, and the lowest score among them.
    pub top: Option<(usize, f32)>,
    /// How many were drawn at random from the rest.
    pub others: usize,
}

/// Why a project could not give data to adapt on.
#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error("{0} has no scores to choose its top candidates by: run `lens-inspect score --project {0}` first")]
    Unscored(String),
    #[error("{0} has no survey candidates to adapt on")]
    Empty(String),
}

/// Reads the project's survey candidates to adapt on: with `top = Some((k, r))`, the `k` its
/// latest scores rank highest and `r` others drawn at random (candidates without a score are
/// only ever among the others); with `None`, all of them. Inputs are prepared as a model of
/// `size` pixels with normalisation `norm` takes them.
pub fn load_project_selection(
    project: &Project,
    top: Option<(usize, usize)>,
    norm: Normalisation,
    size: usize,
    rng: &mut impl Rng,
) -> Result<ProjectSelection, SelectionError> {
    let name = project.path().display().to_string();
    let mut rows = project.candidates()?;
    rows.retain(|c| !c.is_training);
    if rows.is_empty() {
        return Err(SelectionError::Empty(name));
    }
    let (scored_by, predictions) = project.latest_predictions()?;
    let mut selection = ProjectSelection { candidates: rows.len(), scored_by, ..Default::default() };
    let chosen: Vec<CandidateRow> = match top {
        None => rows,
        Some((k, others)) => {
            if predictions.is_empty() {
                return Err(SelectionError::Unscored(name));
            }
            let scores: Vec<f32> =
                rows.iter().map(|c| predictions.get(&c.id).copied().unwrap_or(f32::NEG_INFINITY)).collect();
            let k = k.min(scores.iter().filter(|s| s.is_finite()).count());
            let order = highest_and_random(&scores, k, others, rng);
            selection.top = order[..k].last().map(|&i| (k, scores[i]));
            selection.others = order.len() - k;
            order.into_iter().map(|i| rows[i].clone()).collect()
        }
    };
    let mut data = Dataset::with_size(size);
    let path = project.path().to_path_buf();
    // In chunks, as scoring reads them: the cutouts of one chunk are held at a time, beside the
    // inputs, and each reader has its own connection.
    for chunk in chosen.chunks(512) {
        let loaded: Vec<(String, Result<Cutout, String>)> = chunk
            .par_iter()
            .map_init(
                || Project::open_read_only(&path).map_err(|e| e.to_string()),
                |reader, c| {
                    let r = match reader {
                        Ok(p) => p.load_cutout(c).map_err(|e| e.to_string()),
                        Err(e) => Err(e.clone()),
                    };
                    (c.name.clone(), r)
                },
            )
            .collect();
        let mut cutouts = Vec::with_capacity(loaded.len());
        for (name, r) in loaded {
            match r {
                Ok(c) => cutouts.push(c),
                Err(e) => selection.problems.push((name, e)),
            }
        }
        let items: Vec<(&Cutout, f32)> = cutouts.iter().map(|c| (c, 0.0)).collect();
        data.push_all(&items, norm);
        for c in &cutouts {
            selection.adapted.count(c, data.size);
        }
    }
    selection.data = data;
    Ok(selection)
}
