//! Single-band greyscale views as ds9 users know them: a stretch function (linear, sqrt, log,
//! asinh) applied between two limits (min/max, percentiles, or IRAF's zscale).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StretchFn {
    Linear,
    Sqrt,
    Log,
    #[default]
    Asinh,
}

impl StretchFn {
    pub const ALL: [StretchFn; 4] = [StretchFn::Linear, StretchFn::Sqrt, StretchFn::Log, StretchFn::Asinh];

    /// Maps x in [0, 1] to [0, 1], with ds9's constants (log: a = 1000; asinh: asinh(10 x) / 3).
    pub fn apply(self, x: f32) -> f32 {
        let x = x.clamp(0.0, 1.0);
        match self {
            StretchFn::Linear => x,
            StretchFn::Sqrt => x.sqrt(),
            StretchFn::Log => (1000.0 * x + 1.0).log10() / 1000f32.log10(),
            StretchFn::Asinh => (10.0 * x).asinh() / 3.0,
        }
        .clamp(0.0, 1.0)
    }

    pub fn name(self) -> &'static str {
        match self {
            StretchFn::Linear => "linear",
            StretchFn::Sqrt => "sqrt",
            StretchFn::Log => "log",
            StretchFn::Asinh => "asinh",
        }
    }
}

/// How the black and white levels are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Limits {
    MinMax,
    /// Lower and upper percentiles, e.g. (0.5, 99.5).
    Percentile(f32, f32),
    #[default]
    ZScale,
}

/// Percentile with linear interpolation between order statistics (numpy's default).
pub fn percentile(sorted: &[f32], p: f32) -> f32 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = (p.clamp(0.0, 100.0) / 100.0) * (sorted.len() - 1) as f32;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let t = pos - lo as f32;
    sorted[lo] + (sorted[hi] - sorted[lo]) * t
}

/// IRAF's zscale limits, as astropy's `ZScaleInterval` computes them (n_samples 1000,
/// contrast 0.25, max_reject 0.5, min_npixels 5, krej 2.5, max_iterations 5).
pub fn zscale(values: &[f32]) -> (f32, f32) {
    const N_SAMPLES: usize = 1000;
    const CONTRAST: f64 = 0.25;
    const KREJ: f64 = 2.5;
    let finite: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return (0.0, 1.0);
    }
    let stride = ((finite.len() as f64 / N_SAMPLES as f64) as usize).max(1);
    let mut samples: Vec<f64> = finite.iter().step_by(stride).take(N_SAMPLES).map(|&v| v as f64).collect();
    samples.sort_by(f64::total_cmp);
    let npix = samples.len();
    let (mut vmin, mut vmax) = (samples[0], samples[npix - 1]);
    let minpix = 5usize.max((npix as f64 * 0.5) as usize);
    let ngrow = 1usize.max((npix as f64 * 0.01) as usize);
    let mut bad = vec![false; npix];
    let mut ngood = npix;
    let mut last_ngood = npix + 1;
    let mut slope = 0.0;
    let mut fitted_once = false;
    for _ in 0..5 {
        if ngood >= last_ngood || ngood < minpix {
            break;
        }
        // Least squares line through the good samples (x = index).
        let (mut sx, mut sy, mut sxx, mut sxy, mut n) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (k, &y) in samples.iter().enumerate() {
            if !bad[k] {
                let x = k as f64;
                sx += x;
                sy += y;
                sxx += x * x;
                sxy += x * y;
                n += 1.0;
            }
        }
        let denom = n * sxx - sx * sx;
        let s = if denom.abs() > 0.0 { (n * sxy - sx * sy) / denom } else { 0.0 };
        let intercept = (sy - s * sx) / n;
        slope = s;
        fitted_once = true;
        let flat: Vec<f64> = samples.iter().enumerate().map(|(k, &y)| y - (intercept + s * k as f64)).collect();
        let good: Vec<f64> = flat.iter().zip(&bad).filter(|(_, &b)| !b).map(|(&f, _)| f).collect();
        let mean = good.iter().sum::<f64>() / good.len() as f64;
        let std = (good.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / good.len() as f64).sqrt();
        let threshold = KREJ * std;
        for (k, f) in flat.iter().enumerate() {
            if *f < -threshold || *f > threshold {
                bad[k] = true;
            }
        }
        // Dilate the rejected set like numpy's convolve(mode='same') with a box of ngrow.
        let mut grown = vec![false; npix];
        let left = (ngrow - 1) / 2;
        for (k, _) in bad.iter().enumerate().filter(|(_, &b)| b) {
            {
                let lo = k.saturating_sub(ngrow - 1 - left);
                let hi = (k + left).min(npix - 1);
                grown[lo..=hi].iter_mut().for_each(|g| *g = true);
            }
        }
        bad = grown;
        last_ngood = ngood;
        ngood = bad.iter().filter(|&&b| !b).count();
    }
    if fitted_once && ngood >= minpix {
        let slope = slope / CONTRAST;
        let center = (npix - 1) / 2;
        let median = if npix % 2 == 1 { samples[npix / 2] } else { 0.5 * (samples[npix / 2 - 1] + samples[npix / 2]) };
        vmin = vmin.max(median - (center as f64 - 1.0) * slope);
        vmax = vmax.min(median + (npix - center) as f64 * slope);
    }
    (vmin as f32, vmax as f32)
}

/// The (black, white) levels of a band under `limits`, ignoring masked pixels.
pub fn limits_of(values: &[f32], mask: &[bool], limits: Limits) -> (f32, f32) {
    let valid: Vec<f32> = values.iter().zip(mask).filter(|(v, &m)| !m && v.is_finite()).map(|(&v, _)| v).collect();
    if valid.is_empty() {
        return (0.0, 1.0);
    }
    match limits {
        Limits::MinMax => valid.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v))),
        Limits::Percentile(lo, hi) => {
            let mut s = valid;
            s.sort_by(f32::total_cmp);
            (percentile(&s, lo), percentile(&s, hi))
        }
        Limits::ZScale => zscale(&valid),
    }
}

/// A greyscale 8-bit view of one band (same pixel order as `values`); masked pixels are black.
pub fn band_view(values: &[f32], mask: &[bool], stretch: StretchFn, limits: Limits) -> Vec<u8> {
    let (lo, hi) = limits_of(values, mask, limits);
    let span = if hi > lo { hi - lo } else { 1.0 };
    values
        .iter()
        .zip(mask)
        .map(|(&v, &m)| if m { 0 } else { (stretch.apply((v - lo) / span) * 255.0).round() as u8 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretches_fix_the_ends_and_rise() {
        for s in StretchFn::ALL {
            assert!(s.apply(0.0).abs() < 1e-6, "{s:?}");
            assert!((s.apply(1.0) - 1.0).abs() < 2e-3, "{s:?}");
            assert!(s.apply(0.3) < s.apply(0.6));
        }
        // Non-linear stretches lift faint values.
        assert!(StretchFn::Log.apply(0.01) > 0.3);
    }

    #[test]
    fn percentile_interpolates_like_numpy() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&s, 50.0), 2.5);
        assert_eq!(percentile(&s, 0.0), 1.0);
        assert_eq!(percentile(&s, 100.0), 4.0);
    }

    #[test]
    fn zscale_brackets_the_sky_and_ignores_bright_sources() {
        // Gaussian sky (sigma 1, deterministic Box-Muller) with 2 % of pixels on bright stars:
        // zscale's limits stay a few sigma around the sky, as in ds9, not at the stars' 1000.
        let mut state = 12345u64;
        let mut uniform = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let mut v: Vec<f32> = (0..10_000)
            .map(|_| ((-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos()) as f32)
            .collect();
        for k in (0..v.len()).step_by(53) {
            v[k] = 1000.0;
        }
        let (lo, hi) = zscale(&v);
        assert!((-10.0..-1.0).contains(&lo), "lo = {lo}");
        assert!((1.0..10.0).contains(&hi), "hi = {hi}");
    }

    #[test]
    fn zscale_matches_astropy() {
        // Reference limits from astropy 8.0's ZScaleInterval().get_limits on the same float32 data.
        let a: Vec<f32> = (0..5000)
            .map(|k| {
                let k = k as f64;
                ((k * 0.37).sin() * 3.0 + if k as i64 % 97 == 0 { 500.0 } else { 0.0 } + k * 0.001) as f32
            })
            .collect();
        let b: Vec<f32> =
            (0..300).map(|k| ((k as f64 * 1.3).cos() * 2.0 + if k % 13 == 0 { 50.0 } else { 0.0 }) as f32).collect();
        for (values, want) in [(a, (-2.9536579, 19.514067973304147)), (b, (-1.9898363, 10.824640880282244))] {
            let (lo, hi) = zscale(&values);
            assert!((lo as f64 - want.0).abs() < 1e-4, "lo {lo} vs {}", want.0);
            assert!((hi as f64 - want.1).abs() < 1e-3 * want.1.abs(), "hi {hi} vs {}", want.1);
        }
    }

    #[test]
    fn masked_pixels_are_black_and_ignored_by_limits() {
        let values = [0.0, 1.0, 2.0, 1e9];
        let mask = [false, false, false, true];
        let g = band_view(&values, &mask, StretchFn::Linear, Limits::MinMax);
        assert_eq!(g, vec![0, 128, 255, 0]);
    }
}
