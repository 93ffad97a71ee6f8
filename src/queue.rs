//! The order in which an inspector sees candidates: by model score (default) or random, never a
//! candidate they currently have a grade for (an undone one comes back), with training candidates mixed in at the Space Warps rate
//! (1 in 5 for an inspector's first 50 grades, then 1 in 10) and otherwise indistinguishable.

use crate::active::strategies::{queue_order, Strategy};
use crate::project::{Project, ProjectError};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq)]
pub enum QueueOrder {
    /// Highest latest model score first (ingest order when there is no model yet).
    ModelScore,
    /// Shuffled, reproducibly for a seed.
    Random(u64),
    /// An active-learning query strategy on the latest scores (see [`queue_order`]); candidates
    /// without a score go last.
    Strategy(Strategy),
}

/// How often training candidates appear.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingRate {
    pub early_every: usize,
    pub early_grades: usize,
    pub later_every: usize,
}

impl Default for TrainingRate {
    fn default() -> TrainingRate {
        TrainingRate { early_every: 5, early_grades: 50, later_every: 10 }
    }
}

/// The queue of candidate ids for an inspector.
pub fn build_queue(
    project: &Project,
    inspector_id: i64,
    order: QueueOrder,
    rate: TrainingRate,
) -> Result<Vec<i64>, ProjectError> {
    let events = project.grade_events()?;
    // Graded means a current grade: a candidate whose grade was undone comes back.
    let seen: HashSet<i64> = crate::consensus::current_events(&events)
        .into_iter()
        .filter(|e| e.inspector_id == inspector_id)
        .map(|e| e.candidate_id)
        .collect();
    let graded_before = seen.len();
    let candidates = project.candidates()?;
    let (_, scores) = project.latest_predictions()?;
    let mut real: Vec<i64> =
        candidates.iter().filter(|c| !c.is_training && !seen.contains(&c.id)).map(|c| c.id).collect();
    let mut training: Vec<i64> =
        candidates.iter().filter(|c| c.is_training && !seen.contains(&c.id)).map(|c| c.id).collect();
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(0x7124_0000 ^ inspector_id as u64);
    match order {
        QueueOrder::ModelScore => {
            real.sort_by(|a, b| scores.get(b).unwrap_or(&-1.0).total_cmp(scores.get(a).unwrap_or(&-1.0)).then(a.cmp(b)))
        }
        QueueOrder::Random(seed) => real.shuffle(&mut rand_pcg::Pcg64Mcg::seed_from_u64(seed)),
        QueueOrder::Strategy(strategy) => {
            let (scored, unscored): (Vec<i64>, Vec<i64>) = real.into_iter().partition(|id| scores.contains_key(id));
            let p: Vec<f32> = scored.iter().map(|id| scores[id]).collect();
            real = queue_order(&strategy, &p, inspector_id as u64).into_iter().map(|k| scored[k]).collect();
            real.extend(unscored);
        }
    }
    training.shuffle(&mut rng);
    let mut out = Vec::with_capacity(real.len() + training.len());
    let (mut r, mut t) = (real.into_iter(), training.into_iter());
    loop {
        let position = graded_before + out.len() + 1;
        let every = if position <= rate.early_grades { rate.early_every } else { rate.later_every };
        let next = if every > 0 && position.is_multiple_of(every) {
            t.next().or_else(|| r.next())
        } else {
            r.next().or_else(|| t.next())
        };
        match next {
            Some(id) => out.push(id),
            None => break,
        }
    }
    Ok(out)
}
