//! The review view (researchers): every candidate with its consensus and model score, sortable
//! and filterable, including the disagreements between the model and the people.

use crate::consensus::swap::SwapConfig;
use crate::consensus::SeedRule;
use crate::project::export::{catalogue, CatalogueRow, MinVerdict};
use crate::project::Project;
use egui::Color32;

/// Which candidates the table lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    All,
    Graded,
    SeedRule,
    Disputed,
    /// The model says lens (score >= 0.5), the people say no (graded, mean below 2).
    ModelYesPeopleNo,
    /// The people say lens (seed rule), the model missed it (score < 0.5).
    PeopleYesModelNo,
}

impl Filter {
    pub const ALL: [Filter; 6] = [
        Filter::All,
        Filter::Graded,
        Filter::SeedRule,
        Filter::Disputed,
        Filter::ModelYesPeopleNo,
        Filter::PeopleYesModelNo,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Filter::All => "all",
            Filter::Graded => "graded",
            Filter::SeedRule => "seed rule: lens",
            Filter::Disputed => "disputed (grades differ by 4+)",
            Filter::ModelYesPeopleNo => "model says lens, people say no",
            Filter::PeopleYesModelNo => "people say lens, model missed it",
        }
    }

    pub fn keeps(self, r: &CatalogueRow) -> bool {
        let model_yes = r.model_score.is_some_and(|s| s >= 0.5);
        match self {
            Filter::All => true,
            Filter::Graded => r.n_grades > 0,
            Filter::SeedRule => r.seed_rule,
            Filter::Disputed => r.disputed,
            Filter::ModelYesPeopleNo => model_yes && r.n_grades > 0 && r.mean_grade.is_some_and(|m| m < 2.0),
            Filter::PeopleYesModelNo => r.seed_rule && r.model_score.is_some_and(|s| s < 0.5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    Name,
    ModelScore,
    MeanGrade,
    Grades,
    Swap,
}

/// One line of the inspectors panel.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectorLine {
    pub name: String,
    pub grades: usize,
    pub pl: f64,
    pub pd: f64,
    pub skill: f64,
    /// Share agreeing with the others' majority, and on how many candidates.
    pub agreement: Option<(usize, f64)>,
}

pub struct ReviewView {
    pub rows: Vec<CatalogueRow>,
    pub inspectors: Vec<InspectorLine>,
    pub kappa: Option<f64>,
    pub filter: Filter,
    pub sort: SortBy,
    pub descending: bool,
    pub error: Option<String>,
}

impl ReviewView {
    pub fn load(project: &Project) -> ReviewView {
        let mut view = ReviewView {
            rows: vec![],
            inspectors: vec![],
            kappa: None,
            filter: Filter::All,
            sort: SortBy::ModelScore,
            descending: true,
            error: None,
        };
        match catalogue(project, &SeedRule::default(), SwapConfig::default(), MinVerdict::All) {
            Ok(rows) => view.rows = rows,
            Err(e) => view.error = Some(e.to_string()),
        }
        if let (Ok(events), Ok(candidates), Ok(people)) =
            (project.grade_events(), project.candidates(), project.inspectors())
        {
            let training: std::collections::HashMap<i64, bool> = candidates
                .iter()
                .filter(|c| c.is_training)
                .filter_map(|c| c.truth_is_lens.map(|t| (c.id, t)))
                .collect();
            let consensus = crate::consensus::Consensus::compute(
                &events,
                &|id| training.get(&id).copied(),
                &SeedRule::default(),
                SwapConfig::default(),
            );
            let grades = crate::consensus::current_grades(&events);
            let real: std::collections::BTreeMap<_, _> =
                grades.iter().filter(|(c, _)| !training.contains_key(c)).map(|(c, g)| (*c, g.clone())).collect();
            view.kappa = crate::consensus::agreement::fleiss_kappa(&real);
            let agreement = crate::consensus::agreement::agreement_with_others(&real);
            view.inspectors = people
                .into_iter()
                .map(|i| {
                    let a = consensus.swap.agent(&i.id);
                    InspectorLine {
                        name: i.name,
                        grades: grades.values().filter(|g| g.contains_key(&i.id)).count(),
                        pl: a.pl,
                        pd: a.pd,
                        skill: a.skill(SwapConfig::default().prior),
                        agreement: agreement.get(&i.id).copied(),
                    }
                })
                .collect();
        }
        view
    }

    /// The rows the table shows, filtered and sorted.
    pub fn visible(&self) -> Vec<&CatalogueRow> {
        let mut v: Vec<&CatalogueRow> = self.rows.iter().filter(|r| self.filter.keeps(r)).collect();
        let key = |r: &CatalogueRow| -> f64 {
            match self.sort {
                SortBy::Name => 0.0,
                SortBy::ModelScore => r.model_score.map(|s| s as f64).unwrap_or(-1.0),
                SortBy::MeanGrade => r.mean_grade.unwrap_or(-1.0),
                SortBy::Grades => r.n_grades as f64,
                SortBy::Swap => r.swap_posterior,
            }
        };
        v.sort_by(|a, b| {
            let o = if self.sort == SortBy::Name {
                a.name.cmp(&b.name)
            } else {
                key(a).total_cmp(&key(b)).then(a.name.cmp(&b.name))
            };
            if self.descending {
                o.reverse()
            } else {
                o
            }
        });
        v
    }

    pub fn ui(&mut self, ui: &mut egui::Ui) {
        if let Some(e) = &self.error {
            ui.colored_label(Color32::from_rgb(255, 120, 100), e);
        }
        ui.horizontal(|ui| {
            ui.label("Show:");
            egui::ComboBox::from_id_salt("review-filter").selected_text(self.filter.label()).show_ui(ui, |ui| {
                for f in Filter::ALL {
                    ui.selectable_value(&mut self.filter, f, f.label());
                }
            });
            ui.label(format!("{} candidates", self.visible().len()));
        });
        egui::CollapsingHeader::new("Inspectors").default_open(true).show(ui, |ui| {
            ui.label(match self.kappa {
                Some(k) => format!("Fleiss' kappa over the four grades: {k:.3}"),
                None => "Fleiss' kappa: needs candidates graded by two or more inspectors".into(),
            });
            egui::Grid::new("inspectors").striped(true).show(ui, |ui| {
                for h in ["inspector", "graded", "PL", "PD", "SWAP skill", "agrees with others"] {
                    ui.strong(h);
                }
                ui.end_row();
                for i in &self.inspectors {
                    ui.label(&i.name);
                    ui.label(i.grades.to_string());
                    ui.label(format!("{:.2}", i.pl));
                    ui.label(format!("{:.2}", i.pd));
                    ui.label(format!("{:.2e}", i.skill));
                    ui.label(
                        i.agreement.map(|(n, a)| format!("{:.0} % of {n}", 100.0 * a)).unwrap_or_else(|| "—".into()),
                    );
                    ui.end_row();
                }
            });
        });
        ui.separator();
        let rows: Vec<CatalogueRow> = self.visible().into_iter().cloned().collect();
        let mut header = |ui: &mut egui::Ui, label: &str, by: SortBy| {
            let arrow = if self.sort == by {
                if self.descending {
                    " (high first)"
                } else {
                    " (low first)"
                }
            } else {
                ""
            };
            if ui.button(format!("{label}{arrow}")).clicked() {
                if self.sort == by {
                    self.descending = !self.descending;
                } else {
                    self.sort = by;
                    self.descending = true;
                }
            }
        };
        egui::ScrollArea::vertical().show(ui, |ui| {
            egui::Grid::new("review-table").striped(true).show(ui, |ui| {
                header(ui, "name", SortBy::Name);
                header(ui, "model score", SortBy::ModelScore);
                header(ui, "grades", SortBy::Grades);
                header(ui, "mean", SortBy::MeanGrade);
                ui.strong("0 / 1 / 3 / 5");
                header(ui, "SWAP", SortBy::Swap);
                ui.strong("seed rule");
                ui.strong("disputed");
                ui.end_row();
                for r in rows.iter().take(2000) {
                    ui.label(&r.name);
                    ui.label(r.model_score.map(|s| format!("{s:.3}")).unwrap_or_else(|| "—".into()));
                    ui.label(r.n_grades.to_string());
                    ui.label(r.mean_grade.map(|m| format!("{m:.2}")).unwrap_or_else(|| "—".into()));
                    ui.label(format!("{} / {} / {} / {}", r.n0, r.n1, r.n3, r.n5));
                    ui.label(format!("{:.2e} {}", r.swap_posterior, r.swap_status));
                    ui.label(if r.seed_rule { "lens" } else { "" });
                    ui.label(if r.disputed { "yes" } else { "" });
                    ui.end_row();
                }
            });
        });
    }
}
