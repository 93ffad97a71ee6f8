//! Cutting survey tiles into cutouts around catalogue positions.
//!
//! A survey ships coadded tiles, one file per band (KiDS: `KiDS_DR4.0_<RA>_<DEC>_<band>_sci.fits`
//! with `_wei` inverse-variance weights and `_msk` mask bits beside it), each with its own TAN WCS:
//! band files of one tile may differ in size and CRPIX, so every band is positioned through its
//! own WCS. Only the pixel rows a cutout needs are read (cfitsio subset reads), so a 1.5 GB tile is
//! never held in memory; tiles are cut in parallel, one worker per tile.

use super::catalogue::Catalogue;
use super::region::RegionReader;
use super::wcs::{read_wcs, TanWcs};
use crate::cutout::{Band, Cutout};
use fitsio::hdu::{FitsHdu, HduInfo};
use fitsio::FitsFile;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The KiDS DR4/DR5 file naming: `KiDS_DR4.0_131.0_2.5_r_sci.fits` is tile `KiDS_DR4.0_131.0_2.5`,
/// band r, science image; `_wei` and `_msk` are its weight and mask.
pub const KIDS_PATTERN: &str = "{tile}_{band}_{kind}.fits";

/// What a file of a tile holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Science,
    Weight,
    Mask,
}

impl FileKind {
    fn parse(text: &str) -> Option<FileKind> {
        match text.to_ascii_lowercase().as_str() {
            "sci" | "science" | "img" | "image" => Some(FileKind::Science),
            "wei" | "weight" | "wht" => Some(FileKind::Weight),
            "msk" | "mask" | "flag" | "flags" => Some(FileKind::Mask),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Tile,
    Band,
    Kind,
}

/// A file-name pattern with `{tile}`, `{band}` and optionally `{kind}` (sci / wei / msk) in it;
/// a `.fz` or `.gz` after the pattern's end is accepted as well.
#[derive(Debug, Clone, PartialEq)]
pub struct TilePattern {
    segments: Vec<Segment>,
}

impl TilePattern {
    pub fn parse(text: &str) -> Result<TilePattern, String> {
        let mut segments = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let end = after.find('}').ok_or_else(|| format!("pattern {text:?}: `{{` without `}}`"))?;
                segments.push(match &after[..end] {
                    "tile" => Segment::Tile,
                    "band" => Segment::Band,
                    "kind" => Segment::Kind,
                    other => {
                        return Err(format!(
                            "pattern {text:?}: unknown placeholder {{{other}}} (use {{tile}}, {{band}}, {{kind}})"
                        ))
                    }
                });
                rest = &after[end + 1..];
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                segments.push(Segment::Literal(rest[..end].to_string()));
                rest = &rest[end..];
            }
        }
        for needed in [Segment::Tile, Segment::Band] {
            if !segments.contains(&needed) {
                return Err(format!("pattern {text:?} needs {{tile}} and {{band}}"));
            }
        }
        Ok(TilePattern { segments })
    }

    /// The tile, band and kind a file name stands for, if it follows the pattern.
    pub fn matches(&self, file_name: &str) -> Option<(String, Band, FileKind)> {
        let mut names = vec![file_name];
        for suffix in [".fz", ".gz"] {
            if let Some(stem) = file_name.strip_suffix(suffix) {
                names.push(stem);
            }
        }
        names.into_iter().find_map(|name| {
            let mut caps = Captures::default();
            match_from(&self.segments, name, &mut caps).then(|| {
                (
                    caps.tile.unwrap_or_default(),
                    caps.band.expect("pattern has {band}"),
                    caps.kind.unwrap_or(FileKind::Science),
                )
            })
        })
    }
}

#[derive(Debug, Clone, Default)]
struct Captures {
    tile: Option<String>,
    band: Option<Band>,
    kind: Option<FileKind>,
}

/// Backtracking match of the segments against `text`; placeholders take the shortest text that
/// lets the rest match (so `{tile}_{band}_{kind}` splits at the last two underscores).
fn match_from(segments: &[Segment], text: &str, caps: &mut Captures) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return text.is_empty();
    };
    if let Segment::Literal(lit) = first {
        return text.strip_prefix(lit.as_str()).is_some_and(|t| match_from(rest, t, caps));
    }
    for end in 1..=text.len() {
        if !text.is_char_boundary(end) {
            continue;
        }
        let (head, tail) = text.split_at(end);
        let ok = match first {
            Segment::Tile => {
                caps.tile = Some(head.to_string());
                true
            }
            Segment::Band => {
                caps.band = (head.len() == 1).then(|| Band::parse(head)).flatten();
                caps.band.is_some()
            }
            Segment::Kind => {
                caps.kind = FileKind::parse(head);
                caps.kind.is_some()
            }
            Segment::Literal(_) => unreachable!(),
        };
        if ok && match_from(rest, tail, caps) {
            return true;
        }
    }
    false
}

/// The files of one band of a tile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BandFiles {
    pub science: Option<PathBuf>,
    pub weight: Option<PathBuf>,
    pub mask: Option<PathBuf>,
}

/// The files found for one tile.
#[derive(Debug, Clone, PartialEq)]
pub struct TileFiles {
    pub name: String,
    pub bands: [BandFiles; 4],
}

/// Lists the tiles of a folder by the pattern. Files that follow no pattern are ignored.
pub fn discover(dir: &Path, pattern: &TilePattern) -> std::io::Result<Vec<TileFiles>> {
    let mut tiles: BTreeMap<String, TileFiles> = BTreeMap::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some((tile, band, kind)) = pattern.matches(name) else { continue };
        let entry = tiles.entry(tile.clone()).or_insert_with(|| TileFiles { name: tile, bands: Default::default() });
        let files = &mut entry.bands[band.index()];
        let slot = match kind {
            FileKind::Science => &mut files.science,
            FileKind::Weight => &mut files.weight,
            FileKind::Mask => &mut files.mask,
        };
        // `.fits` and `.fits.fz` of the same image: the first in name order (uncompressed) wins.
        if slot.is_none() {
            *slot = Some(path);
        }
    }
    Ok(tiles.into_values().collect())
}

/// One image of a tile: where it is and its size.
#[derive(Debug, Clone)]
struct ImageRef {
    path: PathBuf,
    hdu: usize,
    width: usize,
    height: usize,
}

/// A band of a tile, opened: its WCS and its images.
#[derive(Debug)]
struct OpenBand {
    science: ImageRef,
    wcs: TanWcs,
    weight: Option<ImageRef>,
    mask: Option<ImageRef>,
}

/// A tile whose four bands all opened, or the reason it cannot be cut (with its footprint when
/// at least one band's WCS could be read, so its objects can be told why they were not cut).
#[derive(Debug)]
pub struct Tile {
    pub name: String,
    bands: Vec<OpenBand>,
    /// The band that places objects and gives the footprint: r when it opened.
    reference: usize,
    problem: Option<String>,
    footprint: Option<(TanWcs, [usize; 2])>,
}

impl Tile {
    /// Why this tile cannot be cut, if it cannot.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }
}

fn first_image(path: &Path) -> Result<(FitsFile, FitsHdu, ImageRef), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() < 2880 {
        return Err(format!("{} bytes, shorter than one FITS block", meta.len()));
    }
    let mut file = FitsFile::open(path).map_err(|e| format!("not a readable FITS file ({e})"))?;
    let n = file.num_hdus().map_err(|e| e.to_string())?;
    for k in 0..n {
        let hdu = file.hdu(k).map_err(|e| e.to_string())?;
        if let HduInfo::ImageInfo { shape, .. } = &hdu.info {
            if shape.len() == 2 && shape.iter().all(|&s| s > 0) {
                let (height, width) = (shape[0], shape[1]);
                let r = ImageRef { path: path.into(), hdu: k, width, height };
                return Ok((file, hdu, r));
            }
        }
    }
    Err("no 2-D image in the file".into())
}

fn open_image(path: &Path, what: &str) -> Result<(FitsFile, FitsHdu, ImageRef), String> {
    first_image(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// Opens the headers of a tile's files (no pixels read).
pub fn open(files: &TileFiles) -> Tile {
    let mut bands = Vec::new();
    let mut problems = Vec::new();
    let mut footprint: Option<(TanWcs, [usize; 2])> = None;
    for band in Band::ALL {
        let f = &files.bands[band.index()];
        let Some(science) = &f.science else {
            problems.push(format!("band {band} missing (no science image)"));
            continue;
        };
        let opened = (|| -> Result<OpenBand, String> {
            let (mut file, hdu, science) = open_image(science, &format!("band {band}"))?;
            let wcs = read_wcs(&mut file, &hdu, [science.width, science.height])
                .map_err(|e| format!("band {band} {}: {e}", science.path.display()))?;
            let aux = |path: &Option<PathBuf>, what: &str| -> Result<Option<ImageRef>, String> {
                let Some(path) = path else { return Ok(None) };
                let (_, _, image) = open_image(path, &format!("band {band} {what}"))?;
                if (image.width, image.height) != (science.width, science.height) {
                    return Err(format!(
                        "band {band} {what} {} is {}x{}, its science image {}x{}",
                        path.display(),
                        image.width,
                        image.height,
                        science.width,
                        science.height
                    ));
                }
                Ok(Some(image))
            };
            let weight = aux(&f.weight, "weight")?;
            let mask = aux(&f.mask, "mask")?;
            Ok(OpenBand { science, wcs, weight, mask })
        })();
        match opened {
            Ok(b) => {
                if footprint.is_none() || band == Band::R {
                    let size = [b.science.width, b.science.height];
                    footprint = Some((b.wcs.cutout(1, 1, size[0], size[1]), size));
                }
                bands.push(b);
            }
            Err(e) => problems.push(e),
        }
    }
    let problem = (!problems.is_empty()).then(|| problems.join("; "));
    let reference = if problem.is_none() { Band::R.index() } else { 0 };
    Tile { name: files.name.clone(), bands, reference, problem, footprint }
}

/// How the edges of a tile are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeMode {
    /// Pixels outside the tile are masked; objects below the minimum coverage are rejected.
    Partial,
    /// Objects whose cutout touches an edge (in any band) are skipped.
    Strict,
}

#[derive(Debug, Clone)]
pub struct CutOptions {
    /// Side of the cutouts in pixels (odd, so the object sits on the centre pixel).
    pub size: usize,
    pub edge: EdgeMode,
    /// With [`EdgeMode::Partial`]: the least share of a cutout's pixels inside the tile, in the
    /// band with the least.
    pub min_coverage: f64,
    /// Cut a source whose cutout has no valid pixel in one band (a mask in that filter alone),
    /// that band left NaN, instead of rejecting it ([`super::check_blank_bands`]). A cutout with
    /// no valid pixel in any band is rejected either way.
    pub keep_blank_bands: bool,
}

/// Where an object lies in a tile.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub row: usize,
    pub tile: usize,
}

/// Why an object got no cutout.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", content = "detail", rename_all = "snake_case")]
pub enum Rejection {
    /// Its position lies in no tile given.
    NoTile,
    /// Its tile could not be cut (a band missing, a corrupt file, an unsupported WCS).
    TileUnusable(String),
    /// Its cutout touches a tile edge (with `--edge strict`).
    TouchesEdge,
    /// Too little of its cutout lies in the tile (with `--edge partial`).
    LowCoverage(f64),
    /// A band has no valid pixel in the cutout (`None`: no band has one, which
    /// `keep_blank_bands` does not keep either).
    AllMasked(Option<Band>),
    /// Reading the pixels failed.
    Read(String),
}

impl Rejection {
    pub fn key(&self) -> &'static str {
        match self {
            Rejection::NoTile => "no_tile",
            Rejection::TileUnusable(_) => "tile_unusable",
            Rejection::TouchesEdge => "touches_edge",
            Rejection::LowCoverage(_) => "low_coverage",
            Rejection::AllMasked(_) => "all_masked",
            Rejection::Read(_) => "read_error",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::NoTile => write!(f, "lies in no tile"),
            Rejection::TileUnusable(why) => write!(f, "tile unusable: {why}"),
            Rejection::TouchesEdge => write!(f, "cutout touches the tile edge"),
            Rejection::LowCoverage(c) => write!(f, "only {:.1} % of the cutout lies in the tile", c * 100.0),
            Rejection::AllMasked(None) => write!(f, "no band has a valid pixel in the cutout"),
            Rejection::AllMasked(Some(band)) => {
                write!(f, "band {band} has no valid pixel in the cutout (--keep-blank-bands cuts it, that band as sky)")
            }
            Rejection::Read(why) => write!(f, "{why}"),
        }
    }
}

/// Assigns every catalogue row to the tile that holds it best (farthest from the tile's edges in
/// the reference band), or says it lies in none. A row whose catalogue tile names one of the
/// tiles goes to that one when it lies inside it.
pub fn assign(catalogue: &Catalogue, rows: &[usize], tiles: &[Tile]) -> Vec<Result<Placement, Rejection>> {
    // Tiles sorted by the declination of their centre, with their angular radius, so each row
    // looks only at tiles in its declination band.
    struct Footprint {
        tile: usize,
        centre: [f64; 3],
        dec: f64,
        radius_cos: f64,
    }
    let unit = |ra: f64, dec: f64| {
        let (ra, dec) = (ra.to_radians(), dec.to_radians());
        [dec.cos() * ra.cos(), dec.cos() * ra.sin(), dec.sin()]
    };
    let dot = |a: [f64; 3], b: [f64; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    let mut prints: Vec<Footprint> = Vec::new();
    let mut max_radius_deg: f64 = 0.0;
    for (k, t) in tiles.iter().enumerate() {
        let Some((wcs, [w, h])) = &t.footprint else { continue };
        let (w, h) = (*w as f64, *h as f64);
        let Some((ra, dec)) = wcs.pixel_to_sky((w + 1.0) / 2.0, (h + 1.0) / 2.0) else { continue };
        let centre = unit(ra, dec);
        let corners = [(0.5, 0.5), (w + 0.5, 0.5), (0.5, h + 0.5), (w + 0.5, h + 0.5)];
        let mut radius_cos: f64 = 1.0;
        for (x, y) in corners {
            if let Some((r, d)) = wcs.pixel_to_sky(x, y) {
                radius_cos = radius_cos.min(dot(centre, unit(r, d)));
            }
        }
        // A little slack for rounding at the very edge.
        let radius = radius_cos.clamp(-1.0, 1.0).acos().to_degrees() * 1.001 + 1e-6;
        max_radius_deg = max_radius_deg.max(radius);
        prints.push(Footprint { tile: k, centre, dec, radius_cos: radius.to_radians().cos() });
    }
    prints.sort_by(|a, b| a.dec.total_cmp(&b.dec));
    let decs: Vec<f64> = prints.iter().map(|p| p.dec).collect();
    let wanted_tile = |row: usize| -> Option<String> {
        catalogue.tile.as_ref().map(|t| normalise_tile(&t[row])).filter(|t| !t.is_empty())
    };
    rows.iter()
        .map(|&row| {
            let (ra, dec) = (catalogue.ra[row], catalogue.dec[row]);
            if !(ra.is_finite() && dec.is_finite()) || dec.abs() > 90.0 {
                return Err(Rejection::NoTile);
            }
            let p = unit(ra, dec);
            let lo = decs.partition_point(|&d| d < dec - max_radius_deg);
            let hi = decs.partition_point(|&d| d <= dec + max_radius_deg);
            let wanted = wanted_tile(row);
            let mut best: Option<(bool, f64, usize)> = None;
            for fp in &prints[lo..hi] {
                if dot(p, fp.centre) < fp.radius_cos {
                    continue;
                }
                let (wcs, [w, h]) = tiles[fp.tile].footprint.as_ref().expect("footprints come from tiles with one");
                let Some((x, y)) = wcs.sky_to_pixel(ra, dec) else { continue };
                let margin = (x - 0.5).min(*w as f64 + 0.5 - x).min(y - 0.5).min(*h as f64 + 0.5 - y);
                if margin < 0.0 {
                    continue;
                }
                let named = wanted.as_ref().is_some_and(|n| normalise_tile(&tiles[fp.tile].name).ends_with(n.as_str()));
                let key = (named, margin, fp.tile);
                if best.as_ref().is_none_or(|b| (key.0, key.1) > (b.0, b.1)) {
                    best = Some(key);
                }
            }
            match best {
                None => Err(Rejection::NoTile),
                Some((_, _, tile)) => match tiles[tile].problem() {
                    Some(why) => Err(Rejection::TileUnusable(format!("{}: {why}", tiles[tile].name))),
                    None => Ok(Placement { row, tile }),
                },
            }
        })
        .collect()
}

/// A tile name reduced to its position part, so a catalogue's `KIDS_131.0_2.5` finds the file
/// tile `KiDS_DR4.0_131.0_2.5`.
fn normalise_tile(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let numeric = |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+');
    let mut tail: Vec<&str> = lower.split('_').rev().take_while(numeric).collect();
    if tail.is_empty() {
        return lower;
    }
    tail.reverse();
    tail.join("_")
}

/// One object cut from a tile.
#[derive(Debug, Clone)]
pub struct CutObject {
    pub row: usize,
    pub tile: String,
    pub cutout: Cutout,
    /// Mask bits per band (0 outside the tile), when the tile has mask files.
    pub mask_bits: Option<[Vec<i32>; 4]>,
    /// The object's position in each band's tile image, FITS pixels.
    pub pixel: [(f64, f64); 4],
    /// The first tile pixel (1-based) of each band's cutout.
    pub origin: [(i64, i64); 4],
    /// The WCS of the cutout (the reference band's).
    pub wcs: TanWcs,
    /// Least share of the cutout inside the tile over the bands.
    pub coverage: f64,
    /// Pixels inside the tile masked by weight 0 or a non-finite value, summed over bands.
    pub masked: usize,
}

/// Where `size` pixels centred on the nearest pixel to `position` start (1-based).
fn origin_of(position: f64, size: usize) -> i64 {
    position.round() as i64 - (size as i64 - 1) / 2
}

/// The 1-based inclusive range of `[start, start + size)` inside `[1, n]`, as a 0-based
/// half-open range, and the offset of its first pixel in the cutout.
fn overlap(start: i64, size: usize, n: usize) -> Option<(std::ops::Range<usize>, usize)> {
    let first = start.max(1);
    let last = (start + size as i64 - 1).min(n as i64);
    (first <= last).then(|| ((first - 1) as usize..last as usize, (first - start) as usize))
}

/// Opened files of one tile band, kept for all the objects of the tile.
struct BandReader {
    science: RegionReader,
    weight: Option<RegionReader>,
    mask: Option<RegionReader>,
}

fn reopen(image: &ImageRef) -> Result<RegionReader, String> {
    RegionReader::open(&image.path, image.hdu)
}

/// Cuts one tile's objects, calling `done` after each one (from this worker's thread).
pub fn cut_tile(
    tile: &Tile,
    catalogue: &Catalogue,
    rows: &[usize],
    options: &CutOptions,
    done: &mut dyn FnMut(usize, Result<CutObject, Rejection>),
) {
    let mut readers = Vec::new();
    for b in &tile.bands {
        let opened = (|| -> Result<BandReader, String> {
            Ok(BandReader {
                science: reopen(&b.science)?,
                weight: b.weight.as_ref().map(reopen).transpose()?,
                mask: b.mask.as_ref().map(reopen).transpose()?,
            })
        })();
        match opened {
            Ok(r) => readers.push(r),
            Err(e) => {
                for &row in rows {
                    done(row, Err(Rejection::TileUnusable(format!("{}: {e}", tile.name))));
                }
                return;
            }
        }
    }
    for &row in rows {
        let result = cut_one(tile, &mut readers, catalogue, row, options);
        done(row, result);
    }
}

fn cut_one(
    tile: &Tile,
    readers: &mut [BandReader],
    catalogue: &Catalogue,
    row: usize,
    options: &CutOptions,
) -> Result<CutObject, Rejection> {
    let s = options.size;
    let (ra, dec) = (catalogue.ra[row], catalogue.dec[row]);
    let mut planes: [Vec<f32>; 4] = Default::default();
    let mut bits: [Vec<i32>; 4] = Default::default();
    let mut pixel = [(0.0, 0.0); 4];
    let mut origin = [(0i64, 0i64); 4];
    let mut coverage: f64 = 1.0;
    let mut masked = 0;
    let has_masks = tile.bands.iter().all(|b| b.mask.is_some());
    for (k, (band, reader)) in tile.bands.iter().zip(readers.iter_mut()).enumerate() {
        let (x, y) = band.wcs.sky_to_pixel(ra, dec).ok_or(Rejection::NoTile)?;
        let (x0, y0) = (origin_of(x, s), origin_of(y, s));
        pixel[k] = (x, y);
        origin[k] = (x0, y0);
        let (w, h) = (band.science.width, band.science.height);
        let (Some((xs, dx)), Some((ys, dy))) = (overlap(x0, s, w), overlap(y0, s, h)) else {
            return Err(if options.edge == EdgeMode::Strict {
                Rejection::TouchesEdge
            } else {
                Rejection::LowCoverage(0.0)
            });
        };
        let inside = xs.len() * ys.len();
        if options.edge == EdgeMode::Strict && inside < s * s {
            return Err(Rejection::TouchesEdge);
        }
        coverage = coverage.min(inside as f64 / (s * s) as f64);
        if coverage < options.min_coverage {
            return Err(Rejection::LowCoverage(coverage));
        }
        let read_err = |what: &str, e: String| Rejection::Read(format!("band {} {what}: {e}", Band::ALL[k]));
        let data: Vec<f32> = reader.science.read_f32(&xs, &ys).map_err(|e| read_err("science", e))?;
        let weight: Option<Vec<f32>> =
            reader.weight.as_mut().map(|r| r.read_f32(&xs, &ys)).transpose().map_err(|e| read_err("weight", e))?;
        let mask: Option<Vec<i32>> =
            reader.mask.as_mut().map(|r| r.read_i32(&xs, &ys)).transpose().map_err(|e| read_err("mask", e))?;
        let mut plane = vec![f32::NAN; s * s];
        let mut plane_bits = vec![0i32; if has_masks { s * s } else { 0 }];
        let bw = xs.len();
        for (j, src_row) in data.chunks_exact(bw).enumerate() {
            let dst = (dy + j) * s + dx;
            for (i, &v) in src_row.iter().enumerate() {
                // Weight 0 (or negative, or NaN) means no data there.
                let zero_weight = weight.as_ref().is_some_and(|w| w[j * bw + i].is_nan() || w[j * bw + i] <= 0.0);
                if zero_weight || !v.is_finite() {
                    masked += 1;
                } else {
                    plane[dst + i] = v;
                }
                if let Some(m) = &mask {
                    if has_masks {
                        plane_bits[dst + i] = m[j * bw + i];
                    }
                }
            }
        }
        planes[k] = plane;
        bits[k] = plane_bits;
    }
    let name = catalogue.ids[row].clone();
    let cutout = Cutout::from_planes(name, s, s, planes);
    let empty = cutout.masked_bands();
    if empty.len() == Band::ALL.len() {
        return Err(Rejection::AllMasked(None));
    }
    if let (false, Some(&band)) = (options.keep_blank_bands, empty.first()) {
        return Err(Rejection::AllMasked(Some(band)));
    }
    let r = tile.reference;
    let wcs = tile.bands[r].wcs.cutout(origin[r].0, origin[r].1, s, s);
    Ok(CutObject {
        row,
        tile: tile.name.clone(),
        cutout,
        mask_bits: has_masks.then_some(bits),
        pixel,
        origin,
        wcs,
        coverage,
        masked,
    })
}

/// Cuts every placed object, tiles in parallel (rayon's pool); `done` gets each outcome as it
/// comes, from whichever worker cut it.
pub fn cut_all(
    tiles: &[Tile],
    catalogue: &Catalogue,
    placements: &[Placement],
    options: &CutOptions,
    done: &(dyn Fn(usize, Result<CutObject, Rejection>) + Sync),
) {
    let mut by_tile: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for p in placements {
        by_tile.entry(p.tile).or_default().push(p.row);
    }
    let groups: Vec<(usize, Vec<usize>)> = by_tile.into_iter().collect();
    groups.par_iter().for_each(|(tile, rows)| {
        cut_tile(&tiles[*tile], catalogue, rows, options, &mut |row, r| done(row, r));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kids_names_split_into_tile_band_and_kind() {
        let p = TilePattern::parse(KIDS_PATTERN).unwrap();
        assert_eq!(
            p.matches("KiDS_DR4.0_131.0_2.5_r_sci.fits"),
            Some(("KiDS_DR4.0_131.0_2.5".into(), Band::R, FileKind::Science))
        );
        assert_eq!(
            p.matches("KiDS_DR4.0_0.0_-31.2_u_wei.fits.fz"),
            Some(("KiDS_DR4.0_0.0_-31.2".into(), Band::U, FileKind::Weight))
        );
        assert_eq!(p.matches("KiDS_DR4.0_131.0_2.5_i_msk.fits").map(|m| m.2), Some(FileKind::Mask));
        assert_eq!(p.matches("KiDS_DR4.0_131.0_2.5_z_sci.fits"), None);
        assert_eq!(p.matches("KiDS_DR4.0_131.0_2.5_r_sci.fits.txt"), None);
        assert_eq!(p.matches("catalogue.fits"), None);
    }

    #[test]
    fn other_patterns_work_and_bad_ones_are_refused() {
        let p = TilePattern::parse("DES{tile}_{band}.fits").unwrap();
        assert_eq!(p.matches("DES0001-0001_g.fits"), Some(("0001-0001".into(), Band::G, FileKind::Science)));
        assert!(TilePattern::parse("{tile}.fits").unwrap_err().contains("{band}"));
        assert!(TilePattern::parse("{tile}_{colour}.fits").unwrap_err().contains("colour"));
        assert!(TilePattern::parse("{tile_{band}.fits").is_err());
    }

    #[test]
    fn overlap_clips_to_the_image() {
        assert_eq!(overlap(1, 5, 10), Some((0..5, 0)));
        assert_eq!(overlap(-2, 5, 10), Some((0..2, 3)));
        assert_eq!(overlap(8, 5, 10), Some((7..10, 0)));
        assert_eq!(overlap(11, 5, 10), None);
        assert_eq!(overlap(-10, 5, 10), None);
        assert_eq!(origin_of(51.0, 101), 1);
        assert_eq!(origin_of(51.4, 101), 1);
        assert_eq!(origin_of(51.6, 101), 2);
    }

    #[test]
    fn catalogue_tile_names_reduce_to_the_position() {
        assert_eq!(normalise_tile("KIDS_131.0_2.5"), "131.0_2.5");
        assert_eq!(normalise_tile("KiDS_DR4.0_131.0_2.5"), "131.0_2.5");
        assert_eq!(normalise_tile("KiDS_DR4.0_0.0_-31.2"), "0.0_-31.2");
    }
}
