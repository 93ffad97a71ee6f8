//! The review view (researchers): every candidate with its consensus and model score, sortable
//! and filterable, including the disagreements between the model and the people.

use super::dashboard::DashboardData;
use super::jobs::{RenderRequest, Rendered, Renderer};
use crate::consensus::swap::SwapConfig;
use crate::consensus::SeedRule;
use crate::cutout::Band;
use crate::project::export::{catalogue, CatalogueRow, MinVerdict};
use crate::project::{Project, Score};
use crate::render::{colormap, DisplaySettings, Rgba8};
use egui::{Color32, TextureHandle, TextureOptions, Vec2};
use std::collections::HashMap;

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

/// What the review screen shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Table,
    Gallery,
    Dashboard,
}

/// One grade as a candidate's page lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct GradeLine {
    pub inspector: String,
    pub time: String,
    /// None: a retraction (undo).
    pub score: Option<Score>,
    pub comment: Option<String>,
    pub points: usize,
}

/// What the visible order depends on: filter, sort key, direction.
type OrderKey = (Filter, SortBy, bool);

/// Thumbnails per gallery page.
pub const GALLERY_PAGE: usize = 48;

pub struct ReviewView {
    pub rows: Vec<CatalogueRow>,
    /// Candidate id by name.
    pub ids: HashMap<String, i64>,
    /// Every grade event per candidate id, oldest first.
    pub grades: HashMap<i64, Vec<GradeLine>>,
    pub mode: Mode,
    pub dashboard: Option<DashboardData>,
    /// The candidate whose page is open.
    pub page: Option<i64>,
    pub gallery_page: usize,
    renderer: Option<Renderer>,
    rendered: HashMap<(i64, bool), Rendered>,
    requested: std::collections::HashSet<(i64, bool)>,
    textures: HashMap<(i64, &'static str), TextureHandle>,
    order_cache: Option<(OrderKey, std::rc::Rc<Vec<usize>>)>,
    /// Row of `rows` by candidate id (the candidate page looks it up every frame).
    row_of: HashMap<i64, usize>,
    pub inspectors: Vec<InspectorLine>,
    pub kappa: Option<f64>,
    pub filter: Filter,
    pub sort: SortBy,
    pub descending: bool,
    pub error: Option<String>,
    project_path: std::path::PathBuf,
    /// The ds9 program "Open in ds9" runs (`LENS_INSPECT_DS9`, else `ds9` on the PATH).
    pub ds9: std::path::PathBuf,
    /// What the last "Open in ds9" came to, filled in by its worker thread.
    pub ds9_message: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl ReviewView {
    pub fn load(project: &Project) -> ReviewView {
        let mut view = ReviewView {
            rows: vec![],
            ids: HashMap::new(),
            grades: HashMap::new(),
            mode: Mode::Table,
            dashboard: None,
            page: None,
            gallery_page: 0,
            renderer: None,
            rendered: HashMap::new(),
            requested: Default::default(),
            textures: HashMap::new(),
            order_cache: None,
            row_of: HashMap::new(),
            inspectors: vec![],
            kappa: None,
            filter: Filter::All,
            sort: SortBy::ModelScore,
            descending: true,
            error: None,
            project_path: project.path().to_path_buf(),
            ds9: std::env::var_os("LENS_INSPECT_DS9").map(Into::into).unwrap_or_else(|| "ds9".into()),
            ds9_message: Default::default(),
        };
        match catalogue(project, &SeedRule::default(), SwapConfig::default(), MinVerdict::All) {
            Ok(rows) => view.rows = rows,
            Err(e) => view.error = Some(e.to_string()),
        }
        match DashboardData::load(project) {
            Ok(d) => view.dashboard = Some(d),
            Err(e) => view.error = Some(format!("dashboard: {e}")),
        }
        if let (Ok(events), Ok(candidates), Ok(people)) =
            (project.grade_events(), project.candidates(), project.inspectors())
        {
            view.ids = candidates.iter().map(|c| (c.name.clone(), c.id)).collect();
            view.row_of =
                view.rows.iter().enumerate().filter_map(|(k, r)| view.ids.get(&r.name).map(|&id| (id, k))).collect();
            let names: HashMap<i64, String> = people.iter().map(|i| (i.id, i.name.clone())).collect();
            for e in &events {
                view.grades.entry(e.candidate_id).or_default().push(GradeLine {
                    inspector: names.get(&e.inspector_id).cloned().unwrap_or_default(),
                    time: e.time.clone(),
                    score: e.score,
                    comment: e.comment.clone(),
                    points: e.points.len(),
                });
            }
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
        self.order().into_iter().map(|k| &self.rows[k]).collect()
    }

    /// Indices of the visible rows, filtered and sorted.
    fn order(&self) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.rows.len()).filter(|&k| self.filter.keeps(&self.rows[k])).collect();
        let key = |r: &CatalogueRow| -> f64 {
            match self.sort {
                SortBy::Name => 0.0,
                SortBy::ModelScore => r.model_score.map(|s| s as f64).unwrap_or(-1.0),
                SortBy::MeanGrade => r.mean_grade.unwrap_or(-1.0),
                SortBy::Grades => r.n_grades as f64,
                SortBy::Swap => r.swap_posterior,
            }
        };
        v.sort_by(|&a, &b| {
            let (a, b) = (&self.rows[a], &self.rows[b]);
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

    /// The visible order, sorted again only when the filter or the sort changed: with 100,000
    /// candidates a sort per frame would cost more than the frame.
    fn cached_order(&mut self) -> std::rc::Rc<Vec<usize>> {
        let key = (self.filter, self.sort, self.descending);
        match &self.order_cache {
            Some((k, order)) if *k == key => order.clone(),
            _ => {
                let order = std::rc::Rc::new(self.order());
                self.order_cache = Some((key, order.clone()));
                order
            }
        }
    }

    /// Draws composites on the render workers (thumbnails and candidate pages need it).
    pub fn with_renderer(mut self, renderer: Renderer) -> ReviewView {
        self.renderer = Some(renderer);
        self
    }

    /// Asks for a candidate's pictures once; `with_map` also wants its activation map.
    fn want(&mut self, id: i64, with_map: bool) {
        let Some(r) = &self.renderer else { return };
        if self.requested.insert((id, with_map)) {
            // The generation carries which request this was: 1 = with the map (a page).
            let generation = with_map as u64;
            r.request(RenderRequest { candidate_id: id, settings: DisplaySettings::default(), with_map, generation });
        }
    }

    fn drain(&mut self) {
        let Some(r) = &self.renderer else { return };
        while let Ok(done) = r.results.try_recv() {
            let key = (done.candidate_id, done.generation == 1);
            if done.map_only {
                if let Some(existing) = self.rendered.get_mut(&key) {
                    existing.map = done.map;
                    existing.seen = done.seen;
                    self.textures.remove(&(done.candidate_id, "overlay"));
                }
                continue;
            }
            self.rendered.insert(key, done);
        }
    }

    fn texture(
        &mut self,
        ui: &egui::Ui,
        id: i64,
        what: &'static str,
        img: impl FnOnce(&Self) -> Option<Rgba8>,
    ) -> Option<TextureHandle> {
        if let Some(t) = self.textures.get(&(id, what)) {
            return Some(t.clone());
        }
        let img = img(self)?;
        let top_down = crate::render::flip_rows(&img);
        let image = egui::ColorImage::from_rgba_unmultiplied([img.width, img.height], top_down.as_flattened());
        let t = ui.ctx().load_texture(format!("review-{what}-{id}"), image, TextureOptions::NEAREST);
        self.textures.insert((id, what), t.clone());
        Some(t)
    }

    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.drain();
        if let Some(e) = &self.error {
            ui.colored_label(Color32::from_rgb(255, 120, 100), e);
        }
        ui.horizontal(|ui| {
            for (m, label) in [(Mode::Table, "Table"), (Mode::Gallery, "Gallery"), (Mode::Dashboard, "Dashboard")] {
                ui.selectable_value(&mut self.mode, m, label);
            }
        });
        ui.separator();
        self.page_ui(ui);
        match self.mode {
            Mode::Dashboard => {
                match &self.dashboard {
                    Some(d) => d.ui(ui),
                    None => {
                        ui.label("no dashboard: the project could not be read");
                    }
                }
                return;
            }
            Mode::Gallery => {
                self.filter_ui(ui);
                self.gallery_ui(ui);
                return;
            }
            Mode::Table => {}
        }
        self.filter_ui(ui);
        self.table_ui(ui);
    }

    fn filter_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let show = ui.label("Show:");
            egui::ComboBox::from_id_salt("review-filter")
                .selected_text(self.filter.label())
                .show_ui(ui, |ui| {
                    for f in Filter::ALL {
                        ui.selectable_value(&mut self.filter, f, f.label());
                    }
                })
                .response
                .labelled_by(show.id);
            let n = self.cached_order().len();
            ui.label(format!("{n} candidates"));
            ui.label("  sort:");
            for (by, label) in [
                (SortBy::ModelScore, "model score"),
                (SortBy::MeanGrade, "mean grade"),
                (SortBy::Grades, "grades"),
                (SortBy::Swap, "SWAP"),
                (SortBy::Name, "name"),
            ] {
                if ui.selectable_label(self.sort == by, label).clicked() {
                    if self.sort == by {
                        self.descending = !self.descending;
                    } else {
                        self.sort = by;
                        self.descending = by != SortBy::Name;
                    }
                }
            }
            ui.label(if self.descending { "(high first)" } else { "(low first)" });
        });
    }

    fn gallery_ui(&mut self, ui: &mut egui::Ui) {
        let order = self.cached_order();
        let pages = order.len().div_ceil(GALLERY_PAGE).max(1);
        self.gallery_page = self.gallery_page.min(pages - 1);
        ui.horizontal(|ui| {
            if ui.add_enabled(self.gallery_page > 0, egui::Button::new("< previous")).clicked() {
                self.gallery_page -= 1;
            }
            ui.label(format!("page {} of {pages}", self.gallery_page + 1));
            if ui.add_enabled(self.gallery_page + 1 < pages, egui::Button::new("next >")).clicked() {
                self.gallery_page += 1;
            }
            ui.label("click a thumbnail for the candidate's page");
        });
        let start = self.gallery_page * GALLERY_PAGE;
        let shown: Vec<_> = order
            .iter()
            .skip(start)
            .take(GALLERY_PAGE)
            .map(|&k| {
                let r = &self.rows[k];
                (r.name.clone(), r.model_score, r.mean_grade, r.n_grades)
            })
            .collect();
        let thumb = 132.0;
        let columns = ((ui.available_width() / (thumb + 12.0)) as usize).max(1);
        egui::ScrollArea::vertical().show(ui, |ui| {
            egui::Grid::new("gallery").spacing([8.0, 8.0]).show(ui, |ui| {
                for (k, (name, score, mean, n)) in shown.iter().enumerate() {
                    let Some(&id) = self.ids.get(name) else { continue };
                    self.want(id, false);
                    ui.vertical(|ui| {
                        let tex = self
                            .texture(ui, id, "thumb", |v| v.rendered.get(&(id, false)).map(|r| r.composite.clone()));
                        let response = match tex {
                            Some(t) => ui.add(
                                egui::Image::new(&t).fit_to_exact_size(Vec2::splat(thumb)).sense(egui::Sense::click()),
                            ),
                            None => ui.add_sized(Vec2::splat(thumb), egui::Spinner::new()),
                        };
                        if response.clicked() {
                            self.page = Some(id);
                        }
                        ui.small(name.as_str());
                        ui.small(format!(
                            "score {}  ·  {n} grades{}",
                            score.map(|s| format!("{s:.2}")).unwrap_or_else(|| "—".into()),
                            mean.map(|m| format!(", mean {m:.1}")).unwrap_or_default()
                        ));
                    });
                    if (k + 1) % columns == 0 {
                        ui.end_row();
                    }
                }
            });
        });
    }

    /// The open candidate's page: composite with and without the activation map, the bands,
    /// and every grade with inspector, time and comment.
    /// Writes the candidate's cube (and its marked points as regions) and starts ds9 on it, on a
    /// worker thread: the window keeps drawing, and the outcome appears beside the button.
    fn open_in_ds9(&self, name: &str) {
        let (project, ds9, message, name) =
            (self.project_path.clone(), self.ds9.clone(), self.ds9_message.clone(), name.to_string());
        if let Ok(mut m) = message.lock() {
            *m = Some("writing the cube for ds9...".into());
        }
        std::thread::spawn(move || {
            let outcome = crate::project::export_sky::open_in_ds9(&project, &name, &ds9);
            if let Ok(mut m) = message.lock() {
                *m = Some(outcome.unwrap_or_else(|e| e));
            }
        });
    }

    fn page_ui(&mut self, ui: &mut egui::Ui) {
        let Some(id) = self.page else { return };
        self.want(id, true);
        let row = self.row_of.get(&id).map(|&k| self.rows[k].clone());
        let name = row.as_ref().map(|r| r.name.clone()).unwrap_or_default();
        let r = self.rendered.get(&(id, true)).map(|r| {
            (
                r.composite.clone(),
                r.bands.clone(),
                r.map.clone(),
                r.error.clone(),
                r.seen.clone(),
                r.blank_bands.clone(),
            )
        });
        let mut open = true;
        let ctx = ui.ctx().clone();
        egui::Window::new(format!("Candidate {name}")).open(&mut open).default_width(720.0).show(&ctx, |ui| {
            if let Some(row) = &row {
                ui.label(format!(
                    "model score {}  ·  mean grade {}  ·  SWAP {:.2e} ({})  ·  seed rule {}{}",
                    row.model_score.map(|s| format!("{s:.3}")).unwrap_or_else(|| "—".into()),
                    row.mean_grade.map(|m| format!("{m:.2}")).unwrap_or_else(|| "—".into()),
                    row.swap_posterior,
                    row.swap_status,
                    if row.seed_rule { "lens" } else { "no" },
                    if row.disputed { "  ·  disputed" } else { "" }
                ));
            }
            match r {
                None => {
                    ui.spinner();
                }
                Some((composite, bands, map, error, seen, blank)) => {
                    if let Some(e) = error {
                        ui.colored_label(Color32::from_rgb(255, 120, 100), e);
                    }
                    ui.horizontal(|ui| {
                        let c = self.texture(ui, id, "page", |_| Some(composite.clone()));
                        ui.vertical(|ui| {
                            ui.label("composite");
                            if let Some(t) = c {
                                ui.add(egui::Image::new(&t).fit_to_exact_size(Vec2::splat(300.0)));
                            }
                        });
                        ui.vertical(|ui| match &map {
                            Some(m) => {
                                ui.label("evidence map: warm = for a lens, blue = against")
                                    .on_hover_text("gradient x activation of the last feature map, in logit units; full colour at 0.5 logit per feature cell, the same scale for every candidate");
                                let scale = crate::model::explain::EVIDENCE_SCALE_LOGIT;
                                let o = self.texture(ui, id, "overlay", |_| {
                                    Some(colormap::overlay_signed(&composite, m, scale, 0.6))
                                });
                                if let Some(t) = o {
                                    ui.add(egui::Image::new(&t).fit_to_exact_size(Vec2::splat(300.0)));
                                }
                                if let Some(seen) = &seen {
                                    ui.add(egui::Label::new(egui::RichText::new(seen).small()).wrap());
                                }
                            }
                            None => {
                                ui.label("no activation map (no model)");
                            }
                        });
                    });
                    ui.horizontal(|ui| {
                        for (k, b) in bands.iter().enumerate() {
                            let what = ["band-u", "band-g", "band-r", "band-i"][k.min(3)];
                            ui.vertical(|ui| {
                                let band = Band::ALL[k.min(3)];
                                if blank.contains(&band) {
                                    ui.label(format!("{band}: no image"))
                                        .on_hover_text("No valid pixel in this band (masked, or one constant value)");
                                } else {
                                    ui.label(band.to_string());
                                }
                                if let Some(t) = self.texture(ui, id, what, |_| Some(b.clone())) {
                                    ui.add(egui::Image::new(&t).fit_to_exact_size(Vec2::splat(120.0)));
                                }
                            });
                        }
                    });
                }
            }
            ui.horizontal(|ui| {
                if ui.button("Open in ds9").on_hover_text("the candidate as a 4-plane FITS cube (u, g, r, i) with its WCS, and the marked points as regions").clicked() {
                    self.open_in_ds9(&name);
                }
                if let Some(m) = self.ds9_message.lock().ok().and_then(|m| m.clone()) {
                    ui.label(m);
                }
            });
            ui.separator();
            ui.strong("Grades");
            let lines = self.grades.get(&id).cloned().unwrap_or_default();
            if lines.is_empty() {
                ui.label("not graded yet");
            }
            egui::Grid::new("page-grades").striped(true).show(ui, |ui| {
                for h in ["inspector", "time (UTC)", "grade", "points", "comment"] {
                    ui.strong(h);
                }
                ui.end_row();
                for g in &lines {
                    ui.label(&g.inspector);
                    ui.label(g.time.replace('T', " ").trim_end_matches('Z'));
                    ui.label(g.score.map(|s| s.value().to_string()).unwrap_or_else(|| "undone".into()));
                    ui.label(if g.points > 0 { g.points.to_string() } else { String::new() });
                    ui.label(g.comment.clone().unwrap_or_default());
                    ui.end_row();
                }
            });
        });
        if !open {
            self.page = None;
        }
    }

    fn table_ui(&mut self, ui: &mut egui::Ui) {
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
        // Every row, virtualised: only the rows on screen are laid out, so 100,000 candidates
        // cost what 30 do. Fixed column widths keep the header over its column.
        const WIDTHS: [f32; 8] = [150.0, 170.0, 130.0, 120.0, 110.0, 150.0, 80.0, 70.0];
        let row_height = ui.text_style_height(&egui::TextStyle::Button) + 2.0 * ui.spacing().button_padding.y;
        let cell = |ui: &mut egui::Ui, k: usize, add: &mut dyn FnMut(&mut egui::Ui)| {
            ui.allocate_ui_with_layout(
                egui::vec2(WIDTHS[k], row_height),
                egui::Layout::left_to_right(egui::Align::Center),
                |ui| {
                    ui.set_min_width(WIDTHS[k]);
                    add(ui)
                },
            );
        };
        ui.horizontal(|ui| {
            let headers: [(&str, Option<SortBy>); 8] = [
                ("name", Some(SortBy::Name)),
                ("model score", Some(SortBy::ModelScore)),
                ("grades", Some(SortBy::Grades)),
                ("mean", Some(SortBy::MeanGrade)),
                ("0 / 1 / 3 / 5", None),
                ("SWAP", Some(SortBy::Swap)),
                ("seed rule", None),
                ("disputed", None),
            ];
            for (k, (label, by)) in headers.into_iter().enumerate() {
                cell(ui, k, &mut |ui| match by {
                    Some(by) => header(ui, label, by),
                    None => {
                        ui.strong(label);
                    }
                });
            }
        });
        let order = self.cached_order();
        let mut open = None;
        let rows = &self.rows;
        egui::ScrollArea::vertical().auto_shrink([false, false]).show_rows(ui, row_height, order.len(), |ui, range| {
            for &k in &order[range] {
                let r = &rows[k];
                ui.horizontal(|ui| {
                    cell(ui, 0, &mut |ui| {
                        if ui.link(&r.name).clicked() {
                            open = Some(r.name.clone());
                        }
                    });
                    let texts = [
                        r.model_score.map(|s| format!("{s:.3}")).unwrap_or_else(|| "—".into()),
                        r.n_grades.to_string(),
                        r.mean_grade.map(|m| format!("{m:.2}")).unwrap_or_else(|| "—".into()),
                        format!("{} / {} / {} / {}", r.n0, r.n1, r.n3, r.n5),
                        format!("{:.2e} {}", r.swap_posterior, r.swap_status),
                        if r.seed_rule { "lens" } else { "" }.to_string(),
                        if r.disputed { "yes" } else { "" }.to_string(),
                    ];
                    for (j, text) in texts.into_iter().enumerate() {
                        cell(ui, j + 1, &mut |ui| {
                            ui.label(text.as_str());
                        });
                    }
                });
            }
        });
        if let Some(name) = open {
            self.page = self.ids.get(&name).copied();
        }
    }
}
