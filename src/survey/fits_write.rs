//! A small FITS image writer in plain Rust.
//!
//! Why our own and not cfitsio's: the simulator writes tens of thousands of files and promises
//! byte-identical output per seed, tests need files with every BITPIX, BSCALE/BZERO and deliberate
//! damage, and a writer this small is easy to check against cfitsio's reader (the tests do).
//! It writes primary images, image extensions (MEFs) and 3-D cubes, optionally gzip-compressed.

use crate::cutout::{Band, Cutout};
use std::io::Write;
use std::path::Path;

/// Pixel values of one HDU in the type written to disk (the FITS BITPIX).
#[derive(Debug, Clone, PartialEq)]
pub enum PixelData {
    U8(Vec<u8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl PixelData {
    pub fn bitpix(&self) -> i32 {
        match self {
            PixelData::U8(_) => 8,
            PixelData::I16(_) => 16,
            PixelData::I32(_) => 32,
            PixelData::I64(_) => 64,
            PixelData::F32(_) => -32,
            PixelData::F64(_) => -64,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            PixelData::U8(v) => v.len(),
            PixelData::I16(v) => v.len(),
            PixelData::I32(v) => v.len(),
            PixelData::I64(v) => v.len(),
            PixelData::F32(v) => v.len(),
            PixelData::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn write_be(&self, out: &mut Vec<u8>) {
        match self {
            PixelData::U8(v) => out.extend_from_slice(v),
            PixelData::I16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            PixelData::I32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            PixelData::I64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            PixelData::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            PixelData::F64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
        }
    }
}

/// A header value.
#[derive(Debug, Clone, PartialEq)]
pub enum Card {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
}

/// One image HDU: `shape` is in C order (slowest axis first), e.g. `[height, width]` or
/// `[4, height, width]`, so `shape.iter().product() == data.len()`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageHdu {
    pub shape: Vec<usize>,
    pub data: PixelData,
    /// Extra keys (EXTNAME, FILTER, BSCALE, BZERO, BLANK, ...), written after the mandatory ones.
    pub keys: Vec<(String, Card)>,
}

impl ImageHdu {
    pub fn f32_image(width: usize, height: usize, data: Vec<f32>) -> ImageHdu {
        ImageHdu { shape: vec![height, width], data: PixelData::F32(data), keys: Vec::new() }
    }

    pub fn with_key(mut self, key: &str, value: Card) -> ImageHdu {
        self.keys.push((key.to_string(), value));
        self
    }
}

fn card(key: &str, value: &Card) -> String {
    let v = match value {
        Card::Int(i) => format!("{i:>20}"),
        Card::Float(f) => {
            let s = format!("{f:.15E}");
            format!("{s:>20}")
        }
        Card::Str(s) => format!("'{:<8}'", s.replace('\'', "''")),
        Card::Bool(b) => format!("{:>20}", if *b { "T" } else { "F" }),
    };
    let mut line = format!("{key:<8}= {v}");
    line.truncate(80);
    format!("{line:<80}")
}

fn push_header(out: &mut Vec<u8>, cards: &[String]) {
    let start = out.len();
    for c in cards {
        out.extend_from_slice(c.as_bytes());
    }
    out.extend_from_slice(format!("{:<80}", "END").as_bytes());
    let pad = (2880 - (out.len() - start) % 2880) % 2880;
    out.extend(std::iter::repeat_n(b' ', pad));
}

/// Serialises HDUs into FITS bytes. The first HDU is the primary; pass `None` as the primary to
/// write an empty primary followed by image extensions (the usual MEF shape).
pub fn to_bytes(primary: Option<&ImageHdu>, extensions: &[ImageHdu]) -> Vec<u8> {
    let mut out = Vec::new();
    let write_hdu = |out: &mut Vec<u8>, hdu: Option<&ImageHdu>, is_primary: bool, has_ext: bool| {
        let mut cards = Vec::new();
        if is_primary {
            cards.push(card("SIMPLE", &Card::Bool(true)));
        } else {
            cards.push(card("XTENSION", &Card::Str("IMAGE".into())));
        }
        match hdu {
            Some(h) => {
                cards.push(card("BITPIX", &Card::Int(h.data.bitpix() as i64)));
                cards.push(card("NAXIS", &Card::Int(h.shape.len() as i64)));
                for (k, n) in h.shape.iter().rev().enumerate() {
                    cards.push(card(&format!("NAXIS{}", k + 1), &Card::Int(*n as i64)));
                }
            }
            None => {
                cards.push(card("BITPIX", &Card::Int(8)));
                cards.push(card("NAXIS", &Card::Int(0)));
            }
        }
        if is_primary {
            if has_ext {
                cards.push(card("EXTEND", &Card::Bool(true)));
            }
        } else {
            cards.push(card("PCOUNT", &Card::Int(0)));
            cards.push(card("GCOUNT", &Card::Int(1)));
        }
        if let Some(h) = hdu {
            for (k, v) in &h.keys {
                cards.push(card(k, v));
            }
        }
        push_header(out, &cards);
        if let Some(h) = hdu {
            let start = out.len();
            h.data.write_be(out);
            let pad = (2880 - (out.len() - start) % 2880) % 2880;
            out.extend(std::iter::repeat_n(0u8, pad));
        }
    };
    write_hdu(&mut out, primary, true, !extensions.is_empty());
    for e in extensions {
        write_hdu(&mut out, Some(e), false, false);
    }
    out
}

/// Writes FITS bytes to `path`, gzip-compressed when the name ends in `.gz`. Writes to a
/// temporary name and renames, so a reader never sees half a file.
pub fn write_file(path: &Path, primary: Option<&ImageHdu>, extensions: &[ImageHdu]) -> std::io::Result<()> {
    let bytes = to_bytes(primary, extensions);
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes)?;
        enc.finish()?
    } else {
        bytes
    };
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path)
}

/// A cutout as one multi-extension FITS: empty primary, then one float32 image per band with
/// `EXTNAME` and `FILTER` set to the band letter. Masked pixels are written as NaN.
pub fn cutout_to_mef(cutout: &Cutout) -> Vec<u8> {
    let exts: Vec<ImageHdu> = Band::ALL
        .iter()
        .map(|&b| {
            let data = band_with_nan(cutout, b);
            ImageHdu::f32_image(cutout.width, cutout.height, data)
                .with_key("EXTNAME", Card::Str(b.letter().to_ascii_uppercase().to_string()))
                .with_key("FILTER", Card::Str(b.letter().to_string()))
        })
        .collect();
    to_bytes(None, &exts)
}

/// One band of a cutout with its masked pixels as NaN, as a FITS file would hold it.
pub fn band_with_nan(cutout: &Cutout, band: Band) -> Vec<f32> {
    cutout.band(band).iter().zip(cutout.band_mask(band)).map(|(&v, &m)| if m { f32::NAN } else { v }).collect()
}

/// The Bologna Lens Challenge folder (SPEC 2.1 item 1) a band's file goes in.
pub fn bologna_folder(band: Band) -> &'static str {
    match band {
        Band::R => "Band1",
        Band::I => "Band2",
        Band::G => "Band3",
        Band::U => "Band4",
    }
}

/// `imageSDSS_<B>-<ID>.fits`, the challenge's file name for one band of object `id`.
pub fn bologna_file_name(band: Band, id: &str) -> String {
    format!("imageSDSS_{}-{id}.fits", band.letter().to_ascii_uppercase())
}

/// Writes one cutout in the Bologna challenge layout under `root` (creating `Band1..Band4`):
/// one float32 primary image per band, NaN where masked.
pub fn write_bologna(root: &Path, cutout: &Cutout) -> std::io::Result<()> {
    write_bologna_with_wcs(root, cutout, None)
}

/// [`write_bologna`], with a WCS in each band's header when one is given.
pub fn write_bologna_with_wcs(root: &Path, cutout: &Cutout, wcs: Option<&super::wcs::TanWcs>) -> std::io::Result<()> {
    for band in Band::ALL {
        let dir = root.join(bologna_folder(band));
        std::fs::create_dir_all(&dir)?;
        let mut hdu = ImageHdu::f32_image(cutout.width, cutout.height, band_with_nan(cutout, band))
            .with_key("FILTER", Card::Str(format!("SDSS_{}", band.letter().to_ascii_uppercase())));
        if let Some(wcs) = wcs {
            hdu.keys.extend(wcs.header_cards());
        }
        write_file(&dir.join(bologna_file_name(band, &cutout.name)), Some(&hdu), &[])?;
    }
    Ok(())
}

/// A name as a file name: characters other than letters, digits and `._+-` become `_`
/// (survey ids such as `KiDS J084526.23+022840.8` hold spaces).
pub fn safe_file_stem(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "._+-".contains(c) { c } else { '_' }).collect()
}

/// A cutout as one float32 cube (u, g, r, i; NaN where masked) with its WCS when it has one, the
/// band of each plane (`BAND1..4`), `OBJECT` (its name) and `ORIGIN`: what `cutouts` and
/// `export --cutouts` write, and `ingest` reads back. Callers add their own keys.
pub fn cutout_cube(cutout: &Cutout, wcs: Option<&super::wcs::TanWcs>) -> ImageHdu {
    let (w, h) = (cutout.width, cutout.height);
    let mut data = Vec::with_capacity(4 * w * h);
    for b in Band::ALL {
        data.extend(band_with_nan(cutout, b));
    }
    let mut cube = ImageHdu { shape: vec![4, h, w], data: PixelData::F32(data), keys: Vec::new() };
    match (wcs, cutout.pixel_arcsec) {
        (Some(wcs), _) => cube.keys.extend(wcs.header_cards()),
        // A scale known without a TAN WCS (another projection, or the user's): kept for whoever
        // reads the cube back, ingest included.
        (None, Some(scale)) => cube.keys.push((super::fits::SCALE_KEYWORDS[0].into(), Card::Float(scale))),
        (None, None) => {}
    }
    for (k, b) in Band::ALL.iter().enumerate() {
        cube.keys.push((format!("BAND{}", k + 1), Card::Str(b.letter().to_string())));
    }
    cube.keys.push(("OBJECT".into(), Card::Str(cutout.name.clone())));
    cube.keys.push(("ORIGIN".into(), Card::Str(format!("lens-inspect {}", env!("CARGO_PKG_VERSION")))));
    cube
}
