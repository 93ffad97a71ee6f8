//! Training and fine-tuning: Adam on binary cross-entropy (soft labels allowed), augmentation,
//! validation each epoch, early stopping on the validation loss, and the best checkpoint kept.
//!
//! Deterministic for a seed: the seed fixes the initial weights (burn's device RNG), the order
//! of the data and every augmentation (our own RNG).

use super::data::{batch, batch_tensors, batch_values, Augment, Dataset};
use super::metrics::challenge_metrics;
use super::net::{Arch, LensNet};
use super::score::view_mean;
use super::stream::ItemStream;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{activation::sigmoid, Device, Tensor};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub arch: Arch,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    /// Stop after this many epochs without a better validation loss.
    pub patience: usize,
    pub augment: Augment,
    /// Train only the head (transfer learning from `init`).
    pub freeze_backbone: bool,
    /// Keep the first three conv stages (the last stage, attention and head learn).
    #[serde(default)]
    pub freeze_stem: bool,
    /// Batches per epoch; `None` = one pass over the training data.
    pub steps_per_epoch: Option<usize>,
    /// Learning rate falls from `lr` to `lr / 100` along a half cosine over all `epochs`
    /// (long runs on fresh data); otherwise it stays at `lr`.
    #[serde(default)]
    pub cosine_lr: bool,
    /// Normalise by the batch-norm layers' running statistics while training, and keep them,
    /// instead of each batch's (see [`LensNet::with_norm_statistics_frozen`]). For fine-tuning on
    /// a few labels; frozen layers (`freeze_stem`, `freeze_backbone`) always keep theirs.
    #[serde(default)]
    pub freeze_norm_statistics: bool,
    /// Draw half of every batch from the items labelled lenses (label >= 0.5) and half from the
    /// rest, with replacement, instead of passes over the data in turn: a fixed set where
    /// lenses are rare (a survey's own images, labelled by a teacher) still shows the network
    /// as many lenses as non-lenses. Fixed data sets only.
    #[serde(default)]
    pub balance_classes: bool,
}

impl Default for TrainConfig {
    fn default() -> TrainConfig {
        TrainConfig {
            arch: Arch::LensDetector,
            epochs: 10,
            batch: 32,
            lr: 1e-3,
            seed: 1,
            patience: 3,
            augment: Augment::default(),
            freeze_backbone: false,
            freeze_stem: false,
            steps_per_epoch: None,
            cosine_lr: false,
            freeze_norm_statistics: false,
            balance_classes: false,
        }
    }
}

impl TrainConfig {
    /// The learning rate during `epoch` (1-based).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        if !self.cosine_lr || self.epochs <= 1 {
            return self.lr;
        }
        let t = (epoch.saturating_sub(1)) as f64 / (self.epochs - 1) as f64;
        let floor = self.lr / 100.0;
        floor + 0.5 * (self.lr - floor) * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// What one epoch achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_auroc: f64,
    pub seconds: f64,
    /// This epoch's weights are the best so far (kept).
    pub best: bool,
}

/// Progress callbacks: `step(done, total, loss)` after each batch, `epoch(report)` after each
/// epoch. Either may return `false` to stop (cancel) training.
pub trait TrainObserver {
    fn step(&mut self, _done: usize, _total: usize, _loss: f64) -> bool {
        true
    }
    fn epoch(&mut self, _report: &EpochReport) -> bool {
        true
    }
    /// After each epoch, the weights as they are now (validation mode), to save for a resume.
    fn weights(&mut self, _current: &LensNet, _report: &EpochReport) {}
}

/// Where training batches come from.
pub enum TrainSource<'a> {
    /// A fixed data set, reshuffled at each pass.
    Fixed(&'a Dataset),
    /// Fresh items from a stream; with `mix`, each item comes from the fixed set instead with
    /// the given probability (a user's own data mixed in by share).
    Stream { stream: &'a mut dyn ItemStream, mix: Option<(&'a Dataset, f64)> },
}

/// Where a resumed run starts: the weights it had and the epochs already done.
pub struct Resume {
    pub net: LensNet,
    pub epochs_done: usize,
    /// The best validation loss before the pause (a later epoch must beat it to count as best).
    pub best_val_loss: Option<f64>,
}

/// A trained model whose scores, averaged over the symmetries of the square, replace part or all
/// of the labels in training (distillation). Averaging a model over its 8 views raises its
/// AUROC on images from other simulators by about 0.02 (docs/robustness.md, section 6) but costs
/// 8 forward passes per cutout; a network trained towards that average can carry some of the
/// gain in one pass. The teacher's targets come from the model, not from our simulator's
/// labels, so they do not pull the student towards our simulator's look more than the teacher
/// already is.
pub struct Teacher {
    /// The teacher's members (one, or an ensemble's), in validation mode, on the device
    /// inference runs on; their scores are averaged.
    pub nets: Vec<LensNet>,
    /// Views averaged (1 - 8; 8 makes the target independent of the batch's orientation).
    pub views: usize,
    /// Share of each target taken from the teacher: target = (1 - w) label + w P_teacher.
    pub weight: f64,
    /// The fixed data set's labels are already this teacher's scores ([`Teacher::label`]).
    labelled_the_data: bool,
}

impl Teacher {
    pub fn new(nets: Vec<LensNet>, views: usize, weight: f64) -> Teacher {
        Teacher { nets, views, weight, labelled_the_data: false }
    }

    /// Replaces every label of `data` by the teacher's P(lens): a folder without truth becomes a
    /// set to learn the teacher from, and its held-out part measures how close the student is.
    pub fn label(&mut self, data: &mut Dataset, batch_size: usize) {
        let device = Device::flex();
        let items: Vec<usize> = (0..data.len()).collect();
        let mut labels = Vec::with_capacity(data.len());
        for chunk in items.chunks(batch_size.max(1)) {
            let (x, _) = batch(data, chunk, None, &device);
            labels.extend(self.probabilities(x));
        }
        data.labels = labels;
        self.labelled_the_data = true;
    }

    /// The teacher's P(lens) for a batch: its members' view averages, averaged.
    pub fn probabilities(&self, x: Tensor<4>) -> Vec<f32> {
        let mut sum = vec![0f32; x.dims()[0]];
        for net in &self.nets {
            let p = view_mean(net, x.clone(), self.views).try_into_vec_as::<f32>().unwrap_or_default();
            sum.iter_mut().zip(&p).for_each(|(s, p)| *s += p);
        }
        let n = self.nets.len().max(1) as f32;
        sum.into_iter().map(|s| s / n).collect()
    }
}

/// An observer that watches nothing.
pub struct Quiet;
impl TrainObserver for Quiet {}

pub struct TrainOutcome {
    /// The best checkpoint (lowest validation loss), in validation mode.
    pub net: LensNet,
    pub history: Vec<EpochReport>,
    pub best_epoch: usize,
    pub cancelled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("no training data")]
    NoTrainingData,
    #[error("no validation data (give --val-data, or enough data to hold some out)")]
    NoValidationData,
    #[error("training data has only one class ({0}); a lens finder needs lenses and non-lenses")]
    OneClass(&'static str),
}

/// Numerically stable binary cross-entropy on logits with (soft) targets:
/// mean(max(z, 0) - z y + ln(1 + e^-|z|)).
pub fn bce_with_logits(logits: Tensor<1>, targets: Tensor<1>) -> Tensor<1> {
    let loss = logits.clone().clamp_min(0.0) - logits.clone() * targets + logits.abs().neg().exp().log1p();
    loss.mean()
}

/// Indices of the items labelled lenses (>= 0.5) and of the rest.
fn class_pools(labels: &[f32]) -> (Vec<usize>, Vec<usize>) {
    (0..labels.len()).partition(|&k| labels[k] >= 0.5)
}

/// A batch of `size` items, alternately one of `lenses` and one of `others`, each drawn with
/// replacement; all from one pool where the other is empty.
fn balanced_batch(lenses: &[usize], others: &[usize], size: usize, rng: &mut impl rand::Rng) -> Vec<usize> {
    (0..size)
        .filter_map(|k| {
            let pool = match (k % 2 == 0 && !lenses.is_empty()) || others.is_empty() {
                true => lenses,
                false => others,
            };
            (!pool.is_empty()).then(|| pool[rng.random_range(0..pool.len())])
        })
        .collect()
}

/// Scores (probabilities) and mean loss of a data set, in batches, without gradients.
pub fn evaluate(net: &LensNet, data: &Dataset, batch_size: usize, device: &Device) -> (Vec<f32>, f64) {
    let valid = net.valid();
    let mut scores = Vec::with_capacity(data.len());
    let mut loss_sum = 0.0;
    let items: Vec<usize> = (0..data.len()).collect();
    for chunk in items.chunks(batch_size.max(1)) {
        let (x, y) = batch(data, chunk, None, device);
        let logits = valid.forward(x);
        let loss: f32 = bce_with_logits(logits.clone(), y).into_scalar();
        loss_sum += loss as f64 * chunk.len() as f64;
        scores.extend(sigmoid(logits).try_into_vec_as::<f32>().unwrap_or_default());
    }
    (scores, loss_sum / data.len().max(1) as f64)
}

/// burn's device RNG (weights, dropout) is process-wide: whoever seeds it and draws from it
/// (training, Monte-Carlo dropout) holds this lock, so a seed means the same run even when other
/// work trains in parallel.
pub fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Trains (or fine-tunes `init`) on `train`, validating on `val` after each epoch.
pub fn train(
    train: &Dataset,
    val: &Dataset,
    init: Option<LensNet>,
    cfg: &TrainConfig,
    observer: &mut dyn TrainObserver,
) -> Result<TrainOutcome, TrainError> {
    let resume = init.map(|net| Resume { net, epochs_done: 0, best_val_loss: None });
    train_from(TrainSource::Fixed(train), val, resume, None, cfg, observer)
}

/// Trains from any [`TrainSource`], validating on `val` after each epoch; `resume` starts from
/// given weights (fine-tuning, or a run continued after `epochs_done` epochs); `teacher` turns
/// the training targets into the teacher's scores (validation keeps the true labels).
pub fn train_from(
    source: TrainSource<'_>,
    val: &Dataset,
    resume: Option<Resume>,
    teacher: Option<&Teacher>,
    cfg: &TrainConfig,
    observer: &mut dyn TrainObserver,
) -> Result<TrainOutcome, TrainError> {
    let mut source = source;
    // A teacher with the whole weight sets every target, so the labels' classes do not matter
    // (a survey's unlabelled images may hold no lens the teacher believes in).
    let labels_used = teacher.is_none_or(|t| t.weight < 1.0);
    // A teacher's 8-view average does not change under a turn or flip, so where it already
    // labelled the fixed set and a step does nothing else to the pixels, asking it again at
    // every step (8 forward passes, most of a step's time) would give the labels back.
    let teacher = teacher.filter(|t| {
        let stored = t.labelled_the_data && t.weight >= 1.0 && t.views == 8;
        !(stored && matches!(source, TrainSource::Fixed(_)) && cfg.augment == Augment::dihedral_only())
    });
    if let TrainSource::Fixed(train) = &source {
        if train.is_empty() {
            return Err(TrainError::NoTrainingData);
        }
        let lenses = train.labels.iter().filter(|&&l| l >= 0.5).count();
        if lenses == 0 && labels_used {
            return Err(TrainError::OneClass("no lenses"));
        }
        if lenses == train.len() && labels_used {
            return Err(TrainError::OneClass("only lenses"));
        }
    }
    if val.is_empty() {
        return Err(TrainError::NoValidationData);
    }
    let (init, first_epoch, prior_best) = match resume {
        Some(r) => (Some(r.net), r.epochs_done + 1, r.best_val_loss),
        None => (None, 1, None),
    };
    let _guard = rng_lock();
    let device = Device::flex().autodiff();
    device.seed(cfg.seed);
    let eval_device = Device::flex();
    let mut net = match init {
        Some(n) => n.to_device(&device).train(),
        None => LensNet::new(cfg.arch, &device),
    }
    // Set each time: a network handed back by an earlier run keeps its flags through `.train()`.
    .with_norm_statistics_frozen(cfg.freeze_norm_statistics);
    if cfg.freeze_backbone {
        net = net.freeze_backbone();
    } else if cfg.freeze_stem {
        net = net.freeze_stem();
    }
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    // A resumed run draws its augmentations from another stream than the first part did.
    let mut rng =
        rand_pcg::Pcg64Mcg::seed_from_u64(cfg.seed ^ 0x5EED_DA7A ^ (first_epoch as u64 - 1).wrapping_mul(0x9E37_79B9));
    let steps = match &source {
        TrainSource::Fixed(train) => cfg.steps_per_epoch.unwrap_or_else(|| train.len().div_ceil(cfg.batch)),
        TrainSource::Stream { .. } => cfg.steps_per_epoch.unwrap_or(500),
    }
    .max(1);
    let mut staging = Dataset::default();
    let mut order: Vec<usize> = Vec::new();
    let pools = match &source {
        TrainSource::Fixed(train) if cfg.balance_classes => Some(class_pools(&train.labels)),
        _ => None,
    };
    let mut history = Vec::new();
    let mut best: Option<(f64, LensNet, usize)> = None;
    let mut since_best = 0;
    let mut cancelled = false;
    'epochs: for epoch in first_epoch..=cfg.epochs {
        let start = std::time::Instant::now();
        let mut loss_sum = 0.0;
        let lr = cfg.lr_at(epoch);
        for step in 0..steps {
            let items: Vec<usize>;
            let data: &Dataset = match &mut source {
                TrainSource::Fixed(train) if pools.is_some() => {
                    let (lenses, others) =
                        pools.as_ref().map(|(l, o)| (l.as_slice(), o.as_slice())).unwrap_or_default();
                    items = balanced_batch(lenses, others, cfg.batch, &mut rng);
                    train
                }
                TrainSource::Fixed(train) => {
                    if order.len() < cfg.batch {
                        let mut fresh: Vec<usize> = (0..train.len()).collect();
                        fresh.shuffle(&mut rng);
                        order.extend(fresh);
                    }
                    items = order.drain(..cfg.batch.min(order.len())).collect();
                    train
                }
                TrainSource::Stream { stream, mix } => {
                    staging.size = stream.size();
                    staging.inputs.clear();
                    staging.labels.clear();
                    staging.names.clear();
                    for _ in 0..cfg.batch {
                        let from_fixed =
                            mix.as_ref().filter(|(d, share)| !d.is_empty() && rng.random_bool(share.clamp(0.0, 1.0)));
                        match from_fixed {
                            Some((d, _)) => {
                                let k = rng.random_range(0..d.len());
                                staging.inputs.extend_from_slice(d.item(k));
                                staging.labels.push(d.labels[k]);
                            }
                            None => {
                                let (item, label) = stream.next_item();
                                staging.inputs.extend(item);
                                staging.labels.push(label);
                            }
                        }
                        staging.names.push(String::new());
                    }
                    items = (0..cfg.batch).collect();
                    &staging
                }
            };
            let (inputs, mut labels) = batch_values(data, &items, Some((&cfg.augment, &mut rng)));
            if let Some(t) = teacher {
                let (x, _) = batch_tensors(inputs.clone(), labels.clone(), data.size, &eval_device);
                let p = t.probabilities(x);
                let w = t.weight.clamp(0.0, 1.0) as f32;
                labels.iter_mut().zip(&p).for_each(|(y, p)| *y = (1.0 - w) * *y + w * p);
            }
            let (x, y) = batch_tensors(inputs, labels, data.size, &device);
            let loss = bce_with_logits(net.forward(x), y);
            let loss_value: f32 = loss.clone().into_scalar();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(lr, net, grads);
            loss_sum += loss_value as f64;
            if !observer.step(step + 1, steps, loss_value as f64) {
                cancelled = true;
                break 'epochs;
            }
        }
        let eval_net = net.valid().to_device(&eval_device);
        let (scores, val_loss) = evaluate(&eval_net, val, 64, &eval_device);
        let scores64: Vec<f64> = scores.iter().map(|&s| s as f64).collect();
        let truth: Vec<bool> = val.labels.iter().map(|&l| l >= 0.5).collect();
        let val_auroc = challenge_metrics(&scores64, &truth).auroc;
        let improved = best.as_ref().map(|b| b.0).or(prior_best).is_none_or(|b| val_loss < b);
        let report = EpochReport {
            epoch,
            train_loss: loss_sum / steps as f64,
            val_loss,
            val_auroc,
            seconds: start.elapsed().as_secs_f64(),
            best: improved,
        };
        observer.weights(&eval_net, &report);
        if improved {
            best = Some((val_loss, eval_net, epoch));
            since_best = 0;
        } else {
            since_best += 1;
        }
        let go_on = observer.epoch(&report);
        history.push(report);
        if !go_on {
            cancelled = true;
            break;
        }
        if since_best >= cfg.patience {
            break;
        }
    }
    // A resumed run that never beat its earlier best returns its last weights, marked epoch 0
    // (the caller keeps the earlier best it saved).
    let (net, best_epoch) = match best {
        Some((_, n, e)) => (n, e),
        None => (net.valid().to_device(&eval_device), 0),
    };
    Ok(TrainOutcome { net, history, best_epoch, cancelled })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_balanced_batch_is_half_rare_lenses_and_half_the_rest() {
        let mut labels = vec![0.0f32; 100];
        labels[7] = 1.0;
        labels[42] = 0.8;
        let (lenses, others) = class_pools(&labels);
        assert_eq!(lenses, vec![7, 42]);
        assert_eq!(others.len(), 98);
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let batch = balanced_batch(&lenses, &others, 32, &mut rng);
        assert_eq!(batch.len(), 32);
        let drawn_lenses = batch.iter().filter(|&&k| labels[k] >= 0.5).count();
        assert_eq!(drawn_lenses, 16, "{batch:?}");
        assert!(batch.contains(&7) && batch.contains(&42), "both lenses drawn in 16 tries: {batch:?}");
        // A pool that is empty gives way to the other.
        assert!(balanced_batch(&[], &others, 8, &mut rng).iter().all(|k| others.contains(k)));
        assert!(balanced_batch(&lenses, &[], 8, &mut rng).iter().all(|k| lenses.contains(k)));
        assert!(balanced_batch(&[], &[], 8, &mut rng).is_empty());
    }
}
