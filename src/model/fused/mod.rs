//! Hand-written operations for where burn's CPU backend (Flex) spent most of a training step
//! of the Lens Detector, each a single autodiff operation with a hand-written backward (or a
//! single pass without gradients): batch norm + ELU, the 3 x 3 convolution's weight gradient,
//! the 2 x 2 max-pool, and the transformer's dropout, GELU, softmax, dense layers and attention
//! products. docs/speed.md has the measurements behind each, against PyTorch.
//!
//! Each applies only to f32 tensors on the Flex backend (the one this program runs on); on any
//! other backend or layout the callers fall back to burn's own operations, which compute the same
//! function: tests in `net.rs` and `encoder.rs` compare the two in value and gradient.

mod conv;
mod math;
mod matmul;
mod norm;
mod pool;
mod transformer;

pub use conv::{
    conv3x3_elu_inference, conv3x3_forward, conv3x3_input_gradient, conv3x3_train, conv3x3_weight_gradient,
};
pub use matmul::{
    attention_context, attention_scores, linear, linear_forward, linear_input_gradient, linear_weight_gradient,
};
pub use norm::{batch_norm_elu_train, elu_inference, BatchNormEluOutput};
pub use pool::max_pool2x2;
pub use transformer::{dropout, gelu, softmax_scaled};

use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::ops::{Backward, NodeGuard, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, BackendTypes, Flex};
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

/// A tensor of the Flex autodiff backend as the graph sees it.
type AdTensor = <Autodiff<Flex> as BackendTypes>::FloatTensorPrimitive;

/// Rows of work per rayon task: large enough that the split costs nothing next to the loop.
pub(super) const CHUNK: usize = 16 * 1024;

pub(super) fn contiguous_f32(t: &FlexTensor) -> Option<FlexTensor> {
    if t.dtype() != burn::tensor::DType::F32 {
        return None;
    }
    Some(if t.is_contiguous() && t.layout().start_offset() == 0 { t.clone() } else { t.to_contiguous() })
}

/// A tensor on the Flex autodiff backend as its autodiff handle (for the graph) and its f32
/// values laid out contiguously; `None` on any other backend or element type.
pub(super) fn tracked<const D: usize>(t: &Tensor<D>) -> Option<(AdTensor, FlexTensor)> {
    let handle = t.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
    let values = contiguous_f32(handle.primitive())?;
    Some((handle, values))
}

/// A tensor on the Flex backend without autodiff as contiguous f32 values.
pub(super) fn plain<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
    if t.device().is_autodiff() {
        return None;
    }
    contiguous_f32(&t.clone().try_into_primitive::<Flex>().ok()?)
}

/// A Flex f32 tensor's contiguous values, with its autodiff handle when it is on the autodiff
/// backend (for operations that run with and without gradients).
pub(super) fn flex_values<const D: usize>(t: &Tensor<D>) -> Option<(Option<AdTensor>, FlexTensor)> {
    match tracked(t) {
        Some((handle, values)) => Some((Some(handle), values)),
        None => plain(t).map(|values| (None, values)),
    }
}

/// `output` as the result of `op` on `parents` in the autodiff graph: with the backward state
/// (made only when some parent needs a gradient) or as a constant.
pub(super) fn record<Op, const N: usize, const D: usize>(
    op: Op,
    parents: [NodeGuard; N],
    state: impl FnOnce() -> Op::State,
    output: FlexTensor,
) -> Tensor<D>
where
    Op: Backward<Flex, N>,
{
    let output = match op.prepare::<NoCheckpointing>(parents).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(state(), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Tensor::from_primitive::<Autodiff<Flex>>(output)
}

pub(super) fn flex_from_vec(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// `len` floats built by `fill(k, chunk)` for chunks of `chunk` floats (chunk `k` starts at
/// `k * chunk`) on rayon's threads, each chunk zeroed by the thread that then fills it.
///
/// `vec![0.0; len]` followed by a parallel fill zeroes the whole buffer on the calling thread
/// first (mimalloc hands back reused memory, so it must `memset` it) while the other core waits:
/// on a 2-core Intel Xeon's AVX2 path that serial `memset` was 3.6 % of a training step's CPU
/// time and about 30 ms of its wall time (docs/speed.md). Zeroing each chunk just before it is
/// filled runs on both cores and leaves the chunk in cache for the fill.
pub(super) fn par_filled(len: usize, chunk: usize, fill: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let mut out: Vec<f32> = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(k, part)| fill(k, zeroed(part)));
    // SAFETY: every chunk of the first `len` elements was initialised by `zeroed` above.
    unsafe { out.set_len(len) };
    out
}

/// Writes zeros into not yet initialised floats and gives them back as floats.
pub(super) fn zeroed(part: &mut [std::mem::MaybeUninit<f32>]) -> &mut [f32] {
    part.fill(std::mem::MaybeUninit::new(0.0));
    // SAFETY: every element was initialised just above, and MaybeUninit<f32> has f32's layout.
    unsafe { &mut *(part as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) }
}

/// Per-(image, channel) plane sums of `f(plane index, value)`, in f64, reduced per channel.
pub(super) fn channel_sums(
    data: &[f32],
    channels: usize,
    plane: usize,
    f: impl Fn(usize, &[f32]) -> f64 + Sync,
) -> Vec<f64> {
    channel_sums_n(data, channels, plane, |p, v| [f(p, v)]).into_iter().map(|[s]| s).collect()
}

/// [`channel_sums`] of `N` quantities at once: `f` sees each plane once, while it is in cache,
/// so N sums cost one pass over memory instead of N.
pub(super) fn channel_sums_n<const N: usize>(
    data: &[f32],
    channels: usize,
    plane: usize,
    f: impl Fn(usize, &[f32]) -> [f64; N] + Sync,
) -> Vec<[f64; N]> {
    let per_plane: Vec<[f64; N]> = data
        .par_chunks(plane)
        .enumerate()
        .map(|(p, v)| {
            math::simd(
                #[inline(always)]
                || f(p, v),
            )
        })
        .collect();
    let mut sums = vec![[0.0f64; N]; channels];
    for (p, s) in per_plane.into_iter().enumerate() {
        for (total, v) in sums[p % channels].iter_mut().zip(s) {
            *total += v;
        }
    }
    sums
}

/// The sum of `f(a[i], b[i], c[i])` in 16 independent f32 lanes, finished in f64: float sums
/// in one accumulator never vectorise (their order is fixed), and a plane of at most ~10^4 values
/// spread over 16 lanes keeps f32 rounding below 1e-6 relative.
#[inline(always)]
pub(super) fn lane_sum(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f64 {
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

#[cfg(test)]
mod tests {
    use super::par_filled;

    #[test]
    fn filled_chunks_start_from_zero_in_reused_memory_and_see_their_own_offsets() {
        let len = 100_003;
        for round in 0..4 {
            // Freed memory full of NaN, which the allocator is free to hand back next.
            drop(std::hint::black_box(vec![f32::NAN; len]));
            let v = par_filled(len, 1000, |k, chunk| {
                assert_eq!(chunk.len(), if k == 100 { 3 } else { 1000 }, "chunk {k}'s length");
                if k % 2 == 0 {
                    chunk[chunk.len() - 1] = (k + round) as f32;
                }
            });
            assert_eq!(v.len(), len);
            for (i, &x) in v.iter().enumerate() {
                let k = i / 1000;
                let end_of_chunk = i == (k * 1000 + 999).min(len - 1);
                let expected = if k % 2 == 0 && end_of_chunk { (k + round) as f32 } else { 0.0 };
                assert_eq!(x, expected, "element {i} in round {round}");
            }
        }
    }
}
