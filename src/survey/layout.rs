//! The input layouts the ingester understands (SPEC 2.1 items 1–3), turned into a list of
//! [`ObjectSpec`]s — what to read for each object — and the reading of one spec into a [`Cutout`].
//!
//! Discovery only lists files; reading and validation happen in [`load`], which the ingester runs
//! in parallel. A problem found during discovery (an unreadable folder, a bad catalogue row) is
//! reported as a [`Problem`] and discovery goes on.

use super::error::SkipReason;
use super::fits::{read_planes, read_single_band, ImagePlane};
use super::wcs::TanWcs;
use crate::cutout::{Band, Cutout};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where one object's pixels are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObjectSource {
    /// One file per band, in [`Band::ALL`] order; `None` where no file was found.
    Bands { files: [Option<PathBuf>; 4] },
    /// One file holding all bands: a multi-extension FITS or a 3-D cube.
    File { path: PathBuf },
}

/// One object to ingest: its name, where its pixels are, and what the input says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectSpec {
    pub name: String,
    pub source: ObjectSource,
    pub ra_deg: Option<f64>,
    pub dec_deg: Option<f64>,
    pub tile: Option<String>,
    /// Extra catalogue columns, numbers as numbers.
    pub metadata: BTreeMap<String, serde_json::Value>,
}

impl ObjectSpec {
    /// An object with a name and a place for its pixels, and nothing else known about it.
    pub fn new(name: String, source: ObjectSource) -> ObjectSpec {
        ObjectSpec { name, source, ra_deg: None, dec_deg: None, tile: None, metadata: BTreeMap::new() }
    }
}

/// Something wrong with the input as a whole or with one entry of it, found before reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The object's name, or the folder/file concerned when no object can be named.
    pub name: String,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayoutKind {
    /// Bologna Lens Challenge folders `Band1..Band4` with `imageSDSS_<B>-<ID>.fits`.
    Bologna,
    /// A folder of files, one multi-extension FITS or cube per object.
    ObjectFiles,
    /// A catalogue CSV naming the files.
    Catalogue,
}

#[derive(Debug, Clone)]
pub struct Discovery {
    pub kind: LayoutKind,
    pub objects: Vec<ObjectSpec>,
    pub problems: Vec<Problem>,
}

/// Why the input as a whole cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("input not found: {0}")]
    NotFound(PathBuf),
    #[error("cannot read input folder {path}: {source}")]
    Folder { path: PathBuf, source: std::io::Error },
    #[error("cannot read catalogue {path}: {detail}")]
    Catalogue { path: PathBuf, detail: String },
    #[error("{0} is neither a folder (Bologna Band1..Band4, or FITS files) nor a catalogue .csv")]
    Unrecognised(PathBuf),
}

const FITS_SUFFIXES: [&str; 8] = [".fits.gz", ".fits.fz", ".fit.gz", ".fts.gz", ".fits", ".fit", ".fts", ".fz"];

/// The file name without its FITS suffix, if it has one.
pub fn fits_stem(file_name: &str) -> Option<&str> {
    let lower = file_name.to_ascii_lowercase();
    FITS_SUFFIXES
        .iter()
        .find(|s| lower.ends_with(*s) && lower.len() > s.len())
        .map(|s| &file_name[..file_name.len() - s.len()])
}

/// Parses a Bologna challenge file name `imageSDSS_<B>-<ID>.fits[.gz|.fz]` into band and ID.
pub fn parse_bologna_name(file_name: &str) -> Option<(Band, String)> {
    let stem = fits_stem(file_name)?;
    let rest = stem.strip_prefix("imageSDSS_")?;
    let (letter, id) = rest.split_once('-')?;
    if id.is_empty() {
        return None;
    }
    Some((Band::parse(letter)?, id.to_string()))
}

/// Finds what is at `input` and lists its objects.
pub fn discover(input: &Path) -> Result<Discovery, LayoutError> {
    let meta = std::fs::metadata(input).map_err(|_| LayoutError::NotFound(input.into()))?;
    if meta.is_file() {
        if input.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
            return discover_catalogue(input);
        }
        if super::catalogue::is_fits(input) {
            return discover_fits_catalogue(input);
        }
        return Err(LayoutError::Unrecognised(input.into()));
    }
    let entries = read_dir_sorted(input).map_err(|source| LayoutError::Folder { path: input.into(), source })?;
    let has_band_folders = entries
        .iter()
        .any(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.len() == 5 && n.starts_with("Band")));
    if has_band_folders {
        Ok(discover_bologna(input, &entries))
    } else {
        Ok(discover_object_files(&entries))
    }
}

fn read_dir_sorted(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    Ok(v)
}

fn discover_bologna(root: &Path, entries: &[PathBuf]) -> Discovery {
    let mut problems = Vec::new();
    let mut by_id: BTreeMap<String, [Vec<PathBuf>; 4]> = BTreeMap::new();
    let mut missing_detail = String::new();
    for folder in entries {
        let name = folder.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !(name.len() == 5 && name.starts_with("Band")) {
            continue;
        }
        let files = match read_dir_sorted(folder) {
            Ok(f) => f,
            Err(e) => {
                missing_detail = format!(" (folder {} unreadable: {e})", folder.display());
                problems.push(Problem {
                    name: folder.display().to_string(),
                    reason: SkipReason::Unreadable { path: folder.clone(), detail: e.to_string() },
                });
                continue;
            }
        };
        for f in files {
            let Some(fname) = f.file_name().and_then(|n| n.to_str()) else { continue };
            if let Some((band, id)) = parse_bologna_name(fname) {
                by_id.entry(id).or_default()[band.index()].push(f);
            }
        }
    }
    let mut objects = Vec::new();
    for (id, found) in by_id {
        let mut files: [Option<PathBuf>; 4] = Default::default();
        let mut dup = None;
        for band in Band::ALL {
            let list = &found[band.index()];
            if list.len() > 1 {
                dup = Some(SkipReason::DuplicateBand {
                    band,
                    detail: list.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
                });
            }
            files[band.index()] = list.first().cloned();
        }
        if let Some(reason) = dup {
            problems.push(Problem { name: id, reason });
            continue;
        }
        if let Some(band) = Band::ALL.into_iter().find(|b| files[b.index()].is_none()) {
            let detail = if missing_detail.is_empty() {
                format!(" (no imageSDSS_{}-{id} file under {})", band.letter().to_ascii_uppercase(), root.display())
            } else {
                missing_detail.clone()
            };
            problems.push(Problem { name: id, reason: SkipReason::MissingBand { band, detail } });
            continue;
        }
        objects.push(ObjectSpec::new(id, ObjectSource::Bands { files }));
    }
    Discovery { kind: LayoutKind::Bologna, objects, problems }
}

fn discover_object_files(entries: &[PathBuf]) -> Discovery {
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for path in entries {
        let Some(fname) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(stem) = fits_stem(fname) else { continue };
        if path.is_dir() {
            problems.push(Problem {
                name: fname.to_string(),
                reason: SkipReason::Unreadable { path: path.clone(), detail: "is a folder, not a FITS file".into() },
            });
            continue;
        }
        objects.push(ObjectSpec::new(stem.to_string(), ObjectSource::File { path: path.clone() }));
    }
    Discovery { kind: LayoutKind::ObjectFiles, objects, problems }
}

fn discover_catalogue(csv_path: &Path) -> Result<Discovery, LayoutError> {
    let cat_err = |detail: String| LayoutError::Catalogue { path: csv_path.into(), detail };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_path(csv_path)
        .map_err(|e| cat_err(e.to_string()))?;
    let headers: Vec<String> =
        reader.headers().map_err(|e| cat_err(e.to_string()))?.iter().map(str::to_string).collect();
    let records = reader
        .into_records()
        .map(|r| r.map(|rec| rec.iter().map(str::to_string).collect::<Vec<String>>()).map_err(|e| e.to_string()));
    discover_rows(csv_path, &headers, records)
}

/// A catalogue as a FITS binary table (as TOPCAT and astropy write them): the same columns as
/// the CSV form, numbers and strings as the table stores them.
fn discover_fits_catalogue(path: &Path) -> Result<Discovery, LayoutError> {
    let cat_err = |detail: String| LayoutError::Catalogue { path: path.into(), detail };
    let (headers, columns) = super::catalogue::table_as_text(path).map_err(cat_err)?;
    let rows = columns.first().map_or(0, Vec::len);
    let records = (0..rows).map(|r| Ok(columns.iter().map(|c| c[r].clone()).collect::<Vec<String>>()));
    discover_rows(path, &headers, records)
}

/// The catalogue layout from a header and rows of text, whichever file they came from. Column
/// names are matched without regard to case, with the survey aliases of
/// [`super::catalogue`] for id, position and tile.
fn discover_rows(
    csv_path: &Path,
    headers: &[String],
    records: impl Iterator<Item = Result<Vec<String>, String>>,
) -> Result<Discovery, LayoutError> {
    use super::catalogue::{DEC_COLUMNS, ID_COLUMNS, RA_COLUMNS, TILE_COLUMNS};
    let base = csv_path.parent().unwrap_or(Path::new("."));
    let cat_err = |detail: String| LayoutError::Catalogue { path: csv_path.into(), detail };
    let headers: Vec<String> = headers.iter().map(|h| h.trim().to_ascii_lowercase()).collect();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let alias = |names: &[&str]| names.iter().find_map(|n| col(&n.to_ascii_lowercase()));
    let id_col =
        alias(ID_COLUMNS).ok_or_else(|| cat_err(format!("no id column (looked for {})", ID_COLUMNS.join(", "))))?;
    let band_cols: Option<[usize; 4]> = (|| Some([col("u")?, col("g")?, col("r")?, col("i")?]))();
    let path_col = col("path");
    if band_cols.is_none() && path_col.is_none() {
        return Err(cat_err("needs either `u,g,r,i` file columns or one `path` column".into()));
    }
    let (ra_col, dec_col, tile_col) = (alias(RA_COLUMNS), alias(DEC_COLUMNS), alias(TILE_COLUMNS));
    let known: Vec<usize> = [Some(id_col), path_col, ra_col, dec_col, tile_col]
        .into_iter()
        .flatten()
        .chain(band_cols.into_iter().flatten())
        .collect();
    let resolve = |p: &str| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            base.join(p)
        }
    };
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for (row_no, record) in records.enumerate() {
        let line = row_no + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(Problem { name: format!("line {line}"), reason: SkipReason::BadRow(e) });
                continue;
            }
        };
        let get = |c: usize| record.get(c).map(|s| s.trim()).filter(|s| !s.is_empty());
        let Some(name) = get(id_col) else {
            problems.push(Problem {
                name: format!("line {line}"),
                reason: SkipReason::BadRow(format!("line {line}: empty id")),
            });
            continue;
        };
        let source = if let Some(cols) = band_cols {
            let files: [Option<PathBuf>; 4] = std::array::from_fn(|b| get(cols[b]).map(resolve));
            if let Some(band) = Band::ALL.into_iter().find(|b| files[b.index()].is_none()) {
                problems.push(Problem {
                    name: name.to_string(),
                    reason: SkipReason::MissingBand {
                        band,
                        detail: format!(" (empty `{}` column, line {line})", band.letter()),
                    },
                });
                continue;
            }
            ObjectSource::Bands { files }
        } else {
            match path_col.and_then(get) {
                Some(p) => ObjectSource::File { path: resolve(p) },
                None => {
                    problems.push(Problem {
                        name: name.to_string(),
                        reason: SkipReason::BadRow(format!("line {line}: empty path")),
                    });
                    continue;
                }
            }
        };
        let mut spec = ObjectSpec::new(name.to_string(), source);
        let number = |c: Option<usize>| c.and_then(get).and_then(|s| s.parse::<f64>().ok());
        spec.ra_deg = number(ra_col);
        spec.dec_deg = number(dec_col);
        spec.tile = tile_col.and_then(get).map(str::to_string);
        for (c, h) in headers.iter().enumerate() {
            if known.contains(&c) {
                continue;
            }
            if let Some(v) = get(c) {
                let value = match v.parse::<f64>() {
                    Ok(x) if x.is_finite() => serde_json::json!(x),
                    _ => serde_json::json!(v),
                };
                spec.metadata.insert(h.clone(), value);
            }
        }
        objects.push(spec);
    }
    Ok(Discovery { kind: LayoutKind::Catalogue, objects, problems })
}

/// Reads and validates one object: exactly 4 bands, one of each, all the same shape, none of them
/// entirely masked. Never panics: a panic inside the FITS library is caught and reported as
/// [`SkipReason::Internal`].
pub fn load(spec: &ObjectSpec) -> Result<Cutout, SkipReason> {
    load_with_wcs(spec).map(|(c, _)| c)
}

/// [`load`], and the TAN WCS of the object's pixels when its file has one (the r band's file
/// when each band has its own).
pub fn load_with_wcs(spec: &ObjectSpec) -> Result<(Cutout, Option<TanWcs>), SkipReason> {
    match std::panic::catch_unwind(|| load_inner(spec)) {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(SkipReason::Internal(msg))
        }
    }
}

fn load_inner(spec: &ObjectSpec) -> Result<(Cutout, Option<TanWcs>), SkipReason> {
    let planes: [ImagePlane; 4] = match &spec.source {
        ObjectSource::Bands { files } => {
            let mut out: Vec<ImagePlane> = Vec::with_capacity(4);
            for band in Band::ALL {
                let path =
                    files[band.index()].as_ref().ok_or(SkipReason::MissingBand { band, detail: String::new() })?;
                out.push(read_single_band(path)?);
            }
            out.try_into().map_err(|_| SkipReason::Internal("band list".into()))?
        }
        ObjectSource::File { path } => assign_bands(path, read_planes(path)?)?,
    };
    let (w, h) = (planes[0].width, planes[0].height);
    if planes.iter().any(|p| p.width != w || p.height != h) {
        let shapes: Vec<String> =
            Band::ALL.iter().zip(&planes).map(|(b, p)| format!("{b} {}x{}", p.width, p.height)).collect();
        return Err(SkipReason::ShapeMismatch(shapes.join(", ")));
    }
    let [mut u, mut g, mut r, mut i] = planes;
    let wcs = r.wcs.take().or(u.wcs.take()).or(g.wcs.take()).or(i.wcs.take());
    // The plane that holds the WCS holds its scale too (or a non-TAN header's, or PIXSCALE's).
    let scale = r.pixel_arcsec.or(u.pixel_arcsec).or(g.pixel_arcsec).or(i.pixel_arcsec);
    let cutout = Cutout::from_planes(spec.name.clone(), w, h, [u.data, g.data, r.data, i.data]).with_pixel_scale(scale);
    if cutout.blank_bands().len() == Band::ALL.len() {
        return Err(SkipReason::AllBlank);
    }
    Ok((cutout, wcs))
}

/// Puts the planes of a one-file object in u, g, r, i order, from their header bands; a file
/// whose four planes name no band at all (e.g. a bare cube) is taken to be in u, g, r, i order.
fn assign_bands(path: &Path, planes: Vec<ImagePlane>) -> Result<[ImagePlane; 4], SkipReason> {
    if planes.len() != 4 {
        let detail = format!(
            "{} has {} image plane(s){}",
            path.display(),
            planes.len(),
            if planes.len() < 4 { " (file cut short, or bands missing)" } else { "" }
        );
        if planes.len() < 4 {
            let named: Vec<Band> = planes.iter().filter_map(|p| p.band).collect();
            if let Some(band) = Band::ALL.into_iter().find(|b| !named.contains(b)) {
                if named.len() == planes.len() {
                    return Err(SkipReason::MissingBand { band, detail: format!(" ({detail})") });
                }
            }
        }
        return Err(SkipReason::BandCount { found: planes.len(), detail });
    }
    if planes.iter().all(|p| p.band.is_none()) {
        let mut it = planes.into_iter();
        return Ok(std::array::from_fn(|_| it.next().expect("four planes")));
    }
    let mut slots: [Option<ImagePlane>; 4] = Default::default();
    for p in planes {
        let band = p.band.ok_or(SkipReason::UnknownBand { path: path.into(), hdu: p.hdu })?;
        if slots[band.index()].is_some() {
            return Err(SkipReason::DuplicateBand { band, detail: path.display().to_string() });
        }
        slots[band.index()] = Some(p);
    }
    // Four planes, no duplicates: every slot is filled.
    let mut out = Vec::with_capacity(4);
    for (k, s) in slots.into_iter().enumerate() {
        out.push(s.ok_or(SkipReason::MissingBand { band: Band::ALL[k], detail: String::new() })?);
    }
    out.try_into().map_err(|_| SkipReason::Internal("band slots".into()))
}
