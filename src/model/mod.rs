//! The lens finder: a CNN + self-attention network in burn (CPU backend Flex), trained on our
//! simulations, scoring candidates, and explaining itself.
//!
//! Modules follow burn's examples: [`net`] (architectures), [`data`] (preprocessed data sets,
//! batches, augmentation), [`train`] (training and fine-tuning), [`score`] (batched inference),
//! [`checkpoint`] (model files with their card), [`metrics`] (challenge metrics). Entry points:
//! [`load_labelled`] + [`train::train`] + [`checkpoint::save`]; [`score::Scorer`].

pub mod checkpoint;
pub mod data;
pub mod encoder;
pub mod explain;
pub mod fused;
pub mod metrics;
pub mod net;
pub mod pixel_scale;
pub mod placement;
pub mod project_data;
pub mod robustness;
pub mod score;
pub mod shards;
pub mod stream;
pub mod train;
pub mod validation;

use crate::project::ingest::read_truth_csv;
use crate::survey::{self, SkipReason};
use data::Dataset;
use std::path::{Path, PathBuf};

/// The model shipped with the program (trained by our `train` on our `simulate`; see its card).
pub const SHIPPED_MODEL: &str = "models/lens-detector.lensmodel";

/// The shipped model's bytes, built into the program: a binary that is installed or copied
/// anywhere scores and makes its demo with no `models/` folder beside it.
pub static SHIPPED_MODEL_BYTES: &[u8] = include_bytes!("../../models/lens-detector.lensmodel");

/// Where the shipped model's file is in the source tree (for commands that write into its card);
/// the program itself reads [`SHIPPED_MODEL_BYTES`].
pub fn shipped_model_path() -> PathBuf {
    let from_manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join(SHIPPED_MODEL);
    if from_manifest.exists() {
        from_manifest
    } else {
        PathBuf::from(SHIPPED_MODEL)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Layout(#[from] survey::LayoutError),
    #[error(transparent)]
    Truth(#[from] crate::project::ingest::IngestFailure),
    #[error("no truth file: give --truth, or put classifications.csv in {0}")]
    NoTruth(PathBuf),
}

/// How many cutouts of a folder the model sees otherwise than their files hold them: resampled
/// from another pixel scale ([`pixel_scale`]), and then not the model's size (cropped or padded;
/// [`placement`]). Commands say so, so that nobody mistakes what the model looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Adapted {
    pub resampled: usize,
    pub fitted: usize,
}

impl Adapted {
    /// Counts `cutout` as a model of `size` pixels sees it.
    pub fn count(&mut self, cutout: &crate::cutout::Cutout, size: usize) {
        let scale = pixel_scale::MODEL_PIXEL_ARCSEC;
        self.resampled += usize::from(pixel_scale::scale_to_resample(cutout, scale).is_some());
        self.fitted += usize::from(pixel_scale::seen_size(cutout, scale) != (size, size));
    }

    /// One line for a person, or `None` when every cutout was seen as it is.
    pub fn describe(&self, size: usize) -> Option<String> {
        let mut parts = Vec::new();
        if self.resampled > 0 {
            parts.push(format!(
                "{} resampled to {}\" pixels (their header or --pixel-scale gives another scale)",
                self.resampled,
                pixel_scale::MODEL_PIXEL_ARCSEC
            ));
        }
        if self.fitted > 0 {
            parts.push(format!(
                "{} not {size} x {size} pixels, centred in the model's field (cropped or padded with sky)",
                self.fitted
            ));
        }
        (!parts.is_empty()).then(|| format!("cutouts: {}", parts.join("; ")))
    }
}

/// How a model of `size` x `size` pixels sees a cutout of `width` x `height` pixels at
/// `pixel_arcsec` (`None`: no scale known, taken at the model's): one line for a person, or
/// `None` when it sees the cutout as it is. The grading view and `explain` show it beside the
/// map, so that nobody reads a map of a resampled or cropped cutout as one of the file's pixels.
pub fn how_seen(
    width: usize,
    height: usize,
    pixel_arcsec: Option<f64>,
    size: usize,
    blank: &[crate::cutout::Band],
) -> Option<String> {
    let model = pixel_scale::MODEL_PIXEL_ARCSEC;
    let mut parts = Vec::new();
    let (mut w, mut h) = (width, height);
    if let Some(s) = pixel_arcsec.filter(|&s| (s / model - 1.0).abs() > pixel_scale::TOLERANCE) {
        (w, h) = (pixel_scale::resampled_len(width, s, model), pixel_scale::resampled_len(height, s, model));
        parts.push(format!("resampled from {s:.3}\" to {model}\" pixels ({width} x {height} -> {w} x {h})"));
    }
    if (w, h) != (size, size) {
        parts.push(if w >= size && h >= size {
            format!("cropped to its central {size} x {size} pixels")
        } else if w <= size && h <= size {
            format!("padded with sky to {size} x {size} pixels")
        } else {
            format!("cropped and padded with sky to {size} x {size} pixels about its centre")
        });
    }
    let mut lines = Vec::new();
    if !parts.is_empty() {
        lines.push(format!("The model sees this cutout {}.", parts.join(", then ")));
    }
    if !blank.is_empty() {
        let names: Vec<String> = blank.iter().map(|b| b.to_string()).collect();
        let (list, verb) = match names.split_last() {
            Some((last, [])) => (format!("{last} band"), "holds"),
            Some((last, rest)) => (format!("{} and {last} bands", rest.join(", ")), "hold"),
            None => unreachable!("blank is not empty"),
        };
        lines.push(format!("Its {list} {verb} no image (masked, or one constant value): the model saw sky there."));
    }
    (!lines.is_empty()).then(|| lines.join(" "))
}

/// A labelled folder as read: its data set, the (name, why) of objects not loaded, and how many
/// cutouts the model sees otherwise than their files hold them.
pub type Labelled = (Dataset, Vec<(String, String)>, Adapted);

/// Reads a labelled folder (any layout `ingest` reads) with its truth CSV (default:
/// `<dir>/classifications.csv`) into a data set. Objects without truth or unreadable are returned
/// as problems, not loaded. Cutouts are fitted to `size` pixels (a model's input size; 0: the
/// first cutout's), so a folder of another survey's size is read as the model sees it.
pub fn load_labelled(
    dir: &Path,
    truth: Option<&Path>,
    norm: impl Into<crate::cutout::Normalisation>,
    size: usize,
) -> Result<Labelled, DataError> {
    load_labelled_at(dir, truth, norm, size, &FolderOptions::default())
}

/// How a labelled folder is read beyond its files' own say.
#[derive(Debug, Clone, Copy, Default)]
pub struct FolderOptions {
    /// Arcseconds per pixel of every cutout, over what their headers say: for a folder without
    /// WCS, or with a wrong one.
    pub pixel_scale: Option<f64>,
    /// Keep cutouts with a band of no valid pixel, that band taken as sky
    /// ([`survey::check_blank_bands`]).
    pub keep_blank_bands: bool,
}

/// [`load_labelled`], read as `options` say.
pub fn load_labelled_at(
    dir: &Path,
    truth: Option<&Path>,
    norm: impl Into<crate::cutout::Normalisation>,
    size: usize,
    options: &FolderOptions,
) -> Result<Labelled, DataError> {
    let truth_path = match truth {
        Some(t) => t.to_path_buf(),
        None => {
            let p = dir.join(crate::sim::TRUTH_FILE);
            if !p.exists() {
                return Err(DataError::NoTruth(dir.into()));
            }
            p
        }
    };
    let truth = read_truth_csv(&truth_path)?;
    read_folder(dir, Some(&truth), norm, size, options)
}

/// Every readable cutout of a folder, without labels (each 0): images of a survey to adapt a
/// model to, taught by a model rather than by truth (`train --unlabelled --teacher`).
pub fn load_unlabelled_at(
    dir: &Path,
    norm: impl Into<crate::cutout::Normalisation>,
    size: usize,
    options: &FolderOptions,
) -> Result<Labelled, DataError> {
    read_folder(dir, None, norm, size, options)
}

/// A folder's cutouts, labelled from `truth` (objects it lacks are problems) or all 0 without.
fn read_folder(
    dir: &Path,
    truth: Option<&std::collections::BTreeMap<String, crate::project::Truth>>,
    norm: impl Into<crate::cutout::Normalisation>,
    size: usize,
    options: &FolderOptions,
) -> Result<Labelled, DataError> {
    let norm = norm.into();
    let discovery = survey::discover(dir)?;
    let mut problems: Vec<(String, String)> =
        discovery.problems.iter().map(|p| (p.name.clone(), p.reason.to_string())).collect();
    let results = survey::read_all(&discovery.objects, &|| {});
    let mut cutouts = Vec::with_capacity(results.len());
    for (spec, r) in discovery.objects.iter().zip(results) {
        let label = match truth.map(|t| t.get(&spec.name)) {
            None => 0.0,
            Some(Some(t)) if t.is_lens => 1.0,
            Some(Some(_)) => 0.0,
            Some(None) => {
                problems.push((spec.name.clone(), SkipReason::NoTruth.to_string()));
                continue;
            }
        };
        match r.and_then(|c| survey::check_blank_bands(&c, options.keep_blank_bands).map(|_| c)) {
            Ok(c) => {
                let c = match options.pixel_scale {
                    Some(s) => c.with_pixel_scale(Some(s)),
                    None => c,
                };
                cutouts.push((c, label));
            }
            Err(e) => problems.push((spec.name.clone(), e.to_string())),
        }
    }
    let mut data = Dataset::with_size(size);
    let items: Vec<(&crate::cutout::Cutout, f32)> = cutouts.iter().map(|(c, l)| (c, *l)).collect();
    data.push_all(&items, norm);
    let mut adapted = Adapted::default();
    for (c, _) in &cutouts {
        adapted.count(c, data.size);
    }
    Ok((data, problems, adapted))
}

/// Serialises the tests that draw from the device's random numbers: the seed is the device's, one
/// for every thread of the test binary, so a test that seeds twice and expects the same draws
/// must not meet another test's draws in between (it did, now and then, under load).
#[cfg(test)]
pub(crate) fn device_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::how_seen;

    #[test]
    fn a_cutout_seen_as_it_is_needs_no_words() {
        assert_eq!(how_seen(101, 101, None, 101, &[]), None);
        assert_eq!(how_seen(101, 101, Some(0.2), 101, &[]), None);
        // Inside the tolerance headers round to.
        assert_eq!(how_seen(101, 101, Some(0.205), 101, &[]), None);
    }

    #[test]
    fn resampling_and_fitting_are_said_with_the_sizes_they_give() {
        let euclid = how_seen(202, 202, Some(0.1), 101, &[]).unwrap();
        assert!(euclid.contains("from 0.100\" to 0.2\" pixels (202 x 202 -> 101 x 101)"), "{euclid}");
        assert!(!euclid.contains("crop") && !euclid.contains("pad"), "{euclid}");
        // DES: 101 pixels of 0.263" span 26.6", 133 of the model's pixels, more than it takes.
        let des = how_seen(101, 101, Some(0.263), 101, &[]).unwrap();
        assert!(des.contains("(101 x 101 -> 133 x 133), then cropped to its central 101 x 101"), "{des}");
        let small = how_seen(64, 64, None, 101, &[]).unwrap();
        assert_eq!(small, "The model sees this cutout padded with sky to 101 x 101 pixels.");
        let strip = how_seen(150, 60, None, 101, &[]).unwrap();
        assert!(strip.contains("cropped and padded"), "{strip}");
    }

    #[test]
    fn blank_bands_are_named_after_what_the_pixels_went_through() {
        use crate::cutout::Band;
        assert_eq!(
            how_seen(101, 101, None, 101, &[Band::U]).unwrap(),
            "Its u band holds no image (masked, or one constant value): the model saw sky there."
        );
        let both = how_seen(64, 64, None, 101, &[Band::U, Band::G, Band::I]).unwrap();
        assert!(both.starts_with("The model sees this cutout padded"), "{both}");
        assert!(
            both.ends_with(
                "Its u, g and i bands hold no image (masked, or one constant value): the model saw sky there."
            ),
            "{both}"
        );
    }
}
