//! Agreement between inspectors: Fleiss' kappa over the four grades, and each inspector's
//! agreement with the consensus of the others.
//!
//! # Formula
//! Fleiss (1971), generalised to a varying number of raters per candidate (only candidates with
//! at least 2): with n_ij the number of raters giving candidate i grade j and n_i their total,
//! P_i = (sum_j n_ij^2 - n_i) / (n_i (n_i - 1)), P_bar = mean_i P_i,
//! p_j = sum_i n_ij / sum_i n_i, P_e = sum_j p_j^2, kappa = (P_bar - P_e) / (1 - P_e).

use crate::project::Score;
use std::collections::BTreeMap;

fn category(s: Score) -> usize {
    Score::ALL.iter().position(|&x| x == s).unwrap_or(0)
}

/// Fleiss' kappa over candidates with at least two grades; `None` when there are none, or when
/// every grade is the same (kappa is undefined: 0/0).
pub fn fleiss_kappa(grades: &BTreeMap<i64, BTreeMap<i64, Score>>) -> Option<f64> {
    let mut totals = [0f64; 4];
    let mut sum_pi = 0.0;
    let mut subjects = 0usize;
    for by in grades.values() {
        let n = by.len();
        if n < 2 {
            continue;
        }
        let mut counts = [0f64; 4];
        for &s in by.values() {
            counts[category(s)] += 1.0;
        }
        let n = n as f64;
        sum_pi += (counts.iter().map(|c| c * c).sum::<f64>() - n) / (n * (n - 1.0));
        for j in 0..4 {
            totals[j] += counts[j];
        }
        subjects += 1;
    }
    if subjects == 0 {
        return None;
    }
    let all: f64 = totals.iter().sum();
    let pe: f64 = totals.iter().map(|t| (t / all).powi(2)).sum();
    let pbar = sum_pi / subjects as f64;
    if (1.0 - pe).abs() < 1e-15 {
        return None;
    }
    Some((pbar - pe) / (1.0 - pe))
}

/// Per inspector: the share of their grades (on candidates others graded too) that agree with the
/// others' majority on "lens" (3, 5) versus "not" (0, 1). Ties among the others are skipped.
pub fn agreement_with_others(grades: &BTreeMap<i64, BTreeMap<i64, Score>>) -> BTreeMap<i64, (usize, f64)> {
    let mut tally: BTreeMap<i64, (usize, usize)> = BTreeMap::new();
    for by in grades.values() {
        for (&who, &s) in by {
            let (yes, no) =
                by.iter()
                    .filter(|(&o, _)| o != who)
                    .fold((0, 0), |(y, n), (_, g)| if g.says_lens() { (y + 1, n) } else { (y, n + 1) });
            if yes == no {
                continue;
            }
            let e = tally.entry(who).or_default();
            e.0 += 1;
            if s.says_lens() == (yes > no) {
                e.1 += 1;
            }
        }
    }
    tally.into_iter().map(|(who, (n, agree))| (who, (n, agree as f64 / n as f64))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Score::*;

    fn table(rows: &[&[Score]]) -> BTreeMap<i64, BTreeMap<i64, Score>> {
        rows.iter()
            .enumerate()
            .map(|(c, r)| (c as i64, r.iter().enumerate().map(|(i, &s)| (i as i64, s)).collect()))
            .collect()
    }

    #[test]
    fn fleiss_kappa_on_known_tables() {
        // Perfect agreement on varied grades: kappa 1.
        assert_eq!(fleiss_kappa(&table(&[&[No, No, No], &[Sure, Sure, Sure], &[Maybe, Maybe, Maybe]])), Some(1.0));
        // Worked by hand: 2 raters, subjects (0,0), (0,5), (5,5), (5,0):
        // P_i = 1, 0, 1, 0 -> P_bar = 0.5; p_No = p_Sure = 0.5 -> P_e = 0.5; kappa = 0.
        let k = fleiss_kappa(&table(&[&[No, No], &[No, Sure], &[Sure, Sure], &[Sure, No]])).expect("kappa");
        assert!(k.abs() < 1e-12, "{k}");
        // Systematic disagreement: below zero. (0,5) twice: P_bar = 0, P_e = 0.5, kappa = -1.
        let k = fleiss_kappa(&table(&[&[No, Sure], &[Sure, No]])).expect("kappa");
        assert!((k + 1.0).abs() < 1e-12, "{k}");
        // Fleiss' 1971 style check with 3 raters and 3 used categories, computed by hand:
        // subjects: (0,0,1), (1,1,1), (3,5,5), (0,0,0)
        // P_i: (4+1-3)/6 = 1/3, 1, (1+4-3)/6 = 1/3, 1 -> P_bar = 2/3
        // totals: No 5, Interesting 4, Maybe 1, Sure 2 of 12 -> P_e = (25+16+1+4)/144 = 46/144
        let k = fleiss_kappa(&table(&[&[No, No, Interesting], &[Interesting; 3], &[Maybe, Sure, Sure], &[No; 3]]))
            .expect("kappa");
        let want = (2.0 / 3.0 - 46.0 / 144.0) / (1.0 - 46.0 / 144.0);
        assert!((k - want).abs() < 1e-12, "{k} vs {want}");
        assert_eq!(fleiss_kappa(&table(&[&[No], &[Sure]])), None, "no candidate with two grades");
        assert_eq!(fleiss_kappa(&table(&[&[No, No], &[No, No]])), None, "one category only");
    }

    #[test]
    fn agreement_counts_the_others_majority() {
        // Inspector 2 always contradicts inspectors 0 and 1.
        let t = table(&[&[Sure, Maybe, No], &[No, Interesting, Sure], &[No, No, Maybe]]);
        let a = agreement_with_others(&t);
        assert_eq!(a[&2], (3, 0.0));
        // Inspector 0: others (1, 2) tie in every row -> skipped... except none: all ties.
        assert!(!a.contains_key(&0));
    }
}
