//! The transformer encoder's forward pass while training, on burn's own modules (so model files
//! and their weights are unchanged) with three fused operations: [`fused::dropout`] for its
//! dropouts (burn's drew a ChaCha f32 per element; the encoder's five dropouts per layer were
//! more than half of its training time: `cargo run --release --example encoder_times`, 458 ms
//! per step with dropout 0.1, 198 ms without), [`fused::gelu`] for exact GELU, and
//! [`fused::softmax_scaled`] for the attention's scaling and softmax, [`fused::linear`] for its
//! six dense layers, and [`fused::attention_scores`] / [`fused::attention_context`] for the
//! products per head; at inference dropout does nothing and the others run without autodiff.

use burn::nn::activation::Activation;
use burn::nn::attention::MultiHeadAttention;
use burn::nn::transformer::{
    PositionWiseFeedForward, TransformerEncoder, TransformerEncoderInput, TransformerEncoderLayer,
};
use burn::nn::{Dropout, Linear};
use burn::tensor::Tensor;

use super::fused;

/// `encoder.forward` without masks, with the fused operations (burn's own for quiet softmax).
pub fn forward(encoder: &TransformerEncoder, x: Tensor<3>) -> Tensor<3> {
    if encoder.layers.iter().any(|l| l.mha.quiet_softmax) {
        return encoder.forward(TransformerEncoderInput::new(x));
    }
    encoder.layers.iter().fold(x, |x, layer| layer_forward(layer, x))
}

/// burn's `TransformerEncoderLayer::forward` (post-norm or pre-norm), step for step.
fn layer_forward(layer: &TransformerEncoderLayer, x: Tensor<3>) -> Tensor<3> {
    let residual = if layer.norm_first { layer.norm_2.forward(x.clone()) } else { x.clone() };
    let residual = dropout(&layer.dropout, self_attention(&layer.mha, residual));
    let mut x = x + residual;
    let residual = if layer.norm_first {
        layer.norm_1.forward(x.clone())
    } else {
        x = layer.norm_1.forward(x);
        x.clone()
    };
    let residual = dropout(&layer.dropout, feed_forward(&layer.pwff, residual));
    let x = x + residual;
    if layer.norm_first {
        x
    } else {
        layer.norm_2.forward(x)
    }
}

/// burn's `MultiHeadAttention::forward` for self-attention without masks: the context only.
fn self_attention(mha: &MultiHeadAttention, x: Tensor<3>) -> Tensor<3> {
    let (query, key, value) = (dense(&mha.query, x.clone()), dense(&mha.key, x.clone()), dense(&mha.value, x));
    let scores = fused::attention_scores(query, key, mha.n_heads);
    let weights = dropout(&mha.dropout, fused::softmax_scaled(scores, 1.0 / (mha.d_k as f32).sqrt()));
    dense(&mha.output, fused::attention_context(weights, value))
}

/// burn's `PositionWiseFeedForward::forward`, with [`fused::gelu`] for exact GELU.
fn feed_forward(pwff: &PositionWiseFeedForward, x: Tensor<3>) -> Tensor<3> {
    let inner = dense(&pwff.linear_inner, x);
    let hidden = match &pwff.activation {
        Activation::Gelu(g) if !g.approximate => fused::gelu(inner),
        other => other.forward(inner),
    };
    dense(&pwff.linear_outer, dropout(&pwff.dropout, hidden))
}

/// burn's `Linear::forward` through [`fused::linear`] (which falls back to burn's own where it
/// does not apply).
fn dense(linear: &Linear, x: Tensor<3>) -> Tensor<3> {
    match &linear.bias {
        Some(bias) => fused::linear(x, linear.weight.val(), bias.val()),
        None => linear.forward(x),
    }
}

/// burn's `Dropout::forward` conditions, with the fast mask.
fn dropout<const D: usize>(layer: &Dropout, x: Tensor<D>) -> Tensor<D> {
    if !layer.training.is_enabled() || !x.device().is_autodiff() || layer.prob == 0.0 {
        return x;
    }
    fused::dropout(x, layer.prob)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::transformer::TransformerEncoderConfig;
    use burn::tensor::{Device, Distribution};

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.inner().try_into_vec_as::<f32>().expect("values")
    }

    #[test]
    fn without_dropout_it_is_burns_encoder_in_value_and_gradient() {
        let _rng = crate::model::device_rng_lock();
        let ad = Device::flex().autodiff();
        ad.seed(11);
        for norm_first in [false, true] {
            let encoder =
                TransformerEncoderConfig::new(16, 32, 4, 2).with_dropout(0.0).with_norm_first(norm_first).init(&ad);
            let x = Tensor::<3>::random([3, 7, 16], Distribution::Normal(0.0, 1.0), &ad).require_grad();
            let g = Tensor::<3>::random([3, 7, 16], Distribution::Normal(0.0, 1.0), &ad);
            let run = |out: Tensor<3>| {
                let grads = (out.clone() * g.clone()).sum().backward();
                let gx = x.grad(&grads).expect("gradient").try_into_vec_as::<f32>().expect("values");
                let gq = encoder.layers[0].mha.query.weight.val().grad(&grads).expect("gradient");
                (values(out), gx, gq.try_into_vec_as::<f32>().expect("values"))
            };
            let plain = x.clone().inner();
            let (a, b) = (
                forward(&encoder.valid(), plain.clone()),
                encoder.valid().forward(TransformerEncoderInput::new(plain)),
            );
            let (a, b) = (a.try_into_vec_as::<f32>().expect("values"), b.try_into_vec_as::<f32>().expect("values"));
            let worst = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "inference, norm_first {norm_first}: largest difference {worst}");
            let ours = run(forward(&encoder, x.clone()));
            let burns = run(encoder.forward(TransformerEncoderInput::new(x.clone())));
            for (a, b, what) in [
                (&ours.0, &burns.0, "output"),
                (&ours.1, &burns.1, "input gradient"),
                (&ours.2, &burns.2, "query weight gradient"),
            ] {
                let worst = a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
                assert!(worst < 1e-5, "norm_first {norm_first}, {what}: largest difference {worst}");
            }
        }
    }

    #[test]
    fn dropout_keeps_the_right_share_scales_survivors_and_routes_the_gradient_through_them() {
        let _rng = crate::model::device_rng_lock();
        let ad = Device::flex().autodiff();
        ad.seed(3);
        let n = 200_000;
        let x = Tensor::<1>::random([n], Distribution::Uniform(1.0, 2.0), &ad).require_grad();
        let y = fused::dropout(x.clone(), 0.25);
        let grads = y.clone().sum().backward();
        let (xs, ys) = (values(x.clone()), values(y));
        let gs = x.grad(&grads).expect("gradient").try_into_vec_as::<f32>().expect("values");
        let mut kept = 0;
        for k in 0..n {
            if ys[k] == 0.0 {
                assert_eq!(gs[k], 0.0, "a dropped element passes no gradient");
            } else {
                kept += 1;
                assert!((ys[k] - xs[k] / 0.75).abs() < 1e-6, "survivors are scaled by 1 / (1 - p)");
                assert!((gs[k] - 1.0 / 0.75).abs() < 1e-6, "and so is their gradient");
            }
        }
        let share = kept as f64 / n as f64;
        assert!((share - 0.75).abs() < 0.005, "kept {share}");
        // Reproducible from the device seed; a second call draws another mask.
        let again = |seed| {
            ad.seed(seed);
            let x = Tensor::<1>::ones([1000], &ad).require_grad();
            (values(fused::dropout(x.clone(), 0.5)), values(fused::dropout(x, 0.5)))
        };
        let (a1, a2) = again(7);
        let (b1, _) = again(7);
        assert_eq!(a1, b1, "same seed, same mask");
        assert_ne!(a1, a2, "consecutive calls draw different masks");
    }
}
