//! Many inspectors: SWAP learning skills in a simulated crowd, session packs merged in any order,
//! refused packs, grade imports, and catalogue exports.

mod common;

use lens_inspect::consensus::swap::{Classification, Swap, SwapConfig};
use lens_inspect::consensus::{Consensus, SeedRule};
use lens_inspect::model::metrics::challenge_metrics;
use lens_inspect::project::export::{catalogue, write_catalogue, MinVerdict, Provenance};
use lens_inspect::project::pack::{export_pack, merge_pack, PackError, PackOptions};
use lens_inspect::project::{NewCandidate, NewGrade, Project, Role, Score, Truth};
use lens_inspect::survey::{ObjectSource, ObjectSpec};
use rand::{RngExt, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;

#[test]
fn swap_learns_inspector_skill_and_ranks_better_than_the_mean_grade() {
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(2026);
    let n_inspectors = 10;
    let truth_skill: Vec<(f64, f64)> =
        (0..n_inspectors).map(|_| (rng.random_range(0.55..0.95), rng.random_range(0.55..0.95))).collect();
    let grade = |rng: &mut rand_pcg::Pcg64Mcg, who: usize, is_lens: bool| -> Score {
        let (pl, pd) = truth_skill[who];
        let says_lens = if is_lens { rng.random_bool(pl) } else { !rng.random_bool(pd) };
        match (says_lens, rng.random_bool(0.5)) {
            (true, true) => Score::Sure,
            (true, false) => Score::Maybe,
            (false, true) => Score::Interesting,
            (false, false) => Score::No,
        }
    };
    let mut swap: Swap<usize, usize> = Swap::new(SwapConfig { prior: 0.1, ..SwapConfig::default() });
    // 100 training candidates per inspector, half of them lenses.
    let mut stream: Vec<(usize, usize, Option<bool>)> = Vec::new();
    for who in 0..n_inspectors {
        for k in 0..100 {
            stream.push((who, 1_000_000 + k, Some(k % 2 == 0)));
        }
    }
    // 1500 real candidates, 10 % lenses, each graded by 4 inspectors.
    let real_truth: Vec<bool> = (0..1500).map(|_| rng.random_bool(0.1)).collect();
    for c in 0..real_truth.len() {
        let mut who: Vec<usize> = (0..n_inspectors).collect();
        for k in 0..4 {
            let j = rng.random_range(k..n_inspectors);
            who.swap(k, j);
            stream.push((who[k], c, None));
        }
    }
    // Training first (inspectors calibrate as they go in practice; here all before, so the
    // posterior uses settled skills), real grades after.
    let mut grades_of: BTreeMap<usize, Vec<Score>> = BTreeMap::new();
    for &(who, subject, training) in &stream {
        let is_lens = training.unwrap_or_else(|| real_truth[subject]);
        let s = grade(&mut rng, who, is_lens);
        if training.is_none() {
            grades_of.entry(subject).or_default().push(s);
        }
        swap.update(&Classification { inspector: who, subject, says_lens: s.says_lens(), training_truth: training });
    }
    let mut errors = Vec::new();
    for (who, &(pl, pd)) in truth_skill.iter().enumerate() {
        let a = swap.agent(&who);
        errors.push((a.pl - pl).abs());
        errors.push((a.pd - pd).abs());
        eprintln!("inspector {who}: true PL {pl:.3} PD {pd:.3}, learnt PL {:.3} PD {:.3}", a.pl, a.pd);
    }
    let within = errors.iter().filter(|&&e| e <= 0.1).count();
    let max = errors.iter().cloned().fold(0.0, f64::max);
    eprintln!("learnt skills within 0.1 of the truth: {within} of {}; largest error {max:.3}", errors.len());
    assert!(within * 10 >= errors.len() * 9, "{within} of {} within 0.1", errors.len());
    assert!(max < 0.2, "largest error {max}");
    let subjects: Vec<usize> = (0..real_truth.len()).collect();
    let truth: Vec<bool> = subjects.iter().map(|&s| real_truth[s]).collect();
    let swap_scores: Vec<f64> = subjects.iter().map(|s| swap.posterior(s)).collect();
    let mean_scores: Vec<f64> = subjects
        .iter()
        .map(|s| grades_of[s].iter().map(|g| g.value() as f64).sum::<f64>() / grades_of[s].len() as f64)
        .collect();
    let a_swap = challenge_metrics(&swap_scores, &truth).auroc;
    let a_mean = challenge_metrics(&mean_scores, &truth).auroc;
    eprintln!("AUROC of SWAP posterior {a_swap:.4} vs mean grade {a_mean:.4}");
    assert!(a_swap > a_mean, "SWAP {a_swap} should beat the mean grade {a_mean}");
}

fn project_with(path: &Path, n: usize, training: usize) -> Project {
    let mut p = Project::create_or_open(path).expect("project");
    let items: Vec<NewCandidate> = (0..n)
        .map(|k| {
            let c = common::cutout(&format!("c{k:03}"), k as u64);
            let spec = ObjectSpec {
                name: c.name.clone(),
                source: ObjectSource::File { path: "/nowhere.fits".into() },
                ra_deg: Some(150.0 + k as f64 * 1e-3),
                dec_deg: Some(2.0),
                tile: Some("KIDS_150.0_2.5".into()),
                metadata: BTreeMap::new(),
            };
            let mut nc = NewCandidate::from_cutout(spec, &c, true);
            if k < training {
                nc.is_training = true;
                nc.truth = Some(Truth { is_lens: k % 2 == 0, extra: BTreeMap::new() });
            }
            nc
        })
        .collect();
    p.insert_candidates(&items).expect("insert");
    p
}

/// Grades in a pack (opened as a project, as the GUI does).
fn grade_in(path: &Path, who: &str, grades: &[(&str, u8)]) {
    let mut p = Project::open_existing(path).expect("open pack");
    let i = p.inspector(who, Role::Volunteer).expect("inspector");
    let session = p.start_session(i.id, "offline").expect("session");
    for (name, score) in grades {
        let c = p.candidate_by_name(name).expect("candidate");
        p.record_grade(&NewGrade {
            candidate_id: c.id,
            inspector_id: i.id,
            score: Score::from_value(*score as i64),
            session_id: Some(session.clone()),
            comment: (*score == 5).then(|| format!("{who} likes {name}")),
            points: vec![],
        })
        .expect("grade");
    }
}

/// (uid, candidate/inspector, score, time, comment) of every event, sorted.
type EventRow = (String, String, Option<u8>, String, Option<String>);

fn event_set(p: &Project) -> Vec<EventRow> {
    let names: BTreeMap<i64, String> = p.candidates().expect("rows").into_iter().map(|c| (c.id, c.name)).collect();
    let who: BTreeMap<i64, String> = p.inspectors().expect("inspectors").into_iter().map(|i| (i.id, i.name)).collect();
    let mut v: Vec<_> = p
        .grade_events()
        .expect("events")
        .into_iter()
        .map(|e| {
            (
                e.uid,
                format!("{}/{}", names[&e.candidate_id], who[&e.inspector_id]),
                e.score.map(|s| s.value()),
                e.time,
                e.comment,
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn packs_merge_in_any_order_once_and_match_grading_directly() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("survey.lensproj");
    let mut project = project_with(&src, 12, 4);
    let all: Vec<String> = project.candidates().expect("rows").into_iter().map(|c| c.name).collect();
    let (pa, pb) = (dir.path().join("ann.pack"), dir.path().join("bob.pack"));
    let opts = |who: &str| PackOptions { inspector: who.into(), names: all.clone(), ..Default::default() };
    assert_eq!(export_pack(&mut project, &pa, &opts("ann")).expect("pack a"), 12);
    export_pack(&mut project, &pb, &opts("bob")).expect("pack b");
    drop(project);
    let ann = [("c000", 5), ("c001", 0), ("c004", 5), ("c005", 3), ("c006", 0)];
    let bob = [("c000", 3), ("c001", 1), ("c004", 3), ("c005", 0), ("c007", 5)];
    grade_in(&pa, "ann", &ann);
    grade_in(&pb, "bob", &bob);

    let copy = |name: &str| {
        let p = dir.path().join(name);
        std::fs::copy(&src, &p).expect("copy");
        p
    };
    let (ab, ba) = (copy("ab.lensproj"), copy("ba.lensproj"));
    let mut p_ab = Project::open_existing(&ab).expect("ab");
    let r1 = merge_pack(&mut p_ab, &pa).expect("merge a");
    let r2 = merge_pack(&mut p_ab, &pb).expect("merge b");
    assert_eq!((r1.added, r2.added), (5, 5));
    let again = merge_pack(&mut p_ab, &pa).expect("merge a again");
    assert_eq!((again.added, again.already_present), (0, 5), "merging twice adds nothing");
    let mut p_ba = Project::open_existing(&ba).expect("ba");
    merge_pack(&mut p_ba, &pb).expect("merge b");
    merge_pack(&mut p_ba, &pa).expect("merge a");
    merge_pack(&mut p_ba, &pb).expect("merge b again");
    assert_eq!(event_set(&p_ab), event_set(&p_ba), "order does not matter");
    assert_eq!(event_set(&p_ab).len(), 10);

    // Grading the same in the project directly gives the same grades and verdicts.
    let direct = copy("direct.lensproj");
    grade_in(&direct, "ann", &ann);
    grade_in(&direct, "bob", &bob);
    let p_direct = Project::open_existing(&direct).expect("direct");
    let strip = |v: Vec<EventRow>| {
        let mut w: Vec<_> = v.into_iter().map(|(_, cw, s, _, c)| (cw, s, c)).collect();
        w.sort();
        w
    };
    assert_eq!(strip(event_set(&p_ab)), strip(event_set(&p_direct)));
    let rows =
        |p: &Project| catalogue(p, &SeedRule::default(), SwapConfig::default(), MinVerdict::All).expect("catalogue");
    assert_eq!(rows(&p_ab), rows(&p_direct));
    let c004 = rows(&p_ab).into_iter().find(|r| r.name == "c004").expect("c004");
    assert!(c004.seed_rule && c004.n_grades == 2 && c004.n5 == 1 && c004.n3 == 1);
    let catalogued: Vec<String> = rows(&p_ab).into_iter().map(|r| r.name).collect();
    assert_eq!(catalogued.len(), 8, "the 4 training candidates are not catalogued");
    assert!(!catalogued.contains(&"c000".to_string()));
}

#[test]
fn damaged_forged_foreign_and_newer_packs_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("survey.lensproj");
    let mut project = project_with(&src, 6, 0);
    let names: Vec<String> = project.candidates().expect("rows").into_iter().map(|c| c.name).collect();
    let pack = dir.path().join("p.pack");
    export_pack(
        &mut project,
        &pack,
        &PackOptions { inspector: "ann".into(), names: names.clone(), ..Default::default() },
    )
    .expect("pack");
    drop(project);
    grade_in(&pack, "ann", &[("c000", 5), ("c001", 0)]);
    let bytes = std::fs::read(&pack).expect("read");
    // The project's secret never leaves it.
    let secret: String = rusqlite::Connection::open(&src)
        .expect("raw")
        .query_row("SELECT value FROM project_meta WHERE key = 'secret'", [], |r| r.get(0))
        .expect("secret");
    assert_eq!(secret.len(), 64);
    assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "the pack holds the project's secret");
    let mut p = Project::open_existing(&src).expect("open");
    let before = event_set(&p);
    let this_project = p.project_id().expect("id");
    let mut tried = 0;
    let mut refused = |name: &str, data: &[u8], needle: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, data).expect("write");
        match merge_pack(&mut p, &path) {
            Err(PackError::Refused { reason, .. }) => assert!(reason.contains(needle), "{name}: {reason}"),
            other => panic!("{name}: expected a refusal, got {:?}", other.map(|r| r.added)),
        }
        tried += 1;
    };
    // A forgery: the pack's bytes changed with SQL, as anyone with sqlite3 could.
    let forge = |name: &str, sql: &str| -> Vec<u8> {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).expect("copy");
        let conn = rusqlite::Connection::open(&path).expect("raw");
        conn.execute_batch(sql).expect("forge");
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;").expect("fold");
        drop(conn);
        std::fs::read(&path).expect("read")
    };
    refused("half.pack", &bytes[..bytes.len() / 2], "damaged");
    refused("empty.pack", &[], "");
    refused("text.pack", b"not a pack at all, just words, words and more words to fill a page", "");
    let pixels = forge("pixels.db", "UPDATE pixels SET data = zeroblob(length(data)) WHERE rowid = 1");
    refused("pixels.pack", &pixels, "pixels");
    let truth = forge("truth.db", "UPDATE candidates SET is_training = 1, truth_is_lens = 1 WHERE name = 'c002'");
    refused("truth.pack", &truth, "signature");
    let settings = forge("settings.db", "UPDATE project_meta SET value = '{}' WHERE key = 'display_settings'");
    refused("settings.pack", &settings, "settings");
    // Events: one added, one changed (the append-only trigger dropped first), one removed.
    let added = forge(
        "added.db",
        "INSERT INTO grade_events (uid, candidate_id, inspector_id, score, time)
         SELECT 'forged', candidate_id, inspector_id, 5, '2030-01-01T00:00:00.000Z' FROM grade_events LIMIT 1",
    );
    refused("added.pack", &added, "events were changed");
    let changed = forge(
        "changed.db",
        "DROP TRIGGER grade_events_append_only_update; UPDATE grade_events SET score = 5 WHERE score = 0",
    );
    refused("changed.pack", &changed, "events were changed");
    let removed =
        forge("removed.db", "DROP TRIGGER grade_events_append_only_delete; DELETE FROM grade_events WHERE score = 0");
    refused("removed.pack", &removed, "events were changed");
    // Passed off as another inspector's pack, or with a made-up key.
    let renamed = forge("renamed.db", "UPDATE project_meta SET value = 'bob' WHERE key = 'pack_inspector'");
    refused("renamed.pack", &renamed, "not made by this project");
    let rekeyed =
        forge("rekeyed.db", &format!("UPDATE project_meta SET value = '{}' WHERE key = 'pack_key'", "ab".repeat(32)));
    refused("rekeyed.pack", &rekeyed, "not made by this project");
    // Grades under another name, signed by the program itself (someone else used the pack).
    let other_name = dir.path().join("bob-in-ann.pack");
    std::fs::write(&other_name, &bytes).expect("copy");
    grade_in(&other_name, "bob", &[("c003", 5)]);
    refused("bob-in-ann2.pack", &std::fs::read(&other_name).expect("read"), "made for \"ann\"");
    let unsigned = forge("unsigned.db", "DELETE FROM project_meta WHERE key = 'content_mac'");
    refused("unsigned.pack", &unsigned, "no signature");
    let newer = forge("newer.db", "PRAGMA user_version = 99");
    refused("newer.pack", &newer, "newer");
    // A pack from another project, even one with the same candidates.
    let mut other = project_with(&dir.path().join("other.lensproj"), 6, 0);
    let foreign = dir.path().join("foreign.pack");
    export_pack(
        &mut other,
        &foreign,
        &PackOptions { inspector: "ann".into(), names: names.clone(), ..Default::default() },
    )
    .expect("foreign pack");
    refused("foreign2.pack", &std::fs::read(&foreign).expect("read"), "another project");
    let relabelled = {
        let id = this_project.clone();
        std::fs::copy(&foreign, dir.path().join("relabelled.db")).expect("copy");
        let conn = rusqlite::Connection::open(dir.path().join("relabelled.db")).expect("raw");
        conn.execute("UPDATE project_meta SET value = ?1 WHERE key = 'source_project_id'", [id]).expect("forge");
        drop(conn);
        std::fs::read(dir.path().join("relabelled.db")).expect("read")
    };
    refused("relabelled.pack", &relabelled, "not made by this project");
    assert_eq!(tried, 16);
    assert_eq!(event_set(&p), before, "nothing was written");
    assert_eq!(p.integrity_check().expect("check"), "ok");
    let ok = merge_pack(&mut p, &pack).expect("the intact pack merges");
    assert_eq!(ok.added, 2);
}

#[test]
fn a_volunteer_pack_reveals_no_scores_truth_metadata_or_other_grades_but_keeps_the_geometry() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("survey.lensproj");
    let mut project = project_with(&src, 8, 3);
    // What must not leak: the model's scores, the truth (in columns and in metadata), and
    // someone else's grades.
    let ids: Vec<i64> = project.candidates().expect("rows").iter().map(|c| c.id).collect();
    let v = project.add_model_version("m", "{}", "{}", None).expect("model");
    project.store_predictions(v, &ids.iter().map(|&id| (id, 0.9)).collect::<Vec<_>>()).expect("scores");
    let mut truths = BTreeMap::new();
    truths.insert(
        "c005".to_string(),
        Truth { is_lens: true, extra: BTreeMap::from([("kind".to_string(), serde_json::json!("lens_ring"))]) },
    );
    project.set_truths(&truths).expect("truth");
    rusqlite::Connection::open(&src)
        .expect("raw")
        .execute(
            "UPDATE candidates SET metadata = '{\"kind\": \"lens_ring\", \"pixel_arcsec\": 0.1, \"blank_bands\": \"u\", \"wcs\": {\"CTYPE1\": \"RA---TAN\"}}' WHERE name = 'c005'",
            [],
        )
        .expect("metadata");
    let bob = project.inspector("bob", Role::Volunteer).expect("bob");
    project
        .record_grade(&NewGrade {
            candidate_id: ids[5],
            inspector_id: bob.id,
            score: Some(Score::Sure),
            ..Default::default()
        })
        .expect("grade");
    project.set_role("rita", Role::Researcher).expect("rita");
    let names: Vec<String> = project.candidates().expect("rows").into_iter().map(|c| c.name).collect();
    let opts = |who: &str, with_scores: bool| PackOptions {
        inspector: who.into(),
        names: names.clone(),
        with_scores,
        ..Default::default()
    };
    let vera = dir.path().join("vera.pack");
    assert!(export_pack(&mut project, &vera, &opts("vera", true)).is_err(), "no scores for a volunteer");
    export_pack(&mut project, &vera, &opts("vera", false)).expect("volunteer pack");
    let rita = dir.path().join("rita.pack");
    export_pack(&mut project, &rita, &opts("rita", true)).expect("researcher pack");
    // Read the files with SQLite directly, as a curious volunteer could.
    let count = |path: &Path, sql: &str| -> i64 {
        rusqlite::Connection::open(path).expect("raw").query_row(sql, [], |r| r.get(0)).expect(sql)
    };
    let leaks = [
        "SELECT count(*) FROM predictions",
        "SELECT count(*) FROM model_versions",
        "SELECT count(*) FROM candidates WHERE truth_is_lens IS NOT NULL OR truth IS NOT NULL OR is_training != 0",
        "SELECT count(*) FROM candidates WHERE json_extract(metadata, '$.kind') IS NOT NULL",
        "SELECT count(*) FROM candidates WHERE name != 'c005' AND metadata != '{}'",
        "SELECT count(*) FROM grade_events",
        "SELECT count(*) FROM inspectors WHERE name != 'vera'",
    ];
    for sql in leaks {
        assert_eq!(count(&vera, sql), 0, "the volunteer's pack leaks: {sql}");
    }
    assert_eq!(count(&vera, "SELECT count(*) FROM candidates"), 8);
    // Only the geometry goes with it: the scale the model must see the pixels at, the WCS, and
    // the bands that hold no image.
    let kept: String = rusqlite::Connection::open(&vera)
        .expect("raw")
        .query_row("SELECT metadata FROM candidates WHERE name = 'c005'", [], |r| r.get(0))
        .expect("c005");
    let kept: serde_json::Value = serde_json::from_str(&kept).expect("json");
    assert_eq!(kept, serde_json::json!({"pixel_arcsec": 0.1, "blank_bands": "u", "wcs": {"CTYPE1": "RA---TAN"}}));
    let pack = Project::open_existing(&vera).expect("open the pack");
    let row = pack.candidate_by_name("c005").expect("c005");
    assert_eq!(pack.load_cutout(&row).expect("pixels").pixel_arcsec, Some(0.1));
    assert_eq!(row.blank_bands(), vec![lens_inspect::cutout::Band::U]);
    drop(pack);
    // The researcher's pack carries scores and the training candidates' truth.
    assert_eq!(count(&rita, "SELECT count(*) FROM predictions"), 8);
    assert_eq!(count(&rita, "SELECT count(*) FROM candidates WHERE is_training = 1 AND truth_is_lens IS NOT NULL"), 3);
    // Grades from the volunteer's pack still count where the project knows the truth.
    drop(project);
    grade_in(&vera, "vera", &[("c000", 5), ("c001", 0)]);
    let mut p = Project::open_existing(&src).expect("open");
    assert_eq!(merge_pack(&mut p, &vera).expect("merge").added, 2);
}

#[test]
fn grade_files_import_with_bad_rows_listed_and_twice_adds_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut p = project_with(&dir.path().join("p.lensproj"), 5, 0);
    let sheet = dir.path().join("grades.csv");
    std::fs::write(
        &sheet,
        "candidate,inspector,score,time,comment\n\
         c000,ann,5,2026-03-01T10:00:00Z,nice arc\n\
         c001,ann,0,2026-03-01T10:01:00+01:00,\n\
         c002,bob,2,2026-03-01T10:02:00Z,\n\
         nope,bob,3,2026-03-01T10:03:00Z,\n\
         c003,bob,3,yesterday,\n\
         c004,bob,1,2026-03-01 10:05:00,\n",
    )
    .expect("write");
    let r = lens_inspect::project::import::import_grades(&mut p, &sheet, None).expect("import");
    assert_eq!(r.added, 3);
    let reasons: Vec<&str> = r.skipped.iter().map(|s| s.1.as_str()).collect();
    assert_eq!(r.skipped.len(), 3, "{reasons:?}");
    assert!(
        reasons.iter().any(|s| s.contains("not one of"))
            && reasons.iter().any(|s| s.contains("unknown candidate"))
            && reasons.iter().any(|s| s.contains("ISO 8601"))
    );
    let again = lens_inspect::project::import::import_grades(&mut p, &sheet, None).expect("import again");
    assert_eq!((again.added, again.already_present), (0, 3));
    let events = p.grade_events().expect("events");
    assert!(events.iter().any(|e| e.time == "2026-03-01T09:01:00.000Z"), "offsets become UTC");
    // A labelling script's ID,LABEL with the inspector named.
    let labels = dir.path().join("labels.csv");
    std::fs::write(&labels, "ID,LABEL\nc000,1\nc001,0\nc002,7\n").expect("write");
    let r = lens_inspect::project::import::import_grades(&mut p, &labels, Some("script")).expect("labels");
    assert_eq!((r.added, r.skipped.len()), (2, 1));
    let script = p.inspectors().expect("inspectors").into_iter().find(|i| i.name == "script").expect("script");
    let by_script: Vec<Option<Score>> =
        p.grade_events().expect("events").iter().filter(|e| e.inspector_id == script.id).map(|e| e.score).collect();
    assert_eq!(by_script, vec![Some(Score::Sure), Some(Score::No)]);
    assert!(
        lens_inspect::project::import::import_grades(&mut p, &labels, None).is_err(),
        "no inspector column and none given"
    );
    // A file without times, copied (a new modification time) and imported again: nothing new.
    let copy = dir.path().join("labels-copy.csv");
    std::fs::copy(&labels, &copy).expect("copy");
    let f = std::fs::File::options().write(true).open(&copy).expect("open");
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400)).expect("touch");
    drop(f);
    let r = lens_inspect::project::import::import_grades(&mut p, &copy, Some("script")).expect("copy");
    assert_eq!((r.added, r.already_present), (0, 2), "a copied label file counted twice");
}

#[test]
fn the_exported_event_log_imports_back_exactly_and_once() {
    use lens_inspect::project::{import::import_grades, MarkedPoint};
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src.lensproj");
    let mut p = project_with(&src, 5, 0);
    // Another project with the same candidates and no grades (events map by name).
    let empty = dir.path().join("empty.lensproj");
    drop(project_with(&empty, 5, 0));
    let ids: Vec<i64> = p.candidates().expect("rows").iter().map(|c| c.id).collect();
    for (who, k, score) in
        [("ann", 0, Some(5u8)), ("ann", 0, None), ("ann", 0, Some(0)), ("bob", 1, Some(3)), ("ann", 2, Some(1))]
    {
        let i = p.inspector(who, Role::Volunteer).expect("inspector");
        let session = p.start_session(i.id, "local").expect("session");
        p.record_grade(&NewGrade {
            candidate_id: ids[k],
            inspector_id: i.id,
            score: score.and_then(|s| Score::from_value(s as i64)),
            session_id: Some(session),
            comment: (k == 2).then(|| "comma, \"quotes\" and\na new line".to_string()),
            points: if k == 1 {
                vec![MarkedPoint { x: 10.5, y: 20.25 }, MarkedPoint { x: 3.0, y: 4.0 }]
            } else {
                vec![]
            },
        })
        .expect("grade");
    }
    let log = dir.path().join("grades.csv");
    lens_inspect::project::export::write_grades_csv(&p, &log).expect("export");
    let full = |p: &Project| {
        let names: BTreeMap<i64, String> = p.candidates().expect("rows").into_iter().map(|c| (c.id, c.name)).collect();
        let who: BTreeMap<i64, String> =
            p.inspectors().expect("inspectors").into_iter().map(|i| (i.id, i.name)).collect();
        let mut v: Vec<_> = p
            .grade_events()
            .expect("events")
            .into_iter()
            .map(|e| {
                (
                    e.uid,
                    names[&e.candidate_id].clone(),
                    who[&e.inspector_id].clone(),
                    e.score,
                    e.time,
                    e.session_id,
                    e.comment,
                    format!("{:?}", e.points),
                )
            })
            .collect();
        v.sort();
        v
    };
    let mut q = Project::open_existing(&empty).expect("empty");
    let r = import_grades(&mut q, &log, None).expect("import");
    assert_eq!((r.added, r.skipped.len()), (5, 0), "{:?}", r.skipped);
    assert_eq!(full(&q), full(&p), "the log came back with uids, undo rows, sessions and points");
    // The same consensus follows: ann's 5 was undone and became a 0.
    let grades = lens_inspect::consensus::current_grades(&q.grade_events().expect("events"));
    let ann = q.inspectors().expect("i").into_iter().find(|i| i.name == "ann").expect("ann");
    let c0 = q.candidates().expect("rows").into_iter().find(|c| c.name == "c000").expect("c000");
    assert_eq!(grades[&c0.id][&ann.id], Score::No);
    // Into the project it came from, and again: nothing is added.
    let r = import_grades(&mut p, &log, None).expect("import into the source");
    assert_eq!((r.added, r.already_present), (0, 5));
    let r = import_grades(&mut q, &log, None).expect("import again");
    assert_eq!((r.added, r.already_present), (0, 5));
}

#[test]
fn the_fits_catalogue_reads_back_with_its_columns_and_types() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.lensproj");
    let mut p = project_with(&path, 4, 0);
    let ids: Vec<i64> = p.candidates().expect("rows").iter().map(|c| c.id).collect();
    let v = p.add_model_version("m1", "{}", "{}", None).expect("model");
    p.store_predictions(v, &[(ids[0], 0.9), (ids[1], 0.2)]).expect("scores");
    let ann = p.inspector("ann", Role::Volunteer).expect("ann");
    p.record_grade(&NewGrade {
        candidate_id: ids[0],
        inspector_id: ann.id,
        score: Some(Score::Sure),
        ..Default::default()
    })
    .expect("grade");
    // c002's survey masked its u and r bands (ingest keeps which, in the candidate's metadata).
    rusqlite::Connection::open(&path)
        .expect("raw")
        .execute("UPDATE candidates SET metadata = '{\"blank_bands\": \"u,r\"}' WHERE name = 'c002'", [])
        .expect("metadata");
    let rows = catalogue(&p, &SeedRule::default(), SwapConfig::default(), MinVerdict::All).expect("rows");
    let provenance =
        Provenance { rule: SeedRule::default(), swap: SwapConfig::default(), model_version: Some(format!("m1#{v}")) };
    let fits = dir.path().join("cat.fits");
    write_catalogue(&fits, &rows, &provenance).expect("fits");
    let csv_path = dir.path().join("cat.csv");
    write_catalogue(&csv_path, &rows, &provenance).expect("csv");
    let mut f = fitsio::FitsFile::open(&fits).expect("open fits");
    let hdu = f.hdu("CANDIDATES").expect("table");
    let names: Vec<String> = hdu.read_col(&mut f, "name").expect("names");
    assert_eq!(names, vec!["c000", "c001", "c002", "c003"]);
    let scores: Vec<f32> = hdu.read_col(&mut f, "model_score").expect("scores");
    assert_eq!(scores[0], 0.9);
    assert!(scores[2].is_nan());
    let n5: Vec<i32> = hdu.read_col(&mut f, "n5").expect("n5");
    assert_eq!(n5, vec![1, 0, 0, 0]);
    // Booleans are logical columns, so TOPCAT and astropy read them as booleans.
    let seed: Vec<bool> = hdu.read_col(&mut f, "seed_rule").expect("seed");
    assert_eq!(seed, vec![true, false, false, false]);
    let disputed: Vec<bool> = hdu.read_col(&mut f, "disputed").expect("disputed");
    assert_eq!(disputed, vec![false; 4]);
    match &hdu.info {
        fitsio::hdu::HduInfo::TableInfo { column_descriptions, .. } => {
            let seed = column_descriptions.iter().find(|c| c.name == "seed_rule").expect("column");
            assert_eq!(seed.data_type.typ, fitsio::tables::ColumnDataType::Logical);
        }
        _ => panic!("CANDIDATES is a table"),
    }
    // Units, frame and provenance in the header.
    let key = |f: &mut fitsio::FitsFile, k: &str| hdu.read_key::<String>(f, k).unwrap_or_default();
    assert_eq!(key(&mut f, "TTYPE2"), "ra");
    assert_eq!(key(&mut f, "TUNIT2"), "deg");
    assert_eq!(key(&mut f, "TUNIT3"), "deg");
    assert_eq!(key(&mut f, "RADESYS"), "ICRS");
    assert!(key(&mut f, "PROGRAM").starts_with("lens-inspect "));
    assert_eq!(key(&mut f, "MODELVER"), format!("m1#{v}"));
    assert_eq!(key(&mut f, "CONSRULE"), "2 x grade>=3 or 1 x grade 5");
    assert_eq!(key(&mut f, "SWAPPRIO").parse::<f64>().unwrap(), SwapConfig::default().prior);
    assert_eq!(key(&mut f, "SWAPDET").parse::<f64>().unwrap(), SwapConfig::default().detect_above);
    let ra: Vec<f64> = hdu.read_col(&mut f, "ra").expect("ra");
    assert!((ra[1] - 150.001).abs() < 1e-12);
    let status: Vec<String> = hdu.read_col(&mut f, "swap_status").expect("status");
    assert_eq!(status[0], "open");
    let version: Vec<String> = hdu.read_col(&mut f, "model_version").expect("version");
    assert_eq!(version[0], format!("m1#{v}"));
    let text = std::fs::read_to_string(&csv_path).expect("csv");
    assert!(text.starts_with("name,ra,dec,tile,model_score,model_version,n_grades,mean_grade,n0,n1,n3,n5,swap_posterior,swap_status,seed_rule"));
    assert_eq!(text.lines().count(), 5);
    // CSV booleans as words, which pandas, astropy and TOPCAT all take for booleans.
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let seed_col = reader.headers().unwrap().iter().position(|h| h == "seed_rule").unwrap();
    let seeds: Vec<String> = reader.records().map(|r| r.unwrap()[seed_col].to_string()).collect();
    assert_eq!(seeds, vec!["true", "false", "false", "false"]);
    // A candidate scored and graded without some bands says which, in both formats.
    let blank: Vec<String> = hdu.read_col(&mut f, "blank_bands").expect("blank_bands");
    assert_eq!(blank.iter().map(|b| b.trim()).collect::<Vec<_>>(), vec!["", "", "ur", ""]);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let blank_col = reader.headers().unwrap().iter().position(|h| h == "blank_bands").expect("csv column");
    let blank: Vec<String> = reader.records().map(|r| r.unwrap()[blank_col].to_string()).collect();
    assert_eq!(blank, vec!["", "", "ur", ""]);
    let consensus =
        Consensus::compute(&p.grade_events().expect("events"), &|_| None, &SeedRule::default(), SwapConfig::default());
    assert!(consensus.candidates[&ids[0]].seed_rule);
}
