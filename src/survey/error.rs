//! Why an object could not be read. One variant per kind of damage, each naming the file or band,
//! so an ingest summary can count them by [`SkipReason::key`] and print them for a person.

use crate::cutout::Band;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SkipReason {
    #[error("file missing: {0}")]
    MissingFile(PathBuf),
    #[error("file is empty: {0}")]
    EmptyFile(PathBuf),
    #[error("not a FITS file (no SIMPLE card): {0}")]
    NotFits(PathBuf),
    #[error("file truncated: {path}: {detail}")]
    Truncated { path: PathBuf, detail: String },
    /// The header asks for more pixels than a cutout may have, or than the file holds: refused
    /// before anything is allocated, so a lying header cannot exhaust memory.
    #[error("header does not fit the file: {path}: {detail}")]
    ImpossibleSize { path: PathBuf, detail: String },
    #[error("unsupported BITPIX {bitpix} in {path} (FITS allows 8, 16, 32, 64, -32, -64)")]
    UnsupportedBitpix { path: PathBuf, bitpix: String },
    #[error("no image data in {0}")]
    NoImage(PathBuf),
    #[error("expected 4 bands (u, g, r, i), found {found}: {detail}")]
    BandCount { found: usize, detail: String },
    #[error("band {band} missing{detail}")]
    MissingBand { band: Band, detail: String },
    #[error("band {band} given twice: {detail}")]
    DuplicateBand { band: Band, detail: String },
    #[error("cannot tell the band of HDU {hdu} in {path} (no EXTNAME/FILTER/BAND naming u, g, r or i)")]
    UnknownBand { path: PathBuf, hdu: usize },
    #[error("bands differ in shape: {0}")]
    ShapeMismatch(String),
    /// One band without a valid pixel, where the reader was not asked to keep such objects
    /// ([`crate::survey::check_blank_bands`]).
    #[error("band {0} has no valid pixel (all NaN/Inf); --keep-blank-bands reads such objects with that band as sky")]
    AllMasked(Band),
    /// Every band blank: nothing to look at, whatever the reader was asked.
    #[error("no band holds an image (every band all NaN/Inf, or one constant value)")]
    AllBlank,
    #[error("unreadable: {path}: {detail}")]
    Unreadable { path: PathBuf, detail: String },
    #[error("bad catalogue row: {0}")]
    BadRow(String),
    #[error("no truth for a training candidate (give --truth with an is_lens value for it)")]
    NoTruth,
    #[error("internal error while reading (please report): {0}")]
    Internal(String),
}

impl SkipReason {
    /// A short stable key for summaries and JSON (`skipped: {key: count}`).
    pub fn key(&self) -> &'static str {
        match self {
            SkipReason::MissingFile(_) => "missing_file",
            SkipReason::EmptyFile(_) => "empty_file",
            SkipReason::NotFits(_) => "not_fits",
            SkipReason::Truncated { .. } => "truncated",
            SkipReason::ImpossibleSize { .. } => "impossible_size",
            SkipReason::UnsupportedBitpix { .. } => "unsupported_bitpix",
            SkipReason::NoImage(_) => "no_image",
            SkipReason::BandCount { .. } => "band_count",
            SkipReason::MissingBand { .. } => "missing_band",
            SkipReason::DuplicateBand { .. } => "duplicate_band",
            SkipReason::UnknownBand { .. } => "unknown_band",
            SkipReason::ShapeMismatch(_) => "shape_mismatch",
            SkipReason::AllMasked(_) => "all_nan",
            SkipReason::AllBlank => "all_blank",
            SkipReason::Unreadable { .. } => "unreadable",
            SkipReason::BadRow(_) => "bad_row",
            SkipReason::NoTruth => "no_truth",
            SkipReason::Internal(_) => "internal",
        }
    }
}
