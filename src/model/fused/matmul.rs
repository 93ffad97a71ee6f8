//! Matrix products with `gemm` called directly, and the dense (linear) layer built on them.
//!
//! burn-flex allocates every matrix product's output as a `Vec<u8>` and then copies it into a
//! 16-byte-aligned buffer (`Bytes::from_bytes_vec`): 8 % of a training step went into that copy
//! (docs/flamegraphs/training-step-avx2.svg), on top of the transposed copies its backward makes.
//! The dense layers of the transformer encoder (queries, keys, values, output, and the
//! feed-forward pair) run here instead: forward, input gradient and weight gradient each one
//! `gemm` per block of rows, straight into the result. So do the attention's two products per
//! head, which read the dense layers' outputs in place (a head is a block of their columns)
//! instead of copying every head out first.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::{contiguous_f32, flex_from_vec, flex_values, record, tracked};

/// A matrix operand of [`product`]: its first element and the distance (in elements) between
/// consecutive rows (`rows`: each row contiguous) or consecutive columns (`columns`: each column
/// contiguous, i.e. the transpose of a row-major matrix).
#[derive(Clone, Copy)]
pub(super) struct Operand {
    ptr: *const f32,
    col_stride: isize,
    row_stride: isize,
}

impl Operand {
    pub(super) fn rows(ptr: *const f32, row_stride: usize) -> Operand {
        Operand { ptr, col_stride: 1, row_stride: row_stride as isize }
    }

    pub(super) fn columns(ptr: *const f32, col_stride: usize) -> Operand {
        Operand { ptr, col_stride: col_stride as isize, row_stride: 1 }
    }
}

/// dst (m x n, rows `dst_row_stride` apart, each contiguous) = lhs (m x k) x rhs (k x n), or
/// `+=` with `accumulate` (without it the destination is never read, so it may be
/// uninitialised). One thread: the callers parallelise over images.
///
/// # Safety
/// Every element the shapes and strides address must lie inside its operand's allocation.
pub(super) unsafe fn product(
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    dst_row_stride: usize,
    accumulate: bool,
    lhs: Operand,
    rhs: Operand,
) {
    // SAFETY: the caller's guarantee.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_row_stride as isize,
            accumulate,
            lhs.ptr,
            lhs.col_stride,
            lhs.row_stride,
            rhs.ptr,
            rhs.col_stride,
            rhs.row_stride,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Rows of the input per task of [`linear_forward`] and [`linear_input_gradient`]: enough that a
/// task's gemm amortises packing the weight, few enough to share 4,608 rows between cores.
const ROWS_PER_TASK: usize = 128;

/// y = x W + b for `x` [m, k] (rows contiguous), `weight` [k, n] (burn's layout), `bias` [n].
pub fn linear_forward(x: &[f32], weight: &[f32], bias: &[f32], [m, k, n]: [usize; 3]) -> Vec<f32> {
    assert_eq!((x.len(), weight.len(), bias.len()), (m * k, k * n, n), "linear: sizes");
    let mut y: Vec<f32> = Vec::with_capacity(m * n);
    y.spare_capacity_mut()[..m * n].par_chunks_mut(ROWS_PER_TASK * n).enumerate().for_each(|(t, out)| {
        let rows = out.len() / n;
        let dst = out.as_mut_ptr() as *mut f32;
        // SAFETY: dst is rows x n; x's rows t*ROWS_PER_TASK.. are rows x k; weight is k x n. The
        // product writes every element of dst without reading it.
        unsafe {
            product(
                [rows, n, k],
                dst,
                n,
                false,
                Operand::rows(x.as_ptr().add(t * ROWS_PER_TASK * k), k),
                Operand::rows(weight.as_ptr(), n),
            );
            for r in 0..rows {
                for (j, &b) in bias.iter().enumerate() {
                    *dst.add(r * n + j) += b;
                }
            }
        }
    });
    // SAFETY: every one of the m x n elements was written above.
    unsafe { y.set_len(m * n) };
    y
}

/// dx = dy W^T: [m, n] x [n, k] -> [m, k].
pub fn linear_input_gradient(dy: &[f32], weight: &[f32], [m, k, n]: [usize; 3]) -> Vec<f32> {
    assert_eq!((dy.len(), weight.len()), (m * n, k * n), "linear: sizes");
    let mut dx: Vec<f32> = Vec::with_capacity(m * k);
    dx.spare_capacity_mut()[..m * k].par_chunks_mut(ROWS_PER_TASK * k).enumerate().for_each(|(t, out)| {
        let rows = out.len() / k;
        // SAFETY: out is rows x k; dy's rows are rows x n; W^T (n x k) is W read by columns.
        unsafe {
            product(
                [rows, k, n],
                out.as_mut_ptr() as *mut f32,
                k,
                false,
                Operand::rows(dy.as_ptr().add(t * ROWS_PER_TASK * n), n),
                Operand::columns(weight.as_ptr(), n),
            );
        }
    });
    // SAFETY: written above.
    unsafe { dx.set_len(m * k) };
    dx
}

/// dW = x^T dy: [k, m] x [m, n] -> [k, n], in blocks of weight rows (each a whole sum over m, so
/// no partial results to add up).
pub fn linear_weight_gradient(x: &[f32], dy: &[f32], [m, k, n]: [usize; 3]) -> Vec<f32> {
    assert_eq!((x.len(), dy.len()), (m * k, m * n), "linear: sizes");
    let block = k.div_ceil(rayon::current_num_threads().max(1) * 2).max(8);
    let mut dw: Vec<f32> = Vec::with_capacity(k * n);
    dw.spare_capacity_mut()[..k * n].par_chunks_mut(block * n).enumerate().for_each(|(t, out)| {
        let rows = out.len() / n;
        // SAFETY: out is rows x n; x^T's rows t*block.. are x's columns, read with stride k.
        unsafe {
            product(
                [rows, n, m],
                out.as_mut_ptr() as *mut f32,
                n,
                false,
                Operand::columns(x.as_ptr().add(t * block), k),
                Operand::rows(dy.as_ptr(), n),
            );
        }
    });
    // SAFETY: written above.
    unsafe { dw.set_len(k * n) };
    dw
}

/// db = the column sums of dy [m, n], in f64 per block of rows.
fn column_sums(dy: &[f32], n: usize) -> Vec<f32> {
    let sums = dy
        .par_chunks(ROWS_PER_TASK * n)
        .map(|block| {
            let mut s = vec![0.0f64; n];
            for row in block.chunks_exact(n) {
                for (a, &v) in s.iter_mut().zip(row) {
                    *a += v as f64;
                }
            }
            s
        })
        .reduce(
            || vec![0.0f64; n],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    sums.into_iter().map(|v| v as f32).collect()
}

#[derive(Debug, Clone)]
struct LinearState {
    x: FlexTensor,
    weight: FlexTensor,
    dims: [usize; 3],
}

#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 3> for LinearBackward {
    type State = LinearState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let dy = contiguous_f32(&grad).expect("linear: f32 gradient");
        let LinearState { x, weight, dims } = ops.state;
        let [_, k, n] = dims;
        if let Some(node) = node_w {
            let dw = linear_weight_gradient(x.storage::<f32>(), dy.storage::<f32>(), dims);
            grads.register::<Flex>(node.id, flex_from_vec(dw, vec![k, n]));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, flex_from_vec(column_sums(dy.storage::<f32>(), n), vec![n]));
        }
        if let Some(node) = node_x {
            let dx = linear_input_gradient(dy.storage::<f32>(), weight.storage::<f32>(), dims);
            grads.register::<Flex>(node.id, flex_from_vec(dx, x.layout().shape().to_vec()));
        }
    }
}

/// A dense layer, x W + b over the last dimension of `x` (burn's `linear` with a bias), as one
/// operation on the Flex backend, with or without autodiff. Anything else (another backend or
/// element type, a weight without autodiff under an input with it) gets burn's `linear`.
pub fn linear<const D: usize>(x: Tensor<D>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<D> {
    let [k, n] = weight.dims();
    let shape = x.dims();
    if D < 2 || shape[D - 1] != k || bias.dims() != [n] {
        return burn::tensor::module::linear(x, weight, Some(bias));
    }
    let m = shape[..D - 1].iter().product::<usize>();
    let dims = [m, k, n];
    let mut out_shape = shape.to_vec();
    out_shape[D - 1] = n;
    if x.device().is_autodiff() {
        let (Some((xa, xf)), Some((wa, wf)), Some((ba, bf))) = (tracked(&x), tracked(&weight), tracked(&bias)) else {
            return burn::tensor::module::linear(x, weight, Some(bias));
        };
        drop((x, weight, bias));
        let y = flex_from_vec(linear_forward(xf.storage(), wf.storage(), bf.storage(), dims), out_shape);
        return record(
            LinearBackward,
            [xa.node(), wa.node(), ba.node()],
            || LinearState { x: xf, weight: wf, dims },
            y,
        );
    }
    let (Some((None, xf)), Some((None, wf)), Some((None, bf))) =
        (flex_values(&x), flex_values(&weight), flex_values(&bias))
    else {
        return burn::tensor::module::linear(x, weight, Some(bias));
    };
    let y = linear_forward(xf.storage(), wf.storage(), bf.storage(), dims);
    Tensor::from_primitive::<Flex>(flex_from_vec(y, out_shape))
}

/// A destination shared by tasks that write disjoint blocks of it.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: the tasks given one write disjoint elements (each its own head's columns).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the callers' offsets lie inside the allocation.
        unsafe { self.0.add(offset) }
    }
}

/// The shape of an attention's heads: `batch` x `tokens`, `heads` of `d_k` features each, laid
/// out as the dense layers give them ([batch, tokens, heads x d_k], a head's features side by
/// side) so no head is ever copied out.
#[derive(Debug, Clone, Copy)]
struct Heads {
    batch: usize,
    tokens: usize,
    heads: usize,
    d_k: usize,
}

impl Heads {
    fn width(self) -> usize {
        self.heads * self.d_k
    }

    /// Offset of head `hd` of image `b`'s first token.
    fn offset(self, b: usize, hd: usize) -> usize {
        b * self.tokens * self.width() + hd * self.d_k
    }
}

/// scores[b, h] = Q_bh K_bh^T, [tokens x tokens] per image and head.
fn scores_forward(q: &[f32], k: &[f32], s: Heads) -> Vec<f32> {
    let (t, w) = (s.tokens, s.width());
    let mut out: Vec<f32> = Vec::with_capacity(s.batch * s.heads * t * t);
    out.spare_capacity_mut()[..s.batch * s.heads * t * t].par_chunks_mut(t * t).enumerate().for_each(|(bh, dst)| {
        let o = s.offset(bh / s.heads, bh % s.heads);
        // SAFETY: dst is t x t; Q_bh is t x d_k with rows w apart; K_bh^T reads K_bh by columns.
        unsafe {
            product(
                [t, t, s.d_k],
                dst.as_mut_ptr() as *mut f32,
                t,
                false,
                Operand::rows(q.as_ptr().add(o), w),
                Operand::columns(k.as_ptr().add(o), w),
            )
        }
    });
    // SAFETY: every block written above.
    unsafe { out.set_len(s.batch * s.heads * t * t) };
    out
}

/// `out[b, :, head h] = X_bh Y_bh` (X_bh t x t from `square`, read transposed when
/// `transpose_square`; Y_bh from `heads`, t x d_k with rows `width` apart), written in the dense
/// layers' layout [batch, tokens, width]: the context (weights x values) and the gradients of
/// both attention products.
fn heads_product(square: &[f32], transpose_square: bool, heads: &[f32], s: Heads) -> Vec<f32> {
    let (t, w) = (s.tokens, s.width());
    let n = s.batch * t * w;
    let mut out: Vec<f32> = Vec::with_capacity(n);
    let dst = SharedOut(out.as_mut_ptr());
    (0..s.batch * s.heads).into_par_iter().for_each(|bh| {
        let o = s.offset(bh / s.heads, bh % s.heads);
        let sq = square[bh * t * t..].as_ptr();
        let lhs = if transpose_square { Operand::columns(sq, t) } else { Operand::rows(sq, t) };
        // SAFETY: this task writes head h's d_k columns of image b's t rows (rows w apart), which
        // no other task writes; X_bh is t x t, Y_bh t x d_k with rows w apart.
        unsafe { product([t, s.d_k, t], dst.at(o), w, false, lhs, Operand::rows(heads.as_ptr().add(o), w)) }
    });
    // SAFETY: the heads cover every column of every row.
    unsafe { out.set_len(n) };
    out
}

#[derive(Debug, Clone)]
struct HeadsState {
    a: FlexTensor,
    b: FlexTensor,
    shape: Heads,
}

/// Backward of [`attention_scores`]: dQ_bh = dS_bh K_bh, dK_bh = dS_bh^T Q_bh.
#[derive(Debug)]
struct ScoresBackward;

impl Backward<Flex, 2> for ScoresBackward {
    type State = HeadsState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_q, node_k] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let ds = contiguous_f32(&grad).expect("attention scores: f32 gradient");
        let HeadsState { a: q, b: k, shape } = ops.state;
        let dims = vec![shape.batch, shape.tokens, shape.width()];
        if let Some(node) = node_q {
            let dq = heads_product(ds.storage(), false, k.storage(), shape);
            grads.register::<Flex>(node.id, flex_from_vec(dq, dims.clone()));
        }
        if let Some(node) = node_k {
            let dk = heads_product(ds.storage(), true, q.storage(), shape);
            grads.register::<Flex>(node.id, flex_from_vec(dk, dims));
        }
    }
}

/// Backward of [`attention_context`]: dW_bh = dC_bh V_bh^T, dV_bh = W_bh^T dC_bh.
#[derive(Debug)]
struct ContextBackward;

impl Backward<Flex, 2> for ContextBackward {
    type State = HeadsState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_w, node_v] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let dc = contiguous_f32(&grad).expect("attention context: f32 gradient");
        let HeadsState { a: weights, b: v, shape } = ops.state;
        if let Some(node) = node_w {
            // dC_bh V_bh^T has the shape of the scores: the scores' forward on (dC, V).
            let dw = scores_forward(dc.storage(), v.storage(), shape);
            grads.register::<Flex>(
                node.id,
                flex_from_vec(dw, vec![shape.batch, shape.heads, shape.tokens, shape.tokens]),
            );
        }
        if let Some(node) = node_v {
            let dv = heads_product(weights.storage(), true, dc.storage(), shape);
            grads.register::<Flex>(node.id, flex_from_vec(dv, vec![shape.batch, shape.tokens, shape.width()]));
        }
    }
}

/// Attention scores Q K^T per head, from the query and key layers' outputs [batch, tokens,
/// heads x d_k] as they are: [batch, heads, tokens, tokens]. burn's way (reshape, swap, matmul)
/// copies each head out and the product's output once more.
pub fn attention_scores(q: Tensor<3>, k: Tensor<3>, heads: usize) -> Tensor<4> {
    let [batch, tokens, width] = q.dims();
    let burns = |q: Tensor<3>, k: Tensor<3>| {
        let split = |x: Tensor<3>| x.reshape([batch, tokens, heads, width / heads]).swap_dims(1, 2);
        split(q).matmul(split(k).transpose())
    };
    if heads == 0 || width % heads != 0 || k.dims() != [batch, tokens, width] {
        return burns(q, k);
    }
    let shape = Heads { batch, tokens, heads, d_k: width / heads };
    let (Some((qa, qf)), Some((ka, kf))) = (flex_values(&q), flex_values(&k)) else {
        return burns(q, k);
    };
    let y = flex_from_vec(scores_forward(qf.storage(), kf.storage(), shape), vec![batch, heads, tokens, tokens]);
    match (qa, ka) {
        (Some(qa), Some(ka)) => {
            drop((q, k));
            record(ScoresBackward, [qa.node(), ka.node()], || HeadsState { a: qf, b: kf, shape }, y)
        }
        (None, None) => Tensor::from_primitive::<Flex>(y),
        _ => burns(q, k),
    }
}

/// The attention's context, weights x values per head, written straight into the layout the
/// output layer reads: weights [batch, heads, tokens, tokens] and the value layer's output
/// [batch, tokens, heads x d_k] give [batch, tokens, heads x d_k].
pub fn attention_context(weights: Tensor<4>, v: Tensor<3>) -> Tensor<3> {
    let [batch, heads, tokens, _] = weights.dims();
    let [_, _, width] = v.dims();
    let burns = |weights: Tensor<4>, v: Tensor<3>| {
        let split = v.reshape([batch, tokens, heads, width / heads]).swap_dims(1, 2);
        weights.matmul(split).swap_dims(1, 2).reshape([batch, tokens, width])
    };
    if heads == 0 || width % heads != 0 || v.dims() != [batch, tokens, width] || weights.dims()[3] != tokens {
        return burns(weights, v);
    }
    let shape = Heads { batch, tokens, heads, d_k: width / heads };
    let (Some((wa, wf)), Some((va, vf))) = (flex_values(&weights), flex_values(&v)) else {
        return burns(weights, v);
    };
    let y = flex_from_vec(heads_product(wf.storage(), false, vf.storage(), shape), vec![batch, tokens, width]);
    match (wa, va) {
        (Some(wa), Some(va)) => {
            drop((weights, v));
            record(ContextBackward, [wa.node(), va.node()], || HeadsState { a: wf, b: vf, shape }, y)
        }
        (None, None) => Tensor::from_primitive::<Flex>(y),
        _ => burns(weights, v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.inner().try_into_vec_as::<f32>().expect("values")
    }

    fn worst(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max) / scale
    }

    /// Against burn's `linear` in value and in the gradient of every input, on shapes of one
    /// task and of several (rows not a multiple of a task, weight rows not of a block).
    #[test]
    fn it_is_burns_linear_in_value_and_every_gradient() {
        let _rng = crate::model::device_rng_lock();
        let ad = Device::flex().autodiff();
        ad.seed(5);
        for [batch, tokens, k, n] in [[2usize, 3, 5, 7], [3, 101, 37, 24], [32, 144, 128, 256]] {
            let x = Tensor::<3>::random([batch, tokens, k], Distribution::Normal(0.0, 1.0), &ad).require_grad();
            let w = Tensor::<2>::random([k, n], Distribution::Normal(0.0, 0.3), &ad).require_grad();
            let b = Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), &ad).require_grad();
            let g = Tensor::<3>::random([batch, tokens, n], Distribution::Normal(0.0, 1.0), &ad);
            let run = |y: Tensor<3>| {
                let grads = (y.clone() * g.clone()).sum().backward();
                let grad_of = |t: Vec<f32>| t;
                (
                    values(y),
                    grad_of(x.grad(&grads).expect("dx").try_into_vec_as().expect("dx")),
                    grad_of(w.grad(&grads).expect("dw").try_into_vec_as().expect("dw")),
                    grad_of(b.grad(&grads).expect("db").try_into_vec_as().expect("db")),
                )
            };
            let ours = run(linear(x.clone(), w.clone(), b.clone()));
            let burns = run(burn::tensor::module::linear(x.clone(), w.clone(), Some(b.clone())));
            for (a, c, what) in [
                (&ours.0, &burns.0, "output"),
                (&ours.1, &burns.1, "input gradient"),
                (&ours.2, &burns.2, "weight gradient"),
                (&ours.3, &burns.3, "bias gradient"),
            ] {
                let d = worst(a, c);
                assert!(d < 1e-5, "[{batch}, {tokens}, {k}] x [{k}, {n}], {what}: relative difference {d}");
            }
            // Without autodiff, the same values.
            let plain = linear(x.clone().inner(), w.clone().inner(), b.clone().inner());
            let d = worst(&plain.try_into_vec_as::<f32>().expect("values"), &burns.0);
            assert!(d < 1e-5, "inference: {d}");
        }
    }

    /// Both attention products against burn's reshape / swap / matmul, in value and in the
    /// gradient of each input, with and without autodiff.
    #[test]
    fn attention_products_are_burns_per_head_in_value_and_every_gradient() {
        let _rng = crate::model::device_rng_lock();
        let ad = Device::flex().autodiff();
        ad.seed(8);
        for [batch, tokens, heads, d_k] in [[2usize, 5, 1, 3], [3, 17, 4, 8], [4, 144, 4, 32]] {
            let width = heads * d_k;
            let normal =
                |shape: [usize; 3]| Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &ad).require_grad();
            let (q, k, v) =
                (normal([batch, tokens, width]), normal([batch, tokens, width]), normal([batch, tokens, width]));
            let gs = Tensor::<4>::random([batch, heads, tokens, tokens], Distribution::Normal(0.0, 1.0), &ad);
            let gc = Tensor::<3>::random([batch, tokens, width], Distribution::Normal(0.0, 1.0), &ad);
            let split = |x: Tensor<3>| x.reshape([batch, tokens, heads, d_k]).swap_dims(1, 2);
            // Scores, then a softmax so the context's weights are weights.
            let run = |fused: bool| {
                let s = if fused {
                    attention_scores(q.clone(), k.clone(), heads)
                } else {
                    split(q.clone()).matmul(split(k.clone()).transpose())
                };
                let w = burn::tensor::activation::softmax(s.clone(), 3);
                let c = if fused {
                    attention_context(w, v.clone())
                } else {
                    w.matmul(split(v.clone())).swap_dims(1, 2).reshape([batch, tokens, width])
                };
                let loss = (s.clone() * gs.clone()).sum() + (c.clone() * gc.clone()).sum();
                let grads = loss.backward();
                let g = |t: &Tensor<3>| t.grad(&grads).expect("gradient").try_into_vec_as::<f32>().expect("values");
                (values(s), values(c), g(&q), g(&k), g(&v))
            };
            let (ours, burns) = (run(true), run(false));
            for (a, b, what) in [
                (&ours.0, &burns.0, "scores"),
                (&ours.1, &burns.1, "context"),
                (&ours.2, &burns.2, "query gradient"),
                (&ours.3, &burns.3, "key gradient"),
                (&ours.4, &burns.4, "value gradient"),
            ] {
                let d = worst(a, b);
                assert!(d < 1e-5, "[{batch}, {tokens}, {heads} x {d_k}], {what}: relative difference {d}");
            }
            let (pq, pk, pv) = (q.clone().inner(), k.clone().inner(), v.clone().inner());
            let s = attention_scores(pq, pk, heads);
            let d = worst(&s.clone().try_into_vec_as::<f32>().expect("values"), &burns.0);
            assert!(d < 1e-5, "scores without autodiff: {d}");
            let c = attention_context(burn::tensor::activation::softmax(s, 3), pv);
            let d = worst(&c.try_into_vec_as::<f32>().expect("values"), &burns.1);
            assert!(d < 1e-5, "context without autodiff: {d}");
        }
    }
}
