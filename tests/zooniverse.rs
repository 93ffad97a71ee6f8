//! The bridge to Zooniverse: a subject set out, a Panoptes classifications export back in,
//! idempotently. The export files are written here in Panoptes' documented format.

use lens_inspect::project::{NewCandidate, Project, Score, Truth};
use lens_inspect::survey::fixtures::synthetic_cutout;
use lens_inspect::survey::{ObjectSource, ObjectSpec};
use std::path::Path;
use std::process::Command;

fn make_project(path: &Path) {
    let mut p = Project::create_or_open(path).unwrap();
    let items: Vec<NewCandidate> = ["c0", "c1", "train0"]
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let c = synthetic_cutout(name, 41, k as u64);
            let mut spec = ObjectSpec::new(c.name.clone(), ObjectSource::File { path: "/x.fits".into() });
            spec.ra_deg = Some(150.0 + k as f64 * 0.01);
            spec.dec_deg = Some(2.0);
            let mut n = NewCandidate::from_cutout(spec, &c, true);
            if *name == "train0" {
                n.truth = Some(Truth { is_lens: true, extra: Default::default() });
                n.is_training = true;
            }
            n
        })
        .collect();
    p.insert_candidates(&items).unwrap();
}

fn run(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lens-inspect")).args(args).output().unwrap()
}

#[test]
fn a_subject_set_has_a_picture_per_candidate_and_flags_training_subjects() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("p.lensproj");
    make_project(&project);
    let set = dir.path().join("subjects");
    let o =
        run(&["export".as_ref(), "--project".as_ref(), project.as_os_str(), "--zooniverse".as_ref(), set.as_os_str()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for name in ["c0", "c1", "train0"] {
        let png = std::fs::read(set.join(format!("{name}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
    let mut r = csv::Reader::from_path(set.join("manifest.csv")).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(header, ["image_name_1", "#name", "#ra", "#dec", "#training_subject", "#is_lens"]);
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    let train = rows.iter().find(|r| &r[1] == "train0").unwrap();
    assert_eq!((&train[0], &train[4], &train[5]), ("train0.png", "true", "true"));
    let c0 = rows.iter().find(|r| &r[1] == "c0").unwrap();
    assert_eq!((&c0[4], &c0[5]), ("false", ""), "no truth shown for a real candidate");
    assert_eq!(&c0[2], "150.0000000");
}

/// A classifications export as Panoptes writes it (columns of its data-export documentation).
fn panoptes_csv(rows: &[(&str, &str, &str, &str, &str)]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "classification_id",
        "user_name",
        "user_id",
        "user_ip",
        "workflow_id",
        "workflow_name",
        "workflow_version",
        "created_at",
        "gold_standard",
        "expert",
        "metadata",
        "annotations",
        "subject_data",
        "subject_ids",
    ])
    .unwrap();
    for (id, user, time, answer, candidate) in rows {
        let annotations =
            serde_json::json!([{"task": "T0", "task_label": "Is there a lens?", "value": answer}]).to_string();
        let subject = serde_json::json!({"7001": {"retired": null, "image_name_1": format!("{candidate}.png"), "#name": candidate}}).to_string();
        w.write_record([
            id,
            user,
            "",
            "abc",
            "42",
            "Lens or not",
            "3.1",
            time,
            "",
            "",
            "{}",
            &annotations,
            &subject,
            "7001",
        ])
        .unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

#[test]
fn classifications_come_back_as_grades_once() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("p.lensproj");
    make_project(&project);
    let export = dir.path().join("lens-or-not-classifications.csv");
    std::fs::write(
        &export,
        panoptes_csv(&[
            ("501", "ann", "2024-05-01 12:34:56 UTC", "Yes", "c0"),
            ("502", "bob", "2024-05-01 12:40:00 UTC", "No", "c0"),
            ("503", "not-logged-in-5f2a", "2024-05-02 08:00:00 UTC", "Yes", "c1"),
            ("504", "ann", "2024-05-02 09:00:00 UTC", "Maybe", "c1"),
            ("505", "ann", "2024-05-02 09:05:00 UTC", "Yes", "someone-elses"),
        ]),
    )
    .unwrap();
    let import = || {
        run(&[
            "grades".as_ref(),
            "import".as_ref(),
            export.as_os_str(),
            "--project".as_ref(),
            project.as_os_str(),
            "--zooniverse".as_ref(),
            "--answers".as_ref(),
            "Yes=5,No=0".as_ref(),
            "--json".as_ref(),
        ])
    };
    let o = import();
    assert_eq!(o.status.code(), Some(3), "two rows skipped: {}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((r["added"].as_u64(), r["already_present"].as_u64()), (Some(3), Some(0)));
    let skipped = r["skipped"].to_string();
    assert!(
        skipped.contains("\\\"Maybe\\\" has no grade mapping") && skipped.contains("unknown candidate"),
        "{skipped}"
    );

    let p = Project::open_existing(&project).unwrap();
    let names: std::collections::HashMap<i64, String> =
        p.inspectors().unwrap().into_iter().map(|i| (i.id, i.name)).collect();
    let cands: std::collections::HashMap<i64, String> =
        p.candidates().unwrap().into_iter().map(|c| (c.id, c.name)).collect();
    let mut events: Vec<(String, String, Option<Score>, String)> = p
        .grade_events()
        .unwrap()
        .into_iter()
        .map(|e| (names[&e.inspector_id].clone(), cands[&e.candidate_id].clone(), e.score, e.time.clone()))
        .collect();
    events.sort();
    assert_eq!(
        events,
        vec![
            ("ann".into(), "c0".into(), Some(Score::Sure), "2024-05-01T12:34:56.000Z".into()),
            ("bob".into(), "c0".into(), Some(Score::No), "2024-05-01T12:40:00.000Z".into()),
            ("not-logged-in-5f2a".into(), "c1".into(), Some(Score::Sure), "2024-05-02T08:00:00.000Z".into()),
        ]
    );
    drop(p);
    // The same export again (and a later one repeating it) adds nothing.
    let r: serde_json::Value = serde_json::from_slice(&import().stdout).unwrap();
    assert_eq!((r["added"].as_u64(), r["already_present"].as_u64()), (Some(0), Some(3)));
    // Not a Panoptes export: the missing column is named.
    let wrong = dir.path().join("wrong.csv");
    std::fs::write(&wrong, "candidate,score\nc0,5\n").unwrap();
    let o = run(&[
        "grades".as_ref(),
        "import".as_ref(),
        wrong.as_os_str(),
        "--project".as_ref(),
        project.as_os_str(),
        "--zooniverse".as_ref(),
        "--answers".as_ref(),
        "Yes=5".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("classification_id"));
}
