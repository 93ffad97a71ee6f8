//! The retraining job on a small project: labels from grades, the guard, stored versions,
//! re-scoring, and cancellation that changes nothing.

mod common;

use lens_inspect::active::retrain::{retrain, RetrainConfig};
use lens_inspect::model::checkpoint::ModelCard;
use lens_inspect::model::net::{Arch, LensNet};
use lens_inspect::model::score::{score_project, Scorer};
use lens_inspect::model::train::{Quiet, TrainObserver};
use lens_inspect::project::Project;

fn graded_project(path: &std::path::Path) -> (Project, Scorer) {
    let mut p = common::graded_sim_project(path, 32, 77);
    let device = burn::tensor::Device::flex();
    device.seed(5);
    let scorer = Scorer::new(LensNet::new(Arch::Cnn, &device), ModelCard::new(Arch::Cnn, 101, 50.0));
    score_project(&mut p, &scorer, "base", 16, &|_, _| {}).expect("score");
    (p, scorer)
}

#[test]
fn retraining_stores_a_version_and_rescores_only_when_kept() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut p, base) = graded_project(&dir.path().join("p.lensproj"));
    // The simulated truth (even objects are lenses), for the truth metrics.
    let truths = (0..32)
        .map(|k| (format!("s{k}"), lens_inspect::project::Truth { is_lens: k % 2 == 0, extra: Default::default() }))
        .collect();
    assert_eq!(p.set_truths(&truths).expect("truth"), 32);
    let before = p.counts().expect("counts");
    let mut cfg = RetrainConfig::default();
    cfg.train.arch = Arch::Cnn;
    cfg.train.epochs = 2;
    cfg.train.batch = 8;
    cfg.train.lr = 1e-3;
    let out = retrain(&mut p, &base, &cfg, &mut Quiet).expect("retrain");
    assert_eq!(out.labels, 32, "every candidate has a label from two agreeing inspectors");
    assert!(out.model_version > 0);
    let after = p.counts().expect("counts");
    assert_eq!(after.models, before.models + 1, "one new version, with its scores if kept");
    let stored = p.current_model_bytes().expect("bytes");
    assert_eq!(stored.is_some(), out.kept, "only a kept model becomes current");
    let history = p.model_history().expect("history");
    let new = history.iter().find(|h| h.id == out.model_version).expect("stored");
    assert_eq!(new.predictions, if out.kept { 32 } else { 0 }, "a kept model comes with its scores");
    assert_eq!(after.predictions, before.predictions + new.predictions as i64);
    // Three disjoint splits; what decided was never trained on nor picked the epoch.
    let s = &out.splits;
    assert_eq!(s.train.len() + s.stop.len() + s.decide.len(), 32);
    assert!(s.decide.iter().all(|id| !s.train.contains(id) && !s.stop.contains(id)));
    assert!(s.stop.iter().all(|id| !s.train.contains(id)));
    assert!(out.old_sim.auroc.is_finite() && out.new_sim.auroc.is_finite(), "simulations are reported beside");
    // Truth metrics leave out every candidate the retraining used (here: all of them).
    let truth = p.latest_scores_with_truth().expect("truth");
    assert_eq!((truth.held_out.len(), truth.trained_on.len()), (0, 32));
}

struct CancelAtOnce;
impl TrainObserver for CancelAtOnce {
    fn step(&mut self, _: usize, _: usize, _: f64) -> bool {
        false
    }
}

#[test]
fn cancelling_leaves_the_model_and_the_database_as_they_were() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut p, base) = graded_project(&dir.path().join("p.lensproj"));
    let before = (p.counts().expect("counts"), p.latest_predictions().expect("scores"));
    let mut cfg = RetrainConfig::default();
    cfg.train.arch = Arch::Cnn;
    let out = retrain(&mut p, &base, &cfg, &mut CancelAtOnce).expect("retrain");
    assert!(out.cancelled && !out.kept);
    assert_eq!((p.counts().expect("counts"), p.latest_predictions().expect("scores")), before);
    assert_eq!(p.integrity_check().expect("check"), "ok");
}

#[test]
fn too_few_labels_is_a_clear_refusal() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut p = Project::create_or_open(&dir.path().join("p.lensproj")).expect("project");
    let device = burn::tensor::Device::flex();
    let base = Scorer::new(LensNet::new(Arch::Cnn, &device), ModelCard::new(Arch::Cnn, 101, 50.0));
    let err = retrain(&mut p, &base, &RetrainConfig::default(), &mut Quiet).expect_err("no labels");
    assert!(err.to_string().contains("grade more"), "{err}");
}
