//! The dashboard: how grading is going, in four charts. The figures are computed once when the
//! review view loads ([`DashboardData::load`], no egui) and drawn with egui_plot.

use crate::consensus::current_grades;
use crate::model::metrics::{challenge_metrics, roc_curve};
use crate::project::{Project, Score};
use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints};
use std::collections::{HashMap, HashSet};

/// Bins of the score histograms.
pub const SCORE_BINS: usize = 20;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DashboardData {
    /// Per inspector: cumulative grades against hours since the first grade in the project.
    pub grades_over_time: Vec<(String, Vec<[f64; 2]>)>,
    /// Current grades 0, 1, 3, 5 (training candidates included: they look like any other).
    pub grade_counts: [usize; 4],
    /// Candidates per model-score bin, graded and not yet graded.
    pub scores_graded: [usize; SCORE_BINS],
    pub scores_ungraded: [usize; SCORE_BINS],
    /// ROC of the latest scores against the truth, where candidates have one: (fpr, tpr), AUROC.
    pub roc: Option<(Vec<[f64; 2]>, f64, usize)>,
    /// Candidates with truth left out of the ROC because a retraining used their labels.
    pub truth_left_out: usize,
}

fn hours(t: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|d| d.timestamp_millis() as f64 / 3.6e6)
}

impl DashboardData {
    pub fn load(project: &Project) -> Result<DashboardData, String> {
        let events = project.grade_events().map_err(|e| e.to_string())?;
        let names: HashMap<i64, String> =
            project.inspectors().map_err(|e| e.to_string())?.into_iter().map(|i| (i.id, i.name)).collect();
        let mut data = DashboardData::default();
        let t0 = events.iter().filter_map(|e| hours(&e.time)).fold(f64::INFINITY, f64::min);
        let mut per: Vec<(i64, Vec<[f64; 2]>)> = Vec::new();
        for e in events.iter().filter(|e| e.score.is_some()) {
            let Some(h) = hours(&e.time) else { continue };
            let idx = match per.iter().position(|(i, _)| *i == e.inspector_id) {
                Some(k) => k,
                None => {
                    per.push((e.inspector_id, Vec::new()));
                    per.len() - 1
                }
            };
            let line = &mut per[idx].1;
            let n = line.len() as f64 + 1.0;
            line.push([h - t0, n]);
        }
        for (_, line) in &mut per {
            line.sort_by(|a, b| a[0].total_cmp(&b[0]));
            for (k, p) in line.iter_mut().enumerate() {
                p[1] = k as f64 + 1.0;
            }
        }
        data.grades_over_time = per
            .into_iter()
            .map(|(i, line)| (names.get(&i).cloned().unwrap_or_else(|| format!("#{i}")), line))
            .collect();
        let grades = current_grades(&events);
        for by in grades.values() {
            for s in by.values() {
                let k = match s {
                    Score::No => 0,
                    Score::Interesting => 1,
                    Score::Maybe => 2,
                    Score::Sure => 3,
                };
                data.grade_counts[k] += 1;
            }
        }
        let graded: HashSet<i64> = grades.keys().copied().collect();
        let (_, scores) = project.latest_predictions().map_err(|e| e.to_string())?;
        for (id, s) in &scores {
            let bin = ((*s as f64 * SCORE_BINS as f64) as usize).min(SCORE_BINS - 1);
            if graded.contains(id) {
                data.scores_graded[bin] += 1;
            } else {
                data.scores_ungraded[bin] += 1;
            }
        }
        // Candidates a retraining learnt from are left out: the ROC shows held-out truth only.
        let truth = project.latest_scores_with_truth().map_err(|e| e.to_string())?;
        data.truth_left_out = truth.trained_on.len();
        let with_truth = truth.held_out;
        let lenses = with_truth.iter().filter(|t| t.1).count();
        if lenses > 0 && lenses < with_truth.len() {
            let s: Vec<f64> = with_truth.iter().map(|t| t.0).collect();
            let t: Vec<bool> = with_truth.iter().map(|t| t.1).collect();
            let curve = roc_curve(&s, &t).iter().map(|p| [p.fpr, p.tpr]).collect();
            data.roc = Some((curve, challenge_metrics(&s, &t).auroc, with_truth.len()));
        }
        Ok(data)
    }

    pub fn ui(&self, ui: &mut egui::Ui) {
        let w = (ui.available_width() / 2.0 - 12.0).max(200.0);
        let h = ((ui.available_height() - 60.0) / 2.0).clamp(160.0, 380.0);
        egui::Grid::new("dashboard").num_columns(2).spacing([12.0, 8.0]).show(ui, |ui| {
            ui.vertical(|ui| {
                ui.strong("Grades per inspector over time");
                Plot::new("grades-time")
                    .width(w)
                    .height(h)
                    .legend(Legend::default())
                    .x_axis_label("hours since the first grade")
                    .y_axis_label("grades")
                    .show(ui, |p| {
                        for (name, line) in &self.grades_over_time {
                            p.line(Line::new(name.as_str(), PlotPoints::from(line.clone())));
                        }
                    });
            });
            ui.vertical(|ui| {
                ui.strong("Grades given");
                let bars: Vec<Bar> = [0.0, 1.0, 3.0, 5.0]
                    .iter()
                    .zip(self.grade_counts)
                    .map(|(&x, n)| Bar::new(x, n as f64).width(0.8))
                    .collect();
                Plot::new("grade-hist")
                    .width(w)
                    .height(h)
                    .x_axis_label("grade (0 no, 1 interesting, 3 maybe, 5 sure)")
                    .y_axis_label("grades")
                    .show(ui, |p| p.bar_chart(BarChart::new("grades", bars)));
            });
            ui.end_row();
            ui.vertical(|ui| {
                ui.strong("Model scores: graded vs not yet graded");
                let bars = |counts: &[usize; SCORE_BINS], offset: f64| -> Vec<Bar> {
                    counts
                        .iter()
                        .enumerate()
                        .map(|(k, &n)| {
                            Bar::new((k as f64 + 0.5) / SCORE_BINS as f64 + offset, n as f64)
                                .width(0.45 / SCORE_BINS as f64)
                        })
                        .collect()
                };
                let shift = 0.25 / SCORE_BINS as f64;
                Plot::new("score-hist")
                    .width(w)
                    .height(h)
                    .legend(Legend::default())
                    .x_axis_label("model score")
                    .y_axis_label("candidates")
                    .show(ui, |p| {
                        p.bar_chart(BarChart::new("graded", bars(&self.scores_graded, -shift)));
                        p.bar_chart(BarChart::new("not graded", bars(&self.scores_ungraded, shift)));
                    });
            });
            ui.vertical(|ui| match &self.roc {
                Some((curve, auroc, n)) => {
                    ui.strong(format!("ROC against the truth ({n} held-out candidates): AUROC {auroc:.3}"));
                    if self.truth_left_out > 0 {
                        ui.label(format!(
                            "{} candidates whose labels retraining used are left out",
                            self.truth_left_out
                        ));
                    }
                    Plot::new("roc")
                        .width(w)
                        .height(h)
                        .data_aspect(1.0)
                        .x_axis_label("false-positive rate")
                        .y_axis_label("true-positive rate")
                        .show(ui, |p| {
                            p.line(Line::new("chance", PlotPoints::from(vec![[0.0, 0.0], [1.0, 1.0]])));
                            p.line(Line::new("model", PlotPoints::from(curve.clone())).width(2.0));
                        });
                }
                None => {
                    ui.strong("ROC");
                    ui.label("needs candidates with truth (lenses and non-lenses) and model scores");
                }
            });
            ui.end_row();
        });
    }
}
