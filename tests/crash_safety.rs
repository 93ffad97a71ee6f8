//! A grade reported as saved survives a SIGKILL at any moment.
//!
//! The test binary runs itself as a child (the ignored `child_grading_loop` test) which grades in
//! a loop and prints each saved event's uid; the parent kills it mid-loop with SIGKILL and checks
//! that every printed uid is in the database and that the database is sound.

mod common;

use lens_inspect::project::{NewCandidate, NewGrade, Project, Role, Score};
use lens_inspect::survey::{ObjectSource, ObjectSpec};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const DB_ENV: &str = "LENS_INSPECT_CRASH_TEST_DB";

#[test]
#[ignore = "run by kill_during_grading_loses_no_saved_grade as a child process"]
fn child_grading_loop() {
    let Ok(path) = std::env::var(DB_ENV) else { return };
    let mut p = Project::open_existing(path.as_ref()).expect("open");
    let who = p.inspector("crash-test", Role::Volunteer).expect("inspector");
    let ids: Vec<i64> = p.candidates().expect("list").iter().map(|c| c.id).collect();
    let stdout = std::io::stdout();
    for k in 0.. {
        let score = Score::ALL[k % 4];
        let e = p
            .record_grade(&NewGrade {
                candidate_id: ids[k % ids.len()],
                inspector_id: who.id,
                score: Some(score),
                comment: (k % 7 == 0).then(|| format!("comment {k}")),
                ..Default::default()
            })
            .expect("grade");
        let mut out = stdout.lock();
        writeln!(out, "saved {}", e.uid).expect("stdout");
        out.flush().expect("flush");
    }
}

#[test]
fn kill_during_grading_loses_no_saved_grade() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("crash.lensproj");
    let mut p = Project::create_or_open(&path).expect("project");
    let items: Vec<NewCandidate> = (0..20)
        .map(|k| {
            let c = common::cutout(&format!("c{k}"), k);
            let spec = ObjectSpec::new(c.name.clone(), ObjectSource::File { path: "/nowhere.fits".into() });
            NewCandidate::from_cutout(spec, &c, false)
        })
        .collect();
    p.insert_candidates(&items).expect("insert");
    drop(p);

    let mut total_saved = 0;
    for kill_after in [1usize, 37, 150] {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .args(["child_grading_loop", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(DB_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut saved = HashSet::new();
        let mut line = String::new();
        while saved.len() < kill_after {
            line.clear();
            let n = reader.read_line(&mut line).expect("read");
            assert!(n > 0, "child stopped before {kill_after} grades");
            if let Some(uid) = line.trim().strip_prefix("saved ") {
                saved.insert(uid.to_string());
            }
        }
        child.kill().expect("SIGKILL");
        // Lines written before the kill may still sit in the pipe: they were reported, so they count.
        for l in reader.lines() {
            if let Some(uid) = l.expect("line").trim().strip_prefix("saved ") {
                saved.insert(uid.to_string());
            }
        }
        child.wait().expect("reap");
        total_saved += saved.len();

        let p = Project::open_existing(&path).expect("reopen after kill");
        assert_eq!(p.integrity_check().expect("check"), "ok");
        let stored: HashSet<String> = p.grade_events().expect("events").into_iter().map(|e| e.uid).collect();
        let lost: Vec<_> = saved.difference(&stored).collect();
        assert!(lost.is_empty(), "kill after {kill_after}: {} saved grades lost", lost.len());
        assert!(stored.len() >= total_saved);
    }
}
