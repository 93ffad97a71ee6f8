//! The model commands of the CLI (train, score, evaluate): argument handling and printing over
//! the library's `model` module.

use anyhow::{bail, Context, Result};
use lens_inspect::model::checkpoint::{self, ModelCard};
use lens_inspect::model::data::Dataset;
use lens_inspect::model::metrics::{challenge_metrics, roc_curve};
use lens_inspect::model::score::{score_project, Scorer};
use lens_inspect::model::stream::SimStream;
use lens_inspect::model::train::{train_from, EpochReport, Resume, Teacher, TrainConfig, TrainObserver, TrainSource};
use lens_inspect::model::{load_labelled, load_labelled_at, load_unlabelled_at, shipped_model_path};
use lens_inspect::project::{Project, Role};
use lens_inspect::sim::{LookMix, MixedSimulator, SimConfig};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub struct TrainArgs {
    pub data: Option<PathBuf>,
    pub truth: Option<PathBuf>,
    pub val_data: Option<PathBuf>,
    pub val_fraction: f64,
    pub out: PathBuf,
    pub init: Option<PathBuf>,
    pub config: TrainConfig,
    pub command_line: Vec<String>,
    pub note: Option<String>,
    /// Train on fresh simulations (`train --simulate`).
    pub stream: Option<StreamArgs>,
    /// Continue from OUT's resume file.
    pub resume: bool,
    /// Compress input values beyond this many robust sigmas (0: the hard clip alone); recorded
    /// in the card, so scoring, maps and retraining use the same. `None`: the continued model's
    /// (--init, or the resume file), else 0.
    pub knee_sigma: Option<f32>,
    /// How the folders are read: a pixel scale over their headers', blank bands kept or not.
    pub folder: lens_inspect::model::FolderOptions,
    /// Print the outcome as one JSON object on stdout (the training log stays on stderr).
    pub json: bool,
    /// Learn (partly) from a model's view-averaged scores instead of the labels.
    pub teacher: Option<TeacherArgs>,
    /// DATA has no truth: the teacher labels it.
    pub unlabelled: bool,
    /// With `unlabelled`: train on only the K cutouts the teacher ranks highest, and this many
    /// others drawn at random (with `from_project`: the K the project's scores rank highest).
    pub top: Option<(usize, usize)>,
    /// DATA is a project file (with `unlabelled`): its survey candidates are the data.
    pub from_project: bool,
}

/// `train --teacher`: which model teaches, over how many views, and how much of each target.
pub struct TeacherArgs {
    pub path: PathBuf,
    pub views: usize,
    pub weight: f64,
}

pub struct StreamArgs {
    pub look: LookMix,
    pub data_share: f64,
    pub val_n: usize,
    pub workers: usize,
    /// Look-alike kinds drawn more often in training batches (not in validation).
    pub boost: Vec<(lens_inspect::sim::Kind, f64)>,
}

/// Prints each epoch as a line and keeps a progress bar over the batches; after each epoch
/// saves the best model to OUT and the current weights to OUT's resume file.
struct Printer<'a> {
    bar: indicatif::ProgressBar,
    epoch: usize,
    saver: Option<Saver<'a>>,
}

/// What the printer needs to write model files during training.
struct Saver<'a> {
    out: &'a Path,
    card: ModelCard,
    history: Vec<EpochReport>,
    /// Where the simulation stream stood before this run's first epoch (0 without a stream).
    stream_start: u64,
    /// Stream items one epoch takes.
    items_per_epoch: u64,
    epochs_done_before: usize,
    best_val_loss: Option<f64>,
    error: Option<String>,
}

impl Saver<'_> {
    fn save(&mut self, net: &lens_inspect::model::net::LensNet, r: &EpochReport) -> Result<()> {
        self.history.push(r.clone());
        let mut card = self.card.clone();
        let stream_position = self.stream_start + (r.epoch - self.epochs_done_before) as u64 * self.items_per_epoch;
        if r.best {
            self.best_val_loss = Some(r.val_loss);
            card.provenance["best_epoch"] = serde_json::json!(r.epoch);
            card.provenance["history"] = serde_json::json!(self.history);
            card.metrics = serde_json::json!({"val_loss": r.val_loss, "val_auroc": r.val_auroc});
            checkpoint::save(self.out, net, &card)?;
        }
        let mut resume_card = card.clone();
        resume_card.provenance["history"] = serde_json::json!(self.history);
        resume_card.provenance["resume"] = serde_json::json!({
            "epochs_done": r.epoch,
            "best_val_loss": self.best_val_loss,
            "stream_position": stream_position,
        });
        checkpoint::save(&resume_path(self.out), net, &resume_card)?;
        Ok(())
    }
}

/// Where a training run keeps the weights to continue from.
pub fn resume_path(out: &Path) -> PathBuf {
    out.with_extension("resume.lensmodel")
}

impl TrainObserver for Printer<'_> {
    fn step(&mut self, done: usize, total: usize, loss: f64) -> bool {
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
        self.bar.set_message(format!("epoch {} loss {loss:.4}", self.epoch + 1));
        true
    }

    fn epoch(&mut self, r: &EpochReport) -> bool {
        self.epoch = r.epoch;
        let line = format!(
            "epoch {:>3}  train loss {:.4}  val loss {:.4}  val AUROC {:.4}  {:.0} s{}",
            r.epoch,
            r.train_loss,
            r.val_loss,
            r.val_auroc,
            r.seconds,
            if r.best { "  (best, kept)" } else { "" }
        );
        // Printed whether or not the bar is visible (logs of long runs need the epochs).
        self.bar.suspend(|| eprintln!("{line}"));
        // A run whose model cannot be saved stops rather than train for nothing.
        self.saver.as_ref().is_none_or(|s| s.error.is_none())
    }

    fn weights(&mut self, current: &lens_inspect::model::net::LensNet, r: &EpochReport) {
        if let Some(saver) = &mut self.saver {
            if let Err(e) = saver.save(current, r) {
                self.bar.suspend(|| {
                    eprintln!("error: saving the model: {}", lens_inspect::error_text::one_line(e.as_ref()))
                });
                saver.error = Some(lens_inspect::error_text::one_line(e.as_ref()));
            }
        }
    }
}

/// Reads `train --teacher`'s model and checks that it reads pixels as the student will: the
/// same preprocessing and, where the student's size is known (`size` > 0), the same input size.
fn load_teacher(t: &TeacherArgs, clip: lens_inspect::cutout::Normalisation, size: usize) -> Result<(Teacher, usize)> {
    if !(1..=8).contains(&t.views) {
        bail!("--teacher-views must be 1 - 8 (symmetries of the square), not {}", t.views);
    }
    if !(0.0..=1.0).contains(&t.weight) {
        bail!("--teacher-weight must be between 0 and 1, not {}", t.weight);
    }
    let (nets, card) = checkpoint::load_members(&t.path, &burn::tensor::Device::flex())
        .with_context(|| format!("reading the teacher {}", t.path.display()))?;
    if card.normalisation() != clip {
        bail!(
            "the teacher {} normalises its input differently (clip {} sigma, knee {}) from this run (clip {}, knee {}); give the same --knee-sigma",
            t.path.display(),
            card.clip_sigma,
            card.knee_sigma,
            clip.clip_sigma,
            clip.knee_sigma
        );
    }
    if size != 0 && card.input_size != size {
        bail!(
            "the teacher {} takes {} x {0}-pixel cutouts, this run trains on {size} x {size}",
            t.path.display(),
            card.input_size
        );
    }
    eprintln!(
        "teacher: {} ({} member(s), {} view(s)), {:.0} % of each training target",
        t.path.display(),
        nets.len(),
        t.views,
        100.0 * t.weight
    );
    Ok((Teacher::new(nets, t.views, t.weight), card.input_size))
}

pub fn train(args: TrainArgs) -> Result<ExitCode> {
    let TrainArgs {
        data,
        truth,
        val_data,
        val_fraction,
        out,
        init,
        mut config,
        command_line,
        note,
        stream,
        resume,
        knee_sigma,
        folder,
        json: args_json,
        teacher: teacher_args,
        unlabelled,
        top,
        from_project,
    } = args;
    if unlabelled && teacher_args.as_ref().is_none_or(|t| t.weight < 1.0) {
        bail!(
            "--unlabelled needs --teacher with --teacher-weight 1: without labels, every target must be the teacher's"
        );
    }
    if config.batch == 0 || config.epochs == 0 {
        bail!("--batch and --epochs must be at least 1");
    }
    if !(config.lr > 0.0 && config.lr.is_finite()) {
        bail!("--lr must be a positive number");
    }
    let device = burn::tensor::Device::flex();
    let mut resume_state = None;
    let mut history: Vec<EpochReport> = Vec::new();
    // The simulation stream continues where the resumed run's stream stopped.
    let mut stream_start = 0u64;
    // A run that continues a model keeps its input size (folders of other sizes are fitted to
    // it) and, unless told otherwise, its preprocessing.
    let mut model_size = 0;
    let mut continued_knee = None;
    if resume {
        let path = resume_path(&out);
        let (net, card) = checkpoint::load(&path, &device)
            .with_context(|| format!("--resume needs the resume file {} that training writes", path.display()))?;
        let state = &card.provenance["resume"];
        let epochs_done = state["epochs_done"].as_u64().context("the resume file has no epoch count")? as usize;
        if epochs_done >= config.epochs {
            bail!(
                "{} already holds {epochs_done} epochs of --epochs {}: nothing left to do",
                path.display(),
                config.epochs
            );
        }
        config.arch = card.arch;
        model_size = card.input_size;
        continued_knee = Some(card.knee_sigma);
        history = serde_json::from_value(card.provenance["history"].clone()).unwrap_or_default();
        stream_start = state["stream_position"].as_u64().unwrap_or(0);
        eprintln!("resuming {} after epoch {epochs_done}", path.display());
        resume_state = Some(Resume { net, epochs_done, best_val_loss: state["best_val_loss"].as_f64() });
    } else if let Some(p) = &init {
        let (net, card) = checkpoint::load(p, &device)?;
        config.arch = card.arch;
        model_size = card.input_size;
        continued_knee = Some(card.knee_sigma);
        resume_state = Some(Resume { net, epochs_done: 0, best_val_loss: None });
    }
    let clip = lens_inspect::cutout::Normalisation {
        clip_sigma: lens_inspect::cutout::DEFAULT_CLIP_SIGMA,
        knee_sigma: knee_sigma.or(continued_knee).unwrap_or(0.0),
    };
    // Folders mixed into simulations take the simulator's size.
    if stream.is_some() && model_size == 0 {
        model_size = SimConfig::default().size;
    }
    let mut teacher = match &teacher_args {
        Some(t) => {
            let size = if stream.is_some() { SimConfig::default().size } else { model_size };
            let (teacher, teacher_size) = load_teacher(t, clip, size)?;
            // A new model taught from folders takes its teacher's size, so both see the same pixels.
            if model_size == 0 {
                model_size = teacher_size;
            }
            Some(teacher)
        }
        None => None,
    };
    // The targets were the teacher's as much as the labels': every card must say whose.
    let teacher_provenance = teacher_args.as_ref().map(|t| {
        serde_json::json!({
            "model": t.path.display().to_string(),
            "views": t.views,
            "weight": t.weight,
            "members": teacher.as_ref().map_or(0, |t| t.nets.len()),
        })
    });
    // `--top`'s random others follow the run's seed.
    let selection_seed = config.seed;
    // A folder as training reads it: with its truth, or (DATA under --unlabelled) without any.
    let read = |dir: &Path, truth: Option<&Path>, labelled: bool| -> Result<Dataset> {
        eprintln!("reading {} ...", dir.display());
        let (d, problems, adapted) = match labelled {
            true => load_labelled_at(dir, truth, clip, model_size, &folder)?,
            false => load_unlabelled_at(dir, clip, model_size, &folder)?,
        };
        report_problems(&problems);
        if d.is_empty() {
            bail!("no cutout of {} could be read for training", dir.display());
        }
        if let Some(line) = adapted.describe(d.size) {
            eprintln!("{line}");
        }
        Ok(d)
    };
    let load = |dir: &Path, truth: Option<&Path>| read(dir, truth, true);
    // A project's survey candidates, all or (with `top`) the ones its latest scores rank highest
    // and a random sample of the rest: only those are read.
    let read_project = |path: &Path| -> Result<Dataset> {
        eprintln!("reading {} ...", path.display());
        let project = lens_inspect::project::Project::open_read_only(path)?;
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(selection_seed);
        let s = lens_inspect::model::project_data::load_project_selection(&project, top, clip, model_size, &mut rng)?;
        report_problems(&s.problems);
        match s.top {
            Some((k, lowest)) => {
                eprintln!(
                    "chose the {k} of {} survey candidates the project's latest scores ({}) rank highest (P >= {lowest:.4}){}",
                    s.candidates,
                    s.scored_by.as_deref().unwrap_or("-"),
                    drawn_at_random(s.others)
                );
            }
            None => eprintln!("chose all {} survey candidates", s.candidates),
        }
        if s.data.is_empty() {
            bail!("no chosen candidate of {} could be read", path.display());
        }
        if let Some(line) = s.adapted.describe(s.data.size) {
            eprintln!("{line}");
        }
        Ok(s.data)
    };
    // DATA itself: read with its truth, or without any and labelled by the teacher.
    let mut load_data = |dir: &Path, truth: Option<&Path>| -> Result<Dataset> {
        let Some(t) = teacher.as_mut().filter(|_| unlabelled) else { return load(dir, truth) };
        let mut d = match from_project {
            true => read_project(dir)?,
            false => read(dir, None, false)?,
        };
        t.label(&mut d, 64);
        let called = |d: &Dataset| d.labels.iter().filter(|&&p| p >= 0.5).count();
        eprintln!(
            "no truth read: the teacher calls {} of {} cutouts lenses (P >= 0.5) and labels them with its scores",
            called(&d),
            d.len()
        );
        // A project's candidates were chosen by its own scores before reading.
        if let Some((k, others)) = top.filter(|&(k, _)| k < d.len() && !from_project) {
            let all = d.len();
            let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(selection_seed);
            let order = lens_inspect::model::data::highest_and_random(&d.labels, k, others, &mut rng);
            let lowest = d.labels[order[k - 1]];
            d = d.split(&order).1;
            eprintln!(
                "kept the {k} of {all} cutouts the teacher ranks highest (P >= {lowest:.4}){}; it calls {} of them lenses",
                drawn_at_random(d.len() - k),
                called(&d)
            );
        } else if let Some((k, _)) = top.filter(|_| !from_project) {
            eprintln!("--top {k} keeps all {} cutouts: the folder holds no more, so none is left out", d.len());
        }
        // Measured (docs/robustness.md, section 6): adapting gained where the teacher called 24 -
        // 52 % of the images lenses, and lost where it called 2.5 %, as in a whole survey.
        if (called(&d) as f64) < 0.1 * d.len() as f64 {
            eprintln!(
                "warning: fewer than a tenth of these cutouts look like lenses to the teacher; adapting on such a folder lowered AUROC where it was measured; --top K adapts on the K it ranks highest (docs/robustness.md, section 6)"
            );
        }
        Ok(d)
    };
    let start = std::time::Instant::now();
    let bar = crate::progress_bar(true);
    let mut card = ModelCard::new(config.arch, 0, clip);
    card.provenance = serde_json::json!({"command": command_line.join(" "), "config": config});
    if let Some(t) = &teacher_provenance {
        card.provenance["teacher"] = t.clone();
    }
    let epochs_done = resume_state.as_ref().map_or(0, |r| r.epochs_done);
    // Every run saves its best model to OUT and its current weights to the resume file after
    // each epoch, whatever its data.
    let saver = |items_per_epoch: u64, card: &ModelCard| Saver {
        out: &out,
        card: card.clone(),
        history: history.clone(),
        stream_start,
        items_per_epoch,
        epochs_done_before: epochs_done,
        best_val_loss: resume_state.as_ref().and_then(|r| r.best_val_loss),
        error: None,
    };
    let (outcome, train_size, provenance) = match stream {
        Some(s) => {
            if !(0.0..=1.0).contains(&s.data_share) {
                bail!("--data-share must be between 0 and 1, not {}", s.data_share);
            }
            if s.workers == 0 || s.workers > 64 {
                bail!("--workers must be between 1 and 64, not {}", s.workers);
            }
            let sim_config = SimConfig::default();
            let val = match &val_data {
                Some(v) => load(v, None)?,
                None => {
                    let sim = MixedSimulator::new(&sim_config, s.look.clone());
                    simulated_set(&sim, s.val_n, config.seed.wrapping_add(1_000_000), clip)?
                }
            };
            let mix = match &data {
                Some(d) if s.data_share > 0.0 => Some(load_data(d, truth.as_deref())?),
                Some(d) => bail!("--data {} with --simulate is mixed in by --data-share, which is 0", d.display()),
                None => None,
            };
            for (what, set) in [("--val-data", Some(&val)), ("--data", mix.as_ref())] {
                if let Some(set) = set.filter(|d| d.size != 0 && d.size != sim_config.size) {
                    bail!(
                        "{what} has {} x {0}-pixel cutouts, the simulator makes {1} x {1}",
                        set.size,
                        sim_config.size
                    );
                }
            }
            let steps = config.steps_per_epoch.unwrap_or(500);
            config.steps_per_epoch = Some(steps);
            let train_config = SimConfig { kind_boost: s.boost.clone(), ..sim_config.clone() };
            let mut sim_stream = SimStream::start(
                MixedSimulator::new(&train_config, s.look.clone()),
                config.seed,
                stream_start,
                s.workers,
                256,
                clip,
            );
            eprintln!(
                "training on fresh simulations of look {} ({} worker thread(s)){}, validating on {} fixed cutouts",
                s.look,
                s.workers,
                mix.as_ref()
                    .map(|m| format!(" with {:.0} % from {} cutouts of DATA", 100.0 * s.data_share, m.len()))
                    .unwrap_or_default(),
                val.len()
            );
            if !s.boost.is_empty() {
                let kinds: Vec<String> = s.boost.iter().map(|(k, f)| format!("{} x{f}", k.name())).collect();
                eprintln!("look-alikes drawn more often in training batches (not in validation): {}", kinds.join(", "));
            }
            card.input_size = sim_config.size;
            card.provenance["config"] = serde_json::json!(config);
            let saver = saver((steps * config.batch) as u64, &card);
            let mut printer = Printer { bar, epoch: epochs_done, saver: Some(saver) };
            let source = TrainSource::Stream { stream: &mut sim_stream, mix: mix.as_ref().map(|m| (m, s.data_share)) };
            let outcome = train_from(source, &val, resume_state, teacher.as_ref(), &config, &mut printer)?;
            printer.bar.finish_and_clear();
            let stats = sim_stream.stats();
            let seconds = start.elapsed().as_secs_f64();
            let trained = (outcome.history.len() * steps * config.batch) as f64;
            eprintln!(
                "simulator: {:.0} cutouts/s per worker thread ({} worker(s)); trainer: {:.0} cutouts/s; trainer waited {:.1} s for data",
                stats.per_worker_per_s,
                stats.workers,
                trained / seconds,
                stats.waited_s
            );
            history.extend(outcome.history.iter().cloned());
            let provenance = serde_json::json!({
                "data": "simulated while training",
                "look": s.look.to_string(),
                "looks": s.look.parts.iter().map(|(look, share)| serde_json::json!({"look": look, "share": share, "ranges": look.ranges()})).collect::<Vec<_>>(),
                "stream": stats,
                // Training's own mixture of look-alikes, when it is not the simulator's: the
                // card must say what the model saw more of (validation keeps the simulator's).
                "kind_boost": s.boost.iter().map(|(k, f)| (k.name().to_string(), serde_json::json!(f))).collect::<serde_json::Map<_, _>>(),
                "mixed_in": data.as_ref().map(|d| d.display().to_string()),
                "data_share": s.data_share,
                "val_data": val_data.as_ref().map(|v| v.display().to_string()),
                "val_cutouts": val.len(),
                "val_seed": config.seed.wrapping_add(1_000_000),
            });
            (outcome, sim_config.size, provenance)
        }
        None => {
            let Some(data) = &data else { bail!("give --data, or --simulate") };
            let all = load_data(data, truth.as_deref())?;
            let (train_set, val_set) = match &val_data {
                Some(v) => (all, load(v, None)?),
                None => {
                    if !(0.0..1.0).contains(&val_fraction) || val_fraction == 0.0 {
                        bail!("--val-fraction must be between 0 and 1");
                    }
                    let mut idx: Vec<usize> = (0..all.len()).collect();
                    idx.shuffle(&mut rand_pcg::Pcg64Mcg::seed_from_u64(config.seed));
                    let n_val = ((all.len() as f64 * val_fraction).round() as usize).max(1);
                    all.split(&idx[..n_val.min(all.len())])
                }
            };
            eprintln!(
                "training on {} cutouts, validating on {}{}",
                train_set.len(),
                val_set.len(),
                if unlabelled && val_data.is_none() { " (held out; against the teacher's scores)" } else { "" }
            );
            card.input_size = train_set.size;
            let saver = saver(0, &card);
            let mut printer = Printer { bar, epoch: epochs_done, saver: Some(saver) };
            let outcome = train_from(
                TrainSource::Fixed(&train_set),
                &val_set,
                resume_state,
                teacher.as_ref(),
                &config,
                &mut printer,
            )?;
            printer.bar.finish_and_clear();
            history.extend(outcome.history.iter().cloned());
            let provenance = serde_json::json!({
                "data": data.display().to_string(),
                "val_data": val_data.as_ref().map(|v| v.display().to_string()),
                "train_cutouts": train_set.len(),
                "val_cutouts": val_set.len(),
                "unlabelled": unlabelled,
                "from_project": from_project,
                "top": top.map(|t| t.0),
                "random_others": top.map(|t| t.1),
            });
            (outcome, train_set.size, provenance)
        }
    };
    let best = history.iter().rfind(|r| r.best).cloned();
    card.input_size = train_size;
    let mut prov = serde_json::json!({
        "command": command_line.join(" "),
        "note": note,
        "config": config,
        "init": init.map(|v| v.display().to_string()),
        "best_epoch": best.as_ref().map(|b| b.epoch),
        "history": history,
        "seconds": start.elapsed().as_secs_f64(),
        "program": format!("lens-inspect {}", env!("CARGO_PKG_VERSION")),
    });
    if let Some(t) = teacher_provenance {
        prov["teacher"] = t;
    }
    if let (Some(p), Some(extra)) = (prov.as_object_mut(), provenance.as_object()) {
        p.extend(extra.clone());
    }
    card.provenance = prov;
    card.metrics = serde_json::json!({
        "val_loss": best.as_ref().map(|b| b.val_loss),
        "val_auroc": best.as_ref().map(|b| b.val_auroc),
    });
    if outcome.best_epoch > 0 || !out.exists() {
        checkpoint::save(&out, &outcome.net, &card)?;
    } else {
        // A resumed run that never beat its earlier best: that best stays in OUT; only its
        // card learns the whole history.
        let (kept, _) = checkpoint::load(&out, &device)?;
        checkpoint::save(&out, &kept, &card)?;
    }
    if args_json {
        let line = serde_json::json!({
            "out": out,
            "best_epoch": best.as_ref().map(|b| b.epoch),
            "val_auroc": best.as_ref().map(|b| b.val_auroc),
            "val_loss": best.as_ref().map(|b| b.val_loss),
            "epochs_run": history.len(),
            "stopped_early": outcome.cancelled,
        });
        println!("{line}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "wrote {} (best epoch {}, val AUROC {:.4}){}",
        out.display(),
        best.as_ref().map_or(0, |b| b.epoch),
        best.as_ref().map_or(f64::NAN, |b| b.val_auroc),
        if outcome.cancelled { " — training was stopped early" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

/// A fixed labelled set of `n` simulated cutouts (seed `seed`), made in parallel.
pub fn simulated_set(
    sim: &MixedSimulator,
    n: usize,
    seed: u64,
    clip: lens_inspect::cutout::Normalisation,
) -> Result<Dataset> {
    use rayon::prelude::*;
    let objects: Vec<_> = (0..n as u64).into_par_iter().map(|k| sim.simulate(&k.to_string(), seed, k, None)).collect();
    let mut d = Dataset::default();
    for o in &objects {
        d.push(&o.cutout, if o.truth.is_lens { 1.0 } else { 0.0 }, clip);
    }
    Ok(d)
}

/// How `adapt --top`'s log names the random others beside the top (nothing when there are none).
fn drawn_at_random(others: usize) -> String {
    if others > 0 {
        format!(" and {others} of the rest drawn at random")
    } else {
        String::new()
    }
}

fn report_problems(problems: &[(String, String)]) {
    for (name, why) in problems.iter().take(10) {
        eprintln!("  skipped {name}: {why}");
    }
    if problems.len() > 10 {
        eprintln!("  ... and {} more skipped", problems.len() - 10);
    }
}

fn model_path(model: Option<PathBuf>) -> PathBuf {
    model.unwrap_or_else(shipped_model_path)
}

pub fn score(project: &Path, model: Option<PathBuf>, batch: usize, tta: Option<usize>, json: bool) -> Result<ExitCode> {
    let mut scorer = Scorer::load_or_shipped(model.as_deref())?;
    if let Some(v) = tta {
        scorer = scorer.with_views(v);
    }
    let model = model_path(model);
    let mut p = Project::open_existing(project)?;
    let bar = crate::progress_bar(!json);
    bar.set_message("scoring");
    let name = model.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "model".into());
    let summary = score_project(&mut p, &scorer, &name, batch.max(1), &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string(&summary)?);
        return Ok(if summary.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(3) });
    }
    println!("scored {} candidates as model version {}", summary.scored, summary.model_version);
    if let Some(line) = summary.adapted.describe(scorer.card.input_size) {
        println!("  {line}");
    }
    for (name, why) in summary.failed.iter().take(10) {
        eprintln!("  not scored {name}: {why}");
    }
    Ok(if summary.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

/// `score --shard K/N --shard-out FILE`: one job of a cluster array.
pub fn score_shard(
    project: &Path,
    model: Option<PathBuf>,
    batch: usize,
    tta: Option<usize>,
    shard: &str,
    out: &Path,
    json: bool,
) -> Result<ExitCode> {
    use lens_inspect::model::shards::{parse_shard, score_shard, write_shard};
    let (k, n) = parse_shard(shard).map_err(anyhow::Error::msg)?;
    let mut scorer = Scorer::load_or_shipped(model.as_deref())?;
    if let Some(v) = tta {
        scorer = scorer.with_views(v);
    }
    let bytes = match &model {
        Some(m) => std::fs::read(m).with_context(|| format!("reading {}", m.display()))?,
        None => lens_inspect::model::SHIPPED_MODEL_BYTES.to_vec(),
    };
    let name = model_path(model).file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "model".into());
    // Read-only: many jobs read one project at once, none writes it.
    let p = Project::open_read_only(project)?;
    let bar = crate::progress_bar(!json);
    bar.set_message(format!("scoring shard {k}/{n}"));
    let file = score_shard(&p, &scorer, &name, &bytes, (k, n), batch.max(1), &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    write_shard(out, &file).with_context(|| format!("writing {}", out.display()))?;
    if json {
        let v =
            serde_json::json!({"shard": k, "of": n, "scored": file.scores.len(), "failed": file.failed, "out": out});
        println!("{v}");
    } else {
        println!("shard {k}/{n}: scored {} candidates into {}", file.scores.len(), out.display());
        for (name, why) in file.failed.iter().take(10) {
            eprintln!("  not scored {name}: {why}");
        }
    }
    Ok(if file.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

/// `score merge FILES --project P`.
pub fn score_merge(project: &Path, files: &[PathBuf], json: bool) -> Result<ExitCode> {
    let mut p = Project::open_existing(project)?;
    let r = lens_inspect::model::shards::merge_shards(&mut p, files)?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("merged {} scores from {} shard file(s)", r.scores, r.files);
        for (digest, v) in &r.versions {
            println!("  model {digest}: version {v}");
        }
        for (digest, missing) in &r.missing_shards {
            println!("  model {digest}: shards still missing: {missing:?}");
        }
        if r.unknown_candidates > 0 {
            println!("  {} scores name candidates this project does not have", r.unknown_candidates);
        }
    }
    let partial = !r.missing_shards.is_empty() || r.unknown_candidates > 0 || r.failed > 0;
    Ok(if partial { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

pub struct EvaluateArgs {
    pub model: Option<PathBuf>,
    pub data: Option<PathBuf>,
    pub truth: Option<PathBuf>,
    /// How --data is read: a pixel scale over its headers', blank bands kept or not.
    pub folder: lens_inspect::model::FolderOptions,
    pub project: Option<PathBuf>,
    pub roc: Option<PathBuf>,
    /// Every cutout's score as CSV (--data only).
    pub scores: Option<PathBuf>,
    pub json: bool,
    pub gradcam_check: Option<usize>,
    pub by: Vec<String>,
    pub bootstrap: usize,
    pub tta: Option<usize>,
}

pub fn evaluate(a: EvaluateArgs) -> Result<ExitCode> {
    use lens_inspect::model::validation::{bootstrap, by_group, groups_from_column, Grouping};
    let EvaluateArgs {
        model,
        data,
        truth,
        folder,
        project,
        roc,
        scores: scores_out,
        json,
        gradcam_check,
        by,
        bootstrap: resamples,
        tta,
    } = a;
    let mask_ratio = match (&data, gradcam_check) {
        (Some(dir), Some(n)) => Some(gradcam_mask_ratio(model.as_deref(), dir, n)?),
        _ => None,
    };
    if !by.is_empty() && data.is_none() {
        bail!("--by needs --data (the truth columns of a labelled folder)");
    }
    let mut groups: Vec<(String, Grouping)> = Vec::new();
    let (scores, labels): (Vec<f64>, Vec<bool>) = match (data, project) {
        (Some(dir), None) => {
            let mut scorer = Scorer::load_or_shipped(model.as_deref())?;
            if let Some(v) = tta {
                scorer = scorer.with_views(v);
            }
            let norm = scorer.card.normalisation();
            let (set, problems, adapted) =
                load_labelled_at(&dir, truth.as_deref(), norm, scorer.card.input_size, &folder)?;
            if !json {
                report_problems(&problems);
                if let Some(line) = adapted.describe(scorer.card.input_size) {
                    eprintln!("{line}");
                }
            }
            if !by.is_empty() {
                let truth_path = truth.clone().unwrap_or_else(|| dir.join(lens_inspect::sim::TRUTH_FILE));
                let table = lens_inspect::project::ingest::read_truth_csv(&truth_path)?;
                for column in &by {
                    let values: Vec<Option<serde_json::Value>> =
                        set.names.iter().map(|n| table.get(n).and_then(|t| t.extra.get(column).cloned())).collect();
                    if values.iter().all(Option::is_none) {
                        bail!("--by {column}: no such column (or no values) in {}", truth_path.display());
                    }
                    groups.push((column.clone(), groups_from_column(column, &values, 5)));
                }
            }
            let start = std::time::Instant::now();
            let s = scorer.score_dataset(&set, 64);
            let seconds = start.elapsed().as_secs_f64();
            if !json {
                eprintln!(
                    "scored {} cutouts in {seconds:.1} s ({:.0} cutouts/s, {} test-time view(s))",
                    set.len(),
                    set.len() as f64 / seconds.max(1e-9),
                    scorer.views
                );
            }
            let labels: Vec<bool> = set.labels.iter().map(|&l| l >= 0.5).collect();
            if let Some(path) = &scores_out {
                write_scores(path, &set.names, &labels, &s)?;
            }
            (s.iter().map(|&v| v as f64).collect(), labels)
        }
        (None, Some(project)) => {
            if model.is_some() || tta.is_some() {
                // Silently measuring the stored scores of another model would mislead.
                bail!(
                    "evaluate --project measures the project's latest scores; to measure another model, run `lens-inspect score --project {} --model MODEL` first",
                    project.display()
                );
            }
            let p = Project::open_existing(&project)?;
            let truth = p.latest_scores_with_truth()?;
            if !truth.trained_on.is_empty() {
                let (s, t): (Vec<f64>, Vec<bool>) = truth.trained_on.iter().copied().unzip();
                let m = challenge_metrics(&s, &t);
                eprintln!(
                    "left out: {} candidates whose labels a retraining used (on them alone: AUROC {:.4}, not a fair test)",
                    truth.trained_on.len(),
                    m.auroc
                );
            }
            if truth.held_out.is_empty() {
                bail!(
                    "{}: no candidate has truth, a model score and labels no retraining used (run `score` first)",
                    project.display()
                );
            }
            truth.held_out.into_iter().unzip()
        }
        _ => bail!("give --data DIR or --project FILE"),
    };
    // AUROC and the TPRs need both classes; NaN in a table reads as a result.
    let lenses = labels.iter().filter(|&&l| l).count();
    if lenses == 0 || lenses == labels.len() {
        bail!(
            "nothing to measure: {} cutouts were read, {lenses} of them lenses; the metrics need lenses and non-lenses{}",
            labels.len(),
            if labels.is_empty() { " (every object was skipped: the reasons are above)" } else { "" }
        );
    }
    let m = challenge_metrics(&scores, &labels);
    if let Some(path) = roc {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("writing {}", path.display()))?,
        );
        writeln!(f, "threshold,fpr,tpr,false_positives,true_positives")?;
        for pt in roc_curve(&scores, &labels) {
            writeln!(f, "{},{},{},{},{}", pt.threshold, pt.fpr, pt.tpr, pt.false_positives, pt.true_positives)?;
        }
    }
    let intervals = (resamples > 0).then(|| bootstrap(&scores, &labels, resamples, 1));
    let breakdowns: Vec<(String, Vec<_>)> =
        groups.iter().map(|(column, g)| (column.clone(), by_group(&scores, &labels, g))).collect();
    if json {
        let mut v = serde_json::to_value(&m)?;
        if let Some(ci) = &intervals {
            v["intervals"] = serde_json::to_value(ci)?;
        }
        for (column, rows) in &breakdowns {
            v["by"][column] = serde_json::to_value(rows)?;
        }
        if let Some((ratio, n)) = mask_ratio {
            v["gradcam_mask_ratio"] = serde_json::json!(ratio);
            v["gradcam_lenses"] = serde_json::json!(n);
        }
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    match &intervals {
        Some(ci) => println!(
            "n = {} ({} lenses): AUROC {:.4} ({:.4}-{:.4}), TPR0 {:.4} ({:.4}-{:.4}), TPR10 {:.4} ({:.4}-{:.4})  [95 % bootstrap intervals, {} resamples]",
            m.n, m.n_lens, ci.auroc.value, ci.auroc.lo, ci.auroc.hi, ci.tpr0.value, ci.tpr0.lo, ci.tpr0.hi,
            ci.tpr10.value, ci.tpr10.lo, ci.tpr10.hi, ci.resamples
        ),
        None => println!("n = {} ({} lenses): AUROC {:.4}, TPR0 {:.4}, TPR10 {:.4}", m.n, m.n_lens, m.auroc, m.tpr0, m.tpr10),
    }
    let pct = |v: Option<f64>| v.map(|x| format!("{:5.1} %", 100.0 * x)).unwrap_or_else(|| "    -  ".into());
    for (column, rows) in &breakdowns {
        println!("\nby {column} (threshold: the score that keeps 50 % of all lenses)");
        println!(
            "{:<28} {:>6} {:>6}  {:>16}  {:>16}  {:>8}",
            "group", "n", "lenses", "found thr / 0.5", "false+ thr / 0.5", "AUROC"
        );
        for g in rows {
            println!(
                "{:<28} {:>6} {:>6}  {} / {}  {} / {}  {:>8}",
                g.group,
                g.n,
                g.n_lens,
                pct(g.tpr_at_tpr50),
                pct(g.tpr_at_half),
                pct(g.fpr_at_tpr50),
                pct(g.fpr_at_half),
                g.auroc_vs_rest.map(|a| format!("{a:.3}")).unwrap_or_else(|| "-".into())
            );
        }
    }
    if let Some((ratio, n)) = mask_ratio {
        println!("Grad-CAM on {n} lenses: {ratio:.2}x more of the map inside the lensed-light mask than its area");
    }
    Ok(ExitCode::SUCCESS)
}

/// Per-cutout scores of `evaluate --data`, best first, so the top rows are the false positives to
/// look at and the last lenses the misses.
fn write_scores(path: &Path, names: &[String], labels: &[bool], scores: &[f32]) -> Result<()> {
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then_with(|| names[a].cmp(&names[b])));
    let mut f =
        std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?);
    writeln!(f, "name,is_lens,score")?;
    for k in order {
        let name = lens_inspect::project::export::csv_field(&names[k]);
        writeln!(f, "{name},{},{}", u8::from(labels[k]), scores[k])?;
    }
    f.flush().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn evaluate_suite(
    model: Option<PathBuf>,
    dir: &Path,
    n: usize,
    seed: u64,
    tta: Option<usize>,
    write_card: bool,
    json: bool,
) -> Result<ExitCode> {
    use lens_inspect::model::robustness;
    if n < 20 {
        bail!("--n must be at least 20 cutouts per set, not {n}");
    }
    if write_card && model.is_none() {
        bail!("--card writes into a model file's card: name it with --model");
    }
    let mut scorer = Scorer::load_or_shipped(model.as_deref())?;
    let path = model_path(model);
    if let Some(v) = tta {
        scorer = scorer.with_views(v);
    }
    let suite = robustness::run(&scorer, dir, n, seed, &|set| {
        if !json {
            eprintln!("{set} ...");
        }
    })?;
    if json {
        println!("{}", serde_json::to_string(&suite)?);
    } else {
        println!("{}", suite.markdown());
    }
    if write_card {
        let device = burn::tensor::Device::flex();
        let (nets, mut card) = checkpoint::load_members(&path, &device)?;
        card.metrics["robustness"] = serde_json::to_value(&suite)?;
        checkpoint::save_ensemble(&path, &nets, &card)?;
        eprintln!("wrote the results into {}'s card", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Which activation map `explain` draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    Evidence,
    Occlusion,
    Gradcam,
}

pub fn explain(
    project: &Path,
    candidate: &str,
    out: &Path,
    model: Option<PathBuf>,
    kind: MapKind,
    opacity: f32,
    json: bool,
) -> Result<ExitCode> {
    use lens_inspect::model::explain;
    use lens_inspect::render::{self, colormap, DisplaySettings};
    let scorer = Scorer::load_or_shipped(model.as_deref())?;
    let p = Project::open_existing(project)?;
    let row = p.candidate_by_name(candidate)?;
    let cutout = p.load_cutout(&row)?;
    // Said beside the map: it was computed on what the model saw, mapped back.
    let seen = lens_inspect::model::how_seen(
        cutout.width,
        cutout.height,
        cutout.pixel_arcsec,
        scorer.card.input_size,
        &cutout.blank_bands(),
    );
    let clip = scorer.card.normalisation();
    let one = std::slice::from_ref(&cutout);
    let start = std::time::Instant::now();
    let image = render::composite(&cutout, &DisplaySettings::default(), p.flux_scale()?);
    let (picture, what) = match kind {
        MapKind::Evidence => {
            let map = explain::evidence(&scorer.net, one, clip, scorer.card.input_size)
                .map_err(anyhow::Error::msg)?
                .swap_remove(0);
            let (lo, hi) = map.iter().fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            (
                colormap::overlay_signed(&image, &map, explain::EVIDENCE_SCALE_LOGIT, opacity),
                format!(
                    "evidence map (gradient x activation; warm = for a lens, blue = against; full colour at {} logit per feature cell; range {lo:+.2} to {hi:+.2})",
                    explain::EVIDENCE_SCALE_LOGIT
                ),
            )
        }
        MapKind::Occlusion => {
            let map = explain::occlusion(
                &scorer.net,
                &cutout,
                clip,
                scorer.card.input_size,
                explain::OCCLUSION_PATCH,
                explain::OCCLUSION_STRIDE,
            )
            .map_err(anyhow::Error::msg)?;
            let (lo, hi) = map.iter().fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            (
                colormap::overlay_signed(&image, &map, explain::OCCLUSION_SCALE_LOGIT, opacity),
                format!(
                    "occlusion map (logit drop when a {0}x{0} square becomes sky; warm = for a lens, blue = against; full colour at {1} logits; range {lo:+.2} to {hi:+.2})",
                    explain::OCCLUSION_PATCH,
                    explain::OCCLUSION_SCALE_LOGIT
                ),
            )
        }
        MapKind::Gradcam => {
            let map = explain::gradcam(&scorer.net, one, clip, scorer.card.input_size)
                .map_err(anyhow::Error::msg)?
                .swap_remove(0);
            (
                colormap::overlay(&image, &map, opacity),
                "Grad-CAM (positive evidence only, scaled to its maximum)".into(),
            )
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let score = scorer.score(one, 1)[0];
    render::save_png(out, &picture)?;
    if json {
        let method = match kind {
            MapKind::Evidence => "evidence",
            MapKind::Occlusion => "occlusion",
            MapKind::Gradcam => "gradcam",
        };
        let line = serde_json::json!({
            "out": out, "candidate": candidate, "p_lens": score, "method": method, "map": what, "seconds": seconds,
            "seen": seen,
        });
        println!("{line}");
    } else {
        println!("wrote {} (P(lens) = {score:.3}): {what}; {seconds:.2} s", out.display());
        if let Some(seen) = &seen {
            println!("{seen}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub struct ExportArgs {
    pub project: PathBuf,
    pub out: Option<PathBuf>,
    pub min: lens_inspect::project::export::MinVerdict,
    pub grades: bool,
    pub regions: Option<PathBuf>,
    pub frame: lens_inspect::project::export_sky::RegionFrame,
    pub cutouts: Option<PathBuf>,
    pub zooniverse: Option<PathBuf>,
    pub json: bool,
}

pub fn export(a: ExportArgs) -> Result<ExitCode> {
    use lens_inspect::consensus::{swap::SwapConfig, SeedRule};
    use lens_inspect::project::export::{catalogue, write_catalogue, write_grades_csv, Provenance};
    use lens_inspect::project::export_sky::{write_cutouts, write_regions};
    let p = Project::open_existing(&a.project)?;
    let mut partial = false;
    // One JSON object with a key per export done (--json), or lines of text.
    let mut report = serde_json::Map::new();
    let say = |text: String| {
        if !a.json {
            println!("{text}");
        }
    };
    if let Some(out) = &a.out {
        if a.grades {
            let n = write_grades_csv(&p, out)?;
            say(format!("wrote {n} grade events to {}", out.display()));
            report.insert("grades".into(), serde_json::json!({"file": out, "events": n}));
        } else {
            let provenance = Provenance {
                rule: SeedRule::default(),
                swap: SwapConfig::default(),
                model_version: p.latest_predictions()?.0,
            };
            let rows = catalogue(&p, &provenance.rule, provenance.swap, a.min)?;
            write_catalogue(out, &rows, &provenance)?;
            say(format!("wrote {} candidates to {}", rows.len(), out.display()));
            report.insert("catalogue".into(), serde_json::json!({"file": out, "candidates": rows.len()}));
        }
    }
    if let Some(dir) = &a.regions {
        let r = write_regions(&p, dir, a.frame)?;
        say(format!(
            "wrote {} marked points of {} candidates as ds9 regions into {}",
            r.points,
            r.files,
            dir.display()
        ));
        if !r.without_wcs.is_empty() {
            say(format!(
                "  {} candidate(s) have no WCS and are in image pixels: {}",
                r.without_wcs.len(),
                r.without_wcs.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        report.insert("regions".into(), serde_json::to_value(&r)?);
    }
    if let Some(dir) = &a.cutouts {
        let rows = catalogue(&p, &SeedRule::default(), SwapConfig::default(), a.min)?;
        let names: Vec<String> = rows.into_iter().map(|r| r.name).collect();
        let r = write_cutouts(&p, &names, dir)?;
        say(format!("wrote {} cutout cubes into {}", r.written, dir.display()));
        if !a.json {
            for (name, why) in &r.failed {
                eprintln!("  {name}: {why}");
            }
        }
        partial |= !r.failed.is_empty();
        report.insert("cutouts".into(), serde_json::to_value(&r)?);
    }
    if let Some(dir) = &a.zooniverse {
        let names: Vec<String> = p.candidates()?.into_iter().map(|c| c.name).collect();
        let settings = lens_inspect::render::DisplaySettings::default();
        let r = lens_inspect::project::zooniverse::write_subject_set(&p, &names, dir, &settings)?;
        say(format!(
            "wrote a Zooniverse subject set of {} subjects ({} training) into {} (manifest.csv)",
            r.subjects,
            r.training,
            dir.display()
        ));
        if !a.json {
            for (name, why) in r.failed.iter().take(10) {
                eprintln!("  {name}: {why}");
            }
        }
        partial |= !r.failed.is_empty();
        report.insert("zooniverse".into(), serde_json::to_value(&r)?);
    }
    if a.json {
        println!("{}", serde_json::Value::Object(report));
    }
    Ok(if partial { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

/// `grades import --zooniverse FILE --answers MAP`.
pub fn import_zooniverse(
    project: &Path,
    csv: &Path,
    answers: &str,
    task: Option<String>,
    json: bool,
) -> Result<ExitCode> {
    use lens_inspect::project::zooniverse::{import_classifications, AnswerMap};
    let map = AnswerMap::parse(answers, task).map_err(anyhow::Error::msg)?;
    let mut p = Project::open_existing(project)?;
    let r = import_classifications(&mut p, csv, &map)?;
    print_import_of(csv, &r, json)?;
    Ok(if r.skipped.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

pub fn import_grades(project: &Path, csv: &Path, inspector: Option<&str>, json: bool) -> Result<ExitCode> {
    let mut p = Project::open_existing(project)?;
    let r = lens_inspect::project::import::import_grades(&mut p, csv, inspector)?;
    print_import_of(csv, &r, json)?;
    Ok(if r.skipped.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

fn print_import_of(csv: &Path, r: &lens_inspect::project::import::ImportReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!(
        "{}: added {} grades, {} already present, skipped {} rows",
        csv.display(),
        r.added,
        r.already_present,
        r.skipped.len()
    );
    for (line, why) in r.skipped.iter().take(20) {
        eprintln!("  skipped {line}: {why}");
    }
    Ok(())
}

pub fn pack_export(
    project: &Path,
    out: &Path,
    inspector: String,
    n: Option<usize>,
    query: Option<String>,
    with_scores: bool,
    json: bool,
) -> Result<ExitCode> {
    use lens_inspect::project::pack::{export_pack, PackOptions};
    let mut p = Project::open_existing(project)?;
    let mut rows = p.candidates()?;
    if let Some(q) = &query {
        rows.retain(|c| c.name.contains(q.as_str()));
    }
    if let Some(i) = p.inspectors()?.into_iter().find(|i| i.name == inspector) {
        let grades = lens_inspect::consensus::current_grades(&p.grade_events()?);
        rows.retain(|c| !grades.get(&c.id).is_some_and(|g| g.contains_key(&i.id)));
    }
    let (_, scores) = p.latest_predictions()?;
    rows.sort_by(|a, b| {
        scores.get(&b.id).unwrap_or(&-1.0).total_cmp(scores.get(&a.id).unwrap_or(&-1.0)).then(a.id.cmp(&b.id))
    });
    if let Some(n) = n {
        rows.truncate(n);
    }
    // The pack opens with the settings its inspector (or the project) last used.
    let display_json = p
        .display_settings(&inspector)?
        .or_else(|| serde_json::to_string(&lens_inspect::render::DisplaySettings::default()).ok());
    let options =
        PackOptions { inspector, names: rows.into_iter().map(|c| c.name).collect(), with_scores, display_json };
    let count = export_pack(&mut p, out, &options)?;
    if json {
        println!("{}", serde_json::json!({"pack": out, "candidates": count}));
    } else {
        println!("wrote pack {} with {count} candidates", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn pack_merge(project: &Path, packs: &[PathBuf], json: bool) -> Result<ExitCode> {
    let mut p = Project::open_existing(project)?;
    let mut failed = 0;
    for pack in packs {
        match lens_inspect::project::pack::merge_pack(&mut p, pack) {
            Ok(r) if json => {
                println!("{}", serde_json::json!({"pack": pack.display().to_string(), "merged": r}));
            }
            Err(e) if json => {
                println!(
                    "{}",
                    serde_json::json!({"pack": pack.display().to_string(), "refused": lens_inspect::error_text::one_line(&e)})
                );
                failed += 1;
            }
            Ok(r) => println!(
                "{}: added {} grade events, {} already present (inspectors: {})",
                pack.display(),
                r.added,
                r.already_present,
                r.inspectors.join(", ")
            ),
            Err(e) => {
                eprintln!("error: {}", lens_inspect::error_text::one_line(&e));
                failed += 1;
            }
        }
    }
    // The exit-code table (README): 3 when some packs merged and others were refused.
    Ok(match failed {
        0 => ExitCode::SUCCESS,
        n if n == packs.len() => ExitCode::FAILURE,
        _ => ExitCode::from(3),
    })
}

/// Mean over lenses (with a mask) of the Grad-CAM concentration on the lensed light.
fn gradcam_mask_ratio(model: Option<&Path>, dir: &Path, n: usize) -> Result<(f64, usize)> {
    use lens_inspect::model::explain::{gradcam, mask_concentration};
    use lens_inspect::survey::{discover, fits::read_single_band, load};
    let scorer = Scorer::load_or_shipped(model)?;
    let discovery = discover(dir)?;
    let mut ratios = Vec::new();
    for spec in &discovery.objects {
        if ratios.len() >= n {
            break;
        }
        let mask_path = dir.join(lens_inspect::sim::MASK_FOLDER).join(format!("mask-{}.fits", spec.name));
        let Ok(mask) = read_single_band(&mask_path) else { continue };
        let Ok(cutout) = load(spec) else { continue };
        let map =
            gradcam(&scorer.net, std::slice::from_ref(&cutout), scorer.card.normalisation(), scorer.card.input_size)
                .map_err(anyhow::Error::msg)?;
        let mask: Vec<bool> = mask.data.iter().map(|&v| v > 0.5).collect();
        if let Some(r) = map.first().and_then(|m| mask_concentration(m, &mask)) {
            ratios.push(r);
        }
    }
    if ratios.is_empty() {
        bail!("no lens with a mask under {}/{}", dir.display(), lens_inspect::sim::MASK_FOLDER);
    }
    Ok((ratios.iter().sum::<f64>() / ratios.len() as f64, ratios.len()))
}

pub fn retrain(
    project: &Path,
    model: Option<PathBuf>,
    epochs: usize,
    lr: f64,
    (freeze_backbone, freeze_stem): (bool, bool),
    seed: u64,
    json: bool,
) -> Result<ExitCode> {
    use lens_inspect::active::retrain::{retrain as run_retrain, RetrainConfig};
    let mut p = Project::open_existing(project)?;
    let base = match (model, p.current_model_bytes()?) {
        (Some(m), _) => Scorer::load(&m)?,
        (None, Some(bytes)) => {
            let (net, card) = checkpoint::from_bytes(project, &bytes, &burn::tensor::Device::flex())?;
            Scorer::new(net, card)
        }
        (None, None) => Scorer::shipped()?,
    };
    let mut cfg = RetrainConfig::default();
    cfg.train.epochs = epochs.max(1);
    cfg.train.lr = lr;
    cfg.train.seed = seed;
    cfg.train.freeze_backbone = freeze_backbone;
    cfg.train.freeze_stem = freeze_stem;
    cfg.train.arch = base.card.arch;
    let bar = crate::progress_bar(!json);
    let mut printer = Printer { bar, epoch: 0, saver: None };
    let out = run_retrain(&mut p, &base, &cfg, &mut printer)?;
    printer.bar.finish_and_clear();
    if json {
        let line = serde_json::json!({
            "labels": out.labels,
            "train_labels": out.splits.train.len(),
            "stop_labels": out.splits.stop.len(),
            "decide_labels": out.splits.decide.len(),
            "old_loss": out.old.loss,
            "new_loss": out.new.loss,
            "old_auroc": out.old.auroc,
            "new_auroc": out.new.auroc,
            "old_simulated_auroc": out.old_sim.auroc,
            "new_simulated_auroc": out.new_sim.auroc,
            "kept": out.kept,
            "model_version": out.model_version,
        });
        println!("{line}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} labels ({} to train, {} to pick the epoch, {} to decide); on the decision labels loss {:.4} -> {:.4}, AUROC {:.4} -> {:.4}; on unseen simulations AUROC {:.4} -> {:.4}: {} (model version {})",
        out.labels,
        out.splits.train.len(),
        out.splits.stop.len(),
        out.splits.decide.len(),
        out.old.loss,
        out.new.loss,
        out.old.auroc,
        out.new.auroc,
        out.old_sim.auroc,
        out.new_sim.auroc,
        if out.kept { "kept, candidates re-scored" } else { "not better, the current model stays" },
        out.model_version
    );
    Ok(ExitCode::SUCCESS)
}

/// What `bench active-learning` fine-tunes.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum TuneArg {
    Head,
    TopStage,
    Classifier,
}

/// Which batch-norm statistics the learning conv blocks normalise by while fine-tuning.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NormStatisticsArg {
    /// Each batch's own (and the running averages follow them).
    Batch,
    /// The running averages from pre-training, kept unchanged.
    Frozen,
}

/// A query strategy, as `bench active-learning --strategies` names it.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum StrategyArg {
    LeastConfidence,
    Margin,
    Entropy,
    Bald,
    TopScore,
    Random,
    Mixture,
}

impl StrategyArg {
    /// The name the experiment (and its CSV) uses, the same as on the command line.
    fn name(self) -> &'static str {
        match self {
            StrategyArg::LeastConfidence => "least-confidence",
            StrategyArg::Margin => "margin",
            StrategyArg::Entropy => "entropy",
            StrategyArg::Bald => "bald",
            StrategyArg::TopScore => "top-score",
            StrategyArg::Random => "random",
            StrategyArg::Mixture => "mixture",
        }
    }
}

/// Options of `bench active-learning`.
#[derive(clap::Args)]
pub struct ActiveLearningArgs {
    /// Labelled pool: any layout `ingest` reads (e.g. `simulate --fwhm ... --depth-offset ...`).
    #[arg(long)]
    pub pool: PathBuf,
    /// Truth CSV of the pool (default: POOL/classifications.csv).
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Starting model (default: the shipped one).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Query strategies to compare, comma-separated (mixture: 70 % top score, 20 % entropy,
    /// 10 % random).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "random,top-score,entropy,bald,mixture")]
    pub strategies: Vec<StrategyArg>,
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Labels per round.
    #[arg(long, default_value_t = 30)]
    pub batch: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// AUROC targets for the labels-needed table (default: what random sampling reaches last).
    #[arg(long, value_delimiter = ',')]
    pub target: Vec<f64>,
    /// Output prefix: writes PREFIX.csv, PREFIX.png and PREFIX.json.
    #[arg(long, default_value = "active-learning")]
    pub out: PathBuf,
    /// Fine-tuning learning rate (Adam).
    #[arg(long, default_value_t = 3e-4)]
    pub lr: f64,
    /// Share of in-domain simulations in each fine-tuning batch (against forgetting).
    #[arg(long, default_value_t = 0.15)]
    pub sim_share: f64,
    /// Most fine-tuning steps per round (0.5 steps per labelled view, at least 60).
    #[arg(long, default_value_t = 150)]
    pub max_steps: usize,
    /// Views per query candidate whose features are cached (1 = no augmentation).
    #[arg(long, default_value_t = 2)]
    pub variants: usize,
    /// What fine-tuning changes: head (attention + classifier), top-stage (also the last
    /// conv stage) or classifier (MLP only).
    #[arg(long, value_enum, default_value = "top-stage")]
    pub tune: TuneArg,
    /// Keep the backbone features in this file and reuse them when it matches.
    #[arg(long)]
    pub feature_cache: Option<PathBuf>,
    /// Batch-norm statistics of the learning conv blocks while fine-tuning: each batch's, or
    /// the pre-trained running averages kept frozen.
    #[arg(long, value_enum, default_value = "frozen")]
    pub norm_statistics: NormStatisticsArg,
}

/// `bench active-learning`: runs the experiment, writes curves, plot and JSON, prints the
/// labels-needed table.
pub fn bench_active_learning(a: ActiveLearningArgs) -> Result<ExitCode> {
    use lens_inspect::active::experiment::{chart, labels_to_target, run, ExperimentConfig};
    if a.rounds == 0 || a.batch == 0 {
        bail!("--rounds and --batch must be at least 1");
    }
    let scorer = Scorer::load_or_shipped(a.model.as_deref())?;
    let (pool, problems, _) =
        load_labelled(&a.pool, a.truth.as_deref(), scorer.card.normalisation(), scorer.card.input_size)
            .with_context(|| format!("reading the pool {}", a.pool.display()))?;
    for (name, why) in problems.iter().take(10) {
        eprintln!("skipped {name}: {why}");
    }
    if pool.size != scorer.card.input_size {
        bail!("the pool's cutouts are {} pixels, the model takes {}", pool.size, scorer.card.input_size);
    }
    if !((0.0..1.0).contains(&a.sim_share) && a.lr > 0.0 && a.lr < 1.0) {
        bail!("--sim-share must be in [0, 1) and --lr in (0, 1)");
    }
    use lens_inspect::active::experiment::Tune;
    let tune = match a.tune {
        TuneArg::Head => Tune::Head,
        TuneArg::Classifier => Tune::Classifier,
        TuneArg::TopStage => Tune::TopStage,
    };
    let defaults = ExperimentConfig::default();
    let cfg = ExperimentConfig {
        strategies: a.strategies.iter().map(|s| s.name().to_string()).collect(),
        rounds: a.rounds,
        batch: a.batch,
        seed: a.seed,
        variants: a.variants.max(1),
        tune,
        feature_cache: a.feature_cache,
        max_steps: a.max_steps.max(defaults.min_steps),
        tuning: lens_inspect::active::features::HeadTuning {
            lr: a.lr,
            sim_share: a.sim_share,
            frozen_norm_statistics: a.norm_statistics == NormStatisticsArg::Frozen,
            ..defaults.tuning.clone()
        },
        ..defaults
    };
    eprintln!(
        "pool: {} cutouts ({} lenses); {} strategies x {} rounds x {} labels",
        pool.len(),
        pool.labels.iter().filter(|&&l| l >= 0.5).count(),
        cfg.strategies.len(),
        cfg.rounds,
        cfg.batch
    );
    let result = run(&scorer.net, &pool, &cfg, &mut |line| eprintln!("{line}"))?;
    let with_ext = |ext: &str| {
        let mut p = a.out.clone().into_os_string();
        p.push(ext);
        PathBuf::from(p)
    };
    let mut csv =
        csv::Writer::from_path(with_ext(".csv")).with_context(|| format!("writing {}", with_ext(".csv").display()))?;
    for r in &result.rounds {
        csv.serialize(r)?;
    }
    csv.flush()?;
    let img = lens_inspect::render::chart::draw(&chart(&result.rounds), 700, 480);
    lens_inspect::sim::sheet::save_sheet(&with_ext(".png"), &img)?;
    let targets = if a.target.is_empty() {
        let last_random = result.rounds.iter().rfind(|r| r.strategy == "random").map(|r| r.auroc);
        match last_random {
            Some(t) => vec![t],
            None => vec![result.rounds.iter().map(|r| r.auroc).fold(f64::NAN, f64::max)],
        }
    } else {
        a.target.clone()
    };
    let start = result.rounds.first().map(|r| r.auroc).unwrap_or(f64::NAN);
    println!(
        "held-out part: {} cutouts ({} lenses); starting model AUROC {start:.4}",
        result.holdout, result.holdout_lenses
    );
    let mut tables = Vec::new();
    for t in &targets {
        let table = labels_to_target(&result.rounds, *t);
        let random = table.iter().find(|(n, _)| n == "random").and_then(|(_, l)| *l);
        println!("labels needed to reach AUROC {t:.4}:");
        for (name, labels) in &table {
            let final_auroc = result.rounds.iter().rfind(|r| &r.strategy == name).map(|r| r.auroc).unwrap_or(f64::NAN);
            let ratio = match (labels, random) {
                (Some(l), Some(r)) if r > 0 => format!("{:.2} x random", *l as f64 / r as f64),
                _ => "-".into(),
            };
            let needed = labels.map(|l| l.to_string()).unwrap_or_else(|| "not reached".into());
            println!("  {name:>16}: {needed:>12}   ({ratio}; final AUROC {final_auroc:.4})");
        }
        tables.push(serde_json::json!({ "target": t, "labels": table }));
    }
    let json = serde_json::json!({ "config": { "rounds": cfg.rounds, "batch": cfg.batch, "seed": cfg.seed, "holdout": cfg.holdout, "variants": cfg.variants, "sims": cfg.sims, "mc_passes": cfg.mc_passes, "diversity": cfg.diversity, "tune": cfg.tune, "lr": cfg.tuning.lr, "sim_share": cfg.tuning.sim_share, "steps": [cfg.min_steps, cfg.max_steps, cfg.steps_per_label] }, "result": result, "tables": tables });
    std::fs::write(with_ext(".json"), serde_json::to_string_pretty(&json)?)?;
    println!("curves: {}  plot: {}", with_ext(".csv").display(), with_ext(".png").display());
    Ok(ExitCode::SUCCESS)
}

pub fn inspectors_add(project: &Path, name: &str, role: Role, json: bool) -> Result<ExitCode> {
    let name = name.trim();
    if name.is_empty() {
        bail!("an inspector needs a name");
    }
    let mut p = Project::open_existing(project)?;
    let i = p.set_role(name, role)?;
    if json {
        println!("{}", serde_json::json!({"name": i.name, "role": i.role.as_str(), "id": i.id}));
    } else {
        println!("{} is a {} in {}", i.name, i.role.as_str(), project.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn inspectors_list(project: &Path, json: bool) -> Result<ExitCode> {
    let p = Project::open_existing(project)?;
    let events = p.grade_events()?;
    let current = lens_inspect::consensus::current_events(&events);
    let rows: Vec<serde_json::Value> = p
        .inspectors()?
        .into_iter()
        .map(|i| {
            let graded = current.iter().filter(|e| e.inspector_id == i.id).count();
            serde_json::json!({"name": i.name, "role": i.role.as_str(), "graded": graded})
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for r in &rows {
            println!(
                "{:<24} {:<10} {:>6} graded",
                r["name"].as_str().unwrap_or(""),
                r["role"].as_str().unwrap_or(""),
                r["graded"]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ensemble`: several models in one file.
pub fn ensemble(models: &[PathBuf], out: &Path, tta: Option<usize>, json: bool) -> Result<ExitCode> {
    let device = burn::tensor::Device::flex();
    let mut nets = Vec::new();
    let mut card: Option<ModelCard> = None;
    let mut parts = Vec::new();
    for m in models {
        let (members, c) = checkpoint::load_members(m, &device)?;
        if let Some(first) = &card {
            if (c.arch, c.input_size, c.normalisation()) != (first.arch, first.input_size, first.normalisation()) {
                bail!(
                    "{} is a {} for {} px cutouts clipped at {} sigma (knee {}); the first model is a {} for {} px at {} (knee {}): an ensemble needs one kind",
                    m.display(),
                    c.arch.name(),
                    c.input_size,
                    c.clip_sigma,
                    c.knee_sigma,
                    first.arch.name(),
                    first.input_size,
                    first.clip_sigma,
                    first.knee_sigma
                );
            }
        }
        parts.push(serde_json::json!({
            "file": m.display().to_string(),
            "members": members.len(),
            "note": c.provenance.get("note"),
            "command": c.provenance.get("command"),
            "metrics": c.metrics,
        }));
        nets.extend(members);
        card.get_or_insert(c);
    }
    let Some(mut card) = card else { bail!("give at least two models") };
    card.provenance = serde_json::json!({
        "ensemble_of": parts,
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "program": format!("lens-inspect {}", env!("CARGO_PKG_VERSION")),
    });
    card.metrics = serde_json::Value::Null;
    if let Some(v) = tta {
        card.tta_views = v;
    }
    checkpoint::save_ensemble(out, &nets, &card)?;
    if json {
        println!("{}", serde_json::json!({"model": out, "members": nets.len(), "tta_views": card.tta_views.max(1)}));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "wrote {} (an ensemble of {} models, {} test-time view(s))",
        out.display(),
        nets.len(),
        card.tta_views.max(1)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::StrategyArg;
    use clap::ValueEnum;

    /// The flag's names and the experiment's are one list: every choice clap offers is a
    /// strategy the experiment knows, under the same name.
    #[test]
    fn every_strategy_flag_names_a_strategy() {
        for v in StrategyArg::value_variants() {
            let flag = v.to_possible_value().expect("named").get_name().to_string();
            assert_eq!(flag, v.name());
            assert!(lens_inspect::active::strategies::Strategy::parse(v.name()).is_some(), "{flag}");
        }
        assert_eq!(StrategyArg::value_variants().len(), 7);
    }
}
