//! The built-in simulator of KiDS-like strong lenses and look-alikes (SPEC 1, 2, 5).
//!
//! Real lenses are too few to train on and nothing may be downloaded, so the program makes its
//! own training data, demo survey and training candidates. Entry points: [`scene::Simulator`]
//! (one cutout with its truth and lensed-light mask) and [`write_run`] (a whole run in the Bologna
//! challenge layout that `ingest` reads back, in parallel, deterministic per seed).
//!
//! Modules: [`mass`] (SIE + shear, ray shooting), [`light`] (Sersic, pixel integration), [`psf`]
//! (Moffat, FFT convolution), [`scene`] (what is in a cutout and how it is observed), [`sheet`]
//! (contact sheets for people to look at).

mod artefacts;
pub mod light;
mod lookalikes;
pub mod mass;
pub mod psf;
pub mod ranges;
pub mod scene;
pub mod sheet;

use crate::survey::fits_write::{self, Card, ImageHdu, PixelData};
pub use ranges::{Look, LookMix, Ranges, RingRecipe, StressSet};
use rayon::prelude::*;
pub use scene::{Kind, MixedSimulator, SimConfig, SimObject, SimTruth, Simulator};
use std::io::Write;
use std::path::Path;

/// Name of the truth table a run writes beside `Band1..Band4`.
pub const TRUTH_FILE: &str = "classifications.csv";

/// What the simulator draws for a seed, numbered: raised by every change that alters the
/// cutouts of a seed (2: look-alikes' galaxies drawn as lens galaxies; 3: a lens galaxy's size
/// drawn apart from its Einstein radius; 4: the sources' Poisson noise 1 - 100 times KiDS's per
/// unit flux; 5: look-alikes' companions and rings coloured as sources are, arcs up to S/N 600;
/// 6: look-alikes' companions and rings as far from their galaxy as Einstein radii are; 7: ring
/// galaxies' hosts drawn as lens galaxies are, a fifth of lenses with neighbouring galaxies; 8:
/// field galaxies anywhere in the cutout, the centre included, 0.5 - 4 per cutout, and one band
/// blank in 5 % of cutouts; 9: lensed sources 0.05 - 0.5" whatever their configuration),
/// so that test sets kept on disk from an older simulator
/// are made again instead of being taken for current ones.
pub const SIMULATOR_VERSION: u32 = 9;
/// Folder of lensed-light masks (one 8-bit FITS per lens, 1 where lensed light is above sigma_g).
pub const MASK_FOLDER: &str = "masks";
/// The challenge numbered its objects from 100000; so do we, so that names look familiar.
pub const FIRST_ID: u64 = 100_000;

/// What a run wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunSummary {
    pub written: usize,
    pub lenses: usize,
    pub seconds: f64,
    pub cutouts_per_s: f64,
}

/// Simulates objects `0..n` of a run with `seed` and writes them under `out` in the Bologna
/// layout, with `classifications.csv` (the challenge's columns, then ours) and `masks/`. Runs in
/// parallel; every object has its own random stream, so the files are byte-identical whatever
/// the number of threads. `progress(done)` is called after each object.
pub fn write_run(
    sim: &Simulator,
    n: usize,
    seed: u64,
    out: &Path,
    progress: &(dyn Fn(usize) + Sync),
) -> std::io::Result<RunSummary> {
    let start = std::time::Instant::now();
    std::fs::create_dir_all(out.join(MASK_FOLDER))?;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let truths: Vec<(String, SimTruth)> = (0..n as u64)
        .into_par_iter()
        .map(|k| -> std::io::Result<(String, SimTruth)> {
            let name = (FIRST_ID + k).to_string();
            let obj = sim.simulate(&name, seed, k, None);
            // At a pixel scale other than KiDS's, the files say theirs, as another survey's do
            // (positions on a grid of 0.01 degree, for the scale only).
            let wcs = if sim.config.pixel_arcsec != SimConfig::default().pixel_arcsec {
                let (ra, dec) = (150.0 + (k % 100) as f64 * 0.01, 2.0 + (k / 100) as f64 * 0.01);
                crate::survey::wcs::TanWcs::north_up(ra, dec, obj.cutout.width, sim.config.pixel_arcsec)
            } else {
                None
            };
            fits_write::write_bologna_with_wcs(out, &obj.cutout, wcs.as_ref())?;
            if obj.truth.is_lens {
                let mask: Vec<u8> = obj.lensed_mask.iter().map(|&m| m as u8).collect();
                let hdu = ImageHdu {
                    shape: vec![obj.cutout.height, obj.cutout.width],
                    data: PixelData::U8(mask),
                    keys: vec![],
                }
                .with_key("CONTENT", Card::Str("lensed light above sigma_g".into()));
                fits_write::write_file(&out.join(MASK_FOLDER).join(format!("mask-{name}.fits")), Some(&hdu), &[])?;
            }
            progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
            Ok((name, obj.truth))
        })
        .collect::<std::io::Result<_>>()?;
    let mut csv = std::io::BufWriter::new(std::fs::File::create(out.join(TRUTH_FILE))?);
    writeln!(
        csv,
        "ID,is_lens,Einstein_area,numb_pix_lensed_image,flux_lensed_image_in_sigma,kind,theta_e_arcsec,source_mag_r,arc_snr_g,magnification,fwhm_g_arcsec,psf_beta,depth_offset_g_mag,source_g_r,source_r_e_arcsec,ring_recipe,host_mag_r,host_r_e_arcsec,shot_noise_factor,feature_snr_g,feature_radius_arcsec,neighbours,field_nearest_arcsec,artefacts"
    )?;
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_default();
    for (name, t) in &truths {
        let area = t.theta_e_arcsec.map(|e| std::f64::consts::PI * e * e);
        writeln!(
            csv,
            "{name},{},{},{},{:.3},{},{},{},{},{},{:.3},{:.2},{:.3},{},{},{},{},{},{:.2},{},{},{},{},{}",
            t.is_lens as u8,
            opt(area),
            t.lensed_pixels,
            t.lensed_flux_sigma,
            t.kind.name(),
            opt(t.theta_e_arcsec),
            opt(t.source_mag_r),
            opt(t.arc_snr_g),
            opt(t.magnification),
            t.fwhm_arcsec[1],
            t.psf_beta,
            t.depth_offset_g_mag,
            opt(t.source_g_r),
            opt(t.source_r_e_arcsec),
            t.ring_recipe.map(|r| r.name()).unwrap_or_default(),
            opt(t.host_mag_r),
            opt(t.host_r_e_arcsec),
            t.shot_noise_factor,
            opt(t.feature_snr_g),
            opt(t.feature_radius_arcsec),
            t.neighbours,
            opt(t.field_nearest_arcsec),
            if t.artefacts.is_empty() { "none" } else { &t.artefacts },
        )?;
    }
    csv.flush()?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(RunSummary {
        written: n,
        lenses: truths.iter().filter(|t| t.1.is_lens).count(),
        seconds,
        cutouts_per_s: n as f64 / seconds,
    })
}
