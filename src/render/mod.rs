//! What people look at: colour composites, single-band views and PNG export.
//!
//! Entry points: [`composite`] (the survey-wide Lupton composite of a cutout), [`band_image`]
//! (a ds9-like single-band view), [`save_png`] (north up). Images here are [`Rgba8`], row 0 at the
//! *bottom* like the FITS data they come from; only [`save_png`] and the GUI's texture upload flip
//! them, so nothing else has to think about orientation.

pub mod chart;
pub mod colormap;
pub mod label;
pub mod lupton;
pub mod stretch;

use crate::cutout::{Band, Cutout};
use lupton::{lupton_rgb_f32, LuptonParams};
use serde::{Deserialize, Serialize};
use std::path::Path;
pub use stretch::{band_view, Limits, StretchFn};

/// An 8-bit RGBA image (opaque), 4 bytes per pixel, row 0 at the bottom (FITS order). RGBA
/// because that is what textures take, so the GUI uploads it without a copy.
#[derive(Debug, Clone, PartialEq)]
pub struct Rgba8 {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<[u8; 4]>,
}

/// How composites are drawn, one setting for the whole survey so that all candidates look alike.
///
/// Flux is first expressed in units of the survey's r-band sky noise (`noise_r`, the median over
/// candidates of the robust sky sigma): one common factor for all bands keeps the colours
/// physical, and makes `stretch` and `minimum` mean the same thing for KiDS fluxes of ~1e-11 as
/// for counts at zero point 30. `q` and `stretch` are astropy's; `weights` multiply (i, r, g)
/// before mapping (HumVI-style colour balance).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DisplaySettings {
    pub q: f32,
    /// In units of the r-band sky noise.
    pub stretch: f32,
    /// Black level, in units of the r-band sky noise.
    pub minimum: f32,
    /// Multipliers of the i, r and g bands (the R, G, B channels).
    pub weights: [f32; 3],
}

impl Default for DisplaySettings {
    fn default() -> DisplaySettings {
        DisplaySettings { q: 8.0, stretch: 10.0, minimum: 0.0, weights: [0.5, 0.75, 1.3] }
    }
}

/// Survey-wide flux scale used by [`composite`]: the r-band sky noise. Anything positive and
/// finite works; it only sets the unit of `stretch` and `minimum`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FluxScale {
    pub noise_r: f32,
}

impl FluxScale {
    /// The scale of one cutout on its own (for a cutout outside any project).
    pub fn of_cutout(cutout: &Cutout) -> FluxScale {
        let s = crate::cutout::sky_stats(&cutout.valid_values(Band::R)).map(|s| s.sigma).unwrap_or(1.0);
        FluxScale { noise_r: if s > 0.0 && s.is_finite() { s } else { 1.0 } }
    }
}

/// The Lupton composite of a cutout: R = i, G = r, B = g (SPEC 3), bands scaled by `weights`
/// and expressed in units of `scale.noise_r`. Masked pixels count as 0 flux.
pub fn composite(cutout: &Cutout, settings: &DisplaySettings, scale: FluxScale) -> Rgba8 {
    let unit = 1.0 / scale.noise_r;
    let w = settings.weights;
    let params = LuptonParams::new(settings.q as f64, settings.stretch as f64, settings.minimum as f64);
    let pixels = lupton_rgb_f32(
        cutout.band(Band::I),
        cutout.band(Band::R),
        cutout.band(Band::G),
        [w[0] * unit, w[1] * unit, w[2] * unit],
        &params,
    );
    Rgba8 { width: cutout.width, height: cutout.height, pixels }
}

/// A ds9-like greyscale view of one band, as RGB so it can be shown and saved like a composite.
pub fn band_image(cutout: &Cutout, band: Band, stretch: StretchFn, limits: Limits) -> Rgba8 {
    let grey = band_view(cutout.band(band), cutout.band_mask(band), stretch, limits);
    Rgba8 { width: cutout.width, height: cutout.height, pixels: grey.iter().map(|&v| [v, v, v, 255]).collect() }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot write PNG {path}: {source}")]
    Png { path: std::path::PathBuf, source: image::ImageError },
}

/// Writes an image as PNG with north up: FITS row 0 becomes the bottom row of the PNG.
pub fn save_png(path: &Path, image: &Rgba8) -> Result<(), RenderError> {
    let rgb: Vec<u8> = flip_rows(image).iter().flat_map(|p| [p[0], p[1], p[2]]).collect();
    image::save_buffer(path, &rgb, image.width as u32, image.height as u32, image::ExtendedColorType::Rgb8)
        .map_err(|source| RenderError::Png { path: path.into(), source })
}

/// Rows in top-to-bottom order (as screens and PNG files expect).
pub fn flip_rows(image: &Rgba8) -> Vec<[u8; 4]> {
    image.pixels.chunks_exact(image.width).rev().flatten().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_has_fits_row_zero_at_the_bottom() {
        let mut planes: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0.0; 6]);
        // A bright pixel in FITS row 0, column 0 of every band.
        for p in planes.iter_mut() {
            p[0] = 1e4;
        }
        let c = Cutout::from_planes("t", 3, 2, planes);
        let grey = DisplaySettings { weights: [1.0; 3], ..DisplaySettings::default() };
        let img = composite(&c, &grey, FluxScale { noise_r: 1.0 });
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("t.png");
        save_png(&path, &img).expect("png");
        let back = image::open(&path).expect("read").to_rgb8();
        assert_eq!(back.dimensions(), (3, 2));
        assert!(back.get_pixel(0, 1)[0] > 200, "bottom-left is bright");
        assert_eq!(back.get_pixel(0, 0)[0], 0, "top-left is dark");
    }

    #[test]
    fn composite_does_not_depend_on_flux_units() {
        let planes: [Vec<f32>; 4] =
            std::array::from_fn(|b| (0..25).map(|k| (k * (b + 1)) as f32 * 0.3 - 1.0).collect());
        let a = Cutout::from_planes("a", 5, 5, planes.clone());
        let b = Cutout::from_planes("b", 5, 5, planes.map(|p| p.iter().map(|v| v * 1e-11).collect()));
        let s = DisplaySettings::default();
        let ia = composite(&a, &s, FluxScale::of_cutout(&a));
        let ib = composite(&b, &s, FluxScale::of_cutout(&b));
        let worst = ia
            .pixels
            .as_flattened()
            .iter()
            .zip(ib.pixels.as_flattened())
            .map(|(x, y)| (*x as i32 - *y as i32).abs())
            .max();
        assert!(worst <= Some(1));
    }
}
