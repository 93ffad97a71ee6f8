//! The grading queue: model order, nothing twice, training candidates at the Space Warps rate.

mod common;

use lens_inspect::project::{NewCandidate, NewGrade, Project, Role, Score, Truth};
use lens_inspect::queue::{build_queue, QueueOrder, TrainingRate};
use lens_inspect::survey::{ObjectSource, ObjectSpec};
use std::collections::BTreeMap;

#[test]
fn training_candidates_come_one_in_five_then_one_in_ten() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut p = Project::create_or_open(&dir.path().join("p.lensproj")).expect("project");
    let items: Vec<NewCandidate> = (0..200)
        .map(|k| {
            let c = common::cutout(&format!("c{k}"), k);
            let spec = ObjectSpec::new(c.name.clone(), ObjectSource::File { path: "/x".into() });
            let mut n = NewCandidate::from_cutout(spec, &c, false);
            if k % 4 == 0 {
                n.is_training = true;
                n.truth = Some(Truth { is_lens: k % 8 == 0, extra: BTreeMap::new() });
            }
            n
        })
        .collect();
    p.insert_candidates(&items).expect("insert");
    let training: std::collections::HashSet<i64> =
        p.candidates().expect("rows").iter().filter(|c| c.is_training).map(|c| c.id).collect();
    let ann = p.inspector("ann", Role::Volunteer).expect("ann");
    let q = build_queue(&p, ann.id, QueueOrder::ModelScore, TrainingRate::default()).expect("queue");
    assert_eq!(q.len(), 200);
    let early = q[..50].iter().filter(|id| training.contains(id)).count();
    let later = q[50..150].iter().filter(|id| training.contains(id)).count();
    assert_eq!(early, 10, "1 in 5 over the first 50");
    assert_eq!(later, 10, "1 in 10 afterwards");
    // Graded candidates leave the queue; the rate continues from the inspector's count.
    for &id in &q[..3] {
        p.record_grade(&NewGrade {
            candidate_id: id,
            inspector_id: ann.id,
            score: Some(Score::No),
            ..Default::default()
        })
        .expect("grade");
    }
    let q2 = build_queue(&p, ann.id, QueueOrder::Random(3), TrainingRate::default()).expect("queue");
    assert_eq!(q2.len(), 197);
    assert!(q[..3].iter().all(|id| !q2.contains(id)));
    assert!(training.contains(&q2[1]), "the 5th grade overall is a training candidate");
    // An undone grade brings its candidate back to that inspector, and only to them.
    p.record_grade(&NewGrade { candidate_id: q[0], inspector_id: ann.id, score: None, ..Default::default() })
        .expect("undo");
    let q3 = build_queue(&p, ann.id, QueueOrder::ModelScore, TrainingRate::default()).expect("queue");
    assert_eq!(q3.len(), 198);
    assert!(q3.contains(&q[0]) && !q3.contains(&q[1]));
}
