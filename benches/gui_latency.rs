//! GUI speed, measured headlessly with egui_kittest (the GUI thread's own work per frame, without
//! the GPU painting): `cargo bench --bench gui_latency [-- N_CANDIDATES]`.
//!
//! 1. Start-up: a project of N candidates (default 100,000; pixels read lazily from FITS files)
//!    opened to its first candidate on screen.
//! 2. Latency: 500 grades by key, each timed from the key press to the next candidate on screen.
//! 3. Frames while the retraining worker trains (a 2,000-candidate project): p50 / p99 / max.

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use lens_inspect::app::grade::GradeView;
use lens_inspect::app::{LensApp, Start};
use lens_inspect::project::{NewCandidate, Project, Role, Truth};
use lens_inspect::queue::QueueOrder;
use lens_inspect::sim::{SimConfig, Simulator};
use lens_inspect::survey::fits_write::{bologna_file_name, bologna_folder, write_bologna};
use lens_inspect::survey::{ObjectSource, ObjectSpec};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// N candidates pointing at 200 distinct simulated cutouts on disk; the first `training` are
/// training candidates with their truth. Scores from a stored model version.
fn make_project(dir: &Path, n: usize, training: usize) -> std::path::PathBuf {
    let files = dir.join("fits");
    let sim = Simulator::new(SimConfig::default());
    let objects: Vec<_> = (0..200u64).map(|k| sim.simulate(&format!("f{k}"), 5, k, None)).collect();
    for o in &objects {
        write_bologna(&files, &o.cutout).expect("write FITS");
    }
    let path = dir.join(format!("bench-{n}.lensproj"));
    let _ = std::fs::remove_file(&path);
    let mut p = Project::create_or_open(&path).expect("project");
    let band_files = |name: &str| {
        let b = lens_inspect::cutout::Band::ALL;
        let f = |k: usize| Some(files.join(bologna_folder(b[k])).join(bologna_file_name(b[k], name)));
        [f(0), f(1), f(2), f(3)]
    };
    let template: Vec<NewCandidate> = objects
        .iter()
        .map(|o| {
            let spec =
                ObjectSpec::new(o.cutout.name.clone(), ObjectSource::Bands { files: band_files(&o.cutout.name) });
            NewCandidate::from_cutout(spec, &o.cutout, false)
        })
        .collect();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let items: Vec<NewCandidate> = chunk
            .iter()
            .map(|&k| {
                let mut c = template[k % 200].clone();
                c.spec.name = format!("KiDS_{k:06}");
                if k < training {
                    c.is_training = true;
                    c.truth = Some(Truth { is_lens: objects[k % 200].truth.is_lens, extra: Default::default() });
                }
                c
            })
            .collect();
        p.insert_candidates(&items).expect("insert");
    }
    let ids: Vec<i64> = p.candidates().expect("rows").iter().map(|c| c.id).collect();
    let v = p.add_model_version("bench", "{}", "{}", None).expect("model");
    let scores: Vec<(i64, f32)> = ids.iter().map(|&id| (id, ((id * 7919) % 10007) as f32 / 10007.0)).collect();
    p.store_predictions(v, &scores).expect("scores");
    path
}

fn open(path: &Path, name: &str) -> GradeView {
    let start = Start {
        project: path.into(),
        name: name.into(),
        role: Role::Volunteer,
        order: QueueOrder::ModelScore,
        auto_retrain: false,
        recent: vec![],
        error: None,
    };
    LensApp::open_grading(&start, Arc::new(|| {})).expect("grade view")
}

fn harness(view: GradeView) -> Harness<'static, GradeView> {
    Harness::builder().with_size(egui::vec2(1280.0, 1300.0)).build_ui_state(|ui, v: &mut GradeView| v.ui(ui), view)
}

/// Steps until the current candidate is on screen; returns the frame times it took.
fn until_ready(h: &mut Harness<'_, GradeView>, frames: &mut Vec<f64>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !h.state().ready() {
        assert!(Instant::now() < deadline, "never ready");
        let t = Instant::now();
        h.step();
        frames.push(t.elapsed().as_secs_f64() * 1e3);
        std::thread::yield_now();
    }
}

fn main() {
    lens_inspect::alloc::keep_freed_memory();
    let n: usize = std::env::args().filter_map(|a| a.parse().ok()).next().unwrap_or(100_000);
    let dir = std::env::temp_dir().join("lens-inspect-gui-bench");
    std::fs::create_dir_all(&dir).expect("dir");
    let t = Instant::now();
    let path = make_project(&dir, n, 0);
    eprintln!("made a {n}-candidate project in {:.1} s", t.elapsed().as_secs_f64());

    // 1. Start-up to the first candidate on screen.
    let t = Instant::now();
    let view = open(&path, "bench");
    let opened = t.elapsed().as_secs_f64();
    let mut h = harness(view);
    let mut frames = Vec::new();
    until_ready(&mut h, &mut frames);
    let first = t.elapsed().as_secs_f64();
    println!(
        "start-up, {n} candidates: grade view built in {opened:.3} s, first candidate on screen after {first:.3} s"
    );

    // 2. 500 grades at the pace of a very fast inspector (one every 250 ms, 14,400 an hour),
    //    frames drawn every 8 ms in between as a window would; then 200 at machine speed.
    let keys = [egui::Key::Num0, egui::Key::Num1, egui::Key::Num3, egui::Key::Num5];
    for (label, grades, pace) in
        [("every 250 ms", 500, Duration::from_millis(250)), ("as fast as possible", 200, Duration::ZERO)]
    {
        let mut latency = Vec::new();
        let mut frames = Vec::new();
        for k in 0..grades {
            let last = Instant::now();
            while last.elapsed() < pace {
                let t = Instant::now();
                h.step();
                frames.push(t.elapsed().as_secs_f64() * 1e3);
                std::thread::sleep(Duration::from_millis(8));
            }
            let before = h.state().current();
            let t = Instant::now();
            h.key_press(keys[k % 4]);
            h.step();
            frames.push(t.elapsed().as_secs_f64() * 1e3);
            // The writer thread confirms the grade, then the next candidate shows.
            until_ready(&mut h, &mut frames);
            latency.push(t.elapsed().as_secs_f64() * 1e3);
            assert_ne!(h.state().current(), before, "grade {k} did not advance");
        }
        let within = latency.iter().filter(|&&l| l < 16.0).count();
        println!(
            "grade key -> next candidate on screen, {grades} grades {label}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({within} under 16 ms)",
            percentile(&mut latency, 0.5),
            percentile(&mut latency, 0.99),
            percentile(&mut latency, 1.0)
        );
        println!(
            "  frames meanwhile: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&mut frames, 0.5),
            percentile(&mut frames, 0.99),
            percentile(&mut frames, 1.0)
        );
    }
    drop(h);

    // The review tab: its catalogue (seed rule, SWAP over every grade), dashboard and grade lists
    // are loaded when it opens, on the GUI thread: how long that one frame takes.
    let project = Project::open_existing(&path).expect("project");
    let t = Instant::now();
    let review = LensApp::open_review(&project, std::sync::Arc::new(|| {}));
    println!(
        "opening the review tab, {n} candidates and 700 grades: {:.3} s (one frame, on the GUI thread)",
        t.elapsed().as_secs_f64()
    );
    drop((review, project));

    // 3. Frames while the model retrains (200 training candidates give the labels).
    let small = make_project(&dir, 2_000, 200);
    let mut h = harness(open(&small, "trainer"));
    until_ready(&mut h, &mut Vec::new());
    h.get_by_label("Retrain now").click();
    // The click went untaken in three of five runs on 2026-12-08 (cause not found; docs/speed.md,
    // Zen 5): say so and start the job directly, so the frames are still measured.
    let clicked = Instant::now();
    while !h.state().trainer.as_ref().is_some_and(|t| t.running || t.last.is_some()) {
        if clicked.elapsed() > Duration::from_secs(10) {
            eprintln!("the click on \"Retrain now\" was not taken within 10 s; the job is started directly");
            h.state().trainer.as_ref().expect("trainer").retrain_now();
            break;
        }
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut frames = Vec::new();
    let mut grades_during = 0;
    let t = Instant::now();
    let mut started = false;
    loop {
        let s = Instant::now();
        if started && h.state().ready() && frames.len() % 10 == 0 {
            h.key_press(keys[grades_during % 4]);
            h.step();
            grades_during += 1;
        } else {
            h.step();
        }
        let trainer = h.state().trainer.as_ref().expect("trainer");
        if trainer.running {
            started = true;
            frames.push(s.elapsed().as_secs_f64() * 1e3);
        } else if started {
            break;
        }
        let status = &trainer.status;
        assert!(started || t.elapsed() < Duration::from_secs(60), "retraining never started: {status}");
        assert!(t.elapsed() < Duration::from_secs(1200), "retraining never finished: {status}");
        std::thread::sleep(Duration::from_millis(5)); // a frame pacing like a 200 Hz display
    }
    let status = h.state().trainer.as_ref().map(|t| t.status.clone()).unwrap_or_default();
    println!(
        "frames while retraining ({} frames over {:.0} s, {grades_during} grades given meanwhile): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {status}",
        frames.len(),
        t.elapsed().as_secs_f64(),
        percentile(&mut frames, 0.5),
        percentile(&mut frames, 0.99),
        percentile(&mut frames, 1.0)
    );
}
