//! The 3 x 3 convolution (stride 1, padding 1), forward and backward, as im2col tiles that fit
//! the core's L2 cache times the weights, with `gemm` called directly.
//!
//! burn-flex's own convolution converts every input to NHWC first and its input gradient is a
//! general transposed convolution; both allocate and zero whole-batch buffers. Here the forward
//! writes straight into the output (bias and, at inference, ELU applied to each tile while it is
//! still in cache), and the input gradient is W^T times the output gradient per tile, scattered
//! back (col2im).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::math::{elu_scalar, simd};
use super::matmul::{product, Operand};
use super::{channel_sums, contiguous_f32, flex_from_vec, lane_sum, plain, record, tracked, zeroed};

/// `LENS_INSPECT_CONV=burn` sends the forward convolution and its input gradient back to
/// burn-flex's own kernels: the switch that measures what these kernels gain (docs/speed.md).
fn use_burn_conv() -> bool {
    static BURN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *BURN.get_or_init(|| std::env::var("LENS_INSPECT_CONV").is_ok_and(|v| v.trim() == "burn"))
}

/// Floats in one im2col tile of the forward and input-gradient kernels (512 KB): whole output
/// rows, as many as fit, so the tile and its share of the output stay in L2.
const TILE_FLOATS: usize = 128 * 1024;

/// Output rows per tile for an input of `taps` (= channels x 9) rows and width `w`.
fn rows_per_tile(taps: usize, w: usize, h: usize) -> usize {
    (TILE_FLOATS / (taps * w)).clamp(1, h)
}

/// y = conv3x3(x, weight) + bias, then ELU when `elu` (inference with batch norm folded into
/// the weights). `x` is [n, ci, h, w], `weight` [co, ci, 3, 3], the result [n, co, h, w].
pub fn conv3x3_forward(x: &[f32], weight: &[f32], bias: &[f32], dims: [usize; 5], elu: bool) -> Vec<f32> {
    let [n, ci, co, h, w] = dims;
    let (hw, taps) = (h * w, ci * 9);
    assert_eq!(x.len(), n * ci * hw, "input size");
    assert_eq!(weight.len(), co * taps, "weight size");
    assert_eq!(bias.len(), co, "bias size");
    let rows_per_tile = rows_per_tile(taps, w, h);
    let mut out: Vec<f32> = Vec::with_capacity(n * co * hw);
    out.spare_capacity_mut()[..n * co * hw].par_chunks_mut(co * hw).zip(x.par_chunks(ci * hw)).for_each_init(
        || vec![0.0f32; taps * rows_per_tile * w],
        |col, (yi, xi)| {
            let yp = yi.as_mut_ptr() as *mut f32;
            for row0 in (0..h).step_by(rows_per_tile) {
                let rows = rows_per_tile.min(h - row0);
                let len = rows * w;
                im2col_rows(xi, &mut col[..taps * len], [ci, h, w], row0, rows);
                // y[c, row0 * w + t] = sum_tap weight[c, tap] * col[tap, t], written without
                // reading the (uninitialised) destination.
                // SAFETY: yp addresses this image's co x hw outputs; rows row0..row0+rows of
                // every channel lie inside it; weight is co x taps and col taps x len.
                unsafe {
                    product(
                        [co, len, taps],
                        yp.add(row0 * w),
                        hw,
                        false,
                        Operand::rows(weight.as_ptr(), taps),
                        Operand::rows(col.as_ptr(), len),
                    );
                }
                for (c, &b) in bias.iter().enumerate() {
                    // SAFETY: just written by the product above.
                    let tile = unsafe { std::slice::from_raw_parts_mut(yp.add(c * hw + row0 * w), len) };
                    simd(
                        #[inline(always)]
                        || {
                            if elu {
                                tile.iter_mut().for_each(|v| *v = elu_scalar(*v + b));
                            } else {
                                tile.iter_mut().for_each(|v| *v += b);
                            }
                        },
                    )
                }
            }
        },
    );
    // SAFETY: every image's every channel and row was written above.
    unsafe { out.set_len(n * co * hw) };
    out
}

/// d(loss)/d(x) of a 3 x 3 convolution given its weights [co, ci, 3, 3] and the output
/// gradient `dy` [n, co, h, w]: per tile, W^T dy as im2col columns, added back to the pixels
/// they came from (col2im).
pub fn conv3x3_input_gradient(dy: &[f32], weight: &[f32], dims: [usize; 5]) -> Vec<f32> {
    let [n, ci, co, h, w] = dims;
    let (hw, taps) = (h * w, ci * 9);
    assert_eq!(dy.len(), n * co * hw, "gradient size");
    assert_eq!(weight.len(), co * taps, "weight size");
    let rows_per_tile = rows_per_tile(taps, w, h);
    // Each image's gradient is zeroed by the thread that accumulates into it (see `par_filled`).
    let mut dx: Vec<f32> = Vec::with_capacity(n * ci * hw);
    dx.spare_capacity_mut()[..n * ci * hw].par_chunks_mut(ci * hw).zip(dy.par_chunks(co * hw)).for_each_init(
        || vec![0.0f32; taps * rows_per_tile * w],
        |col, (dxi, dyi)| {
            let dxi = zeroed(dxi);
            for row0 in (0..h).step_by(rows_per_tile) {
                let rows = rows_per_tile.min(h - row0);
                let len = rows * w;
                // col[tap, t] = sum_c weight[c, tap] * dy[c, row0 * w + t]
                // SAFETY: col holds taps x len; weight is co x taps (read transposed); dyi's
                // rows row0..row0+rows of every channel lie inside it.
                unsafe {
                    product(
                        [taps, len, co],
                        col.as_mut_ptr(),
                        len,
                        false,
                        Operand::columns(weight.as_ptr(), taps),
                        Operand::rows(dyi.as_ptr().add(row0 * w), hw),
                    );
                }
                col2im_rows(&col[..taps * len], dxi, [ci, h, w], row0, rows);
            }
        },
    );
    // SAFETY: every image's gradient was initialised by `zeroed` above.
    unsafe { dx.set_len(n * ci * hw) };
    dx
}

/// Adds im2col columns back onto the pixels they were read from: the transpose of
/// [`im2col_rows`] (contributions outside the image are dropped, as padding read zeros).
fn col2im_rows(col: &[f32], dx: &mut [f32], [ci, h, w]: [usize; 3], row0: usize, rows: usize) {
    let len = rows * w;
    for c in 0..ci {
        let plane = &mut dx[c * h * w..(c + 1) * h * w];
        for ky in 0..3 {
            for kx in 0..3 {
                let src_tap = &col[(c * 9 + ky * 3 + kx) * len..(c * 9 + ky * 3 + kx + 1) * len];
                for r in 0..rows {
                    let sy = (row0 + r + ky) as isize - 1;
                    if sy < 0 || sy >= h as isize {
                        continue;
                    }
                    let src = &src_tap[r * w..(r + 1) * w];
                    let dst = &mut plane[sy as usize * w..(sy as usize + 1) * w];
                    let (d, s) = match kx {
                        0 => (&mut dst[..w - 1], &src[1..]),
                        1 => (&mut dst[..], src),
                        _ => (&mut dst[1..], &src[..w - 1]),
                    };
                    d.iter_mut().zip(s).for_each(|(d, s)| *d += s);
                }
            }
        }
    }
}

/// A 3 x 3 convolution (stride 1, padding 1) with bias, then ELU, without gradients: the
/// inference path with batch norm folded into `weight` and `bias`. Gives the inputs back
/// (`Err`) for anything but plain f32 Flex tensors, so the caller can use burn's.
#[allow(clippy::type_complexity)]
pub fn conv3x3_elu_inference(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
) -> Result<Tensor<4>, Box<(Tensor<4>, Tensor<4>, Tensor<1>)>> {
    let [n, ci, h, w] = x.dims();
    let [co, wci, kh, kw] = weight.dims();
    if wci != ci || kh != 3 || kw != 3 || h < 2 || w < 2 || use_burn_conv() {
        return Err(Box::new((x, weight, bias)));
    }
    let (Some(xf), Some(wf), Some(bf)) = (plain(&x), plain(&weight), plain(&bias)) else {
        return Err(Box::new((x, weight, bias)));
    };
    drop((x, weight, bias));
    let y = conv3x3_forward(xf.storage::<f32>(), wf.storage::<f32>(), bf.storage::<f32>(), [n, ci, co, h, w], true);
    Ok(Tensor::from_primitive::<Flex>(flex_from_vec(y, vec![n, co, h, w])))
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
                        product(
                            [co, taps, len],
                            acc.as_mut_ptr(),
                            taps,
                            true,
                            Operand::rows(dyi.as_ptr().add(row0 * w), hw),
                            Operand::columns(col.as_ptr(), len),
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
            let sums = channel_sums(
                dy.storage::<f32>(),
                co,
                h * w,
                #[inline(always)]
                |_, v| lane_sum(v, v, v, |a, _, _| a),
            );
            let db: Vec<f32> = sums.iter().map(|&v| v as f32).collect();
            grads.register::<Flex>(node.id, flex_from_vec(db, vec![co]));
        }
        if let Some(node) = node_x {
            let dx = if use_burn_conv() {
                use burn::backend::ops::ModuleOps;
                let options = burn::tensor::ops::ConvTransposeOptions::new([1, 1], [1, 1], [0, 0], [1, 1], 1);
                <Flex as ModuleOps<Flex>>::conv_transpose2d(dy, state.weight, None, options)
            } else {
                let dx = conv3x3_input_gradient(dy.storage::<f32>(), state.weight.storage::<f32>(), state.dims);
                flex_from_vec(dx, vec![n, ci, h, w])
            };
            grads.register::<Flex>(node.id, dx);
        }
    }
}

/// A 3 x 3 convolution with stride 1, padding 1 and a bias, as one autodiff operation on the
/// Flex backend: [`conv3x3_forward`], [`conv3x3_input_gradient`] and
/// [`conv3x3_weight_gradient`]. Gives the inputs back (`Err`) for anything else.
#[allow(clippy::type_complexity)]
pub fn conv3x3_train(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
) -> Result<Tensor<4>, Box<(Tensor<4>, Tensor<4>, Tensor<1>)>> {
    let [n, ci, h, w] = x.dims();
    let [co, wci, kh, kw] = weight.dims();
    if wci != ci || kh != 3 || kw != 3 || h < 2 || w < 2 {
        return Err(Box::new((x, weight, bias)));
    }
    let (Some((xa, xf)), Some((wa, wf)), Some((ba, bf))) = (tracked(&x), tracked(&weight), tracked(&bias)) else {
        return Err(Box::new((x, weight, bias)));
    };
    drop((x, weight, bias));
    let dims = [n, ci, co, h, w];
    let y = if use_burn_conv() {
        use burn::backend::ops::ModuleOps;
        let options = burn::tensor::ops::ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        <Flex as ModuleOps<Flex>>::conv2d(xf.clone(), wf.clone(), Some(bf), options)
    } else {
        flex_from_vec(
            conv3x3_forward(xf.storage::<f32>(), wf.storage::<f32>(), bf.storage::<f32>(), dims, false),
            vec![n, co, h, w],
        )
    };
    let state = || ConvState { x: xf, weight: wf, dims };
    Ok(record(Conv3x3Backward, [xa.node(), wa.node(), ba.node()], state, y))
}
