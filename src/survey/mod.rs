//! Reading the outside world into [`Cutout`](crate::cutout::Cutout)s.
//!
//! Entry points: [`layout::discover`] lists the objects of an input (Bologna challenge folders,
//! a folder of multi-extension FITS / cubes, a catalogue CSV), [`layout::load`] reads and
//! validates one of them; [`read_all`] does that for all of them in parallel. A bad object gets a
//! [`SkipReason`] and the rest go on.

pub mod catalogue;
pub mod error;
pub mod extract;
pub mod fits;
pub mod fits_write;
pub mod fixtures;
pub mod layout;
pub mod region;
pub mod select;
pub mod tile_fixtures;
pub mod tiles;
pub mod wcs;

pub use error::SkipReason;
pub use layout::{discover, load, Discovery, LayoutError, LayoutKind, ObjectSource, ObjectSpec, Problem};

use crate::cutout::Cutout;
use rayon::prelude::*;

/// The reading rule for a band without a single valid pixel (all NaN/Inf). By default such an
/// object is skipped with its reason (SPEC 2.1). Asked to keep it, the reader takes it with that
/// band as sky: survey masks differ between filters (KiDS's u band covers less than g, r and i),
/// and three bands are worth grading. An object with no band at all is skipped either way
/// ([`load`]).
pub fn check_blank_bands(cutout: &Cutout, keep: bool) -> Result<(), SkipReason> {
    if keep {
        return Ok(());
    }
    match cutout.masked_bands().first() {
        Some(&band) => Err(SkipReason::AllMasked(band)),
        None => Ok(()),
    }
}

/// Reads every object in parallel (rayon's pool), calling `progress` after each one from
/// whichever thread read it. Results come back in the order of `specs`.
pub fn read_all(specs: &[ObjectSpec], progress: &(dyn Fn() + Sync)) -> Vec<Result<Cutout, SkipReason>> {
    specs
        .par_iter()
        .map(|s| {
            let r = load(s);
            progress();
            r
        })
        .collect()
}

/// [`read_all`], with each object's WCS when its file has one.
pub fn read_all_with_wcs(
    specs: &[ObjectSpec],
    progress: &(dyn Fn() + Sync),
) -> Vec<Result<(Cutout, Option<wcs::TanWcs>), SkipReason>> {
    specs
        .par_iter()
        .map(|s| {
            let r = layout::load_with_wcs(s);
            progress();
            r
        })
        .collect()
}
