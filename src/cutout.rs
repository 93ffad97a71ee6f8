//! The one image container of the program: [`Cutout`], four bands of the same shape with a mask,
//! and the model's preprocessing of it (SPEC 2.2).
//!
//! Everything that reads the outside world (`survey`, `sim`) produces a `Cutout`; everything that
//! looks at pixels (`render`, `model`) takes one. Bands are always held in the order u, g, r, i
//! ([`Band::ALL`]) whatever order the files came in, so no consumer has to think about it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A survey band. The KiDS set: u, g, r, i.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Band {
    U,
    G,
    R,
    I,
}

impl Band {
    /// The order in which a [`Cutout`] stores its planes (and the model reads them).
    pub const ALL: [Band; 4] = [Band::U, Band::G, Band::R, Band::I];

    /// Position of this band in [`Band::ALL`].
    pub fn index(self) -> usize {
        match self {
            Band::U => 0,
            Band::G => 1,
            Band::R => 2,
            Band::I => 3,
        }
    }

    /// Lower-case letter, as used in file names, CSV headers and the CLI.
    pub fn letter(self) -> char {
        match self {
            Band::U => 'u',
            Band::G => 'g',
            Band::R => 'r',
            Band::I => 'i',
        }
    }

    /// Parses a band name as it appears in headers (`EXTNAME`, `FILTER`, `BAND`) and file names:
    /// case-insensitive, and tolerant of survey decorations such as `SDSS_R`, `r_SDSS` or `i2`.
    pub fn parse(text: &str) -> Option<Band> {
        let t = text.trim().to_ascii_lowercase();
        let exact = |s: &str| match s {
            "u" => Some(Band::U),
            "g" => Some(Band::G),
            "r" => Some(Band::R),
            "i" => Some(Band::I),
            _ => None,
        };
        if let Some(b) = exact(&t) {
            return Some(b);
        }
        // Decorated names: take the single band letter found among the tokens.
        let mut found = None;
        for token in t.split(|c: char| !c.is_ascii_alphanumeric()) {
            let token = token.trim_end_matches(|c: char| c.is_ascii_digit());
            let token = token.strip_prefix("sdss").unwrap_or(token);
            let token = token.strip_suffix("sdss").unwrap_or(token);
            if let Some(b) = exact(token) {
                if found.is_some_and(|f| f != b) {
                    return None;
                }
                found = Some(b);
            }
        }
        found
    }
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter())
    }
}

/// Four bands (u, g, r, i) of one object, `height` rows of `width` pixels each, row 0 being the
/// bottom row of the FITS image (north up when drawn with row 0 at the bottom).
///
/// Masked pixels (NaN/Inf in the file, or flagged by the source) are marked in `mask` per band
/// and hold 0.0 in `bands`, so arithmetic on the planes never meets a NaN; every consumer that
/// computes statistics skips them.
#[derive(Debug, Clone, PartialEq)]
pub struct Cutout {
    pub name: String,
    pub width: usize,
    pub height: usize,
    /// Planes in [`Band::ALL`] order, each `width * height` long, row-major.
    pub bands: [Vec<f32>; 4],
    /// `true` where the pixel is masked, per band, same layout as `bands`.
    pub mask: [Vec<bool>; 4],
}

impl Cutout {
    /// Builds a cutout from raw planes in u, g, r, i order, turning non-finite values into
    /// masked pixels. Panics only on a programming error (planes of the wrong length).
    pub fn from_planes(name: impl Into<String>, width: usize, height: usize, planes: [Vec<f32>; 4]) -> Cutout {
        let n = width * height;
        let mut bands = planes;
        let mut mask: [Vec<bool>; 4] = Default::default();
        for (plane, m) in bands.iter_mut().zip(mask.iter_mut()) {
            assert_eq!(plane.len(), n, "plane length must be width * height");
            *m = plane.iter().map(|v| !v.is_finite()).collect();
            for v in plane.iter_mut() {
                if !v.is_finite() {
                    *v = 0.0;
                }
            }
        }
        Cutout { name: name.into(), width, height, bands, mask }
    }

    pub fn band(&self, band: Band) -> &[f32] {
        &self.bands[band.index()]
    }

    pub fn band_mask(&self, band: Band) -> &[bool] {
        &self.mask[band.index()]
    }

    /// The unmasked values of one band, for statistics.
    pub fn valid_values(&self, band: Band) -> Vec<f32> {
        let i = band.index();
        self.bands[i].iter().zip(&self.mask[i]).filter(|(_, &m)| !m).map(|(&v, _)| v).collect()
    }

    /// Number of masked pixels in one band.
    pub fn masked_count(&self, band: Band) -> usize {
        self.mask[band.index()].iter().filter(|&&m| m).count()
    }
}

/// Median of a slice (sorts a copy). Returns `None` for an empty slice. For an even count, the
/// mean of the two middle values, as numpy does.
pub fn median(values: &[f32]) -> Option<f32> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    let mid = v.len() / 2;
    let (_, &mut upper, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
    if v.len() % 2 == 1 {
        Some(upper)
    } else {
        let lower = v[..mid].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        Some(0.5 * (lower + upper))
    }
}

/// Robust location and scale of a band's sky: median and 1.4826 x MAD, the MAD's consistency
/// factor for Gaussian noise. Computed over all unmasked pixels: a galaxy filling less than half
/// the cutout does not move either value much, and no guess of where the sky is is needed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SkyStats {
    pub median: f32,
    pub sigma: f32,
}

/// Consistency factor turning a median absolute deviation into a Gaussian sigma.
pub const MAD_TO_SIGMA: f32 = 1.4826;

pub fn sky_stats(values: &[f32]) -> Option<SkyStats> {
    let med = median(values)?;
    let dev: Vec<f32> = values.iter().map(|v| (v - med).abs()).collect();
    let mad = median(&dev)?;
    Some(SkyStats { median: med, sigma: MAD_TO_SIGMA * mad })
}

/// Default clip, in robust sigmas, of the model's input (SPEC 2.2: configurable).
pub const DEFAULT_CLIP_SIGMA: f32 = 50.0;

/// The model's view of a cutout (SPEC 2.2): per band, subtract the median, divide by the robust
/// sigma, clip at +-`clip_sigma`, masked pixels to 0. The result is independent of flux units and
/// zero points, which is what lets a model trained on one survey's units score another's.
///
/// Returns `4 * height * width` values, band-major in [`Band::ALL`] order. A band whose robust
/// sigma is 0 (constant, or more than half the pixels identical) falls back to its standard
/// deviation, and to 1 if that is 0 too, so the output is always finite.
pub fn preprocess(cutout: &Cutout, clip_sigma: f32) -> Vec<f32> {
    let n = cutout.width * cutout.height;
    let mut out = Vec::with_capacity(4 * n);
    for band in Band::ALL {
        let i = band.index();
        let valid = cutout.valid_values(band);
        let stats = sky_stats(&valid).unwrap_or(SkyStats { median: 0.0, sigma: 1.0 });
        let mut sigma = stats.sigma;
        if !(sigma > 0.0 && sigma.is_finite()) {
            sigma = std_dev(&valid);
        }
        if !(sigma > 0.0 && sigma.is_finite()) {
            sigma = 1.0;
        }
        for (&v, &m) in cutout.bands[i].iter().zip(&cutout.mask[i]) {
            out.push(if m { 0.0 } else { ((v - stats.median) / sigma).clamp(-clip_sigma, clip_sigma) });
        }
    }
    out
}

fn std_dev(values: &[f32]) -> f32 {
    if values.len() < 2 {
        return 0.0;
    }
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
    var.sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_names_parse_from_headers_and_file_names() {
        for (text, band) in [("R", Band::R), ("g", Band::G), ("SDSS_I", Band::I), ("u_SDSS", Band::U), ("i2", Band::I)]
        {
            assert_eq!(Band::parse(text), Some(band), "{text}");
        }
        assert_eq!(Band::parse("z"), None);
        assert_eq!(Band::parse("g-r"), None, "two bands named is ambiguous");
    }

    #[test]
    fn median_matches_numpy_convention() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn preprocessing_is_independent_of_flux_units() {
        let n = 21 * 21;
        let plane = |seed: u32| -> Vec<f32> {
            (0..n)
                .map(|k| (((k as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32 / 1000.0 - 0.5)
                .collect()
        };
        let a = Cutout::from_planes("a", 21, 21, [plane(1), plane(2), plane(3), plane(4)]);
        let scaled: [Vec<f32>; 4] = std::array::from_fn(|b| a.bands[b].iter().map(|v| v * 1e-11 + 3e-12).collect());
        let b = Cutout::from_planes("b", 21, 21, scaled);
        let pa = preprocess(&a, 5.0);
        let pb = preprocess(&b, 5.0);
        for (x, y) in pa.iter().zip(&pb) {
            assert!((x - y).abs() < 1e-3, "{x} vs {y}");
        }
    }

    #[test]
    fn preprocessing_clips_and_zeroes_masked_pixels() {
        let mut plane: Vec<f32> = (0..100).map(|k| (k % 10) as f32).collect();
        plane[5] = 1e6;
        plane[6] = f32::NAN;
        let c = Cutout::from_planes("c", 10, 10, [plane.clone(), plane.clone(), plane.clone(), plane]);
        let p = preprocess(&c, 3.0);
        assert_eq!(p[5], 3.0);
        assert_eq!(p[6], 0.0);
        assert!(p.iter().all(|v| v.is_finite() && v.abs() <= 3.0));
    }

    #[test]
    fn constant_band_gives_finite_zeros() {
        let c = Cutout::from_planes("c", 4, 4, std::array::from_fn(|_| vec![7.0; 16]));
        assert!(preprocess(&c, 5.0).iter().all(|&v| v == 0.0));
    }
}
