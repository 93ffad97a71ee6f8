//! The desktop app (eframe/egui): start screen, grade view, review view. The only module that
//! knows about egui; everything it shows comes from the core library, and everything slow
//! (rendering, activation maps, making the demo) runs on workers (see [`jobs`]).

pub mod dashboard;
pub mod grade;
pub mod jobs;
pub mod review;
pub mod training;
pub mod writer;

use crate::active::retrain::RetrainConfig;
use crate::active::strategies::Strategy;
use crate::model::score::Scorer;
use crate::project::{Project, Role};
use crate::queue::{build_queue, QueueOrder, TrainingRate};
use egui::Color32;
use grade::GradeView;
use jobs::{Job, Renderer};
use review::ReviewView;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use training::{TrainerSettings, TrainingPanel};

/// Where the recent projects list is kept.
fn recent_file() -> PathBuf {
    crate::demo::home_dir().join("recent.json")
}

fn load_recent() -> Vec<PathBuf> {
    std::fs::read(recent_file()).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

fn remember(path: &Path) {
    let mut list = load_recent();
    list.retain(|p| p != path);
    list.insert(0, path.to_path_buf());
    list.truncate(8);
    let _ = std::fs::create_dir_all(crate::demo::home_dir());
    let _ = std::fs::write(recent_file(), serde_json::to_vec(&list).unwrap_or_default());
}

/// The start screen's choices.
pub struct Start {
    pub project: PathBuf,
    pub name: String,
    pub role: Role,
    pub order: QueueOrder,
    /// Retrain the model in the background after every 25 new labels.
    pub auto_retrain: bool,
    pub recent: Vec<PathBuf>,
    pub error: Option<String>,
}

enum Screen {
    Start(Start),
    Preparing { job: Job<Result<(), String>>, message: String, fraction: f32, then: Start },
    Grade(Box<GradeView>),
    Review(Box<ReviewView>, Box<Option<GradeView>>),
}

pub struct LensApp {
    screen: Screen,
    repaint: Arc<dyn Fn() + Send + Sync>,
}

impl LensApp {
    /// The app on `project`, or on the demo project (made on first start).
    pub fn new(ctx: &egui::Context, project: Option<PathBuf>) -> LensApp {
        let ctx2 = ctx.clone();
        let repaint: Arc<dyn Fn() + Send + Sync> = Arc::new(move || ctx2.request_repaint());
        let path = project.unwrap_or_else(crate::demo::demo_path);
        let start = Start {
            project: path.clone(),
            name: std::env::var("USER").unwrap_or_else(|_| "inspector".into()),
            role: Role::Volunteer,
            order: QueueOrder::ModelScore,
            auto_retrain: true,
            recent: load_recent(),
            error: None,
        };
        let screen = if !path.exists() && path == crate::demo::demo_path() {
            let target = path.clone();
            let job = Job::spawn(repaint.clone(), move |progress| {
                crate::demo::make_demo(&target, crate::demo::DemoSpec::default(), progress)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
            Screen::Preparing { job, message: "making the demo project".into(), fraction: 0.0, then: start }
        } else {
            Screen::Start(start)
        };
        LensApp { screen, repaint }
    }

    /// Opens the grade view for the start screen's choices.
    pub fn open_grading(start: &Start, repaint: Arc<dyn Fn() + Send + Sync>) -> Result<GradeView, String> {
        let mut project = Project::open_existing(&start.project).map_err(|e| e.to_string())?;
        let name = start.name.trim();
        if name.is_empty() {
            return Err("enter your name first".into());
        }
        let inspector = project.sign_in(name, start.role).map_err(|e| e.to_string())?;
        let order = match &start.order {
            QueueOrder::Random(_) => QueueOrder::Random(inspector.id as u64),
            o => o.clone(),
        };
        let queue =
            build_queue(&project, inspector.id, order.clone(), TrainingRate::default()).map_err(|e| e.to_string())?;
        let scale = project.flux_scale().map_err(|e| e.to_string())?;
        let scorer = Scorer::current_for(&project).ok().map(Arc::new);
        let model_size = scorer.as_ref().map(|s| s.card.input_size);
        let workers = std::thread::available_parallelism().map(|n| n.get().clamp(1, 3)).unwrap_or(2);
        let renderer = Renderer::start(start.project.clone(), scale, scorer, repaint.clone(), workers);
        let repaint_for_writer = repaint.clone();
        let trainer = TrainingPanel::start(
            TrainerSettings {
                project: start.project.clone(),
                inspector_id: inspector.id,
                order,
                auto: start.auto_retrain,
                every: 25,
                config: RetrainConfig::default(),
            },
            repaint,
        );
        let writer = writer::GradeWriter::start(start.project.clone(), repaint_for_writer);
        remember(&start.project);
        Ok(GradeView::new(project, inspector, queue, renderer, model_size)?.with_trainer(trainer).with_writer(writer))
    }

    /// The review view of a project, with its own render workers for thumbnails and pages.
    pub fn open_review(project: &Project, repaint: Arc<dyn Fn() + Send + Sync>) -> ReviewView {
        let view = ReviewView::load(project);
        match project.flux_scale() {
            Ok(scale) => {
                let scorer = Scorer::current_for(project).ok().map(Arc::new);
                let renderer = Renderer::start(project.path().to_path_buf(), scale, scorer, repaint, 2);
                view.with_renderer(renderer)
            }
            Err(_) => view,
        }
    }

    /// Leaves the start screen for grading or review as `d` (shows the error on the start screen
    /// if that fails).
    pub fn go_direct(&mut self, d: Direct) {
        let Screen::Start(start) = &mut self.screen else { return };
        start.name = d.name;
        start.role = d.role;
        if d.review && d.role == Role::Researcher {
            match Project::open_existing(&start.project)
                .and_then(|mut p| p.sign_in(&start.name, Role::Researcher).map(|_| p))
            {
                Ok(p) => {
                    let grade = Self::open_grading(start, self.repaint.clone()).ok();
                    let mut review = Self::open_review(&p, self.repaint.clone());
                    review.mode = d.tab;
                    self.screen = Screen::Review(Box::new(review), Box::new(grade));
                }
                Err(e) => start.error = Some(e.to_string()),
            }
            return;
        }
        match Self::open_grading(start, self.repaint.clone()) {
            Ok(v) => self.screen = Screen::Grade(Box::new(v)),
            Err(e) => start.error = Some(e),
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let repaint = self.repaint.clone();
        let mut next: Option<Screen> = None;
        match &mut self.screen {
            Screen::Preparing { job, message, fraction, then } => {
                while let Ok((m, f)) = job.progress.try_recv() {
                    *message = m;
                    *fraction = f;
                }
                if let Ok(result) = job.done.try_recv() {
                    let mut start = Start {
                        project: then.project.clone(),
                        name: then.name.clone(),
                        role: then.role,
                        order: then.order.clone(),
                        auto_retrain: then.auto_retrain,
                        recent: then.recent.clone(),
                        error: None,
                    };
                    if let Err(e) = result {
                        start.error = Some(format!("the demo project could not be made: {e}"));
                    }
                    next = Some(Screen::Start(start));
                }
                egui::CentralPanel::default().show(ui, |ui| {
                    ui.vertical_centered(|ui| {
                        ui.add_space(120.0);
                        ui.heading("lens-inspect");
                        ui.label(
                            "First start: simulating a KiDS-like demo survey and scoring it with the shipped model.",
                        );
                        ui.add(egui::ProgressBar::new(*fraction).show_percentage().text(message.as_str()));
                    });
                });
            }
            Screen::Start(start) => {
                let mut go: Option<bool> = None;
                egui::CentralPanel::default().show(ui, |ui| {
                    ui.vertical_centered(|ui| {
                        ui.add_space(60.0);
                        ui.heading("lens-inspect");
                        ui.label("Grade candidate strong gravitational lenses.");
                        ui.add_space(20.0);
                    });
                    egui::Grid::new("start").num_columns(2).spacing([12.0, 10.0]).show(ui, |ui| {
                        ui.label("Project");
                        ui.label(start.project.display().to_string());
                        ui.end_row();
                        ui.label("Your name");
                        ui.text_edit_singleline(&mut start.name);
                        ui.end_row();
                        ui.label("Role");
                        ui.horizontal(|ui| {
                            ui.radio_value(&mut start.role, Role::Volunteer, "volunteer");
                            ui.radio_value(&mut start.role, Role::Researcher, "researcher (sees scores, reviews)");
                        });
                        ui.end_row();
                        ui.label("Order");
                        order_choice(ui, &mut start.order);
                        ui.end_row();
                        ui.label("Model");
                        ui.checkbox(&mut start.auto_retrain, "retrain on your labels in the background (every 25)");
                        ui.end_row();
                    });
                    ui.add_space(10.0);
                    ui.horizontal(|ui| {
                        if ui.button("Start grading").clicked() {
                            go = Some(false);
                        }
                        if start.role == Role::Researcher && ui.button("Review").clicked() {
                            go = Some(true);
                        }
                    });
                    if let Some(e) = &start.error {
                        ui.colored_label(Color32::from_rgb(255, 120, 100), e);
                    }
                    if !start.recent.is_empty() {
                        ui.add_space(16.0);
                        ui.label("Recent projects:");
                        let recent = start.recent.clone();
                        for p in recent {
                            if ui.link(p.display().to_string()).clicked() {
                                start.project = p;
                            }
                        }
                    }
                });
                if ui.input(|i| i.key_pressed(egui::Key::Enter)) && go.is_none() {
                    go = Some(false);
                }
                match go {
                    Some(false) => match Self::open_grading(start, repaint) {
                        Ok(v) => next = Some(Screen::Grade(Box::new(v))),
                        Err(e) => start.error = Some(e),
                    },
                    Some(true) => match Project::open_existing(&start.project)
                        .and_then(|mut p| p.sign_in(start.name.trim(), Role::Researcher).map(|_| p))
                    {
                        Ok(p) => next = Some(Screen::Review(Box::new(Self::open_review(&p, repaint)), Box::new(None))),
                        Err(e) => start.error = Some(e.to_string()),
                    },
                    None => {}
                }
            }
            Screen::Grade(view) => {
                let mut to_review = false;
                if view.inspector.role == Role::Researcher {
                    egui::Panel::top("nav").show(ui, |ui| {
                        ui.horizontal(|ui| {
                            ui.strong("Grade");
                            if ui.selectable_label(false, "Review").clicked() {
                                to_review = true;
                            }
                        });
                    });
                }
                view.ui(ui);
                if to_review {
                    let review = Self::open_review(&view.project, repaint.clone());
                    if let Screen::Grade(v) = std::mem::replace(&mut self.screen, Screen::Start(placeholder_start())) {
                        self.screen = Screen::Review(Box::new(review), Box::new(Some(*v)));
                    }
                    return;
                }
            }
            Screen::Review(review, back) => {
                let mut to_grade = false;
                egui::Panel::top("nav").show(ui, |ui| {
                    ui.horizontal(|ui| {
                        if back.is_some() && ui.selectable_label(false, "Grade").clicked() {
                            to_grade = true;
                        }
                        ui.strong("Review");
                    });
                });
                egui::CentralPanel::default().show(ui, |ui| review.ui(ui));
                if to_grade {
                    if let Some(v) = back.take() {
                        next = Some(Screen::Grade(Box::new(v)));
                    }
                }
            }
        }
        if let Some(s) = next {
            self.screen = s;
        }
    }
}

/// The queue orders an inspector can pick.
fn order_choice(ui: &mut egui::Ui, order: &mut QueueOrder) {
    let choices = [
        (QueueOrder::ModelScore, "highest model score first"),
        (QueueOrder::Random(0), "random"),
        (QueueOrder::Strategy(Strategy::default_mixture()), "mixture: 70% top score, 20% uncertain, 10% random"),
        (QueueOrder::Strategy(Strategy::Entropy), "most uncertain first (active learning)"),
    ];
    let label = |o: &QueueOrder| match o {
        QueueOrder::Random(_) => "random",
        o => choices.iter().find(|(c, _)| c == o).map(|c| c.1).unwrap_or("custom"),
    };
    egui::ComboBox::from_id_salt("queue-order").selected_text(label(order)).width(340.0).show_ui(ui, |ui| {
        for (c, name) in &choices {
            let selected = match (&*order, c) {
                (QueueOrder::Random(_), QueueOrder::Random(_)) => true,
                (a, b) => a == b,
            };
            if ui.selectable_label(selected, *name).clicked() {
                *order = c.clone();
            }
        }
    });
}

fn placeholder_start() -> Start {
    Start {
        project: PathBuf::new(),
        name: String::new(),
        role: Role::Volunteer,
        order: QueueOrder::ModelScore,
        auto_retrain: true,
        recent: vec![],
        error: None,
    }
}

struct EframeApp(LensApp);

impl eframe::App for EframeApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.0.ui(ui);
    }
}

/// Skip the start screen: grade (or review) as this inspector.
pub struct Direct {
    pub name: String,
    pub role: Role,
    pub review: bool,
    /// The review tab to open on.
    pub tab: review::Mode,
}

/// Opens the window. Blocks until it is closed.
pub fn run(project: Option<PathBuf>) -> anyhow::Result<()> {
    run_with(project, None)
}

/// Opens the window, optionally straight into grading or review.
pub fn run_with(project: Option<PathBuf>, direct: Option<Direct>) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_inner_size([1280.0, 820.0]).with_title("lens-inspect"),
        ..Default::default()
    };
    eframe::run_native(
        "lens-inspect",
        options,
        Box::new(move |cc| {
            let mut app = LensApp::new(&cc.egui_ctx, project);
            if let Some(d) = direct {
                app.go_direct(d);
            }
            Ok(Box::new(EframeApp(app)))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
