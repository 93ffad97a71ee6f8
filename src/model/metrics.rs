//! The Bologna Lens Challenge metrics (Metcalf et al. 2019): AUROC, TPR0, TPR10, and the ROC
//! curve. Pure functions of (score, truth) pairs, no model needed.
//!
//! # Definitions
//! - AUROC: the probability that a random lens scores above a random non-lens, ties counting one
//!   half (scikit-learn's `roc_auc_score`).
//! - TPR0: the largest true-positive rate at any threshold with no false positive.
//! - TPR10: the largest true-positive rate at any threshold with fewer than 10 false positives.
//!
//! Thresholds sit at distinct score values, so tied scores enter together. Tested against
//! `shared/reference/challenge_metrics.json` (scikit-learn) to 1e-12.

use serde::Serialize;

/// One point of the ROC curve: the rates when every score >= `threshold` is called a lens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RocPoint {
    pub threshold: f64,
    pub fpr: f64,
    pub tpr: f64,
    pub false_positives: usize,
    pub true_positives: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChallengeMetrics {
    pub auroc: f64,
    pub tpr0: f64,
    pub tpr10: f64,
    pub n: usize,
    pub n_lens: usize,
}

/// The ROC curve from the highest threshold down, one point per distinct score (plus the origin).
pub fn roc_curve(scores: &[f64], is_lens: &[bool]) -> Vec<RocPoint> {
    assert_eq!(scores.len(), is_lens.len(), "one truth per score");
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let n_pos = is_lens.iter().filter(|&&l| l).count();
    let n_neg = is_lens.len() - n_pos;
    let rate = |k: usize, n: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    let mut points =
        vec![RocPoint { threshold: f64::INFINITY, fpr: 0.0, tpr: 0.0, false_positives: 0, true_positives: 0 }];
    let (mut tp, mut fp) = (0, 0);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        // All tied scores enter together.
        while i < order.len() && scores[order[i]] == s {
            if is_lens[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        points.push(RocPoint {
            threshold: s,
            fpr: rate(fp, n_neg),
            tpr: rate(tp, n_pos),
            false_positives: fp,
            true_positives: tp,
        });
    }
    points
}

/// AUROC, TPR0 and TPR10. With no lens or no non-lens the AUROC is undefined and returned as NaN.
pub fn challenge_metrics(scores: &[f64], is_lens: &[bool]) -> ChallengeMetrics {
    let roc = roc_curve(scores, is_lens);
    // Trapezoids between consecutive points: ties contribute a diagonal, i.e. count one half.
    let auroc = roc.windows(2).map(|w| (w[1].fpr - w[0].fpr) * (w[1].tpr + w[0].tpr) / 2.0).sum::<f64>();
    let n_lens = is_lens.iter().filter(|&&l| l).count();
    let defined = n_lens > 0 && n_lens < is_lens.len();
    let best_tpr = |max_fp: usize| roc.iter().filter(|p| p.false_positives < max_fp).map(|p| p.tpr).fold(0.0, f64::max);
    ChallengeMetrics {
        auroc: if defined { auroc } else { f64::NAN },
        tpr0: best_tpr(1),
        tpr10: best_tpr(10),
        n: scores.len(),
        n_lens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_scikit_learn_and_the_challenge_definitions() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference/challenge_metrics.json");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("reference file")).expect("json");
        let cases = doc["cases"].as_array().expect("cases");
        assert!(!cases.is_empty());
        for case in cases {
            let truth: Vec<bool> =
                case["is_lens"].as_array().expect("truth").iter().map(|v| v.as_i64() == Some(1)).collect();
            let scores: Vec<f64> =
                case["score"].as_array().expect("scores").iter().map(|v| v.as_f64().expect("f64")).collect();
            let m = challenge_metrics(&scores, &truth);
            for (name, got) in [("auroc", m.auroc), ("tpr0", m.tpr0), ("tpr10", m.tpr10)] {
                let want = case[name].as_f64().expect("value");
                assert!((got - want).abs() < 1e-12, "{name}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn ties_count_half_and_enter_together() {
        // One lens and one non-lens with the same score: AUROC 1/2, and no threshold separates them.
        let m = challenge_metrics(&[0.5, 0.5], &[true, false]);
        assert_eq!(m.auroc, 0.5);
        assert_eq!(m.tpr0, 0.0);
        let perfect = challenge_metrics(&[0.9, 0.8, 0.1], &[true, true, false]);
        assert_eq!((perfect.auroc, perfect.tpr0, perfect.tpr10), (1.0, 1.0, 1.0));
        assert!(challenge_metrics(&[0.3, 0.4], &[false, false]).auroc.is_nan());
    }
}
