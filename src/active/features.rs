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

/// Where in the network the cached maps come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Level {
    /// The whole backbone's output: fine-tuning reaches attention and classifier.
    #[default]
    Backbone,
    /// The first three stages' output: fine-tuning also reaches the last conv stage.
    Stem,
}

/// Feature maps of many inputs, row-major `[n, c, h, w]`.
#[derive(Debug, Clone, Default)]
pub struct FeatureBank {
    pub level: Level,
    /// What the maps were computed from (model, inputs, their order and views), as the caller
    /// sums it up: a bank read back from a file is only valid for the same key, and a row count
    /// that happens to match says nothing about which cutout each row is.
    pub key: u64,
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
            let f = match self.level {
                Level::Backbone => valid.features(x),
                Level::Stem => valid.stem(x),
            };
            let [_, c, h, w] = f.dims();
            self.dims = [c, h, w];
            self.data.extend(f.try_into_vec_as::<f32>().unwrap_or_default());
            progress(chunk.len());
        }
        start..self.len()
    }

    /// Writes the bank to a file (magic, key, dims, then little-endian f32), so an experiment can
    /// be repeated with other settings without running the backbone again.
    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(40 + 4 * self.data.len());
        out.extend_from_slice(match self.level {
            Level::Backbone => b"LIFB0002",
            Level::Stem => b"LIFS0002",
        });
        out.extend_from_slice(&self.key.to_le_bytes());
        for d in self.dims {
            out.extend_from_slice(&(d as u64).to_le_bytes());
        }
        for v in &self.data {
            out.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(path, out)
    }

    /// Reads a bank written by [`FeatureBank::save`]; None if it is not one (files of the first
    /// format, which had no key, included) or is cut short.
    pub fn load(path: &std::path::Path) -> Option<FeatureBank> {
        let bytes = std::fs::read(path).ok()?;
        let level = match bytes.get(..8) {
            Some(b"LIFB0002") => Level::Backbone,
            Some(b"LIFS0002") => Level::Stem,
            _ => return None,
        };
        if bytes.len() < 40 || (bytes.len() - 40) % 4 != 0 {
            return None;
        }
        let word = |k: usize| u64::from_le_bytes(bytes[8 + 8 * k..16 + 8 * k].try_into().unwrap_or_default());
        let key = word(0);
        let dims = [word(1) as usize, word(2) as usize, word(3) as usize];
        let data: Vec<f32> =
            bytes[40..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default())).collect();
        let per: usize = dims.iter().product();
        (per > 0 && data.len().is_multiple_of(per)).then_some(FeatureBank { level, key, dims, data })
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
        let x = bank.tensor(chunk, &device);
        let e = match bank.level {
            Level::Backbone => valid.embed(x),
            Level::Stem => valid.embed_from_stem(x),
        };
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
    // Without autodiff: the passes are never differentiated, and an autodiff forward that no
    // backward consumes keeps its graph (see `LensNet::classify_sampled_dropout`).
    let device = Device::flex();
    let net = net.clone().to_device(&device);
    let flat: Vec<f32> = embeddings.iter().flatten().copied().collect();
    let e = Tensor::<2>::from_data(TensorData::new(flat, [n, d]), &device);
    // Seeded last: moving a network whose weights were never used draws them on the way.
    device.seed(seed);
    for _ in 0..passes {
        let p = sigmoid(net.classify_sampled_dropout(e.clone())).try_into_vec_as::<f32>().unwrap_or_default();
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
    /// Draw the labelled part of each batch half lenses, half non-lenses.
    pub balanced: bool,
    /// Normalise the learning conv blocks by their batch-norm running statistics and keep
    /// them (see [`LensNet::with_norm_statistics_frozen`]), instead of each batch's. On by
    /// default: over three splits of another simulator's pool and a rare-lens pool it was
    /// better or level for every strategy (docs/active-learning).
    pub frozen_norm_statistics: bool,
}

impl Default for HeadTuning {
    fn default() -> HeadTuning {
        HeadTuning {
            steps: 60,
            batch: 32,
            lr: 3e-4,
            sim_share: 0.3,
            seed: 1,
            balanced: true,
            frozen_norm_statistics: true,
        }
    }
}

/// Fine-tunes a copy of `base` on labelled rows of `bank` (what learns: attention and MLP for a
/// backbone-level bank; also the last conv stage for a stem-level one), each batch mixing `sim_share` rows from `sims`. Returns the tuned network in
/// validation mode and the loss of each step.
pub fn fine_tune_head(
    base: &LensNet,
    bank: &FeatureBank,
    labelled: &[(usize, f32)],
    sims: &[(usize, f32)],
    cfg: &HeadTuning,
    keep_going: impl FnMut(usize, f64) -> bool,
) -> (LensNet, Vec<f64>) {
    let freeze = bank.level == Level::Backbone;
    tune(
        base,
        labelled,
        sims,
        cfg,
        freeze,
        |net, rows, device| match bank.level {
            Level::Backbone => net.head(bank.tensor(rows, device)),
            Level::Stem => net.from_stem(bank.tensor(rows, device)),
        },
        keep_going,
    )
}

/// Fine-tunes only the classifier MLP of a copy of `base` on fixed embeddings (rows of
/// `embeddings`): a few thousand weights, hard to overfit with a few hundred labels, and a
/// step costs next to nothing.
pub fn fine_tune_classifier(
    base: &LensNet,
    embeddings: &[Vec<f32>],
    labelled: &[(usize, f32)],
    sims: &[(usize, f32)],
    cfg: &HeadTuning,
    keep_going: impl FnMut(usize, f64) -> bool,
) -> (LensNet, Vec<f64>) {
    let d = embeddings.first().map(|e| e.len()).unwrap_or(0);
    tune(
        base,
        labelled,
        sims,
        cfg,
        true,
        |net, rows, device| {
            let flat: Vec<f32> = rows.iter().flat_map(|&r| embeddings[r].iter().copied()).collect();
            net.classify(Tensor::<2>::from_data(TensorData::new(flat, [rows.len(), d]), device))
        },
        keep_going,
    )
}

/// P(lens) of fixed embeddings through the classifier (no dropout).
pub fn classifier_probs(net: &LensNet, embeddings: &[Vec<f32>], rows: &[usize]) -> Vec<f32> {
    let device = Device::flex();
    let valid = net.valid().to_device(&device);
    let d = embeddings.first().map(|e| e.len()).unwrap_or(0);
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(4096) {
        let flat: Vec<f32> = chunk.iter().flat_map(|&r| embeddings[r].iter().copied()).collect();
        let x = Tensor::<2>::from_data(TensorData::new(flat, [chunk.len(), d]), &device);
        out.extend(sigmoid(valid.classify(x)).try_into_vec_as::<f32>().unwrap_or_default());
    }
    out
}

/// A bank row and its label.
type Labelled = (usize, f32);

/// The shared loop: Adam on BCE; each batch draws its labelled part half from lenses and half
/// from non-lenses when both exist (labels from a survey are mostly non-lenses), and
/// `sim_share` from the simulations.
fn tune(
    base: &LensNet,
    labelled: &[(usize, f32)],
    sims: &[(usize, f32)],
    cfg: &HeadTuning,
    freeze_backbone: bool,
    forward: impl Fn(&LensNet, &[usize], &Device) -> Tensor<1>,
    mut keep_going: impl FnMut(usize, f64) -> bool,
) -> (LensNet, Vec<f64>) {
    let _guard = rng_lock();
    let device = Device::flex().autodiff();
    device.seed(cfg.seed);
    let mut net = base.clone().to_device(&device).train().with_norm_statistics_frozen(cfg.frozen_norm_statistics);
    if freeze_backbone {
        net = net.freeze_backbone();
    }
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(cfg.seed ^ 0x4EAD);
    let n_sim = if labelled.is_empty() {
        cfg.batch
    } else if sims.is_empty() {
        0
    } else {
        ((cfg.batch as f64 * cfg.sim_share).round() as usize).min(cfg.batch - 1)
    };
    let n_lab = cfg.batch - n_sim;
    let (pos, neg): (Vec<Labelled>, Vec<Labelled>) = labelled.iter().partition(|l| l.1 >= 0.5);
    let groups: Vec<(&[(usize, f32)], usize)> = if cfg.balanced && !pos.is_empty() && !neg.is_empty() {
        vec![(&pos, n_lab / 2), (&neg, n_lab - n_lab / 2), (sims, n_sim)]
    } else {
        vec![(labelled, n_lab), (sims, n_sim)]
    };
    let mut orders: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
    let mut losses = Vec::with_capacity(cfg.steps);
    for step in 0..cfg.steps {
        let mut rows = Vec::with_capacity(cfg.batch);
        let mut targets = Vec::with_capacity(cfg.batch);
        for (g, &(items, want)) in groups.iter().enumerate() {
            let order = &mut orders[g];
            for _ in 0..want {
                if items.is_empty() {
                    break;
                }
                if order.is_empty() {
                    order.extend(0..items.len());
                    order.shuffle(&mut rng);
                }
                let k = order.pop().unwrap_or(0);
                rows.push(items[k].0);
                targets.push(items[k].1);
            }
        }
        if rows.is_empty() {
            break;
        }
        let y = Tensor::<1>::from_data(TensorData::new(targets, [rows.len()]), &device);
        let loss = bce_with_logits(forward(&net, &rows, &device), y);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::net::{Arch, STEM_BLOCKS};

    /// Monte-Carlo dropout: the same seed gives the same passes, the passes differ, and their
    /// mean logit is the plain classifier's (inverted dropout scales survivors by 1 / (1 - p), so
    /// the last linear layer sees the same expectation; without the scale the mean falls short by
    /// p of the hidden layer's contribution, many standard errors here).
    #[test]
    fn monte_carlo_dropout_repeats_per_seed_and_averages_to_the_plain_logit() {
        let _rng = crate::model::device_rng_lock();
        let device = Device::flex();
        device.seed(5);
        let net = LensNet::new(Arch::LensDetector, &device);
        let emb: Vec<Vec<f32>> =
            (0..8).map(|i| (0..128).map(|j| ((i * 37 + j * 11) % 17) as f32 / 4.0 - 2.0).collect()).collect();
        // The plain logits first: a new network draws its weights when they are first used, and
        // that must not happen inside a seeded call.
        let flat: Vec<f32> = emb.iter().flatten().copied().collect();
        let plain = net.classify(Tensor::<2>::from_data(TensorData::new(flat, [8, 128]), &device));
        let plain = plain.try_into_vec_as::<f32>().expect("logits");
        let passes = 4000;
        let a = mc_dropout(&net, &emb, passes, 7);
        assert_eq!(a, mc_dropout(&net, &emb, passes, 7), "same seed");
        assert_ne!(a, mc_dropout(&net, &emb, passes, 8), "another seed");
        for (k, ps) in a.iter().enumerate() {
            assert_eq!(ps.len(), passes);
            let logits: Vec<f64> = ps.iter().map(|&p| (p as f64 / (1.0 - p as f64)).ln()).collect();
            let mean = logits.iter().sum::<f64>() / passes as f64;
            let var = logits.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (passes - 1) as f64;
            assert!(var > 0.0, "candidate {k}: the passes do not differ");
            let se = (var / passes as f64).sqrt();
            let want = plain[k] as f64;
            assert!((mean - want).abs() < 4.0 * se + 1e-5, "candidate {k}: mean logit {mean} against {want} (se {se})");
        }
    }

    /// Fine-tuning the last conv stage on cached stem features: with frozen statistics the
    /// running averages stay those of pre-training while the weights learn; with the batch's own
    /// they follow the labelled batches.
    #[test]
    fn fine_tuning_with_frozen_statistics_keeps_the_running_averages() {
        let _rng = crate::model::device_rng_lock();
        let device = Device::flex();
        device.seed(8);
        let base = LensNet::new(Arch::Cnn, &device);
        let rows = 12;
        let dims = [64, 4, 4];
        let data = Tensor::<1>::random([rows * 64 * 16], burn::tensor::Distribution::Normal(0.8, 1.5), &device);
        let bank = FeatureBank { level: Level::Stem, key: 1, dims, data: data.try_into_vec_as().expect("values") };
        let labelled: Vec<(usize, f32)> = (0..rows).map(|r| (r, (r % 3 == 0) as u8 as f32)).collect();
        let before = base.norm_running_means();
        for frozen in [true, false] {
            let cfg = HeadTuning { steps: 4, batch: 8, frozen_norm_statistics: frozen, ..HeadTuning::default() };
            let (tuned, losses) = fine_tune_head(&base, &bank, &labelled, &[], &cfg, |_, _| true);
            assert_eq!(losses.len(), 4);
            let after = tuned.norm_running_means();
            assert_eq!(after[..STEM_BLOCKS], before[..STEM_BLOCKS], "the stem never runs here");
            for k in STEM_BLOCKS..after.len() {
                assert_eq!(after[k] == before[k], frozen, "block {k}, frozen {frozen}");
            }
        }
    }
}
