//! Artefacts of real survey images, put on simulated cutouts after the noise so the finder
//! learns that they are not lenses and preprocessing meets every kind of bad pixel: cosmic rays,
//! satellite trails, saturated stars with diffraction spikes, bad columns, masked regions, tile
//! edges and sentinel values (0, 100, 1e30, NaN).
//!
//! Brightnesses are in units of each band's sky sigma, so artefacts look alike at any depth and
//! zero point; sentinels are the literal values surveys write.

use super::ranges::ArtefactRates;
use super::scene::Rng64;
use rand::RngExt;

/// Puts artefacts on `bands` (4 planes of `size` x `size`) as `rates` say. `sigma` is each band's
/// sky noise and `fwhm_px` its seeing in pixels. Returns the names of what was added, joined by
/// '+' (empty when nothing).
pub(super) fn apply(
    rng: &mut Rng64,
    rates: &ArtefactRates,
    sigma: &[f64; 4],
    fwhm_px: &[f64; 4],
    size: usize,
    bands: &mut [Vec<f32>; 4],
) -> String {
    let mut names: Vec<&str> = Vec::new();
    if rng.random_bool(rates.saturated_star) {
        saturated_star(rng, sigma, fwhm_px, size, bands);
        names.push("saturated_star");
    }
    if rng.random_bool(rates.satellite_trail) {
        satellite_trail(rng, sigma, fwhm_px, size, bands);
        names.push("satellite_trail");
    }
    if rng.random_bool(rates.cosmic_rays) {
        cosmic_rays(rng, sigma, size, bands);
        names.push("cosmic_rays");
    }
    if rng.random_bool(rates.bad_column) {
        bad_column(rng, sigma, size, bands);
        names.push("bad_column");
    }
    if rng.random_bool(rates.masked_region) {
        masked_region(rng, size, bands);
        names.push("masked_region");
    }
    if rng.random_bool(rates.tile_edge) {
        tile_edge(rng, size, bands);
        names.push("tile_edge");
    }
    if rng.random_bool(rates.sentinels) {
        sentinels(rng, size, bands);
        names.push("sentinels");
    }
    if rates.blank_band > 0.0 && rng.random_bool(rates.blank_band) {
        names.push(blank_band(rng, bands));
    }
    names.join("+")
}

/// One whole band without data: surveys mask each filter on its own (KiDS's u band covers less
/// than g, r and i; chip gaps and bright-star masks differ per filter), so a cutout can hold three
/// bands and a blank. The u band is the likeliest (40 %), the others 20 % each; NaN, or the 0
/// some pipelines write instead. Returns the artefact's name with the band.
fn blank_band(rng: &mut Rng64, bands: &mut [Vec<f32>; 4]) -> &'static str {
    let u = rng.random_range(0.0..1.0f64);
    let b = if u < 0.4 { 0 } else { 1 + ((u - 0.4) / 0.2).floor().min(2.0) as usize };
    let fill = if rng.random_bool(0.7) { f32::NAN } else { 0.0 };
    bands[b].iter_mut().for_each(|v| *v = fill);
    ["blank_u", "blank_g", "blank_r", "blank_i"][b]
}

/// A random position at least `min_r` pixels from the centre (away from the object of interest).
fn away_from_centre(rng: &mut Rng64, size: usize, min_r: f64) -> (f64, f64) {
    let c = (size as f64 - 1.0) / 2.0;
    loop {
        let (x, y) = (rng.random_range(0.0..size as f64), rng.random_range(0.0..size as f64));
        if ((x - c).powi(2) + (y - c).powi(2)).sqrt() >= min_r {
            return (x, y);
        }
    }
}

/// A bright star with a flat (saturated) core and four diffraction spikes, in every band.
fn saturated_star(rng: &mut Rng64, sigma: &[f64; 4], fwhm_px: &[f64; 4], size: usize, bands: &mut [Vec<f32>; 4]) {
    let (sx, sy) = away_from_centre(rng, size, 0.3 * size as f64);
    let peak_sigma = rng.random_range(5e3..5e4);
    let saturation = peak_sigma * rng.random_range(0.05..0.4);
    let spike_len = rng.random_range(0.1..0.35) * size as f64;
    let spike_angle = rng.random_range(0.0..0.2f64);
    let spike_strength = rng.random_range(0.001..0.006);
    let colour: [f64; 4] = [rng.random_range(0.2..0.8), rng.random_range(0.6..1.0), 1.0, rng.random_range(0.9..1.4)];
    let (sa, ca) = spike_angle.sin_cos();
    for b in 0..4 {
        let alpha = fwhm_px[b] / (2.0 * (2f64.powf(1.0 / 3.0) - 1.0).sqrt());
        let amp = peak_sigma * colour[b];
        let sat = saturation * sigma[b];
        for row in 0..size {
            for col in 0..size {
                let (dx, dy) = (col as f64 - sx, row as f64 - sy);
                let core = amp * (1.0 + (dx * dx + dy * dy) / (alpha * alpha)).powf(-3.0);
                // Spikes along the two (slightly rotated) pixel axes.
                let (u, v) = (ca * dx + sa * dy, -sa * dx + ca * dy);
                let spike = |along: f64, across: f64| {
                    spike_strength * amp * (-along.abs() / spike_len).exp() * (-(across / 0.7).powi(2)).exp()
                };
                let value = (core + spike(u, v) + spike(v, u)) * sigma[b];
                let k = row * size + col;
                let total = bands[b][k] as f64 + value;
                // What the detector could not count is flat at the saturation level.
                bands[b][k] = if value > sat { sat as f32 } else { total as f32 };
            }
        }
    }
}

/// A straight trail across the cutout in one band (a satellite crossed one exposure).
fn satellite_trail(rng: &mut Rng64, sigma: &[f64; 4], fwhm_px: &[f64; 4], size: usize, bands: &mut [Vec<f32>; 4]) {
    let b = rng.random_range(0..4);
    let (px, py) = (rng.random_range(0.0..size as f64), rng.random_range(0.0..size as f64));
    let theta = rng.random_range(0.0..std::f64::consts::PI);
    let (s, c) = theta.sin_cos();
    let amp = rng.random_range(3.0..60.0) * sigma[b];
    let width = (fwhm_px[b] / 2.355).max(0.5);
    for row in 0..size {
        for col in 0..size {
            let d = -s * (col as f64 - px) + c * (row as f64 - py);
            bands[b][row * size + col] += (amp * (-0.5 * (d / width).powi(2)).exp()) as f32;
        }
    }
}

/// Cosmic-ray hits in one band: sharp tracks of 1 - 5 pixels, far brighter than the noise and
/// narrower than the PSF.
fn cosmic_rays(rng: &mut Rng64, sigma: &[f64; 4], size: usize, bands: &mut [Vec<f32>; 4]) {
    let b = rng.random_range(0..4);
    for _ in 0..rng.random_range(1..4) {
        let (mut x, mut y) = (rng.random_range(0.0..size as f64), rng.random_range(0.0..size as f64));
        let theta = rng.random_range(0.0..std::f64::consts::TAU);
        let amp = rng.random_range(20.0..400.0) * sigma[b];
        for _ in 0..rng.random_range(1..6) {
            let (col, row) = (x as usize, y as usize);
            if col < size && row < size {
                bands[b][row * size + col] += (amp * rng.random_range(0.5..1.0)) as f32;
            }
            x += theta.cos();
            y += theta.sin();
        }
    }
}

/// A bad column in one band: stuck at one value (a fill value) or hot (an offset).
fn bad_column(rng: &mut Rng64, sigma: &[f64; 4], size: usize, bands: &mut [Vec<f32>; 4]) {
    let b = rng.random_range(0..4);
    let col = rng.random_range(0..size);
    let stuck = rng.random_bool(0.5);
    let value = rng.random_range(3.0..50.0) * sigma[b];
    for row in 0..size {
        let k = row * size + col;
        bands[b][k] = if stuck { value as f32 } else { bands[b][k] + value as f32 };
    }
}

/// A masked region (a rectangle or a disc around a removed bright source) set to NaN or 0 in
/// every band.
fn masked_region(rng: &mut Rng64, size: usize, bands: &mut [Vec<f32>; 4]) {
    let (cx, cy) = away_from_centre(rng, size, 0.15 * size as f64);
    let (hw, hh) = (rng.random_range(2.0..0.15 * size as f64), rng.random_range(2.0..0.15 * size as f64));
    let disc = rng.random_bool(0.5);
    let fill = if rng.random_bool(0.5) { f32::NAN } else { 0.0 };
    for row in 0..size {
        for col in 0..size {
            let (dx, dy) = ((col as f64 - cx) / hw, (row as f64 - cy) / hh);
            let inside = if disc { dx * dx + dy * dy <= 1.0 } else { dx.abs() <= 1.0 && dy.abs() <= 1.0 };
            if inside {
                bands.iter_mut().for_each(|p| p[row * size + col] = fill);
            }
        }
    }
}

/// The edge of the survey tile: beyond a straight line 25 - 45 % of the size from the centre,
/// every band is 0 or NaN.
fn tile_edge(rng: &mut Rng64, size: usize, bands: &mut [Vec<f32>; 4]) {
    let c = (size as f64 - 1.0) / 2.0;
    let theta = rng.random_range(0.0..std::f64::consts::TAU);
    let dist = rng.random_range(0.25..0.45) * size as f64;
    let fill = if rng.random_bool(0.5) { f32::NAN } else { 0.0 };
    let (s, co) = theta.sin_cos();
    for row in 0..size {
        for col in 0..size {
            if co * (col as f64 - c) + s * (row as f64 - c) > dist {
                bands.iter_mut().for_each(|p| p[row * size + col] = fill);
            }
        }
    }
}

/// Pixels set to a sentinel (0, 100, 1e30 or NaN), scattered or in small clusters, in one band
/// or all.
fn sentinels(rng: &mut Rng64, size: usize, bands: &mut [Vec<f32>; 4]) {
    let value = [0.0, 100.0, 1e30, f32::NAN][rng.random_range(0..4)];
    let all_bands = rng.random_bool(0.5);
    let band = rng.random_range(0..4);
    for _ in 0..rng.random_range(1..8) {
        let (col, row) = (rng.random_range(0..size), rng.random_range(0..size));
        let cluster = rng.random_range(1..4);
        for dr in 0..cluster {
            for dc in 0..cluster {
                let (c, r) = (col + dc, row + dr);
                if c < size && r < size {
                    for (b, p) in bands.iter_mut().enumerate() {
                        if all_bands || b == band {
                            p[r * size + c] = value;
                        }
                    }
                }
            }
        }
    }
}
