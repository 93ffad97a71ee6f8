//! Non-lenses, above all those that look like lenses: ellipticals with companions (tangential
//! ones like arcs), spirals, ring galaxies of several recipes, polar rings, edge-on discs, shells
//! and streams, mergers, groups and star fields. What a finder mistakes for a lens is what it
//! must see most of in training.

use super::light::{Grid, Sersic};
use super::ranges::{Ranges, RingRecipe};
use super::scene::{
    add_field, add_host_light, angle_diff, blob_image, blue_colours, feature_colours, fluxes, lens_galaxy, log_uniform,
    mags, normalised, pick, red_colours, red_galaxy, ring_image, sersic_image, shaped_ring, small_galaxy_reach,
    spiral_image, tail_image, Arms, Kind, Rng64, Scene, SimConfig,
};
use rand::RngExt;
use std::f64::consts::PI;

/// What [`draw`] reports about the non-lens it drew, for the truth table.
#[derive(Debug, Default)]
pub(super) struct Drawn {
    pub ring_recipe: Option<RingRecipe>,
    /// Total r magnitude of the central red galaxy, for the kinds built around one.
    pub host_mag_r: Option<f64>,
    /// Effective radius of that galaxy's main component, arcsec.
    pub host_r_e_arcsec: Option<f64>,
    /// Distance from the galaxy of what could pass for an arc (the first companion, a ring's
    /// radius), arcsec: each is drawn as an Einstein radius is, so the first one's distance shows
    /// that distribution.
    pub feature_radius_arcsec: Option<f64>,
    /// Companion galaxies put near the central galaxy.
    pub neighbours: usize,
}

/// Distance from its galaxy of a look-alike's companion or ring in the wide look: drawn as an
/// Einstein radius is when the ranges say so ([`Ranges::feature_radius_arcsec`]), else from
/// `fallback`.
fn feature_radius(rng: &mut Rng64, ranges: &Ranges, fallback: std::ops::Range<f64>) -> f64 {
    match ranges.feature_radius_arcsec {
        Some(span) => log_uniform(rng, span),
        None => rng.random_range(fallback),
    }
}

/// The central red galaxy of a look-alike, recorded in `drawn`: drawn as a lens galaxy of
/// Einstein radius `size_hint` is (size and brightness as the ranges draw a lens galaxy's,
/// envelope and disc) when the ranges say so, else one Sersic of the given size hint. Returns
/// its profile and its main component's magnitudes (for the colours of what is added around it).
fn host_galaxy(
    rng: &mut Rng64,
    cfg: &SimConfig,
    grid: &Grid,
    scene: &mut Scene,
    size_hint: f64,
    drawn: &mut Drawn,
) -> (Sersic, [f64; 4]) {
    let (light, m, total_r) = if cfg.ranges.hosts_as_lenses {
        let (light, m) = lens_galaxy(rng, &cfg.ranges, size_hint);
        let total_r = add_host_light(rng, cfg, grid, scene, &light, m);
        (light, m, total_r)
    } else {
        let (light, m) = red_galaxy(rng, &cfg.ranges, size_hint);
        scene.add(&sersic_image(grid, &light, f64::INFINITY), fluxes(cfg, m));
        (light, m, m[2])
    };
    drawn.host_mag_r = Some(total_r);
    drawn.host_r_e_arcsec = Some(light.r_e);
    (light, m)
}

/// A small galaxy `d` arcsec from `centre` in direction `phi`: its profile (a tangential one lies
/// across the radius, like an arc) and magnitudes. Look-alikes' companions and lenses' neighbours
/// both come from here, so that the two populations cannot drift apart.
fn companion(
    rng: &mut Rng64,
    ranges: &Ranges,
    centre: (f64, f64),
    d: f64,
    phi: f64,
    tangential: bool,
) -> (Sersic, [f64; 4]) {
    let wide = ranges.wide_lookalikes;
    let s = Sersic {
        center: (centre.0 + d * phi.cos(), centre.1 + d * phi.sin()),
        r_e: if tangential { rng.random_range(0.25..0.7) } else { rng.random_range(0.12..0.45) },
        n: rng.random_range(0.5..1.5),
        q: if tangential { rng.random_range(0.12..0.35) } else { rng.random_range(0.4..1.0) },
        // Tangential: the major axis perpendicular to the radius, like an arc.
        angle_rad: if tangential { phi + PI / 2.0 + rng.random_range(-0.15..0.15) } else { rng.random_range(0.0..PI) },
    };
    let (u_r, g_r, r_i) = if wide && rng.random_bool(0.25) { red_colours(rng) } else { feature_colours(rng, ranges) };
    // As bright as arcs get in the wide look (version 5): a bright blue companion is no lens.
    (s, mags(rng.random_range(if wide { 19.5 } else { 21.0 }..23.5), u_r, g_r, r_i))
}

/// Galaxies beside a lens (lenses live in groups): 1 or 2, drawn as the companions of the
/// look-alike "elliptical with companions" are ([`companion`], at distances from
/// [`feature_radius`]), so that a galaxy near the lens galaxy says nothing of whether it is a
/// lens; only arcs do. Added as the galaxy's own light (not as lensed light). Returns how many.
pub(super) fn lens_neighbours(
    rng: &mut Rng64,
    cfg: &SimConfig,
    grid: &Grid,
    scene: &mut Scene,
    centre: (f64, f64),
) -> usize {
    let n = rng.random_range(1..3);
    for _ in 0..n {
        let d = feature_radius(rng, &cfg.ranges, 1.0..4.5);
        let phi = rng.random_range(0.0..2.0 * PI);
        let (s, m) = companion(rng, &cfg.ranges, centre, d, phi, false);
        scene.add(&sersic_image(grid, &s, small_galaxy_reach(&s)), fluxes(cfg, m));
    }
    n
}

/// Draws a non-lens of `kind` into `scene` (with the field every cutout has).
pub(super) fn draw(rng: &mut Rng64, cfg: &SimConfig, grid: &Grid, kind: Kind, scene: &mut Scene) -> Drawn {
    let ranges = &cfg.ranges;
    let wide = ranges.wide_lookalikes;
    // A look-alike's galaxy that stands in for a lens galaxy is drawn for an Einstein radius from
    // the lenses' range (which sets its size unless the ranges draw sizes on their own).
    let size_hint =
        if ranges.hosts_as_lenses { log_uniform(rng, ranges.theta_e_arcsec) } else { rng.random_range(0.8..2.5) };
    let mut drawn = Drawn::default();
    match kind {
        Kind::Elliptical | Kind::EllipticalCompanions | Kind::TangentialCompanion => {
            let (light, _) = host_galaxy(rng, cfg, grid, scene, size_hint, &mut drawn);
            let n = match kind {
                Kind::Elliptical => 0,
                Kind::TangentialCompanion if wide => rng.random_range(1..4),
                Kind::TangentialCompanion => 1,
                _ => rng.random_range(1..if wide { 5 } else { 4 }),
            };
            drawn.neighbours = n;
            for _ in 0..n {
                let d = if wide { feature_radius(rng, ranges, 1.0..4.5) } else { rng.random_range(1.0..3.5) };
                drawn.feature_radius_arcsec = drawn.feature_radius_arcsec.or(Some(d));
                let phi = rng.random_range(0.0..2.0 * PI);
                let tangential = kind == Kind::TangentialCompanion;
                let (s, m) = companion(rng, ranges, light.center, d, phi, tangential);
                if tangential && wide && rng.random_bool(0.5) {
                    // A curved companion: a short arc of blobs bent around the galaxy.
                    let span = rng.random_range(0.3..0.9);
                    let img = tail_image(grid, light.center, d, phi - span / 2.0, span, rng.random_range(0.1..0.25));
                    scene.add_feature(&img, fluxes(cfg, m));
                } else {
                    scene.add_feature(&sersic_image(grid, &s, small_galaxy_reach(&s)), fluxes(cfg, m));
                }
            }
        }
        Kind::Spiral => {
            let q = rng.random_range(if wide { 0.25 } else { 0.35 }..1.0);
            let angle = rng.random_range(0.0..PI);
            let r_e = rng.random_range(1.0..if wide { 3.5 } else { 2.6 });
            let center = (rng.random_range(-0.1..0.1), rng.random_range(-0.1..0.1));
            let arms = Arms {
                count: rng.random_range(2..if wide { 5 } else { 4 }),
                pitch_rad: rng.random_range(if wide { 0.15 } else { 0.25 }..0.5),
                phase_rad: rng.random_range(0.0..2.0 * PI),
            };
            let disk = spiral_image(grid, &Sersic { center, r_e, n: 1.0, q, angle_rad: angle }, &arms);
            let r_mag = rng.random_range(17.5..20.0);
            let disk_m =
                mags(r_mag, rng.random_range(1.0..1.8), rng.random_range(0.35..0.7), rng.random_range(0.15..0.4));
            scene.add(&disk, fluxes(cfg, disk_m));
            let bulge = Sersic { center, r_e: 0.25 * r_e, n: 3.0, q: (q + 0.3).min(1.0), angle_rad: angle };
            let (u_r, g_r, r_i) = red_colours(rng);
            scene.add(
                &sersic_image(grid, &bulge, f64::INFINITY),
                fluxes(cfg, mags(r_mag + rng.random_range(0.5..2.0), u_r, g_r, r_i)),
            );
            for _ in 0..rng.random_range(3..if wide { 14 } else { 9 }) {
                let (d, phi) = (rng.random_range(0.5..2.0) * r_e, rng.random_range(0.0..2.0 * PI));
                let (s, c) = angle.sin_cos();
                let (u, v) = (d * phi.cos() / q.sqrt(), d * phi.sin() * q.sqrt());
                let pos = (center.0 + c * u - s * v, center.1 + s * u + c * v);
                let (u_r, g_r, r_i) = feature_colours(rng, ranges);
                let m = mags(r_mag + rng.random_range(3.0..5.0), u_r, g_r, r_i);
                scene.add_feature(&blob_image(grid, pos, rng.random_range(0.08..0.2)), fluxes(cfg, m));
            }
        }
        Kind::RingGalaxy => {
            let r = pick(rng, &ranges.ring_recipes);
            drawn.ring_recipe = Some(r);
            drawn.feature_radius_arcsec = Some(ring_galaxy(rng, cfg, grid, r, scene, size_hint, &mut drawn));
        }
        Kind::PolarRing => polar_ring(rng, cfg, grid, scene),
        Kind::EdgeOnDisc => edge_on_disc(rng, cfg, grid, scene),
        Kind::ShellsStreams => shells_and_streams(rng, cfg, grid, scene, size_hint, &mut drawn),
        Kind::Group => {
            for k in 0..rng.random_range(2..6) {
                let (mut g, m) = {
                    let hint = rng.random_range(0.5..1.5);
                    red_galaxy(rng, ranges, hint)
                };
                if k > 0 {
                    let (d, phi) = (rng.random_range(1.5..6.0), rng.random_range(0.0..2.0 * PI));
                    g.center = (g.center.0 + d * phi.cos(), g.center.1 + d * phi.sin());
                }
                let fainter = if k == 0 { 0.0 } else { rng.random_range(0.0..2.0) };
                let image = sersic_image(grid, &g, f64::INFINITY);
                if k == 0 {
                    scene.add(&image, fluxes(cfg, m));
                } else {
                    scene.add_feature(&image, fluxes(cfg, m.map(|x| x + fainter)));
                }
            }
        }
        Kind::Merger => {
            let (a, ma) = host_galaxy(rng, cfg, grid, scene, size_hint, &mut drawn);
            let (d, phi) = (rng.random_range(0.8..2.5), rng.random_range(0.0..2.0 * PI));
            let mut b = a;
            b.center = (a.center.0 + d * phi.cos(), a.center.1 + d * phi.sin());
            b.r_e = (a.r_e * rng.random_range(0.4..1.0)).max(0.3);
            b.angle_rad = rng.random_range(0.0..PI);
            let colours = if rng.random_bool(0.5) { red_colours(rng) } else { feature_colours(rng, ranges) };
            let mb = mags(ma[2] + rng.random_range(0.0..1.5), colours.0, colours.1, colours.2);
            scene.add_feature(&sersic_image(grid, &b, f64::INFINITY), fluxes(cfg, mb));
            let tail = tail_image(
                grid,
                a.center,
                rng.random_range(1.5..3.5),
                phi + rng.random_range(0.5..2.5),
                rng.random_range(0.8..2.0),
                rng.random_range(0.15..0.35),
            );
            let (u_r, g_r, r_i) = feature_colours(rng, ranges);
            scene.add_feature(&tail, fluxes(cfg, mags(ma[2] + rng.random_range(2.0..3.5), u_r + 0.5, g_r + 0.3, r_i)));
        }
        Kind::StarField => {
            let stars = rng.random_range(2..6);
            add_field(rng, cfg, grid, scene, stars);
            return drawn;
        }
        Kind::LensArc | Kind::LensRing | Kind::LensDouble | Kind::LensQuad => {}
    }
    add_field(rng, cfg, grid, scene, 0);
    drawn
}

/// Colours of star-forming rings: blue to yellowish.
fn ring_colours(rng: &mut Rng64, ranges: &Ranges, wide: bool) -> (f64, f64, f64) {
    if ranges.feature_g_r.is_some() {
        feature_colours(rng, ranges)
    } else if wide && rng.random_bool(0.3) {
        (rng.random_range(1.0..2.0), rng.random_range(0.4..0.9), rng.random_range(0.1..0.4))
    } else {
        blue_colours(rng)
    }
}

/// A ring galaxy: a red host with a ring drawn by `recipe`, the host recorded in `drawn`. The
/// host is drawn as a lens galaxy is (for `size_hint`) when the ranges say so
/// ([`Ranges::ring_hosts_as_lenses`]), else as a small core. Returns the ring's radius, arcsec.
fn ring_galaxy(
    rng: &mut Rng64,
    cfg: &SimConfig,
    grid: &Grid,
    recipe: RingRecipe,
    scene: &mut Scene,
    size_hint: f64,
    drawn: &mut Drawn,
) -> f64 {
    let wide = cfg.ranges.wide_lookalikes;
    let (core, core_m) = if cfg.ranges.ring_hosts_as_lenses {
        host_galaxy(rng, cfg, grid, scene, size_hint, drawn)
    } else {
        let core_size = rng.random_range(0.4..1.0);
        let (core, m) = red_galaxy(rng, &cfg.ranges, core_size);
        let core_m = m.map(|x| x + rng.random_range(0.0..1.0));
        scene.add(&sersic_image(grid, &core, f64::INFINITY), fluxes(cfg, core_m));
        drawn.host_mag_r = Some(core_m[2]);
        drawn.host_r_e_arcsec = Some(core.r_e);
        (core, core_m)
    };
    let radius = if wide { feature_radius(rng, &cfg.ranges, 0.8..5.0) } else { rng.random_range(1.0..3.0) };
    let width = if wide { rng.random_range(0.08..0.6) } else { rng.random_range(0.12..0.35) };
    let q = rng.random_range(if wide { 0.4 } else { 0.6 }..1.0);
    let angle = rng.random_range(0.0..PI);
    let (u_r, g_r, r_i) = ring_colours(rng, &cfg.ranges, wide);
    let ring_m = mags(rng.random_range(19.0..if wide { 22.5 } else { 21.5 }), u_r, g_r, r_i);
    let image = match recipe {
        RingRecipe::Smooth => {
            let knots: Vec<(f64, f64)> =
                (0..rng.random_range(0..5)).map(|_| (rng.random_range(-PI..PI), rng.random_range(0.5..2.0))).collect();
            ring_image(grid, core.center, radius, width, q, angle, &knots)
        }
        RingRecipe::Partial => {
            let span = rng.random_range(0.5 * PI..1.7 * PI);
            let from = rng.random_range(-PI..PI);
            shaped_ring(grid, core.center, radius, width, q, angle, |phi, _| {
                let d = angle_diff(phi, from + span / 2.0).abs();
                if d < span / 2.0 {
                    1.0
                } else {
                    (-((d - span / 2.0) / 0.2).powi(2)).exp()
                }
            })
        }
        RingRecipe::Lopsided => {
            let (strong, contrast) = (rng.random_range(-PI..PI), rng.random_range(0.4..0.9));
            let shift = (rng.random_range(-0.4..0.4) * radius, rng.random_range(-0.4..0.4) * radius);
            let centre = (core.center.0 + shift.0, core.center.1 + shift.1);
            shaped_ring(grid, centre, radius, width, q, angle, |phi, _| 1.0 + contrast * (phi - strong).cos())
        }
        RingRecipe::Knotty => {
            let knots: Vec<(f64, f64)> =
                (0..rng.random_range(5..14)).map(|_| (rng.random_range(-PI..PI), rng.random_range(2.0..6.0))).collect();
            ring_image(grid, core.center, radius, width.min(0.25), q, angle, &knots)
        }
        RingRecipe::Collisional => collisional_ring(rng, grid, core.center, radius, width, q, angle),
    };
    scene.add_feature(&image, fluxes(cfg, ring_m));
    if recipe == RingRecipe::Collisional && rng.random_bool(0.5) {
        // The intruder that made the ring: a small companion a few ring radii away.
        let (d, phi) = (radius * rng.random_range(1.3..2.5), rng.random_range(0.0..2.0 * PI));
        let s = Sersic {
            center: (core.center.0 + d * phi.cos(), core.center.1 + d * phi.sin()),
            r_e: rng.random_range(0.2..0.5),
            n: rng.random_range(1.0..4.0),
            q: rng.random_range(0.5..1.0),
            angle_rad: rng.random_range(0.0..PI),
        };
        let (u_r, g_r, r_i) = if rng.random_bool(0.5) { red_colours(rng) } else { feature_colours(rng, &cfg.ranges) };
        scene.add_feature(
            &sersic_image(grid, &s, small_galaxy_reach(&s)),
            fluxes(cfg, mags(core_m[2] + 1.0, u_r, g_r, r_i)),
        );
    }
    radius
}

/// A collisional ring: beads of light on a ring whose centre is well away from the nucleus,
/// often with a faint inner ring.
fn collisional_ring(
    rng: &mut Rng64,
    grid: &Grid,
    nucleus: (f64, f64),
    radius: f64,
    width: f64,
    q: f64,
    angle: f64,
) -> Vec<f64> {
    let off = radius * rng.random_range(0.3..0.6);
    let dir = rng.random_range(0.0..2.0 * PI);
    let centre = (nucleus.0 + off * dir.cos(), nucleus.1 + off * dir.sin());
    let beads = rng.random_range(6..16);
    let (s, c) = angle.sin_cos();
    let mut total = vec![0.0; grid.size * grid.size];
    // The leading edge (away from the nucleus) is the brightest, as in the Cartwheel.
    for k in 0..beads {
        let phi = 2.0 * PI * k as f64 / beads as f64 + rng.random_range(-0.15..0.15);
        let (u, v) = (radius * phi.cos() / q.sqrt(), radius * phi.sin() * q.sqrt());
        let pos = (centre.0 + c * u - s * v, centre.1 + s * u + c * v);
        let lead = 1.0 + 0.8 * (phi + angle - dir).cos();
        let w = lead * rng.random_range(0.4..1.0);
        let img = blob_image(grid, pos, (width * rng.random_range(0.4..0.9)).max(0.08));
        total.iter_mut().zip(&img).for_each(|(t, v)| *t += w * v);
    }
    let band = shaped_ring(grid, centre, radius, width, q, angle, |phi, _| 1.0 + 0.8 * (phi - dir + angle).cos());
    total.iter_mut().zip(&band).for_each(|(t, v)| *t += 0.5 * beads as f64 * 0.3 * v);
    if rng.random_bool(0.5) {
        let inner = shaped_ring(grid, nucleus, radius * rng.random_range(0.25..0.4), width, q, angle, |_, _| 1.0);
        total.iter_mut().zip(&inner).for_each(|(t, v)| *t += 0.15 * beads as f64 * v);
    }
    normalised(total)
}

/// A polar-ring galaxy: a flattened host with a thin, bluer ring seen nearly edge-on across it.
fn polar_ring(rng: &mut Rng64, cfg: &SimConfig, grid: &Grid, scene: &mut Scene) {
    let (mut host, m) = {
        let hint = rng.random_range(0.6..1.5);
        red_galaxy(rng, &cfg.ranges, hint)
    };
    host.q = rng.random_range(0.3..0.6);
    scene.add(&sersic_image(grid, &host, f64::INFINITY), fluxes(cfg, m));
    let radius = host.r_e * rng.random_range(1.5..3.5);
    let ring = ring_image(
        grid,
        host.center,
        radius.min(5.0),
        rng.random_range(0.1..0.3),
        rng.random_range(0.08..0.3),
        host.angle_rad + PI / 2.0 + rng.random_range(-0.3..0.3),
        &[],
    );
    let (u_r, g_r, r_i) = ring_colours(rng, &cfg.ranges, true);
    scene.add_feature(&ring, fluxes(cfg, mags(m[2] + rng.random_range(0.5..2.0), u_r, g_r, r_i)));
}

/// An edge-on disc galaxy: a thin exponential disc with a bulge, and often a dust lane that
/// splits it into two ridges.
fn edge_on_disc(rng: &mut Rng64, cfg: &SimConfig, grid: &Grid, scene: &mut Scene) {
    let angle = rng.random_range(0.0..PI);
    let centre = (rng.random_range(-0.3..0.3), rng.random_range(-0.3..0.3));
    let disc = Sersic {
        center: centre,
        r_e: rng.random_range(1.2..4.0),
        n: 1.0,
        q: rng.random_range(0.08..0.25),
        angle_rad: angle,
    };
    let r_mag = rng.random_range(17.5..20.5);
    let dm = mags(r_mag, rng.random_range(1.3..2.2), rng.random_range(0.5..0.9), rng.random_range(0.25..0.45));
    let mut image = sersic_image(grid, &disc, f64::INFINITY);
    if rng.random_bool(0.6) {
        // The dust lane: light along the mid-plane dimmed.
        let (s, c) = angle.sin_cos();
        let depth = rng.random_range(0.4..0.9);
        let lane = rng.random_range(0.08..0.2);
        for row in 0..grid.size {
            for col in 0..grid.size {
                let (x, y) = grid.sky_from_pixel(col as f64, row as f64);
                let v = -s * (x - centre.0) + c * (y - centre.1);
                image[row * grid.size + col] *= 1.0 - depth * (-(v / lane).powi(2)).exp();
            }
        }
    }
    scene.add(&image, fluxes(cfg, dm));
    let bulge = Sersic { center: centre, r_e: disc.r_e * 0.2, n: rng.random_range(2.0..4.0), q: 0.7, angle_rad: angle };
    let (u_r, g_r, r_i) = red_colours(rng);
    scene.add(
        &sersic_image(grid, &bulge, f64::INFINITY),
        fluxes(cfg, mags(r_mag + rng.random_range(0.5..2.0), u_r, g_r, r_i)),
    );
}

/// An elliptical with faint shells (concentric partial rings on alternating sides) or a long
/// tidal stream, the light of its own colour. The host is recorded in `drawn`.
fn shells_and_streams(
    rng: &mut Rng64,
    cfg: &SimConfig,
    grid: &Grid,
    scene: &mut Scene,
    size_hint: f64,
    drawn: &mut Drawn,
) {
    let hint = if cfg.ranges.hosts_as_lenses { size_hint } else { rng.random_range(1.0..2.5) };
    let (host, m) = host_galaxy(rng, cfg, grid, scene, hint, drawn);
    let fainter = rng.random_range(1.5..3.0);
    let axis = rng.random_range(0.0..2.0 * PI);
    let mut total = vec![0.0; grid.size * grid.size];
    if rng.random_bool(0.6) {
        for k in 0..rng.random_range(2..5) {
            let side = if k % 2 == 0 { axis } else { axis + PI };
            let r = host.r_e * (1.5 + 1.2 * k as f64) * rng.random_range(0.8..1.2);
            let span = rng.random_range(0.6..1.4);
            let img = shaped_ring(grid, host.center, r.min(8.0), rng.random_range(0.1..0.3), 1.0, 0.0, |phi, _| {
                let d = angle_diff(phi, side).abs();
                if d < span / 2.0 {
                    1.0 - 0.5 * d / span
                } else {
                    0.0
                }
            });
            total.iter_mut().zip(&img).for_each(|(t, v)| *t += v);
        }
    } else {
        let img = tail_image(
            grid,
            host.center,
            rng.random_range(2.0..6.0),
            axis,
            rng.random_range(1.0..2.5),
            rng.random_range(0.2..0.5),
        );
        total.iter_mut().zip(&img).for_each(|(t, v)| *t += v);
    }
    let colour_shift = rng.random_range(-0.2..0.1);
    let sm = [m[0] + fainter + colour_shift, m[1] + fainter + colour_shift, m[2] + fainter, m[3] + fainter];
    scene.add_feature(&normalised(total), fluxes(cfg, sm));
}
