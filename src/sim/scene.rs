//! Scene recipes: what is in a cutout (a lens with its lensed source, or one of the look-alikes)
//! and how it is observed (PSF, sky and Poisson noise), per band.
//!
//! Every object is drawn from its own random stream, seeded by the run's seed and the object's
//! index, so results do not depend on the number of threads or on the order of work.

use super::artefacts;
use super::light::{integrate, integrate_many, pixel_mean, Grid, SamplePoints, Sampling, Sersic};
use super::lookalikes;
use super::mass::SieShear;
use super::psf::{psf_kernel, Convolver, PsfShape, Spectrum};
use super::ranges::{LookMix, Ranges, RingRecipe, Span};
use crate::cutout::{Band, Cutout};
use crate::vmath::standard_normals;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Poisson};
use serde::Serialize;
use std::f64::consts::PI;

/// How the survey is observed and which objects are drawn. Defaults: KiDS DR4.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub size: usize,
    pub pixel_arcsec: f64,
    /// Magnitude zero point of the pixel values: KiDS DR4 coadds use 0 (fluxes ~1e-11); 30 gives
    /// counts like many other surveys.
    pub zero_point: f64,
    /// Median seeing FWHM per band (u, g, r, i).
    pub fwhm_arcsec: [f64; 4],
    /// Relative scatter of the seeing from object to object.
    pub fwhm_scatter: f64,
    /// 5-sigma limiting magnitude in a 2" diameter aperture, per band (u, g, r, i).
    pub depth_mag: [f64; 4],
    /// Sky surface brightness per band, mag/arcsec^2: sets the effective gain for Poisson noise.
    pub sky_mag_arcsec2: [f64; 4],
    pub lens_fraction: f64,
    /// A lens is kept only if its lensed images reach this signal-to-noise in g ...
    pub min_arc_snr_g: f64,
    /// ... and the source is magnified at least this much in total.
    pub min_magnification: f64,
    /// Unlensed source r magnitude range.
    pub source_mag_r: (f64, f64),
    /// Added to the lensed sources' colours (u-r, g-r, r-i): another source population (e.g.
    /// redder, dustier sources) for domain-shift experiments. Zero by default.
    pub source_colour_shift: [f64; 3],
    /// Every randomised nuisance (PSF, noise, galaxies, look-alikes, artefacts): KiDS-like by
    /// default, [`Ranges::randomised`] for training.
    pub ranges: Ranges,
    /// Factors on how often each kind of look-alike is drawn (`train --boost`): training can show
    /// more of the kinds the finder confuses with lenses without changing what a test set holds.
    /// Empty: the look's own shares.
    pub kind_boost: Vec<(Kind, f64)>,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            size: 101,
            pixel_arcsec: 0.2,
            zero_point: 0.0,
            fwhm_arcsec: [1.0, 0.85, 0.7, 0.85],
            fwhm_scatter: 0.12,
            depth_mag: [24.2, 25.1, 25.0, 23.7],
            sky_mag_arcsec2: [22.4, 22.1, 21.1, 20.3],
            lens_fraction: 0.5,
            min_arc_snr_g: 40.0,
            min_magnification: 3.0,
            source_mag_r: (20.5, 24.5),
            source_colour_shift: [0.0; 3],
            ranges: Ranges::kids(),
            kind_boost: Vec::new(),
        }
    }
}

/// Radius of the 2" diameter aperture that depths refer to, in arcsec.
const DEPTH_APERTURE_RADIUS_ARCSEC: f64 = 1.0;

impl SimConfig {
    /// The configuration training uses: KiDS-centred, every nuisance randomised.
    pub fn randomised() -> SimConfig {
        SimConfig { ranges: Ranges::randomised(), ..SimConfig::default() }
    }

    pub fn grid(&self) -> Grid {
        Grid { size: self.size, pixel_arcsec: self.pixel_arcsec }
    }

    /// Flux (in pixel units) of a source of magnitude `mag`.
    pub fn flux(&self, mag: f64) -> f64 {
        10f64.powf(-0.4 * (mag - self.zero_point))
    }

    /// Per-pixel sky noise sigma of a band: the 5-sigma aperture flux of the depth, divided by 5,
    /// spread over the aperture's pixels as independent noise.
    pub fn sky_sigma(&self, band: Band) -> f64 {
        let aperture_pixels = PI * (DEPTH_APERTURE_RADIUS_ARCSEC / self.pixel_arcsec).powi(2);
        self.flux(self.depth_mag[band.index()]) / 5.0 / aperture_pixels.sqrt()
    }

    /// Sky level per pixel of a band (not added to the image: coadds are sky-subtracted), used for
    /// the effective gain: a source of flux F adds variance F sigma^2 / sky.
    pub fn sky_level(&self, band: Band) -> f64 {
        self.flux(self.sky_mag_arcsec2[band.index()]) * self.pixel_arcsec * self.pixel_arcsec
    }
}

/// What a simulated cutout shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    LensArc,
    LensRing,
    LensDouble,
    LensQuad,
    Elliptical,
    EllipticalCompanions,
    TangentialCompanion,
    Spiral,
    RingGalaxy,
    Merger,
    StarField,
    PolarRing,
    EdgeOnDisc,
    ShellsStreams,
    Group,
}

impl Kind {
    pub fn is_lens(self) -> bool {
        matches!(self, Kind::LensArc | Kind::LensRing | Kind::LensDouble | Kind::LensQuad)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::LensArc => "lens_arc",
            Kind::LensRing => "lens_ring",
            Kind::LensDouble => "lens_double",
            Kind::LensQuad => "lens_quad",
            Kind::Elliptical => "elliptical",
            Kind::EllipticalCompanions => "companions",
            Kind::TangentialCompanion => "tangential_companion",
            Kind::Spiral => "spiral",
            Kind::RingGalaxy => "ring_galaxy",
            Kind::Merger => "merger",
            Kind::StarField => "star_field",
            Kind::PolarRing => "polar_ring",
            Kind::EdgeOnDisc => "edge_on_disc",
            Kind::ShellsStreams => "shells_streams",
            Kind::Group => "group",
        }
    }

    /// Every kind, lenses first.
    pub const ALL: [Kind; 15] = [
        Kind::LensArc,
        Kind::LensRing,
        Kind::LensDouble,
        Kind::LensQuad,
        Kind::Elliptical,
        Kind::EllipticalCompanions,
        Kind::TangentialCompanion,
        Kind::Spiral,
        Kind::RingGalaxy,
        Kind::Merger,
        Kind::StarField,
        Kind::PolarRing,
        Kind::EdgeOnDisc,
        Kind::ShellsStreams,
        Kind::Group,
    ];

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    const LENSES: [(Kind, f64); 4] =
        [(Kind::LensArc, 0.4), (Kind::LensRing, 0.2), (Kind::LensDouble, 0.25), (Kind::LensQuad, 0.15)];
    const NON_LENSES: [(Kind, f64); 7] = [
        (Kind::Elliptical, 0.2),
        (Kind::EllipticalCompanions, 0.14),
        (Kind::TangentialCompanion, 0.14),
        (Kind::Spiral, 0.15),
        (Kind::RingGalaxy, 0.13),
        (Kind::Merger, 0.14),
        (Kind::StarField, 0.10),
    ];
    /// The widened look-alikes of domain randomisation: ring-like and arc-like galaxies weigh
    /// most, because they are what a finder confuses with lenses.
    const NON_LENSES_WIDE: [(Kind, f64); 11] = [
        (Kind::Elliptical, 0.11),
        (Kind::EllipticalCompanions, 0.09),
        (Kind::TangentialCompanion, 0.12),
        (Kind::Spiral, 0.10),
        (Kind::RingGalaxy, 0.17),
        (Kind::Merger, 0.09),
        (Kind::StarField, 0.04),
        (Kind::PolarRing, 0.06),
        (Kind::EdgeOnDisc, 0.07),
        (Kind::ShellsStreams, 0.08),
        (Kind::Group, 0.07),
    ];
}

/// What the simulator knows about an object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimTruth {
    pub kind: Kind,
    pub is_lens: bool,
    pub theta_e_arcsec: Option<f64>,
    /// Unlensed source magnitude in r.
    pub source_mag_r: Option<f64>,
    /// Signal-to-noise of the lensed images in g: sum of the lensed flux over the mask pixels
    /// divided by sigma_g sqrt(N_mask).
    pub arc_snr_g: Option<f64>,
    pub magnification: Option<f64>,
    /// Pixels where the lensed light (g band, after the PSF) exceeds the g sky sigma.
    pub lensed_pixels: usize,
    /// Lensed g flux over the mask, in units of sigma_g (the challenge's
    /// flux_lensed_image_in_sigma).
    pub lensed_flux_sigma: f64,
    pub fwhm_arcsec: [f64; 4],
    /// Moffat beta of the PSF.
    pub psf_beta: f64,
    /// Depth offset of the g band from the configuration's, magnitudes.
    pub depth_offset_g_mag: f64,
    /// g - r of the (first) lensed source.
    pub source_g_r: Option<f64>,
    /// Effective radius of the (first) lensed source, arcsec: how wide its arcs and rings are.
    pub source_r_e_arcsec: Option<f64>,
    /// The recipe of a ring galaxy's ring.
    pub ring_recipe: Option<RingRecipe>,
    /// Total r magnitude of the central red galaxy (bulge, envelope and disc) of a lens or of a
    /// look-alike built around one, so that scores can be broken down by how bright it is.
    pub host_mag_r: Option<f64>,
    /// Effective radius of that galaxy's main component, arcsec.
    pub host_r_e_arcsec: Option<f64>,
    /// Factor on the Poisson noise's variance per unit flux ([`Ranges::shot_noise_factor`]).
    pub shot_noise_factor: f64,
    /// A look-alike's light around its central galaxy (companions, ring, tail, shells), as S/N in
    /// g measured as `arc_snr_g` is: how bright what could pass for an arc is.
    pub feature_snr_g: Option<f64>,
    /// A look-alike's first companion's distance or its ring's radius, arcsec: where what could
    /// pass for an arc sits, to set beside lenses' `theta_e_arcsec`.
    pub feature_radius_arcsec: Option<f64>,
    /// Small galaxies put within a few arcsec of the central galaxy: a look-alike's companions,
    /// or a lens's neighbours ([`Ranges::lens_neighbours`]).
    pub neighbours: usize,
    /// Distance of the nearest unrelated field galaxy from the centre, arcsec; none when the
    /// scene has none ([`Ranges::field_clear_arcsec`]).
    pub field_nearest_arcsec: Option<f64>,
    /// Artefacts put on the cutout (names joined by '+'), empty when none.
    pub artefacts: String,
}

/// One simulated cutout with its truth and lensed-light mask (row-major, row 0 at the bottom).
#[derive(Debug, Clone)]
pub struct SimObject {
    pub cutout: Cutout,
    pub truth: SimTruth,
    pub lensed_mask: Vec<bool>,
}

/// Magnitudes in u, g, r, i from an r magnitude and colours.
pub(super) fn mags(r: f64, u_r: f64, g_r: f64, r_i: f64) -> [f64; 4] {
    [r + u_r, r + g_r, r, r - r_i]
}

pub(super) type Rng64 = rand_pcg::Pcg64Mcg;

/// SplitMix64: turns (seed, index) into well-separated stream seeds.
pub(super) fn stream_seed(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(super) fn red_colours(rng: &mut Rng64) -> (f64, f64, f64) {
    red_colours_spread(rng, 0.0)
}

/// Red-sequence colours (u-r, g-r, r-i); `spread` 1 widens them to cover redshifts 0.1 - 0.8.
pub(super) fn red_colours_spread(rng: &mut Rng64, spread: f64) -> (f64, f64, f64) {
    (
        rng.random_range(2.4 - 0.6 * spread..3.2 + 0.3 * spread),
        rng.random_range(1.1 - 0.35 * spread..1.7 + 0.2 * spread),
        rng.random_range(0.4 - 0.1 * spread..0.7 + 0.15 * spread),
    )
}

pub(super) fn blue_colours(rng: &mut Rng64) -> (f64, f64, f64) {
    (rng.random_range(0.2..1.2), rng.random_range(-0.1..0.5), rng.random_range(-0.05..0.3))
}

/// `table`'s weights with each boosted kind's multiplied by its factor.
fn boosted(table: &[(Kind, f64)], boost: &[(Kind, f64)]) -> Vec<(Kind, f64)> {
    table.iter().map(|&(k, w)| (k, boost.iter().filter(|b| b.0 == k).fold(w, |w, b| w * b.1))).collect()
}

pub(super) fn pick<T: Copy>(rng: &mut Rng64, table: &[(T, f64)]) -> T {
    let total: f64 = table.iter().map(|t| t.1).sum();
    let mut x = rng.random_range(0.0..total);
    for &(k, w) in table {
        if x < w {
            return k;
        }
        x -= w;
    }
    table[table.len() - 1].0
}

/// Light before the PSF: flux per pixel per band, plus point sources.
pub(super) struct Scene {
    pub(super) bands: [Vec<f64>; 4],
    pub(super) stars: Vec<((f64, f64), [f64; 4])>,
    /// The g band of what a look-alike adds around its central galaxy (companions, rings, tails,
    /// shells), kept apart so its S/N can be measured as a lensed arc's is.
    pub(super) features_g: Vec<f64>,
    /// Distance of the nearest field galaxy from the cutout's centre, arcsec (none: no field
    /// galaxy), for the truth table.
    pub(super) field_nearest_arcsec: Option<f64>,
}

impl Scene {
    pub(super) fn new(n: usize) -> Scene {
        Scene {
            bands: std::array::from_fn(|_| vec![0.0; n]),
            stars: Vec::new(),
            features_g: vec![0.0; n],
            field_nearest_arcsec: None,
        }
    }

    /// [`Scene::add`] for light a look-alike adds around its central galaxy.
    pub(super) fn add_feature(&mut self, unit: &[f64], fluxes: [f64; 4]) {
        self.add(unit, fluxes);
        let g = fluxes[Band::G.index()];
        self.features_g.iter_mut().zip(unit).for_each(|(o, u)| *o += u * g);
    }

    /// Adds a unit-flux image scaled to each band's flux.
    pub(super) fn add(&mut self, unit: &[f64], fluxes: [f64; 4]) {
        for (b, f) in fluxes.iter().enumerate() {
            for (o, u) in self.bands[b].iter_mut().zip(unit) {
                *o += u * f;
            }
        }
    }
}

/// A Sersic galaxy integrated over pixels, total flux 1 (what falls outside the cutout is lost).
/// `max_radius_arcsec` bounds the work for small, faint galaxies; the central galaxy uses all
/// pixels (its wings matter).
pub(super) fn sersic_image(grid: &Grid, s: &Sersic, max_radius_arcsec: f64) -> Vec<f64> {
    let e = s.evaluator();
    let sampling = Sampling {
        fine_radius_arcsec: 2.0 * grid.pixel_arcsec,
        fine: 7,
        mid_radius_arcsec: (s.r_e + 2.0 * grid.pixel_arcsec).min(1.5),
        max_radius_arcsec,
    };
    integrate_many(grid, |xs, ys, out| e.at_many(xs, ys, out), s.center, sampling)
}

/// Radius beyond which a small galaxy's light is ignored: 10 effective radii along its minor
/// axis, plus a margin.
pub(super) fn small_galaxy_reach(s: &Sersic) -> f64 {
    10.0 * s.r_e / s.q.sqrt() + 1.0
}

/// Sampling for smooth, numerically normalised shapes (rings, arms, tails): one sample per pixel.
const COARSE: Sampling =
    Sampling { fine_radius_arcsec: 0.0, fine: 1, mid_radius_arcsec: 0.0, max_radius_arcsec: f64::INFINITY };

/// Source-plane positions of every pixel centre for one lens: computed once per object, shared
/// by all the sources drawn behind it.
struct RayMap {
    beta: Vec<(f64, f64)>,
}

impl RayMap {
    fn new(grid: &Grid, lens: &SieShear) -> RayMap {
        let n = grid.size * grid.size;
        let (mut xs, mut ys) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for row in 0..grid.size {
            for col in 0..grid.size {
                let (x, y) = grid.sky_from_pixel(col as f64, row as f64);
                xs.push(x);
                ys.push(y);
            }
        }
        let (mut bxs, mut bys) = (vec![0.0; n], vec![0.0; n]);
        lens.shooter().ray_shoot_many(&xs, &ys, &mut bxs, &mut bys);
        RayMap { beta: bxs.into_iter().zip(bys).collect() }
    }
}

/// The lensed image of a unit-flux Sersic source: pixels whose centre maps near the source are
/// ray-shot again on a 4 x 4 sub-grid; those mapping beyond the source's reach stay dark. Every
/// ray and every source-plane point is gathered first, then shot and evaluated all at once.
fn lensed_image(grid: &Grid, lens: &SieShear, rays: &RayMap, source: &Sersic) -> Vec<f64> {
    let e = source.evaluator();
    let q = source.q.min(1.0 / source.q);
    let reach = 8.0 * source.r_e / q.sqrt() + grid.pixel_arcsec;
    let near = 3.0 * source.r_e / q.sqrt() + 2.0 * grid.pixel_arcsec;
    let area = grid.pixel_area();
    let mut out = vec![0.0; grid.size * grid.size];
    // Sub-grids of the pixels near the source (image plane, then shot), and the centres of the
    // others within reach (already shot).
    let (mut fine, mut coarse) = (SamplePoints::default(), SamplePoints::default());
    // (pixel, sub) in the order their points were pushed.
    let mut pixels: Vec<(usize, usize)> = Vec::new();
    for (k, &(bx, by)) in rays.beta.iter().enumerate() {
        let d = ((bx - source.center.0).powi(2) + (by - source.center.1).powi(2)).sqrt();
        if d > reach {
            continue;
        }
        if d < near {
            let (x, y) = grid.sky_from_pixel((k % grid.size) as f64, (k / grid.size) as f64);
            fine.push_pixel(grid, x, y, 4);
            pixels.push((k, 4));
        } else {
            coarse.xs.push(bx);
            coarse.ys.push(by);
            pixels.push((k, 1));
        }
    }
    let (mut bxs, mut bys) = (vec![0.0; fine.xs.len()], vec![0.0; fine.xs.len()]);
    lens.shooter().ray_shoot_many(&fine.xs, &fine.ys, &mut bxs, &mut bys);
    (fine.xs, fine.ys) = (bxs, bys);
    let mut profile = |xs: &[f64], ys: &[f64], out: &mut [f64]| e.at_many(xs, ys, out);
    let values = fine.evaluate(&mut profile);
    let mut at = 0;
    for &(k, sub) in pixels.iter().filter(|p| p.1 > 1) {
        out[k] = pixel_mean(&values[at..at + sub * sub], sub) * area;
        at += sub * sub;
    }
    let values = coarse.evaluate(&mut profile);
    for (&(k, _), &v) in pixels.iter().filter(|p| p.1 == 1).zip(values) {
        out[k] = v * area;
    }
    out
}

/// A ring of light: Gaussian in elliptical radius around `r0`, total flux 1 (numerically), with
/// knots (azimuth, strength) on it.
pub(super) fn ring_image(
    grid: &Grid,
    center: (f64, f64),
    r0: f64,
    width: f64,
    q: f64,
    angle: f64,
    knots: &[(f64, f64)],
) -> Vec<f64> {
    shaped_ring(grid, center, r0, width, q, angle, |phi, r| {
        let knot: f64 = knots.iter().map(|&(p, a)| a * (-(angle_diff(phi, p) * r / (2.0 * width)).powi(2)).exp()).sum();
        1.0 + knot
    })
}

/// A Gaussian ring (elliptical radius `r0`, width `width`) whose brightness is multiplied by
/// `profile(azimuth, radius)` (negative values count as 0), total flux 1.
pub(super) fn shaped_ring(
    grid: &Grid,
    center: (f64, f64),
    r0: f64,
    width: f64,
    q: f64,
    angle: f64,
    profile: impl Fn(f64, f64) -> f64,
) -> Vec<f64> {
    let (s, c) = angle.sin_cos();
    let f = |x: f64, y: f64| {
        let (dx, dy) = (x - center.0, y - center.1);
        let (u, v) = (c * dx + s * dy, -s * dx + c * dy);
        let r = (q * u * u + v * v / q).sqrt();
        let phi = v.atan2(u);
        (-(r - r0).powi(2) / (2.0 * width * width)).exp() * profile(phi, r).max(0.0)
    };
    normalised(integrate(grid, f, center, COARSE))
}

pub(super) fn angle_diff(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(2.0 * PI);
    if d > PI {
        d - 2.0 * PI
    } else {
        d
    }
}

/// Logarithmic spiral arms: how many, their pitch angle and phase.
pub(super) struct Arms {
    pub(super) count: u32,
    pub(super) pitch_rad: f64,
    pub(super) phase_rad: f64,
}

/// A spiral disk: exponential profile modulated by logarithmic arms, total flux 1.
pub(super) fn spiral_image(grid: &Grid, disk: &Sersic, arms: &Arms) -> Vec<f64> {
    let (center, r_e, q, angle) = (disk.center, disk.r_e, disk.q, disk.angle_rad);
    let disk = disk.evaluator();
    let (s, c) = angle.sin_cos();
    let f = |x: f64, y: f64| {
        let (dx, dy) = (x - center.0, y - center.1);
        let (u, v) = (c * dx + s * dy, -s * dx + c * dy);
        let r = (q * u * u + v * v / q).sqrt().max(1e-3);
        let phi = v.atan2(u);
        let wave = (arms.count as f64 * (phi - (r / r_e).ln() / arms.pitch_rad.tan()) + arms.phase_rad).cos();
        disk.at(x, y) * (0.35 + 0.65 * wave.max(0.0).powi(2) * 2.0)
    };
    normalised(integrate(grid, f, center, COARSE))
}

/// A chain of Gaussian blobs along a circular arc (tidal tail), total flux 1.
///
/// A round Gaussian is the product of a function of the column and one of the row, so each blob
/// takes one `exp` per column and one per row (2 x 101) instead of one per pixel (10,201): the
/// same image to rounding, and a twentieth of the simulator's time on AVX2 desktops, where the
/// library's `exp` was one call per value.
pub(super) fn tail_image(grid: &Grid, center: (f64, f64), radius: f64, from: f64, span: f64, width: f64) -> Vec<f64> {
    let steps = 24;
    let n = grid.size;
    let inv = 1.0 / (2.0 * width * width);
    let (xs, ys): (Vec<f64>, Vec<f64>) = (0..n).map(|k| grid.sky_from_pixel(k as f64, k as f64)).unzip();
    let mut out = vec![0.0; n * n];
    let (mut along_x, mut along_y) = (vec![0.0; n], vec![0.0; n]);
    for k in 0..steps {
        let t = from + span * k as f64 / (steps - 1) as f64;
        let r = radius * (1.0 + 0.25 * k as f64 / steps as f64);
        let fade = 1.0 - 0.7 * k as f64 / steps as f64;
        let (px, py) = (center.0 + r * t.cos(), center.1 + r * t.sin());
        along_x.iter_mut().zip(&xs).for_each(|(g, &x)| *g = (-(x - px).powi(2) * inv).exp());
        along_y.iter_mut().zip(&ys).for_each(|(g, &y)| *g = fade * (-(y - py).powi(2) * inv).exp());
        for (row, &gy) in out.chunks_exact_mut(n).zip(&along_y) {
            if gy == 0.0 {
                continue;
            }
            row.iter_mut().zip(&along_x).for_each(|(o, &gx)| *o += gy * gx);
        }
    }
    normalised(out)
}

/// A small round Gaussian blob (star-forming knot), total flux 1 (numerically).
pub(super) fn blob_image(grid: &Grid, center: (f64, f64), sigma: f64) -> Vec<f64> {
    let f = |x: f64, y: f64| (-((x - center.0).powi(2) + (y - center.1).powi(2)) / (2.0 * sigma * sigma)).exp();
    let sampling = Sampling {
        fine_radius_arcsec: 3.0 * grid.pixel_arcsec,
        fine: 3,
        mid_radius_arcsec: 0.0,
        max_radius_arcsec: 6.0 * sigma + 0.5,
    };
    normalised(integrate(grid, f, center, sampling))
}

pub(super) fn normalised(mut v: Vec<f64>) -> Vec<f64> {
    let total: f64 = v.iter().sum();
    if total > 0.0 {
        v.iter_mut().for_each(|x| *x /= total);
    }
    v
}

/// The galaxy of a lens of Einstein radius `theta_e` (or of a look-alike drawn as one): its size
/// and brightness follow `theta_e`, or are drawn on their own when the ranges say so.
pub(super) fn lens_galaxy(rng: &mut Rng64, ranges: &Ranges, theta_e: f64) -> (Sersic, [f64; 4]) {
    let hint = match ranges.host_size_hint_arcsec {
        Some(span) => log_uniform(rng, span),
        None => theta_e,
    };
    red_galaxy(rng, ranges, hint)
}

/// The central red galaxy of lenses and of several look-alikes, its colours and centre drawn
/// from the ranges.
pub(super) fn red_galaxy(rng: &mut Rng64, ranges: &Ranges, size_hint: f64) -> (Sersic, [f64; 4]) {
    let r_mag = rng.random_range(18.0..20.8) - 1.2 * (size_hint / 0.8).log10();
    let (u_r, g_r, r_i) = red_colours_spread(rng, ranges.lens_colour_spread);
    let c = ranges.centre_offset_arcsec;
    let s = Sersic {
        center: (rng.random_range(-c..=c), rng.random_range(-c..=c)),
        r_e: (size_hint * rng.random_range(0.5..1.3)).clamp(0.4, 3.0),
        n: if ranges.lens_colour_spread > 0.0 { rng.random_range(2.5..6.0) } else { rng.random_range(3.0..5.0) },
        q: if ranges.lens_colour_spread > 0.0 { rng.random_range(0.45..1.0) } else { rng.random_range(0.6..1.0) },
        angle_rad: rng.random_range(0.0..PI),
    };
    (s, mags(r_mag, u_r, g_r, r_i))
}

pub(super) fn fluxes(cfg: &SimConfig, m: [f64; 4]) -> [f64; 4] {
    m.map(|x| cfg.flux(x))
}

/// Field galaxies and stars that every scene has a few of.
pub(super) fn add_field(rng: &mut Rng64, cfg: &SimConfig, grid: &Grid, scene: &mut Scene, extra_stars: usize) {
    let half = grid.size as f64 * grid.pixel_arcsec / 2.0;
    let mean = if cfg.ranges.field_galaxies_mean.0 < cfg.ranges.field_galaxies_mean.1 {
        log_uniform(rng, cfg.ranges.field_galaxies_mean)
    } else {
        cfg.ranges.field_galaxies_mean.0
    };
    let n_gal = Poisson::new(mean.max(1e-6)).map(|p| p.sample(rng) as usize).unwrap_or(1);
    // Never wider than the cutout's inscribed circle, so that a small cutout still has room.
    let clear = cfg.ranges.field_clear_arcsec.min(0.9 * half);
    for _ in 0..n_gal {
        let (x, y) = loop {
            let p = (rng.random_range(-half..half), rng.random_range(-half..half));
            if (p.0 * p.0 + p.1 * p.1).sqrt() >= clear {
                break p;
            }
        };
        let d = (x * x + y * y).sqrt();
        scene.field_nearest_arcsec = Some(scene.field_nearest_arcsec.map_or(d, |n| n.min(d)));
        let red = rng.random_bool(0.4);
        let (u_r, g_r, r_i) = if red { red_colours(rng) } else { blue_colours(rng) };
        let s = Sersic {
            center: (x, y),
            r_e: rng.random_range(0.2..1.0),
            n: rng.random_range(0.7..3.5),
            q: rng.random_range(0.3..1.0),
            angle_rad: rng.random_range(0.0..PI),
        };
        let img = sersic_image(grid, &s, small_galaxy_reach(&s));
        scene.add(&img, fluxes(cfg, mags(rng.random_range(20.0..24.0), u_r, g_r, r_i)));
    }
    let n_stars = Poisson::new(0.6).map(|p| p.sample(rng) as usize).unwrap_or(0) + extra_stars;
    for _ in 0..n_stars {
        let pos = (rng.random_range(-half..half), rng.random_range(-half..half));
        let g_r: f64 = rng.random_range(0.3..1.4);
        let m = mags(rng.random_range(16.5..23.0), 1.0 + 1.3 * g_r, g_r, 0.4 * g_r);
        scene.stars.push((pos, fluxes(cfg, m)));
    }
}

/// The best lensed source found so far: its unit-flux image (before and after the g-band PSF)
/// and brightness.
struct LensChoice {
    unit: Vec<f64>,
    unit_g_conv: Vec<f64>,
    unit_flux: f64,
    magnification: f64,
    mag_r: f64,
    mags: [f64; 4],
    g_r: f64,
    snr: f64,
    /// The source's effective radius, arcsec.
    r_e: f64,
}

/// The lens's mass, aligned with its light within a scatter; quads need a flattened mass.
fn draw_mass(rng: &mut Rng64, kind: Kind, theta_e: f64, light: &Sersic) -> SieShear {
    let q_max = if kind == Kind::LensQuad { 0.75 } else { 1.0 };
    SieShear {
        theta_e,
        q: (light.q + rng.random_range(-0.1..0.1)).clamp(0.5, q_max),
        angle_rad: light.angle_rad + rng.random_range(-0.2..0.2),
        center: light.center,
        gamma1: rng.random_range(-0.05..0.05),
        gamma2: rng.random_range(-0.05..0.05),
    }
}

/// A source placed for the wanted configuration: near the centre (rings, quads), off-centre
/// (doubles) or near the caustic (arcs); its size from `size` when given
/// ([`Ranges::source_r_e_arcsec`]), else from the configuration's own range.
fn draw_source(rng: &mut Rng64, kind: Kind, lens: &SieShear, irregular: bool, size: Option<Span>) -> Sersic {
    let (beta_lo, beta_hi, r_lo, r_hi) = match kind {
        Kind::LensRing => (0.0, 0.08, 0.2, 0.5),
        Kind::LensQuad => (0.0, 0.1, 0.06, 0.2),
        Kind::LensDouble => (0.3, 0.6, 0.06, 0.2),
        _ => (0.1, 0.45, 0.15, 0.5),
    };
    let beta = lens.theta_e * rng.random_range(beta_lo..beta_hi);
    let phi = rng.random_range(0.0..2.0 * PI);
    // One draw either way, so the rest of the stream keeps its place.
    let r_e = match size {
        Some(span) => log_uniform(rng, span),
        None => rng.random_range(r_lo..r_hi),
    };
    Sersic {
        center: (lens.center.0 + beta * phi.cos(), lens.center.1 + beta * phi.sin()),
        r_e,
        n: rng.random_range(0.5..1.5),
        q: if irregular { rng.random_range(0.25..1.0) } else { rng.random_range(0.4..1.0) },
        angle_rad: rng.random_range(0.0..PI),
    }
}

/// Star-forming clumps of a source: up to `max` compact knots within `spread` effective radii of
/// its centre, lensed too. Returns their lensed image and their unlensed flux, relative to the
/// source's.
fn lensed_clumps(
    rng: &mut Rng64,
    grid: &Grid,
    lens: &SieShear,
    rays: &RayMap,
    source: &Sersic,
    max: usize,
    spread: f64,
) -> (Vec<f64>, f64) {
    let mut total = vec![0.0; grid.size * grid.size];
    let mut flux = 0.0;
    for _ in 0..rng.random_range(0..=max) {
        let off = (rng.random_range(-spread..spread) * source.r_e, rng.random_range(-spread..spread) * source.r_e);
        let clump = Sersic {
            center: (source.center.0 + off.0, source.center.1 + off.1),
            r_e: rng.random_range(0.03..0.08),
            n: 0.5,
            q: 1.0,
            angle_rad: 0.0,
        };
        let w = rng.random_range(0.05..0.25);
        let img = lensed_image(grid, lens, rays, &clump);
        total.iter_mut().zip(&img).for_each(|(t, v)| *t += w * v);
        flux += w;
    }
    (total, flux)
}

/// Colours (u-r, g-r, r-i) of a lensed source: g - r from the ranges, u - r and r - i following
/// it as star-forming to passive galaxies do, with a scatter; then the configured shift.
fn source_colours(rng: &mut Rng64, cfg: &SimConfig) -> (f64, f64, f64) {
    let (u_r, g_r, r_i) = star_forming_colours(rng, cfg.ranges.source_g_r);
    let [du, dg, di] = cfg.source_colour_shift;
    (u_r + du, g_r + dg, r_i + di)
}

/// Colours (u-r, g-r, r-i) of a star-forming galaxy with g - r drawn from `g_r`: lensed sources,
/// and look-alikes' companions and rings when [`Ranges::feature_g_r`] says so.
pub(super) fn star_forming_colours(rng: &mut Rng64, (lo, hi): Span) -> (f64, f64, f64) {
    let g_r = if hi > lo { rng.random_range(lo..hi) } else { lo };
    let u_r = 0.5 + 1.7 * g_r + rng.random_range(-0.3..0.3);
    let r_i = 0.05 + 0.35 * g_r + rng.random_range(-0.1..0.1);
    (u_r, g_r, r_i)
}

/// Colours of what a look-alike adds that could pass for a lensed source (companions, rings,
/// tails): those of sources where the ranges say so, else blue star-forming ones.
pub(super) fn feature_colours(rng: &mut Rng64, ranges: &Ranges) -> (f64, f64, f64) {
    match ranges.feature_g_r {
        Some(span) => star_forming_colours(rng, span),
        None => blue_colours(rng),
    }
}

fn uniform(rng: &mut Rng64, (lo, hi): Span) -> f64 {
    if hi > lo {
        rng.random_range(lo..hi)
    } else {
        lo
    }
}

pub(super) fn log_uniform(rng: &mut Rng64, (lo, hi): Span) -> f64 {
    uniform(rng, (lo.ln(), hi.ln())).exp()
}

/// The flux scale `f` at which a unit-flux convolved image reaches `target` S/N (as
/// [`arc_snr`] measures it), by bisection in log f. `None` when the image is empty.
fn flux_for_snr(unit_conv: &[f64], target: f64, sigma: f64) -> Option<f64> {
    let mut values: Vec<f64> = unit_conv.iter().copied().filter(|&v| v > 0.0).collect();
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(|a, b| b.total_cmp(a));
    let mut prefix = Vec::with_capacity(values.len());
    let mut sum = 0.0;
    for v in &values {
        sum += v;
        prefix.push(sum);
    }
    let snr = |f: f64| {
        let above = values.partition_point(|&v| v * f > sigma);
        if above == 0 {
            0.0
        } else {
            f * prefix[above - 1] / (sigma * (above as f64).sqrt())
        }
    };
    // Brackets: the brightest pixel at 1 sigma, and 1e6 times that.
    let (mut lo, mut hi) = ((sigma / values[0]).ln(), (sigma / values[0]).ln() + 14.0);
    for _ in 0..50 {
        let mid = 0.5 * (lo + hi);
        if snr(mid.exp()) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi.exp())
}

/// How one object is observed, drawn from the ranges: PSF and noise per band.
struct Look {
    psf: [PsfShape; 4],
    /// Sky noise sigma per band, pixel units.
    sigma: [f64; 4],
    depth_offset_mag: [f64; 4],
    /// Weight of the 4 nearest neighbours in the noise's smoothing kernel.
    noise_correlation: f64,
    /// Sky residual per band: constant, and gradient (x, y) across the cutout, in sky sigmas.
    sky_offset_sigma: [f64; 4],
    sky_gradient_sigma: [(f64, f64); 4],
    /// Factor on the variance per unit of a source's flux (see [`Ranges::shot_noise_factor`]).
    shot_noise_factor: f64,
}

impl Look {
    fn draw(rng: &mut Rng64, cfg: &SimConfig) -> Look {
        let r = &cfg.ranges;
        let beta = uniform(rng, r.psf_beta);
        let base = r.psf_fwhm_arcsec.map(|span| uniform(rng, span));
        let ellipticity = rng.random_range(0.0..=r.psf_ellipticity_max);
        let angle = rng.random_range(0.0..PI);
        let off = r.psf_offset_px_max;
        let psf = std::array::from_fn(|b| {
            let fwhm_arcsec = match (base, r.psf_fwhm_arcsec) {
                (Some(base), Some((lo, hi))) => (base * rng.random_range(0.8..1.25)).clamp(lo, hi),
                _ => (cfg.fwhm_arcsec[b] * (1.0 + cfg.fwhm_scatter * rng.random_range(-1.0..1.0))).max(0.3),
            };
            PsfShape {
                fwhm_arcsec,
                beta,
                ellipticity: (ellipticity * rng.random_range(0.8..=1.2)).min(r.psf_ellipticity_max),
                angle_rad: angle + rng.random_range(-0.2..=0.2),
                offset_px: (rng.random_range(-off..=off), rng.random_range(-off..=off)),
            }
        });
        let global = uniform(rng, r.depth_offset_mag);
        let s = r.depth_band_scatter_mag;
        let depth_offset_mag: [f64; 4] = std::array::from_fn(|_| global + rng.random_range(-s..=s));
        let sigma = std::array::from_fn(|b| cfg.sky_sigma(Band::ALL[b]) * 10f64.powf(-0.4 * depth_offset_mag[b]));
        let noise_correlation = rng.random_range(0.0..=r.noise_correlation_max);
        let sky_offset_sigma =
            std::array::from_fn(|_| rng.random_range(-r.sky_offset_sigma_max..=r.sky_offset_sigma_max));
        let direction = rng.random_range(0.0..2.0 * PI);
        let amplitude = rng.random_range(0.0..=r.sky_gradient_sigma_max);
        let sky_gradient_sigma = std::array::from_fn(|_| {
            let a = amplitude * rng.random_range(0.5..=1.0);
            (a * direction.cos(), a * direction.sin())
        });
        // Last, and drawn only from a real range: the KiDS look's stream is what it was.
        let shot_noise_factor = log_uniform(rng, r.shot_noise_factor);
        Look {
            psf,
            sigma,
            depth_offset_mag,
            noise_correlation,
            sky_offset_sigma,
            sky_gradient_sigma,
            shot_noise_factor,
        }
    }
}

/// Observes a scene: PSF per band (kernel spectra given), then sky noise (correlated as the
/// look says), Poisson noise of the sources, and sky residuals.
fn observe(
    rng: &mut Rng64,
    cfg: &SimConfig,
    look: &Look,
    scene: &Scene,
    spectra: &[Spectrum],
    conv: &Convolver,
) -> [Vec<f32>; 4] {
    let grid = cfg.grid();
    let size = grid.size;
    let models: Vec<Vec<f64>> = (0..4)
        .map(|b| {
            let mut model = scene.bands[b].clone();
            for &((x, y), f) in &scene.stars {
                // A point source: its flux split bilinearly over the 4 nearest pixels, then the PSF.
                let (col, row) = grid.pixel_from_sky(x, y);
                let (c0, r0) = (col.floor(), row.floor());
                let (tx, ty) = (col - c0, row - r0);
                for (dc, dr, w) in [
                    (0.0, 0.0, (1.0 - tx) * (1.0 - ty)),
                    (1.0, 0.0, tx * (1.0 - ty)),
                    (0.0, 1.0, (1.0 - tx) * ty),
                    (1.0, 1.0, tx * ty),
                ] {
                    let (c, r) = (c0 + dc, r0 + dr);
                    if c >= 0.0 && r >= 0.0 && (c as usize) < size && (r as usize) < size {
                        model[r as usize * size + c as usize] += f[b] * w;
                    }
                }
            }
            model
        })
        .collect();
    let images: Vec<&[f64]> = models.iter().map(|m| m.as_slice()).collect();
    let specs: Vec<&Spectrum> = spectra.iter().collect();
    let convolved = conv.apply_many(&images, &specs);
    let centre = (size as f64 - 1.0) / 2.0;
    std::array::from_fn(|b| {
        let band = Band::ALL[b];
        let sigma = look.sigma[b];
        // A source of flux F adds variance F sigma^2 / sky (the gain that makes the sky's own
        // Poisson noise sigma), times the look's factor.
        let per_flux = look.shot_noise_factor * sigma * sigma / cfg.sky_level(band);
        let c = look.noise_correlation;
        let n = size * size;
        let sky_noise: Option<Vec<f64>> = (c > 0.0).then(|| {
            let mut white = vec![0f32; n];
            standard_normals(rng, &mut white);
            let white: Vec<f64> = white.iter().map(|&v| f64::from(v)).collect();
            correlate(&white, size, c)
        });
        let mut z = vec![0f32; n];
        standard_normals(rng, &mut z);
        let (gx, gy) = look.sky_gradient_sigma[b];
        let offset = look.sky_offset_sigma[b];
        // Row by row (no division per pixel to find its row), every draw made beforehand, so
        // the loop is arithmetic only.
        let mut out = vec![0f32; n];
        let xs: Vec<f64> = (0..size).map(|col| (col as f64 - centre) / size as f64).collect();
        for row in 0..size {
            let y = (row as f64 - centre) / size as f64;
            let span = row * size..(row + 1) * size;
            let (v, z, out) = (&convolved[b][span.clone()], &z[span.clone()], &mut out[span.clone()]);
            let sky_y = offset + gy * y;
            match &sky_noise {
                None => {
                    for (((o, &v), &z), &x) in out.iter_mut().zip(v).zip(z).zip(&xs) {
                        let noise = (sigma * sigma + v.max(0.0) * per_flux).sqrt() * f64::from(z);
                        *o = (v + noise + sigma * (sky_y + gx * x)) as f32;
                    }
                }
                Some(sky) => {
                    let sky = &sky[span];
                    for ((((o, &v), &z), &x), &s) in out.iter_mut().zip(v).zip(z).zip(&xs).zip(sky) {
                        let noise = sigma * s + (v.max(0.0) * per_flux).sqrt() * f64::from(z);
                        *o = (v + noise + sigma * (sky_y + gx * x)) as f32;
                    }
                }
            }
        }
        out
    })
}

/// Smooths unit white noise with the separable kernel [c, 1, c] x [c, 1, c] (edges reflected)
/// and rescales it to unit variance: the neighbour correlation that resampling leaves in coadds.
fn correlate(white: &[f64], size: usize, c: f64) -> Vec<f64> {
    let at = |i: isize| i.clamp(0, size as isize - 1) as usize;
    let mut rows = vec![0.0; size * size];
    for r in 0..size {
        for col in 0..size {
            let k = |dc: isize| white[r * size + at(col as isize + dc)];
            rows[r * size + col] = c * k(-1) + k(0) + c * k(1);
        }
    }
    let norm = 1.0 / (1.0 + 2.0 * c * c);
    let mut out = vec![0.0; size * size];
    for r in 0..size {
        for col in 0..size {
            let k = |dr: isize| rows[at(r as isize + dr) * size + col];
            out[r * size + col] = (c * k(-1) + k(0) + c * k(1)) * norm;
        }
    }
    out
}

/// Adds the light of a lens galaxy (or of a look-alike's galaxy drawn as one): its main (bulge)
/// component, and as the ranges say an envelope that is larger and bluer (a colour gradient) and
/// a disc. Returns the total r magnitude of what it added.
pub(super) fn add_host_light(
    rng: &mut Rng64,
    cfg: &SimConfig,
    grid: &Grid,
    scene: &mut Scene,
    main: &Sersic,
    m: [f64; 4],
) -> f64 {
    let r = &cfg.ranges;
    scene.add(&sersic_image(grid, main, f64::INFINITY), fluxes(cfg, m));
    let mut flux_r = 10f64.powf(-0.4 * m[2]);
    if rng.random_bool(r.lens_envelope) {
        let envelope = Sersic {
            center: main.center,
            r_e: (main.r_e * rng.random_range(2.0..4.0)).min(5.0),
            n: rng.random_range(1.0..2.0),
            q: (main.q * rng.random_range(0.8..1.0)).max(0.3),
            angle_rad: main.angle_rad + rng.random_range(-0.3..0.3),
        };
        let fainter = rng.random_range(0.3..1.5);
        let (du, dg) = (rng.random_range(0.1..0.5), rng.random_range(0.05..0.3));
        let em = [m[0] + fainter - du, m[1] + fainter - dg, m[2] + fainter, m[3] + fainter + 0.3 * dg];
        scene.add(&sersic_image(grid, &envelope, f64::INFINITY), fluxes(cfg, em));
        flux_r += 10f64.powf(-0.4 * em[2]);
    }
    if rng.random_bool(r.lens_disc) {
        let disc = Sersic {
            center: main.center,
            r_e: (main.r_e * rng.random_range(1.5..3.0)).min(5.0),
            n: 1.0,
            q: rng.random_range(0.25..0.9),
            angle_rad: main.angle_rad + rng.random_range(-0.2..0.2),
        };
        let dm = mags(m[2] + rng.random_range(0.2..1.5), rng.random_range(1.2..2.0), rng.random_range(0.4..0.8), 0.3);
        scene.add(&sersic_image(grid, &disc, f64::INFINITY), fluxes(cfg, dm));
        flux_r += 10f64.powf(-0.4 * dm[2]);
    }
    -2.5 * flux_r.log10()
}

/// Reusable FFT plans and sizes for one configuration.
pub struct Simulator {
    pub config: SimConfig,
    conv: Convolver,
    half: usize,
}

/// One simulator per look of a [`LookMix`] (everything else in the config shared): object k of a
/// run is object k of the simulator of the look the mixture picks for it.
pub struct MixedSimulator {
    mix: LookMix,
    sims: Vec<Simulator>,
}

impl MixedSimulator {
    pub fn new(base: &SimConfig, mix: LookMix) -> MixedSimulator {
        let sims = mix
            .parts
            .iter()
            .map(|(look, _)| Simulator::new(SimConfig { ranges: look.ranges(), ..base.clone() }))
            .collect();
        MixedSimulator { mix, sims }
    }

    pub fn size(&self) -> usize {
        self.sims[0].config.size
    }

    pub fn mix(&self) -> &LookMix {
        &self.mix
    }

    pub fn simulate(&self, name: &str, seed: u64, index: u64, force: Option<bool>) -> SimObject {
        self.sims[self.mix.pick(seed, index)].simulate(name, seed, index, force)
    }
}

impl Simulator {
    pub fn new(config: SimConfig) -> Simulator {
        // The PSF kernel reaches 2 FWHM of the worst seeing (Moffat beta = 3 is at 0.3 % of its
        // peak there), or 1.5 FWHM if that keeps the FFT at the cutout's power of two (128 for
        // 101 pixels), which is 4 times cheaper than the next.
        let worst = config.ranges.worst_fwhm_arcsec(&config.fwhm_arcsec, config.fwhm_scatter);
        let wanted = ((2.0 * worst / config.pixel_arcsec).ceil() as usize).max(3);
        let room = (config.size.next_power_of_two() - config.size) / 2;
        let half = if wanted > room && room as f64 >= 1.5 * worst / config.pixel_arcsec { room } else { wanted };
        let conv = Convolver::new(config.size, half);
        Simulator { config, conv, half }
    }

    /// Simulates object `index` of a run with `seed`. Lenses and non-lenses are chosen by the
    /// configured lens fraction unless `force` says which.
    pub fn simulate(&self, name: &str, seed: u64, index: u64, force: Option<bool>) -> SimObject {
        let cfg = &self.config;
        let ranges = &cfg.ranges;
        let grid = cfg.grid();
        let mut rng = Rng64::seed_from_u64(stream_seed(seed, index));
        let is_lens = force.unwrap_or_else(|| rng.random_bool(cfg.lens_fraction.clamp(0.0, 1.0)));
        let kind = if is_lens {
            pick(&mut rng, &Kind::LENSES)
        } else {
            let table: &[(Kind, f64)] = if ranges.wide_lookalikes { &Kind::NON_LENSES_WIDE } else { &Kind::NON_LENSES };
            if cfg.kind_boost.is_empty() {
                pick(&mut rng, table)
            } else {
                pick(&mut rng, &boosted(table, &cfg.kind_boost))
            }
        };
        let look = Look::draw(&mut rng, cfg);
        let mut scene = Scene::new(grid.size * grid.size);
        let mut truth = SimTruth {
            kind,
            is_lens,
            theta_e_arcsec: None,
            source_mag_r: None,
            arc_snr_g: None,
            magnification: None,
            lensed_pixels: 0,
            lensed_flux_sigma: 0.0,
            fwhm_arcsec: look.psf.map(|p| p.fwhm_arcsec),
            psf_beta: look.psf[0].beta,
            depth_offset_g_mag: look.depth_offset_mag[Band::G.index()],
            source_g_r: None,
            source_r_e_arcsec: None,
            ring_recipe: None,
            host_mag_r: None,
            host_r_e_arcsec: None,
            shot_noise_factor: look.shot_noise_factor,
            feature_snr_g: None,
            feature_radius_arcsec: None,
            neighbours: 0,
            field_nearest_arcsec: None,
            artefacts: String::new(),
        };
        let sigma_g = look.sigma[Band::G.index()];
        let kernels: Vec<Vec<f64>> = look.psf.iter().map(|p| psf_kernel(p, grid.pixel_arcsec, self.half)).collect();
        let spectra = self.conv.spectra(&kernels);
        let mut lensed_g: Option<Vec<f64>> = None;
        if is_lens {
            let theta_e = log_uniform(&mut rng, ranges.theta_e_arcsec);
            let (light, lens_mags) = lens_galaxy(&mut rng, ranges, theta_e);
            truth.host_r_e_arcsec = Some(light.r_e);
            truth.host_mag_r = Some(add_host_light(&mut rng, cfg, &grid, &mut scene, &light, lens_mags));
            let lens = draw_mass(&mut rng, kind, theta_e, &light);
            let rays = RayMap::new(&grid, &lens);
            let sources = 1 + rng.random_bool(ranges.second_source) as usize;
            let mut total_g = vec![0.0; grid.size * grid.size];
            for s in 0..sources {
                // A second source sits elsewhere behind the lens and is fainter.
                let source_kind = if s == 0 { kind } else { Kind::LensArc };
                let Some(b) = self.lensed_source(&mut rng, source_kind, &lens, &rays, &spectra, sigma_g, s > 0) else {
                    continue;
                };
                let per_band = b.mags.map(|m| cfg.flux(m) / b.unit_flux);
                scene.add(&b.unit, per_band);
                let fg = per_band[Band::G.index()];
                total_g.iter_mut().zip(&b.unit_g_conv).for_each(|(t, v)| *t += v * fg);
                if s == 0 {
                    truth.theta_e_arcsec = Some(theta_e);
                    truth.source_mag_r = Some(b.mag_r);
                    truth.magnification = Some(b.magnification);
                    truth.source_g_r = Some(b.g_r);
                    truth.source_r_e_arcsec = Some(b.r_e);
                }
            }
            if truth.theta_e_arcsec.is_some() {
                lensed_g = Some(total_g);
            }
            if ranges.lens_neighbours > 0.0 && rng.random_bool(ranges.lens_neighbours) {
                truth.neighbours = lookalikes::lens_neighbours(&mut rng, cfg, &grid, &mut scene, light.center);
            }
            add_field(&mut rng, cfg, &grid, &mut scene, 0);
        } else {
            let drawn = lookalikes::draw(&mut rng, cfg, &grid, kind, &mut scene);
            truth.ring_recipe = drawn.ring_recipe;
            truth.host_mag_r = drawn.host_mag_r;
            truth.host_r_e_arcsec = drawn.host_r_e_arcsec;
            truth.feature_radius_arcsec = drawn.feature_radius_arcsec;
            truth.neighbours = drawn.neighbours;
            if scene.features_g.iter().any(|&v| v > 0.0) {
                let conv = self.conv.apply(&scene.features_g, &spectra[Band::G.index()]);
                truth.feature_snr_g = Some(arc_snr(&conv, 1.0, sigma_g));
            }
        }
        truth.field_nearest_arcsec = scene.field_nearest_arcsec;
        let mut bands = observe(&mut rng, cfg, &look, &scene, &spectra, &self.conv);
        let fwhm_px = look.psf.map(|p| p.fwhm_arcsec / grid.pixel_arcsec);
        truth.artefacts = artefacts::apply(&mut rng, &ranges.artefacts, &look.sigma, &fwhm_px, grid.size, &mut bands);
        let mut lensed_mask = vec![false; grid.size * grid.size];
        if let Some(g) = lensed_g {
            let mut sum = 0.0;
            for (m, &v) in lensed_mask.iter_mut().zip(&g) {
                if v > sigma_g {
                    *m = true;
                    sum += v;
                }
            }
            let n_mask = lensed_mask.iter().filter(|&&m| m).count();
            truth.lensed_pixels = n_mask;
            truth.lensed_flux_sigma = sum / sigma_g;
            truth.arc_snr_g = Some(if n_mask > 0 { sum / (sigma_g * (n_mask as f64).sqrt()) } else { 0.0 });
        }
        let cutout = Cutout::from_planes(name, grid.size, grid.size, bands).with_pixel_scale(Some(grid.pixel_arcsec));
        SimObject { cutout, truth, lensed_mask }
    }

    /// Draws a source behind `lens` until its lensing is visible (magnified enough), then sets its
    /// brightness: to a target arc S/N drawn from the ranges, or (KiDS look) by redrawing the
    /// magnitude until the S/N passes the configured minimum. `second`: a fainter extra source.
    #[allow(clippy::too_many_arguments)]
    fn lensed_source(
        &self,
        rng: &mut Rng64,
        kind: Kind,
        lens: &SieShear,
        rays: &RayMap,
        spectra: &[Spectrum],
        sigma_g: f64,
        second: bool,
    ) -> Option<LensChoice> {
        let cfg = &self.config;
        let ranges = &cfg.ranges;
        let grid = cfg.grid();
        let irregular = ranges.source_clumps_max > 3;
        let mut best: Option<LensChoice> = None;
        for attempt in 0..30 {
            let source = draw_source(rng, kind, lens, irregular, ranges.source_r_e_arcsec);
            let mut unit = lensed_image(&grid, lens, rays, &source);
            let magnification: f64 = unit.iter().sum();
            if magnification < cfg.min_magnification && attempt < 29 {
                continue;
            }
            let spread = if irregular { 1.5 } else { 1.0 };
            let (clumps, clump_flux) = lensed_clumps(rng, &grid, lens, rays, &source, ranges.source_clumps_max, spread);
            unit.iter_mut().zip(&clumps).for_each(|(u, c)| *u += c);
            let unit_flux = 1.0 + clump_flux;
            let unit_g_conv = self.conv.apply(&unit, &spectra[Band::G.index()]);
            if let Some(span) = ranges.arc_snr_g {
                let (u_r, g_r, r_i) = source_colours(rng, cfg);
                let mut target = log_uniform(rng, span);
                if second {
                    target *= rng.random_range(0.3..1.0);
                }
                let f = flux_for_snr(&unit_g_conv, target, sigma_g)?;
                let mag_g = cfg.zero_point - 2.5 * (f * unit_flux).log10();
                let mag_r = mag_g - g_r;
                let snr = arc_snr(&unit_g_conv, f, sigma_g);
                return Some(LensChoice {
                    unit,
                    unit_g_conv,
                    unit_flux,
                    magnification,
                    mag_r,
                    mags: mags(mag_r, u_r, g_r, r_i),
                    g_r,
                    snr,
                    r_e: source.r_e,
                });
            }
            for _ in 0..4 {
                let (lo, hi) = cfg.source_mag_r;
                let mag_r = rng.random_range(lo..hi) + if second { 1.0 } else { 0.0 };
                let (u_r, g_r, r_i) = source_colours(rng, cfg);
                let snr = arc_snr(&unit_g_conv, cfg.flux(mag_r + g_r) / unit_flux, sigma_g);
                if best.as_ref().is_none_or(|b| snr > b.snr) {
                    best = Some(LensChoice {
                        unit: unit.clone(),
                        unit_g_conv: unit_g_conv.clone(),
                        unit_flux,
                        magnification,
                        mag_r,
                        mags: mags(mag_r, u_r, g_r, r_i),
                        g_r,
                        snr,
                        r_e: source.r_e,
                    });
                }
                if snr >= cfg.min_arc_snr_g {
                    return best;
                }
            }
        }
        best
    }

    /// An empty patch of sky observed like any cutout: only sky noise. For checking the noise
    /// against the configured depths.
    pub fn blank_sky(&self, seed: u64) -> Cutout {
        let cfg = &self.config;
        let grid = cfg.grid();
        let mut rng = Rng64::seed_from_u64(stream_seed(seed, u64::MAX));
        let look = Look::draw(&mut rng, cfg);
        let kernels: Vec<Vec<f64>> = look.psf.iter().map(|p| psf_kernel(p, grid.pixel_arcsec, self.half)).collect();
        let spectra = self.conv.spectra(&kernels);
        let bands = observe(&mut rng, cfg, &look, &Scene::new(grid.size * grid.size), &spectra, &self.conv);
        Cutout::from_planes("blank", grid.size, grid.size, bands)
    }
}

/// Signal-to-noise of a (convolved, unit-flux) lensed image scaled to flux `f`: the flux over the
/// pixels above one sigma, over sigma sqrt(N).
fn arc_snr(unit_conv: &[f64], f: f64, sigma: f64) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for &v in unit_conv {
        let v = v * f;
        if v > sigma {
            sum += v;
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        sum / (sigma * (n as f64).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tail as a sum over blobs of each pixel's Gaussian, evaluated per pixel: the
    /// definition the separable [`tail_image`] must reproduce.
    fn tail_by_pixel(grid: &Grid, center: (f64, f64), radius: f64, from: f64, span: f64, width: f64) -> Vec<f64> {
        let steps = 24;
        let blobs: Vec<(f64, f64, f64)> = (0..steps)
            .map(|k| {
                let t = from + span * k as f64 / (steps - 1) as f64;
                let r = radius * (1.0 + 0.25 * k as f64 / steps as f64);
                (center.0 + r * t.cos(), center.1 + r * t.sin(), 1.0 - 0.7 * k as f64 / steps as f64)
            })
            .collect();
        let mut out = vec![0.0; grid.size * grid.size];
        for row in 0..grid.size {
            for col in 0..grid.size {
                let (x, y) = grid.sky_from_pixel(col as f64, row as f64);
                out[row * grid.size + col] = blobs
                    .iter()
                    .map(|&(px, py, fade)| {
                        fade * (-((x - px).powi(2) + (y - py).powi(2)) / (2.0 * width * width)).exp()
                    })
                    .sum();
            }
        }
        normalised(out)
    }

    #[test]
    fn separable_tails_equal_the_per_pixel_sum_of_blobs() {
        let grid = Grid { size: 101, pixel_arcsec: 0.2 };
        // A tail near the centre, one running off the cutout's edge, and a narrow one.
        for (center, radius, from, span, width) in
            [((0.3, -0.4), 3.0, 0.2, 1.5, 0.2), ((6.0, 5.0), 5.0, 2.0, 2.5, 0.25), ((-1.0, 2.0), 2.0, -1.0, 1.0, 0.1)]
        {
            let fast = tail_image(&grid, center, radius, from, span, width);
            let slow = tail_by_pixel(&grid, center, radius, from, span, width);
            let peak = slow.iter().cloned().fold(0.0, f64::max);
            assert!(peak > 0.0);
            let total: f64 = fast.iter().sum();
            assert!((total - 1.0).abs() < 1e-12, "total flux {total}");
            for (k, (a, b)) in fast.iter().zip(&slow).enumerate() {
                assert!((a - b).abs() <= 1e-12 * peak, "pixel {k}: {a} against {b}");
            }
        }
    }
}
