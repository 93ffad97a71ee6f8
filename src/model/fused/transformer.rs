//! The transformer encoder's element-wise operations: dropout, exact GELU, scaled softmax.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{unary, Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::Tensor;

use super::math::{exp_nonpositive, gelu_and_slope, keeps, simd};
use super::{contiguous_f32, flex_from_vec, flex_values, lane_sum, par_filled, record, tracked, CHUNK};

/// `values[i] * scale` where element `i` survives the mask, else 0.
fn apply_dropout(values: &[f32], seed: [u32; 2], threshold: u32, scale: f32) -> Vec<f32> {
    par_filled(values.len(), CHUNK, |k, o| {
        simd(
            #[inline(always)]
            || {
                let start = k * CHUNK;
                for (j, (o, &v)) in o.iter_mut().zip(&values[start..]).enumerate() {
                    let keep = keeps(seed, threshold, (start + j) as u32);
                    *o = if keep { v * scale } else { 0.0 };
                }
            },
        )
    })
}

#[derive(Debug, Clone)]
struct DropoutState {
    seed: [u32; 2],
    threshold: u32,
    scale: f32,
}

#[derive(Debug)]
struct DropoutBackward;

impl Backward<Flex, 1> for DropoutBackward {
    type State = DropoutState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let st = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let dy = contiguous_f32(&grad).expect("dropout: f32 gradient");
            let dx = apply_dropout(dy.storage::<f32>(), st.seed, st.threshold, st.scale);
            flex_from_vec(dx, dy.layout().shape().to_vec())
        });
    }
}

/// Dropout with probability `prob` (training only; the caller decides that), as burn's
/// `Dropout` computes it: survivors scaled by 1 / (1 - prob). burn draws an f32 per element from
/// ChaCha and multiplies by it: for the attention weights (32 x 4 x 144 x 144) that was 55 ms of
/// a training step. Here the mask is a hash of the element's index and a seed drawn from burn's
/// random source (so `Device::seed` still makes training reproducible), and the backward pass
/// recomputes it instead of storing it. Other backends get burn's formula.
pub fn dropout<const D: usize>(x: Tensor<D>, prob: f64) -> Tensor<D> {
    use burn::tensor::Distribution;
    let keep = 1.0 - prob;
    let Some((xa, xf)) = tracked(&x).filter(|(_, v)| v.storage::<f32>().len() < u32::MAX as usize) else {
        return x.clone() * x.random_like(Distribution::Bernoulli(keep)) * (1.0 / keep);
    };
    let draw = Tensor::<1>::random([2], Distribution::Uniform(0.0, 1.0), &x.device());
    let draw: Vec<f32> = draw.inner().try_into_vec_as().unwrap_or_else(|_| vec![0.5, 0.5]);
    let to_u32 = |u: f32| (u as f64 * u32::MAX as f64) as u32;
    let seed = [to_u32(draw[0]), to_u32(draw[1])];
    drop(x);
    let threshold = (prob.clamp(0.0, 1.0) * u32::MAX as f64) as u32;
    let scale = (1.0 / keep) as f32;
    let shape = xf.layout().shape().to_vec();
    let out = apply_dropout(xf.storage::<f32>(), seed, threshold, scale);
    record(DropoutBackward, [xa.node()], || DropoutState { seed, threshold, scale }, flex_from_vec(out, shape))
}

#[derive(Debug, Clone)]
struct GeluState {
    x: FlexTensor,
}

#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    type State = GeluState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let x = ops.state.x;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let dy = contiguous_f32(&grad).expect("GELU: f32 gradient");
            let (dy, values) = (dy.storage::<f32>(), x.storage::<f32>());
            let dx = par_filled(values.len(), CHUNK, |k, out| {
                simd(
                    #[inline(always)]
                    || {
                        let start = k * CHUNK;
                        for ((o, &g), &v) in out.iter_mut().zip(&dy[start..]).zip(&values[start..]) {
                            *o = g * gelu_and_slope(v).1;
                        }
                    },
                )
            });
            flex_from_vec(dx, x.layout().shape().to_vec())
        });
    }
}

/// Exact (erf) GELU on the Flex backend (with or without autodiff), one pass each way; burn's
/// goes through the library's scalar `erf` and a chain of tensor operations (30 ms forward +
/// backward per feed-forward layer of a training step). Other backends get burn's `gelu`.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let Some((handle, xf)) = flex_values(&x) else {
        return burn::tensor::activation::gelu(x);
    };
    drop(x);
    let values = xf.storage::<f32>();
    let out = par_filled(values.len(), CHUNK, |k, o| {
        simd(
            #[inline(always)]
            || {
                let start = k * CHUNK;
                for (o, &v) in o.iter_mut().zip(&values[start..]) {
                    *o = gelu_and_slope(v).0;
                }
            },
        )
    });
    let y = flex_from_vec(out, xf.layout().shape().to_vec());
    match handle {
        Some(xa) => record(GeluBackward, [xa.node()], || GeluState { x: xf }, y),
        None => Tensor::from_primitive::<Flex>(y),
    }
}

/// Softmax over rows of `width` values, each value first multiplied by `scale`.
fn softmax_rows(x: &[f32], width: usize, scale: f32) -> Vec<f32> {
    par_filled(x.len(), width * 64, |k, block| {
        simd(
            #[inline(always)]
            || {
                let start = k * width * 64;
                for (r, o) in block.chunks_mut(width).enumerate() {
                    let row = &x[start + r * width..start + (r + 1) * width];
                    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v * scale));
                    for (o, &v) in o.iter_mut().zip(row) {
                        *o = exp_nonpositive(v * scale - max);
                    }
                    let total = lane_sum(o, o, o, |a, _, _| a) as f32;
                    let inv = 1.0 / total;
                    o.iter_mut().for_each(|v| *v *= inv);
                }
            },
        )
    })
}

#[derive(Debug, Clone)]
struct SoftmaxState {
    y: FlexTensor,
    scale: f32,
}

#[derive(Debug)]
struct SoftmaxBackward;

impl Backward<Flex, 1> for SoftmaxBackward {
    type State = SoftmaxState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let SoftmaxState { y, scale } = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let dy = contiguous_f32(&grad).expect("softmax: f32 gradient");
            let shape = y.layout().shape().to_vec();
            let width = *shape.last().expect("rank >= 1");
            let (dy, y) = (dy.storage::<f32>(), y.storage::<f32>());
            // dx = scale * y * (dy - sum(dy * y)) per row.
            let dx = par_filled(y.len(), width * 64, |k, block| {
                simd(
                    #[inline(always)]
                    || {
                        let start = k * width * 64;
                        for (r, o) in block.chunks_mut(width).enumerate() {
                            let range = start + r * width..start + (r + 1) * width;
                            let (g, p) = (&dy[range.clone()], &y[range]);
                            let dot = lane_sum(g, p, p, |a, b, _| a * b) as f32;
                            for ((o, &a), &b) in o.iter_mut().zip(g).zip(p) {
                                *o = scale * b * (a - dot);
                            }
                        }
                    },
                )
            });
            flex_from_vec(dx, shape)
        });
    }
}

/// softmax(x * scale) over the last axis as one operation on the Flex backend, with or without
/// autodiff (the attention weights: scores / sqrt(d_k), then softmax); burn's is a chain of max,
/// subtract, exp, sum and divide passes, each recorded for the backward. Other backends get
/// burn's.
pub fn softmax_scaled<const D: usize>(x: Tensor<D>, scale: f32) -> Tensor<D> {
    let Some((handle, xf)) = flex_values(&x) else {
        return burn::tensor::activation::softmax(x.mul_scalar(scale), D - 1);
    };
    drop(x);
    let shape = xf.layout().shape().to_vec();
    let width = *shape.last().expect("rank >= 1");
    let out = softmax_rows(xf.storage::<f32>(), width, scale);
    let y = flex_from_vec(out, shape);
    match handle {
        Some(xa) => {
            let saved = y.clone();
            record(SoftmaxBackward, [xa.node()], || SoftmaxState { y: saved, scale }, y)
        }
        None => Tensor::from_primitive::<Flex>(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn scaled_softmax_is_burns_for_either_sign_of_scale_and_large_scores() {
        let _rng = crate::model::device_rng_lock();
        let device = Device::flex();
        device.seed(2);
        let x = Tensor::<3>::random([2, 5, 9], Distribution::Normal(0.0, 30.0), &device);
        for scale in [0.5f32, -2.0] {
            let ours: Vec<f32> = softmax_scaled(x.clone(), scale).try_into_vec_as().expect("values");
            let burns: Vec<f32> =
                burn::tensor::activation::softmax(x.clone().mul_scalar(scale), 2).try_into_vec_as().expect("values");
            let worst = ours.iter().zip(&burns).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-6, "scale {scale}: largest difference {worst}");
            for row in ours.chunks(9) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "a row sums to 1");
            }
        }
    }

    #[test]
    fn gelu_is_burns_exact_gelu() {
        let _rng = crate::model::device_rng_lock();
        let device = Device::flex();
        let values: Vec<f32> = (-80..=80).map(|k| k as f32 * 0.1).collect();
        let n = values.len();
        let x = Tensor::<1>::from_data(burn::tensor::TensorData::new(values, [n]), &device);
        let ours: Vec<f32> = gelu(x.clone()).try_into_vec_as().expect("values");
        let burns: Vec<f32> = burn::tensor::activation::gelu(x).try_into_vec_as().expect("values");
        let worst = ours.iter().zip(&burns).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 2e-6, "largest difference {worst}");
    }
}
