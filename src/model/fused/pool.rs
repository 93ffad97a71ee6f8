//! The 2 x 2 max-pool, with and without gradients.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{unary, Backward, Ops};
use burn::backend::Flex;
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::{contiguous_f32, flex_from_vec, flex_values, par_filled, record, zeroed};

/// 2 x 2 max-pool with stride 2 (odd edges dropped) of contiguous [planes, h, w] data; with
/// `argmax`, also which of the four pixels won (0..4, row-major), for the backward pass.
fn max_pool2x2_planes(x: &[f32], [planes, h, w]: [usize; 3], argmax: Option<&mut [u8]>) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    let mut out: Vec<f32> = Vec::with_capacity(planes * oh * ow);
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
    let planes_out = out.spare_capacity_mut()[..planes * oh * ow].par_chunks_mut(oh * ow);
    match argmax {
        Some(a) => {
            planes_out.zip(a.par_chunks_mut(oh * ow)).enumerate().for_each(|(p, (o, a))| body(p, zeroed(o), Some(a)))
        }
        None => planes_out.enumerate().for_each(|(p, o)| body(p, zeroed(o), None)),
    }
    // SAFETY: every plane of the first planes * oh * ow elements was initialised by `zeroed`.
    unsafe { out.set_len(planes * oh * ow) };
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
        let PoolState { argmax, dims: [n, c, h, w] } = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let dy = contiguous_f32(&grad).expect("max-pool: f32 gradient");
            let dy = dy.storage::<f32>();
            let (oh, ow) = (h / 2, w / 2);
            let dx = par_filled(n * c * h * w, h * w, |p, d| {
                let (g, a) = (&dy[p * oh * ow..(p + 1) * oh * ow], &argmax[p * oh * ow..(p + 1) * oh * ow]);
                for i in 0..oh {
                    for j in 0..ow {
                        let k = a[i * ow + j] as usize;
                        d[(2 * i + k / 2) * w + 2 * j + k % 2] = g[i * ow + j];
                    }
                }
            });
            flex_from_vec(dx, vec![n, c, h, w])
        });
    }
}

/// 2 x 2 max-pool, stride 2, on the Flex backend (with or without autodiff): one pass that
/// keeps a byte per output for the backward pass, where burn keeps 64-bit indices and scatters
/// through them. Gives the input back (`Err`) when it is not a Flex f32 tensor.
pub fn max_pool2x2(x: Tensor<4>) -> Result<Tensor<4>, Box<Tensor<4>>> {
    let [n, c, h, w] = x.dims();
    let values = if h < 2 || w < 2 { None } else { flex_values(&x) };
    let Some((handle, xf)) = values else { return Err(Box::new(x)) };
    drop(x);
    let out_shape = vec![n, c, h / 2, w / 2];
    let Some(xa) = handle else {
        let out = max_pool2x2_planes(xf.storage::<f32>(), [n * c, h, w], None);
        return Ok(Tensor::from_primitive::<Flex>(flex_from_vec(out, out_shape)));
    };
    let mut argmax = vec![0u8; n * c * (h / 2) * (w / 2)];
    let out = max_pool2x2_planes(xf.storage::<f32>(), [n * c, h, w], Some(&mut argmax));
    let state = || PoolState { argmax: std::sync::Arc::new(argmax), dims: [n, c, h, w] };
    Ok(record(MaxPoolBackward, [xa.node()], state, flex_from_vec(out, out_shape)))
}
