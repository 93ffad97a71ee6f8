//! The architectures: "Lens Detector" (CNN + self-attention, after Thuruthipilly et al. 2022)
//! and a plain CNN for comparison. Both split into `features` (the convolutional backbone, whose
//! last map Grad-CAM explains) and `head` (the rest, down to one logit).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::nn::{PositionalEncoding, PositionalEncodingConfig};
use burn::tensor::activation::elu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::fused;

/// Which network, as stored in the model card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// Convolutions 16,16,32,32,64,64,128,128 with batch norm, ELU and 3 max-pools; feature-map
    /// positions as tokens with positional encoding; 2 transformer encoder layers; mean pool; MLP.
    LensDetector,
    /// The same convolutions, then global average pooling and the MLP: no attention.
    Cnn,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::LensDetector => "lens-detector",
            Arch::Cnn => "cnn",
        }
    }
}

/// Channels of the eight convolutions (SPEC 5).
pub const CONV_CHANNELS: [usize; 8] = [16, 16, 32, 32, 64, 64, 128, 128];
/// Convolutions before the last stage (see [`Backbone::forward_stem`]).
pub const STEM_BLOCKS: usize = 6;
/// Input bands.
pub const IN_CHANNELS: usize = 4;
const D_MODEL: usize = 128;

/// ELU with alpha 1, as max(x, 0) + exp(min(x, 0)) - 1: the same function and gradient as
/// burn's `elu`, which builds a boolean mask and selects through it. Without gradients this
/// form is faster on any backend; on the CPU backend [`fused::elu_inference`] is faster still
/// and this is its fallback (and Grad-CAM's, which needs gradients through an evaluating net).
pub fn elu1<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone().clamp_min(0.0) + x.clamp_max(0.0).exp().sub_scalar(1.0)
}

/// Conv 3x3 (same padding) + batch norm + ELU.
#[derive(Module, Debug)]
pub struct ConvBlock {
    conv: Conv2d,
    norm: BatchNorm,
}

impl ConvBlock {
    fn new(input: usize, output: usize, device: &Device) -> ConvBlock {
        ConvBlock {
            conv: Conv2dConfig::new([input, output], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            norm: BatchNormConfig::new(output).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let autodiff = x.device().is_autodiff();
        if autodiff && self.norm.training.is_enabled() {
            let z = self.conv_train(x);
            return match fused::batch_norm_elu_train(z, self.norm.gamma.val(), self.norm.beta.val(), self.norm.epsilon)
            {
                Ok(out) => {
                    self.update_running_statistics(out.mean, out.variance);
                    out.output
                }
                Err(parts) => elu(self.norm.forward(parts.0), 1.0),
            };
        }
        // Inference, or training with the statistics frozen: batch norm is a per-channel affine
        // map, folded into the convolution's weights and bias (tiny tensors) instead of four
        // passes over the activations. Gradients reach gamma, beta and the weights through the
        // fold.
        let scale = self.norm.gamma.val() / self.norm.running_var.value().add_scalar(self.norm.epsilon).sqrt();
        let shift = self.norm.beta.val() - self.norm.running_mean.value() * scale.clone();
        let [c_out, ..] = self.conv.weight.dims();
        let weight = self.conv.weight.val() * scale.clone().reshape([c_out, 1, 1, 1]);
        let bias = match &self.conv.bias {
            Some(b) => b.val() * scale + shift,
            None => shift,
        };
        let options = ConvOptions::new(self.conv.stride, [1, 1], self.conv.dilation, self.conv.groups);
        if self.is_plain_3x3() {
            let fused = match autodiff {
                false => fused::conv3x3_elu_inference(x, weight, bias),
                true => fused::conv3x3_train(x, weight, bias).map(|z| elu(z, 1.0)),
            };
            return match fused {
                Ok(y) => y,
                Err(parts) => {
                    let (x, weight, bias) = *parts;
                    elu_no_grad(conv2d(x, weight, Some(bias), options))
                }
            };
        }
        elu_no_grad(conv2d(x, weight, Some(bias), options))
    }

    /// The same block normalising with its running statistics while training, and leaving them
    /// unchanged (`frozen`), or with each batch's own and updating them. Fine-tuning on a few
    /// dozen labels, mostly lenses, gives batches whose statistics are nothing like the survey's:
    /// normalising by them shifts every activation the rest of the network was trained on.
    fn with_frozen_statistics(mut self, frozen: bool) -> ConvBlock {
        self.norm.training = self.norm.training.with_value(!frozen);
        self
    }

    /// Whether the convolution is the 3 x 3, stride 1, padding 1 one the fused kernels handle.
    fn is_plain_3x3(&self) -> bool {
        self.conv.stride == [1, 1]
            && self.conv.dilation == [1, 1]
            && self.conv.groups == 1
            && matches!(self.conv.padding, PaddingConfig2d::Explicit(1, 1, 1, 1))
    }

    /// The convolution while training: the fused op with the fast weight gradient when the
    /// layer is the 3 x 3, stride 1, padding 1 one it handles, else burn's.
    fn conv_train(&self, x: Tensor<4>) -> Tensor<4> {
        match (&self.conv.bias, self.is_plain_3x3()) {
            (Some(bias), true) => match fused::conv3x3_train(x, self.conv.weight.val(), bias.val()) {
                Ok(z) => z,
                Err(parts) => self.conv.forward(parts.0),
            },
            _ => self.conv.forward(x),
        }
    }

    /// The running averages burn's `BatchNorm` keeps, updated the way it does (momentum, biased
    /// batch variance), for the fused training path that bypasses its `forward`.
    fn update_running_statistics(&self, mean: Vec<f32>, variance: Vec<f32>) {
        let m = self.norm.momentum;
        for (state, batch) in [(&self.norm.running_mean, mean), (&self.norm.running_var, variance)] {
            let old = state.value_sync();
            let n = batch.len();
            let batch = Tensor::<1>::from_data(burn::tensor::TensorData::new(batch, [n]), &old.device());
            state.update(old.mul_scalar(1.0 - m).add(batch.mul_scalar(m)).detach());
        }
    }
}

/// ELU without gradients: the fused one-pass kernel on the CPU backend, else [`elu1`].
fn elu_no_grad<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    fused::elu_inference(x).unwrap_or_else(|x| elu1(*x))
}

/// The shared convolutional backbone: 4 stages of two conv blocks, a 2x2 max-pool after each of
/// the first three. 101 -> 50 -> 25 -> 12 pixels.
#[derive(Module, Debug)]
pub struct Backbone {
    blocks: Vec<ConvBlock>,
    pool: MaxPool2d,
}

impl Backbone {
    fn new(device: &Device) -> Backbone {
        let mut input = IN_CHANNELS;
        let blocks = CONV_CHANNELS
            .iter()
            .map(|&c| {
                let b = ConvBlock::new(input, c, device);
                input = c;
                b
            })
            .collect();
        Backbone { blocks, pool: MaxPool2dConfig::new([2, 2]).init() }
    }

    /// [B, 4, H, W] -> [B, 128, H/8, W/8] (floor at each pool).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_top(self.forward_stem(x))
    }

    /// The first three stages (six convolutions and three pools): [B, 4, H, W] -> [B, 64, H/8, W/8].
    pub fn forward_stem(&self, mut x: Tensor<4>) -> Tensor<4> {
        for (k, block) in self.blocks.iter().enumerate().take(STEM_BLOCKS) {
            x = block.forward(x);
            if k % 2 == 1 {
                x = fused::max_pool2x2(x).unwrap_or_else(|x| self.pool.forward(*x));
            }
        }
        x
    }

    /// The last stage (two convolutions at the coarsest scale): [B, 64, h, w] -> [B, 128, h, w].
    /// Fine-tuning this stage adapts the features to another survey's look at a fifth of the
    /// cost of the whole backbone.
    pub fn forward_top(&self, mut x: Tensor<4>) -> Tensor<4> {
        for block in self.blocks.iter().skip(STEM_BLOCKS) {
            x = block.forward(x);
        }
        x
    }
}

/// The classifier head after the backbone: dense 128 -> 64 -> 1 with ELU and dropout.
#[derive(Module, Debug)]
pub struct Mlp {
    hidden: Linear,
    out: Linear,
    dropout: Dropout,
}

impl Mlp {
    fn new(device: &Device, dropout: f64) -> Mlp {
        Mlp {
            hidden: LinearConfig::new(D_MODEL, 64).init(device),
            out: LinearConfig::new(64, 1).init(device),
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    /// [B, 128] -> [B] logits.
    fn forward(&self, x: Tensor<2>) -> Tensor<1> {
        let h = self.hidden.forward(x);
        let h = if h.device().is_autodiff() { elu(h, 1.0) } else { elu_no_grad(h) };
        let x = self.dropout.forward(h);
        let [b, _] = x.dims();
        self.out.forward(x).reshape([b])
    }

    /// [B, 128] -> [B] logits with a fresh dropout mask from the device's generator, on a
    /// device without autodiff: what burn's `Dropout` does in training (survivors scaled by
    /// 1 / (1 - p)), without a graph. A forward on the autodiff device that no backward ever
    /// consumes leaves its graph behind: Monte-Carlo dropout done that way kept 900 MB per call
    /// for 50,000 embeddings and 20 passes, call after call.
    fn forward_sampled_dropout(&self, x: Tensor<2>) -> Tensor<1> {
        let h = elu_no_grad(self.hidden.forward(x));
        let keep = 1.0 - self.dropout.prob;
        let h = if keep >= 1.0 {
            h
        } else if keep <= 0.0 {
            h.zeros_like()
        } else {
            h.clone() * h.random_like(burn::tensor::Distribution::Bernoulli(keep)) * (1.0 / keep)
        };
        let [b, _] = h.dims();
        self.out.forward(h).reshape([b])
    }
}

/// Lens Detector: backbone, tokens + positional encoding, transformer encoder, mean pool, MLP.
#[derive(Module, Debug)]
pub struct LensDetector {
    pub backbone: Backbone,
    position: PositionalEncoding,
    encoder: TransformerEncoder,
    mlp: Mlp,
}

/// The plain CNN: backbone, global average pool, MLP.
#[derive(Module, Debug)]
pub struct PlainCnn {
    pub backbone: Backbone,
    mlp: Mlp,
}

/// Either network behind one type, so training, scoring and explaining need no generics.
/// (Variants differ in size, but a program holds one or two networks: boxing is not worth
/// fighting the Module derive for.)
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum LensNet {
    LensDetector(LensDetector),
    Cnn(PlainCnn),
}

/// Dropout in the head and the encoder.
pub const DROPOUT: f64 = 0.1;

impl LensNet {
    pub fn new(arch: Arch, device: &Device) -> LensNet {
        match arch {
            Arch::LensDetector => LensNet::LensDetector(LensDetector {
                backbone: Backbone::new(device),
                position: PositionalEncodingConfig::new(D_MODEL).with_max_sequence_size(1024).init(device),
                encoder: TransformerEncoderConfig::new(D_MODEL, 2 * D_MODEL, 4, 2).with_dropout(DROPOUT).init(device),
                mlp: Mlp::new(device, DROPOUT),
            }),
            Arch::Cnn => LensNet::Cnn(PlainCnn { backbone: Backbone::new(device), mlp: Mlp::new(device, DROPOUT) }),
        }
    }

    pub fn arch(&self) -> Arch {
        match self {
            LensNet::LensDetector(_) => Arch::LensDetector,
            LensNet::Cnn(_) => Arch::Cnn,
        }
    }

    /// The last convolutional feature map: [B, 4, H, W] -> [B, 128, h, w].
    pub fn features(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            LensNet::LensDetector(n) => n.backbone.forward(x),
            LensNet::Cnn(n) => n.backbone.forward(x),
        }
    }

    /// The first three backbone stages (see [`Backbone::forward_stem`]).
    pub fn stem(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            LensNet::LensDetector(n) => n.backbone.forward_stem(x),
            LensNet::Cnn(n) => n.backbone.forward_stem(x),
        }
    }

    /// From the stem's output to one logit: the last conv stage, then the head.
    pub fn from_stem(&self, s: Tensor<4>) -> Tensor<1> {
        let f = match self {
            LensNet::LensDetector(n) => n.backbone.forward_top(s),
            LensNet::Cnn(n) => n.backbone.forward_top(s),
        };
        self.head(f)
    }

    /// From the stem's output to the embedding the classifier sees.
    pub fn embed_from_stem(&self, s: Tensor<4>) -> Tensor<2> {
        let f = match self {
            LensNet::LensDetector(n) => n.backbone.forward_top(s),
            LensNet::Cnn(n) => n.backbone.forward_top(s),
        };
        self.embed(f)
    }

    /// From the feature map to one logit per cutout: [B, 128, h, w] -> [B].
    pub fn head(&self, f: Tensor<4>) -> Tensor<1> {
        self.classify(self.embed(f))
    }

    /// The pooled representation the classifier sees, [B, 128, h, w] -> [B, 128]: what active
    /// learning measures distances in (diversity) and where last-layer Monte-Carlo dropout starts.
    pub fn embed(&self, f: Tensor<4>) -> Tensor<2> {
        let [b, c, h, w] = f.dims();
        match self {
            LensNet::LensDetector(n) => {
                // Positions become tokens: [B, C, h, w] -> [B, h*w, C].
                let tokens = f.reshape([b, c, h * w]).swap_dims(1, 2);
                let tokens = n.position.forward(tokens);
                let encoded = super::encoder::forward(&n.encoder, tokens);
                encoded.mean_dim(1).reshape([b, c])
            }
            LensNet::Cnn(_) => f.reshape([b, c, h * w]).mean_dim(2).reshape([b, c]),
        }
    }

    /// The MLP from an embedding to one logit: [B, 128] -> [B]. Its dropout is active only on an
    /// autodiff device in training mode, which is how Monte-Carlo dropout passes are drawn.
    pub fn classify(&self, e: Tensor<2>) -> Tensor<1> {
        match self {
            LensNet::LensDetector(n) => n.mlp.forward(e),
            LensNet::Cnn(n) => n.mlp.forward(e),
        }
    }

    /// [`LensNet::classify`] with its dropout drawn anew on each call, for Monte-Carlo dropout
    /// on a device without autodiff (see `Mlp::forward_sampled_dropout`).
    pub fn classify_sampled_dropout(&self, e: Tensor<2>) -> Tensor<1> {
        match self {
            LensNet::LensDetector(n) => n.mlp.forward_sampled_dropout(e),
            LensNet::Cnn(n) => n.mlp.forward_sampled_dropout(e),
        }
    }

    /// The same network with its convolutional backbone frozen (transfer learning: only the
    /// attention and head learn). Frozen includes the batch-norm statistics: a frozen layer that
    /// normalised by each batch would still change what it hands on.
    pub fn freeze_backbone(self) -> LensNet {
        self.map_blocks(|_, blk| blk.no_grad().with_frozen_statistics(true))
    }

    /// The same network with the first three backbone stages frozen (weights and batch-norm
    /// statistics): the last conv stage, attention and head learn. The fine-tuning that adapts
    /// best to another survey's look in `bench active-learning` for a fraction of full
    /// training's cost.
    pub fn freeze_stem(self) -> LensNet {
        self.map_blocks(|k, blk| if k < STEM_BLOCKS { blk.no_grad().with_frozen_statistics(true) } else { blk })
    }

    /// The same network with every convolution block's batch-norm statistics frozen (normalise
    /// by the running averages while training, and keep them) or not. Weights, gamma and beta
    /// still learn. For fine-tuning on a few labels, whose batches say little about the survey.
    pub fn with_norm_statistics_frozen(self, frozen: bool) -> LensNet {
        self.map_blocks(|_, blk| blk.with_frozen_statistics(frozen))
    }

    /// For each convolution block, whether it normalises by its running statistics while
    /// training (meaningful in training mode).
    #[cfg(test)]
    pub(crate) fn norm_statistics_frozen(&self) -> Vec<bool> {
        self.backbone().blocks.iter().map(|b| !b.norm.training.is_enabled()).collect()
    }

    /// Each convolution block's running means (what frozen statistics keep).
    #[cfg(test)]
    pub(crate) fn norm_running_means(&self) -> Vec<Vec<f32>> {
        let blocks = &self.backbone().blocks;
        blocks.iter().map(|b| b.norm.running_mean.value_sync().try_into_vec_as().expect("values")).collect()
    }

    #[cfg(test)]
    fn backbone(&self) -> &Backbone {
        match self {
            LensNet::LensDetector(n) => &n.backbone,
            LensNet::Cnn(n) => &n.backbone,
        }
    }

    fn map_blocks(self, f: impl Fn(usize, ConvBlock) -> ConvBlock) -> LensNet {
        let map = |b: Backbone| Backbone {
            blocks: b.blocks.into_iter().enumerate().map(|(k, blk)| f(k, blk)).collect(),
            pool: b.pool,
        };
        match self {
            LensNet::LensDetector(mut n) => {
                n.backbone = map(n.backbone);
                LensNet::LensDetector(n)
            }
            LensNet::Cnn(mut n) => {
                n.backbone = map(n.backbone);
                LensNet::Cnn(n)
            }
        }
    }

    /// Logits for a batch of preprocessed cutouts [B, 4, H, W].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<1> {
        self.head(self.features(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn freezing_the_stem_trains_only_the_last_stage_and_the_head() {
        let _rng = crate::model::device_rng_lock();
        use burn::optim::{AdamConfig, GradientsParams};
        let device = Device::flex().autodiff();
        device.seed(11);
        let net = LensNet::new(Arch::Cnn, &device).freeze_stem();
        let weights = |n: &LensNet, k: usize| -> Vec<f32> {
            let LensNet::Cnn(c) = n else { unreachable!() };
            c.backbone.blocks[k].conv.weight.val().inner().try_into_vec_as::<f32>().expect("weights")
        };
        let before: Vec<Vec<f32>> = (0..8).map(|k| weights(&net, k)).collect();
        let x = Tensor::<4>::random([4, 4, 24, 24], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let y = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 0.0, 1.0, 0.0], [4]), &device);
        let loss = crate::model::train::bce_with_logits(net.forward(x), y);
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let mut optim = AdamConfig::new().init();
        let net = optim.step(1e-2, net, grads);
        for (k, old) in before.iter().enumerate() {
            let changed = weights(&net, k) != *old;
            assert_eq!(changed, k >= STEM_BLOCKS, "block {k}: changed {changed}");
        }
    }

    #[test]
    fn folded_batch_norm_gives_the_unfolded_block() {
        let _rng = crate::model::device_rng_lock();
        let device = Device::flex();
        device.seed(3);
        let mut block = ConvBlock::new(4, 8, &device);
        // Non-trivial statistics, as after training.
        block.norm.running_mean = burn::module::RunningState::new(Tensor::<1>::from_data(
            TensorData::new(vec![0.3f32, -0.2, 0.1, 0.0, 0.5, -0.4, 0.2, 0.05], [8]),
            &device,
        ));
        block.norm.running_var = burn::module::RunningState::new(Tensor::<1>::from_data(
            TensorData::new(vec![0.5f32, 2.0, 1.5, 0.8, 3.0, 0.2, 1.0, 0.9], [8]),
            &device,
        ));
        let block = block.valid();
        let x = Tensor::<4>::random([2, 4, 9, 9], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let folded: Vec<f32> = block.forward(x.clone()).try_into_vec_as().expect("values");
        let reference: Vec<f32> = elu1(block.norm.forward(block.conv.forward(x))).try_into_vec_as().expect("values");
        let worst = folded.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "largest difference {worst}");
    }

    /// A block with non-trivial running statistics, as after training.
    fn trained_block(device: &Device) -> ConvBlock {
        let mut block = ConvBlock::new(4, 8, device);
        block.norm.running_mean = burn::module::RunningState::new(Tensor::<1>::from_data(
            TensorData::new(vec![0.3f32, -0.2, 0.1, 0.0, 0.5, -0.4, 0.2, 0.05], [8]),
            device,
        ));
        block.norm.running_var = burn::module::RunningState::new(Tensor::<1>::from_data(
            TensorData::new(vec![0.5f32, 2.0, 1.5, 0.8, 3.0, 0.2, 1.0, 0.9], [8]),
            device,
        ));
        block
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.try_into_vec_as().expect("values")
    }

    fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max)
    }

    #[test]
    fn frozen_statistics_normalise_as_inference_does_keep_the_averages_and_pass_gradients() {
        let _rng = crate::model::device_rng_lock();
        let plain = Device::flex();
        plain.seed(5);
        let block = trained_block(&plain);
        let x = Tensor::<4>::random([3, 4, 11, 11], burn::tensor::Distribution::Normal(0.0, 1.0), &plain);
        let inference = values(block.clone().valid().forward(x.clone()));

        let ad = Device::flex().autodiff();
        let frozen = block.clone().to_device(&ad).train().with_frozen_statistics(true);
        // `.autodiff()`: moving a plain tensor `to_device` the autodiff device keeps it plain.
        let xa = x.clone().autodiff();
        let y = frozen.forward(xa.clone());
        assert!(largest_difference(&values(y.clone().inner()), &inference) < 1e-4);
        assert_eq!(values(frozen.norm.running_mean.value_sync()), values(block.norm.running_mean.value_sync()));
        assert_eq!(values(frozen.norm.running_var.value_sync()), values(block.norm.running_var.value_sync()));

        // Gradients through the fold (fused convolution) equal those of burn's unfolded
        // convolution and inference-mode batch norm, for the weights, gamma and beta.
        let reference = elu1(frozen.norm.forward(frozen.conv.forward(xa)));
        let (g, g_ref) = (y.sum().backward(), reference.sum().backward());
        let grad = |gr: &burn::tensor::Gradients, p: &Tensor<1>| values(p.grad(gr).expect("gradient"));
        let (gamma, beta) = (frozen.norm.gamma.val(), frozen.norm.beta.val());
        for (name, ours, theirs) in [
            ("gamma", grad(&g, &gamma), grad(&g_ref, &gamma)),
            ("beta", grad(&g, &beta), grad(&g_ref, &beta)),
            (
                "weight",
                values(frozen.conv.weight.val().grad(&g).expect("gradient")),
                values(frozen.conv.weight.val().grad(&g_ref).expect("gradient")),
            ),
        ] {
            assert!(ours.iter().any(|v| v.abs() > 1e-3), "{name}: no gradient");
            let scale = theirs.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            assert!(largest_difference(&ours, &theirs) < 1e-3 * scale, "{name}: {ours:?} vs {theirs:?}");
        }

        // Not frozen: the batch's own statistics, which the running averages then follow.
        let batch = block.clone().to_device(&ad).train().with_frozen_statistics(false);
        let y = values(batch.forward(x.autodiff()).inner());
        assert!(largest_difference(&y, &inference) > 1e-2);
        assert_ne!(values(batch.norm.running_mean.value_sync()), values(block.norm.running_mean.value_sync()));
    }

    #[test]
    fn a_frozen_stem_keeps_its_statistics_and_frozen_statistics_keep_every_layers() {
        let _rng = crate::model::device_rng_lock();
        let device = Device::flex().autodiff();
        device.seed(12);
        let means = LensNet::norm_running_means;
        let x = Tensor::<4>::random([4, 4, 24, 24], burn::tensor::Distribution::Normal(0.5, 1.0), &device);

        let net = LensNet::new(Arch::Cnn, &device).freeze_stem();
        assert_eq!(net.norm_statistics_frozen(), [[true; STEM_BLOCKS].as_slice(), &[false; 2]].concat());
        let before = means(&net);
        let _ = net.forward(x.clone());
        let after = means(&net);
        for k in 0..8 {
            assert_eq!(before[k] == after[k], k < STEM_BLOCKS, "block {k}");
        }

        let net = LensNet::new(Arch::Cnn, &device).with_norm_statistics_frozen(true);
        let before = means(&net);
        let _ = net.forward(x);
        assert_eq!(before, means(&net));
        // A network handed on keeps its flags through `.train()`: training sets them each time.
        assert!(net.valid().train().norm_statistics_frozen().iter().all(|&f| f));
    }

    #[test]
    fn elu1_is_burns_elu_in_value_and_gradient() {
        let _rng = crate::model::device_rng_lock();
        let v = vec![-6.0f32, -1.0, -0.25, -1e-4, 0.0, 1e-4, 0.3, 5.0];
        let n = v.len();
        let run = |f: &dyn Fn(Tensor<1>) -> Tensor<1>| -> (Vec<f32>, Vec<f32>) {
            let x = Tensor::<1>::from_data(TensorData::new(v.clone(), [n]), &Device::flex()).autodiff().require_grad();
            let y = f(x.clone());
            let grads = y.clone().sum().backward();
            let g = x.grad(&grads).expect("gradient").try_into_vec_as::<f32>().expect("values");
            (y.inner().try_into_vec_as::<f32>().expect("values"), g)
        };
        let (y1, g1) = run(&|x| elu1(x));
        let (y0, g0) = run(&|x| burn::tensor::activation::elu(x, 1.0));
        for k in 0..n {
            assert!((y1[k] - y0[k]).abs() < 1e-6, "value at {}: {} vs {}", v[k], y1[k], y0[k]);
            if v[k] != 0.0 {
                // At exactly 0 the kink makes any value in [0, 2] a valid subgradient sum.
                assert!((g1[k] - g0[k]).abs() < 1e-6, "gradient at {}: {} vs {}", v[k], g1[k], g0[k]);
            }
        }
    }

    #[test]
    fn fused_training_block_matches_burns_batch_norm_and_elu() {
        let _rng = crate::model::device_rng_lock();
        use burn::module::Param;
        use burn::tensor::Distribution::Normal;
        let ad = Device::flex().autodiff();
        ad.seed(5);
        let mut block = ConvBlock::new(3, 6, &ad);
        block.norm.gamma = Param::from_tensor(Tensor::<1>::random([6], Normal(1.0, 0.5), &ad));
        block.norm.beta = Param::from_tensor(Tensor::<1>::random([6], Normal(0.0, 0.5), &ad));
        let x = Tensor::<4>::random([3, 3, 11, 13], Normal(0.5, 2.0), &ad).require_grad();
        let w = Tensor::<4>::random([3, 6, 11, 13], Normal(0.0, 1.0), &ad);
        let values = |t: Tensor<4>| t.inner().try_into_vec_as::<f32>().expect("values");
        let grads_of = |out: Tensor<4>| {
            let grads = (out * w.clone()).sum().backward();
            let g = |t: Tensor<1>| t.grad(&grads).expect("gradient").try_into_vec_as::<f32>().expect("values");
            let gx = x.grad(&grads).expect("gradient").try_into_vec_as::<f32>().expect("values");
            let gw = block.conv.weight.val().grad(&grads).expect("gradient").try_into_vec_as::<f32>().expect("values");
            [gx, gw, g(block.norm.gamma.val()), g(block.norm.beta.val())]
        };
        // The fused path (block.forward) against burn's batch norm and ELU on the same block.
        let probe = block.conv.forward(x.clone());
        let taken = fused::batch_norm_elu_train(probe, block.norm.gamma.val(), block.norm.beta.val(), 1e-5);
        assert!(taken.is_ok(), "the fused kernel must apply to Flex autodiff tensors");
        let fused = block.forward(x.clone());
        let running = |s: &burn::module::RunningState<Tensor<1>>| {
            s.value_sync().inner().try_into_vec_as::<f32>().expect("values")
        };
        let (mean_after, var_after) = (running(&block.norm.running_mean), running(&block.norm.running_var));
        let z = block.conv.forward(x.clone()).inner();
        let flat = z.swap_dims(0, 1).reshape([6, 3 * 11 * 13]);
        let batch_mean = flat.clone().mean_dim(1);
        let batch_var = (flat - batch_mean.clone()).square().mean_dim(1);
        let (batch_mean, batch_var) =
            (batch_mean.try_into_vec_as::<f32>().expect("values"), batch_var.try_into_vec_as::<f32>().expect("values"));
        for c in 0..6 {
            // From the initial running mean 0 and variance 1, momentum 0.1.
            assert!((mean_after[c] - 0.1 * batch_mean[c]).abs() < 1e-5, "running mean {c}");
            assert!((var_after[c] - (0.9 + 0.1 * batch_var[c])).abs() < 1e-5, "running variance {c}");
        }
        let reference = elu(block.norm.forward(block.conv.forward(x.clone())), 1.0);
        let close = |a: &[f32], b: &[f32], what: &str| {
            assert_eq!(a.len(), b.len());
            let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1.0);
            let worst = a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
            assert!(worst < 2e-5 * scale, "{what}: largest difference {worst} (scale {scale})");
        };
        close(&values(fused.clone()), &values(reference.clone()), "activations");
        let (gf, gr) = (grads_of(fused), grads_of(reference));
        for (k, what) in
            ["input gradient", "conv weight gradient", "gamma gradient", "beta gradient"].iter().enumerate()
        {
            close(&gf[k], &gr[k], what);
        }
    }

    #[test]
    fn fused_convolution_gradients_match_burns() {
        let _rng = crate::model::device_rng_lock();
        use burn::tensor::module::conv2d;
        use burn::tensor::Distribution::Normal;
        let ad = Device::flex().autodiff();
        ad.seed(9);
        // 3 channels at 70 x 40: more than one weight-gradient tile per image; 40 channels at
        // 30 x 40: several forward and input-gradient tiles (360 im2col rows) per image.
        for (ci, co, h, w) in [(3, 5, 70, 40), (40, 7, 30, 40)] {
            let x = Tensor::<4>::random([2, ci, h, w], Normal(0.0, 1.0), &ad).require_grad();
            let weight = Tensor::<4>::random([co, ci, 3, 3], Normal(0.0, 0.3), &ad).require_grad();
            let bias = Tensor::<1>::random([co], Normal(0.0, 0.3), &ad).require_grad();
            let g = Tensor::<4>::random([2, co, h, w], Normal(0.0, 1.0), &ad);
            let run = |out: Tensor<4>| {
                let grads = (out.clone() * g.clone()).sum().backward();
                let v = |t: Tensor<4>| t.inner().try_into_vec_as::<f32>().expect("values");
                let gx = x.grad(&grads).expect("gradient").try_into_vec_as::<f32>().expect("values");
                let gw = weight.grad(&grads).expect("gradient").try_into_vec_as::<f32>().expect("values");
                let gb = bias.grad(&grads).expect("gradient").try_into_vec_as::<f32>().expect("values");
                [v(out), gx, gw, gb]
            };
            let fused = fused::conv3x3_train(x.clone(), weight.clone(), bias.clone())
                .unwrap_or_else(|_| panic!("the fused op applies"));
            let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
            let reference = conv2d(x.clone(), weight.clone(), Some(bias.clone()), options.clone());
            let (a, b) = (run(fused), run(reference.clone()));
            for (k, what) in ["output", "input gradient", "weight gradient", "bias gradient"].iter().enumerate() {
                let scale = b[k].iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1.0);
                let worst = a[k].iter().zip(&b[k]).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
                assert!(worst < 1e-5 * scale, "{ci} channels, {what}: largest difference {worst} (scale {scale})");
            }
            // Inference: convolution, bias and ELU in one pass, against burn's convolution and ELU.
            let (xi, wi, bi) = (x.clone().inner(), weight.clone().inner(), bias.clone().inner());
            let fused = fused::conv3x3_elu_inference(xi.clone(), wi.clone(), bi.clone())
                .unwrap_or_else(|_| panic!("the fused inference op applies"));
            let reference = burn::tensor::activation::elu(conv2d(xi, wi, Some(bi), options), 1.0);
            let (a, b) =
                (fused.try_into_vec_as::<f32>().expect("values"), reference.try_into_vec_as::<f32>().expect("values"));
            let worst = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-5 * b.iter().fold(1.0f32, |m, v| m.max(v.abs())), "{ci} channels, inference: {worst}");
        }
    }

    #[test]
    fn fused_max_pool_matches_burns_in_value_and_gradient() {
        let _rng = crate::model::device_rng_lock();
        use burn::tensor::Distribution::Normal;
        let pool = MaxPool2dConfig::new([2, 2]).init();
        let ad = Device::flex().autodiff();
        ad.seed(4);
        // Odd sizes: the last row and column are dropped, as burn's pool does.
        let x = Tensor::<4>::random([2, 3, 9, 7], Normal(0.0, 1.0), &ad).require_grad();
        let g = Tensor::<4>::random([2, 3, 4, 3], Normal(0.0, 1.0), &ad);
        let run = |out: Tensor<4>| {
            let grads = (out.clone() * g.clone()).sum().backward();
            let gx = x.grad(&grads).expect("gradient").try_into_vec_as::<f32>().expect("values");
            (out.inner().try_into_vec_as::<f32>().expect("values"), gx)
        };
        let (a, ga) = run(fused::max_pool2x2(x.clone()).unwrap_or_else(|_| panic!("the fused pool applies")));
        let (b, gb) = run(pool.forward(x.clone()));
        assert_eq!(a, b, "pooled values");
        assert_eq!(ga, gb, "input gradient");
        let plain = x.clone().inner();
        let c = fused::max_pool2x2(plain.clone()).unwrap_or_else(|_| panic!("applies without autodiff"));
        assert_eq!(c.try_into_vec_as::<f32>().expect("values"), b, "inference pool");
    }
}
