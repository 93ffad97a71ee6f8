//! The demo project `cargo run --release` opens on first start: a few hundred simulated KiDS-like
//! cutouts (a quarter of them lenses, so a newcomer sees some), a fifth of them training
//! candidates (known truth, used for inspector skill), scored by the shipped model when there is
//! one. Built on a worker; takes seconds.

use crate::model::score::{score_project, Scorer};
use crate::project::{NewCandidate, Project, ProjectError, Truth};
use crate::sim::{SimConfig, Simulator, FIRST_ID};
use crate::survey::{ObjectSource, ObjectSpec};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy)]
pub struct DemoSpec {
    pub survey: usize,
    pub training: usize,
    pub seed: u64,
}

impl Default for DemoSpec {
    fn default() -> DemoSpec {
        DemoSpec { survey: 300, training: 60, seed: 2024 }
    }
}

/// A home set by the program itself (tests: a temporary folder), ahead of the environment.
static HOME_OVERRIDE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes [`home_dir`] this folder for the rest of the process (the first call wins). Tests call
/// it so that nothing they do (the demo, the recent-projects list) touches the user's folders,
/// without changing the environment under running threads.
pub fn set_home(dir: PathBuf) -> &'static Path {
    HOME_OVERRIDE.get_or_init(|| dir)
}

/// Where the demo project and the recent-projects list live: [`set_home`]'s folder, else
/// `$LENS_INSPECT_HOME`, else the platform's data folder from the `directories` crate: on Linux
/// `$XDG_DATA_HOME/lens-inspect` when that variable is an absolute path (an empty or relative
/// one is ignored, as the XDG spec says) and `~/.local/share/lens-inspect` otherwise; on macOS
/// `~/Library/Application Support/lens-inspect`; on Windows `%APPDATA%\lens-inspect\data`.
pub fn home_dir() -> PathBuf {
    if let Some(h) = HOME_OVERRIDE.get() {
        return h.clone();
    }
    if let Some(h) = std::env::var_os("LENS_INSPECT_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    directories::ProjectDirs::from("", "", "lens-inspect")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from("lens-inspect-data"))
}

pub fn demo_path() -> PathBuf {
    home_dir().join("demo.lensproj")
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error("cannot create {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Makes the demo project at `path` (built under a temporary name, then renamed, so a half-made
/// demo is never opened). `progress(message, fraction)` reports as it goes. Returns whether the
/// shipped model scored it.
fn demo_wcs(ra: f64, dec: f64, size: usize, pixel_arcsec: f64) -> Option<crate::survey::wcs::TanWcs> {
    crate::survey::wcs::TanWcs::north_up(ra, dec, size, pixel_arcsec)
}

pub fn make_demo(path: &Path, spec: DemoSpec, progress: &(dyn Fn(&str, f32) + Sync)) -> Result<bool, DemoError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| DemoError::Io { path: dir.into(), source })?;
    }
    let tmp = path.with_extension("making");
    let _ = std::fs::remove_file(&tmp);
    let mut project = Project::create_or_open(&tmp)?;
    let total = spec.survey + spec.training;
    // Which positions are training candidates: shuffled in, so names give nothing away.
    let mut is_training: Vec<bool> = (0..total).map(|k| k < spec.training).collect();
    is_training.shuffle(&mut rand_pcg::Pcg64Mcg::seed_from_u64(spec.seed));
    let survey_sim = Simulator::new(SimConfig { lens_fraction: 0.25, ..SimConfig::default() });
    let training_sim = Simulator::new(SimConfig { lens_fraction: 0.5, ..SimConfig::default() });
    let done = std::sync::atomic::AtomicUsize::new(0);
    let items: Vec<NewCandidate> = (0..total)
        .into_par_iter()
        .map(|k| {
            let name = (FIRST_ID + k as u64).to_string();
            let sim = if is_training[k] { &training_sim } else { &survey_sim };
            let o = sim.simulate(&name, spec.seed, k as u64, None);
            let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress("simulating KiDS-like cutouts", 0.8 * d as f32 / total as f32);
            let (ra, dec) = (150.0 + (k % 20) as f64 * 0.01, 2.0 + (k / 20) as f64 * 0.01);
            let mut metadata = BTreeMap::from([("kind".to_string(), serde_json::json!(o.truth.kind.name()))]);
            // A TAN WCS centred on the candidate at the simulator's pixel scale, as a survey
            // cutout's header has: the grade view shows the sky under the cursor.
            if let Some(wcs) = demo_wcs(ra, dec, o.cutout.width, sim.config.pixel_arcsec) {
                metadata.insert(crate::project::ingest::WCS_KEY.into(), wcs.to_json());
            }
            let spec = ObjectSpec {
                name,
                source: ObjectSource::File { path: "(simulated, stored in the project)".into() },
                ra_deg: Some(ra),
                dec_deg: Some(dec),
                tile: Some("DEMO_150.0_2.0".into()),
                metadata,
            };
            let mut c = NewCandidate::from_cutout(spec, &o.cutout, true);
            c.truth = Some(Truth { is_lens: o.truth.is_lens, extra: BTreeMap::new() });
            c.is_training = is_training[k];
            c
        })
        .collect();
    project.insert_candidates(&items)?;
    let mut scored = false;
    if let Ok(scorer) = Scorer::shipped() {
        progress("scoring with the shipped model", 0.85);
        scored = score_project(&mut project, &scorer, "lens-detector (shipped)", 64, &|d, t| {
            progress("scoring with the shipped model", 0.85 + 0.15 * d as f32 / t.max(1) as f32)
        })
        .is_ok();
    }
    drop(project);
    std::fs::rename(&tmp, path).map_err(|source| DemoError::Io { path: path.into(), source })?;
    progress("ready", 1.0);
    Ok(scored)
}

#[cfg(test)]
mod wcs_tests {
    /// The demo's WCS puts the candidate on the centre pixel, north up and east left.
    #[test]
    fn demo_wcs_is_centred_north_up_east_left() {
        let w = super::demo_wcs(150.1, 2.05, 101, 0.2).unwrap();
        let (ra, dec) = w.pixel_to_sky(51.0, 51.0).unwrap();
        assert!((ra - 150.1).abs() < 1e-12 && (dec - 2.05).abs() < 1e-12);
        let (ra_left, _) = w.pixel_to_sky(41.0, 51.0).unwrap();
        let (_, dec_up) = w.pixel_to_sky(51.0, 61.0).unwrap();
        assert!(ra_left > ra && dec_up > dec);
        assert!((w.pixel_scale_arcsec() - 0.2).abs() < 1e-9);
    }
}
