//! The project database: grade events, constraints, schema versions, locks and foreign files.

mod common;

use lens_inspect::project::{MarkedPoint, NewCandidate, NewGrade, Project, ProjectError, Role, Score};
use lens_inspect::survey::{ObjectSource, ObjectSpec};
use std::collections::BTreeMap;
use std::path::Path;

pub fn project_with_candidates(path: &Path, n: usize) -> (Project, Vec<i64>) {
    let mut p = Project::create_or_open(path).expect("project");
    let items: Vec<NewCandidate> = (0..n)
        .map(|k| {
            let c = common::cutout(&format!("c{k}"), k as u64);
            let spec = ObjectSpec {
                name: c.name.clone(),
                source: ObjectSource::File { path: format!("/nowhere/c{k}.fits").into() },
                ra_deg: None,
                dec_deg: None,
                tile: None,
                metadata: BTreeMap::new(),
            };
            NewCandidate::from_cutout(spec, &c, true)
        })
        .collect();
    assert_eq!(p.insert_candidates(&items).expect("insert"), n);
    let ids = p.candidates().expect("list").iter().map(|c| c.id).collect();
    (p, ids)
}

#[test]
fn grade_events_round_trip_with_undo_comment_and_points() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut p, ids) = project_with_candidates(&dir.path().join("p.lensproj"), 3);
    let ann = p.inspector("ann", Role::Volunteer).expect("inspector");
    let again = p.inspector("ann", Role::Researcher).expect("same inspector");
    assert_eq!(ann, again, "an existing inspector keeps id and role");
    let session = p.start_session(ann.id, "local").expect("session");
    let points = vec![MarkedPoint { x: 10.5, y: 3.0 }, MarkedPoint { x: 11.0, y: 4.25 }];
    let grades = [
        NewGrade {
            candidate_id: ids[0],
            inspector_id: ann.id,
            score: Some(Score::Sure),
            session_id: Some(session.clone()),
            comment: Some("arc at 2 o'clock".into()),
            points: points.clone(),
        },
        NewGrade {
            candidate_id: ids[1],
            inspector_id: ann.id,
            score: Some(Score::No),
            session_id: Some(session.clone()),
            ..Default::default()
        },
        NewGrade {
            candidate_id: ids[1],
            inspector_id: ann.id,
            score: None,
            session_id: Some(session.clone()),
            ..Default::default()
        },
    ];
    let recorded: Vec<_> = grades.iter().map(|g| p.record_grade(g).expect("grade")).collect();
    drop(p);
    let p = Project::open_existing(&dir.path().join("p.lensproj")).expect("reopen");
    let events = p.grade_events().expect("events");
    assert_eq!(events, recorded);
    assert_eq!(events[0].points, points);
    assert_eq!(events[0].comment.as_deref(), Some("arc at 2 o'clock"));
    assert_eq!(events[2].score, None, "undo is stored as a retraction event");
    let c = p.counts().expect("counts");
    assert_eq!((c.grade_events, c.graded_candidates, c.inspectors), (3, 2, 1));
    let uids: std::collections::HashSet<_> = events.iter().map(|e| e.uid.clone()).collect();
    assert_eq!(uids.len(), 3);
}

#[test]
fn the_database_refuses_other_scores_and_edits_of_events() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.lensproj");
    let (mut p, ids) = project_with_candidates(&path, 1);
    let ann = p.inspector("ann", Role::Volunteer).expect("inspector");
    p.record_grade(&NewGrade {
        candidate_id: ids[0],
        inspector_id: ann.id,
        score: Some(Score::Maybe),
        ..Default::default()
    })
    .expect("grade");
    let raw = rusqlite::Connection::open(&path).expect("raw");
    let bad = raw.execute(
        "INSERT INTO grade_events (uid, candidate_id, inspector_id, score, time) VALUES ('x', ?1, ?2, 2, 'now')",
        [ids[0], ann.id],
    );
    assert!(bad.is_err(), "a 2 is not a grade");
    assert!(raw.execute("UPDATE grade_events SET score = 0", []).is_err(), "events are append-only");
    assert!(raw.execute("DELETE FROM grade_events", []).is_err(), "events are append-only");
    assert_eq!(p.grade_events().expect("events")[0].score, Some(Score::Maybe));
}

#[test]
fn newer_schema_and_foreign_files_are_refused_untouched() {
    let dir = tempfile::tempdir().expect("tmp");
    let newer = dir.path().join("newer.lensproj");
    drop(Project::create_or_open(&newer).expect("create"));
    rusqlite::Connection::open(&newer).expect("raw").pragma_update(None, "user_version", 99).expect("pragma");
    match Project::open_existing(&newer) {
        Err(ProjectError::NewerSchema { found: 99, .. }) => {}
        other => panic!("expected NewerSchema, got {:?}", other.err()),
    }
    let text = dir.path().join("notes.lensproj");
    std::fs::write(&text, "this is not a database, just some text that is long enough to look like a header....")
        .expect("write");
    let before = std::fs::read(&text).expect("read");
    let err = Project::open_existing(&text).err().expect("refused");
    assert!(matches!(err, ProjectError::NotAProject { .. }), "{err}");
    assert_eq!(std::fs::read(&text).expect("read"), before, "the file is left as it was");
    let other = dir.path().join("other.sqlite");
    rusqlite::Connection::open(&other)
        .expect("raw")
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .expect("sql");
    let err = Project::open_existing(&other).err().expect("refused");
    assert!(matches!(err, ProjectError::NotAProject { .. }), "{err}");
    let err = Project::open_existing(&dir.path().join("absent.lensproj")).err().expect("refused");
    assert!(matches!(err, ProjectError::Missing { .. }), "{err}");
    assert!(!dir.path().join("absent.lensproj").exists(), "opening does not create");
}

#[test]
fn a_locked_database_gives_a_clear_error_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.lensproj");
    let (mut p, ids) = project_with_candidates(&path, 1);
    let ann = p.inspector("ann", Role::Volunteer).expect("inspector");
    let g = NewGrade { candidate_id: ids[0], inspector_id: ann.id, score: Some(Score::Sure), ..Default::default() };
    p.record_grade(&g).expect("first grade");
    let other = rusqlite::Connection::open(&path).expect("other");
    other.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    let err = p.record_grade(&g).expect_err("locked");
    assert!(matches!(err, ProjectError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("p.lensproj") && err.to_string().contains("locked"), "{err}");
    other.execute_batch("ROLLBACK").expect("unlock");
    p.record_grade(&g).expect("works again");
    assert_eq!(p.grade_events().expect("events").len(), 2);
}

#[test]
fn a_model_version_without_scores_does_not_hide_the_latest_scores() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut p, ids) = project_with_candidates(&dir.path().join("p.lensproj"), 2);
    let v = p.add_model_version("scored", "{}", "{}", None).expect("model");
    p.store_predictions(v, &[(ids[0], 0.75), (ids[1], 0.25)]).expect("scores");
    // A rejected retraining is stored with its weights but scores nothing.
    p.add_model_version_with_weights("rejected", "{}", "{}", b"weights", false).expect("rejected");
    let (name, scores) = p.latest_predictions().expect("latest");
    assert_eq!(name, Some(format!("scored#{v}")));
    assert_eq!(scores.get(&ids[0]), Some(&0.75));
}

#[test]
fn a_full_database_refuses_the_grade_with_a_message_and_keeps_the_rest() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut p, ids) = project_with_candidates(&dir.path().join("p.lensproj"), 3);
    let ann = p.inspector("ann", Role::Volunteer).expect("ann");
    let first = p
        .record_grade(&NewGrade {
            candidate_id: ids[0],
            inspector_id: ann.id,
            score: Some(Score::Sure),
            ..Default::default()
        })
        .expect("grade");
    // No room left: as on a full disk.
    let pages = p.page_count().expect("pages");
    p.limit_pages(pages as u32).expect("limit");
    let long = "x".repeat(64 * 1024);
    let err = p
        .record_grade(&NewGrade {
            candidate_id: ids[1],
            inspector_id: ann.id,
            score: Some(Score::No),
            comment: Some(long),
            ..Default::default()
        })
        .expect_err("no room");
    assert!(matches!(err, ProjectError::Full { .. }), "{err:?}");
    assert!(err.to_string().contains("is full") && err.to_string().contains("p.lensproj"), "{err}");
    let events = p.grade_events().expect("events");
    assert_eq!(events.len(), 1, "the refused grade left nothing half-written");
    assert_eq!(events[0].uid, first.uid);
    // With room again, grading goes on.
    p.limit_pages(1 << 30).expect("unlimit");
    p.record_grade(&NewGrade {
        candidate_id: ids[1],
        inspector_id: ann.id,
        score: Some(Score::No),
        ..Default::default()
    })
    .expect("grade with room");
    assert_eq!(p.integrity_check().expect("check"), "ok");
}

#[test]
fn a_read_only_project_opens_for_looking_and_refuses_grades() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.lensproj");
    let (mut p, ids) = project_with_candidates(&path, 2);
    let ann = p.inspector("ann", Role::Volunteer).expect("ann");
    p.record_grade(&NewGrade {
        candidate_id: ids[0],
        inspector_id: ann.id,
        score: Some(Score::Sure),
        ..Default::default()
    })
    .expect("grade");
    drop(p);
    // Write-protect the file. Root ignores permissions, so there the read-only opening is asked
    // for directly; anyone else gets it from open_existing, as the app does.
    let mut perms = std::fs::metadata(&path).expect("meta").permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&path, perms).expect("chmod");
    let root = unsafe { libc::geteuid() } == 0;
    let mut p = if root { Project::open_read_only(&path) } else { Project::open_existing(&path) }.expect("opens");
    assert!(p.is_read_only());
    assert_eq!(p.grade_events().expect("events").len(), 1, "everything can be looked at");
    assert_eq!(p.candidates().expect("rows").len(), 2);
    let err = p
        .record_grade(&NewGrade {
            candidate_id: ids[1],
            inspector_id: ann.id,
            score: Some(Score::No),
            ..Default::default()
        })
        .expect_err("read-only");
    assert!(err.to_string().contains("read-only"), "{err}");
}
