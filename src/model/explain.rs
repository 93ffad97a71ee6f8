//! Why the network says "lens", or does not: maps of where the evidence for and against a lens
//! lies (SPEC 5). Maps come back at the cutout's size, row 0 at the bottom like the cutout.
//! The network looks at the cutout fitted to its input size (`model_size`: cropped around the
//! centre or padded with sky, [`Placement`]); pixels it did not see get 0 in the map.
//!
//! Three maps, each named where it is shown:
//! - [`evidence`] (the default): signed, in logit units. Each feature-map cell's contribution to
//!   the logit, gradient x activation summed over channels: positive cells push towards "lens",
//!   negative ones away. A missed lens shows what argued against it, which Grad-CAM's ReLU hides.
//!   Drawn on a fixed scale ([`EVIDENCE_SCALE_LOGIT`]) so that maps of two candidates compare.
//! - [`occlusion`]: signed, in logit units, model-agnostic: the change of the logit when a square
//!   is replaced by sky. Batched (about 1 s for a 101-pixel cutout on 2 cores).
//! - [`gradcam`]: classic Grad-CAM, positive only and scaled to its own maximum.
//!
//! # Formula
//! With A the last feature map [C, h, w] and y the logit:
//! - evidence(i, j) = sum_c dy/dA_c(i, j) A_c(i, j), bilinearly upsampled (the first-order
//!   Taylor share of the logit at each cell; they sum to about y minus the head's offsets).
//! - Grad-CAM (Selvaraju et al. 2017): alpha_c = mean_{h,w} dy/dA_c,
//!   map = ReLU(sum_c alpha_c A_c), upsampled, divided by its maximum.
//! - Occlusion: y(original) - y(square set to the sky level, 0 after preprocessing), averaged
//!   over the squares covering each pixel: positive where hiding the pixels lowers the logit.

use super::data::Dataset;
use super::net::LensNet;
use super::placement::Placement;
use crate::cutout::Cutout;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

/// Full colour of an [`evidence`] map is this many logit units per feature-map cell (a cell of
/// the 12 x 12 map of a 101-pixel cutout covers about 8 x 8 pixels).
pub const EVIDENCE_SCALE_LOGIT: f32 = 0.5;
/// Full colour of an [`occlusion`] map: this change of the logit.
pub const OCCLUSION_SCALE_LOGIT: f32 = 2.0;
/// The occlusion square and its step, pixels (for 101-pixel cutouts: 256 squares).
pub const OCCLUSION_PATCH: usize = 12;
pub const OCCLUSION_STRIDE: usize = 6;

/// Signed evidence maps (logit units per feature-map cell) for a batch of cutouts.
pub fn evidence(
    net: &LensNet,
    cutouts: &[Cutout],
    norm: impl Into<crate::cutout::Normalisation>,
    model_size: usize,
) -> Result<Vec<Vec<f32>>, String> {
    feature_maps(net, cutouts, norm, model_size, true)
}

/// Grad-CAM maps for a batch of cutouts, each `size * size` in [0, 1] (all zero when the network
/// finds nothing that raises the logit).
pub fn gradcam(
    net: &LensNet,
    cutouts: &[Cutout],
    norm: impl Into<crate::cutout::Normalisation>,
    model_size: usize,
) -> Result<Vec<Vec<f32>>, String> {
    feature_maps(net, cutouts, norm, model_size, false)
}

fn feature_maps(
    net: &LensNet,
    cutouts: &[Cutout],
    norm: impl Into<crate::cutout::Normalisation>,
    model_size: usize,
    signed: bool,
) -> Result<Vec<Vec<f32>>, String> {
    let norm = norm.into();
    let mut data = Dataset::with_size(model_size);
    for c in cutouts {
        data.push(c, 0.0, norm);
    }
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let device = Device::flex();
    let net = net.valid().to_device(&device);
    let size = data.size;
    let n = data.len();
    let x = Tensor::<4>::from_data(TensorData::new(data.inputs.clone(), [n, 4, size, size]), &device);
    let features = net.features(x).autodiff().require_grad();
    let logits = net.head(features.clone());
    let grads = logits.sum().backward();
    let grad = features.grad(&grads).ok_or("no gradient reached the feature map")?;
    let [_, c, h, w] = features.dims();
    let a: Vec<f32> = features.inner().try_into_vec_as().map_err(|e| format!("{e:?}"))?;
    let g: Vec<f32> = grad.try_into_vec_as().map_err(|e| format!("{e:?}"))?;
    let mut maps = Vec::with_capacity(n);
    for (b, cutout) in cutouts.iter().enumerate() {
        let mut cam = vec![0f32; h * w];
        if signed {
            for ch in 0..c {
                let base = (b * c + ch) * h * w;
                for (k, m) in cam.iter_mut().enumerate() {
                    *m += g[base + k] * a[base + k];
                }
            }
            maps.push(on_cutout(cutout, upsample(&cam, w, h, size)));
            continue;
        }
        for ch in 0..c {
            let base = (b * c + ch) * h * w;
            let alpha = g[base..base + h * w].iter().sum::<f32>() / (h * w) as f32;
            for (m, v) in cam.iter_mut().zip(&a[base..base + h * w]) {
                *m += alpha * v;
            }
        }
        cam.iter_mut().for_each(|v| *v = v.max(0.0));
        maps.push(on_cutout(cutout, normalise(upsample(&cam, w, h, size))));
    }
    Ok(maps)
}

/// A map in the model's frame on the pixels of the cutout it was computed for (undoing the
/// fit to the model's size, then the resampling to its pixel scale).
fn on_cutout(cutout: &Cutout, map: Vec<f32>) -> Vec<f32> {
    use super::pixel_scale::{map_back, seen_size, MODEL_PIXEL_ARCSEC};
    let size = (map.len() as f64).sqrt().round() as usize;
    let seen = seen_size(cutout, MODEL_PIXEL_ARCSEC);
    let place = Placement::new(seen.0, seen.1, size);
    let map = if place.is_identity() { map } else { place.to_cutout(&map) };
    if seen == (cutout.width, cutout.height) {
        map
    } else {
        map_back(&map, seen, (cutout.width, cutout.height))
    }
}

/// Occlusion sensitivity of one cutout, signed and in logit units: `patch` x `patch` squares
/// every `stride` pixels, scored in batches of 64.
pub fn occlusion(
    net: &LensNet,
    cutout: &Cutout,
    norm: impl Into<crate::cutout::Normalisation>,
    model_size: usize,
    patch: usize,
    stride: usize,
) -> Result<Vec<f32>, String> {
    let mut data = Dataset::with_size(model_size);
    data.push(cutout, 0.0, norm);
    let size = data.size;
    let base = data.item(0).to_vec();
    let device = Device::flex();
    let net = net.valid().to_device(&device);
    let logit = |inputs: Vec<f32>, k: usize| -> Result<Vec<f32>, String> {
        let x = Tensor::<4>::from_data(TensorData::new(inputs, [k, 4, size, size]), &device);
        net.forward(x).try_into_vec_as().map_err(|e| format!("{e:?}"))
    };
    let reference = logit(base.clone(), 1)?[0];
    let stride = stride.max(1);
    let starts: Vec<usize> = (0..size.saturating_sub(patch) + 1).step_by(stride).collect();
    let squares: Vec<(usize, usize)> = starts.iter().flat_map(|&r| starts.iter().map(move |&c| (r, c))).collect();
    let mut sum = vec![0f32; size * size];
    let mut count = vec![0f32; size * size];
    for chunk in squares.chunks(64) {
        let mut inputs = Vec::with_capacity(chunk.len() * base.len());
        for &(r0, c0) in chunk {
            let mut v = base.clone();
            for b in 0..4 {
                for r in r0..(r0 + patch).min(size) {
                    for c in c0..(c0 + patch).min(size) {
                        v[b * size * size + r * size + c] = 0.0;
                    }
                }
            }
            inputs.extend(v);
        }
        let logits = logit(inputs, chunk.len())?;
        for (&(r0, c0), l) in chunk.iter().zip(logits) {
            for r in r0..(r0 + patch).min(size) {
                for c in c0..(c0 + patch).min(size) {
                    sum[r * size + c] += reference - l;
                    count[r * size + c] += 1.0;
                }
            }
        }
    }
    Ok(on_cutout(cutout, sum.iter().zip(&count).map(|(s, n)| if *n > 0.0 { s / n } else { 0.0 }).collect()))
}

/// Bilinear upsampling of a `w` x `h` map to `size` x `size`, pixel centres aligned.
fn upsample(map: &[f32], w: usize, h: usize, size: usize) -> Vec<f32> {
    let mut out = vec![0f32; size * size];
    for r in 0..size {
        let y = ((r as f32 + 0.5) * h as f32 / size as f32 - 0.5).clamp(0.0, (h - 1) as f32);
        let (y0, ty) = (y.floor() as usize, y - y.floor());
        let y1 = (y0 + 1).min(h - 1);
        for c in 0..size {
            let x = ((c as f32 + 0.5) * w as f32 / size as f32 - 0.5).clamp(0.0, (w - 1) as f32);
            let (x0, tx) = (x.floor() as usize, x - x.floor());
            let x1 = (x0 + 1).min(w - 1);
            out[r * size + c] = map[y0 * w + x0] * (1.0 - tx) * (1.0 - ty)
                + map[y0 * w + x1] * tx * (1.0 - ty)
                + map[y1 * w + x0] * (1.0 - tx) * ty
                + map[y1 * w + x1] * tx * ty;
        }
    }
    out
}

fn normalise(mut map: Vec<f32>) -> Vec<f32> {
    let max = map.iter().copied().fold(0.0, f32::max);
    if max > 0.0 {
        map.iter_mut().for_each(|v| *v /= max);
    }
    map
}

/// How much of a map falls inside a mask, against the mask's share of the image: 1 means no
/// preference, well above 1 means the map looks at the masked pixels (the lensed light).
pub fn mask_concentration(map: &[f32], mask: &[bool]) -> Option<f64> {
    let total: f64 = map.iter().map(|&v| v as f64).sum();
    let inside: f64 = map.iter().zip(mask).filter(|(_, &m)| m).map(|(&v, _)| v as f64).sum();
    let area = mask.iter().filter(|&&m| m).count() as f64 / mask.len() as f64;
    (total > 0.0 && area > 0.0).then(|| (inside / total) / area)
}
