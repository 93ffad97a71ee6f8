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

/// The one definition of an inspector's current grade of a candidate, which every consumer
/// (seed rule, mean, disputes, SWAP, kappa, retraining labels, exports, dashboard, queue) reads:
/// their latest event (by time, then id: events merged from packs keep their original times),
/// unless that event is a retraction (undo), in which case they have no grade for it. Returns
/// those latest graded events in time order, one per candidate and inspector, so that a grade
/// that was given, undone and given again counts exactly once.
pub fn current_events(events: &[GradeEvent]) -> Vec<&GradeEvent> {
    let mut latest: HashMap<(i64, i64), &GradeEvent> = HashMap::new();
    for e in events {
        let key = (e.candidate_id, e.inspector_id);
        let newer = latest.get(&key).is_none_or(|l| (e.time.as_str(), e.id) > (l.time.as_str(), l.id));
        if newer {
            latest.insert(key, e);
        }
    }
    let mut out: Vec<&GradeEvent> = latest.into_values().filter(|e| e.score.is_some()).collect();
    out.sort_by(|a, b| (a.time.as_str(), a.id).cmp(&(b.time.as_str(), b.id)));
    out
}

/// Each inspector's current grade ([`current_events`]) of each candidate: candidate ->
/// (inspector -> score).
pub fn current_grades(events: &[GradeEvent]) -> BTreeMap<i64, BTreeMap<i64, Score>> {
    let mut out: BTreeMap<i64, BTreeMap<i64, Score>> = BTreeMap::new();
    for e in current_events(events) {
        if let Some(s) = e.score {
            out.entry(e.candidate_id).or_default().insert(e.inspector_id, s);
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
    /// candidates, whose grades teach the agents and never move a posterior. Every consumer reads
    /// the current grades ([`current_events`]): SWAP takes each inspector's current grade of each
    /// candidate once, in the order they were given, so a mistaken 5 that was undone and regraded
    /// 0 moves the posterior once, by the 0, exactly as if only the 0 had been given.
    pub fn compute(
        events: &[GradeEvent],
        training_truth: &dyn Fn(i64) -> Option<bool>,
        rule: &SeedRule,
        swap_config: SwapConfig,
    ) -> Consensus {
        let mut swap: Swap<i64, i64> = Swap::new(swap_config);
        for e in current_events(events) {
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

    #[test]
    fn an_undone_mistake_moves_swap_once() {
        // A mistaken 5, undone, then regraded 0, against the 0 given directly.
        let with_mistake = vec![
            ev(1, 10, 1, Some(5), "2026-01-01T00:00:00.000Z"),
            ev(2, 10, 1, None, "2026-01-01T00:00:01.000Z"),
            ev(3, 10, 1, Some(0), "2026-01-01T00:00:02.000Z"),
        ];
        let direct = vec![ev(3, 10, 1, Some(0), "2026-01-01T00:00:02.000Z")];
        // Agents that start out better than a coin, so that one grade moves a posterior.
        let cfg = SwapConfig { start_p: 0.8, ..SwapConfig::default() };
        let a = Consensus::compute(&with_mistake, &|_| None, &SeedRule::default(), cfg);
        let b = Consensus::compute(&direct, &|_| None, &SeedRule::default(), cfg);
        assert_eq!(a.candidates, b.candidates);
        assert!(a.candidates[&10].swap_posterior < cfg.prior, "the 0 lowered it");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// One thing an inspector does: grade (0, 1, 3, 5) or undo a candidate.
        #[derive(Debug, Clone)]
        struct Action {
            candidate: i64,
            inspector: i64,
            grade: Option<u8>,
        }

        fn action() -> impl Strategy<Value = Action> {
            (0i64..6, 0i64..4, prop_oneof![Just(None), Just(Some(0u8)), Just(Some(1)), Just(Some(3)), Just(Some(5))])
                .prop_map(|(candidate, inspector, grade)| Action { candidate, inspector, grade })
        }

        fn time(k: usize) -> String {
            format!("2026-01-01T00:{:02}:{:02}.000Z", k / 60, k % 60)
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            /// Any history of grades, undos and regrades gives the same consensus (seed rule,
            /// mean, disputes, SWAP posteriors and skills, kappa) as the final grades alone.
            #[test]
            fn a_history_counts_as_its_final_grades(actions in proptest::collection::vec(action(), 0..60), training in proptest::collection::vec(proptest::option::of(any::<bool>()), 6)) {
                let history: Vec<GradeEvent> = actions.iter().enumerate().map(|(k, a)| ev(k as i64 + 1, a.candidate, a.inspector, a.grade, &time(k))).collect();
                // The final grades, each given once at the time it was last given.
                let mut last: BTreeMap<(i64, i64), (usize, Option<u8>)> = BTreeMap::new();
                for (k, a) in actions.iter().enumerate() {
                    last.insert((a.candidate, a.inspector), (k, a.grade));
                }
                let direct: Vec<GradeEvent> = last.iter().filter_map(|(&(c, i), &(k, g))| g.map(|g| ev(k as i64 + 1, c, i, Some(g), &time(k)))).collect();
                let truth = |c: i64| training[c as usize];
                let cfg = SwapConfig { start_p: 0.7, ..SwapConfig::default() };
                let a = Consensus::compute(&history, &truth, &SeedRule::default(), cfg);
                let b = Consensus::compute(&direct, &truth, &SeedRule::default(), cfg);
                prop_assert_eq!(&a.candidates, &b.candidates);
                for i in 0..4 {
                    prop_assert_eq!(a.swap.agent(&i), b.swap.agent(&i));
                }
                prop_assert_eq!(current_grades(&history), current_grades(&direct));
                prop_assert_eq!(agreement::fleiss_kappa(&current_grades(&history)), agreement::fleiss_kappa(&current_grades(&direct)));
            }

            /// The order events are stored in (a pack merged late) does not matter, only their times.
            #[test]
            fn storage_order_does_not_matter(actions in proptest::collection::vec(action(), 0..40), seed in any::<u64>()) {
                use rand::seq::SliceRandom;
                use rand::SeedableRng;
                let history: Vec<GradeEvent> = actions.iter().enumerate().map(|(k, a)| ev(k as i64 + 1, a.candidate, a.inspector, a.grade, &time(k))).collect();
                let mut shuffled = history.clone();
                shuffled.shuffle(&mut rand_pcg::Pcg64Mcg::seed_from_u64(seed));
                let cfg = SwapConfig { start_p: 0.7, ..SwapConfig::default() };
                let a = Consensus::compute(&history, &|_| None, &SeedRule::default(), cfg);
                let b = Consensus::compute(&shuffled, &|_| None, &SeedRule::default(), cfg);
                prop_assert_eq!(a.candidates, b.candidates);
            }
        }
    }
}
