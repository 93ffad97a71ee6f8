//! Batch norm with the batch's statistics followed by ELU, and ELU alone at inference.
//!
//! Per layer (`cargo run --release --example op_times`, batch 32): at 101 x 101 pixels and 16
//! channels burn's batch norm forward + backward took ~65 ms and its ELU ~93 ms, as long as the
//! convolution itself, each a chain of whole-tensor passes (swap dims, means, compare, exp,
//! select) allocating a 21 MB tensor. Here it is two passes forward (statistics, output) and two
//! backward (sums, input gradient).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::math::{elu_grad_from_output, elu_scalar, simd};
use super::{channel_sums, contiguous_f32, flex_from_vec, lane_sum, record, tracked, CHUNK};

fn elu_in_place(values: &mut [f32]) {
    values.par_chunks_mut(CHUNK).for_each(|chunk| {
        simd(
            #[inline(always)]
            || {
                for v in chunk {
                    *v = elu_scalar(*v);
                }
            },
        )
    });
}

/// ELU (alpha 1) without gradients, in one vectorised pass, in place when the tensor is not
/// shared. `None` when the tensor is not a plain f32 Flex tensor (the caller then uses burn's).
pub fn elu_inference<const D: usize>(x: Tensor<D>) -> Result<Tensor<D>, Box<Tensor<D>>> {
    if x.device().is_autodiff() {
        return Err(Box::new(x));
    }
    let Ok(mut t) = x.clone().try_into_primitive::<Flex>() else {
        return Err(Box::new(x));
    };
    if t.dtype() != burn::tensor::DType::F32 {
        return Err(Box::new(x));
    }
    drop(x);
    if !t.is_contiguous() || t.layout().start_offset() != 0 {
        t = t.to_contiguous();
    }
    elu_in_place(t.storage_mut::<f32>());
    Ok(Tensor::from_primitive::<Flex>(t))
}

/// The output of [`batch_norm_elu_train`]: the activations (tracked by autodiff) and the batch
/// statistics (biased variance, as burn's batch norm feeds its running averages).
pub struct BatchNormEluOutput {
    pub output: Tensor<4>,
    pub mean: Vec<f32>,
    pub variance: Vec<f32>,
}

/// What the backward pass needs: the input, the output, and per-channel constants.
#[derive(Debug, Clone)]
struct BnEluState {
    x: FlexTensor,
    y: FlexTensor,
    gamma: Vec<f32>,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

#[derive(Debug)]
struct BnEluBackward;

impl Backward<Flex, 3> for BnEluBackward {
    type State = BnEluState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let state = ops.state;
        let shape = state.x.layout().shape().to_vec();
        let (channels, plane) = (shape[1], shape[2] * shape[3]);
        let count = (shape[0] * plane) as f64;
        let grad = contiguous_f32(&grad).expect("batch norm + ELU: f32 gradient");
        let (dy, x, y) = (grad.storage::<f32>(), state.x.storage::<f32>(), state.y.storage::<f32>());
        let (mean, inv_std) = (&state.mean, &state.inv_std);
        let rows = |p: usize| p * plane..(p + 1) * plane;
        // dz = dy * elu'(z); sums of dz and of dz * xhat per channel.
        let sum_dz = channel_sums(
            dy,
            channels,
            plane,
            #[inline(always)]
            |p, dy_p| {
                let y_p = &y[rows(p)];
                lane_sum(dy_p, y_p, y_p, |g, o, _| g * elu_grad_from_output(o))
            },
        );
        let sum_dz_xhat = channel_sums(
            dy,
            channels,
            plane,
            #[inline(always)]
            |p, dy_p| {
                let c = p % channels;
                let (y_p, x_p) = (&y[rows(p)], &x[rows(p)]);
                let (m, s) = (mean[c], inv_std[c]);
                lane_sum(dy_p, y_p, x_p, |g, o, v| g * elu_grad_from_output(o) * (v - m) * s)
            },
        );
        if let Some(node) = node_x {
            let mut dx = vec![0.0f32; x.len()];
            dx.par_chunks_mut(plane).enumerate().for_each(|(p, out)| {
                simd(
                    #[inline(always)]
                    || {
                        let c = p % channels;
                        let (dy_p, y_p, x_p) = (&dy[rows(p)], &y[rows(p)], &x[rows(p)]);
                        let (m, s) = (mean[c], inv_std[c]);
                        let mean_dz = (sum_dz[c] / count) as f32;
                        let mean_dz_xhat = (sum_dz_xhat[c] / count) as f32;
                        let scale = state.gamma[c] * s;
                        for (((o, &g), &yo), &v) in out.iter_mut().zip(dy_p).zip(y_p).zip(x_p) {
                            let dz = g * elu_grad_from_output(yo);
                            *o = scale * (dz - mean_dz - (v - m) * s * mean_dz_xhat);
                        }
                    },
                )
            });
            grads.register::<Flex>(node.id, flex_from_vec(dx, shape.clone()));
        }
        if let Some(node) = node_gamma {
            let g: Vec<f32> = sum_dz_xhat.iter().map(|&v| v as f32).collect();
            grads.register::<Flex>(node.id, flex_from_vec(g, vec![channels]));
        }
        if let Some(node) = node_beta {
            let g: Vec<f32> = sum_dz.iter().map(|&v| v as f32).collect();
            grads.register::<Flex>(node.id, flex_from_vec(g, vec![channels]));
        }
    }
}

/// Batch norm with the batch's own statistics, then ELU (alpha 1), as one autodiff operation
/// on the Flex backend. Gives back the inputs (`Err`) when they are not Flex autodiff f32 tensors
/// of rank 4, so the caller can use burn's `batch_norm` + `elu` instead.
pub fn batch_norm_elu_train(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> Result<BatchNormEluOutput, Box<(Tensor<4>, Tensor<1>, Tensor<1>)>> {
    let (Some((xa, xf)), Some((ga, gf)), Some((ba, bf))) = (tracked(&x), tracked(&gamma), tracked(&beta)) else {
        return Err(Box::new((x, gamma, beta)));
    };
    drop((x, gamma, beta));
    let shape = xf.layout().shape().to_vec();
    let (channels, plane) = (shape[1], shape[2] * shape[3]);
    let count = (shape[0] * plane) as f64;
    let data = xf.storage::<f32>();
    let mean: Vec<f32> = channel_sums(
        data,
        channels,
        plane,
        #[inline(always)]
        |_, v| lane_sum(v, v, v, |a, _, _| a),
    )
    .iter()
    .map(|s| (s / count) as f32)
    .collect();
    let variance: Vec<f32> = channel_sums(
        data,
        channels,
        plane,
        #[inline(always)]
        |p, v| {
            let m = mean[p % channels];
            lane_sum(v, v, v, |a, _, _| (a - m) * (a - m))
        },
    )
    .iter()
    .map(|s| (s / count) as f32)
    .collect();
    let inv_std: Vec<f32> = variance.iter().map(|&v| 1.0 / (v as f64 + epsilon).sqrt() as f32).collect();
    let (g, b) = (gf.storage::<f32>(), bf.storage::<f32>());
    let mut out = vec![0.0f32; data.len()];
    out.par_chunks_mut(plane).enumerate().for_each(|(p, o)| {
        let c = p % channels;
        let scale = g[c] * inv_std[c];
        let shift = b[c] - mean[c] * scale;
        simd(
            #[inline(always)]
            || {
                for (o, &v) in o.iter_mut().zip(&data[p * plane..(p + 1) * plane]) {
                    *o = elu_scalar(v * scale + shift);
                }
            },
        )
    });
    let y = flex_from_vec(out, shape);
    let state = || BnEluState { x: xf.clone(), y: y.clone(), gamma: g.to_vec(), mean: mean.clone(), inv_std };
    let output = record(BnEluBackward, [xa.node(), ga.node(), ba.node()], state, y.clone());
    Ok(BatchNormEluOutput { output, mean, variance })
}
