//! The command line as a user runs it: exit codes, JSON summaries, PNGs and error messages.

mod common;

use common::*;
use lens_inspect::cutout::Band;
use std::path::Path;
use std::process::{Command, Output};

fn lens_inspect(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lens-inspect"))
        .args(args)
        .env("LENS_INSPECT_HOME", isolated_home())
        .output()
        .expect("run lens-inspect")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn ingest_json_summary_counts_and_exit_status() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("c");
    write_good_bologna(&root, 3);
    lens_inspect::survey::fits_write::write_bologna(&root, &cutout("bad", 1)).expect("write");
    truncate(&bologna_path(&root, Band::G, "bad"), 100);
    std::fs::remove_file(bologna_path(&root, Band::I, "2")).expect("rm");
    let db = dir.path().join("p.lensproj");
    let out = lens_inspect(&["ingest", s(&root), "--project", s(&db), "--json"]);
    assert_eq!(out.status.code(), Some(3), "some objects skipped: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["ingested"], 2);
    assert_eq!(v["skipped"]["truncated"], 1);
    assert_eq!(v["skipped"]["missing_band"], 1);
    let errors = v["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2);
    assert!(errors
        .iter()
        .any(|e| e["name"] == "bad" && e["reason"].as_str().is_some_and(|r| r.contains("imageSDSS_G-bad"))));
    // Again: nothing new.
    let out = lens_inspect(&["ingest", s(&root), "--project", s(&db), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["ingested"], 0);
    assert_eq!(v["already_present"], 2);

    let out = lens_inspect(&["info", "--project", s(&db), "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["candidates"], 2);
    assert_eq!(v["grade_events"], 0);
}

#[test]
fn clean_ingest_exits_zero_and_prints_a_summary() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("c");
    write_good_bologna(&root, 2);
    let db = dir.path().join("p.lensproj");
    let out = lens_inspect(&["ingest", s(&root), "--project", s(&db)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ingested 2"), "{text}");
}

#[test]
fn render_writes_composites_and_band_views_north_up() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("c");
    let mut c = cutout("7", 7);
    // A bright spot in the bottom-left corner of the FITS image (row 0, column 0), all bands.
    for b in c.bands.iter_mut() {
        b[0] = 1e-8;
    }
    lens_inspect::survey::fits_write::write_bologna(&root, &c).expect("write");
    let db = dir.path().join("p.lensproj");
    assert!(lens_inspect(&["ingest", s(&root), "--project", s(&db)]).status.success());
    let png = dir.path().join("rgb.png");
    let out = lens_inspect(&[
        "render",
        "--project",
        s(&db),
        "--candidate",
        "7",
        "--out",
        s(&png),
        "--q",
        "8",
        "--stretch",
        "30",
        "--weights",
        "1,1,1",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let img = image::open(&png).expect("png").to_rgb8();
    assert_eq!(img.dimensions(), (SIZE as u32, SIZE as u32));
    let bottom_left = img.get_pixel(0, SIZE as u32 - 1);
    assert!(bottom_left.0.iter().all(|&v| v > 200), "{bottom_left:?}");
    let grey = dir.path().join("g.png");
    let out = lens_inspect(&[
        "render",
        "--project",
        s(&db),
        "--candidate",
        "7",
        "--out",
        s(&grey),
        "--band",
        "g",
        "--limits",
        "1,99",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let img = image::open(&grey).expect("png").to_rgb8();
    assert_eq!(img.get_pixel(0, SIZE as u32 - 1).0, [255, 255, 255]);
}

#[test]
fn user_mistakes_end_in_clear_messages() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("c");
    write_good_bologna(&root, 1);
    let db = dir.path().join("p.lensproj");
    assert!(lens_inspect(&["ingest", s(&root), "--project", s(&db)]).status.success());
    let png = dir.path().join("x.png");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["render", "--project", s(&db), "--candidate", "nope", "--out", s(&png)], "nope"),
        (vec!["render", "--project", "/no/such.lensproj", "--candidate", "0", "--out", s(&png)], "does not exist"),
        (
            vec![
                "render",
                "--project",
                s(&db),
                "--candidate",
                "0",
                "--out",
                s(&png),
                "--band",
                "g",
                "--limits",
                "99,1",
            ],
            "--limits",
        ),
        (vec!["ingest", "/no/such/folder", "--project", s(&db)], "/no/such/folder"),
        (vec!["render", "--project", s(&db), "--candidate", "0", "--out", "/no/such/dir/x.png"], "/no/such/dir/x.png"),
    ];
    for (args, needle) in cases {
        let out = lens_inspect(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = lens_inspect(&["ingest", s(&root), "--project", s(&db), "--training"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses --training without --truth");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--truth"));
}

#[test]
fn help_explains_each_flag() {
    let out = lens_inspect(&["ingest", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in ["--project", "--truth", "--training", "--json", "Bologna"] {
        assert!(text.contains(flag), "{flag} missing from ingest --help");
    }
    let out = lens_inspect(&["render", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in ["--q", "--stretch", "--minimum", "--band", "--weights", "sky noise"] {
        assert!(text.contains(flag), "{flag} missing from render --help");
    }
}

#[test]
fn a_project_ingested_with_a_relative_path_finds_its_files_from_any_folder() {
    let dir = tempfile::tempdir().expect("tmp");
    let here = dir.path().join("survey");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    lens_inspect::survey::fits_write::write_bologna(&here.join("data"), &cutout("7", 7)).expect("write");
    let run_in = |cwd: &Path, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lens-inspect"))
            .args(args)
            .current_dir(cwd)
            .env("LENS_INSPECT_HOME", isolated_home())
            .output()
            .expect("run lens-inspect")
    };
    // Ingest from inside the survey folder with relative paths, pixels left in the files.
    let out = run_in(&here, &["ingest", "data", "--project", "p.lensproj"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Then use the project from another folder.
    let db = here.join("p.lensproj");
    let png = elsewhere.join("c.png");
    let out = run_in(&elsewhere, &["render", "--project", s(&db), "--candidate", "7", "--out", "c.png"]);
    assert!(out.status.success(), "from another folder: {}", String::from_utf8_lossy(&out.stderr));
    assert!(png.exists());

    // The data moves: the project no longer finds it, until relocated.
    let moved = dir.path().join("new-disk").join("data");
    std::fs::create_dir_all(moved.parent().expect("parent")).expect("dir");
    std::fs::rename(here.join("data"), &moved).expect("move");
    let out = run_in(&elsewhere, &["render", "--project", s(&db), "--candidate", "7", "--out", "d.png"]);
    assert!(!out.status.success(), "the files are gone");
    let old = here.join("data");
    let relocate = |extra: &[&str]| {
        let mut args = vec!["project", "relocate", "--project", s(&db), "--from", s(&old), "--to", s(&moved), "--json"];
        args.extend_from_slice(extra);
        run_in(&elsewhere, &args)
    };
    let out = relocate(&["--dry-run"]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!((r["changed"].as_u64(), r["found"].as_u64()), (Some(1), Some(1)), "{r}");
    let out = run_in(&elsewhere, &["render", "--project", s(&db), "--candidate", "7", "--out", "d.png"]);
    assert!(!out.status.success(), "a dry run changes nothing");
    let out = relocate(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run_in(&elsewhere, &["render", "--project", s(&db), "--candidate", "7", "--out", "d.png"]);
    assert!(out.status.success(), "relocated: {}", String::from_utf8_lossy(&out.stderr));
    // Again: nothing lies under the old folder any more.
    let r: serde_json::Value = serde_json::from_slice(&relocate(&[]).stdout).expect("json");
    assert_eq!(r["changed"].as_u64(), Some(0));
}

#[test]
fn verbosity_flags_and_rust_log_decide_what_is_logged() {
    let dir = tempfile::tempdir().expect("tmp");
    let missing = dir.path().join("none.lensproj");
    let stderr = |args: &[&str], rust_log: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lens-inspect"));
        c.args(args).env("LENS_INSPECT_HOME", isolated_home()).env_remove("RUST_LOG");
        if let Some(v) = rust_log {
            c.env("RUST_LOG", v);
        }
        String::from_utf8_lossy(&c.output().expect("run").stderr).to_string()
    };
    let plain = stderr(&["info", "--project", s(&missing)], None);
    assert!(!plain.contains("INFO") && plain.contains("does not exist"), "{plain}");
    let verbose = stderr(&["-v", "info", "--project", s(&missing)], None);
    assert!(verbose.contains("INFO") && verbose.contains("started"), "{verbose}");
    let env = stderr(&["info", "--project", s(&missing)], Some("lens_inspect=info"));
    assert!(env.contains("started"), "RUST_LOG is honoured: {env}");
    let quiet = stderr(&["-q", "info", "--project", s(&missing)], Some(""));
    assert!(!quiet.contains("started") && quiet.contains("does not exist"), "errors still show: {quiet}");
}

#[test]
fn completions_name_every_command_and_choice() {
    let out = lens_inspect(&["completions", "bash"]);
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    for word in ["ingest", "evaluate-suite", "inspectors", "--look", "researcher"] {
        assert!(script.contains(word), "the bash completions lack {word}");
    }
    assert!(!lens_inspect(&["completions", "cmd.exe"]).status.success(), "an unknown shell is a usage error");
}

#[test]
fn choice_flags_list_their_values_and_refuse_others() {
    for (args, values) in [
        (vec!["export", "--help"], vec!["all", "graded", "seed-rule", "detected"]),
        (vec!["retrain", "--help"], vec!["head", "top-stage", "all"]),
        (vec!["gui", "--help"], vec!["volunteer", "researcher", "table", "gallery", "dashboard"]),
    ] {
        let out = lens_inspect(&args);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("possible values"), "{args:?}: {help}");
        for v in values {
            assert!(help.contains(v), "{args:?} does not list {v}");
        }
    }
    let out = lens_inspect(&["export", "--project", "p", "--out", "o.csv", "--min-verdict", "lenses"]);
    assert_eq!(out.status.code(), Some(2), "a wrong choice is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: all, graded, seed-rule, detected"));
}

#[test]
fn numeric_training_flags_refuse_values_outside_their_range_naming_value_and_range() {
    for (flag, value, want) in [
        ("--colour-drop", "1.5", "1.5 is not a share between 0 and 1"),
        ("--band-depth-jitter", "3.5", "3.5 is not a depth loss in magnitudes between 0 and 3"),
        ("--knee-sigma", "0.5", "between 1 and 50"),
        ("--knee-sigma", "abc", "'abc' is not a number"),
        ("--pixel-scale", "6", "6 is not a pixel scale between 0.01 and 5 arcsec"),
        ("--pixel-scale", "0", "0 is not a pixel scale between 0.01 and 5 arcsec"),
    ] {
        let out = lens_inspect(&["train", "--simulate", "--out", "never.lensmodel", flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: a usage error");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag) && err.contains(want), "{flag} {value}: {err}");
    }
    // --boost shapes the simulator's draw: on a folder it would do nothing, so it is refused.
    let out = lens_inspect(&["train", "--data", "nowhere", "--out", "never.lensmodel", "--boost", "ring_galaxy=2"]);
    assert_eq!(out.status.code(), Some(2), "--boost without --simulate: a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--boost") && err.contains("--simulate"), "{err}");
    assert!(!Path::new("never.lensmodel").exists(), "nothing trained or written");
    // The same flag on ingest and evaluate, before any file is touched.
    for args in [&["ingest", "nowhere", "--project", "never.lensproj"][..], &["evaluate", "--data", "nowhere"][..]] {
        let out = lens_inspect(&[args, &["--pixel-scale", "-1"]].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}: a usage error");
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not a pixel scale"), "{args:?}");
    }
    assert!(!Path::new("never.lensproj").exists(), "no project made");
}

#[test]
fn pack_merge_exit_codes_follow_the_table() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("c");
    write_good_bologna(&root, 3);
    let db = dir.path().join("p.lensproj");
    assert!(lens_inspect(&["ingest", s(&root), "--project", s(&db)]).status.success());
    let pack = dir.path().join("ann.pack");
    let out = lens_inspect(&["pack", "export", "--project", s(&db), "--out", s(&pack), "--inspector", "ann"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let junk = dir.path().join("junk.pack");
    std::fs::write(&junk, b"not a pack").expect("write");
    let merge = |packs: &[&Path]| {
        let mut args = vec!["pack", "merge"];
        args.extend(packs.iter().map(|p| s(p)));
        args.extend(["--project", s(&db)]);
        lens_inspect(&args).status.code()
    };
    assert_eq!(merge(&[&pack]), Some(0), "all merged");
    assert_eq!(merge(&[&pack, &junk]), Some(3), "some merged, some refused: partial");
    assert_eq!(merge(&[&junk]), Some(1), "none merged");
    assert_eq!(lens_inspect(&["pack", "merge", "--project", s(&db)]).status.code(), Some(2), "usage");
    // --json: one object per pack, what was merged or why it was refused.
    let out = lens_inspect(&["pack", "merge", s(&pack), s(&junk), "--project", s(&db), "--json"]);
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["merged"]["added"], 0, "merged before: nothing new");
    assert!(lines[1]["refused"].as_str().is_some_and(|r| r.contains("junk.pack")), "{}", lines[1]);
    // score and grades import speak JSON too. These test cutouts are 21 pixels and the model
    // takes 101: they are padded and scored. One whose file went away after ingest is listed
    // with why, and the rest are scored.
    let gone = common::bologna_path(&root, Band::G, "1");
    std::fs::remove_file(&gone).expect("remove");
    let out = lens_inspect(&["score", "--project", s(&db), "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("score JSON");
    assert_eq!((v["scored"].as_u64(), v["failed"].as_array().map(|a| a.len())), (Some(2), Some(1)));
    assert_eq!(v["fitted"].as_u64(), Some(2), "both scored cutouts were padded to 101 pixels: {v}");
    assert_eq!(v["resampled"].as_u64(), Some(0), "no WCS, no pixel scale: {v}");
    assert_eq!(v["failed"][0][0].as_str(), Some("1"), "{v}");
    let why = v["failed"][0][1].as_str().unwrap_or_default();
    assert!(why.contains(&*gone.file_name().unwrap().to_string_lossy()), "names the missing file: {v}");
    let sheet = dir.path().join("g.csv");
    std::fs::write(&sheet, "candidate,inspector,score\n0,ann,5\nnope,ann,5\n").expect("write");
    let out = lens_inspect(&["grades", "import", s(&sheet), "--project", s(&db), "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("import JSON");
    assert_eq!((v["added"].as_u64(), v["skipped"].as_array().map(|a| a.len())), (Some(1), Some(1)));
}

#[test]
fn commands_that_report_say_it_in_one_json_object_with_json() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = |args: &[&str]| -> serde_json::Value {
        let o = Command::new(env!("CARGO_BIN_EXE_lens-inspect"))
            .args(args)
            .env("LENS_INSPECT_HOME", isolated_home())
            .output()
            .expect("run");
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        assert_eq!(text.trim().lines().count(), 1, "{args:?} printed more than one line: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
    };
    let sim = dir.path().join("sim");
    let sheet = dir.path().join("sheet.png");
    let r = run(&["simulate", "--n", "6", "--out", s(&sim), "--seed", "4", "--contact-sheet", s(&sheet), "--json"]);
    assert_eq!(r["written"], 6);
    let db = dir.path().join("p.lensproj");
    run(&["ingest", s(&sim), "--project", s(&db), "--json"]);
    let r = run(&["inspectors", "add", "rita", "--role", "researcher", "--project", s(&db), "--json"]);
    assert_eq!((r["name"].as_str(), r["role"].as_str()), (Some("rita"), Some("researcher")));
    let cat = dir.path().join("cat.csv");
    let regions = dir.path().join("regions");
    let r = run(&["export", "--project", s(&db), "--out", s(&cat), "--regions", s(&regions), "--json"]);
    assert_eq!(r["catalogue"]["candidates"], 6);
    assert_eq!(r["regions"]["files"], 0);
    let pack = dir.path().join("rita.pack");
    let r =
        run(&["pack", "export", "--project", s(&db), "--out", s(&pack), "--inspector", "rita", "--n", "2", "--json"]);
    assert_eq!(r["candidates"], 2);
    let png = dir.path().join("g.png");
    let r = run(&["render", "--project", s(&db), "--candidate", "100001", "--out", s(&png), "--band", "g", "--json"]);
    assert_eq!((r["view"].as_str(), r["width"].as_u64()), (Some("g"), Some(101)), "simulated cutouts are 101 px");
    assert!(png.exists());
    let map = dir.path().join("map.png");
    let r = run(&["explain", "--project", s(&db), "--candidate", "100002", "--out", s(&map), "--json"]);
    let p = r["p_lens"].as_f64().expect("p_lens");
    assert!((0.0..=1.0).contains(&p), "P(lens) {p}");
    assert_eq!(r["method"].as_str(), Some("evidence"));
    assert!(map.exists());
    let model = dir.path().join("m.lensmodel");
    let r = run(&[
        "train",
        "--data",
        s(&sim),
        "--val-data",
        s(&sim),
        "--arch",
        "cnn",
        "--epochs",
        "2",
        "--steps-per-epoch",
        "1",
        "--batch",
        "2",
        "--augment",
        "dihedral",
        "--out",
        s(&model),
        "--json",
    ]);
    assert_eq!(r["epochs_run"], 2);
    assert!(matches!(r["best_epoch"].as_u64(), Some(1 | 2)), "{r}");
    assert!(model.exists());
    // The card says which augmentation trained the model: here turns and flips only.
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.with_extension("json")).expect("card")).expect("json");
    let aug = &card["provenance"]["config"]["augment"];
    assert_eq!((aug["dihedral"].as_bool(), aug["free_rotation"].as_bool()), (Some(true), Some(false)), "{aug}");
    assert_eq!((aug["max_zoom"].as_f64(), aug["max_noise"].as_f64()), (Some(1.0), Some(0.0)), "{aug}");
}

#[test]
fn evaluating_a_project_with_another_model_is_refused_not_silently_wrong() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("p.lensproj");
    let o = Command::new(env!("CARGO_BIN_EXE_lens-inspect"))
        .args(["evaluate", "--project", s(&db), "--model", "models/lens-detector-kids.lensmodel"])
        .env("LENS_INSPECT_HOME", isolated_home())
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("score --project") && err.contains("--model MODEL"), "{err}");
}

/// `--cpu avx2` hides AVX-512 from every library, and the AVX2 path gives the same pictures and
/// scores as the native one. Machines without CPUID faulting must refuse it by name instead.
#[test]
fn the_avx2_path_hides_avx512_and_renders_and_scores_as_the_native_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let bench = lens_inspect(&["--cpu", "avx2", "bench", "composite", "--iterations", "2"]);
    if !bench.status.success() {
        let err = String::from_utf8_lossy(&bench.stderr);
        assert!(err.contains("CPUID faulting") || err.contains("x86-64"), "unexplained refusal: {err}");
        return;
    }
    let line: serde_json::Value = serde_json::from_slice(&bench.stdout).expect("json");
    let cpu = line["cpu"].as_str().expect("cpu field");
    assert!(!cpu.contains("avx512"), "AVX-512 still seen: {cpu}");
    let env_bench = Command::new(env!("CARGO_BIN_EXE_lens-inspect"))
        .args(["bench", "composite", "--iterations", "1"])
        .env("LENS_INSPECT_HOME", isolated_home())
        .env("LENS_INSPECT_CPU", "avx2")
        .output()
        .expect("run");
    let line: serde_json::Value = serde_json::from_slice(&env_bench.stdout).expect("json");
    assert!(!line["cpu"].as_str().expect("cpu").contains("avx512"), "LENS_INSPECT_CPU=avx2 ignored");

    let data = dir.path().join("sims");
    let out = lens_inspect(&["simulate", "--look", "kids", "--n", "12", "--seed", "31", "--out", s(&data)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let evaluate = |cpu: &str, roc: &Path| {
        let out = lens_inspect(&[
            "--cpu",
            cpu,
            "evaluate",
            "--data",
            s(&data),
            "--bootstrap",
            "0",
            "--json",
            "--roc",
            s(roc),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let thresholds: Vec<f64> = std::fs::read_to_string(roc)
            .expect("roc")
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().expect("threshold").parse().expect("number"))
            .collect();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        (v["auroc"].as_f64().expect("auroc"), thresholds)
    };
    let (auroc_native, t_native) = evaluate("native", &dir.path().join("native.csv"));
    let (auroc_avx2, t_avx2) = evaluate("avx2", &dir.path().join("avx2.csv"));
    assert_eq!(auroc_native, auroc_avx2);
    assert_eq!(t_native.len(), t_avx2.len());
    for (a, b) in t_native.iter().zip(&t_avx2) {
        assert!(a == b || (a - b).abs() < 1e-4, "scores differ between the paths: {a} vs {b}");
    }

    let db = dir.path().join("p.lensproj");
    assert!(lens_inspect(&["ingest", s(&data), "--project", s(&db)]).status.success());
    let render = |cpu: &str, png: &Path| {
        let out =
            lens_inspect(&["--cpu", cpu, "render", "--project", s(&db), "--candidate", "100000", "--out", s(png)]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        image::open(png).expect("png").to_rgb8()
    };
    let native = render("native", &dir.path().join("n.png"));
    let avx2 = render("avx2", &dir.path().join("a.png"));
    let worst =
        native.pixels().zip(avx2.pixels()).flat_map(|(p, q)| (0..3).map(move |k| p.0[k].abs_diff(q.0[k]))).max();
    assert!(worst.unwrap_or(0) <= 1, "composites differ by {worst:?} levels");
}

/// Training on fresh simulations turns and flips them only (resampling would smooth their
/// noise); a folder seen many times gets the full augmentation. The card says which.
#[test]
fn train_defaults_to_dihedral_augmentation_on_fresh_simulations_and_full_on_folders() {
    let dir = tempfile::tempdir().expect("tmp");
    let card_of = |model: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(model.with_extension("json")).expect("card")).expect("json")
    };
    let augment_of = |model: &Path| card_of(model)["provenance"]["config"]["augment"].clone();
    let tiny = ["--arch", "cnn", "--epochs", "1", "--steps-per-epoch", "1", "--batch", "2", "--json"];
    let streamed = dir.path().join("streamed.lensmodel");
    let mut args = vec!["train", "--simulate", "--look", "kids", "--val-n", "6", "--out", s(&streamed)];
    args.extend(["--boost", "ring_galaxy=2.5", "--boost", "merger=0.5"]);
    args.extend(tiny);
    let o = lens_inspect(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The card says which look-alikes training saw more (or less) of than the simulator draws.
    let boost = card_of(&streamed)["provenance"]["kind_boost"].clone();
    assert_eq!(boost, serde_json::json!({"ring_galaxy": 2.5, "merger": 0.5}), "{boost}");
    let aug = augment_of(&streamed);
    assert_eq!((aug["dihedral"].as_bool(), aug["free_rotation"].as_bool()), (Some(true), Some(false)), "{aug}");
    assert_eq!(aug["max_zoom"].as_f64(), Some(1.0), "{aug}");

    let sim = dir.path().join("sim");
    assert!(lens_inspect(&["simulate", "--look", "kids", "--n", "6", "--out", s(&sim)]).status.success());
    let folder = dir.path().join("folder.lensmodel");
    let mut args = vec!["train", "--data", s(&sim), "--val-data", s(&sim), "--out", s(&folder)];
    args.extend(tiny);
    let o = lens_inspect(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let aug = augment_of(&folder);
    assert_eq!((aug["free_rotation"].as_bool(), aug["max_zoom"].as_f64()), (Some(true), Some(1.5)), "{aug}");
}

/// `evaluate --scores` writes each cutout's score, best first, with the truth it was judged by:
/// the file must tell the same AUROC as the command, name every cutout once, and carry each
/// cutout's own label.
#[test]
fn evaluate_writes_every_cutouts_score_best_first_consistent_with_its_auroc() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("sims");
    let out = lens_inspect(&["simulate", "--look", "kids", "--n", "16", "--seed", "5", "--out", s(&data)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = dir.path().join("scores.csv");
    let out = lens_inspect(&["evaluate", "--data", s(&data), "--bootstrap", "0", "--json", "--scores", s(&csv)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let truth: std::collections::HashMap<String, u8> = std::fs::read_to_string(data.join("classifications.csv"))
        .expect("truth")
        .lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split(',');
            (f.next().expect("ID").to_string(), f.next().expect("is_lens").parse().expect("0/1"))
        })
        .collect();
    let text = std::fs::read_to_string(&csv).expect("scores file");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("name,is_lens,score"));
    let rows: Vec<(String, u8, f64)> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[1].parse().expect("label"), f[2].parse().expect("score"))
        })
        .collect();
    assert_eq!(rows.len(), 16);
    let names: std::collections::HashSet<&String> = rows.iter().map(|r| &r.0).collect();
    assert_eq!(names.len(), 16, "each cutout once");
    for (name, label, _) in &rows {
        assert_eq!(truth.get(name), Some(label), "{name}: its own truth");
    }
    assert!(rows.windows(2).all(|w| w[0].2 >= w[1].2), "best first");
    // AUROC from the file: pairs of (lens, non-lens) ordered right, ties counting half.
    let (lenses, others): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.1 == 1);
    let mut won = 0.0;
    for l in &lenses {
        for o in &others {
            won += if l.2 > o.2 {
                1.0
            } else if l.2 == o.2 {
                0.5
            } else {
                0.0
            };
        }
    }
    let auroc = won / (lenses.len() * others.len()) as f64;
    assert!((auroc - v["auroc"].as_f64().expect("auroc")).abs() < 1e-6, "{auroc} vs {}", v["auroc"]);
}

/// A folder the model cannot measure on (no lenses, or nothing readable) is an error that says
/// why, not a table of NaN.
#[test]
fn evaluate_refuses_a_folder_without_both_classes() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("sims");
    let out = lens_inspect(&[
        "simulate",
        "--look",
        "kids",
        "--n",
        "8",
        "--seed",
        "3",
        "--lens-fraction",
        "0",
        "--out",
        s(&data),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = lens_inspect(&["evaluate", "--data", s(&data), "--bootstrap", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing to measure: 8 cutouts were read, 0 of them lenses"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("NaN"));
}

/// `--keep-blank-bands` reaches the folder reader of `evaluate`: without it a folder whose u
/// band is all NaN has nothing to measure, with it every cutout is scored.
#[test]
fn evaluate_keeps_cutouts_with_a_blank_band_only_when_asked() {
    use lens_inspect::survey::fits_write::{self, ImageHdu};
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("sims");
    let out = lens_inspect(&["simulate", "--look", "kids", "--n", "10", "--seed", "4", "--out", s(&data)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let nan = ImageHdu::f32_image(101, 101, vec![f32::NAN; 101 * 101]);
    for k in 0..10 {
        let path = bologna_path(&data, Band::U, &format!("{}", 100_000 + k));
        assert!(path.exists(), "{}", path.display());
        fits_write::write_file(&path, Some(&nan), &[]).expect("write");
    }
    let out = lens_inspect(&["evaluate", "--data", s(&data), "--bootstrap", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("band u has no valid pixel") && err.contains("nothing to measure: 0 cutouts"), "{err}");
    let out = lens_inspect(&["evaluate", "--data", s(&data), "--bootstrap", "0", "--keep-blank-bands", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["n"].as_u64(), Some(10), "{v}");
}

/// `train --unlabelled --teacher`: a folder without truth is labelled by the teacher's 8-view
/// scores (as many lenses as `evaluate --tta 8` scores at 0.5 or more), the card says who
/// taught, and the run is refused where labels would still be needed.
#[test]
fn an_unlabelled_folder_is_labelled_by_the_teachers_eight_views_and_refused_without_a_whole_teacher() {
    let dir = tempfile::tempdir().expect("tmp");
    let sim = dir.path().join("sim");
    assert!(lens_inspect(&["simulate", "--look", "kids", "--n", "12", "--seed", "8", "--out", s(&sim)])
        .status
        .success());
    let teacher = "models/lens-detector.lensmodel";
    let scores = dir.path().join("scores.csv");
    let o = lens_inspect(&["evaluate", "--model", teacher, "--data", s(&sim), "--tta", "8", "--scores", s(&scores)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let believed = std::fs::read_to_string(&scores)
        .expect("scores")
        .lines()
        .skip(1)
        .filter(|l| l.rsplit(',').next().and_then(|p| p.parse::<f64>().ok()).is_some_and(|p| p >= 0.5))
        .count();
    std::fs::remove_file(sim.join("classifications.csv")).expect("rm truth");

    let model = dir.path().join("adapted.lensmodel");
    let tiny = ["--arch", "cnn", "--epochs", "1", "--steps-per-epoch", "1", "--batch", "2", "--val-fraction", "0.25"];
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--data", s(&sim), "--out", s(&model)];
        args.extend(tiny);
        args.extend(extra);
        lens_inspect(&args)
    };
    let o = train(&["--teacher", teacher]);
    assert!(!o.status.success(), "a folder without truth needs --unlabelled");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("classifications.csv"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = train(&["--unlabelled"]);
    assert!(!o.status.success(), "--unlabelled without a teacher has no targets");
    let o = train(&["--unlabelled", "--teacher", teacher, "--teacher-weight", "0.5"]);
    assert!(!o.status.success(), "half the targets would be labels nobody gave");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--teacher-weight 1"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let o = train(&["--unlabelled", "--teacher", teacher]);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    assert!(log.contains(&format!("the teacher calls {believed} of 12 cutouts lenses")), "{log}");
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.with_extension("json")).expect("card")).expect("json");
    let taught = &card["provenance"]["teacher"];
    assert_eq!(
        (taught["model"].as_str(), taught["views"].as_u64(), taught["weight"].as_f64()),
        (Some(teacher), Some(8), Some(1.0)),
        "{taught}"
    );
    assert_eq!(card["provenance"]["unlabelled"].as_bool(), Some(true), "{card}");

    // `adapt` is that run with the model as its own teacher and starting point.
    let adapted = dir.path().join("adapt.lensmodel");
    let o = lens_inspect(&["adapt", "--data", s(&sim), "--model", teacher, "--out", s(&adapted), "--epochs", "1"]);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    assert!(log.contains(&format!("the teacher calls {believed} of 12 cutouts lenses")), "{log}");
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(adapted.with_extension("json")).expect("card")).expect("json");
    let p = &card["provenance"];
    assert_eq!((p["init"].as_str(), p["teacher"]["model"].as_str()), (Some(teacher), Some(teacher)), "{p}");
    assert_eq!((p["teacher"]["views"].as_u64(), p["unlabelled"].as_bool()), (Some(8), Some(true)), "{p}");
    let o = lens_inspect(&["adapt", "--data", s(&sim), "--model", "no-such.lensmodel", "--out", s(&adapted)]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such.lensmodel"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `adapt --top K` keeps the K cutouts the teacher's 8 views rank highest: the lowest score it
/// kept is the K-th highest of `evaluate --tta 8`, and the lenses it counts among them are
/// those of that ranking.
#[test]
fn adapting_on_the_top_k_keeps_the_cutouts_the_eight_views_rank_highest() {
    let dir = tempfile::tempdir().expect("tmp");
    let sim = dir.path().join("sim");
    assert!(lens_inspect(&["simulate", "--look", "kids", "--n", "16", "--seed", "9", "--out", s(&sim)])
        .status
        .success());
    let teacher = "models/lens-detector.lensmodel";
    let scores = dir.path().join("scores.csv");
    let o = lens_inspect(&["evaluate", "--model", teacher, "--data", s(&sim), "--tta", "8", "--scores", s(&scores)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Parsed as the f32 both sides computed, so both round the same number to 4 decimals.
    let mut p: Vec<f32> = std::fs::read_to_string(&scores)
        .expect("scores")
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().and_then(|p| p.parse().ok()).expect("score"))
        .collect();
    p.sort_by(|a, b| b.total_cmp(a));
    let believed = p[..6].iter().filter(|&&v| v >= 0.5).count();
    std::fs::remove_file(sim.join("classifications.csv")).expect("rm truth");

    let adapted = dir.path().join("adapt.lensmodel");
    // One epoch of `adapt` with these selection flags: its log and its card's provenance.
    let adapt = |selection: &[&str]| {
        let mut args = vec!["adapt", "--data", s(&sim), "--model", teacher, "--out", s(&adapted), "--epochs", "1"];
        args.extend(selection);
        let o = lens_inspect(&args);
        let log = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{log}");
        let card: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(adapted.with_extension("json")).expect("card"))
                .expect("json");
        (log, card["provenance"].clone())
    };
    let kept_cutouts =
        |prov: &serde_json::Value| prov["train_cutouts"].as_u64().zip(prov["val_cutouts"].as_u64()).map(|(a, b)| a + b);

    let (log, prov) = adapt(&["--top", "6", "--sample", "0"]);
    let kept = format!(
        "kept the 6 of 16 cutouts the teacher ranks highest (P >= {:.4}); it calls {believed} of them lenses",
        p[5]
    );
    assert!(log.contains(&kept), "expected «{kept}» in\n{log}");
    assert_eq!(prov["top"].as_u64(), Some(6), "{prov}");
    assert_eq!(kept_cutouts(&prov), Some(6), "{prov}");
    let o = lens_inspect(&["adapt", "--data", s(&sim), "--out", s(&adapted), "--top", "0"]);
    assert!(!o.status.success(), "keeping no cutout adapts on nothing");
    let (log, prov) = adapt(&["--top", "16"]);
    assert!(log.contains("--top 16 keeps all 16 cutouts"), "a top as large as the folder is said: {log}");
    assert_eq!(kept_cutouts(&prov), Some(16), "{prov}");

    // Others from the rest are added, as many as the top unless --sample says otherwise; the
    // top part is the same ranking.
    let (log, prov) = adapt(&["--top", "4"]);
    let kept = format!(
        "kept the 4 of 16 cutouts the teacher ranks highest (P >= {:.4}) and 4 of the rest drawn at random",
        p[3]
    );
    assert!(log.contains(&kept), "expected «{kept}» in\n{log}");
    assert_eq!((prov["top"].as_u64(), prov["random_others"].as_u64()), (Some(4), Some(4)), "{prov}");
    assert_eq!(kept_cutouts(&prov), Some(8), "{prov}");
    let (_, prov) = adapt(&["--top", "4", "--sample", "3"]);
    assert_eq!((prov["random_others"].as_u64(), kept_cutouts(&prov)), (Some(3), Some(7)), "{prov}");
    let o = lens_inspect(&["adapt", "--data", s(&sim), "--out", s(&adapted), "--sample", "3"]);
    assert!(!o.status.success(), "--sample without --top has no top to add to");
}

/// `adapt --project` chooses a survey's candidates by the scores the project already holds and
/// reads only those: the lowest chosen score is the K-th highest stored one, the random others
/// come on top, and the project's training candidates are never the survey.
#[test]
fn adapting_on_a_project_chooses_by_its_stored_scores() {
    let dir = tempfile::tempdir().expect("tmp");
    let (survey, db) = (dir.path().join("survey"), dir.path().join("p.lensproj"));
    assert!(lens_inspect(&["simulate", "--look", "kids", "--n", "16", "--seed", "5", "--out", s(&survey)])
        .status
        .success());
    // The first 4 objects become training candidates (truth known), the other 12 the survey.
    let truth = std::fs::read_to_string(survey.join("classifications.csv")).expect("truth");
    let training = dir.path().join("training.csv");
    std::fs::write(&training, truth.lines().take(5).collect::<Vec<_>>().join("\n")).expect("write");
    lens_inspect(&["ingest", s(&survey), "--project", s(&db), "--training", "--truth", s(&training)]);
    assert!(lens_inspect(&["ingest", s(&survey), "--project", s(&db)]).status.success());
    let out = dir.path().join("adapted.lensmodel");
    let adapt = |extra: &[&str]| {
        let mut args = vec!["adapt", "--project", s(&db), "--out", s(&out), "--epochs", "1"];
        args.extend(extra);
        lens_inspect(&args)
    };
    let o = adapt(&["--top", "3"]);
    assert!(!o.status.success(), "an unscored project has no top to choose");
    assert!(String::from_utf8_lossy(&o.stderr).contains("score --project"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(lens_inspect(&["score", "--project", s(&db)]).status.success());

    let project = lens_inspect::project::Project::open_read_only(&db).expect("project");
    let (version, stored) = project.latest_predictions().expect("predictions");
    let survey_ids: Vec<i64> =
        project.candidates().expect("rows").iter().filter(|c| !c.is_training).map(|c| c.id).collect();
    assert_eq!((survey_ids.len(), stored.len()), (12, 16), "12 survey candidates, all 16 scored");
    let mut p: Vec<f32> = survey_ids.iter().map(|id| stored[id]).collect();
    p.sort_by(|a, b| b.total_cmp(a));
    drop(project);

    let o = adapt(&["--top", "3", "--sample", "2"]);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    let chose = format!(
        "chose the 3 of 12 survey candidates the project's latest scores ({}) rank highest (P >= {:.4}) and 2 of the rest drawn at random",
        version.expect("a scoring version"),
        p[2]
    );
    assert!(log.contains(&chose), "expected «{chose}» in\n{log}");
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).expect("card")).expect("json");
    let prov = &card["provenance"];
    assert_eq!(prov["from_project"].as_bool(), Some(true), "{prov}");
    let read = prov["train_cutouts"].as_u64().zip(prov["val_cutouts"].as_u64()).map(|(a, b)| a + b);
    assert_eq!(read, Some(5), "only the chosen candidates are read: {prov}");

    // Without --top: every survey candidate, none of the training ones.
    let o = adapt(&[]);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && log.contains("chose all 12 survey candidates"), "{log}");
    let o = lens_inspect(&["adapt", "--project", s(&db), "--data", s(&survey), "--out", s(&out)]);
    assert!(!o.status.success(), "a project and a folder at once are refused");
}

/// A run that continues a model keeps its preprocessing unless told otherwise: fine-tuning a
/// model whose inputs were compressed beyond a knee, without repeating --knee-sigma, must not
/// quietly train it on hard-clipped inputs.
#[test]
fn a_continued_model_keeps_its_knee_unless_another_is_given() {
    let dir = tempfile::tempdir().expect("tmp");
    let sim = dir.path().join("sim");
    assert!(lens_inspect(&["simulate", "--look", "kids", "--n", "6", "--out", s(&sim)]).status.success());
    let knee_of = |model: &Path| -> Option<f64> {
        let card: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(model.with_extension("json")).expect("card")).expect("json");
        card["knee_sigma"].as_f64()
    };
    let tiny = ["--arch", "cnn", "--epochs", "1", "--steps-per-epoch", "1", "--batch", "2"];
    let train = |out: &Path, extra: &[&str]| {
        let mut args = vec!["train", "--data", s(&sim), "--val-data", s(&sim), "--out", s(out)];
        args.extend(tiny);
        args.extend(extra);
        let o = lens_inspect(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let kneed = dir.path().join("kneed.lensmodel");
    train(&kneed, &["--knee-sigma", "10"]);
    assert_eq!(knee_of(&kneed), Some(10.0));
    let continued = dir.path().join("continued.lensmodel");
    train(&continued, &["--init", s(&kneed)]);
    assert_eq!(knee_of(&continued), Some(10.0), "the continued model's knee is kept");
    let changed = dir.path().join("changed.lensmodel");
    train(&changed, &["--init", s(&kneed), "--knee-sigma", "0"]);
    assert_eq!(knee_of(&changed), Some(0.0), "a knee given on the command line wins");
    let fresh = dir.path().join("fresh.lensmodel");
    train(&fresh, &[]);
    assert_eq!(knee_of(&fresh), Some(0.0), "a new model clips hard by default");
}
