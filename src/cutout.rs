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

/// Pixel scales (arcsec) a header or a user is believed with: headers, `--pixel-scale` and
/// the scale kept with a candidate all pass this one range.
pub const TRUSTED_PIXEL_ARCSEC: std::ops::RangeInclusive<f64> = 0.01..=5.0;

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
    /// Arcseconds per pixel, when the file said (a TAN WCS): a model sees cutouts at its own
    /// scale (`model::pixel_scale`). `None`: unknown, taken to be the model's.
    pub pixel_arcsec: Option<f64>,
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
        Cutout { name: name.into(), width, height, bands, mask, pixel_arcsec: None }
    }

    /// This cutout with a pixel scale in arcseconds. A scale outside [`TRUSTED_PIXEL_ARCSEC`] is
    /// not a survey image's (a header in pixel units, or one that lies) and is dropped rather
    /// than trusted.
    pub fn with_pixel_scale(mut self, arcsec: Option<f64>) -> Cutout {
        self.pixel_arcsec = arcsec.filter(|s| TRUSTED_PIXEL_ARCSEC.contains(s));
        self
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

    /// Bands with every pixel masked (NaN, Inf, or no data where a tile's weight is 0): the
    /// readers' rule for skipping an object ([`crate::survey::check_blank_bands`]) and the tile
    /// cutter's.
    pub fn masked_bands(&self) -> Vec<Band> {
        Band::ALL.into_iter().filter(|&b| self.mask[b.index()].iter().all(|&m| m)).collect()
    }

    /// Bands that hold no image: every pixel masked (NaN, Inf), or every valid pixel the same
    /// value (a band filled with 0 where a survey has no data). Survey masks differ between
    /// bands, so a cutout can lose one band (KiDS's u-band coverage, a chip gap in one filter)
    /// and keep the other three: it is read and scored with that band as sky, and said to be so.
    pub fn blank_bands(&self) -> Vec<Band> {
        Band::ALL
            .into_iter()
            .filter(|&b| {
                let i = b.index();
                let mut valid = self.bands[i].iter().zip(&self.mask[i]).filter(|(_, &m)| !m).map(|(&v, _)| v);
                match valid.next() {
                    None => true,
                    Some(first) => valid.all(|v| v == first),
                }
            })
            .collect()
    }
}

/// Band names joined by commas ("u,g"), the form kept in a candidate's metadata.
pub fn band_list(bands: &[Band]) -> String {
    bands.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(",")
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

/// How a band's values in robust sigmas become the model's input, as a model card records it.
/// A hard clip at 50 sigma turns a bright galaxy's core into a flat plateau with a sharp round
/// edge; plain ellipticals whose cores pass it score as lenses far more often than fainter
/// ones, on our simulations and on lenstronomy's (docs/robustness.md). With a knee, values
/// beyond it are compressed logarithmically (an asinh of half the knee's scale) before the
/// clip, so a core keeps its shape up to thousands of sigmas while everything fainter than the
/// knee, arcs included, passes unchanged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalisation {
    /// Clip, in robust sigmas, after any compression.
    pub clip_sigma: f32,
    /// Values beyond this many robust sigmas are compressed; 0: none (the hard clip alone).
    pub knee_sigma: f32,
}

impl From<f32> for Normalisation {
    /// A hard clip only (models before knees existed).
    fn from(clip_sigma: f32) -> Normalisation {
        Normalisation { clip_sigma, knee_sigma: 0.0 }
    }
}

impl Normalisation {
    /// One value in robust sigmas as the model sees it.
    #[inline]
    pub fn apply(&self, x: f32) -> f32 {
        let k = self.knee_sigma;
        let y = if k > 0.0 && x.abs() > k {
            let s = 0.5 * k;
            (k + s * ((x.abs() - k) / s).asinh()).copysign(x)
        } else {
            x
        };
        y.clamp(-self.clip_sigma, self.clip_sigma)
    }
}

/// How far from its band's median, in robust sigmas, a pixel is taken to be non-physical
/// (SPEC 2.2: "beyond ~1e4 robust sigma"). The brightest real things in a 101-pixel cutout (the
/// core of a saturated star) reach a few thousand sky sigmas; sentinels such as 100 in fluxes of
/// ~1e-12, or 1e30, are many orders beyond.
pub const OUTLIER_SIGMA: f32 = 1.0e4;

/// Pixels that cannot be light from the sky, per kind (for reports and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NonPhysical {
    /// NaN or infinite in the file (already masked when the cutout was made).
    pub non_finite: usize,
    /// A fill value: one exact value repeated in a band whose other values are all but unique
    /// (tile edges filled with 0, masked regions set to 100, bad columns, saturated cores).
    pub fill: usize,
    /// Beyond [`OUTLIER_SIGMA`] robust sigmas of the band's median.
    pub outlier: usize,
}

impl NonPhysical {
    pub fn total(&self) -> usize {
        self.non_finite + self.fill + self.outlier
    }
}

/// The mask of a cutout with non-physical pixels added to it (SPEC 2.2), and how many of each
/// kind were found. Nothing here depends on flux units.
///
/// # Method
/// Per band:
/// 1. **Fill values.** Noise makes the values of a float image almost all different, so when at
///    least 90 % of a band's other values are unique, any exact value that occurs 3 times or more
///    is a fill value, and so is exact 0.0 occurring twice or more (the usual fill of tile edges
///    and masked regions). Bands of quantised values (integer counts, fpack-quantised floats),
///    where repeats are normal, skip this step.
/// 2. **Outliers.** With the fill values out, the median and robust sigma (1.4826 x MAD) are
///    computed, and pixels farther than [`OUTLIER_SIGMA`] sigmas from the median are masked.
pub fn non_physical_mask(cutout: &Cutout) -> ([Vec<bool>; 4], NonPhysical) {
    let mut counts = NonPhysical::default();
    let masks = std::array::from_fn(|b| {
        let mut mask = cutout.mask[b].clone();
        counts.non_finite += mask.iter().filter(|&&m| m).count();
        let plane = &cutout.bands[b];
        counts.fill += mask_fill_values(plane, &mut mask);
        counts.outlier += mask_outliers(plane, &mut mask);
        mask
    });
    (masks, counts)
}

/// Step 1 of [`non_physical_mask`]: returns how many pixels it masked.
fn mask_fill_values(plane: &[f32], mask: &mut [bool]) -> usize {
    let mut values: Vec<u32> =
        plane.iter().zip(mask.iter()).filter(|(_, &m)| !m).map(|(&v, _)| canonical_bits(v)).collect();
    if values.len() < 16 {
        return 0;
    }
    values.sort_unstable();
    let zero = canonical_bits(0.0);
    let mut fills: Vec<u32> = Vec::new();
    let (mut repeated, mut unique) = (0usize, 0usize);
    for run in values.chunk_by(|a, b| a == b) {
        let is_fill = run.len() >= 3 || (run[0] == zero && run.len() >= 2);
        if is_fill {
            fills.push(run[0]);
        } else if run.len() == 1 {
            unique += 1;
        } else {
            repeated += run.len();
        }
    }
    // Quantised bands (most values repeated) and bands mostly made of one value are left alone.
    let fill_members = values.len() - unique - repeated;
    if fills.is_empty()
        || unique + repeated == 0
        || (unique as f64) < 0.9 * (unique + repeated) as f64
        || fill_members * 2 > values.len()
    {
        return 0;
    }
    let mut masked = 0;
    for (v, m) in plane.iter().zip(mask.iter_mut()) {
        if !*m && fills.binary_search(&canonical_bits(*v)).is_ok() {
            *m = true;
            masked += 1;
        }
    }
    masked
}

/// Bits of a value with -0.0 read as 0.0, so the two zeros count as one fill value.
fn canonical_bits(v: f32) -> u32 {
    if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

/// Step 2 of [`non_physical_mask`]: returns how many pixels it masked.
fn mask_outliers(plane: &[f32], mask: &mut [bool]) -> usize {
    let valid: Vec<f32> = plane.iter().zip(mask.iter()).filter(|(_, &m)| !m).map(|(&v, _)| v).collect();
    let Some(stats) = sky_stats(&valid) else { return 0 };
    if !(stats.sigma > 0.0 && stats.sigma.is_finite()) {
        return 0;
    }
    let limit = OUTLIER_SIGMA as f64 * stats.sigma as f64;
    let mut masked = 0;
    for (&v, m) in plane.iter().zip(mask.iter_mut()) {
        if !*m && ((v as f64 - stats.median as f64).abs() > limit || !v.is_finite()) {
            *m = true;
            masked += 1;
        }
    }
    masked
}

/// The model's view of a cutout (SPEC 2.2): non-physical pixels masked first
/// ([`non_physical_mask`]), then per band: subtract the median, divide by the robust sigma, clip
/// at +-`clip_sigma`, masked pixels to 0 (the sky level after this). The result is independent
/// of flux units and zero points, which is what lets a model trained on one survey's units score
/// another's, and a sentinel never becomes a bright point.
///
/// Returns `4 * height * width` values, band-major in [`Band::ALL`] order. A band whose robust
/// sigma is 0 (constant, or more than half the pixels identical) falls back to its standard
/// deviation, and to 1 if that is 0 too, so the output is always finite.
pub fn preprocess(cutout: &Cutout, norm: impl Into<Normalisation>) -> Vec<f32> {
    let norm = norm.into();
    let (masks, _) = non_physical_mask(cutout);
    let n = cutout.width * cutout.height;
    let mut out = Vec::with_capacity(4 * n);
    for (plane, mask) in cutout.bands.iter().zip(&masks) {
        let valid: Vec<f32> = plane.iter().zip(mask).filter(|(_, &m)| !m).map(|(&v, _)| v).collect();
        let stats = sky_stats(&valid).unwrap_or(SkyStats { median: 0.0, sigma: 1.0 });
        let mut sigma = stats.sigma;
        if !(sigma > 0.0 && sigma.is_finite()) {
            sigma = std_dev(&valid);
        }
        if !(sigma > 0.0 && sigma.is_finite()) {
            sigma = 1.0;
        }
        for (&v, &m) in plane.iter().zip(mask) {
            out.push(if m { 0.0 } else { norm.apply((v - stats.median) / sigma) });
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
    fn a_band_is_blank_when_it_holds_no_image() {
        let n = 9 * 9;
        let sky: Vec<f32> = (0..n).map(|k| (k as f32 * 0.37).sin()).collect();
        let mut half_masked = sky.clone();
        half_masked[..n / 2].iter_mut().for_each(|v| *v = f32::NAN);
        // u: all NaN; g: all 0 (a pipeline's fill); r: sky; i: half NaN, the rest sky.
        let c = Cutout::from_planes("x", 9, 9, [vec![f32::NAN; n], vec![0.0; n], sky.clone(), half_masked]);
        assert_eq!(c.blank_bands(), vec![Band::U, Band::G]);
        let full = Cutout::from_planes("y", 9, 9, [sky.clone(), sky.clone(), sky.clone(), sky]);
        assert!(full.blank_bands().is_empty());
        assert_eq!(band_list(&[Band::U, Band::I]), "u,i");
    }

    #[test]
    fn median_matches_numpy_convention() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn a_knee_keeps_faint_values_and_the_shape_of_bright_cores() {
        let hard = Normalisation::from(50.0);
        let soft = Normalisation { clip_sigma: 50.0, knee_sigma: 10.0 };
        // Below the knee nothing changes; the hard clip is the old clamp.
        for x in [-9.5f32, -1.0, 0.0, 0.3, 4.0, 10.0] {
            assert_eq!(soft.apply(x), x);
            assert_eq!(hard.apply(x), x);
        }
        assert_eq!(hard.apply(80.0), 50.0);
        assert_eq!(hard.apply(-1e4), -50.0);
        // Beyond it: continuous at the knee, odd, strictly increasing up to 5,000 sigma (no
        // plateau where a core passes 50 sigma), and inside the clip.
        assert!((soft.apply(10.001) - 10.001).abs() < 1e-3);
        let xs: Vec<f32> = (0..400).map(|k| 10.0 * 1.02f32.powi(k)).filter(|&x| x <= 5.0e3).collect();
        for w in xs.windows(2) {
            let (a, b) = (soft.apply(w[0]), soft.apply(w[1]));
            assert!(b > a, "{} -> {a}, {} -> {b}", w[0], w[1]);
            assert!(b < 50.0);
            assert_eq!(soft.apply(-w[1]), -b);
        }
        // 50 and 500 sigma stay apart (a hard clip makes them equal).
        assert!(soft.apply(500.0) - soft.apply(50.0) > 5.0);
        // A bright core through `preprocess`: the hard clip flattens its brightest pixels to one
        // value, the knee keeps them in order.
        let n = 21;
        let mut r = vec![0f32; n * n];
        for (k, v) in r.iter_mut().enumerate() {
            let (x, y) = ((k % n) as f32 - 10.0, (k / n) as f32 - 10.0);
            *v = ((k as u32).wrapping_mul(2654435761) >> 16) as f32 / 65536.0 - 0.5
                + 3000.0 * (-(x * x + y * y) / 4.0).exp();
        }
        let c = Cutout::from_planes("core", n, n, [r.clone(), r.clone(), r.clone(), r]);
        let at_max = |p: &[f32]| {
            let max = p.iter().cloned().fold(f32::MIN, f32::max);
            p.iter().filter(|&&v| v == max).count()
        };
        assert!(at_max(&preprocess(&c, hard)[..n * n]) > 20, "the hard clip's plateau");
        assert_eq!(at_max(&preprocess(&c, soft)[..n * n]), 1, "one brightest pixel, as in the image");
        let soft_core: Vec<f32> = preprocess(&c, soft)[..n * n].to_vec();
        let centre = 10 * n + 10;
        assert!(soft_core[centre] > soft_core[centre + 1] && soft_core[centre + 1] > soft_core[centre + 2]);
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
        plane[5] = 1e3; // ~270 robust sigmas: real light, clipped
        plane[6] = f32::NAN;
        let c = Cutout::from_planes("c", 10, 10, [plane.clone(), plane.clone(), plane.clone(), plane]);
        let p = preprocess(&c, 3.0);
        assert_eq!(p[5], 3.0);
        assert_eq!(p[6], 0.0);
        assert!(p.iter().all(|v| v.is_finite() && v.abs() <= 3.0));
    }

    /// Sky noise of sigma `sigma` around `level` (a hash-driven Box-Muller, so no RNG crate is
    /// needed and every value is distinct, as in a real float image).
    fn noisy_plane(n: usize, seed: u64, level: f32, sigma: f32) -> Vec<f32> {
        let unit = |k: u64| -> f64 {
            let mut z = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 31)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n as u64)
            .map(|k| {
                let g = (-2.0 * unit(2 * k).ln()).sqrt() * (std::f64::consts::TAU * unit(2 * k + 1)).cos();
                level + sigma * g as f32
            })
            .collect()
    }

    /// A KiDS-like cutout in flux units (sky sigma 1e-12), 41 x 41, all four bands alike.
    fn kids_sky() -> Cutout {
        Cutout::from_planes("sky", 41, 41, std::array::from_fn(|b| noisy_plane(41 * 41, b as u64, 0.0, 1e-12)))
    }

    fn with_pixels(c: Cutout, pixels: &[usize], value: f32) -> Cutout {
        let planes: [Vec<f32>; 4] = std::array::from_fn(|b| {
            let mut p = c.bands[b].clone();
            for &k in pixels {
                p[k] = value;
            }
            p
        });
        // Pixels masked before (NaN set earlier) stay masked.
        let mut out = Cutout::from_planes(c.name, c.width, c.height, planes);
        for b in 0..4 {
            for (m, &was) in out.mask[b].iter_mut().zip(&c.mask[b]) {
                *m |= was;
            }
        }
        out
    }

    /// The preprocessed value of each listed pixel is 0 (masked), and the rest is sky of unit
    /// sigma: the bad pixels neither show nor distort the normalisation.
    fn assert_masked_and_sky_intact(c: &Cutout, pixels: &[usize]) {
        let p = preprocess(c, 50.0);
        let n = c.width * c.height;
        for b in 0..4 {
            let plane = &p[b * n..(b + 1) * n];
            for &k in pixels {
                assert_eq!(plane[k], 0.0, "band {b} pixel {k} not masked: {}", plane[k]);
            }
            let rest: Vec<f32> = (0..n).filter(|k| !pixels.contains(k)).map(|k| plane[k]).collect();
            let sd = std_dev(&rest);
            assert!((sd - 1.0).abs() < 0.1, "band {b}: the sky should have unit sigma, got {sd}");
        }
    }

    #[test]
    fn nan_and_inf_pixels_are_masked() {
        let c = with_pixels(kids_sky(), &[3, 40], f32::NAN);
        let c = with_pixels(c, &[500], f32::INFINITY);
        let c = with_pixels(c, &[501], f32::NEG_INFINITY);
        let (_, counts) = non_physical_mask(&c);
        assert_eq!(counts.non_finite, 4 * 4);
        assert_masked_and_sky_intact(&c, &[3, 40, 500, 501]);
    }

    #[test]
    fn bologna_sentinel_100_in_flux_units_is_masked() {
        let bad = [10, 11, 12, 300, 900];
        let c = with_pixels(kids_sky(), &bad, 100.0);
        let (_, counts) = non_physical_mask(&c);
        assert_eq!(counts.total(), 4 * bad.len());
        assert_masked_and_sky_intact(&c, &bad);
    }

    #[test]
    fn a_single_1e30_sentinel_is_masked_as_an_outlier() {
        let c = with_pixels(kids_sky(), &[777], 1e30);
        let (_, counts) = non_physical_mask(&c);
        assert_eq!(counts.outlier, 4, "one pixel per band, found by its distance, not by repetition");
        assert_masked_and_sky_intact(&c, &[777]);
    }

    #[test]
    fn a_tile_edge_filled_with_zeros_is_masked() {
        // The left 15 columns lie outside the tile: 0.0, as coadds fill them.
        let edge: Vec<usize> = (0..41 * 41).filter(|k| k % 41 < 15).collect();
        let c = with_pixels(kids_sky(), &edge, 0.0);
        let (_, counts) = non_physical_mask(&c);
        assert_eq!(counts.fill, 4 * edge.len());
        assert_masked_and_sky_intact(&c, &edge);
    }

    #[test]
    fn a_masked_region_and_a_bad_column_with_fill_values_are_masked() {
        let region: Vec<usize> = (0..41 * 41).filter(|k| (k / 41) < 6 && (k % 41) > 30).collect();
        let column: Vec<usize> = (0..41).map(|row| row * 41 + 20).collect();
        let c = with_pixels(with_pixels(kids_sky(), &region, -99.0), &column, 3.5e-12);
        let bad: Vec<usize> = region.iter().chain(&column).copied().collect();
        assert_masked_and_sky_intact(&c, &bad);
    }

    #[test]
    fn a_pixel_beyond_1e4_sigma_is_masked_but_a_bright_galaxy_is_not() {
        // A galaxy whose core reaches 3,000 sky sigmas is real light; a lone pixel at 30,000
        // sigmas is not.
        let mut c = kids_sky();
        for b in 0..4 {
            for row in 0..41 {
                for col in 0..41 {
                    let r2 = ((row as f32 - 20.0).powi(2) + (col as f32 - 20.0).powi(2)) / 4.0;
                    c.bands[b][row * 41 + col] += 3e-9 * (-r2).exp();
                }
            }
            c.bands[b][5] = 3e-8;
        }
        let (masks, counts) = non_physical_mask(&c);
        assert_eq!(counts.outlier, 4);
        assert!(masks.iter().all(|m| m[5] && !m[20 * 41 + 20]));
        let p = preprocess(&c, 50.0);
        assert_eq!(p[5], 0.0);
        assert_eq!(p[20 * 41 + 20], 50.0, "the galaxy core is clipped, not masked");
    }

    #[test]
    fn quantised_counts_keep_their_repeated_values() {
        // Integer counts (ZP 30 images stored as integers): zeros and repeats are real values.
        let planes: [Vec<f32>; 4] =
            std::array::from_fn(|b| noisy_plane(41 * 41, b as u64 + 9, 0.0, 4.0).iter().map(|v| v.round()).collect());
        let c = Cutout::from_planes("counts", 41, 41, planes);
        let (_, counts) = non_physical_mask(&c);
        assert_eq!(counts.total(), 0);
    }

    #[test]
    fn a_lone_exact_zero_in_float_sky_is_kept() {
        let c = with_pixels(kids_sky(), &[100], 0.0);
        assert_eq!(non_physical_mask(&c).1.total(), 0);
    }

    #[test]
    fn constant_band_gives_finite_zeros() {
        let c = Cutout::from_planes("c", 4, 4, std::array::from_fn(|_| vec![7.0; 16]));
        assert!(preprocess(&c, 5.0).iter().all(|&v| v == 0.0));
    }
}
