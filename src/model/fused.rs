//! Hand-written kernels for the two places where burn's CPU backend spends most of a training
//! step: batch norm with batch statistics followed by ELU, and ELU alone at inference.
//!
//! Measured per layer (`cargo run --release --example op_times`, batch 32): at 101 x 101 pixels
//! and 16 channels burn's batch norm forward + backward took ~65 ms and its ELU ~93 ms, as long as
//! the convolution itself, because each is a chain of whole-tensor passes (swap dims, means,
//! compare, exp, select) that each allocate a 21 MB tensor. Here batch norm + ELU is one autodiff
//! operation: two passes forward (statistics, output) and two backward (sums, input gradient),
//! with a branch-free `exp` the compiler vectorises.
//!
//! Both only apply to the Flex CPU backend (the one this program runs on); on any other backend,
//! or a layout they do not handle, the callers fall back to burn's own operations, which compute
//! the same function (tests in `net.rs` compare the two).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

/// `exp(x)` for `x <= 0` (larger values are clamped to 0): Cody-Waite range reduction and a
/// degree-6 polynomial, within 2 ulp of `f32::exp`. No branches and no library call, so a loop
/// over a slice vectorises (the library `expf` does not).
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 0.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let exponent = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((exponent + 127) as u32) << 23)
}

/// ELU with alpha 1 of one value.
#[inline(always)]
fn elu_scalar(z: f32) -> f32 {
    let negative = exp_nonpositive(z) - 1.0;
    if z > 0.0 {
        z
    } else {
        negative
    }
}

/// ELU's derivative from its output: 1 where the output is positive, else exp(z) = y + 1.
#[inline(always)]
fn elu_grad_from_output(y: f32) -> f32 {
    if y > 0.0 {
        1.0
    } else {
        y + 1.0
    }
}

/// Rows of work per rayon task: large enough that the split costs nothing next to the loop.
const CHUNK: usize = 16 * 1024;

fn elu_in_place(values: &mut [f32]) {
    values.par_chunks_mut(CHUNK).for_each(|chunk| {
        for v in chunk {
            *v = elu_scalar(*v);
        }
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

fn contiguous_f32(t: &FlexTensor) -> Option<FlexTensor> {
    if t.dtype() != burn::tensor::DType::F32 {
        return None;
    }
    Some(if t.is_contiguous() && t.layout().start_offset() == 0 { t.clone() } else { t.to_contiguous() })
}

/// A tensor on the Flex autodiff backend as its autodiff handle (for the graph) and its f32
/// values laid out contiguously; `None` on any other backend or element type.
fn tracked<const D: usize>(
    t: &Tensor<D>,
) -> Option<(<Autodiff<Flex> as burn::backend::BackendTypes>::FloatTensorPrimitive, FlexTensor)> {
    let handle = t.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
    let values = contiguous_f32(handle.primitive())?;
    Some((handle, values))
}

/// A tensor on the Flex backend without autodiff as contiguous f32 values.
fn plain<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
    if t.device().is_autodiff() {
        return None;
    }
    contiguous_f32(&t.clone().try_into_primitive::<Flex>().ok()?)
}

fn flex_from_vec(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Per-(image, channel) plane sums of `f(plane index, value)`, in f64, reduced per channel.
fn channel_sums(data: &[f32], channels: usize, plane: usize, f: impl Fn(usize, &[f32]) -> f64 + Sync) -> Vec<f64> {
    let per_plane: Vec<f64> = data.par_chunks(plane).enumerate().map(|(p, v)| f(p, v)).collect();
    let mut sums = vec![0.0f64; channels];
    for (p, s) in per_plane.into_iter().enumerate() {
        sums[p % channels] += s;
    }
    sums
}

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
        let sum_dz = channel_sums(dy, channels, plane, |p, dy_p| {
            let y_p = &y[rows(p)];
            lane_sum(dy_p, y_p, y_p, |g, o, _| g * elu_grad_from_output(o))
        });
        let sum_dz_xhat = channel_sums(dy, channels, plane, |p, dy_p| {
            let c = p % channels;
            let (y_p, x_p) = (&y[rows(p)], &x[rows(p)]);
            let (m, s) = (mean[c], inv_std[c]);
            lane_sum(dy_p, y_p, x_p, |g, o, v| g * elu_grad_from_output(o) * (v - m) * s)
        });
        if let Some(node) = node_x {
            let mut dx = vec![0.0f32; x.len()];
            dx.par_chunks_mut(plane).enumerate().for_each(|(p, out)| {
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
    type Ad = Autodiff<Flex>;
    let (Some((xa, xf)), Some((ga, gf)), Some((ba, bf))) = (tracked(&x), tracked(&gamma), tracked(&beta)) else {
        return Err(Box::new((x, gamma, beta)));
    };
    drop((x, gamma, beta));
    let shape = xf.layout().shape().to_vec();
    let (channels, plane) = (shape[1], shape[2] * shape[3]);
    let count = (shape[0] * plane) as f64;
    let data = xf.storage::<f32>();
    let mean: Vec<f32> = channel_sums(data, channels, plane, |_, v| lane_sum(v, v, v, |a, _, _| a))
        .iter()
        .map(|s| (s / count) as f32)
        .collect();
    let variance: Vec<f32> = channel_sums(data, channels, plane, |p, v| {
        let m = mean[p % channels];
        lane_sum(v, v, v, |a, _, _| (a - m) * (a - m))
    })
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
        for (o, &v) in o.iter_mut().zip(&data[p * plane..(p + 1) * plane]) {
            *o = elu_scalar(v * scale + shift);
        }
    });
    let y = flex_from_vec(out, shape);
    let output = match BnEluBackward
        .prepare::<burn::backend::autodiff::checkpoint::strategy::NoCheckpointing>([xa.node(), ga.node(), ba.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let gamma = g.to_vec();
            let state = BnEluState { x: xf.clone(), y: y.clone(), gamma, mean: mean.clone(), inv_std };
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Ok(BatchNormEluOutput { output: Tensor::from_primitive::<Ad>(output), mean, variance })
}

/// Output pixels per im2col tile in [`conv3x3_weight_gradient`]: whole rows, about this many,
/// so a tile of 16 channels x 9 taps stays in the core's L2 cache.
const TILE_PIXELS: usize = 2048;

/// d(loss)/d(weight) of a 3 x 3 convolution (stride 1, padding 1) given its input `x`
/// [n, ci, h, w] and output gradient `dy` [n, co, h, w]: per image, an im2col tile of the input
/// times the output gradient, accumulated per thread and summed. burn computes this as a
/// convolution of the transposed input with the transposed gradient as a 101 x 101 kernel,
/// which copies both tensors and runs the matrix product at 9 rows: twice the time of the
/// forward convolution. This is one matrix product of [co x pixels] by [pixels x ci*9] per tile.
pub fn conv3x3_weight_gradient(x: &[f32], dy: &[f32], dims: [usize; 5]) -> Vec<f32> {
    let [n, ci, co, h, w] = dims;
    let (hw, taps) = (h * w, ci * 9);
    assert_eq!(x.len(), n * ci * hw, "input size");
    assert_eq!(dy.len(), n * co * hw, "gradient size");
    let rows_per_tile = (TILE_PIXELS / w).clamp(1, h);
    // Images in fixed groups, each summed in order, and the groups' sums added in order: the
    // result does not depend on how rayon schedules the groups (training is reproducible).
    const IMAGES_PER_GROUP: usize = 4;
    let groups: Vec<usize> = (0..n).step_by(IMAGES_PER_GROUP).collect();
    let partial: Vec<Vec<f32>> = groups
        .par_iter()
        .map(|&first| {
            let mut acc = vec![0.0f32; co * taps];
            let mut col = vec![0.0f32; taps * rows_per_tile * w];
            for image in first..(first + IMAGES_PER_GROUP).min(n) {
                let xi = &x[image * ci * hw..(image + 1) * ci * hw];
                let dyi = &dy[image * co * hw..(image + 1) * co * hw];
                for row0 in (0..h).step_by(rows_per_tile) {
                    let rows = rows_per_tile.min(h - row0);
                    let len = rows * w;
                    im2col_rows(xi, &mut col[..taps * len], [ci, h, w], row0, rows);
                    // acc[co, tap] += sum_t dy[co, row0 * w + t] * col[tap, t]
                    // SAFETY: the pointers and strides address acc (co x taps, row-major),
                    // dyi's rows row0..row0+rows of each output channel, and col (taps x len),
                    // all inside their slices (sizes asserted above and set by im2col_rows).
                    unsafe {
                        gemm::gemm(
                            co,
                            taps,
                            len,
                            acc.as_mut_ptr(),
                            1,
                            taps as isize,
                            true,
                            dyi.as_ptr().add(row0 * w),
                            1,
                            hw as isize,
                            col.as_ptr(),
                            len as isize,
                            1,
                            1.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                }
            }
            acc
        })
        .collect();
    let mut sums = vec![0.0f32; co * taps];
    for p in &partial {
        sums.iter_mut().zip(p).for_each(|(s, v)| *s += v);
    }
    sums
}

/// The 3 x 3 neighbourhoods (zero outside the image) of output rows `row0..row0 + rows` as a
/// [ci * 9, rows * w] matrix: row `c * 9 + ky * 3 + kx` holds x[c, y + ky - 1, x + kx - 1].
fn im2col_rows(x: &[f32], col: &mut [f32], [ci, h, w]: [usize; 3], row0: usize, rows: usize) {
    let len = rows * w;
    for c in 0..ci {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for ky in 0..3 {
            for kx in 0..3 {
                let dst = &mut col[(c * 9 + ky * 3 + kx) * len..(c * 9 + ky * 3 + kx + 1) * len];
                for r in 0..rows {
                    let out = &mut dst[r * w..(r + 1) * w];
                    let sy = (row0 + r + ky) as isize - 1;
                    if sy < 0 || sy >= h as isize {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[sy as usize * w..(sy as usize + 1) * w];
                    match kx {
                        0 => {
                            out[0] = 0.0;
                            out[1..].copy_from_slice(&src[..w - 1]);
                        }
                        1 => out.copy_from_slice(src),
                        _ => {
                            out[..w - 1].copy_from_slice(&src[1..]);
                            out[w - 1] = 0.0;
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct ConvState {
    x: FlexTensor,
    weight: FlexTensor,
    dims: [usize; 5],
}

#[derive(Debug)]
struct Conv3x3Backward;

impl Backward<Flex, 3> for Conv3x3Backward {
    type State = ConvState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        use burn::backend::ops::ModuleOps;
        use burn::tensor::ops::ConvTransposeOptions;
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let dy = contiguous_f32(&grad).expect("convolution: f32 gradient");
        let state = ops.state;
        let [n, ci, co, h, w] = state.dims;
        if let Some(node) = node_w {
            let dw = conv3x3_weight_gradient(state.x.storage::<f32>(), dy.storage::<f32>(), state.dims);
            grads.register::<Flex>(node.id, flex_from_vec(dw, vec![co, ci, 3, 3]));
        }
        if let Some(node) = node_b {
            let sums = channel_sums(dy.storage::<f32>(), co, h * w, |_, v| lane_sum(v, v, v, |a, _, _| a));
            let db: Vec<f32> = sums.iter().map(|&v| v as f32).collect();
            grads.register::<Flex>(node.id, flex_from_vec(db, vec![co]));
        }
        if let Some(node) = node_x {
            // The input gradient is the transposed convolution, as burn computes it.
            let options = ConvTransposeOptions::new([1, 1], [1, 1], [0, 0], [1, 1], 1);
            let dx = <Flex as ModuleOps<Flex>>::conv_transpose2d(dy, state.weight, None, options);
            debug_assert_eq!(dx.layout().shape().to_vec(), vec![n, ci, h, w]);
            grads.register::<Flex>(node.id, dx);
        }
    }
}

/// The sum of `f(a[i], b[i], c[i])` in 16 independent f32 lanes, finished in f64: float sums
/// in one accumulator never vectorise (their order is fixed), and a plane of at most ~10^4 values
/// spread over 16 lanes keeps f32 rounding below 1e-6 relative.
#[inline(always)]
fn lane_sum(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f64 {
    const LANES: usize = 16;
    let n = a.len().min(b.len()).min(c.len());
    let full = n / LANES * LANES;
    let mut lanes = [0.0f32; LANES];
    let chunks = a[..full].chunks_exact(LANES).zip(b[..full].chunks_exact(LANES)).zip(c[..full].chunks_exact(LANES));
    for ((ca, cb), cc) in chunks {
        for i in 0..LANES {
            lanes[i] += f(ca[i], cb[i], cc[i]);
        }
    }
    let tail: f64 = (full..n).map(|i| f(a[i], b[i], c[i]) as f64).sum();
    lanes.iter().map(|&l| l as f64).sum::<f64>() + tail
}

/// A 3 x 3 convolution with stride 1, padding 1 and a bias, as one autodiff operation on the
/// Flex backend: burn's forward and input gradient, and [`conv3x3_weight_gradient`] for the
/// weights. Gives the inputs back (`Err`) for anything else.
#[allow(clippy::type_complexity)]
pub fn conv3x3_train(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
) -> Result<Tensor<4>, Box<(Tensor<4>, Tensor<4>, Tensor<1>)>> {
    use burn::backend::ops::ModuleOps;
    use burn::tensor::ops::ConvOptions;
    type Ad = Autodiff<Flex>;
    let [n, ci, h, w] = x.dims();
    let [co, wci, kh, kw] = weight.dims();
    if wci != ci || kh != 3 || kw != 3 || h < 2 || w < 2 {
        return Err(Box::new((x, weight, bias)));
    }
    let (Some((xa, xf)), Some((wa, wf)), Some((ba, bf))) = (tracked(&x), tracked(&weight), tracked(&bias)) else {
        return Err(Box::new((x, weight, bias)));
    };
    drop((x, weight, bias));
    let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let y = <Flex as ModuleOps<Flex>>::conv2d(xf.clone(), wf.clone(), Some(bf), options);
    let output = match Conv3x3Backward
        .prepare::<burn::backend::autodiff::checkpoint::strategy::NoCheckpointing>([xa.node(), wa.node(), ba.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(ConvState { x: xf, weight: wf, dims: [n, ci, co, h, w] }, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Ok(Tensor::from_primitive::<Ad>(output))
}

/// 2 x 2 max-pool with stride 2 (odd edges dropped) of contiguous [planes, h, w] data; with
/// `argmax`, also which of the four pixels won (0..4, row-major), for the backward pass.
fn max_pool2x2_planes(x: &[f32], [planes, h, w]: [usize; 3], argmax: Option<&mut [u8]>) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    let mut out = vec![0.0f32; planes * oh * ow];
    let body = |p: usize, o: &mut [f32], mut a: Option<&mut [u8]>| {
        let src = &x[p * h * w..(p + 1) * h * w];
        for i in 0..oh {
            let (r0, r1) = (&src[2 * i * w..(2 * i + 1) * w], &src[(2 * i + 1) * w..(2 * i + 2) * w]);
            for j in 0..ow {
                let v = [r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]];
                let mut best = 0;
                for k in 1..4 {
                    if v[k] > v[best] {
                        best = k;
                    }
                }
                o[i * ow + j] = v[best];
                if let Some(a) = a.as_deref_mut() {
                    a[i * ow + j] = best as u8;
                }
            }
        }
    };
    match argmax {
        Some(a) => out
            .par_chunks_mut(oh * ow)
            .zip(a.par_chunks_mut(oh * ow))
            .enumerate()
            .for_each(|(p, (o, a))| body(p, o, Some(a))),
        None => out.par_chunks_mut(oh * ow).enumerate().for_each(|(p, o)| body(p, o, None)),
    }
    out
}

#[derive(Debug, Clone)]
struct PoolState {
    argmax: std::sync::Arc<Vec<u8>>,
    dims: [usize; 4],
}

#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    type State = PoolState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let Some(node) = node_x else { return };
        let dy = contiguous_f32(&grad).expect("max-pool: f32 gradient");
        let dy = dy.storage::<f32>();
        let [n, c, h, w] = ops.state.dims;
        let (oh, ow) = (h / 2, w / 2);
        let argmax = &ops.state.argmax;
        let mut dx = vec![0.0f32; n * c * h * w];
        dx.par_chunks_mut(h * w).enumerate().for_each(|(p, d)| {
            let (g, a) = (&dy[p * oh * ow..(p + 1) * oh * ow], &argmax[p * oh * ow..(p + 1) * oh * ow]);
            for i in 0..oh {
                for j in 0..ow {
                    let k = a[i * ow + j] as usize;
                    d[(2 * i + k / 2) * w + 2 * j + k % 2] = g[i * ow + j];
                }
            }
        });
        grads.register::<Flex>(node.id, flex_from_vec(dx, vec![n, c, h, w]));
    }
}

/// 2 x 2 max-pool, stride 2, on the Flex backend (with or without autodiff): one pass that
/// keeps a byte per output for the backward pass, where burn keeps 64-bit indices and scatters
/// through them. Gives the input back (`Err`) when it is not a Flex f32 tensor.
pub fn max_pool2x2(x: Tensor<4>) -> Result<Tensor<4>, Box<Tensor<4>>> {
    type Ad = Autodiff<Flex>;
    let [n, c, h, w] = x.dims();
    if h < 2 || w < 2 {
        return Err(Box::new(x));
    }
    let out_shape = vec![n, c, h / 2, w / 2];
    if !x.device().is_autodiff() {
        let Ok(t) = x.clone().try_into_primitive::<Flex>() else { return Err(Box::new(x)) };
        let Some(t) = contiguous_f32(&t) else { return Err(Box::new(x)) };
        let out = max_pool2x2_planes(t.storage::<f32>(), [n * c, h, w], None);
        return Ok(Tensor::from_primitive::<Flex>(flex_from_vec(out, out_shape)));
    }
    let Ok(xa) = x.clone().try_into_primitive::<Ad>() else { return Err(Box::new(x)) };
    let Some(xf) = contiguous_f32(xa.primitive()) else { return Err(Box::new(x)) };
    drop(x);
    let mut argmax = vec![0u8; n * c * (h / 2) * (w / 2)];
    let out = max_pool2x2_planes(xf.storage::<f32>(), [n * c, h, w], Some(&mut argmax));
    let y = flex_from_vec(out, out_shape);
    let output = match MaxPoolBackward
        .prepare::<burn::backend::autodiff::checkpoint::strategy::NoCheckpointing>([xa.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(PoolState { argmax: std::sync::Arc::new(argmax), dims: [n, c, h, w] }, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Ok(Tensor::from_primitive::<Ad>(output))
}

/// A well-mixed 32-bit hash (two multiply-xorshift rounds): the counter-based random source
/// of [`dropout`], cheap enough to vectorise and to recompute in the backward pass.
#[inline(always)]
fn mix32(mut v: u32) -> u32 {
    v ^= v >> 16;
    v = v.wrapping_mul(0x7feb_352d);
    v ^= v >> 15;
    v = v.wrapping_mul(0x846c_a68b);
    v ^= v >> 16;
    v
}

/// Whether element `i` survives a dropout with this seed: P(keep) = 1 - threshold / 2^32.
#[inline(always)]
fn keeps(seed: [u32; 2], threshold: u32, i: u32) -> bool {
    mix32(mix32(i ^ seed[0]) ^ seed[1]) >= threshold
}

/// `out[i] = values[i] * scale` where element `offset + i` survives, else 0.
fn apply_dropout(values: &[f32], out: &mut [f32], seed: [u32; 2], threshold: u32, scale: f32) {
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(k, o)| {
        let start = k * CHUNK;
        for (j, (o, &v)) in o.iter_mut().zip(&values[start..]).enumerate() {
            let keep = keeps(seed, threshold, (start + j) as u32);
            *o = if keep { v * scale } else { 0.0 };
        }
    });
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
        let [node_x] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let Some(node) = node_x else { return };
        let dy = contiguous_f32(&grad).expect("dropout: f32 gradient");
        let shape = dy.layout().shape().to_vec();
        let mut dx = vec![0.0f32; dy.storage::<f32>().len()];
        let st = ops.state;
        apply_dropout(dy.storage::<f32>(), &mut dx, st.seed, st.threshold, st.scale);
        grads.register::<Flex>(node.id, flex_from_vec(dx, shape));
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
    let mut out = vec![0.0f32; xf.storage::<f32>().len()];
    apply_dropout(xf.storage::<f32>(), &mut out, seed, threshold, scale);
    let y = flex_from_vec(out, shape);
    let output = match DropoutBackward
        .prepare::<burn::backend::autodiff::checkpoint::strategy::NoCheckpointing>([xa.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(DropoutState { seed, threshold, scale }, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive::<Autodiff<Flex>>(output)
}

/// erf(z) by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7) on [`exp_nonpositive`]:
/// branch-free apart from the sign, so it vectorises where the library `erff` does not.
#[inline(always)]
fn erf_approx(z: f32) -> f32 {
    let a = z.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_8) * t - 0.284_496_72) * t + 0.254_829_6) * t;
    let magnitude = 1.0 - poly * exp_nonpositive(-a * a);
    if z < 0.0 {
        -magnitude
    } else {
        magnitude
    }
}

/// Exact GELU, x * Phi(x), and its derivative Phi(x) + x * phi(x).
#[inline(always)]
fn gelu_and_slope(x: f32) -> (f32, f32) {
    let cdf = 0.5 * (1.0 + erf_approx(x * std::f32::consts::FRAC_1_SQRT_2));
    let pdf = exp_nonpositive(-0.5 * x * x) * 0.398_942_3;
    (x * cdf, cdf + x * pdf)
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
        let [node_x] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let Some(node) = node_x else { return };
        let dy = contiguous_f32(&grad).expect("GELU: f32 gradient");
        let (dy, x) = (dy.storage::<f32>(), ops.state.x.storage::<f32>());
        let mut dx = vec![0.0f32; x.len()];
        dx.par_chunks_mut(CHUNK).enumerate().for_each(|(k, out)| {
            let start = k * CHUNK;
            for ((o, &g), &v) in out.iter_mut().zip(&dy[start..]).zip(&x[start..]) {
                *o = g * gelu_and_slope(v).1;
            }
        });
        grads.register::<Flex>(node.id, flex_from_vec(dx, ops.state.x.layout().shape().to_vec()));
    }
}

/// Exact (erf) GELU on the Flex backend (with or without autodiff), one pass each way; burn's goes through the
/// library's scalar `erf` and a chain of tensor operations (30 ms forward + backward per
/// feed-forward layer of a training step). Other backends get burn's `gelu`.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let (handle, xf) = match (tracked(&x), plain(&x)) {
        (Some((xa, xf)), _) => (Some(xa), xf),
        (None, Some(xf)) => (None, xf),
        (None, None) => return burn::tensor::activation::gelu(x),
    };
    drop(x);
    let values = xf.storage::<f32>();
    let mut out = vec![0.0f32; values.len()];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(k, o)| {
        let start = k * CHUNK;
        for (o, &v) in o.iter_mut().zip(&values[start..]) {
            *o = gelu_and_slope(v).0;
        }
    });
    let y = flex_from_vec(out, xf.layout().shape().to_vec());
    let Some(xa) = handle else { return Tensor::from_primitive::<Flex>(y) };
    let output = match GeluBackward
        .prepare::<burn::backend::autodiff::checkpoint::strategy::NoCheckpointing>([xa.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(GeluState { x: xf }, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive::<Autodiff<Flex>>(output)
}

/// Softmax over the last axis of `rows` rows of `width` values, each first multiplied by `scale`.
fn softmax_rows(x: &[f32], out: &mut [f32], width: usize, scale: f32) {
    out.par_chunks_mut(width * 64).enumerate().for_each(|(k, block)| {
        let start = k * width * 64;
        for (r, o) in block.chunks_mut(width).enumerate() {
            let row = &x[start + r * width..start + (r + 1) * width];
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) * scale;
            for (o, &v) in o.iter_mut().zip(row) {
                *o = exp_nonpositive(v * scale - max);
            }
            let total = lane_sum(o, o, o, |a, _, _| a) as f32;
            let inv = 1.0 / total;
            o.iter_mut().for_each(|v| *v *= inv);
        }
    });
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
        let [node_x] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let Some(node) = node_x else { return };
        let dy = contiguous_f32(&grad).expect("softmax: f32 gradient");
        let shape = ops.state.y.layout().shape().to_vec();
        let width = *shape.last().expect("rank >= 1");
        let (dy, y, scale) = (dy.storage::<f32>(), ops.state.y.storage::<f32>(), ops.state.scale);
        let mut dx = vec![0.0f32; y.len()];
        // dx = scale * y * (dy - sum(dy * y)) per row.
        dx.par_chunks_mut(width * 64).enumerate().for_each(|(k, block)| {
            let start = k * width * 64;
            for (r, o) in block.chunks_mut(width).enumerate() {
                let range = start + r * width..start + (r + 1) * width;
                let (g, p) = (&dy[range.clone()], &y[range]);
                let dot = lane_sum(g, p, p, |a, b, _| a * b) as f32;
                for ((o, &a), &b) in o.iter_mut().zip(g).zip(p) {
                    *o = scale * b * (a - dot);
                }
            }
        });
        grads.register::<Flex>(node.id, flex_from_vec(dx, shape));
    }
}

/// softmax(x * scale) over the last axis as one operation on the Flex backend, with or without
/// autodiff (the
/// attention weights: scores / sqrt(d_k), then softmax); burn's is a chain of max, subtract,
/// exp, sum and divide passes, each recorded for the backward. Other backends get burn's.
pub fn softmax_scaled<const D: usize>(x: Tensor<D>, scale: f32) -> Tensor<D> {
    let (handle, xf) = match (tracked(&x), plain(&x)) {
        (Some((xa, xf)), _) => (Some(xa), xf),
        (None, Some(xf)) => (None, xf),
        (None, None) => return burn::tensor::activation::softmax(x.mul_scalar(scale), D - 1),
    };
    drop(x);
    let shape = xf.layout().shape().to_vec();
    let width = *shape.last().expect("rank >= 1");
    let mut out = vec![0.0f32; xf.storage::<f32>().len()];
    softmax_rows(xf.storage::<f32>(), &mut out, width, scale);
    let y = flex_from_vec(out, shape);
    let Some(xa) = handle else { return Tensor::from_primitive::<Flex>(y) };
    let output = match SoftmaxBackward
        .prepare::<burn::backend::autodiff::checkpoint::strategy::NoCheckpointing>([xa.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(SoftmaxState { y: y.clone(), scale }, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive::<Autodiff<Flex>>(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_the_library_within_two_ulp_over_the_negative_range() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let (want, got) = (x.exp() as f64, exp_nonpositive(x) as f64);
            worst = worst.max(((got - want) / want).abs());
            x += 0.000_37;
        }
        assert!(worst < 2.5e-7, "largest relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(5.0), 1.0, "positive inputs are clamped to 0");
        assert!(exp_nonpositive(-200.0) < 1e-37);
    }

    #[test]
    fn elu_and_its_gradient_from_the_output() {
        for &z in &[-30.0f32, -2.0, -0.5, -1e-6, 0.0, 1e-6, 0.5, 3.0] {
            let y = elu_scalar(z);
            let want = if z > 0.0 { z } else { z.exp() - 1.0 };
            assert!((y - want).abs() <= 1e-6 * want.abs().max(1.0), "elu({z}) = {y}, want {want}");
            let dwant = if z > 0.0 { 1.0 } else { z.exp() };
            assert!((elu_grad_from_output(y) - dwant).abs() < 1e-6, "elu'({z})");
        }
    }

    #[test]
    fn erf_and_gelu_slope_match_the_definitions() {
        // erf against a high-precision series (|z| <= 3) and its limits.
        let erf_series = |z: f64| {
            let (mut term, mut sum, mut k) = (z, z, 0.0);
            while term.abs() > 1e-17 {
                k += 1.0;
                term *= -z * z / k;
                sum += term / (2.0 * k + 1.0);
            }
            2.0 / std::f64::consts::PI.sqrt() * sum
        };
        let mut z = -3.0f64;
        while z <= 3.0 {
            let err = (erf_approx(z as f32) as f64 - erf_series(z)).abs();
            assert!(err < 3e-7, "erf({z}): error {err}");
            z += 0.01;
        }
        assert_eq!(erf_approx(9.0), 1.0);
        assert_eq!(erf_approx(-9.0), -1.0);
        // The slope is the derivative of the value (central differences).
        for &x in &[-4.0f32, -1.3, -0.2, 0.0, 0.4, 1.7, 5.0] {
            let h = 1e-2f32;
            let numeric = (gelu_and_slope(x + h).0 - gelu_and_slope(x - h).0) / (2.0 * h);
            assert!((numeric - gelu_and_slope(x).1).abs() < 2e-3, "slope at {x}");
        }
    }
}
