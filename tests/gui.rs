//! The grade view driven headlessly with egui_kittest: keys and clicks in, exact events in the
//! database out; what volunteers and researchers see; the review filters.

mod common;

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use lens_inspect::app::grade::GradeView;
use lens_inspect::app::review::{Filter, ReviewView};
use lens_inspect::app::{LensApp, Start};
use lens_inspect::project::{NewCandidate, NewGrade, Project, Role, Score};
use lens_inspect::queue::QueueOrder;
use lens_inspect::survey::{ObjectSource, ObjectSpec};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn make_project(path: &Path, n: usize) -> Vec<i64> {
    let mut p = Project::create_or_open(path).expect("project");
    let items: Vec<NewCandidate> = (0..n)
        .map(|k| {
            let c = common::cutout(&format!("c{k}"), k as u64);
            let spec = ObjectSpec::new(c.name.clone(), ObjectSource::File { path: "/x.fits".into() });
            NewCandidate::from_cutout(spec, &c, true)
        })
        .collect();
    p.insert_candidates(&items).expect("insert");
    let ids: Vec<i64> = p.candidates().expect("rows").iter().map(|c| c.id).collect();
    // Model scores falling with the id, so the queue order is known: c0, c1, ...
    let v = p.add_model_version("test-model", "{}", "{}", None).expect("model");
    p.store_predictions(v, &ids.iter().enumerate().map(|(k, &id)| (id, 1.0 - k as f32 / n as f32)).collect::<Vec<_>>())
        .expect("scores");
    ids
}

fn open_view(path: &Path, name: &str, role: Role) -> GradeView {
    common::isolated_home();
    let start = Start {
        project: path.into(),
        name: name.into(),
        role,
        order: QueueOrder::ModelScore,
        auto_retrain: false,
        recent: vec![],
        error: None,
    };
    LensApp::open_grading(&start, Arc::new(|| {})).expect("grade view")
}

/// Runs frames until the current candidate is on screen (the render workers are asynchronous).
fn wait_ready(h: &mut Harness<'_, GradeView>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !h.state().ready() {
        assert!(Instant::now() < deadline, "the picture never arrived");
        h.step();
        std::thread::yield_now();
    }
    h.step();
}

/// Runs frames until the grade writer has confirmed the last grade (it writes on its own thread).
fn settle(h: &mut Harness<'_, GradeView>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    h.run_steps(2);
    while h.state().saving() {
        assert!(Instant::now() < deadline, "the grade was never confirmed");
        h.step();
        std::thread::yield_now();
    }
}

fn harness(view: GradeView) -> Harness<'static, GradeView> {
    Harness::builder().with_size(egui::vec2(1100.0, 760.0)).build_ui_state(|ui, v: &mut GradeView| v.ui(ui), view)
}

#[test]
fn grading_with_keys_undo_going_back_comments_and_points_stores_exact_events() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.lensproj");
    let ids = make_project(&path, 6);
    let mut h = harness(open_view(&path, "ann", Role::Volunteer));
    assert_eq!(h.state().queue, ids, "highest model score first");
    wait_ready(&mut h);
    h.key_press(egui::Key::Num5); // c0: sure
    h.run_steps(2);
    wait_ready(&mut h);
    // c1: a comment, two marked points, then "maybe".
    h.key_press(egui::Key::N);
    h.run_steps(2);
    h.event(egui::Event::Text("arc to the left".into()));
    h.run_steps(2);
    h.key_press(egui::Key::Enter);
    h.run_steps(2);
    let image_at = egui::pos2(300.0, 330.0);
    for dx in [0.0, 25.0] {
        let p = image_at + egui::vec2(dx, 0.0);
        h.hover_at(p);
        h.event(egui::Event::PointerButton {
            pos: p,
            button: egui::PointerButton::Primary,
            pressed: true,
            modifiers: Default::default(),
        });
        h.event(egui::Event::PointerButton {
            pos: p,
            button: egui::PointerButton::Primary,
            pressed: false,
            modifiers: Default::default(),
        });
        h.run_steps(2);
    }
    assert_eq!(h.state().points.len(), 2, "two clicks on the image mark two points");
    h.key_press(egui::Key::Num3);
    h.run_steps(2);
    wait_ready(&mut h);
    h.key_press(egui::Key::Backspace); // undo c1's grade: back on c1
    settle(&mut h);
    assert_eq!(h.state().current(), Some(ids[1]));
    wait_ready(&mut h);
    h.key_press(egui::Key::Num0); // c1: no
    h.run_steps(2);
    wait_ready(&mut h);
    h.key_press(egui::Key::ArrowLeft);
    h.key_press(egui::Key::ArrowLeft); // back to c0
    h.run_steps(2);
    wait_ready(&mut h);
    assert_eq!(h.state().current(), Some(ids[0]));
    h.key_press(egui::Key::Num1); // c0 again: interesting
    settle(&mut h);

    let p = Project::open_existing(&path).expect("open");
    let events = p.grade_events().expect("events");
    let got: Vec<(i64, Option<u8>, Option<String>, usize)> = events
        .iter()
        .map(|e| (e.candidate_id, e.score.map(|s| s.value()), e.comment.clone(), e.points.len()))
        .collect();
    assert_eq!(
        got,
        vec![
            (ids[0], Some(5), None, 0),
            (ids[1], Some(3), Some("arc to the left".into()), 2),
            (ids[1], None, None, 0),
            (ids[1], Some(0), None, 0),
            (ids[0], Some(1), None, 0),
        ]
    );
    // Points are in cutout pixels, inside the 21 x 21 cutout.
    assert!(events[1].points.iter().all(|pt| (0.0..21.0).contains(&pt.x) && (0.0..21.0).contains(&pt.y)));
    assert!(events.iter().all(|e| e.session_id.is_some()));
    // A new session of the same inspector starts after what they graded.
    let view = open_view(&path, "ann", Role::Volunteer);
    assert_eq!(view.queue, ids[2..].to_vec(), "never the same candidate twice");
}

#[test]
fn volunteers_never_see_scores_or_other_grades_and_researchers_do() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.lensproj");
    let ids = make_project(&path, 3);
    {
        let mut p = Project::open_existing(&path).expect("open");
        let bob = p.inspector("bob", Role::Volunteer).expect("bob");
        p.record_grade(&NewGrade {
            candidate_id: ids[0],
            inspector_id: bob.id,
            score: Some(Score::Sure),
            ..Default::default()
        })
        .expect("grade");
    }
    let mut h = harness(open_view(&path, "vera", Role::Volunteer));
    wait_ready(&mut h);
    assert!(h.query_by_label_contains("model score").is_none(), "a volunteer sees no model score");
    assert!(h.query_by_label_contains("bob").is_none(), "a volunteer sees no other grades");
    // Ticking "researcher" at the start screen grants nothing: a new name is a volunteer.
    let mut start = Start {
        project: path.clone(),
        name: "rita".into(),
        role: Role::Researcher,
        order: QueueOrder::ModelScore,
        auto_retrain: false,
        recent: vec![],
        error: None,
    };
    let refused = LensApp::open_grading(&start, Arc::new(|| {})).err().expect("refused");
    assert!(refused.contains("rita is a volunteer"), "{refused}");
    start.role = Role::Volunteer;
    assert!(LensApp::open_grading(&start, Arc::new(|| {})).is_ok(), "as a volunteer she may grade");
    Project::open_existing(&path).expect("open").set_role("rita", Role::Researcher).expect("grant");
    let mut h = harness(open_view(&path, "rita", Role::Researcher));
    wait_ready(&mut h);
    assert!(h.query_by_label_contains("model score 1.000").is_some());
    assert!(h.query_by_label_contains("bob: 5").is_some());
}

#[test]
fn review_filters_return_the_right_candidates() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.lensproj");
    let ids = make_project(&path, 5); // scores 1.0, 0.8, 0.6, 0.4, 0.2
    let mut p = Project::open_existing(&path).expect("open");
    let (a, b) = (p.inspector("a", Role::Volunteer).expect("a"), p.inspector("b", Role::Volunteer).expect("b"));
    let mut grade = |c: i64, who: i64, s: Score| {
        p.record_grade(&NewGrade { candidate_id: c, inspector_id: who, score: Some(s), ..Default::default() })
            .expect("grade");
    };
    grade(ids[0], a.id, Score::No); // model yes, people no
    grade(ids[0], b.id, Score::No);
    grade(ids[1], a.id, Score::Sure); // seed rule, disputed
    grade(ids[1], b.id, Score::No);
    grade(ids[3], a.id, Score::Maybe); // people yes, model missed
    grade(ids[3], b.id, Score::Maybe);
    let mut review = ReviewView::load(&p);
    let names = |r: &ReviewView| -> Vec<String> { r.visible().iter().map(|x| x.name.clone()).collect() };
    let expect = [
        (Filter::All, vec!["c0", "c1", "c2", "c3", "c4"]),
        (Filter::Graded, vec!["c0", "c1", "c3"]),
        (Filter::SeedRule, vec!["c1", "c3"]),
        (Filter::Disputed, vec!["c1"]),
        (Filter::ModelYesPeopleNo, vec!["c0"]),
        (Filter::PeopleYesModelNo, vec!["c3"]),
    ];
    for (f, want) in expect {
        review.filter = f;
        assert_eq!(names(&review), want, "{}", f.label());
    }
    // The inspectors panel: a and b graded the same three candidates, agreeing on c0 and c3
    // (lens / not), disagreeing on c1.
    let line = |n: &str| review.inspectors.iter().find(|i| i.name == n).cloned().expect("inspector line");
    assert_eq!(line("a").grades, 3);
    assert_eq!(line("a").agreement, Some((3, 2.0 / 3.0)));
    assert!(review.kappa.is_some());
}

/// Runs frames until the retraining job has finished (the worker is asynchronous).
fn wait_trained(h: &mut Harness<'_, GradeView>) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        h.step();
        let t = h.state().trainer.as_ref().expect("trainer");
        if !t.running && t.last.is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "retraining never finished: {}", t.status);
        std::thread::yield_now();
    }
}

#[test]
fn retrain_button_stores_a_version_and_cancel_changes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.lensproj");
    common::graded_sim_project(&path, 32, 91).set_role("r", Role::Researcher).expect("grant");
    let view = open_view(&path, "r", Role::Researcher);
    let mut h =
        Harness::builder().with_size(egui::vec2(1100.0, 1400.0)).build_ui_state(|ui, v: &mut GradeView| v.ui(ui), view);
    wait_ready(&mut h);
    // Grading goes on while the worker trains: a grade given now is on disk when it finishes.
    h.get_by_label("Retrain now").click();
    h.step();
    h.key_press(egui::Key::Num3);
    wait_trained(&mut h);
    let mut p = Project::open_existing(&path).expect("open");
    let history = p.model_history().expect("history");
    let retrained: Vec<_> = history.iter().filter(|v| v.name == "retrained").collect();
    assert_eq!(retrained.len(), 1, "one stored version: {history:?}");
    let used = retrained[0].metrics["label_ids"].as_array().map(|a| a.len());
    assert_eq!(used, Some(32), "every graded candidate was a label");
    let outcome = h.state().trainer.as_ref().and_then(|t| t.last.clone()).expect("outcome").expect("ran");
    assert_eq!(outcome.kept, retrained[0].is_current);
    assert!(h
        .state()
        .trainer
        .as_ref()
        .is_some_and(|t| t.status.contains(&format!("version {}", outcome.model_version))));
    let r = p.inspector("r", Role::Researcher).expect("r");
    assert_eq!(p.grade_events().expect("events").iter().filter(|e| e.inspector_id == r.id).count(), 1);

    // Cancel as soon as it runs: nothing is stored, the current model stays.
    let before = (p.model_history().expect("history"), p.current_model_bytes().expect("bytes"), p.counts().expect("n"));
    h.get_by_label("Retrain now").click();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !h.state().trainer.as_ref().is_some_and(|t| t.running) {
        assert!(Instant::now() < deadline, "the second job never started");
        h.step();
        std::thread::yield_now();
    }
    h.get_by_label("Cancel").click();
    wait_trained(&mut h);
    let last = h.state().trainer.as_ref().and_then(|t| t.last.clone()).expect("outcome").expect("ran");
    assert!(last.cancelled, "the job saw the cancel");
    let after = (p.model_history().expect("history"), p.current_model_bytes().expect("bytes"), p.counts().expect("n"));
    assert_eq!(after, before, "cancelling stored nothing");
}

#[test]
fn gallery_thumbnail_opens_the_candidate_page_with_every_grade() {
    use lens_inspect::app::review::Mode;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.lensproj");
    let ids = make_project(&path, 5);
    let mut p = Project::open_existing(&path).expect("open");
    let (a, b) = (p.inspector("ann", Role::Volunteer).expect("a"), p.inspector("bob", Role::Volunteer).expect("b"));
    for (who, s, comment) in [(a.id, Score::Maybe, Some("faint arc to the east")), (b.id, Score::Sure, None)] {
        p.record_grade(&NewGrade {
            candidate_id: ids[2],
            inspector_id: who,
            score: Some(s),
            comment: comment.map(String::from),
            ..Default::default()
        })
        .expect("grade");
    }
    let mut review = LensApp::open_review(&p, Arc::new(|| {}));
    review.mode = Mode::Gallery;
    let mut h = Harness::builder()
        .with_size(egui::vec2(1200.0, 900.0))
        .build_ui_state(|ui, r: &mut lens_inspect::app::review::ReviewView| r.ui(ui), review);
    // Thumbnails arrive from the workers; c2 is the third by model score.
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.query_by_label_contains("c2").is_none() || h.query_all_by_role(egui::accesskit::Role::Image).count() < 5 {
        assert!(Instant::now() < deadline, "thumbnails never arrived");
        h.step();
        std::thread::yield_now();
    }
    let thumbs: Vec<_> = h.query_all_by_role(egui::accesskit::Role::Image).collect();
    thumbs[2].click();
    h.run_steps(2);
    assert_eq!(h.state().page, Some(ids[2]), "the third thumbnail is c2");
    let deadline = Instant::now() + Duration::from_secs(60);
    while h.query_by_label_contains("faint arc to the east").is_none() {
        assert!(Instant::now() < deadline, "the page never showed the grades");
        h.step();
        std::thread::yield_now();
    }
    assert!(h.query_by_label("ann").is_some() && h.query_by_label("bob").is_some(), "both inspectors listed");
    let lines = &h.state().grades[&ids[2]];
    assert_eq!(lines.iter().map(|g| g.score).collect::<Vec<_>>(), vec![Some(Score::Maybe), Some(Score::Sure)]);
}

#[test]
fn dashboard_counts_grades_scores_and_the_roc() {
    use lens_inspect::app::dashboard::{DashboardData, SCORE_BINS};
    use lens_inspect::project::Truth;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.lensproj");
    let ids = make_project(&path, 5); // scores 1.0, 0.8, 0.6, 0.4, 0.2
    let mut p = Project::open_existing(&path).expect("open");
    let (a, b) = (p.inspector("a", Role::Volunteer).expect("a"), p.inspector("b", Role::Volunteer).expect("b"));
    let mut grade = |c: i64, who: i64, s: Option<Score>| {
        p.record_grade(&NewGrade { candidate_id: c, inspector_id: who, score: s, ..Default::default() })
            .expect("grade");
    };
    grade(ids[0], a.id, Some(Score::Sure));
    grade(ids[1], a.id, Some(Score::No));
    grade(ids[1], a.id, None); // undone: not a current grade any more
    grade(ids[1], b.id, Some(Score::Maybe));
    grade(ids[0], b.id, Some(Score::Sure));
    // Truth: the two highest-scored are lenses, the rest not -> a perfect ROC.
    let truths: std::collections::BTreeMap<String, Truth> =
        (0..5).map(|k| (format!("c{k}"), Truth { is_lens: k < 2, extra: Default::default() })).collect();
    p.set_truths(&truths).expect("truth");
    let d = DashboardData::load(&p).expect("dashboard");
    assert_eq!(d.grade_counts, [0, 0, 1, 2], "two 5s and one 3; the undone 0 does not count");
    let per: Vec<(String, Vec<f64>)> =
        d.grades_over_time.iter().map(|(n, l)| (n.clone(), l.iter().map(|p| p[1]).collect())).collect();
    assert_eq!(per, vec![("a".to_string(), vec![1.0, 2.0]), ("b".to_string(), vec![1.0, 2.0])]);
    assert!(d.grades_over_time.iter().all(|(_, l)| l.windows(2).all(|w| w[0][0] <= w[1][0]) && l[0][0] >= 0.0));
    // Scores 1.0 and 0.8 graded, 0.6, 0.4, 0.2 not.
    let bin = |s: f64| ((s * SCORE_BINS as f64) as usize).min(SCORE_BINS - 1);
    assert_eq!(d.scores_graded.iter().sum::<usize>(), 2);
    assert_eq!(d.scores_graded[bin(1.0)], 1);
    assert_eq!(d.scores_graded[bin(0.8)], 1);
    assert_eq!(d.scores_ungraded.iter().sum::<usize>(), 3);
    assert_eq!(d.scores_ungraded[..bin(0.7)].iter().sum::<usize>(), 3, "all three below 0.7");
    let (curve, auroc, n) = d.roc.expect("truth for all five");
    assert_eq!(n, 5);
    assert!((auroc - 1.0).abs() < 1e-12);
    assert!(curve.contains(&[0.0, 1.0]), "a perfect ranking passes through (0, 1): {curve:?}");
}

fn click(h: &mut Harness<'_, GradeView>, p: egui::Pos2) {
    h.hover_at(p);
    for pressed in [true, false] {
        h.event(egui::Event::PointerButton {
            pos: p,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: Default::default(),
        });
    }
    h.run_steps(2);
}

#[test]
fn zoomed_clicks_mark_the_pixel_under_the_cursor() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.lensproj");
    make_project(&path, 3);
    let mut h = harness(open_view(&path, "zoe", Role::Volunteer));
    wait_ready(&mut h);
    for _ in 0..2 {
        h.key_press(egui::Key::Plus);
        h.run_steps(2);
    }
    assert!((h.state().zoom - 2.25).abs() < 1e-4, "two steps of 1.5x");
    let big = h
        .query_all_by_role(egui::accesskit::Role::Image)
        .map(|n| n.rect())
        .max_by(|a, b| a.area().total_cmp(&b.area()))
        .expect("the big picture");
    click(&mut h, big.center());
    click(&mut h, big.min + egui::vec2(0.5, 0.5));
    let pts = h.state().points.clone();
    assert_eq!(pts.len(), 2);
    let n = common::SIZE as f32;
    let centre = (n - 1.0) / 2.0;
    // The centre of the view stays the cutout's centre pixel.
    assert!((pts[0].x - centre).abs() < 0.3 && (pts[0].y - centre).abs() < 0.3, "{:?}", pts[0]);
    // The top-left corner of the view is 1/2.25 of the cutout from the centre, not the corner.
    let edge = (0.5 - 0.5 / 2.25) * n - 0.5;
    assert!((pts[1].x - edge).abs() < 0.3, "{:?} vs {edge}", pts[1]);
    assert!((pts[1].y - (n - 1.0 - edge)).abs() < 0.3, "{:?}", pts[1]);
    h.key_press(egui::Key::Z);
    h.run_steps(2);
    assert_eq!(h.state().zoom, 1.0, "Z resets");
}

#[test]
fn the_next_candidate_appears_only_once_the_grade_is_on_disk() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.lensproj");
    let ids = make_project(&path, 4);
    let mut h = harness(open_view(&path, "dora", Role::Volunteer));
    let reader = Project::open_existing(&path).expect("reader");
    for (k, key) in [egui::Key::Num5, egui::Key::Num0, egui::Key::Num3].into_iter().enumerate() {
        wait_ready(&mut h);
        assert_eq!(h.state().current(), Some(ids[k]));
        h.key_press(key);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            h.step();
            let moved = h.state().current() != Some(ids[k]);
            let on_disk = reader.grade_events().expect("events").len();
            if moved {
                assert_eq!(on_disk, k + 1, "grade {k} must be on disk before the next candidate shows");
                break;
            }
            assert!(Instant::now() < deadline, "never moved on");
            std::thread::yield_now();
        }
    }
}

#[test]
fn a_candidate_whose_picture_failed_cannot_be_graded_and_can_be_skipped() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.lensproj");
    {
        let mut p = Project::create_or_open(&path).expect("project");
        let missing = dir.path().join("gone.fits");
        let items: Vec<NewCandidate> = (0..2)
            .map(|k| {
                let c = common::cutout(&format!("c{k}"), k as u64);
                // c0's pixels live only in a file that does not exist; c1's are in the project.
                let spec = ObjectSpec::new(c.name.clone(), ObjectSource::File { path: missing.clone() });
                NewCandidate::from_cutout(spec, &c, k == 1)
            })
            .collect();
        p.insert_candidates(&items).expect("insert");
    }
    let mut h = harness(open_view(&path, "ann", Role::Volunteer));
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.state().failed_picture().is_none() {
        assert!(Instant::now() < deadline, "the failure was never reported");
        assert!(!h.state().ready(), "a candidate without pixels became gradable");
        h.step();
        std::thread::yield_now();
    }
    let why = h.state().failed_picture().expect("failed").to_string();
    assert!(why.contains("gone.fits"), "the message names the file: {why}");
    h.key_press(egui::Key::Num5);
    settle(&mut h);
    let p = Project::open_existing(&path).expect("open");
    assert!(p.grade_events().expect("events").is_empty(), "an unseen candidate was graded");
    // → skips it; the next one is graded as usual.
    h.key_press(egui::Key::ArrowRight);
    wait_ready(&mut h);
    h.key_press(egui::Key::Num0);
    settle(&mut h);
    let events = p.grade_events().expect("events");
    let names: Vec<String> =
        p.candidates().expect("rows").into_iter().filter(|c| c.id == events[0].candidate_id).map(|c| c.name).collect();
    assert_eq!((events.len(), names[0].as_str(), events[0].score), (1, "c1", Some(Score::No)));
}

#[test]
fn the_review_table_shows_every_one_of_100000_rows() {
    use lens_inspect::project::export::CatalogueRow;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.lensproj");
    make_project(&path, 1);
    let mut review = ReviewView::load(&Project::open_existing(&path).expect("open"));
    let n = 100_000;
    review.rows = (0..n)
        .map(|k| CatalogueRow {
            name: format!("r{k:06}"),
            ra: None,
            dec: None,
            tile: None,
            model_score: Some(1.0 - k as f32 / n as f32),
            model_version: None,
            n_grades: 0,
            mean_grade: None,
            n0: 0,
            n1: 0,
            n3: 0,
            n5: 0,
            swap_posterior: 5e-4,
            swap_status: "open".into(),
            seed_rule: false,
            disputed: false,
            blank_bands: String::new(),
        })
        .collect();
    let mut h = Harness::builder()
        .with_size(egui::vec2(1100.0, 760.0))
        .build_ui_state(|ui, v: &mut ReviewView| v.ui(ui), review);
    h.run_steps(2);
    assert!(h.query_by_label("r000000").is_some(), "the best-scored row is on top");
    assert!(h.query_by_label_contains("100000 candidates").is_some());
    // Only the rows on screen are laid out.
    let laid_out = h.query_all_by_label_contains("r0").count();
    assert!(laid_out < 100, "{laid_out} rows laid out");
    // Scrolled to the very end, the last of the 100,000 rows is there (the table used to stop at
    // 2,000 without saying so).
    h.hover_at(egui::pos2(400.0, 500.0));
    for _ in 0..40 {
        h.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Page,
            delta: egui::vec2(0.0, -1.0e4),
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Unknown,
            modifiers: egui::Modifiers::NONE,
        });
        h.run_steps(3);
    }
    h.run_steps(30);
    assert!(h.query_by_label("r099999").is_some(), "the last row can be reached");
    assert!(h.query_by_label("r000000").is_none());
}

#[test]
fn the_cursor_and_marked_points_show_their_sky_position_from_the_candidates_wcs() {
    use lens_inspect::survey::wcs::{sky_label, TanWcs, WcsKeys};
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.lensproj");
    let n = common::SIZE;
    // The cutout's centre pixel, (n + 1) / 2 in FITS counting, is exactly RA 150, Dec 2.
    let centre = (n as f64 + 1.0) / 2.0;
    let wcs = TanWcs::new(&WcsKeys {
        ctype: [Some("RA---TAN".into()), Some("DEC--TAN".into())],
        naxis: [n, n],
        crpix: [Some(centre), Some(centre)],
        crval: [Some(150.0), Some(2.0)],
        cd: [Some(-0.2 / 3600.0), Some(0.0), Some(0.0), Some(0.2 / 3600.0)],
        ..Default::default()
    })
    .unwrap();
    {
        let mut p = Project::create_or_open(&path).expect("project");
        let c = common::cutout("sky", 1);
        let mut spec = ObjectSpec::new(c.name.clone(), ObjectSource::File { path: "/x.fits".into() });
        spec.metadata.insert("wcs".into(), wcs.to_json());
        p.insert_candidates(&[NewCandidate::from_cutout(spec, &c, true)]).expect("insert");
    }
    let mut h = harness(open_view(&path, "ann", Role::Volunteer));
    wait_ready(&mut h);
    let big = h
        .query_all_by_role(egui::accesskit::Role::Image)
        .map(|n| n.rect())
        .max_by(|a, b| a.area().total_cmp(&b.area()))
        .expect("the big picture");
    h.hover_at(big.center());
    h.run_steps(2);
    let expected = sky_label(150.0, 2.0);
    assert!(expected.contains("10:00:00.000 +02:00:00.00"), "{expected}");
    h.get_by_label_contains(&format!("cursor: x {centre:.1}  y {centre:.1}   {expected}"));
    click(&mut h, big.center());
    h.get_by_label_contains(&format!("1: x {centre:.1}  y {centre:.1}   {expected}"));
    // Away from the centre the position moves the way the WCS says: east is left.
    let left = big.center() - egui::vec2(big.width() / n as f32 * 3.0, 0.0);
    h.hover_at(left);
    h.run_steps(2);
    let (ra, dec) = wcs.pixel_to_sky(centre - 3.0, centre).unwrap();
    assert!(ra > 150.0);
    h.get_by_label_contains(&sky_label(ra, dec));
}

#[test]
#[cfg(unix)]
fn open_in_ds9_writes_the_cube_and_starts_ds9_or_says_it_is_missing() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.lensproj");
    let ids = make_project(&path, 2);
    // A stand-in for ds9 that records its arguments. It lives under Cargo's own scratch folder,
    // not the system's temporary folder, which CI machines often mount without exec permission.
    let bin_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch");
    let args_file = dir.path().join("ds9-args.txt");
    let fake = bin_dir.path().join("fake-ds9");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {}.tmp && mv {0}.tmp {0}\n", args_file.display()),
    )
    .expect("script");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let p = Project::open_existing(&path).expect("open");
    let mut review = LensApp::open_review(&p, Arc::new(|| {}));
    review.page = Some(ids[1]);
    review.ds9 = fake;
    let mut h = Harness::builder()
        .with_size(egui::vec2(1200.0, 900.0))
        .build_ui_state(|ui, r: &mut lens_inspect::app::review::ReviewView| r.ui(ui), review);
    // The button sits below the page's images: click it once they are drawn, or the layout moves
    // it between the click and the frame that handles it (as on a loaded machine).
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.query_by_label("composite").is_none() {
        assert!(Instant::now() < deadline, "the candidate's page was never rendered");
        h.step();
        std::thread::yield_now();
    }
    h.run_steps(2);
    h.get_by_label("Open in ds9").click();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !args_file.exists() || h.query_by_label_contains("ds9 opened").is_none() {
        assert!(
            Instant::now() < deadline,
            "ds9 was never started; the page says: {:?}",
            h.state().ds9_message.lock().map(|m| m.clone()).ok().flatten()
        );
        h.step();
        std::thread::yield_now();
    }
    let args = std::fs::read_to_string(&args_file).expect("args");
    let cube = args.lines().next().expect("the cube comes first");
    assert!(cube.ends_with("c1.fits"), "{args}");
    let mut f = fitsio::FitsFile::open(cube).expect("a FITS file");
    let hdu = f.primary_hdu().expect("primary");
    match &hdu.info {
        fitsio::hdu::HduInfo::ImageInfo { shape, .. } => assert_eq!(shape, &vec![4, common::SIZE, common::SIZE]),
        _ => panic!("an image"),
    }
    // Without ds9, the page says so and where the cube is.
    h.state_mut().ds9 = dir.path().join("no-such-ds9");
    h.get_by_label("Open in ds9").click();
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.query_by_label_contains("ds9 is not installed").is_none() {
        assert!(Instant::now() < deadline, "no message about the missing ds9");
        h.step();
        std::thread::yield_now();
    }
}

#[test]
fn a_missing_file_offers_relocation_and_the_picture_comes_back() {
    use lens_inspect::project::ingest::{ingest, IngestOptions};
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("old-disk").join("data");
    lens_inspect::survey::fits_write::write_bologna(&data, &common::cutout("c0", 1)).expect("write");
    let path = dir.path().join("p.lensproj");
    {
        let mut p = Project::create_or_open(&path).expect("project");
        let s = ingest(&mut p, &data, &IngestOptions::default(), &|_, _| {}).expect("ingest");
        assert_eq!(s.ingested, 1);
    }
    let moved = dir.path().join("new-disk").join("data");
    std::fs::create_dir_all(moved.parent().expect("parent")).expect("dir");
    std::fs::rename(&data, &moved).expect("move");
    let mut h = harness(open_view(&path, "ann", Role::Volunteer));
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.query_by_label_contains("Did the data move?").is_none() {
        assert!(Instant::now() < deadline, "no offer to find the files");
        h.step();
        std::thread::yield_now();
    }
    assert!(!h.state().ready());
    // The folder the project remembers is filled in from the missing file's path.
    assert_eq!(std::path::Path::new(&h.state().relocate_from).parent(), Some(data.as_path()));
    h.state_mut().relocate_from = data.display().to_string();
    h.state_mut().relocate_to = moved.display().to_string();
    h.run_steps(2);
    h.get_by_label("Relocate every candidate's files").click();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !h.state().ready() {
        assert!(Instant::now() < deadline, "the picture never came back");
        h.step();
        std::thread::yield_now();
    }
    assert!(h.state().message.as_deref().unwrap_or("").contains("relocated 1 candidates; 1 find their files now"));
}

#[test]
fn display_settings_stay_with_the_project_and_inspector_and_travel_in_packs() {
    use lens_inspect::render::DisplaySettings;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.lensproj");
    make_project(&path, 3);
    let mut h = harness(open_view(&path, "ann", Role::Volunteer));
    wait_ready(&mut h);
    assert_eq!(h.state().settings, DisplaySettings::default());
    // Click the middle of the Q slider: Q jumps to the middle of its range.
    let slider = h.query_all_by_role(egui::accesskit::Role::Slider).next().expect("the Q slider").rect();
    click(&mut h, slider.center());
    let chosen = h.state().settings;
    assert_ne!(chosen, DisplaySettings::default(), "the click moved Q");
    // Saved once the sliders are still (on a worker): wait for it to reach the project.
    let saved = || Project::open_existing(&path).expect("open").display_settings("ann").expect("meta");
    let deadline = Instant::now() + Duration::from_secs(20);
    while saved().is_none() {
        assert!(Instant::now() < deadline, "the settings were never saved");
        h.step();
        std::thread::yield_now();
    }
    let stored: DisplaySettings = serde_json::from_str(&saved().expect("saved")).expect("json");
    assert_eq!(stored, chosen);
    drop(h);
    // Ann gets them back; Bob, who set nothing, starts from the defaults.
    assert_eq!(open_view(&path, "ann", Role::Volunteer).settings, chosen);
    assert_eq!(open_view(&path, "bob", Role::Volunteer).settings, DisplaySettings::default());
    // A pack made for Ann opens with her settings, whoever opens it there.
    let pack = dir.path().join("ann.pack");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_lens-inspect"))
        .args(["pack", "export", "--project"])
        .arg(&path)
        .arg("--out")
        .arg(&pack)
        .args(["--inspector", "ann", "--n", "2"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(open_view(&pack, "ann", Role::Volunteer).settings, chosen);
}

/// A candidate whose pixels the model does not take as they are (another pixel scale, another
/// size) says so beside the map switch, with the sizes, so that nobody reads a map of what the
/// model saw as a map of the file's pixels.
#[test]
fn the_grading_view_and_the_candidate_page_say_how_the_model_sees_each_candidate() {
    use lens_inspect::survey::wcs::TanWcs;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.lensproj");
    let n = common::SIZE;
    {
        let mut p = Project::create_or_open(&path).expect("project");
        let mut items = Vec::new();
        for (name, arcsec) in [("fine", 0.1), ("told", 0.4)] {
            let c = common::cutout(name, 1);
            let mut spec = ObjectSpec::new(c.name.clone(), ObjectSource::File { path: "/x.fits".into() });
            if name == "fine" {
                spec.metadata.insert("wcs".into(), TanWcs::north_up(150.0, 2.0, n, arcsec).unwrap().to_json());
            } else {
                spec.metadata.insert("pixel_arcsec".into(), serde_json::json!(arcsec));
            }
            items.push(NewCandidate::from_cutout(spec, &c, true));
        }
        // A cutout whose u band the survey masked (ingest keeps which bands are blank).
        let mut c = common::cutout("blank", 2);
        c.bands[0].iter_mut().for_each(|v| *v = 0.0);
        c.mask[0].iter_mut().for_each(|m| *m = true);
        let mut spec = ObjectSpec::new(c.name.clone(), ObjectSource::File { path: "/x.fits".into() });
        spec.metadata.insert("blank_bands".into(), serde_json::json!("u"));
        items.push(NewCandidate::from_cutout(spec, &c, true));
        p.insert_candidates(&items).expect("insert");
    }
    // No model version stored: the shipped model (101 pixels of 0.2") scores and maps.
    let mut h = harness(open_view(&path, "ann", Role::Volunteer));
    wait_ready(&mut h);
    // 21 pixels of 0.1" are 11 of 0.2" (from the WCS); 21 of 0.4" are 42 (from the kept scale).
    let lines = [
        "The model sees this cutout resampled from 0.100\" to 0.2\" pixels (21 x 21 -> 11 x 11), then padded",
        "The model sees this cutout resampled from 0.400\" to 0.2\" pixels (21 x 21 -> 42 x 42), then padded",
        "Its u band holds no image (masked, or one constant value): the model saw sky there.",
    ];
    let mut seen = Vec::new();
    for k in 0..lines.len() {
        let shown: Vec<&str> = lines.into_iter().filter(|l| h.query_by_label_contains(l).is_some()).collect();
        assert_eq!(shown.len(), 1, "candidate {k}: exactly one of the lines");
        // The blank band's thumbnail says it too, and only for that candidate.
        let blank_label = h.query_by_label_contains("u: no image").is_some();
        assert_eq!(blank_label, shown[0] == lines[2], "candidate {k}");
        seen.push(shown[0]);
        h.key_press(egui::Key::ArrowRight);
        // The key is read on the next frame; only then is the next picture awaited.
        h.step();
        wait_ready(&mut h);
    }
    seen.sort();
    let mut want = lines.to_vec();
    want.sort();
    assert_eq!(seen, want, "each candidate its own line");
    // The candidate page says it under its evidence map (from the render worker, with the map).
    let p = Project::open_existing(&path).expect("open");
    let fine = p.candidate_by_name("fine").expect("row").id;
    let mut review = LensApp::open_review(&p, Arc::new(|| {}));
    review.page = Some(fine);
    let mut h = Harness::builder()
        .with_size(egui::vec2(1200.0, 900.0))
        .build_ui_state(|ui, r: &mut lens_inspect::app::review::ReviewView| r.ui(ui), review);
    let deadline = Instant::now() + Duration::from_secs(60);
    while h.query_by_label_contains(lines[0]).is_none() {
        assert!(Instant::now() < deadline, "the page never said how the model saw the candidate");
        h.step();
        std::thread::yield_now();
    }
    assert!(h.query_by_label_contains(lines[1]).is_none(), "only the open candidate's line");
    assert!(h.query_by_label_contains("no image").is_none(), "every band of 'fine' holds an image");
    // The blank candidate's page labels its empty band thumbnail.
    let blank = p.candidate_by_name("blank").expect("row").id;
    let mut review = LensApp::open_review(&p, Arc::new(|| {}));
    review.page = Some(blank);
    let mut h = Harness::builder()
        .with_size(egui::vec2(1200.0, 900.0))
        .build_ui_state(|ui, r: &mut lens_inspect::app::review::ReviewView| r.ui(ui), review);
    let deadline = Instant::now() + Duration::from_secs(60);
    while h.query_by_label_contains("u: no image").is_none() {
        assert!(Instant::now() < deadline, "the page never labelled the blank band");
        h.step();
        std::thread::yield_now();
    }
    assert!(h.query_by_label("g").is_some() && h.query_by_label_contains("g: no image").is_none());
}
