//! Every randomised nuisance of the simulator in one place (domain randomisation, issue 15).
//!
//! A lens finder trained on one simulator's look learns that look: its PSF, its noise, its
//! galaxies. [`Ranges::randomised`] draws each nuisance from a range wider than KiDS, so that what
//! stays constant across training scenes is only what makes a lens a lens. [`Ranges::kids`] is
//! the narrow KiDS-like look the demo survey uses. A stress set ([`StressSet`]) is the randomised
//! ranges with one of them moved to values training never saw, which is how the program measures
//! robustness to a look it was not trained on.
//!
//! | nuisance | `kids` | `randomised` (training) | stress set (held out) |
//! |---|---|---|---|
//! | PSF Moffat beta | 3 | 2 - 5 | `psf`: 8 - 15 (near-Gaussian) |
//! | PSF FWHM per band | KiDS median +-12 % | 0.5 - 1.3" per band | |
//! | PSF ellipticity (1 - b/a) | 0 | 0 - 0.1 | |
//! | PSF centre offset between bands | 0 | up to 0.3 px | |
//! | depth | KiDS DR4 | +-0.8 mag per object, +-0.2 per band | |
//! | correlated noise (neighbour weight) | 0 | 0 - 0.45 | |
//! | Poisson noise of the sources (variance per unit flux) | KiDS's sky level | 1 - 100 times it, log-uniform (simulator version 4) | |
//! | sky offset / gradient (sky sigmas) | 0 / 0 | +-1 / up to 2 edge to edge | |
//! | lens light | one Sersic | + envelope (50 %), + disc (20 %), colour gradient | |
//! | lens galaxy size | follows theta_E (r_e 0.5 - 1.3 theta_E) | independent of theta_E: size hint 0.4 - 3.5" log-uniform, r_e 0.5 - 1.3 times it, brightness following it (simulator version 3) | |
//! | look-alikes' central galaxies | one Sersic, 0.8 - 2.5" size hint | drawn as lens galaxies are, same envelope and disc (since simulator version 2) | |
//! | lens centre | +-0.1" | +-0.5" | |
//! | Einstein radius | 0.8 - 3" | 0.6 - 4" (log-uniform) | `theta-e`: 4 - 5.5" |
//! | arc S/N in g | >= 40 | 10 - 600 (log-uniform; 10 - 200 before simulator version 5, when 13 % of ring galaxies' rings were brighter than any arc) | `faint-arcs`: 6 - 10 |
//! | source size (r_e) | by configuration: rings 0.2 - 0.5", arcs 0.15 - 0.5", doubles and quads 0.06 - 0.2" | 0.05 - 0.5", log-uniform, for every configuration (simulator version 9) | |
//! | source clumps | 0 - 3 | 0 - 8, up to 1.5 r_e away | |
//! | second source | never | 15 % | |
//! | source g - r | -0.1 - 0.5 | -0.2 - 1.0 | `red-sources`: 1.0 - 1.6 |
//! | look-alikes' companions, rings, tails (g - r) | blue, -0.1 - 0.5 (rings sometimes yellowish) | as sources: -0.2 - 1.0 (simulator version 5) | |
//! | ring galaxies | smooth ring | smooth, partial, lopsided, knotty | `rings`: collisional |
//! | look-alikes' companions' distance, rings' radius | 1 - 3.5", 1 - 3" | 0.6 - 4", log-uniform as Einstein radii (simulator version 6; before: uniform 1 - 4.5", 0.8 - 5") | |
//! | field galaxies' distance from the centre | beyond 4" | anywhere (simulator version 8; before: beyond 4") | |
//! | field galaxies per cutout (Poisson mean) | 1.5 | 0.5 - 4, log-uniform (simulator version 8; before: 1.5) | |
//! | other look-alikes | 7 kinds | 11 kinds (+ polar rings, edge-on discs, shells and streams, groups) | |
//! | artefacts | none | cosmic rays, satellite trails, saturated stars with spikes, bad columns, masked regions, tile edges, sentinels (0, 100, 1e30, NaN); one band blank in 5 % (simulator version 8) | |

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// A closed range of a drawn value.
pub type Span = (f64, f64);

/// How a ring galaxy's ring is drawn. The recipes differ in what real ring galaxies differ in:
/// completeness, symmetry and how much of the light sits in star-forming knots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingRecipe {
    /// A smooth, complete elliptical ring with a few knots (resonance rings).
    Smooth,
    /// An arc of 90 - 300 degrees of a ring (partial rings, pseudo-rings).
    Partial,
    /// A ring whose brightness and width change around it, centred off the nucleus.
    Lopsided,
    /// A ring made mostly of bright knots on a faint band.
    Knotty,
    /// A collisional ring (Cartwheel-like): the nucleus well off the ring's centre, a ring of
    /// discrete beads, sometimes a faint inner ring and a companion. Held out of training.
    Collisional,
}

impl RingRecipe {
    pub fn name(self) -> &'static str {
        match self {
            RingRecipe::Smooth => "smooth",
            RingRecipe::Partial => "partial",
            RingRecipe::Lopsided => "lopsided",
            RingRecipe::Knotty => "knotty",
            RingRecipe::Collisional => "collisional",
        }
    }
}

/// Probabilities (per cutout) of each kind of artefact; several may fall on one cutout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ArtefactRates {
    pub cosmic_rays: f64,
    pub satellite_trail: f64,
    pub saturated_star: f64,
    pub bad_column: f64,
    pub masked_region: f64,
    pub tile_edge: f64,
    pub sentinels: f64,
    /// One band without any data (simulator version 8; before: never).
    #[serde(default)]
    pub blank_band: f64,
}

impl ArtefactRates {
    pub const NONE: ArtefactRates = ArtefactRates {
        cosmic_rays: 0.0,
        satellite_trail: 0.0,
        saturated_star: 0.0,
        bad_column: 0.0,
        masked_region: 0.0,
        tile_edge: 0.0,
        sentinels: 0.0,
        blank_band: 0.0,
    };
}

/// The ranges every nuisance is drawn from (see the module's table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranges {
    /// Moffat beta, one per object (the bands share it).
    pub psf_beta: Span,
    /// Per-band FWHM in arcsec; `None` keeps the configuration's median per band with its scatter.
    pub psf_fwhm_arcsec: Option<Span>,
    /// Largest PSF ellipticity 1 - b/a.
    pub psf_ellipticity_max: f64,
    /// Largest offset of a band's PSF centre, pixels (registration errors between bands).
    pub psf_offset_px_max: f64,
    /// Whole-object depth offset, magnitudes (positive = deeper).
    pub depth_offset_mag: Span,
    /// Extra per-band depth scatter, magnitudes.
    pub depth_band_scatter_mag: f64,
    /// Largest weight of the 4 nearest neighbours in the noise's smoothing kernel (coadd
    /// resampling correlates neighbouring pixels' noise).
    pub noise_correlation_max: f64,
    /// Factor on the variance a source's own light adds (its Poisson noise), log-uniform. 1 is
    /// KiDS's deep r-band coadds, where the sky outshines a galaxy's core; shallower or darker-sky
    /// data (short exposures, u band, space) have tens to hundreds of times more per unit flux, and
    /// the core of a bright galaxy turns grainy. A finder that never saw grainy cores reads the
    /// grain as arcs: it did, on another simulator's ellipticals, before this was drawn.
    pub shot_noise_factor: Span,
    /// Largest constant sky residual, in sky sigmas.
    pub sky_offset_sigma_max: f64,
    /// Largest sky gradient, in sky sigmas from one edge to the other.
    pub sky_gradient_sigma_max: f64,
    /// Largest offset of the central galaxy from the cutout's centre, arcsec.
    pub centre_offset_arcsec: f64,
    /// Probability of a second, larger and bluer component in the lens light.
    pub lens_envelope: f64,
    /// Probability of a disc in the lens light (S0 and spiral lenses).
    pub lens_disc: f64,
    /// Widens the red-galaxy colours of lenses and look-alikes (0 = KiDS-like red sequence
    /// only, 1 = redshifts 0.1 - 0.8).
    pub lens_colour_spread: f64,
    /// Einstein radius, arcsec, drawn log-uniformly.
    pub theta_e_arcsec: Span,
    /// Target arc S/N in g, drawn log-uniformly; the source's flux is set to reach it. `None`:
    /// the source magnitude is drawn and the lens kept above the configuration's minimum S/N.
    pub arc_snr_g: Option<Span>,
    /// Lensed sources' effective radius, arcsec, log-uniform, the same for every configuration.
    /// `None`: each configuration's own range (rings 0.2 - 0.5", arcs 0.15 - 0.5", doubles and
    /// quads 0.06 - 0.2"), the KiDS look's. Those ranges tied how wide a lens's images are to
    /// its configuration (only ring galaxies had thin rings), a cue no real lens offers; drawn
    /// apart, arcs of compact sources turned out harder for a model trained on the old ranges
    /// (AUROC 0.851 against 0.904 for big ones; simulator version 9, docs/robustness.md).
    pub source_r_e_arcsec: Option<Span>,
    /// Largest number of star-forming clumps in a source.
    pub source_clumps_max: usize,
    /// Probability of a second source behind the lens.
    pub second_source: f64,
    /// Source g - r colour; u - r and r - i follow it with a scatter.
    pub source_g_r: Span,
    /// g - r of what look-alikes add that could pass for a lensed source (blue companions, rings,
    /// tails, spiral knots), drawn as sources' colours are; `None`: blue (-0.1 - 0.5) and, for rings,
    /// sometimes yellowish. Kept apart from `source_g_r`, so that a stress set reddening the
    /// sources leaves the look-alikes as training saw them. Drawn only blue, a green or yellow arc
    /// was always a lens in training (version 4 and before).
    pub feature_g_r: Option<Span>,
    /// Ring-galaxy recipes to draw from, with weights.
    pub ring_recipes: Vec<(RingRecipe, f64)>,
    /// Use the widened set of look-alikes (polar rings, edge-on discs, shells, groups).
    pub wide_lookalikes: bool,
    /// Look-alikes built around a red galaxy (plain ellipticals, companions, shells and streams,
    /// mergers) draw it as a lens galaxy is drawn: for an Einstein radius from the lenses' range,
    /// with the same size and brightness, envelope and disc. Otherwise only lenses have the biggest, brightest
    /// and most extended galaxies, and a finder learns that a bright galaxy is a lens (what it did
    /// on other simulators' ellipticals before this was set).
    pub hosts_as_lenses: bool,
    /// Ring galaxies' hosts are drawn as lens galaxies are (size, brightness, envelope, disc),
    /// like the other look-alikes' galaxies under `hosts_as_lenses`. Otherwise every ring sits
    /// around a small, faint core (r_e at most 1.3") while lens galaxies reach 3": a ring around
    /// a big bright galaxy was always a lens, and a ring around a small one usually not, so a
    /// finder could tell them by the galaxy instead of by the ring (simulator version 6 and
    /// before).
    pub ring_hosts_as_lenses: bool,
    /// Share of lenses with 1 or 2 small galaxies beside the lens galaxy, drawn as the look-alikes'
    /// companions are. Lenses live in groups; without neighbours of their own, a galaxy near a
    /// red galaxy was always a look-alike's companion in training, and a finder learns to mark
    /// down a lens in a group (simulator version 6 and before).
    pub lens_neighbours: f64,
    /// Size hint of a lens galaxy (and of look-alikes' galaxies drawn as lens galaxies), arcsec,
    /// log-uniform and independent of the Einstein radius; the galaxy's effective radius is 0.5 -
    /// 1.3 times it and its brightness follows it. `None`: the hint is the Einstein radius. Tied
    /// to it, an arc far out around a small galaxy never happens in training, and a finder learns
    /// that it is no lens (what it did on another simulator's lenses before this was set).
    pub host_size_hint_arcsec: Option<Span>,
    /// How far from their galaxy look-alikes put what could pass for an arc (companions, ring
    /// galaxies' rings), arcsec, drawn log-uniformly as Einstein radii are. `None`: uniform
    /// draws of their own (companions 1 - 4.5", rings 0.8 - 5" in the wide look). Drawn apart
    /// from lenses', almost all light at 3 - 5" from a galaxy was a look-alike's in training, and
    /// a finder learns that a wide arc is no lens (simulator version 5 and before). Kept apart from
    /// `theta_e_arcsec`, so that a stress set moving the lenses leaves the look-alikes as training
    /// saw them.
    pub feature_radius_arcsec: Option<Span>,
    /// Radius around the cutout's centre that field galaxies (the unrelated galaxies every scene
    /// has a few of) are kept out of, arcsec. On the sky they fall anywhere, in front of a lens
    /// too; kept beyond 4" (simulator version 7 and before), every galaxy near the centre was
    /// part of the scene's story (a lens's neighbour, a look-alike's companion) and nothing
    /// beyond 4" ever was, which a finder can learn instead of lensing.
    #[serde(default = "field_clear_before_v8")]
    pub field_clear_arcsec: f64,
    /// Mean number of field galaxies per cutout, drawn log-uniformly per cutout (a Poisson
    /// count around it). Crowding varies with depth, latitude and whether a lens sits in a group
    /// or cluster; at a fixed 1.5 (simulator version 7 and before) a crowded field was never
    /// seen in training.
    #[serde(default = "field_mean_before_v8")]
    pub field_galaxies_mean: Span,
    pub artefacts: ArtefactRates,
}

/// Field galaxies' clear radius of simulator version 7 and before (ranges saved by them).
fn field_clear_before_v8() -> f64 {
    4.0
}

/// Field galaxies' mean count of simulator version 7 and before.
fn field_mean_before_v8() -> Span {
    (1.5, 1.5)
}

impl Ranges {
    /// The narrow KiDS-like look (the demo survey, the first shipped model's training data).
    pub fn kids() -> Ranges {
        Ranges {
            psf_beta: (3.0, 3.0),
            psf_fwhm_arcsec: None,
            psf_ellipticity_max: 0.0,
            psf_offset_px_max: 0.0,
            depth_offset_mag: (0.0, 0.0),
            depth_band_scatter_mag: 0.0,
            noise_correlation_max: 0.0,
            shot_noise_factor: (1.0, 1.0),
            sky_offset_sigma_max: 0.0,
            sky_gradient_sigma_max: 0.0,
            centre_offset_arcsec: 0.1,
            lens_envelope: 0.0,
            lens_disc: 0.0,
            lens_colour_spread: 0.0,
            theta_e_arcsec: (0.8, 3.0),
            arc_snr_g: None,
            source_r_e_arcsec: None,
            source_clumps_max: 3,
            second_source: 0.0,
            source_g_r: (-0.1, 0.5),
            feature_g_r: None,
            ring_recipes: vec![(RingRecipe::Smooth, 1.0)],
            wide_lookalikes: false,
            hosts_as_lenses: false,
            ring_hosts_as_lenses: false,
            lens_neighbours: 0.0,
            host_size_hint_arcsec: None,
            feature_radius_arcsec: None,
            field_clear_arcsec: 4.0,
            field_galaxies_mean: (1.5, 1.5),
            artefacts: ArtefactRates::NONE,
        }
    }

    /// Domain randomisation for training: every nuisance wider than KiDS.
    pub fn randomised() -> Ranges {
        Ranges {
            psf_beta: (2.0, 5.0),
            psf_fwhm_arcsec: Some((0.5, 1.3)),
            psf_ellipticity_max: 0.1,
            psf_offset_px_max: 0.3,
            depth_offset_mag: (-0.8, 0.8),
            depth_band_scatter_mag: 0.2,
            noise_correlation_max: 0.45,
            shot_noise_factor: (1.0, 100.0),
            sky_offset_sigma_max: 1.0,
            sky_gradient_sigma_max: 2.0,
            centre_offset_arcsec: 0.5,
            lens_envelope: 0.5,
            lens_disc: 0.2,
            lens_colour_spread: 1.0,
            theta_e_arcsec: (0.6, 4.0),
            arc_snr_g: Some((10.0, 600.0)),
            source_r_e_arcsec: Some((0.05, 0.5)),
            source_clumps_max: 8,
            second_source: 0.15,
            source_g_r: (-0.2, 1.0),
            feature_g_r: Some((-0.2, 1.0)),
            ring_recipes: vec![
                (RingRecipe::Smooth, 0.25),
                (RingRecipe::Partial, 0.25),
                (RingRecipe::Lopsided, 0.25),
                (RingRecipe::Knotty, 0.25),
            ],
            wide_lookalikes: true,
            hosts_as_lenses: true,
            ring_hosts_as_lenses: true,
            lens_neighbours: 0.2,
            host_size_hint_arcsec: Some((0.4, 3.5)),
            feature_radius_arcsec: Some((0.6, 4.0)),
            field_clear_arcsec: 0.0,
            field_galaxies_mean: (0.5, 4.0),
            artefacts: ArtefactRates {
                cosmic_rays: 0.15,
                satellite_trail: 0.04,
                saturated_star: 0.06,
                bad_column: 0.04,
                masked_region: 0.05,
                tile_edge: 0.04,
                sentinels: 0.06,
                blank_band: 0.05,
            },
        }
    }

    /// The randomised ranges with one nuisance moved outside what training saw.
    pub fn stress(set: StressSet) -> Ranges {
        let mut r = Ranges::randomised();
        match set {
            StressSet::ThetaE => r.theta_e_arcsec = (4.0, 5.5),
            StressSet::Psf => r.psf_beta = (8.0, 15.0),
            StressSet::Rings => r.ring_recipes = vec![(RingRecipe::Collisional, 1.0)],
            StressSet::RedSources => r.source_g_r = (1.0, 1.6),
            StressSet::FaintArcs => r.arc_snr_g = Some((6.0, 10.0)),
        }
        r
    }

    /// The widest FWHM any band can be drawn with, arcsec (sizes the PSF kernel).
    pub fn worst_fwhm_arcsec(&self, config_fwhm: &[f64; 4], scatter: f64) -> f64 {
        match self.psf_fwhm_arcsec {
            Some((_, hi)) => hi,
            None => config_fwhm.iter().cloned().fold(0.0, f64::max) * (1.0 + scatter),
        }
    }
}

/// One way of being unlike the training data: a held-out range of one randomised nuisance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum StressSet {
    /// Einstein radii of 4 - 5.5", larger than any in training (0.6 - 4").
    ThetaE,
    /// A near-Gaussian PSF (Moffat beta 8 - 15; training: 2 - 5).
    Psf,
    /// Every non-lens ring is a collisional ring, a recipe training never drew.
    Rings,
    /// Sources with g - r of 1.0 - 1.6 (training: -0.2 - 1.0).
    RedSources,
    /// Arcs with S/N 6 - 10 in g (training: 10 - 200).
    FaintArcs,
}

impl StressSet {
    pub const ALL: [StressSet; 5] =
        [StressSet::ThetaE, StressSet::Psf, StressSet::Rings, StressSet::RedSources, StressSet::FaintArcs];

    pub fn name(self) -> &'static str {
        match self {
            StressSet::ThetaE => "theta-e",
            StressSet::Psf => "psf",
            StressSet::Rings => "rings",
            StressSet::RedSources => "red-sources",
            StressSet::FaintArcs => "faint-arcs",
        }
    }

    /// What the set changes, for tables.
    pub fn describe(self) -> &'static str {
        match self {
            StressSet::ThetaE => "Einstein radius 4-5.5\" (train 0.6-4\")",
            StressSet::Psf => "Moffat beta 8-15, near-Gaussian (train 2-5)",
            StressSet::Rings => "collisional ring galaxies (recipe not in training)",
            StressSet::RedSources => "source g-r 1.0-1.6 (train -0.2-1.0)",
            StressSet::FaintArcs => "arc S/N in g 6-10 (train 10-600)",
        }
    }
}

/// A whole look by name, for the command line: the demo's KiDS look, training's randomised one,
/// or a stress set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Look {
    Kids,
    Randomised,
    StressThetaE,
    StressPsf,
    StressRings,
    StressRedSources,
    StressFaintArcs,
}

impl Look {
    pub fn ranges(self) -> Ranges {
        match self {
            Look::Kids => Ranges::kids(),
            Look::Randomised => Ranges::randomised(),
            Look::StressThetaE => Ranges::stress(StressSet::ThetaE),
            Look::StressPsf => Ranges::stress(StressSet::Psf),
            Look::StressRings => Ranges::stress(StressSet::Rings),
            Look::StressRedSources => Ranges::stress(StressSet::RedSources),
            Look::StressFaintArcs => Ranges::stress(StressSet::FaintArcs),
        }
    }

    pub fn of_stress(set: StressSet) -> Look {
        match set {
            StressSet::ThetaE => Look::StressThetaE,
            StressSet::Psf => Look::StressPsf,
            StressSet::Rings => Look::StressRings,
            StressSet::RedSources => Look::StressRedSources,
            StressSet::FaintArcs => Look::StressFaintArcs,
        }
    }
}

/// Several looks in fixed shares, e.g. `randomised:0.8,kids:0.2`: training on a mixture keeps a
/// finder that learns the wide randomised ranges from forgetting the narrow look a survey (or
/// the demo) actually has. Each object's look is drawn from its own seed and index, so a
/// mixture is as reproducible and resumable as a single look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookMix {
    /// Looks and their shares, summing to 1.
    pub parts: Vec<(Look, f64)>,
}

impl LookMix {
    pub fn single(look: Look) -> LookMix {
        LookMix { parts: vec![(look, 1.0)] }
    }

    /// Which part object `index` of a run with `seed` is drawn from.
    pub fn pick(&self, seed: u64, index: u64) -> usize {
        if self.parts.len() == 1 {
            return 0;
        }
        // Its own stream (not the object's), so adding a look does not change the scenes drawn.
        let u = (super::scene::stream_seed(seed ^ 0x4C4F_4F4B_4D49_5853, index) >> 11) as f64 / (1u64 << 53) as f64;
        let mut acc = 0.0;
        for (i, (_, share)) in self.parts.iter().enumerate() {
            acc += share;
            if u < acc {
                return i;
            }
        }
        self.parts.len() - 1
    }
}

impl std::fmt::Display for LookMix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .parts
            .iter()
            .map(|(look, share)| {
                let name = look.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
                if self.parts.len() == 1 {
                    name
                } else {
                    format!("{name}:{share}")
                }
            })
            .collect();
        f.write_str(&names.join(","))
    }
}

impl std::str::FromStr for LookMix {
    type Err = String;

    /// `LOOK` or `LOOK:SHARE,LOOK:SHARE,...`; shares are normalised, a missing one counts 1.
    fn from_str(s: &str) -> Result<LookMix, String> {
        let mut parts = Vec::new();
        for piece in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, share) = match piece.split_once(':') {
                Some((n, w)) => {
                    let w: f64 = w.trim().parse().map_err(|_| format!("share {w:?} of look {n:?} is not a number"))?;
                    (n.trim(), w)
                }
                None => (piece, 1.0),
            };
            let look = <Look as ValueEnum>::from_str(name, true).map_err(|_| {
                let known: Vec<String> = Look::value_variants()
                    .iter()
                    .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
                    .collect();
                format!("unknown look {name:?} (known: {})", known.join(", "))
            })?;
            if !(share.is_finite() && share > 0.0) {
                return Err(format!("share of look {name:?} must be above 0, not {share}"));
            }
            if parts.iter().any(|(l, _)| *l == look) {
                return Err(format!("look {name:?} is given twice"));
            }
            parts.push((look, share));
        }
        if parts.is_empty() {
            return Err("give at least one look".to_string());
        }
        let total: f64 = parts.iter().map(|(_, w)| w).sum();
        for (_, w) in &mut parts {
            *w /= total;
        }
        Ok(LookMix { parts })
    }
}

#[cfg(test)]
mod mix_tests {
    use super::*;

    #[test]
    fn a_mixture_parses_normalises_and_refuses_nonsense() {
        let mix: LookMix = "randomised:3, kids:1".parse().unwrap();
        assert_eq!(mix.parts, vec![(Look::Randomised, 0.75), (Look::Kids, 0.25)]);
        assert_eq!("kids".parse::<LookMix>().unwrap(), LookMix::single(Look::Kids));
        assert_eq!(mix.to_string().parse::<LookMix>().unwrap(), mix);
        for bad in ["", "kids:0", "kids:-1", "kids:x", "kids,kids", "nonsense"] {
            assert!(bad.parse::<LookMix>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn each_look_gets_its_share_of_objects() {
        let mix: LookMix = "randomised:0.8,kids:0.2".parse().unwrap();
        let n = 20_000;
        let kids = (0..n).filter(|&k| mix.pick(7, k) == 1).count() as f64 / n as f64;
        // Binomial sigma for 20,000 draws at p = 0.2 is 0.0028.
        assert!((kids - 0.2).abs() < 0.012, "kids share {kids}");
        // Reproducible per seed and index, and different seeds give different choices.
        assert!((0..100).all(|k| mix.pick(7, k) == mix.pick(7, k)));
        assert!((0..100).any(|k| mix.pick(7, k) != mix.pick(8, k)));
    }
}
