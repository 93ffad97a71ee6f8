//! Matrix products with `gemm` called directly, and the dense (linear) layer built on them.
//!
//! burn-flex allocates every matrix product's output as a `Vec<u8>` and then copies it into a
//! 16-byte-aligned buffer (`Bytes::from_bytes_vec`): 8 % of a training step went into that copy
//! (docs/flamegraphs/training-step-avx2.svg), on top of the transposed copies its backward makes.
//! The dense layers of the transformer encoder (queries, keys, values, output, and the
//! feed-forward pair) run here instead: forward, input gradient and weight gradient each one
//! `gemm` per block of rows, straight into the result.

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
}
