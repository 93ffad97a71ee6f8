//! Labels from grades (SPEC 6): consensus turned into training labels, configurable.
//!
//! Default: the seed rule says lens -> 1; every current grade 0 or 1 from at least two inspectors
//! -> 0; anything else unlabelled. Training candidates keep their true labels. Optionally the
//! SWAP posterior of a graded candidate is its soft label.

use crate::consensus::swap::SwapConfig;
use crate::consensus::{current_grades, Consensus, SeedRule};
use crate::project::{CandidateRow, GradeEvent};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelRule {
    pub seed_rule: SeedRule,
    /// Non-lens label needs at least this many inspectors, all saying 0 or 1.
    pub min_no_votes: usize,
    /// Use the SWAP posterior as a soft label for graded candidates.
    pub swap_soft: bool,
}

impl Default for LabelRule {
    fn default() -> LabelRule {
        LabelRule { seed_rule: SeedRule::default(), min_no_votes: 2, swap_soft: false }
    }
}

/// Candidate id -> label in [0, 1].
pub fn labels_from_grades(candidates: &[CandidateRow], events: &[GradeEvent], rule: &LabelRule) -> BTreeMap<i64, f32> {
    let training: HashMap<i64, bool> =
        candidates.iter().filter(|c| c.is_training).filter_map(|c| c.truth_is_lens.map(|t| (c.id, t))).collect();
    let mut out = BTreeMap::new();
    for (&id, &t) in &training {
        out.insert(id, if t { 1.0 } else { 0.0 });
    }
    let grades = current_grades(events);
    let consensus = rule
        .swap_soft
        .then(|| Consensus::compute(events, &|id| training.get(&id).copied(), &rule.seed_rule, SwapConfig::default()));
    for (id, by) in grades {
        if training.contains_key(&id) {
            continue;
        }
        let scores: Vec<_> = by.values().copied().collect();
        let (seed, ..) = crate::consensus::verdict(&scores, &rule.seed_rule);
        let all_no = scores.len() >= rule.min_no_votes && scores.iter().all(|s| !s.says_lens());
        if let Some(c) = consensus.as_ref().and_then(|c| c.candidates.get(&id)) {
            if seed || all_no {
                out.insert(id, c.swap_posterior as f32);
            }
            continue;
        }
        if seed {
            out.insert(id, 1.0);
        } else if all_no {
            out.insert(id, 0.0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::Score;

    fn row(id: i64, training: Option<bool>) -> CandidateRow {
        CandidateRow {
            id,
            name: format!("c{id}"),
            source: None,
            width: 1,
            height: 1,
            ra_deg: None,
            dec_deg: None,
            tile: None,
            metadata: Default::default(),
            sky_sigma: vec![],
            truth_is_lens: training,
            is_training: training.is_some(),
        }
    }

    fn ev(id: i64, c: i64, who: i64, s: Option<Score>) -> GradeEvent {
        GradeEvent {
            id,
            uid: format!("{id}"),
            candidate_id: c,
            inspector_id: who,
            score: s,
            time: format!("2026-01-01T00:00:{id:02}.000Z"),
            session_id: None,
            comment: None,
            points: vec![],
        }
    }

    #[test]
    fn a_hand_made_grade_table_gives_the_expected_labels() {
        use Score::*;
        let rows: Vec<CandidateRow> = vec![
            row(1, None),
            row(2, None),
            row(3, None),
            row(4, None),
            row(5, None),
            row(6, Some(true)),
            row(7, Some(false)),
        ];
        let events = vec![
            ev(1, 1, 10, Some(Maybe)),
            ev(2, 1, 11, Some(Sure)), // 1: two say lens -> 1
            ev(3, 2, 10, Some(No)),
            ev(4, 2, 11, Some(Interesting)), // 2: two say no -> 0
            ev(5, 3, 10, Some(No)),          // 3: one "no" only -> unlabelled
            ev(6, 4, 10, Some(Sure)),        // 4: one "sure" -> seed rule -> 1
            ev(7, 5, 10, Some(No)),
            ev(8, 5, 11, Some(Maybe)), // 5: mixed -> unlabelled
            ev(9, 6, 10, Some(No)),    // 6: training lens, graded wrong -> still 1
            ev(10, 3, 11, Some(No)),
            ev(11, 3, 11, None), // 3: the second "no" was undone -> still unlabelled
        ];
        let labels = labels_from_grades(&rows, &events, &LabelRule::default());
        let want: BTreeMap<i64, f32> = [(1, 1.0), (2, 0.0), (4, 1.0), (6, 1.0), (7, 0.0)].into_iter().collect();
        assert_eq!(labels, want);
        let strict = LabelRule { seed_rule: SeedRule { min_maybe: 2, min_sure: 2 }, ..LabelRule::default() };
        assert!(
            !labels_from_grades(&rows, &events, &strict).contains_key(&4),
            "one sure is not enough under a stricter rule"
        );
    }
}
