//! The retraining worker and its panel: after every K new labels (or on the button) a copy of
//! the current model is fine-tuned on the labels people gave, kept only if it is not worse, the
//! survey re-scored and the inspector's queue re-ordered, while grading goes on.
//!
//! The worker has its own database connection and thread; the GUI only sends commands and drains
//! events. Cancelling stops training at the next batch and stores nothing. A crash at any moment
//! loses no grade (grades are written by the GUI's own connection, each in its own transaction)
//! and no stored model (a new version is written in one transaction at the end).

use crate::active::labels::labels_from_grades;
use crate::active::retrain::{retrain, RetrainConfig, RetrainOutcome};
use crate::model::score::Scorer;
use crate::model::train::{EpochReport, TrainObserver};
use crate::project::{ModelVersionRow, Project};
use crate::queue::{build_queue, QueueOrder, TrainingRate};
use egui::Color32;
use egui_plot::{Legend, Line, Plot, PlotPoints};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

enum Command {
    /// Grades changed: count labels again.
    Poke,
    RetrainNow,
    SetAuto {
        on: bool,
        every: usize,
    },
}

/// What the worker tells the panel.
pub enum Event {
    Labels {
        count: usize,
        at_last_training: usize,
    },
    Started {
        labels: usize,
    },
    Step {
        epoch: usize,
        done: usize,
        total: usize,
        loss: f64,
    },
    Epoch(EpochReport),
    Rescoring,
    Finished(Result<RetrainOutcome, String>),
    History(Vec<ModelVersionRow>),
    /// After a kept model: the inspector's queue in the new order, the new scores, and the
    /// model itself (for activation maps).
    Reordered {
        queue: Vec<i64>,
        scores: HashMap<i64, f32>,
        scorer: Option<Arc<Scorer>>,
    },
}

/// Sends progress to the panel and stops when the cancel flag is up.
struct Reporter {
    events: Sender<Event>,
    cancel: Arc<AtomicBool>,
    epoch: usize,
    repaint: Arc<dyn Fn() + Send + Sync>,
}

impl TrainObserver for Reporter {
    fn step(&mut self, done: usize, total: usize, loss: f64) -> bool {
        let _ = self.events.send(Event::Step { epoch: self.epoch + 1, done, total, loss });
        (self.repaint)();
        !self.cancel.load(Ordering::Relaxed)
    }

    fn epoch(&mut self, report: &EpochReport) -> bool {
        self.epoch = report.epoch;
        let _ = self.events.send(Event::Epoch(report.clone()));
        (self.repaint)();
        !self.cancel.load(Ordering::Relaxed)
    }
}

/// Settings of the worker.
#[derive(Clone)]
pub struct TrainerSettings {
    pub project: PathBuf,
    pub inspector_id: i64,
    pub order: QueueOrder,
    pub auto: bool,
    /// Retrain after this many new labels.
    pub every: usize,
    pub config: RetrainConfig,
}

fn label_count(p: &Project, cfg: &RetrainConfig) -> Result<usize, String> {
    let candidates = p.candidates().map_err(|e| e.to_string())?;
    let events = p.grade_events().map_err(|e| e.to_string())?;
    Ok(labels_from_grades(&candidates, &events, &cfg.label_rule).len())
}

/// Labels the last stored retraining used (its metrics keep their ids).
fn labels_at_last_training(history: &[ModelVersionRow]) -> Option<usize> {
    history.iter().rev().find_map(|v| v.metrics.get("label_ids").and_then(|l| l.as_array()).map(|a| a.len()))
}

fn worker(
    settings: TrainerSettings,
    commands: Receiver<Command>,
    events: Sender<Event>,
    cancel: Arc<AtomicBool>,
    repaint: Arc<dyn Fn() + Send + Sync>,
) {
    let send = |e: Event| {
        let _ = events.send(e);
        repaint();
    };
    let mut project = match Project::open_existing(&settings.project) {
        Ok(p) => p,
        Err(e) => {
            send(Event::Finished(Err(format!("the retraining worker cannot open the project: {e}"))));
            return;
        }
    };
    let (mut auto, mut every) = (settings.auto, settings.every.max(1));
    let history = project.model_history().unwrap_or_default();
    let mut count = label_count(&project, &settings.config).unwrap_or(0);
    let mut baseline = labels_at_last_training(&history).unwrap_or(count);
    send(Event::History(history));
    send(Event::Labels { count, at_last_training: baseline });
    loop {
        let mut poked = false;
        let mut now = false;
        match commands.recv_timeout(Duration::from_secs(5)) {
            Ok(c) => {
                let mut handle = |c: Command| match c {
                    Command::Poke => poked = true,
                    Command::RetrainNow => now = true,
                    Command::SetAuto { on, every: k } => {
                        auto = on;
                        every = k.max(1);
                        poked = true;
                    }
                };
                handle(c);
                // Coalesce a burst of pokes into one count.
                while let Ok(c) = commands.try_recv() {
                    handle(c);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if poked || now {
            if let Ok(c) = label_count(&project, &settings.config) {
                count = c;
                send(Event::Labels { count, at_last_training: baseline });
            }
        }
        if !(now || (auto && count >= baseline + every)) {
            continue;
        }
        cancel.store(false, Ordering::Relaxed);
        send(Event::Started { labels: count });
        let result = Scorer::current_for(&project).map_err(|e| e.to_string()).and_then(|base| {
            let mut cfg = settings.config.clone();
            cfg.train.arch = base.card.arch;
            let mut reporter =
                Reporter { events: events.clone(), cancel: cancel.clone(), epoch: 0, repaint: repaint.clone() };
            retrain(&mut project, &base, &cfg, &mut reporter).map_err(|e| e.to_string())
        });
        // Whatever happened, do not start again before K more labels.
        baseline = count;
        if let Ok(o) = &result {
            if o.kept {
                send(Event::Rescoring);
                if let Ok(queue) =
                    build_queue(&project, settings.inspector_id, settings.order.clone(), TrainingRate::default())
                {
                    let scores = project.latest_predictions().map(|p| p.1).unwrap_or_default();
                    let scorer = Scorer::current_for(&project).ok().map(Arc::new);
                    send(Event::Reordered { queue, scores, scorer });
                }
            }
        }
        send(Event::Finished(result));
        send(Event::History(project.model_history().unwrap_or_default()));
        send(Event::Labels { count, at_last_training: baseline });
    }
}

/// What a kept model changes for the grade view: queue, scores, the model.
pub type Reordered = (Vec<i64>, HashMap<i64, f32>, Option<Arc<Scorer>>);

/// The panel's view of the worker.
pub struct TrainingPanel {
    commands: Sender<Command>,
    events: Receiver<Event>,
    cancel: Arc<AtomicBool>,
    pub auto: bool,
    pub every: usize,
    pub running: bool,
    pub labels: usize,
    pub labels_at_last: usize,
    pub progress: f32,
    pub status: String,
    /// (step number, loss) of the running or last job.
    pub losses: Vec<[f64; 2]>,
    pub val_losses: Vec<[f64; 2]>,
    pub history: Vec<ModelVersionRow>,
    pub last: Option<Result<RetrainOutcome, String>>,
    steps_before_epoch: usize,
    epochs: usize,
}

impl TrainingPanel {
    pub fn start(settings: TrainerSettings, repaint: Arc<dyn Fn() + Send + Sync>) -> TrainingPanel {
        let (ctx, crx) = channel();
        let (etx, erx) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let (auto, every, epochs) = (settings.auto, settings.every, settings.config.train.epochs);
        let c2 = cancel.clone();
        std::thread::Builder::new()
            .name("retraining".into())
            .spawn(move || worker(settings, crx, etx, c2, repaint))
            .expect("spawning the retraining thread");
        TrainingPanel {
            commands: ctx,
            events: erx,
            cancel,
            auto,
            every,
            running: false,
            labels: 0,
            labels_at_last: 0,
            progress: 0.0,
            status: "model: idle".into(),
            losses: Vec::new(),
            val_losses: Vec::new(),
            history: Vec::new(),
            last: None,
            steps_before_epoch: 0,
            epochs,
        }
    }

    /// Grades changed (the worker recounts labels on its own thread).
    pub fn poke(&self) {
        let _ = self.commands.send(Command::Poke);
    }

    pub fn retrain_now(&self) {
        let _ = self.commands.send(Command::RetrainNow);
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Takes the worker's events (never waits). Returns the new queue, scores and model after a
    /// kept model.
    pub fn drain(&mut self) -> Option<Reordered> {
        let mut reordered = None;
        while let Ok(e) = self.events.try_recv() {
            match e {
                Event::Labels { count, at_last_training } => {
                    self.labels = count;
                    self.labels_at_last = at_last_training;
                }
                Event::Started { labels } => {
                    self.running = true;
                    self.losses.clear();
                    self.val_losses.clear();
                    self.steps_before_epoch = 0;
                    self.progress = 0.0;
                    self.status = format!("retraining on {labels} labels");
                }
                Event::Step { epoch, done, total, loss } => {
                    let step = self.steps_before_epoch + done;
                    self.losses.push([step as f64, loss]);
                    let epochs = self.epochs.max(1) as f32;
                    self.progress = ((epoch - 1) as f32 + done as f32 / total.max(1) as f32) / epochs;
                    self.status = format!("retraining: epoch {epoch}, batch {done}/{total}, loss {loss:.3}");
                    if done == total {
                        self.steps_before_epoch += total;
                    }
                }
                Event::Epoch(r) => {
                    self.val_losses.push([self.steps_before_epoch as f64, r.val_loss]);
                    self.status =
                        format!("epoch {}: validation loss {:.3}, AUROC {:.3}", r.epoch, r.val_loss, r.val_auroc);
                }
                Event::Rescoring => self.status = "re-ordering the queue by the new scores".into(),
                Event::Finished(r) => {
                    self.running = false;
                    self.progress = 1.0;
                    self.status = match &r {
                        Ok(o) if o.cancelled => "cancelled: the current model and the database are unchanged".into(),
                        Ok(o) if o.kept => format!(
                            "version {} kept: validation AUROC {:.3} -> {:.3}; queue re-ordered",
                            o.model_version, o.old.auroc, o.new.auroc
                        ),
                        Ok(o) => format!(
                            "version {} not kept (not better: AUROC {:.3} -> {:.3}, loss {:.3} -> {:.3})",
                            o.model_version, o.old.auroc, o.new.auroc, o.old.loss, o.new.loss
                        ),
                        Err(e) => format!("not retrained: {e}"),
                    };
                    self.last = Some(r);
                }
                Event::History(h) => self.history = h,
                Event::Reordered { queue, scores, scorer } => reordered = Some((queue, scores, scorer)),
            }
        }
        reordered
    }

    pub fn ui(&mut self, ui: &mut egui::Ui) {
        ui.label(format!(
            "{} labels ({} new since the last training)",
            self.labels,
            self.labels.saturating_sub(self.labels_at_last)
        ));
        let before = (self.auto, self.every);
        ui.horizontal(|ui| {
            ui.checkbox(&mut self.auto, "retrain");
            let every = ui.label("every");
            ui.add(egui::DragValue::new(&mut self.every).range(5..=1000)).labelled_by(every.id);
            ui.label("new labels");
        });
        if before != (self.auto, self.every) {
            let _ = self.commands.send(Command::SetAuto { on: self.auto, every: self.every });
        }
        ui.horizontal(|ui| {
            if ui.add_enabled(!self.running, egui::Button::new("Retrain now")).clicked() {
                self.retrain_now();
            }
            if ui.add_enabled(self.running, egui::Button::new("Cancel")).clicked() {
                self.cancel();
            }
        });
        if self.running {
            ui.add(egui::ProgressBar::new(self.progress.clamp(0.0, 1.0)).show_percentage());
        }
        let colour = match &self.last {
            Some(Err(_)) => Color32::from_rgb(255, 170, 90),
            _ => ui.visuals().text_color(),
        };
        ui.colored_label(colour, &self.status);
        if !self.losses.is_empty() {
            Plot::new("loss-curve")
                .height(110.0)
                .legend(Legend::default())
                .x_axis_label("batch")
                .allow_scroll(false)
                .show(ui, |plot| {
                    plot.line(Line::new("training loss", PlotPoints::from(self.losses.clone())));
                    if !self.val_losses.is_empty() {
                        plot.line(Line::new("validation loss", PlotPoints::from(self.val_losses.clone())).width(2.5));
                    }
                });
        }
        if !self.history.is_empty() {
            ui.label("Model history");
            egui::Grid::new("model-history").striped(true).num_columns(4).show(ui, |ui| {
                ui.strong("version");
                ui.strong("labels");
                ui.strong("val AUROC");
                ui.strong("");
                ui.end_row();
                for v in self.history.iter().rev().take(8) {
                    ui.label(format!("{} {}", v.id, v.name));
                    let labels = v.metrics.get("label_ids").and_then(|l| l.as_array()).map(|a| a.len());
                    ui.label(labels.map(|l| l.to_string()).unwrap_or_else(|| "-".into()));
                    let auroc = v.metrics.pointer("/new/auroc").and_then(|a| a.as_f64());
                    ui.label(auroc.map(|a| format!("{a:.3}")).unwrap_or_else(|| "-".into()));
                    let kept = v.metrics.get("kept").and_then(|k| k.as_bool());
                    ui.label(match (v.is_current, kept) {
                        (true, _) => "current",
                        (false, Some(false)) => "rejected",
                        _ => "",
                    });
                    ui.end_row();
                }
            });
        }
    }
}
