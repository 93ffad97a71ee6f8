//! Bringing survey cutouts into a project: discover the input, read and validate every object in
//! parallel, store the good ones, and say exactly what was skipped and why.
//!
//! Re-ingesting the same input adds nothing twice: names already in the project are not read
//! again (their truth is still updated when a truth file is given).

use super::{NewCandidate, Project, ProjectError, Truth};
use crate::survey::{self, LayoutError, LayoutKind, SkipReason};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Challenge-style truth CSV (`ID,is_lens,...`).
    pub truth: Option<PathBuf>,
    /// Mark the ingested objects as training candidates (they need truth).
    pub training: bool,
    /// Copy the pixels into the project instead of pointing at the files.
    pub store_pixels: bool,
    /// Arcseconds per pixel of every object, over what their headers say: for cutouts without
    /// a WCS (taken at the model's scale otherwise) or with a wrong one. Kept per candidate.
    pub pixel_scale: Option<f64>,
    /// Read objects with a band of no valid pixel (all NaN) with that band as sky, instead of
    /// skipping them ([`survey::check_blank_bands`]).
    pub keep_blank_bands: bool,
}

/// One object that was not ingested.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestError {
    pub name: String,
    /// The reason's short key (as counted in `skipped`).
    pub kind: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestSummary {
    pub layout: Option<LayoutKind>,
    /// Objects found in the input.
    pub found: usize,
    /// Newly added to the project.
    pub ingested: usize,
    /// Already in the project (not read again).
    pub already_present: usize,
    /// Of those, how many took the new `--pixel-scale` (their stored scores predate it).
    pub rescaled: usize,
    /// Band -> number of ingested objects in which that band holds no image (all masked or
    /// one constant value): read and scored with the band as sky, and said to be so.
    pub blank_bands: BTreeMap<String, usize>,
    /// Reason key -> number of objects skipped for it.
    pub skipped: BTreeMap<String, usize>,
    pub errors: Vec<IngestError>,
    /// Truth rows that matched a candidate of the project, and rows naming no candidate.
    pub truth_matched: usize,
    pub truth_unmatched: usize,
}

impl IngestSummary {
    fn skip(&mut self, name: String, reason: &SkipReason) {
        *self.skipped.entry(reason.key().to_string()).or_default() += 1;
        self.errors.push(IngestError { name, kind: reason.key().into(), reason: reason.to_string() });
    }

    pub fn total_skipped(&self) -> usize {
        self.skipped.values().sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestFailure {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error("cannot read truth file {path}: {detail}")]
    Truth { path: PathBuf, detail: String },
}

/// Reads a challenge-style truth CSV: a header with `ID` and `is_lens` (0/1, or true/false), other
/// columns kept (numbers as numbers).
pub fn read_truth_csv(path: &Path) -> Result<BTreeMap<String, Truth>, IngestFailure> {
    let fail = |detail: String| IngestFailure::Truth { path: path.into(), detail };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_path(path)
        .map_err(|e| fail(e.to_string()))?;
    let headers: Vec<String> = reader.headers().map_err(|e| fail(e.to_string()))?.iter().map(str::to_string).collect();
    let find = |n: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(n));
    let id = find("id").ok_or_else(|| fail("no `ID` column".into()))?;
    let lens = find("is_lens").ok_or_else(|| fail("no `is_lens` column".into()))?;
    let mut out = BTreeMap::new();
    for (k, rec) in reader.records().enumerate() {
        let line = k + 2;
        let rec = rec.map_err(|e| fail(format!("line {line}: {e}")))?;
        let name = rec.get(id).unwrap_or("").to_string();
        let is_lens = match rec.get(lens).unwrap_or("").to_ascii_lowercase().as_str() {
            "1" | "1.0" | "true" | "t" | "yes" => true,
            "0" | "0.0" | "false" | "f" | "no" => false,
            other => return Err(fail(format!("line {line}: is_lens is {other:?}, expected 0 or 1"))),
        };
        if name.is_empty() {
            return Err(fail(format!("line {line}: empty ID")));
        }
        let mut extra = BTreeMap::new();
        for (c, h) in headers.iter().enumerate() {
            if c == id || c == lens {
                continue;
            }
            if let Some(v) = rec.get(c).filter(|v| !v.is_empty()) {
                let value = match v.parse::<f64>() {
                    Ok(x) if x.is_finite() => serde_json::json!(x),
                    _ => serde_json::json!(v),
                };
                extra.insert(h.clone(), value);
            }
        }
        out.insert(name, Truth { is_lens, extra });
    }
    Ok(out)
}

/// The metadata key under which a candidate's WCS is kept (as header keywords).
pub const WCS_KEY: &str = "wcs";

/// The metadata key of a candidate's pixel scale (arcsec) when its TAN WCS does not give it: the
/// user's `--pixel-scale`, or a header whose projection is not TAN. It wins over the WCS's.
pub const PIXEL_SCALE_KEY: &str = "pixel_arcsec";

/// The metadata key of the bands a candidate's files leave blank ("u" or "u,g";
/// [`crate::cutout::Cutout::blank_bands`]), absent when every band holds an image.
pub const BLANK_BANDS_KEY: &str = "blank_bands";

/// How many objects are read and written per transaction: bounds memory on large inputs.
const CHUNK: usize = 1024;

/// Ingests `input` into `project`. `progress(done, total)` is called as objects are read.
pub fn ingest(
    project: &mut Project,
    input: &Path,
    options: &IngestOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<IngestSummary, IngestFailure> {
    let truth = options.truth.as_deref().map(read_truth_csv).transpose()?;
    // Paths are stored absolute, so the project finds its files from any working folder (the
    // GUI started from a desktop, `explain` run from home), not only from where ingest ran.
    let input = std::path::absolute(input).unwrap_or_else(|_| input.to_path_buf());
    let discovery = survey::discover(&input)?;
    log::info!(
        "{}: {:?} layout, {} objects found, {} problems",
        input.display(),
        discovery.kind,
        discovery.objects.len(),
        discovery.problems.len()
    );
    let mut summary =
        IngestSummary { layout: Some(discovery.kind), found: discovery.objects.len(), ..Default::default() };
    for p in &discovery.problems {
        summary.skip(p.name.clone(), &p.reason);
    }
    let existing = project.candidate_names()?;
    let mut todo = Vec::new();
    let mut present = Vec::new();
    for spec in discovery.objects {
        if existing.contains(&spec.name) {
            summary.already_present += 1;
            present.push(spec.name);
            continue;
        }
        if options.training && truth.as_ref().is_none_or(|t| !t.contains_key(&spec.name)) {
            summary.skip(spec.name.clone(), &SkipReason::NoTruth);
            continue;
        }
        todo.push(spec);
    }
    let total = todo.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let tick = || {
        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        progress(d, total);
    };
    for chunk in todo.chunks(CHUNK) {
        let results = survey::read_all_with_wcs(chunk, &tick);
        // Sky statistics (a median per band) and the WCS's JSON on the worker threads too: on
        // the writer's thread they were a third of the ingest's time.
        let built: Vec<Result<NewCandidate, SkipReason>> = chunk
            .par_iter()
            .zip(results)
            .map(|(spec, result)| {
                let (cutout, wcs) = result?;
                survey::check_blank_bands(&cutout, options.keep_blank_bands)?;
                let mut spec = spec.clone();
                // A scale the stored WCS cannot carry: the user's, or a non-TAN header's.
                let own_scale = cutout.pixel_arcsec.filter(|_| wcs.is_none());
                if let Some(scale) = options.pixel_scale.or(own_scale) {
                    spec.metadata.insert(PIXEL_SCALE_KEY.into(), serde_json::json!(scale));
                }
                let blank = cutout.blank_bands();
                if !blank.is_empty() {
                    spec.metadata.insert(BLANK_BANDS_KEY.into(), serde_json::json!(crate::cutout::band_list(&blank)));
                }
                if let Some(wcs) = wcs {
                    // The header's sky position when the input gave none (SPEC: RA/Dec
                    // everywhere), and the WCS itself for cursor coordinates and regions.
                    if spec.ra_deg.is_none() || spec.dec_deg.is_none() {
                        let centre = |n: usize| (n as f64 + 1.0) / 2.0;
                        if let Some((ra, dec)) = wcs.pixel_to_sky(centre(cutout.width), centre(cutout.height)) {
                            spec.ra_deg = Some(ra);
                            spec.dec_deg = Some(dec);
                        }
                    }
                    spec.metadata.insert(WCS_KEY.into(), wcs.to_json());
                }
                let name = spec.name.clone();
                let mut c = NewCandidate::from_cutout(spec, &cutout, options.store_pixels);
                c.truth = truth.as_ref().and_then(|t| t.get(&name).cloned());
                c.is_training = options.training;
                Ok(c)
            })
            .collect();
        let mut batch = Vec::with_capacity(chunk.len());
        for (spec, result) in chunk.iter().zip(built) {
            match result {
                Ok(c) => {
                    let blank = c.spec.metadata.get(BLANK_BANDS_KEY).and_then(serde_json::Value::as_str);
                    for band in blank.into_iter().flat_map(|b| b.split(',')) {
                        *summary.blank_bands.entry(band.to_string()).or_default() += 1;
                    }
                    batch.push(c)
                }
                Err(reason) => summary.skip(spec.name.clone(), &reason),
            }
        }
        summary.ingested += project.insert_candidates(&batch)?;
    }
    if let Some(scale) = options.pixel_scale {
        summary.rescaled = project.set_pixel_scales(&present, scale)?;
    }
    if let Some(truth) = &truth {
        summary.truth_matched = project.set_truths(truth)?;
        summary.truth_unmatched = truth.len() - summary.truth_matched;
    }
    Ok(summary)
}
