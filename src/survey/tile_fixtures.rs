//! Synthetic survey tiles, written the way KiDS ships them, for the tests and `bench cutouts`:
//! band files that differ in size and CRPIX, a TAN WCS whose CRVAL is off the name's nominal
//! centre, Gaussian sources at known sky positions, a weight map with a zero stripe, a mask with
//! known bits, and the catalogue as a FITS binary table with string ids.

use super::fits_write::{write_file, Card, ImageHdu, PixelData};
use super::wcs::{TanWcs, WcsKeys};
use crate::cutout::Band;
use std::path::{Path, PathBuf};

/// One tile to write.
#[derive(Debug, Clone)]
pub struct TileSpec {
    /// File-name tile part, e.g. `KiDS_DR4.0_131.0_2.5`.
    pub name: String,
    /// Tangent point (deliberately not the name's nominal centre).
    pub crval: (f64, f64),
    /// Nominal size; each band differs from it by a few pixels (see [`band_geometry`]).
    pub width: usize,
    pub height: usize,
    /// Degrees per pixel (KiDS: 0.2" = 5.5556e-5).
    pub scale: f64,
    /// Columns `[start, end)` (0-based) where every band's weight is 0.
    pub zero_weight_columns: std::ops::Range<usize>,
    /// Write `_wei` and `_msk` files.
    pub with_weights_and_masks: bool,
}

/// A source at a known position.
#[derive(Debug, Clone)]
pub struct Source {
    pub id: String,
    pub ra: f64,
    pub dec: f64,
    /// Peak value of its Gaussian (sigma 2 px) in every band.
    pub peak: f32,
}

/// The mask bits the fixture sets: bit 2 (value 4) in a block, bit 0 (value 1) in another.
pub const MASK_BLOCK_BIT4: (std::ops::Range<usize>, std::ops::Range<usize>) = (100..160, 200..260);
pub const MASK_BLOCK_BIT1: (std::ops::Range<usize>, std::ops::Range<usize>) = (300..340, 50..90);

/// How a band's image differs from the r band's: size and reference pixel.
pub fn band_geometry(spec: &TileSpec, band: Band) -> (usize, usize, f64, f64) {
    let k = band.index() as f64;
    let width = spec.width + 3 * band.index();
    let height = (spec.height + 4).saturating_sub(2 * band.index());
    let crpix1 = spec.width as f64 / 2.0 + 0.5 + 1.7 * k;
    let crpix2 = spec.height as f64 / 2.0 - 0.3 * k;
    (width, height, crpix1, crpix2)
}

/// The WCS a band of the tile is written with.
pub fn band_wcs(spec: &TileSpec, band: Band) -> TanWcs {
    let (w, h, c1, c2) = band_geometry(spec, band);
    TanWcs::new(&WcsKeys {
        ctype: [Some("RA---TAN".into()), Some("DEC--TAN".into())],
        naxis: [w, h],
        crpix: [Some(c1), Some(c2)],
        crval: [Some(spec.crval.0), Some(spec.crval.1)],
        cd: [Some(-spec.scale), Some(0.0), Some(0.0), Some(spec.scale)],
        ..Default::default()
    })
    .expect("the fixture's WCS is valid")
}

/// Small deterministic noise (a hash of the pixel index), so tests need no RNG crate state.
fn noise(seed: u64, i: u64) -> f32 {
    let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 24) as f32 - 0.5
}

/// Writes the tile's files (`<name>_<band>_sci.fits`, and `_wei`, `_msk`) into `dir`.
pub fn write_tile(dir: &Path, spec: &TileSpec, sources: &[Source]) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for band in Band::ALL {
        let (w, h, _, _) = band_geometry(spec, band);
        let wcs = band_wcs(spec, band);
        let mut data: Vec<f32> = (0..(w * h) as u64).map(|i| noise(band.index() as u64 + 1, i)).collect();
        for s in sources {
            let Some((x, y)) = wcs.sky_to_pixel(s.ra, s.dec) else { continue };
            // FITS pixel (x, y) is 0-based column x - 1, row y - 1.
            let (cx, cy) = (x - 1.0, y - 1.0);
            let r = 12i64;
            for j in (cy.round() as i64 - r)..=(cy.round() as i64 + r) {
                for i in (cx.round() as i64 - r)..=(cx.round() as i64 + r) {
                    if i < 0 || j < 0 || i >= w as i64 || j >= h as i64 {
                        continue;
                    }
                    let d2 = (i as f64 - cx).powi(2) + (j as f64 - cy).powi(2);
                    data[j as usize * w + i as usize] += s.peak * (-d2 / 8.0).exp() as f32;
                }
            }
        }
        let mut cards: Vec<(String, Card)> = wcs.header_cards();
        cards.push(("FILTER".into(), Card::Str(band.letter().to_string())));
        let sci = ImageHdu { shape: vec![h, w], data: PixelData::F32(data), keys: cards.clone() };
        let path = dir.join(format!("{}_{}_sci.fits", spec.name, band.letter()));
        write_file(&path, Some(&sci), &[])?;
        written.push(path);
        if spec.with_weights_and_masks {
            let mut weight = vec![1u8; w * h];
            for row in weight.chunks_exact_mut(w) {
                for x in spec.zero_weight_columns.clone().filter(|&x| x < w) {
                    row[x] = 0;
                }
            }
            let wei = ImageHdu { shape: vec![h, w], data: PixelData::U8(weight), keys: cards.clone() };
            let path = dir.join(format!("{}_{}_wei.fits", spec.name, band.letter()));
            write_file(&path, Some(&wei), &[])?;
            written.push(path);
            let mut mask = vec![0i16; w * h];
            for (block, bit) in [(&MASK_BLOCK_BIT4, 4i16), (&MASK_BLOCK_BIT1, 1)] {
                for y in block.1.clone().filter(|&y| y < h) {
                    for x in block.0.clone().filter(|&x| x < w) {
                        mask[y * w + x] |= bit;
                    }
                }
            }
            let msk = ImageHdu { shape: vec![h, w], data: PixelData::I16(mask), keys: cards };
            let path = dir.join(format!("{}_{}_msk.fits", spec.name, band.letter()));
            write_file(&path, Some(&msk), &[])?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Catalogue columns besides id and position, per source.
#[derive(Debug, Clone, Default)]
pub struct SourceColumns {
    pub mag_auto: f32,
    pub z_b: f32,
    pub flag: i32,
    pub imaflags_iso: i32,
    pub mask: i32,
    pub tile: String,
}

/// Writes a KiDS-like catalogue as a FITS binary table: `ID` (string), `RAJ2000`, `DECJ2000`,
/// `MAG_AUTO`, `Z_B`, `Flag`, `IMAFLAGS_ISO`, `MASK`, `KIDS_TILE`.
pub fn write_catalogue(
    path: &Path,
    sources: &[Source],
    columns: &[SourceColumns],
) -> Result<(), fitsio::errors::Error> {
    use fitsio::tables::{ColumnDataType, ColumnDescription};
    assert_eq!(sources.len(), columns.len(), "one row of columns per source");
    let _ = std::fs::remove_file(path);
    let mut f = fitsio::FitsFile::create(path).open()?;
    let text = |name: &str, width: usize| {
        ColumnDescription::new(name).with_type(ColumnDataType::String).that_repeats(width).create()
    };
    let of = |name: &str, t: ColumnDataType| ColumnDescription::new(name).with_type(t).create();
    let descriptions = [
        text("ID", 32)?,
        of("RAJ2000", ColumnDataType::Double)?,
        of("DECJ2000", ColumnDataType::Double)?,
        of("MAG_AUTO", ColumnDataType::Float)?,
        of("Z_B", ColumnDataType::Float)?,
        of("Flag", ColumnDataType::Int)?,
        of("IMAFLAGS_ISO", ColumnDataType::Int)?,
        of("MASK", ColumnDataType::Int)?,
        text("KIDS_TILE", 32)?,
    ];
    let hdu = f.create_table("CATALOGUE", &descriptions)?;
    hdu.write_col(&mut f, "ID", &sources.iter().map(|s| s.id.clone()).collect::<Vec<_>>())?;
    hdu.write_col(&mut f, "RAJ2000", &sources.iter().map(|s| s.ra).collect::<Vec<_>>())?;
    hdu.write_col(&mut f, "DECJ2000", &sources.iter().map(|s| s.dec).collect::<Vec<_>>())?;
    hdu.write_col(&mut f, "MAG_AUTO", &columns.iter().map(|c| c.mag_auto).collect::<Vec<_>>())?;
    hdu.write_col(&mut f, "Z_B", &columns.iter().map(|c| c.z_b).collect::<Vec<_>>())?;
    hdu.write_col(&mut f, "Flag", &columns.iter().map(|c| c.flag).collect::<Vec<_>>())?;
    hdu.write_col(&mut f, "IMAFLAGS_ISO", &columns.iter().map(|c| c.imaflags_iso).collect::<Vec<_>>())?;
    hdu.write_col(&mut f, "MASK", &columns.iter().map(|c| c.mask).collect::<Vec<_>>())?;
    hdu.write_col(&mut f, "KIDS_TILE", &columns.iter().map(|c| c.tile.clone()).collect::<Vec<_>>())?;
    Ok(())
}

/// Writes the tile's science images as sparse files: a real header and WCS, pixel data that
/// reads as zeros and takes no disk space. For `bench cutouts` at survey scale (20,000 x 20,000
/// pixels per band) without writing gigabytes; real tiles are read the same way.
pub fn write_sparse_tile(dir: &Path, spec: &TileSpec) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for band in Band::ALL {
        let (w, h, _, _) = band_geometry(spec, band);
        let mut keys: Vec<(String, Card)> = band_wcs(spec, band).header_cards();
        keys.push(("FILTER".into(), Card::Str(band.letter().to_string())));
        // The header claims h x w pixels; the data that follows it is the file's sparse tail.
        let header = ImageHdu { shape: vec![h, w], data: PixelData::F32(Vec::new()), keys };
        let bytes = super::fits_write::to_bytes(Some(&header), &[]);
        let data = ((w * h * 4) as u64).div_ceil(2880) * 2880;
        let path = dir.join(format!("{}_{}_sci.fits", spec.name, band.letter()));
        let file = std::fs::File::create(&path)?;
        std::io::Write::write_all(&mut &file, &bytes)?;
        file.set_len(bytes.len() as u64 + data)?;
        written.push(path);
    }
    Ok(written)
}
