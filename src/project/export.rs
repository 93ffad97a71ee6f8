//! The candidate catalogue and the raw grade log, as files people keep: CSV, and a FITS binary
//! table for TOPCAT (SPEC 7).
//!
//! Catalogue columns: `name, ra, dec, tile, model_score, model_version, n_grades, mean_grade,
//! n0, n1, n3, n5, swap_posterior, swap_status, seed_rule, disputed, blank_bands`. Training
//! candidates are not in the catalogue (they are there to measure inspectors, not to be found).

use super::{Project, ProjectError};
use crate::consensus::swap::{Status, SwapConfig};
use crate::consensus::{Consensus, SeedRule};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One row of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogueRow {
    pub name: String,
    pub ra: Option<f64>,
    pub dec: Option<f64>,
    pub tile: Option<String>,
    pub model_score: Option<f32>,
    pub model_version: Option<String>,
    pub n_grades: usize,
    pub mean_grade: Option<f64>,
    pub n0: usize,
    pub n1: usize,
    pub n3: usize,
    pub n5: usize,
    pub swap_posterior: f64,
    pub swap_status: String,
    pub seed_rule: bool,
    pub disputed: bool,
    /// The bands the survey left without an image for this candidate (a mask in one filter), as
    /// letters in u, g, r, i order ("u", "gr"); empty when all four were there. Its score and
    /// its grades were made without them, which a catalogue's user must be able to see.
    pub blank_bands: String,
}

/// Which candidates go into the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinVerdict {
    /// Every (non-training) candidate.
    All,
    /// Those graded at least once.
    Graded,
    /// Those passing the seed rule.
    SeedRule,
    /// Those SWAP has detected.
    Detected,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error("cannot write {path}: {detail}")]
    Write { path: PathBuf, detail: String },
    #[error("{0}: unknown catalogue format (use .csv or .fits)")]
    Format(PathBuf),
}

/// What a catalogue was made with, written into its FITS header (and echoed for CSV users by the
/// command) so a table found later says where it came from.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub rule: SeedRule,
    pub swap: SwapConfig,
    /// The model version whose scores the catalogue carries.
    pub model_version: Option<String>,
}

impl Provenance {
    /// FITS header keywords: program, model, consensus rule, SWAP prior and thresholds.
    pub fn cards(&self) -> Vec<(&'static str, String, &'static str)> {
        vec![
            ("PROGRAM", format!("lens-inspect {}", env!("CARGO_PKG_VERSION")), "program that wrote this table"),
            ("MODELVER", self.model_version.clone().unwrap_or_else(|| "none".into()), "model version of model_score"),
            (
                "CONSRULE",
                format!("{} x grade>=3 or {} x grade 5", self.rule.min_maybe, self.rule.min_sure),
                "seed rule of seed_rule",
            ),
            ("SWAPPRIO", format!("{}", self.swap.prior), "SWAP prior P(lens)"),
            ("SWAPDET", format!("{}", self.swap.detect_above), "SWAP posterior above: detected"),
            ("SWAPREJ", format!("{}", self.swap.reject_below), "SWAP posterior below: rejected"),
        ]
    }
}

/// Builds the catalogue rows: consensus from all grade events, the latest model's scores.
pub fn catalogue(
    project: &Project,
    rule: &SeedRule,
    swap: SwapConfig,
    min: MinVerdict,
) -> Result<Vec<CatalogueRow>, ExportError> {
    let candidates = project.candidates()?;
    let training: HashMap<i64, bool> =
        candidates.iter().filter(|c| c.is_training).filter_map(|c| c.truth_is_lens.map(|t| (c.id, t))).collect();
    let events = project.grade_events()?;
    let consensus = Consensus::compute(&events, &|id| training.get(&id).copied(), rule, swap);
    let (version, scores) = project.latest_predictions()?;
    let mut rows = Vec::new();
    for c in candidates.iter().filter(|c| !c.is_training) {
        let v = consensus.candidates.get(&c.id);
        let status = v.map(|v| v.swap_status).unwrap_or(Status::Open);
        let row = CatalogueRow {
            name: c.name.clone(),
            ra: c.ra_deg,
            dec: c.dec_deg,
            tile: c.tile.clone(),
            model_score: scores.get(&c.id).copied(),
            model_version: version.clone().filter(|_| scores.contains_key(&c.id)),
            n_grades: v.map(|v| v.n_grades).unwrap_or(0),
            mean_grade: v.and_then(|v| v.mean_grade),
            n0: v.map(|v| v.counts[0]).unwrap_or(0),
            n1: v.map(|v| v.counts[1]).unwrap_or(0),
            n3: v.map(|v| v.counts[2]).unwrap_or(0),
            n5: v.map(|v| v.counts[3]).unwrap_or(0),
            swap_posterior: v.map(|v| v.swap_posterior).unwrap_or(swap.prior),
            swap_status: status.as_str().to_string(),
            seed_rule: v.is_some_and(|v| v.seed_rule),
            disputed: v.is_some_and(|v| v.disputed),
            blank_bands: c.blank_bands().iter().map(|b| b.to_string()).collect(),
        };
        let keep = match min {
            MinVerdict::All => true,
            MinVerdict::Graded => row.n_grades > 0,
            MinVerdict::SeedRule => row.seed_rule,
            MinVerdict::Detected => status == Status::Detected,
        };
        if keep {
            rows.push(row);
        }
    }
    Ok(rows)
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(|x| x.to_string()).unwrap_or_default()
}

/// Writes the catalogue as CSV or FITS, by the file's extension.
pub fn write_catalogue(path: &Path, rows: &[CatalogueRow], provenance: &Provenance) -> Result<(), ExportError> {
    let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("csv") => write_csv(path, rows),
        Some("fits") | Some("fit") => write_fits(path, rows, provenance),
        _ => Err(ExportError::Format(path.into())),
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (survey names can).
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn write_csv(path: &Path, rows: &[CatalogueRow]) -> Result<(), ExportError> {
    let fail = |e: std::io::Error| ExportError::Write { path: path.into(), detail: e.to_string() };
    let tmp = path.with_extension("partial");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(fail)?);
    writeln!(w, "name,ra,dec,tile,model_score,model_version,n_grades,mean_grade,n0,n1,n3,n5,swap_posterior,swap_status,seed_rule,disputed,blank_bands").map_err(fail)?;
    for r in rows {
        writeln!(
            w,
            "{},{},{},{},{},{},{},{},{},{},{},{},{:e},{},{},{},{}",
            csv_field(&r.name),
            opt(&r.ra),
            opt(&r.dec),
            csv_field(&opt(&r.tile)),
            opt(&r.model_score),
            csv_field(&opt(&r.model_version)),
            r.n_grades,
            r.mean_grade.map(|m| format!("{m:.4}")).unwrap_or_default(),
            r.n0,
            r.n1,
            r.n3,
            r.n5,
            r.swap_posterior,
            r.swap_status,
            r.seed_rule,
            r.disputed,
            r.blank_bands
        )
        .map_err(fail)?;
    }
    w.flush().map_err(fail)?;
    drop(w);
    std::fs::rename(&tmp, path).map_err(fail)
}

/// Writes booleans into a logical (`L`) column: TOPCAT and astropy read them as booleans, where a
/// 0/1 integer column would read as numbers. fitsio has no safe call for it.
fn write_logical(f: &mut fitsio::FitsFile, column: usize, values: &[bool]) -> Result<(), fitsio::errors::Error> {
    let mut raw: Vec<std::os::raw::c_char> = values.iter().map(|&b| b as std::os::raw::c_char).collect();
    let mut status = 0;
    // SAFETY: the table HDU is current (just created and written to), `column` is its 1-based
    // logical column and `raw` holds `values.len()` elements that cfitsio only reads.
    unsafe {
        fitsio::sys::ffpcll(f.as_raw(), column as i32, 1, 1, raw.len() as i64, raw.as_mut_ptr(), &mut status);
    }
    fitsio::errors::check_status(status)
}

fn write_fits(path: &Path, rows: &[CatalogueRow], provenance: &Provenance) -> Result<(), ExportError> {
    use fitsio::tables::{ColumnDataType, ColumnDescription};
    let fail = |e: fitsio::errors::Error| ExportError::Write { path: path.into(), detail: e.to_string() };
    let tmp = path.with_extension("partial.fits");
    let _ = std::fs::remove_file(&tmp);
    {
        let mut f = fitsio::FitsFile::create(&tmp).open().map_err(fail)?;
        let width = |v: Vec<usize>| v.into_iter().max().unwrap_or(1).max(1);
        let name_w = width(rows.iter().map(|r| r.name.len()).collect());
        let tile_w = width(rows.iter().map(|r| opt(&r.tile).len()).collect());
        let ver_w = width(rows.iter().map(|r| opt(&r.model_version).len()).collect());
        let blank_w = width(rows.iter().map(|r| r.blank_bands.len()).collect());
        let col = |name: &str, t: ColumnDataType, repeat: usize| {
            ColumnDescription::new(name).with_type(t).that_repeats(repeat).create().map_err(fail)
        };
        let columns = vec![
            col("name", ColumnDataType::String, name_w)?,
            col("ra", ColumnDataType::Double, 1)?,
            col("dec", ColumnDataType::Double, 1)?,
            col("tile", ColumnDataType::String, tile_w)?,
            col("model_score", ColumnDataType::Float, 1)?,
            col("model_version", ColumnDataType::String, ver_w)?,
            col("n_grades", ColumnDataType::Int, 1)?,
            col("mean_grade", ColumnDataType::Float, 1)?,
            col("n0", ColumnDataType::Int, 1)?,
            col("n1", ColumnDataType::Int, 1)?,
            col("n3", ColumnDataType::Int, 1)?,
            col("n5", ColumnDataType::Int, 1)?,
            col("swap_posterior", ColumnDataType::Double, 1)?,
            col("swap_status", ColumnDataType::String, 8)?,
            col("seed_rule", ColumnDataType::Logical, 1)?,
            col("disputed", ColumnDataType::Logical, 1)?,
            col("blank_bands", ColumnDataType::String, blank_w)?,
        ];
        let hdu = f.create_table("CANDIDATES", &columns).map_err(fail)?;
        // Units, frame and provenance: what TOPCAT and astropy show and keep.
        hdu.write_key(&mut f, "TUNIT2", "deg").map_err(fail)?;
        hdu.write_key(&mut f, "TUNIT3", "deg").map_err(fail)?;
        hdu.write_key(&mut f, "RADESYS", ("ICRS", "frame of ra, dec")).map_err(fail)?;
        for (key, value, comment) in provenance.cards() {
            hdu.write_key(&mut f, key, (value.as_str(), comment)).map_err(fail)?;
        }
        if !rows.is_empty() {
            let strings = |g: &dyn Fn(&CatalogueRow) -> String| rows.iter().map(g).collect::<Vec<String>>();
            let nan = f64::NAN;
            hdu.write_col(&mut f, "name", &strings(&|r| r.name.clone())).map_err(fail)?;
            hdu.write_col(&mut f, "ra", &rows.iter().map(|r| r.ra.unwrap_or(nan)).collect::<Vec<f64>>())
                .map_err(fail)?;
            hdu.write_col(&mut f, "dec", &rows.iter().map(|r| r.dec.unwrap_or(nan)).collect::<Vec<f64>>())
                .map_err(fail)?;
            hdu.write_col(&mut f, "tile", &strings(&|r| opt(&r.tile))).map_err(fail)?;
            hdu.write_col(
                &mut f,
                "model_score",
                &rows.iter().map(|r| r.model_score.unwrap_or(f32::NAN)).collect::<Vec<f32>>(),
            )
            .map_err(fail)?;
            hdu.write_col(&mut f, "model_version", &strings(&|r| opt(&r.model_version))).map_err(fail)?;
            let ints = |g: &dyn Fn(&CatalogueRow) -> usize| rows.iter().map(|r| g(r) as i32).collect::<Vec<i32>>();
            hdu.write_col(&mut f, "n_grades", &ints(&|r| r.n_grades)).map_err(fail)?;
            hdu.write_col(
                &mut f,
                "mean_grade",
                &rows.iter().map(|r| r.mean_grade.map(|m| m as f32).unwrap_or(f32::NAN)).collect::<Vec<f32>>(),
            )
            .map_err(fail)?;
            hdu.write_col(&mut f, "n0", &ints(&|r| r.n0)).map_err(fail)?;
            hdu.write_col(&mut f, "n1", &ints(&|r| r.n1)).map_err(fail)?;
            hdu.write_col(&mut f, "n3", &ints(&|r| r.n3)).map_err(fail)?;
            hdu.write_col(&mut f, "n5", &ints(&|r| r.n5)).map_err(fail)?;
            hdu.write_col(&mut f, "swap_posterior", &rows.iter().map(|r| r.swap_posterior).collect::<Vec<f64>>())
                .map_err(fail)?;
            hdu.write_col(&mut f, "swap_status", &strings(&|r| r.swap_status.clone())).map_err(fail)?;
            let seed: Vec<bool> = rows.iter().map(|r| r.seed_rule).collect();
            let disputed: Vec<bool> = rows.iter().map(|r| r.disputed).collect();
            write_logical(&mut f, 15, &seed).map_err(fail)?;
            write_logical(&mut f, 16, &disputed).map_err(fail)?;
            hdu.write_col(&mut f, "blank_bands", &strings(&|r| r.blank_bands.clone())).map_err(fail)?;
        }
    }
    std::fs::rename(&tmp, path).map_err(|e| ExportError::Write { path: path.into(), detail: e.to_string() })
}

/// Writes every grade event as CSV: the raw log, one row per event, undo rows with an empty score.
pub fn write_grades_csv(project: &Project, path: &Path) -> Result<usize, ExportError> {
    let fail = |e: std::io::Error| ExportError::Write { path: path.into(), detail: e.to_string() };
    let names: HashMap<i64, String> = project.candidates()?.into_iter().map(|c| (c.id, c.name)).collect();
    let inspectors: HashMap<i64, String> = project.inspectors()?.into_iter().map(|i| (i.id, i.name)).collect();
    let events = project.grade_events()?;
    let mut w =
        csv::Writer::from_path(path).map_err(|e| ExportError::Write { path: path.into(), detail: e.to_string() })?;
    let csv_fail = |e: csv::Error| ExportError::Write { path: path.into(), detail: e.to_string() };
    w.write_record(["uid", "candidate", "inspector", "score", "time", "session", "comment", "points"])
        .map_err(csv_fail)?;
    for e in &events {
        let points =
            if e.points.is_empty() { String::new() } else { serde_json::to_string(&e.points).unwrap_or_default() };
        w.write_record([
            e.uid.as_str(),
            names.get(&e.candidate_id).map(String::as_str).unwrap_or(""),
            inspectors.get(&e.inspector_id).map(String::as_str).unwrap_or(""),
            &e.score.map(|s| s.value().to_string()).unwrap_or_default(),
            e.time.as_str(),
            e.session_id.as_deref().unwrap_or(""),
            e.comment.as_deref().unwrap_or(""),
            &points,
        ])
        .map_err(csv_fail)?;
    }
    w.flush().map_err(fail)?;
    Ok(events.len())
}
