//! The whole `cutouts` job: from survey tiles and a catalogue to 4-band cutout cubes with their
//! WCS, and a manifest that says for every selected object where it was cut or why not.
//!
//! Steps: read the catalogue (only the columns needed), apply the selection (counting what each
//! cut removed), open every tile's headers, place each object in the tile that holds it best,
//! cut tiles in parallel (subset reads), write each cutout as a FITS cube, write the manifest.
//! A bad tile (corrupt, a band missing, an unsupported projection) is reported and its objects
//! rejected with that reason; the other tiles go on.

use super::catalogue::{self, Catalogue, CatalogueError, SELECTION_COLUMNS};
use super::fits_write::{cutout_cube, safe_file_stem, Card, ImageHdu, PixelData};
use super::select::{self, CutFlow};
use super::tiles::{self, CutObject, CutOptions, Rejection, Tile, TilePattern};
use crate::cutout::Band;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Clone)]
pub struct ExtractOptions {
    pub tiles: PathBuf,
    pub catalogue: PathBuf,
    /// File-name pattern of the tiles ([`tiles::KIDS_PATTERN`] by default).
    pub pattern: String,
    pub select: Option<String>,
    pub cut: CutOptions,
    /// Folder for the cutout cubes.
    pub out: PathBuf,
    /// Manifest file: `.jsonl` for JSON lines, anything else CSV.
    pub manifest: PathBuf,
    /// Measure each cutout's sky noise (a project needs it; a folder of cubes does not, and the
    /// medians cost a tenth of the time).
    pub measure_sky: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    #[error("{0}")]
    Selection(String),
    #[error("tile pattern: {0}")]
    Pattern(String),
    #[error("tiles folder {path}: {detail}")]
    Tiles { path: PathBuf, detail: String },
    #[error("writing {path}: {detail}")]
    Write { path: PathBuf, detail: String },
}

/// A tile that cannot be cut, and why.
#[derive(Debug, Clone, Serialize)]
pub struct TileProblem {
    pub tile: String,
    pub problem: String,
}

/// One manifest row: a selected object, cut or rejected.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestRow {
    pub id: String,
    pub ra: f64,
    pub dec: f64,
    /// The tile it was cut from (empty when it lies in none).
    pub tile: String,
    /// The cutout cube, when cut.
    pub file: Option<PathBuf>,
    /// FITS pixel position in each band's tile image (u, g, r, i).
    pub x: [Option<f64>; 4],
    pub y: [Option<f64>; 4],
    pub coverage: Option<f64>,
    pub masked: Option<usize>,
    /// `ok`, or the rejection's key.
    pub status: String,
    pub reason: String,
    pub columns: BTreeMap<String, f64>,
    /// Sky noise per band of the cutout, for a project.
    #[serde(skip)]
    pub sky_sigma: [f32; 4],
    #[serde(skip)]
    pub size: usize,
    /// The cutout's WCS as header keywords, for a project.
    #[serde(skip)]
    pub wcs: Option<serde_json::Value>,
    /// Bands with no valid pixel, kept by `keep_blank_bands` (also said in `reason`).
    #[serde(skip)]
    pub blank_bands: Vec<Band>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExtractReport {
    pub catalogue_rows: usize,
    pub catalogue_files: usize,
    /// How many rows each cut of the selection removed, in order.
    pub selection: Vec<CutFlow>,
    pub selected: usize,
    pub tiles: usize,
    pub tile_problems: Vec<TileProblem>,
    pub written: usize,
    /// Rejection key -> count.
    pub rejected: BTreeMap<String, usize>,
    /// Up to 20 objects that lie in no tile, by id, so a user can see which.
    pub outside_examples: Vec<String>,
    pub manifest: PathBuf,
    pub out: PathBuf,
    #[serde(skip)]
    pub rows: Vec<ManifestRow>,
}

/// Runs the job. `progress(done, total)` is called as objects are cut, from worker threads.
pub fn extract(
    options: &ExtractOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<ExtractReport, ExtractError> {
    let pattern = TilePattern::parse(&options.pattern).map_err(ExtractError::Pattern)?;
    let expr =
        options.select.as_deref().map(select::parse).transpose().map_err(|e| ExtractError::Selection(e.to_string()))?;
    let required: Vec<String> = expr.as_ref().map(|e| e.columns()).unwrap_or_default();
    let cat = catalogue::read(&options.catalogue, &required, SELECTION_COLUMNS)?;
    let (keep, flow) = match &expr {
        Some(e) => {
            let resolved = select::resolve_columns(e, cat.columns.keys().map(String::as_str))
                .map_err(|name| ExtractError::Selection(format!("selection names unknown column {name:?}")))?;
            let columns: BTreeMap<&str, &[f64]> =
                resolved.iter().map(|(written, actual)| (written.as_str(), cat.columns[actual].as_slice())).collect();
            select::apply(e, cat.len(), &|c, row| columns.get(c).map_or(f64::NAN, |v| v[row]))
        }
        None => (vec![true; cat.len()], Vec::new()),
    };
    let rows: Vec<usize> = (0..cat.len()).filter(|&r| keep[r]).collect();

    let tiles_err = |detail: String| ExtractError::Tiles { path: options.tiles.clone(), detail };
    let found = tiles::discover(&options.tiles, &pattern).map_err(|e| tiles_err(e.to_string()))?;
    if found.is_empty() {
        return Err(tiles_err(format!("no file follows the pattern {:?}", options.pattern)));
    }
    let opened: Vec<Tile> = {
        use rayon::prelude::*;
        found.par_iter().map(tiles::open).collect()
    };
    let tile_problems: Vec<TileProblem> = opened
        .iter()
        .filter_map(|t| t.problem().map(|p| TileProblem { tile: t.name.clone(), problem: p.to_string() }))
        .collect();
    for p in &tile_problems {
        log::warn!("tile {}: {}", p.tile, p.problem);
    }

    std::fs::create_dir_all(&options.out)
        .map_err(|e| ExtractError::Write { path: options.out.clone(), detail: e.to_string() })?;
    let placements = tiles::assign(&cat, &rows, &opened);
    let mut manifest: Vec<Option<ManifestRow>> = vec![None; cat.len()];
    let mut to_cut = Vec::new();
    for (k, p) in placements.into_iter().enumerate() {
        match p {
            Ok(p) => to_cut.push(p),
            Err(why) => manifest[rows[k]] = Some(rejected_row(&cat, rows[k], String::new(), why)),
        }
    }
    let names = unique_file_names(&cat, &to_cut.iter().map(|p| p.row).collect::<Vec<_>>());
    let tile_of: std::collections::HashMap<usize, usize> = to_cut.iter().map(|p| (p.row, p.tile)).collect();
    let total = to_cut.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, ManifestRow)>> = Mutex::new(Vec::with_capacity(total));
    let write_error: Mutex<Option<ExtractError>> = Mutex::new(None);
    tiles::cut_all(&opened, &cat, &to_cut, &options.cut, &|row, outcome| {
        let tile_name = tile_of.get(&row).map(|&t| opened[t].name.clone()).unwrap_or_default();
        let entry = match outcome {
            Ok(obj) => {
                let path = options.out.join(&names[&row]);
                match write_cube(&path, &obj, &cat) {
                    Ok(()) => ok_row(&cat, &obj, path, options.measure_sky),
                    Err(e) => {
                        write_error
                            .lock()
                            .expect("no panics hold it")
                            .get_or_insert(ExtractError::Write { path: path.clone(), detail: e.to_string() });
                        rejected_row(&cat, row, tile_name, Rejection::Read(format!("writing {}: {e}", path.display())))
                    }
                }
            }
            Err(why) => rejected_row(&cat, row, tile_name, why),
        };
        results.lock().expect("no panics hold it").push((row, entry));
        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        progress(d, total);
    });
    if let Some(e) = write_error.into_inner().expect("no panics hold it") {
        // A full disk or a read-only folder: every later write would fail too.
        return Err(e);
    }
    for (row, entry) in results.into_inner().expect("no panics hold it") {
        manifest[row] = Some(entry);
    }
    let rows_out: Vec<ManifestRow> = manifest.into_iter().flatten().collect();
    write_manifest(&options.manifest, &rows_out)
        .map_err(|e| ExtractError::Write { path: options.manifest.clone(), detail: e.to_string() })?;
    let mut rejected: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows_out.iter().filter(|r| r.status != "ok") {
        *rejected.entry(r.status.clone()).or_default() += 1;
    }
    Ok(ExtractReport {
        catalogue_rows: cat.len(),
        catalogue_files: cat.files.len(),
        selection: flow,
        selected: rows.len(),
        tiles: opened.len(),
        tile_problems,
        written: rows_out.iter().filter(|r| r.status == "ok").count(),
        rejected,
        outside_examples: rows_out.iter().filter(|r| r.status == "no_tile").take(20).map(|r| r.id.clone()).collect(),
        manifest: options.manifest.clone(),
        out: options.out.clone(),
        rows: rows_out,
    })
}

/// File names from the ids, reduced to safe characters; a clash gets the row number appended.
fn unique_file_names(cat: &Catalogue, rows: &[usize]) -> BTreeMap<usize, String> {
    let mut used = std::collections::BTreeSet::new();
    let mut out = BTreeMap::new();
    for &row in rows {
        let safe = safe_file_stem(&cat.ids[row]);
        let mut name = format!("{safe}.fits");
        if !used.insert(name.to_ascii_lowercase()) {
            name = format!("{safe}-row{row}.fits");
            used.insert(name.to_ascii_lowercase());
        }
        out.insert(row, name);
    }
    out
}

fn columns_of(cat: &Catalogue, row: usize) -> BTreeMap<String, f64> {
    cat.columns.iter().map(|(k, v)| (k.clone(), v[row])).collect()
}

fn rejected_row(cat: &Catalogue, row: usize, tile: String, why: Rejection) -> ManifestRow {
    ManifestRow {
        id: cat.ids[row].clone(),
        ra: cat.ra[row],
        dec: cat.dec[row],
        tile,
        file: None,
        x: [None; 4],
        y: [None; 4],
        coverage: match why {
            Rejection::LowCoverage(c) => Some(c),
            _ => None,
        },
        masked: None,
        status: why.key().to_string(),
        reason: why.to_string(),
        columns: columns_of(cat, row),
        sky_sigma: [0.0; 4],
        size: 0,
        wcs: None,
        blank_bands: Vec::new(),
    }
}

fn ok_row(cat: &Catalogue, obj: &CutObject, path: PathBuf, measure_sky: bool) -> ManifestRow {
    let sky = |b: Band| crate::cutout::sky_stats(&obj.cutout.valid_values(b)).map(|s| s.sigma).unwrap_or(0.0);
    let sky_sigma = if measure_sky { Band::ALL.map(sky) } else { [0.0; 4] };
    let blank_bands = obj.cutout.masked_bands();
    let reason = if blank_bands.is_empty() {
        String::new()
    } else {
        format!("kept with no valid pixel in band(s) {}: taken as sky", crate::cutout::band_list(&blank_bands))
    };
    ManifestRow {
        id: cat.ids[obj.row].clone(),
        ra: cat.ra[obj.row],
        dec: cat.dec[obj.row],
        tile: obj.tile.clone(),
        file: Some(path),
        x: obj.pixel.map(|p| Some(p.0)),
        y: obj.pixel.map(|p| Some(p.1)),
        coverage: Some(obj.coverage),
        masked: Some(obj.masked),
        status: "ok".into(),
        reason,
        columns: columns_of(cat, obj.row),
        sky_sigma,
        size: obj.cutout.width,
        wcs: Some(obj.wcs.to_json()),
        blank_bands,
    }
}

/// Writes one cutout: a float32 cube (u, g, r, i) with NaN where masked and the reference band's
/// TAN WCS, then the mask bits as an int32 cube (`EXTNAME = 'MASK'`) when the tile has masks.
pub fn write_cube(path: &Path, obj: &CutObject, cat: &Catalogue) -> std::io::Result<()> {
    let (w, h) = (obj.cutout.width, obj.cutout.height);
    let mut cube = cutout_cube(&obj.cutout, Some(&obj.wcs));
    let row = obj.row;
    cube.keys.push(("RA_OBJ".into(), Card::Float(cat.ra[row])));
    cube.keys.push(("DEC_OBJ".into(), Card::Float(cat.dec[row])));
    cube.keys.push(("TILE".into(), Card::Str(obj.tile.clone())));
    for (k, b) in Band::ALL.iter().enumerate() {
        let l = b.letter().to_ascii_uppercase();
        cube.keys.push((format!("XTILE_{l}"), Card::Float(obj.pixel[k].0)));
        cube.keys.push((format!("YTILE_{l}"), Card::Float(obj.pixel[k].1)));
    }
    cube.keys.push(("COVERAGE".into(), Card::Float(obj.coverage)));
    let mut extensions = Vec::new();
    if let Some(bits) = &obj.mask_bits {
        let mut ext = ImageHdu { shape: vec![4, h, w], data: PixelData::I32(bits.concat()), keys: Vec::new() };
        ext.keys.push(("EXTNAME".into(), Card::Str("MASK".into())));
        ext.keys.extend(obj.wcs.header_cards());
        extensions.push(ext);
    }
    super::fits_write::write_file(path, Some(&cube), &extensions)
}

fn write_manifest(path: &Path, rows: &[ManifestRow]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("partial");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    let jsonl = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    if jsonl {
        for r in rows {
            serde_json::to_writer(&mut out, r)?;
            out.write_all(b"\n")?;
        }
    } else {
        let columns: Vec<String> = {
            let mut set = std::collections::BTreeSet::new();
            for r in rows {
                set.extend(r.columns.keys().cloned());
            }
            set.into_iter().collect()
        };
        let mut w = csv::Writer::from_writer(&mut out);
        let mut header: Vec<String> = ["id", "ra", "dec", "tile", "file"].iter().map(|s| s.to_string()).collect();
        for b in Band::ALL {
            header.push(format!("x_{}", b.letter()));
            header.push(format!("y_{}", b.letter()));
        }
        header.extend(["coverage", "masked", "status", "reason"].iter().map(|s| s.to_string()));
        header.extend(columns.iter().cloned());
        w.write_record(&header)?;
        let num = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
        for r in rows {
            let mut rec = vec![
                r.id.clone(),
                format!("{}", r.ra),
                format!("{}", r.dec),
                r.tile.clone(),
                r.file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            ];
            for k in 0..4 {
                rec.push(num(r.x[k]));
                rec.push(num(r.y[k]));
            }
            rec.push(num(r.coverage));
            rec.push(r.masked.map(|m| m.to_string()).unwrap_or_default());
            rec.push(r.status.clone());
            rec.push(r.reason.clone());
            for c in &columns {
                rec.push(r.columns.get(c).filter(|v| !v.is_nan()).map(|v| format!("{v}")).unwrap_or_default());
            }
            w.write_record(&rec)?;
        }
        w.flush()?;
    }
    drop(out);
    std::fs::rename(&tmp, path)
}
