//! From many inspectors' grades to decisions (SPEC 4): each inspector's current grade, the seed
//! rule, mean grade and disputes, SWAP posteriors and inspector skill, and agreement (Fleiss'
//! kappa). Entry point: [`Consensus::compute`] over a project's grade events.

pub mod agreement;
pub mod swap;

use crate::project::{GradeEvent, Score};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use swap::{Classification, Status, Swap, SwapConfig};

/// The seed rule's thresholds: a candidate goes on if at least `min_maybe` inspectors gave 3 or
/// 5, or at least `min_sure` gave 5 (the KiDS inspection used 2 and 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct SeedRule {
    pub min_maybe: usize,
    pub min_sure: usize,
}

impl Default for SeedRule {
    fn default() -> SeedRule {
        SeedRule { min_maybe: 2, min_sure: 1 }
    }
}

/// Grades that differ by at least this much make a candidate disputed (a 5 and a 0 or 1).
pub const DISPUTE_GAP: u8 = 4;

/// Each inspector's current grade of each candidate: their latest event, unless it retracted.
/// Returns candidate -> (inspector -> score).
pub fn current_grades(events: &[GradeEvent]) -> BTreeMap<i64, BTreeMap<i64, Score>> {
    let mut latest: HashMap<(i64, i64), (&str, i64, Option<Score>)> = HashMap::new();
    for e in events {
        let key = (e.candidate_id, e.inspector_id);
        // Latest by time, then by id (events merged from packs keep their original times).
        let newer = latest.get(&key).is_none_or(|(t, id, _)| (e.time.as_str(), e.id) > (*t, *id));
        if newer {
            latest.insert(key, (e.time.as_str(), e.id, e.score));
        }
    }
    let mut out: BTreeMap<i64, BTreeMap<i64, Score>> = BTreeMap::new();
    for ((c, i), (_, _, s)) in latest {
        if let Some(s) = s {
            out.entry(c).or_default().insert(i, s);
        }
    }
    out
}

/// The verdicts on one candidate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateConsensus {
    pub n_grades: usize,
    /// Counts of 0, 1, 3, 5.
    pub counts: [usize; 4],
    pub mean_grade: Option<f64>,
    pub seed_rule: bool,
    pub disputed: bool,
    pub swap_posterior: f64,
    pub swap_status: Status,
}

/// The seed rule, mean and dispute of one candidate's current grades.
pub fn verdict(grades: &[Score], rule: &SeedRule) -> (bool, Option<f64>, bool, [usize; 4]) {
    let mut counts = [0usize; 4];
    for g in grades {
        counts[Score::ALL.iter().position(|s| s == g).unwrap_or(0)] += 1;
    }
    let maybe_or_sure = counts[2] + counts[3];
    let seed =
        (rule.min_maybe > 0 && maybe_or_sure >= rule.min_maybe) || (rule.min_sure > 0 && counts[3] >= rule.min_sure);
    let mean = (!grades.is_empty()).then(|| grades.iter().map(|g| g.value() as f64).sum::<f64>() / grades.len() as f64);
    let (lo, hi) = grades.iter().fold((u8::MAX, 0u8), |(lo, hi), g| (lo.min(g.value()), hi.max(g.value())));
    let disputed = !grades.is_empty() && hi - lo >= DISPUTE_GAP;
    (seed, mean, disputed, counts)
}

/// Everything the review view and the exports need.
#[derive(Debug, Clone)]
pub struct Consensus {
    pub candidates: BTreeMap<i64, CandidateConsensus>,
    pub swap: Swap<i64, i64>,
}

impl Consensus {
    /// Computes all verdicts. `training_truth(candidate)` is `Some(is_lens)` for training
    /// candidates, whose grades teach the agents and never move a posterior. SWAP reads the events
    /// in time order; a retraction removes nothing from SWAP's past (like Space Warps, which never
    /// forgot a classification) but the retracted grade no longer counts for the seed rule and mean.
    pub fn compute(
        events: &[GradeEvent],
        training_truth: &dyn Fn(i64) -> Option<bool>,
        rule: &SeedRule,
        swap_config: SwapConfig,
    ) -> Consensus {
        let mut ordered: Vec<&GradeEvent> = events.iter().collect();
        ordered.sort_by(|a, b| (a.time.as_str(), a.id).cmp(&(b.time.as_str(), b.id)));
        let mut swap: Swap<i64, i64> = Swap::new(swap_config);
        for e in ordered {
            if let Some(s) = e.score {
                swap.update(&Classification {
                    inspector: e.inspector_id,
                    subject: e.candidate_id,
                    says_lens: s.says_lens(),
                    training_truth: training_truth(e.candidate_id),
                });
            }
        }
        let grades = current_grades(events);
        let mut candidates = BTreeMap::new();
        for (c, by) in &grades {
            if training_truth(*c).is_some() {
                continue;
            }
            let scores: Vec<Score> = by.values().copied().collect();
            let (seed_rule, mean_grade, disputed, counts) = verdict(&scores, rule);
            candidates.insert(
                *c,
                CandidateConsensus {
                    n_grades: scores.len(),
                    counts,
                    mean_grade,
                    seed_rule,
                    disputed,
                    swap_posterior: swap.posterior(c),
                    swap_status: swap.status(c),
                },
            );
        }
        Consensus { candidates, swap }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i64, c: i64, i: i64, s: Option<u8>, t: &str) -> GradeEvent {
        GradeEvent {
            id,
            uid: format!("u{id}"),
            candidate_id: c,
            inspector_id: i,
            score: s.and_then(|v| Score::from_value(v as i64)),
            time: t.into(),
            session_id: None,
            comment: None,
            points: vec![],
        }
    }

    #[test]
    fn seed_rule_mean_and_disputes_on_hand_made_grades() {
        use Score::*;
        let rule = SeedRule::default();
        // (grades, seed rule, mean, disputed)
        let table: [(&[Score], bool, Option<f64>, bool); 7] = [
            (&[], false, None, false),
            (&[Maybe], false, Some(3.0), false),
            (&[Maybe, Maybe], true, Some(3.0), false),
            (&[Sure], true, Some(5.0), false),
            (&[Sure, No], true, Some(2.5), true),
            (&[Sure, Interesting, Maybe], true, Some(3.0), true),
            (&[No, Interesting, Maybe], false, Some(4.0 / 3.0), false),
        ];
        for (grades, seed, mean, disputed) in table {
            let (s, m, d, _) = verdict(grades, &rule);
            assert_eq!(s, seed, "{grades:?}");
            assert_eq!(m, mean, "{grades:?}");
            assert_eq!(d, disputed, "{grades:?}");
        }
        let strict = SeedRule { min_maybe: 3, min_sure: 2 };
        assert!(!verdict(&[Sure, Maybe], &strict).0);
        assert!(verdict(&[Sure, Sure], &strict).0);
        assert!(verdict(&[Maybe, Maybe, Sure], &strict).0);
    }

    #[test]
    fn current_grade_is_the_latest_event_and_undo_retracts() {
        let events = vec![
            ev(1, 10, 1, Some(5), "2026-01-01T00:00:00.000Z"),
            ev(2, 10, 1, Some(0), "2026-01-01T00:01:00.000Z"),
            ev(3, 11, 1, Some(3), "2026-01-01T00:02:00.000Z"),
            ev(4, 11, 1, None, "2026-01-01T00:03:00.000Z"),
            ev(5, 10, 2, Some(3), "2026-01-01T00:00:30.000Z"),
            // Merged from a pack later, but graded earlier: does not override the later grade.
            ev(6, 10, 1, Some(1), "2025-12-31T23:00:00.000Z"),
        ];
        let g = current_grades(&events);
        assert_eq!(g[&10][&1], Score::No);
        assert_eq!(g[&10][&2], Score::Maybe);
        assert!(!g.contains_key(&11), "retracted");
    }
}
