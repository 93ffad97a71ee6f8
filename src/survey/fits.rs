//! Reading FITS images through cfitsio, with the checks cfitsio does not make.
//!
//! cfitsio reads every BITPIX with BSCALE/BZERO applied, `.fits.gz` and fpack `.fz`
//! transparently. What it does not do, and this module does: tell an empty file, a text file and
//! a truncated one apart (cfitsio says "error 108" to all three), mask integer `BLANK` values and
//! NaN/Inf, and return every image plane of a file (primary, extensions, cube slices) so the
//! caller can count the bands itself — a MEF cut at an HDU boundary opens with no error and
//! simply has fewer HDUs.

use super::error::SkipReason;
use crate::cutout::Band;
use fitsio::hdu::HduInfo;
use fitsio::FitsFile;
use std::io::Read;
use std::path::Path;

/// One 2-D image read from a file, as float32 with NaN where the pixel is blank.
#[derive(Debug, Clone)]
pub struct ImagePlane {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
    /// The band the header names (`EXTNAME`, `FILTER`, `BAND`), if any.
    pub band: Option<Band>,
    /// HDU index in the file (0 = primary).
    pub hdu: usize,
    /// The TAN WCS of the file's first image HDU, on that HDU's first plane only (a file's
    /// bands share one sky, and reading it once keeps ingest fast).
    pub wcs: Option<super::wcs::TanWcs>,
    /// Arcseconds per pixel from that HDU's WCS: the TAN WCS's, or any other celestial
    /// projection's (whose positions we cannot compute, but whose scale the model needs).
    pub pixel_arcsec: Option<f64>,
}

const FITS_BLOCK: usize = 2880;

/// Keywords that give a pixel scale in arcsec without a WCS, as pipelines and cutout services
/// write them (`PIXSCALE`: DECam, the Legacy Surveys and our own cubes without a WCS; `SECPIX`:
/// IRAF and SWarp), in that order.
pub const SCALE_KEYWORDS: [&str; 4] = ["PIXSCALE", "PIXSCAL1", "SECPIX", "SECPIX1"];

/// The pixel scale a header states in one of [`SCALE_KEYWORDS`], if any is a positive number.
fn scale_keyword(file: &mut fitsio::FitsFile, hdu: &fitsio::hdu::FitsHdu) -> Option<f64> {
    SCALE_KEYWORDS.iter().find_map(|k| hdu.read_key::<f64>(file, k).ok().filter(|v| v.is_finite() && *v > 0.0))
}

/// Looks at the first bytes ourselves: cfitsio's error codes do not separate "empty", "not FITS"
/// and "truncated".
fn precheck(path: &Path) -> Result<(), SkipReason> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SkipReason::MissingFile(path.into())),
        Err(e) => return Err(SkipReason::Unreadable { path: path.into(), detail: e.to_string() }),
    };
    if meta.is_dir() {
        return Err(SkipReason::Unreadable { path: path.into(), detail: "is a folder, not a file".into() });
    }
    if meta.len() == 0 {
        return Err(SkipReason::EmptyFile(path.into()));
    }
    let mut file =
        std::fs::File::open(path).map_err(|e| SkipReason::Unreadable { path: path.into(), detail: e.to_string() })?;
    let mut head = [0u8; 80];
    let mut n = read_up_to(&mut file, &mut head)
        .map_err(|e| SkipReason::Unreadable { path: path.into(), detail: e.to_string() })?;
    let gzipped = n >= 2 && head[0] == 0x1f && head[1] == 0x8b;
    if gzipped {
        let file = std::fs::File::open(path)
            .map_err(|e| SkipReason::Unreadable { path: path.into(), detail: e.to_string() })?;
        let mut gz = flate2::read::GzDecoder::new(file);
        n = read_up_to(&mut gz, &mut head)
            .map_err(|e| SkipReason::Truncated { path: path.into(), detail: format!("gzip stream: {e}") })?;
        if n == 0 {
            return Err(SkipReason::EmptyFile(path.into()));
        }
    }
    if n < 9 || &head[..9] != b"SIMPLE  =" {
        return Err(SkipReason::NotFits(path.into()));
    }
    if !gzipped && meta.len() < FITS_BLOCK as u64 {
        return Err(SkipReason::Truncated {
            path: path.into(),
            detail: format!("{} bytes, shorter than one FITS block", meta.len()),
        });
    }
    Ok(())
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The BITPIX card as written in the primary header, for error messages.
fn raw_bitpix(path: &Path) -> String {
    let mut buf = vec![0u8; FITS_BLOCK];
    let n = std::fs::File::open(path).and_then(|mut f| read_up_to(&mut f, &mut buf)).unwrap_or(0);
    buf[..n]
        .chunks(80)
        .find(|c| c.starts_with(b"BITPIX"))
        .map(|c| String::from_utf8_lossy(&c[10..30.min(c.len())]).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

fn fits_error(path: &Path, e: fitsio::errors::Error) -> SkipReason {
    match e {
        fitsio::errors::Error::Fits(fe) => match fe.status {
            104 => SkipReason::Unreadable { path: path.into(), detail: "could not open the file".into() },
            107 | 108 => {
                SkipReason::Truncated { path: path.into(), detail: format!("cfitsio {}: {}", fe.status, fe.message) }
            }
            211 => SkipReason::UnsupportedBitpix { path: path.into(), bitpix: raw_bitpix(path) },
            _ => SkipReason::Unreadable { path: path.into(), detail: format!("cfitsio {}: {}", fe.status, fe.message) },
        },
        other => SkipReason::Unreadable { path: path.into(), detail: other.to_string() },
    }
}

/// Extensions that hold a mask, weight or error plane beside the bands (as `cutouts` writes
/// them, and as many survey tools do): not bands of the sky.
fn is_auxiliary(file: &mut FitsFile, hdu: &fitsio::hdu::FitsHdu) -> bool {
    const AUXILIARY: &[&str] =
        &["MASK", "MSK", "WEIGHT", "WHT", "WEI", "FLAGS", "FLAG", "VAR", "VARIANCE", "IVAR", "ERR", "RMS", "BPM", "DQ"];
    hdu.read_key::<String>(file, "EXTNAME")
        .is_ok_and(|name| AUXILIARY.iter().any(|a| name.trim().eq_ignore_ascii_case(a)))
}

fn header_band(file: &mut FitsFile, hdu: &fitsio::hdu::FitsHdu) -> Option<Band> {
    for key in ["EXTNAME", "FILTER", "BAND", "FILTNAME"] {
        if let Ok(v) = hdu.read_key::<String>(file, key) {
            if let Some(b) = Band::parse(&v) {
                return Some(b);
            }
        }
    }
    None
}

/// Bands of a cube's slices, from `BAND1..BANDn` or `FILTER1..n` keys when present.
fn cube_bands(file: &mut FitsFile, hdu: &fitsio::hdu::FitsHdu, depth: usize) -> Vec<Option<Band>> {
    (1..=depth)
        .map(|k| {
            ["BAND", "FILTER"]
                .iter()
                .find_map(|p| hdu.read_key::<String>(file, &format!("{p}{k}")).ok().and_then(|v| Band::parse(&v)))
        })
        .collect()
}

/// Reads every image plane of a FITS file: the primary and each image extension with data; a
/// 3-D cube is split into its slices (band from `BANDk`/`FILTERk` keys when present). Pixels equal
/// to an integer image's `BLANK`, and NaN/Inf, come back as NaN.
pub fn read_planes(path: &Path) -> Result<Vec<ImagePlane>, SkipReason> {
    precheck(path)?;
    let holds = data_bytes_bound(path);
    let mut file = FitsFile::open(path).map_err(|e| fits_error(path, e))?;
    let n_hdus = file.num_hdus().map_err(|e| fits_error(path, e))?;
    let mut planes = Vec::new();
    let mut claimed: u64 = 0;
    for index in 0..n_hdus {
        let hdu = file.hdu(index).map_err(|e| fits_error(path, e))?;
        let (shape, image_type) = match &hdu.info {
            HduInfo::ImageInfo { shape, image_type } => (shape.clone(), *image_type),
            _ => continue,
        };
        if shape.is_empty() || shape.contains(&0) || is_auxiliary(&mut file, &hdu) {
            continue;
        }
        // A tile-compressed image (fpack) holds fewer bytes than it unpacks to: bounded by a
        // generous compression ratio instead of the file's length.
        let compressed = hdu.read_key::<String>(&mut file, "ZIMAGE").is_ok_and(|v| v.trim().starts_with('T'));
        let bound = holds.map(|h| if compressed { h.saturating_mul(MAX_COMPRESSION) } else { h });
        let bytes = check_size(path, index, &shape, image_type, claimed, bound)?;
        if !compressed {
            claimed += bytes;
        }
        let blank: Option<i64> = hdu.read_key::<i64>(&mut file, "BLANK").ok();
        let data: Vec<f32> = if let Some(blank) = blank {
            let bitpix: i64 = hdu.read_key(&mut file, "BITPIX").unwrap_or(-32);
            let scale: f64 = hdu.read_key(&mut file, "BSCALE").unwrap_or(1.0);
            let zero: f64 = hdu.read_key(&mut file, "BZERO").unwrap_or(0.0);
            let raw: Vec<f64> = hdu.read_image(&mut file).map_err(|e| fits_error(path, e))?;
            let blank_value = blank as f64 * scale + zero;
            raw.into_iter().map(|v| if bitpix > 0 && v == blank_value { f32::NAN } else { v as f32 }).collect()
        } else {
            hdu.read_image(&mut file).map_err(|e| fits_error(path, e))?
        };
        let (wcs, pixel_arcsec) = if planes.is_empty() && shape.len() >= 2 {
            let n = shape.len();
            let keys = super::wcs::read_wcs_keys(&mut file, &hdu, [shape[n - 1], shape[n - 2]]);
            let wcs = super::wcs::TanWcs::new(&keys).ok();
            let scale = wcs.as_ref().map(super::wcs::TanWcs::pixel_scale_arcsec);
            let scale = scale.or_else(|| super::wcs::celestial_pixel_scale(&keys));
            (wcs, scale.or_else(|| scale_keyword(&mut file, &hdu)))
        } else {
            (None, None)
        };
        match shape.len() {
            2 => {
                let band = header_band(&mut file, &hdu);
                planes.push(ImagePlane {
                    width: shape[1],
                    height: shape[0],
                    data,
                    band,
                    hdu: index,
                    wcs,
                    pixel_arcsec,
                });
            }
            3 => {
                let (depth, height, width) = (shape[0], shape[1], shape[2]);
                let bands = cube_bands(&mut file, &hdu, depth);
                let (mut wcs, mut pixel_arcsec) = (wcs, pixel_arcsec);
                for (k, chunk) in data.chunks_exact(width * height).enumerate() {
                    let (wcs, pixel_arcsec) = (wcs.take(), pixel_arcsec.take());
                    let data = chunk.to_vec();
                    planes.push(ImagePlane { width, height, data, band: bands[k], hdu: index, wcs, pixel_arcsec });
                }
            }
            // 1-D or 4-D+ HDUs are not images of the sky: ignored, and counted by the caller.
            _ => {}
        }
    }
    if planes.is_empty() {
        return Err(SkipReason::NoImage(path.into()));
    }
    Ok(planes)
}

/// The largest side of an image plane read whole (a cutout, not a survey tile: tiles are read in
/// row ranges). 16k x 16k f32 is 1 GiB.
pub const MAX_PLANE_SIDE: usize = 16_384;
/// The most a tile-compressed image is believed to shrink (lossless fpack of sky images is
/// 2-10; constant images compress further, but a cutout is not one).
const MAX_COMPRESSION: u64 = 1000;
/// The most planes one image HDU may stack.
pub const MAX_PLANES: usize = 64;

/// At most how many bytes of pixel data the file can hold: its length, or for gzip the
/// uncompressed length its trailer records (modulo 4 GiB, so unknown above that).
fn data_bytes_bound(path: &Path) -> Option<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let mut magic = [0u8; 2];
    f.read_exact(&mut magic).ok()?;
    if magic != [0x1f, 0x8b] {
        return Some(len);
    }
    if len >= u32::MAX as u64 / 4 {
        return None;
    }
    let mut isize = [0u8; 4];
    f.seek(SeekFrom::End(-4)).ok()?;
    f.read_exact(&mut isize).ok()?;
    Some(u32::from_le_bytes(isize) as u64)
}

/// Checks one image HDU's claimed size against the limits and against what the file holds,
/// before anything is allocated; returns its bytes of pixel data.
fn check_size(
    path: &Path,
    hdu: usize,
    shape: &[usize],
    image_type: fitsio::images::ImageType,
    claimed_before: u64,
    holds: Option<u64>,
) -> Result<u64, SkipReason> {
    use fitsio::images::ImageType as T;
    let refuse = |detail: String| SkipReason::ImpossibleSize { path: path.into(), detail };
    let dims = shape.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" x ");
    let (planes, sides) = match shape.len() {
        0..=2 => (1, shape),
        n => (shape[..n - 2].iter().product::<usize>(), &shape[n - 2..]),
    };
    if sides.iter().any(|&n| n > MAX_PLANE_SIDE) || planes > MAX_PLANES {
        return Err(refuse(format!(
            "HDU {hdu} claims {dims} pixels; a cutout is at most {MAX_PLANE_SIDE} x {MAX_PLANE_SIDE} in at most {MAX_PLANES} planes"
        )));
    }
    let bytes_per_pixel: u64 = match image_type {
        T::UnsignedByte | T::Byte => 1,
        T::Short | T::UnsignedShort => 2,
        T::Long | T::UnsignedLong | T::Float => 4,
        T::LongLong | T::Double => 8,
    };
    let bytes = shape.iter().try_fold(bytes_per_pixel, |acc, &n| acc.checked_mul(n as u64)).unwrap_or(u64::MAX);
    if let Some(holds) = holds {
        if claimed_before.saturating_add(bytes) > holds {
            return Err(refuse(format!(
                "HDU {hdu} claims {dims} pixels ({bytes} bytes), but the whole file holds {holds} bytes"
            )));
        }
    }
    Ok(bytes)
}

/// Reads a file that holds one band: the first image plane with data.
pub fn read_single_band(path: &Path) -> Result<ImagePlane, SkipReason> {
    let mut planes = read_planes(path)?;
    Ok(planes.swap_remove(0))
}
