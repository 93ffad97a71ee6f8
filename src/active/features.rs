//! The frozen backbone's feature maps, computed once, and everything active learning does on top
//! of them: probabilities, embeddings, last-layer Monte-Carlo dropout and head fine-tuning.
//!
//! With the backbone frozen (the transfer-learning path), its output for a given input never
//! changes, so a loop that fine-tunes and re-scores many times need not run the convolutions
//! again: about three quarters of the network's arithmetic is done once. Augmentation survives as
//! a fixed number of randomly augmented views per cutout ("variants"), each with its own features.

use crate::model::data::{augment_into, Augment, Dataset};
use crate::model::net::LensNet;
use crate::model::train::{bce_with_logits, rng_lock};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Backbone feature maps of many inputs, row-major `[n, c, h, w]`.
#[derive(Debug, Clone, Default)]
pub struct FeatureBank {
    /// `[c, h, w]` of one row.
    pub dims: [usize; 3],
    pub data: Vec<f32>,
}

impl FeatureBank {
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.per_row()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn per_row(&self) -> usize {
        self.dims.iter().product()
    }

    /// Features of `items` of `data`, each as it is (`aug` None) or as one random augmented view
    /// drawn from `aug` with the given seed (reproducible). Appended to the bank; returns the
    /// rows they got.
    pub fn push(
        &mut self,
        net: &LensNet,
        data: &Dataset,
        items: &[usize],
        aug: Option<(&Augment, u64)>,
        batch: usize,
        progress: &mut dyn FnMut(usize),
    ) -> std::ops::Range<usize> {
        let device = Device::flex();
        let valid = net.valid();
        let start = self.len();
        let per_in = data.per_item();
        let mut rng = aug.map(|(_, seed)| rand_pcg::Pcg64Mcg::seed_from_u64(seed));
        for chunk in items.chunks(batch.max(1)) {
            let mut inputs = vec![0f32; chunk.len() * per_in];
            for (slot, &k) in chunk.iter().enumerate() {
                let out = &mut inputs[slot * per_in..(slot + 1) * per_in];
                match (&aug, rng.as_mut()) {
                    (Some((a, _)), Some(r)) => augment_into(data.item(k), data.size, a, r, out),
                    _ => out.copy_from_slice(data.item(k)),
                }
            }
            let x = Tensor::<4>::from_data(TensorData::new(inputs, [chunk.len(), 4, data.size, data.size]), &device);
            let f = valid.features(x);
            let [_, c, h, w] = f.dims();
            self.dims = [c, h, w];
            self.data.extend(f.try_into_vec_as::<f32>().unwrap_or_default());
            progress(chunk.len());
        }
        start..self.len()
    }

    fn tensor(&self, rows: &[usize], device: &Device) -> Tensor<4> {
        let per = self.per_row();
        let mut out = Vec::with_capacity(rows.len() * per);
        for &r in rows {
            out.extend_from_slice(&self.data[r * per..(r + 1) * per]);
        }
        let [c, h, w] = self.dims;
        Tensor::<4>::from_data(TensorData::new(out, [rows.len(), c, h, w]), device)
    }
}

/// What the head says about some rows: P(lens) and the embedding the classifier sees.
#[derive(Debug, Clone, Default)]
pub struct HeadOutputs {
    pub p: Vec<f32>,
    pub embeddings: Vec<Vec<f32>>,
}

/// P(lens) and embeddings of `rows`, without dropout.
pub fn head_outputs(net: &LensNet, bank: &FeatureBank, rows: &[usize], batch: usize) -> HeadOutputs {
    let device = Device::flex();
    let valid = net.valid().to_device(&device);
    let mut out = HeadOutputs::default();
    for chunk in rows.chunks(batch.max(1)) {
        let e = valid.embed(bank.tensor(chunk, &device));
        let [_, d] = e.dims();
        let p = sigmoid(valid.classify(e.clone()));
        let flat = e.try_into_vec_as::<f32>().unwrap_or_default();
        out.embeddings.extend(flat.chunks(d.max(1)).map(|c| c.to_vec()));
        out.p.extend(p.try_into_vec_as::<f32>().unwrap_or_default());
    }
    out
}

/// `passes` Monte-Carlo dropout probabilities per embedding, dropout on in the classifier only
/// ("last-layer MC dropout"): the embedding is computed once without dropout, so a pass costs a
/// 128 -> 64 -> 1 MLP and BALD over a whole survey takes seconds. Reproducible per seed.
pub fn mc_dropout(net: &LensNet, embeddings: &[Vec<f32>], passes: usize, seed: u64) -> Vec<Vec<f32>> {
    let n = embeddings.len();
    let mut out = vec![Vec::with_capacity(passes); n];
    if n == 0 || passes == 0 {
        return out;
    }
    let d = embeddings[0].len();
    let _guard = rng_lock();
    let device = Device::flex().autodiff();
    device.seed(seed);
    let train_mode = net.clone().to_device(&device).train();
    let flat: Vec<f32> = embeddings.iter().flatten().copied().collect();
    let e = Tensor::<2>::from_data(TensorData::new(flat, [n, d]), &device);
    for _ in 0..passes {
        let p = sigmoid(train_mode.classify(e.clone())).try_into_vec_as::<f32>().unwrap_or_default();
        for (k, v) in p.into_iter().enumerate() {
            out[k].push(v);
        }
    }
    out
}

/// How the head is fine-tuned on cached features.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadTuning {
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    /// Share of each batch drawn from the simulations (against forgetting).
    pub sim_share: f64,
    pub seed: u64,
}

impl Default for HeadTuning {
    fn default() -> HeadTuning {
        HeadTuning { steps: 60, batch: 32, lr: 3e-4, sim_share: 0.3, seed: 1 }
    }
}

/// Fine-tunes a copy of `base` (backbone frozen: only attention and MLP learn) on labelled rows
/// of `bank`, each batch mixing `sim_share` rows from `sims`. Returns the tuned network in
/// validation mode and the mean loss of each step.
pub fn fine_tune_head(
    base: &LensNet,
    bank: &FeatureBank,
    labelled: &[(usize, f32)],
    sims: &[(usize, f32)],
    cfg: &HeadTuning,
    mut keep_going: impl FnMut(usize, f64) -> bool,
) -> (LensNet, Vec<f64>) {
    let _guard = rng_lock();
    let device = Device::flex().autodiff();
    device.seed(cfg.seed);
    let mut net = base.clone().to_device(&device).train().freeze_backbone();
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(cfg.seed ^ 0x4EAD);
    let n_sim = if sims.is_empty() || labelled.is_empty() {
        if labelled.is_empty() {
            cfg.batch
        } else {
            0
        }
    } else {
        ((cfg.batch as f64 * cfg.sim_share).round() as usize).min(cfg.batch - 1)
    };
    let n_lab = cfg.batch - n_sim;
    let (mut lab_order, mut sim_order): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
    let draw = |order: &mut Vec<usize>, len: usize, want: usize, rng: &mut rand_pcg::Pcg64Mcg| -> Vec<usize> {
        let mut out = Vec::with_capacity(want);
        while out.len() < want && len > 0 {
            if order.is_empty() {
                order.extend(0..len);
                order.shuffle(rng);
            }
            out.push(order.pop().unwrap_or(0));
        }
        out
    };
    let mut losses = Vec::with_capacity(cfg.steps);
    for step in 0..cfg.steps {
        let mut rows = Vec::with_capacity(cfg.batch);
        let mut targets = Vec::with_capacity(cfg.batch);
        for k in draw(&mut lab_order, labelled.len(), n_lab, &mut rng) {
            rows.push(labelled[k].0);
            targets.push(labelled[k].1);
        }
        for k in draw(&mut sim_order, sims.len(), n_sim, &mut rng) {
            rows.push(sims[k].0);
            targets.push(sims[k].1);
        }
        if rows.is_empty() {
            break;
        }
        let y = Tensor::<1>::from_data(TensorData::new(targets, [rows.len()]), &device);
        let loss = bce_with_logits(net.head(bank.tensor(&rows, &device)), y);
        let value: f32 = loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(cfg.lr, net, grads);
        losses.push(value as f64);
        if !keep_going(step + 1, value as f64) {
            break;
        }
    }
    (net.valid().to_device(&Device::flex()), losses)
}
