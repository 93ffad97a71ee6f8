//! Cutouts of another pixel scale, seen at the model's.
//!
//! A model knows angular sizes in pixels: Einstein radii of 3 - 20 pixels, a PSF of 3 - 6, at
//! KiDS's 0.2" (the simulator's scale, and so every model this program trains). HSC cuts at
//! 0.168", DES at 0.263", Euclid's VIS at 0.1": taken pixel for pixel, their lenses look 16 %
//! larger, 24 % smaller or twice as large as they are. So a cutout whose header gives a pixel
//! scale (a TAN WCS) more than [`TOLERANCE`] away from the model's is resampled onto the model's
//! pixels before preprocessing, which then measures the sky noise of the resampled image (the
//! model trained on resampled, correlated coadd noise too). A cutout without a WCS is taken at
//! the model's scale: nothing else says otherwise.
//!
//! # Method
//! Pixel centres are matched about the geometric centre of the image ((n - 1) / 2 on each axis),
//! so the resampled image covers the same sky. Each output pixel is the mean of k x k bilinear
//! samples spread over its footprint (k = the number of input pixels it spans, rounded up; 1
//! when enlarging), so a shrink averages the input pixels as a coarser detector would, instead
//! of picking some and aliasing the noise. Masked input pixels get no weight; an output pixel
//! with no unmasked input near it is masked.

use crate::cutout::Cutout;

/// The pixel scale of every model this program trains, arcsec (the simulator's and KiDS's).
pub const MODEL_PIXEL_ARCSEC: f64 = 0.2;
/// Relative difference of pixel scales below which a cutout is used as it is (headers round,
/// and 5 % is well inside the spread of Einstein radii and seeing the model knows).
pub const TOLERANCE: f64 = 0.05;

/// The pixel scale to resample `cutout` from, if it needs resampling for a model of
/// `model_arcsec`: a scale from its header that differs by more than [`TOLERANCE`].
pub fn scale_to_resample(cutout: &Cutout, model_arcsec: f64) -> Option<f64> {
    cutout.pixel_arcsec.filter(|&s| (s / model_arcsec - 1.0).abs() > TOLERANCE)
}

/// Width and height of `cutout` on the model's pixels (of `model_arcsec`): its own, or those
/// it is resampled to.
pub fn seen_size(cutout: &Cutout, model_arcsec: f64) -> (usize, usize) {
    match scale_to_resample(cutout, model_arcsec) {
        Some(s) => (resampled_len(cutout.width, s, model_arcsec), resampled_len(cutout.height, s, model_arcsec)),
        None => (cutout.width, cutout.height),
    }
}

/// The size of `n` pixels of `from_arcsec` in pixels of `to_arcsec` (at least 1).
pub fn resampled_len(n: usize, from_arcsec: f64, to_arcsec: f64) -> usize {
    ((n as f64 * from_arcsec / to_arcsec).round() as usize).max(1)
}

/// `cutout` on pixels of `to_arcsec` (it must have a pixel scale of its own), covering the same
/// sky; its name is kept and its pixel scale becomes `to_arcsec`.
pub fn resample_cutout(cutout: &Cutout, to_arcsec: f64) -> Cutout {
    let from = cutout.pixel_arcsec.expect("resample_cutout needs the cutout's pixel scale");
    let (w, h) = (resampled_len(cutout.width, from, to_arcsec), resampled_len(cutout.height, from, to_arcsec));
    let mut planes: [Vec<f32>; 4] = Default::default();
    for (out, (plane, mask)) in planes.iter_mut().zip(cutout.bands.iter().zip(&cutout.mask)) {
        *out = resample(plane, Some(mask), (cutout.width, cutout.height), (w, h));
    }
    Cutout::from_planes(cutout.name.clone(), w, h, planes).with_pixel_scale(Some(to_arcsec))
}

/// A map on a resampled cutout's pixels (`from` = its width and height) back on the original
/// cutout's (`to`), bilinearly.
pub fn map_back(map: &[f32], from: (usize, usize), to: (usize, usize)) -> Vec<f32> {
    resample(map, None, from, to).into_iter().map(|v| if v.is_nan() { 0.0 } else { v }).collect()
}

/// `plane` (`from` = width, height) on a grid of `to` pixels covering the same extent: NaN
/// where nothing unmasked is near.
fn resample(plane: &[f32], mask: Option<&[bool]>, from: (usize, usize), to: (usize, usize)) -> Vec<f32> {
    // Input pixels per output pixel, on each axis.
    let (rx, ry) = (from.0 as f64 / to.0 as f64, from.1 as f64 / to.1 as f64);
    let (kx, ky) = (rx.ceil().max(1.0) as usize, ry.ceil().max(1.0) as usize);
    let (cx_in, cy_in) = ((from.0 as f64 - 1.0) / 2.0, (from.1 as f64 - 1.0) / 2.0);
    let (cx_out, cy_out) = ((to.0 as f64 - 1.0) / 2.0, (to.1 as f64 - 1.0) / 2.0);
    let usable = |x: isize, y: isize| -> Option<f32> {
        if x < 0 || y < 0 || x as usize >= from.0 || y as usize >= from.1 {
            return None;
        }
        let k = y as usize * from.0 + x as usize;
        (!mask.is_some_and(|m| m[k])).then(|| plane[k])
    };
    let mut out = vec![f32::NAN; to.0 * to.1];
    for row in 0..to.1 {
        for col in 0..to.0 {
            let (mut sum, mut weight) = (0.0f64, 0.0f64);
            for sy in 0..ky {
                let y = cy_in + (row as f64 - cy_out) * ry + ((sy as f64 + 0.5) / ky as f64 - 0.5) * ry.max(1.0);
                for sx in 0..kx {
                    let x = cx_in + (col as f64 - cx_out) * rx + ((sx as f64 + 0.5) / kx as f64 - 0.5) * rx.max(1.0);
                    let (x0, y0) = (x.floor(), y.floor());
                    let (tx, ty) = (x - x0, y - y0);
                    let (x0, y0) = (x0 as isize, y0 as isize);
                    for (dx, dy, w) in [
                        (0, 0, (1.0 - tx) * (1.0 - ty)),
                        (1, 0, tx * (1.0 - ty)),
                        (0, 1, (1.0 - tx) * ty),
                        (1, 1, tx * ty),
                    ] {
                        if w > 0.0 {
                            if let Some(v) = usable(x0 + dx, y0 + dy) {
                                sum += w * v as f64;
                                weight += w;
                            }
                        }
                    }
                }
            }
            // Masked where unmasked pixels carry under a tenth of a sample's weight.
            if weight > 0.1 * (kx * ky) as f64 {
                out[row * to.0 + col] = (sum / weight) as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A round Gaussian of `sigma_arcsec` at the image centre, on `n` pixels of `arcsec`, with
    /// an offset of (`ox`, `oy`) arcsec.
    fn gaussian(n: usize, arcsec: f64, sigma_arcsec: f64, (ox, oy): (f64, f64)) -> Cutout {
        let c = (n as f64 - 1.0) / 2.0;
        let plane: Vec<f32> = (0..n * n)
            .map(|k| {
                let (x, y) = (((k % n) as f64 - c) * arcsec - ox, ((k / n) as f64 - c) * arcsec - oy);
                (-(x * x + y * y) / (2.0 * sigma_arcsec * sigma_arcsec)).exp() as f32
            })
            .collect();
        Cutout::from_planes("g", n, n, std::array::from_fn(|_| plane.clone())).with_pixel_scale(Some(arcsec))
    }

    /// Centroid (arcsec from the geometric centre) and second moment (arcsec^2) of band 0.
    fn moments(c: &Cutout, arcsec: f64) -> (f64, f64, f64) {
        let n = c.width;
        let centre = (n as f64 - 1.0) / 2.0;
        let (mut s, mut sx, mut sy, mut sr) = (0.0, 0.0, 0.0, 0.0);
        for (k, &v) in c.bands[0].iter().enumerate() {
            let (x, y) = (((k % n) as f64 - centre) * arcsec, ((k / n) as f64 - centre) * arcsec);
            s += v as f64;
            sx += v as f64 * x;
            sy += v as f64 * y;
            sr += v as f64 * (x * x + y * y);
        }
        (sx / s, sy / s, sr / s)
    }

    #[test]
    fn only_a_header_scale_clearly_unlike_the_models_asks_for_resampling() {
        let c = |s: Option<f64>| gaussian(11, 0.2, 0.5, (0.0, 0.0)).with_pixel_scale(s);
        assert_eq!(scale_to_resample(&c(None), 0.2), None, "no WCS: the model's scale");
        assert_eq!(scale_to_resample(&c(Some(0.2)), 0.2), None);
        assert_eq!(scale_to_resample(&c(Some(0.208)), 0.2), None, "within 5 %");
        assert_eq!(scale_to_resample(&c(Some(0.263)), 0.2), Some(0.263), "DES");
        assert_eq!(scale_to_resample(&c(Some(0.168)), 0.2), Some(0.168), "HSC");
    }

    #[test]
    fn a_finer_or_coarser_image_keeps_angular_sizes_and_positions() {
        // The same Gaussian (sigma 0.6", 0.3" off centre) drawn at HSC's, DES's and Euclid's
        // scales, resampled to 0.2": the sky it shows is the same, so its centroid and width in
        // arcsec must be, to a small fraction of a 0.2" pixel.
        let truth = gaussian(101, 0.2, 0.6, (0.3, -0.2));
        let (tx, ty, tr) = moments(&truth, 0.2);
        for (n, arcsec) in [(120, 0.168), (77, 0.263), (202, 0.1)] {
            let r = resample_cutout(&gaussian(n, arcsec, 0.6, (0.3, -0.2)), 0.2);
            assert_eq!(r.width, resampled_len(n, arcsec, 0.2));
            assert_eq!(r.pixel_arcsec, Some(0.2));
            let (x, y, r2) = moments(&r, 0.2);
            assert!(
                (x - tx).abs() < 0.01 && (y - ty).abs() < 0.01,
                "{arcsec}\": centroid ({x}, {y}) against ({tx}, {ty})"
            );
            // Resampling smooths: per axis, the footprint's box adds (0.2")^2 / 12 and bilinear
            // interpolation a triangle's (input pixel)^2 / 6 to the variance. <r^2> may grow by
            // twice their sum (plus 0.003 for the two images' own pixel sampling) and must not
            // shrink; a wrong scale would move it by 30 %.
            let smoothing = 2.0 * (0.2f64.powi(2) / 12.0 + arcsec * arcsec / 6.0);
            assert!(r2 >= tr - 1e-3 && r2 - tr < smoothing + 3e-3, "{arcsec}\": <r^2> {r2} against {tr}");
        }
    }

    #[test]
    fn a_shrink_averages_pixels_so_replicated_pixels_come_back_exactly() {
        // Each 0.2" pixel as 2 x 2 pixels of 0.1": shrinking back must give the original values,
        // which picking one sample per output pixel would too, but averaging must not blur.
        let orig = gaussian(9, 0.2, 0.4, (0.1, 0.0));
        let n = 18;
        let plane: Vec<f32> = (0..n * n).map(|k| orig.bands[0][(k / n / 2) * 9 + (k % n) / 2]).collect();
        let fine = Cutout::from_planes("f", n, n, std::array::from_fn(|_| plane.clone())).with_pixel_scale(Some(0.1));
        let back = resample_cutout(&fine, 0.2);
        assert_eq!(back.width, 9);
        for (a, b) in back.bands[0].iter().zip(&orig.bands[0]) {
            assert!((a - b).abs() < 1e-6, "{a} against {b}");
        }
    }

    #[test]
    fn masked_pixels_give_no_weight_and_a_masked_region_stays_masked() {
        let n = 40;
        let mut plane = vec![1.0f32; n * n];
        // A hot pixel that is masked (NaN in the file) and a masked block of 10 x 10.
        plane[5 * n + 5] = f32::NAN;
        for r in 20..30 {
            for c in 20..30 {
                plane[r * n + c] = f32::NAN;
            }
        }
        let c = Cutout::from_planes("m", n, n, std::array::from_fn(|_| plane.clone())).with_pixel_scale(Some(0.1));
        let r = resample_cutout(&c, 0.2);
        let valid: Vec<f32> = r.bands[0].iter().zip(&r.mask[0]).filter(|(_, &m)| !m).map(|(&v, _)| v).collect();
        assert!(valid.iter().all(|&v| (v - 1.0).abs() < 1e-6), "no masked value leaks in");
        let masked = r.mask[0].iter().filter(|&&m| m).count();
        // The block covers 5 x 5 output pixels; the lone masked pixel masks none.
        assert!((16..=36).contains(&masked), "{masked} masked output pixels");
        assert!(r.mask[0][12 * 20 + 12], "the middle of the block");
        assert!(!r.mask[0][2 * 20 + 2], "beside the lone masked pixel");
    }

    #[test]
    fn maps_return_to_the_original_pixels() {
        let map: Vec<f32> = (0..50 * 50).map(|k| ((k % 50) + (k / 50)) as f32).collect();
        let back = map_back(&map, (50, 50), (66, 66));
        assert_eq!(back.len(), 66 * 66);
        // A linear ramp stays a linear ramp, from the same value at the centre.
        let at = |m: &[f32], n: usize, r: usize, c: usize| m[r * n + c];
        assert!((at(&back, 66, 33, 33) + at(&back, 66, 32, 32) - 2.0 * 49.0).abs() < 1e-3);
        assert!(at(&back, 66, 40, 40) > at(&back, 66, 30, 30));
    }
}
