//! The grade view: one candidate large, its bands small, and the keyboard.
//!
//! Keys: 0 / 1 / 3 / 5 grade and advance; Left / Right move; Backspace undoes the last grade (a
//! new retraction event); N writes a comment (Enter saves it with the next grade); clicks on the
//! image mark points (stored with the grade); wheel or + / - zoom, drag pans, Z resets; Space
//! toggles the activation map; B brighter,
//! L bluer, G/R/I/U single bands, C colour; ? shows the keys. A grade is on disk before the next
//! candidate is shown. Volunteers never see model scores or others' grades.

use super::jobs::{RenderRequest, Rendered, Renderer};
use super::training::TrainingPanel;
use super::writer::GradeWriter;
use crate::project::{CandidateRow, Inspector, MarkedPoint, NewGrade, Project, Role, Score};
use crate::render::{colormap, DisplaySettings, Rgba8};
use crate::survey::wcs::{sky_label, TanWcs};
use egui::{Color32, ColorImage, Key, Sense, TextureHandle, TextureOptions, Vec2};
use std::collections::HashMap;
use std::time::Instant;

/// Which picture the big panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Colour,
    Brighter,
    Bluer,
    Band(usize),
}

/// What happened on a key or click, kept for tests and the status line.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Graded { candidate_id: i64, score: Score },
    Undone { candidate_id: i64 },
    Moved,
}

struct Shown {
    /// Why the picture could not be made (the file and the reason); such a candidate cannot be
    /// graded, since nobody saw it.
    failed: Option<String>,
    composite: TextureHandle,
    bands: Vec<TextureHandle>,
    /// Bands of the drawn cutout that hold no image (their thumbnails are labelled).
    blank_bands: Vec<crate::cutout::Band>,
    overlay: Option<TextureHandle>,
    size: usize,
}

pub struct GradeView {
    pub project: Project,
    pub inspector: Inspector,
    session: String,
    pub queue: Vec<i64>,
    pub pos: usize,
    rows: HashMap<i64, CandidateRow>,
    scores: HashMap<i64, f32>,
    others: HashMap<i64, Vec<(String, Score)>>,
    pub settings: DisplaySettings,
    renderer: Renderer,
    generation: u64,
    requested: HashMap<i64, u64>,
    rendered: HashMap<i64, Rendered>,
    shown: Option<(i64, u64, View, bool, Shown)>,
    pub points: Vec<MarkedPoint>,
    pub comment: Option<String>,
    comment_ready: Option<String>,
    pub view: View,
    pub overlay: bool,
    pub opacity: f32,
    pub help: bool,
    /// The last grade this session gave, for Backspace.
    last_graded: Option<i64>,
    started: Instant,
    pub graded_this_session: usize,
    pub message: Option<String>,
    pub last_action: Option<Action>,
    /// The input size of the model that scores and maps candidates; `None` without a model.
    model_size: Option<usize>,
    /// How that model sees the current candidate (resampled, cropped), for the candidate's id.
    seen: Option<(i64, Option<String>)>,
    /// The retraining worker's panel (absent in views made without one).
    pub trainer: Option<TrainingPanel>,
    writer: Option<GradeWriter>,
    /// The grade sent to the writer and not yet confirmed.
    pending: Option<NewGrade>,
    /// Nearest-neighbour zoom of the big picture (1 = whole cutout) and the texture point at
    /// its centre; the zoom stays from candidate to candidate, the centre does not.
    pub zoom: f32,
    pub pan: egui::Pos2,
    view_of: Option<i64>,
    /// The settings last written to the project, and when they last changed since (saved once
    /// the sliders have been still for a moment, on a worker).
    saved_settings: DisplaySettings,
    settings_changed: Option<Instant>,
    /// The current candidate's WCS (built once per candidate, not per frame).
    sky: Option<(i64, Option<TanWcs>)>,
    /// "Find the files": the folder the project remembers and the one the user names.
    pub relocate_from: String,
    pub relocate_to: String,
    /// The relocation worker's outcome, once it has one.
    relocated: Option<std::sync::Arc<std::sync::Mutex<Option<String>>>>,
}

/// Candidates drawn ahead of the inspector.
const PREFETCH: usize = 4;

impl GradeView {
    pub fn new(
        project: Project,
        inspector: Inspector,
        queue: Vec<i64>,
        renderer: Renderer,
        model_size: Option<usize>,
    ) -> Result<GradeView, String> {
        let mut project = project;
        let session = project.start_session(inspector.id, "desktop").map_err(|e| e.to_string())?;
        let rows: HashMap<i64, CandidateRow> =
            project.candidates().map_err(|e| e.to_string())?.into_iter().map(|c| (c.id, c)).collect();
        let (_, scores) = project.latest_predictions().map_err(|e| e.to_string())?;
        // The settings this inspector left the project with (or the pack's), so nobody tunes
        // the stretch again at every start.
        let settings = project
            .display_settings(&inspector.name)
            .ok()
            .flatten()
            .and_then(|json| serde_json::from_str::<DisplaySettings>(&json).ok())
            .unwrap_or_default();
        let mut view = GradeView {
            project,
            inspector,
            session,
            queue,
            pos: 0,
            rows,
            scores,
            others: HashMap::new(),
            settings,
            saved_settings: settings,
            settings_changed: None,
            renderer,
            generation: 0,
            requested: HashMap::new(),
            rendered: HashMap::new(),
            shown: None,
            points: Vec::new(),
            sky: None,
            relocate_from: String::new(),
            relocate_to: String::new(),
            relocated: None,
            comment: None,
            comment_ready: None,
            view: View::Colour,
            overlay: false,
            opacity: 0.6,
            help: false,
            last_graded: None,
            started: Instant::now(),
            graded_this_session: 0,
            message: None,
            last_action: None,
            model_size,
            seen: None,
            trainer: None,
            writer: None,
            pending: None,
            zoom: 1.0,
            pan: egui::pos2(0.5, 0.5),
            view_of: None,
        };
        view.refresh_others();
        Ok(view)
    }

    /// Grades go through a writer thread instead of the GUI thread.
    pub fn with_writer(mut self, writer: GradeWriter) -> GradeView {
        self.writer = Some(writer);
        self
    }

    pub fn with_trainer(mut self, trainer: TrainingPanel) -> GradeView {
        self.trainer = Some(trainer);
        self
    }

    /// A kept model re-ordered the queue: what is behind the inspector (and the candidate on
    /// screen) stays, the rest follows the new order.
    fn reorder(&mut self, queue: Vec<i64>, scores: HashMap<i64, f32>) {
        let keep = (self.pos + 1).min(self.queue.len());
        let kept: std::collections::HashSet<i64> = self.queue[..keep].iter().copied().collect();
        self.queue.truncate(keep);
        self.queue.extend(queue.into_iter().filter(|id| !kept.contains(id)));
        self.scores = scores;
        self.requested.clear();
    }

    fn refresh_others(&mut self) {
        if self.inspector.role != Role::Researcher {
            return;
        }
        let names: HashMap<i64, String> =
            self.project.inspectors().unwrap_or_default().into_iter().map(|i| (i.id, i.name)).collect();
        let grades = crate::consensus::current_grades(&self.project.grade_events().unwrap_or_default());
        self.others = grades
            .into_iter()
            .map(|(c, by)| {
                (
                    c,
                    by.into_iter()
                        .filter(|(i, _)| *i != self.inspector.id)
                        .map(|(i, s)| (names.get(&i).cloned().unwrap_or_default(), s))
                        .collect(),
                )
            })
            .collect();
    }

    pub fn current(&self) -> Option<i64> {
        self.queue.get(self.pos).copied()
    }

    /// True when the current candidate's picture is on screen and no grade is on its way to the
    /// disk (grading is allowed then only).
    pub fn ready(&self) -> bool {
        if self.saving() {
            return false;
        }
        match (self.current(), &self.shown) {
            (Some(c), Some((id, .., shown))) => *id == c && shown.failed.is_none(),
            _ => false,
        }
    }

    /// Why the current candidate's picture could not be made, once that is known.
    pub fn failed_picture(&self) -> Option<&str> {
        match (self.current(), &self.shown) {
            (Some(c), Some((id, .., shown))) if *id == c => shown.failed.as_deref(),
            _ => None,
        }
    }

    fn settings_for(&self, view: View) -> DisplaySettings {
        let s = self.settings;
        match view {
            View::Brighter => DisplaySettings { stretch: s.stretch / 3.0, ..s },
            View::Bluer => {
                DisplaySettings { weights: [s.weights[0] * 0.6, s.weights[1] * 0.8, s.weights[2] * 1.6], ..s }
            }
            _ => s,
        }
    }

    fn request_ahead(&mut self) {
        let settings = self.settings_for(self.view);
        for k in self.pos..(self.pos + PREFETCH).min(self.queue.len()) {
            let id = self.queue[k];
            if self.requested.get(&id) != Some(&self.generation) {
                self.requested.insert(id, self.generation);
                self.renderer.request(RenderRequest {
                    candidate_id: id,
                    settings,
                    with_map: self.model_size.is_some(),
                    generation: self.generation,
                });
            }
        }
    }

    /// Takes finished renders from the workers (never waits).
    fn drain(&mut self) {
        while let Ok(r) = self.renderer.results.try_recv() {
            if r.generation != self.generation {
                continue;
            }
            if r.map_only {
                if let Some(existing) = self.rendered.get_mut(&r.candidate_id) {
                    existing.map = r.map;
                    // Redraw the overlay if it is on screen.
                    if self.overlay && self.current() == Some(r.candidate_id) {
                        self.shown = None;
                    }
                }
                continue;
            }
            self.rendered.insert(r.candidate_id, r);
        }
        // Keep the cache small: drop what is behind the inspector.
        if self.rendered.len() > 4 * PREFETCH {
            let keep: Vec<i64> =
                self.queue.iter().skip(self.pos.saturating_sub(2)).take(PREFETCH + 2).copied().collect();
            self.rendered.retain(|id, _| keep.contains(id));
        }
    }

    fn invalidate(&mut self) {
        self.generation += 1;
        self.rendered.clear();
        self.shown = None;
    }

    fn grade(&mut self, score: Score) {
        let Some(id) = self.current() else { return };
        if !self.ready() {
            let failed = self.shown.as_ref().filter(|(sid, ..)| *sid == id).and_then(|(.., s)| s.failed.clone());
            self.message = Some(if self.saving() {
                "saving the last grade...".into()
            } else if let Some(why) = failed {
                format!("cannot grade a candidate whose picture failed ({why}); press the Right arrow key to skip it")
            } else {
                "wait for the picture before grading".into()
            });
            return;
        }
        let comment = self.comment_ready.take().or_else(|| self.comment.take().filter(|c| !c.trim().is_empty()));
        let g = NewGrade {
            candidate_id: id,
            inspector_id: self.inspector.id,
            score: Some(score),
            session_id: Some(self.session.clone()),
            comment,
            points: std::mem::take(&mut self.points),
        };
        self.send(g);
    }

    fn undo(&mut self) {
        if self.saving() {
            return;
        }
        let Some(id) = self.last_graded.take() else {
            self.message = Some("nothing to undo".into());
            return;
        };
        let g = NewGrade {
            candidate_id: id,
            inspector_id: self.inspector.id,
            score: None,
            session_id: Some(self.session.clone()),
            ..Default::default()
        };
        self.send(g);
    }

    /// Hands a grade to the writer thread; the view moves on when it is on disk.
    fn send(&mut self, g: NewGrade) {
        match &self.writer {
            Some(w) => match w.write(g.clone()) {
                Ok(()) => self.pending = Some(g),
                Err(e) => self.saved(g, Err(e)),
            },
            // Without a writer (views made directly over a project): write here.
            None => {
                let result = self.project.record_grade(&g).map(|_| ()).map_err(|e| e.to_string());
                self.saved(g, result);
            }
        }
    }

    /// True while a grade is on its way to the disk.
    pub fn saving(&self) -> bool {
        self.pending.is_some()
    }

    /// A grade reached the disk (or failed to): only now does the view move on.
    fn saved(&mut self, g: NewGrade, result: Result<(), String>) {
        self.pending = None;
        let id = g.candidate_id;
        match (result, g.score) {
            (Ok(()), Some(score)) => {
                if let Some(t) = &self.trainer {
                    t.poke();
                }
                self.graded_this_session += 1;
                self.last_graded = Some(id);
                self.last_action = Some(Action::Graded { candidate_id: id, score });
                self.message = None;
                if self.current() == Some(id) {
                    self.pos = (self.pos + 1).min(self.queue.len());
                }
                self.comment = None;
            }
            (Ok(()), None) => {
                if let Some(t) = &self.trainer {
                    t.poke();
                }
                if let Some(k) = self.queue.iter().position(|&c| c == id) {
                    self.pos = k;
                }
                self.graded_this_session = self.graded_this_session.saturating_sub(1);
                self.last_action = Some(Action::Undone { candidate_id: id });
                self.message = Some("last grade undone".into());
            }
            (Err(e), Some(_)) => {
                // Nothing is lost: the inspector stays on the candidate and can press again.
                self.points = g.points;
                self.comment = g.comment;
                self.message = Some(format!("grade not saved: {e}"));
            }
            (Err(e), None) => {
                self.last_graded = Some(id);
                self.message = Some(format!("undo not saved: {e}"));
            }
        }
    }

    fn drain_writes(&mut self) {
        let done: Vec<_> = match &self.writer {
            Some(w) => w.done.try_iter().collect(),
            None => Vec::new(),
        };
        for d in done {
            self.saved(d.grade, d.result);
        }
    }

    fn keys(&mut self, ui: &egui::Ui) {
        if let Some(text) = &mut self.comment {
            let (enter, escape) = ui.input(|i| (i.key_pressed(Key::Enter), i.key_pressed(Key::Escape)));
            if enter {
                self.comment_ready = Some(text.clone()).filter(|t| !t.trim().is_empty());
                self.comment = None;
            } else if escape {
                self.comment = None;
            }
            return;
        }
        let pressed = |k: Key| ui.input(|i| i.key_pressed(k));
        for (key, score) in [
            (Key::Num0, Score::No),
            (Key::Num1, Score::Interesting),
            (Key::Num3, Score::Maybe),
            (Key::Num5, Score::Sure),
        ] {
            if pressed(key) {
                self.grade(score);
            }
        }
        if pressed(Key::ArrowRight) && self.pos + 1 < self.queue.len() {
            self.pos += 1;
            self.points.clear();
            self.last_action = Some(Action::Moved);
        }
        if pressed(Key::ArrowLeft) && self.pos > 0 {
            self.pos -= 1;
            self.points.clear();
            self.last_action = Some(Action::Moved);
        }
        if pressed(Key::Backspace) {
            self.undo();
        }
        if pressed(Key::N) {
            self.comment = Some(self.comment_ready.take().unwrap_or_default());
        }
        if pressed(Key::Space) {
            self.overlay = !self.overlay;
        }
        if pressed(Key::Z) {
            self.zoom = 1.0;
            self.pan = egui::pos2(0.5, 0.5);
        }
        if pressed(Key::Plus) || pressed(Key::Equals) {
            self.zoom = (self.zoom * 1.5).min(16.0);
        }
        if pressed(Key::Minus) {
            self.zoom = (self.zoom / 1.5).max(1.0);
        }
        let typed_question = ui.input(|i| i.events.iter().any(|e| matches!(e, egui::Event::Text(t) if t == "?")));
        if typed_question || pressed(Key::Questionmark) {
            self.help = !self.help;
        }
        let mut view = self.view;
        for (key, v) in [
            (Key::C, View::Colour),
            (Key::B, View::Brighter),
            (Key::L, View::Bluer),
            (Key::U, View::Band(0)),
            (Key::G, View::Band(1)),
            (Key::R, View::Band(2)),
            (Key::I, View::Band(3)),
        ] {
            if pressed(key) {
                view = v;
            }
        }
        if view != self.view {
            let recolour = matches!(view, View::Colour | View::Brighter | View::Bluer) && view != self.view;
            self.view = view;
            if recolour {
                self.invalidate();
            }
        }
    }

    fn texture(ui: &egui::Ui, name: String, img: &Rgba8) -> TextureHandle {
        let top_down = crate::render::flip_rows(img);
        let image = ColorImage::from_rgba_unmultiplied([img.width, img.height], top_down.as_flattened());
        ui.ctx().load_texture(name, image, TextureOptions::NEAREST)
    }

    fn upload_current(&mut self, ui: &egui::Ui) {
        let Some(id) = self.current() else { return };
        let up_to_date = matches!(&self.shown, Some((sid, generation, view, overlay, _)) if *sid == id && *generation == self.generation && *view == self.view && *overlay == self.overlay);
        if up_to_date {
            return;
        }
        let Some(r) = self.rendered.get(&id) else { return };
        if let Some(e) = &r.error {
            self.message = Some(format!("cannot show this candidate: {e}; press the Right arrow key to skip it"));
        }
        let big = match self.view {
            View::Band(b) if b < r.bands.len() => &r.bands[b],
            _ => &r.composite,
        };
        let overlay = match (&r.map, self.overlay) {
            (Some(m), true) => Some(Self::texture(
                ui,
                format!("map{id}"),
                &colormap::overlay_signed(big, m, crate::model::explain::EVIDENCE_SCALE_LOGIT, self.opacity),
            )),
            _ => None,
        };
        let shown = Shown {
            failed: r.error.clone(),
            composite: Self::texture(ui, format!("c{id}"), big),
            bands: r.bands.iter().enumerate().map(|(k, b)| Self::texture(ui, format!("b{id}-{k}"), b)).collect(),
            blank_bands: r.blank_bands.clone(),
            overlay,
            size: big.width.max(1),
        };
        self.shown = Some((id, self.generation, self.view, self.overlay, shown));
    }

    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.poll_relocation();
        self.save_settings_when_still(&ui.ctx().clone());
        if let Some((queue, scores, scorer)) = self.trainer.as_mut().and_then(|t| t.drain()) {
            self.reorder(queue, scores);
            if let Some(s) = scorer {
                // Maps of candidates drawn from now on come from the new model.
                self.renderer.set_scorer(s);
            }
        }
        self.drain_writes();
        self.drain();
        self.request_ahead();
        self.keys(ui);
        self.request_ahead();
        self.upload_current(ui);
        if self.project.is_read_only() {
            egui::Panel::top("read-only").show(ui, |ui| {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    format!(
                        "Read-only: {} cannot be written (file or folder permissions, or a read-only disk). \
                         You can look at everything; grades cannot be saved.",
                        self.project.path().display()
                    ),
                );
            });
        }
        egui::Panel::right("grade-side")
            .min_size(260.0)
            .show(ui, |ui| egui::ScrollArea::vertical().show(ui, |ui| self.side_ui(ui)));
        egui::Panel::bottom("grade-status").show(ui, |ui| self.status_ui(ui));
        egui::CentralPanel::default().show(ui, |ui| self.image_ui(ui));
        if self.help {
            egui::Window::new("Keys").collapsible(false).show(ui.ctx(), help_ui);
        }
        if !self.ready() && self.current().is_some() {
            ui.ctx().request_repaint();
        }
    }

    fn image_ui(&mut self, ui: &mut egui::Ui) {
        let Some(id) = self.current() else {
            ui.centered_and_justified(|ui| ui.heading("Queue finished: every candidate here is graded. Thank you!"));
            return;
        };
        let name = self.rows.get(&id).map(|r| r.name.clone()).unwrap_or_default();
        ui.horizontal(|ui| {
            ui.heading(name.as_str());
            if let Some(r) = self.rows.get(&id) {
                if let (Some(ra), Some(dec)) = (r.ra_deg, r.dec_deg) {
                    ui.label(sky_label(ra, dec));
                }
            }
        });
        let Some((_, _, _, _, shown)) = &self.shown else {
            ui.centered_and_justified(|ui| ui.spinner());
            return;
        };
        if let Some(why) = shown.failed.clone() {
            ui.add_space(40.0);
            ui.vertical_centered(|ui| {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("The picture of this candidate could not be made:\n{why}\n\nIt cannot be graded. Press the Right arrow key to skip it."),
                );
                if let Some(missing) = why.strip_prefix("file missing: ").or_else(|| why.split("file missing: ").nth(1)) {
                    self.relocate_ui(ui, missing.trim());
                }
            });
            return;
        }
        let side = ui.available_height().min(ui.available_width()) - 8.0;
        let size = Vec2::splat(side.max(64.0));
        let tex = shown.overlay.as_ref().unwrap_or(&shown.composite);
        let px = shown.size as f32;
        // The part of the image on screen: centre `pan`, width 1 / zoom (in texture units).
        if self.view_of != Some(id) {
            self.view_of = Some(id);
            self.pan = egui::pos2(0.5, 0.5);
        }
        let half = 0.5 / self.zoom;
        self.pan = egui::pos2(self.pan.x.clamp(half, 1.0 - half), self.pan.y.clamp(half, 1.0 - half));
        let uv = egui::Rect::from_center_size(self.pan, Vec2::splat(2.0 * half));
        let response = ui.add(egui::Image::new(tex).uv(uv).fit_to_exact_size(size).sense(Sense::click_and_drag()));
        let painter = ui.painter_at(response.rect);
        let to_uv = |pos: egui::Pos2| -> egui::Pos2 {
            let rel = (pos - response.rect.min) / response.rect.size();
            uv.min + rel * uv.size()
        };
        if response.hovered() {
            let scroll = ui.input(|i| i.smooth_scroll_delta.y);
            if scroll != 0.0 {
                let factor = (scroll / 200.0).exp();
                let new_zoom = (self.zoom * factor).clamp(1.0, 16.0);
                // Keep the texel under the cursor where it is.
                if let Some(pos) = response.hover_pos() {
                    let at = to_uv(pos);
                    let rel = (pos - response.rect.min) / response.rect.size();
                    let new_half = 0.5 / new_zoom;
                    self.pan = at + (Vec2::splat(0.5) - rel) * 2.0 * new_half;
                }
                self.zoom = new_zoom;
            }
        }
        if response.dragged() {
            self.pan -= response.drag_delta() / response.rect.size() * uv.size();
        }
        let hover = response.hover_pos();
        let wcs = self.current_wcs(id);
        let has_wcs = wcs.is_some();
        let cursor = hover.map(|pos| {
            let t = to_uv(pos);
            // 0-based pixel centres, as marked points are stored; FITS counts from 1.
            let (x, y) = (t.x * px - 0.5, (1.0 - t.y) * px - 0.5);
            let mut text = format!("cursor: x {:.1}  y {:.1}", x + 1.0, y + 1.0);
            if let Some((ra, dec)) = wcs.and_then(|w| w.pixel_to_sky(x as f64 + 1.0, y as f64 + 1.0)) {
                text.push_str(&format!("   {}", sky_label(ra, dec)));
            }
            text
        });
        if response.clicked() {
            if let Some(pos) = response.interact_pointer_pos() {
                let t = to_uv(pos);
                // Screen y runs down; FITS rows run up from the bottom.
                self.points.push(MarkedPoint { x: t.x * px - 0.5, y: (1.0 - t.y) * px - 0.5 });
            }
        }
        for p in &self.points {
            let t = egui::pos2((p.x + 0.5) / px, 1.0 - (p.y + 0.5) / px);
            let screen = response.rect.min + ((t - uv.min) / uv.size()) * response.rect.size();
            painter.circle_stroke(screen, 8.0, egui::Stroke::new(2.0, Color32::from_rgb(80, 220, 120)));
        }
        ui.label(cursor.unwrap_or_else(|| {
            if has_wcs {
                "cursor: point at the image for its pixel and sky position"
            } else {
                "cursor: point at the image for its pixel (no WCS: no sky position)"
            }
            .to_string()
        }));
        if self.zoom > 1.0 {
            painter.text(
                response.rect.left_bottom() + Vec2::new(6.0, -6.0),
                egui::Align2::LEFT_BOTTOM,
                format!("zoom {:.1}x (wheel, drag to pan, Z resets)", self.zoom),
                egui::FontId::proportional(13.0),
                Color32::from_gray(200),
            );
        }
    }

    /// Offers to rewrite the project's file paths when a candidate's file is missing: the data
    /// moved. The rewrite runs on a worker; the pictures are redrawn when it is done.
    fn relocate_ui(&mut self, ui: &mut egui::Ui, missing: &str) {
        ui.add_space(16.0);
        ui.strong("Did the data move? Find the files:");
        if self.relocate_from.is_empty() {
            if let Some(parent) = std::path::Path::new(missing).parent() {
                self.relocate_from = parent.display().to_string();
            }
        }
        egui::Grid::new("relocate").num_columns(2).show(ui, |ui| {
            ui.label("the project remembers the folder");
            ui.text_edit_singleline(&mut self.relocate_from);
            ui.end_row();
            ui.label("the files are now in");
            ui.add(egui::TextEdit::singleline(&mut self.relocate_to).hint_text("/new/place/of/the/folder"));
            ui.end_row();
        });
        let running = self.relocated.as_ref().is_some_and(|r| r.lock().map(|m| m.is_none()).unwrap_or(false));
        let ready = !self.relocate_to.trim().is_empty() && !self.relocate_from.trim().is_empty() && !running;
        if ui.add_enabled(ready, egui::Button::new("Relocate every candidate's files")).clicked() {
            let slot = std::sync::Arc::new(std::sync::Mutex::new(None));
            self.relocated = Some(slot.clone());
            let (project, from, to) = (
                self.project.path().to_path_buf(),
                self.relocate_from.trim().to_string(),
                self.relocate_to.trim().to_string(),
            );
            std::thread::spawn(move || {
                let outcome = Project::open_existing(&project)
                    .and_then(|mut p| p.relocate(std::path::Path::new(&from), std::path::Path::new(&to), false))
                    .map(|r| format!("relocated {} candidates; {} find their files now", r.changed, r.found))
                    .unwrap_or_else(|e| format!("relocation failed: {e}"));
                if let Ok(mut m) = slot.lock() {
                    *m = Some(outcome);
                }
            });
        }
        if running {
            ui.spinner();
            ui.ctx().request_repaint();
        }
    }

    /// Writes changed display settings into the project once they have stopped changing for half
    /// a second, on a worker thread with its own connection.
    fn save_settings_when_still(&mut self, ctx: &egui::Context) {
        let Some(when) = self.settings_changed else { return };
        if self.settings == self.saved_settings {
            self.settings_changed = None;
            return;
        }
        let still = std::time::Duration::from_millis(500);
        if when.elapsed() < still || ctx.input(|i| i.pointer.any_down()) {
            ctx.request_repaint_after(still);
            return;
        }
        self.settings_changed = None;
        self.saved_settings = self.settings;
        let (project, name) = (self.project.path().to_path_buf(), self.inspector.name.clone());
        let Ok(json) = serde_json::to_string(&self.settings) else { return };
        std::thread::spawn(move || {
            let outcome = Project::open_existing(&project).and_then(|mut p| p.set_display_settings(&name, &json));
            if let Err(e) = outcome {
                log::warn!("display settings not saved: {e}");
            }
        });
    }

    /// Takes the relocation worker's outcome, if it has finished, and redraws everything.
    fn poll_relocation(&mut self) {
        let done = self.relocated.as_ref().and_then(|r| r.lock().ok().and_then(|mut m| m.take()));
        if let Some(message) = done {
            self.relocated = None;
            self.message = Some(message);
            self.invalidate();
        }
    }

    /// The WCS stored with candidate `id`, if it has one.
    fn current_wcs(&mut self, id: i64) -> Option<&TanWcs> {
        if self.sky.as_ref().is_none_or(|(sid, _)| *sid != id) {
            let wcs = self.rows.get(&id).and_then(|r| r.wcs());
            self.sky = Some((id, wcs));
        }
        self.sky.as_ref().and_then(|(_, w)| w.as_ref())
    }

    /// How the model sees candidate `id`, worked out once per candidate.
    fn how_seen(&mut self, id: i64) -> Option<String> {
        let size = self.model_size?;
        if self.seen.as_ref().is_none_or(|(sid, _)| *sid != id) {
            let line = self
                .rows
                .get(&id)
                .and_then(|r| crate::model::how_seen(r.width, r.height, r.pixel_arcsec(), size, &r.blank_bands()));
            self.seen = Some((id, line));
        }
        self.seen.as_ref().and_then(|(_, line)| line.clone())
    }

    fn side_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Bands");
        if let Some((_, _, _, _, shown)) = &self.shown {
            // A band the files leave blank is a black square: say so above it.
            let blank = &shown.blank_bands;
            ui.horizontal_wrapped(|ui| {
                for (k, t) in shown.bands.iter().enumerate() {
                    ui.vertical(|ui| {
                        let band = crate::cutout::Band::ALL[k];
                        if blank.contains(&band) {
                            ui.label(format!("{band}: no image"))
                                .on_hover_text("No valid pixel in this band (masked, or one constant value)");
                        } else {
                            ui.label(band.to_string());
                        }
                        ui.add(egui::Image::new(t).fit_to_exact_size(Vec2::splat(100.0)));
                    });
                }
            });
        }
        ui.separator();
        ui.heading("Brightness (whole survey)");
        let before = self.settings;
        ui.add(egui::Slider::new(&mut self.settings.q, 0.5..=30.0).text("Q"));
        ui.add(egui::Slider::new(&mut self.settings.stretch, 1.0..=100.0).logarithmic(true).text("stretch"));
        ui.add(egui::Slider::new(&mut self.settings.weights[0], 0.0..=3.0).text("i (red)"));
        ui.add(egui::Slider::new(&mut self.settings.weights[1], 0.0..=3.0).text("r (green)"));
        ui.add(egui::Slider::new(&mut self.settings.weights[2], 0.0..=3.0).text("g (blue)"));
        if ui.button("Reset").clicked() {
            self.settings = DisplaySettings::default();
        }
        if self.settings != before {
            self.invalidate();
            self.settings_changed = Some(Instant::now());
        }
        ui.separator();
        ui.checkbox(&mut self.overlay, "Activation map (Space)")
            .on_hover_text("Evidence map: warm where the model sees evidence for a lens, blue where it sees evidence against (fixed scale: full colour at 0.5 logit per feature cell)");
        if self.model_size.is_none() {
            ui.small("no model: scores and maps need one");
        }
        if let Some(line) = self.current().and_then(|id| self.how_seen(id)) {
            ui.small(line);
        }
        ui.add(egui::Slider::new(&mut self.opacity, 0.0..=1.0).text("opacity"));
        ui.separator();
        if let Some(c) = &mut self.comment {
            ui.label("Comment (Enter saves, Esc drops):");
            let r = ui.text_edit_multiline(c);
            r.request_focus();
        } else if let Some(c) = &self.comment_ready {
            ui.label(format!("comment for the next grade: {c}"));
        }
        if !self.points.is_empty() {
            ui.label(format!("{} marked point(s) go with the next grade:", self.points.len()));
            let wcs = self.current().and_then(|id| self.current_wcs(id).cloned());
            for (k, p) in self.points.iter().enumerate() {
                let (x, y) = (p.x as f64 + 1.0, p.y as f64 + 1.0);
                let mut text = format!("{}: x {x:.1}  y {y:.1}", k + 1);
                if let Some((ra, dec)) = wcs.as_ref().and_then(|w| w.pixel_to_sky(x, y)) {
                    text.push_str(&format!("   {}", sky_label(ra, dec)));
                }
                ui.small(text);
            }
        }
        if let Some(t) = &mut self.trainer {
            ui.separator();
            egui::CollapsingHeader::new("Model and retraining").default_open(true).show(ui, |ui| t.ui(ui));
        }
        if self.inspector.role == Role::Researcher {
            ui.separator();
            ui.heading("Researcher");
            if let Some(id) = self.current() {
                match self.scores.get(&id) {
                    Some(s) => ui.label(format!("model score {s:.3}")),
                    None => ui.label("no model score"),
                };
                for (who, s) in self.others.get(&id).cloned().unwrap_or_default() {
                    ui.label(format!("{who}: {}", s.value()));
                }
            }
        }
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let hours = self.started.elapsed().as_secs_f64() / 3600.0;
            let rate = if hours > 0.0 { self.graded_this_session as f64 / hours } else { 0.0 };
            ui.label(format!(
                "{} / {}   ·   {} graded this session   ·   {rate:.0} per hour   ·   {} ({})",
                self.pos.min(self.queue.len()),
                self.queue.len(),
                self.graded_this_session,
                self.inspector.name,
                self.inspector.role.as_str()
            ));
            ui.label("   0 no · 1 interesting · 3 maybe · 5 sure · ? keys");
            if let Some(m) = &self.message {
                ui.colored_label(Color32::from_rgb(255, 190, 80), m);
            }
        });
    }
}

pub fn help_ui(ui: &mut egui::Ui) {
    egui::Grid::new("keys").striped(true).show(ui, |ui| {
        for (k, what) in [
            ("0", "not a lens"),
            ("1", "interesting (merger, ring galaxy...)"),
            ("3", "maybe a lens"),
            ("5", "surely a lens"),
            ("Left / Right arrow", "previous / next candidate"),
            ("Backspace", "undo the last grade"),
            ("N", "comment on this candidate"),
            ("click", "mark a point on a suspected arc"),
            ("Space", "activation map on / off"),
            ("wheel, + -", "zoom (nearest neighbour); drag to pan; Z resets"),
            ("C B L", "colour / brighter / bluer"),
            ("U G R I", "single band"),
            ("?", "this help"),
        ] {
            ui.strong(k);
            ui.label(what);
            ui.end_row();
        }
    });
}
