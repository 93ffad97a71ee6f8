"""A third external test set ("recipe C"), written on 2026-12-07 after recipe B was used to decide
not to ship stage 20 (so B is no longer blind). Use it only to measure a model that has been chosen
by other means; the first decision it informs ends its blindness too, so say so when that happens.

Its choices differ from our simulator's, from recipe A's and from recipe B's:

- lens mass: SIE with external shear, theta_E 0.8 - 3.2" log-uniform; in 30 % a satellite
  (an SIS of theta_E 0.1 - 0.3" at 1 - 3", with its own light) perturbs the images;
- lens light: a Sersic bulge (n 3 - 6) and, in half, an exponential disc that is bluer than the
  bulge (a colour gradient);
- sources: a smooth Sersic body (n 0.5 - 2, 0.08 - 0.5") with 0 - 4 bluer star-forming clumps,
  S/N in g 12 - 150 log-uniform, magnified at least 2.5 times;
- PSF: a double Gaussian per band (a core, and a halo 2 - 3 times wider holding 10 - 30 % of the
  light), each band's centre off by up to 0.05";
- noise: counts with a zero point of 30 (DES-like units), Poisson noise of the objects (gain
  1 - 4), sky noise correlated by a resampling kernel, and in 30 % a sky pedestal that was not
  subtracted (0.5 - 5 sky sigmas, with a gentle gradient);
- negatives: plain ellipticals (25 %), ellipticals with 1 - 3 satellites (25 %), ring galaxies of
  a smooth annulus and knots (20 %), mergers with a curved tidal tail (20 %), edge-on discs
  (10 %);
- a tenth of cutouts have a bright star in the field; 5 % lose a strip to NaN (a tile edge).

Output: the Bologna layout (Band1..Band4 = r, i, g, u) and classifications.csv (ID, is_lens,
kind, theta_e_arcsec, arc_snr_g, seeing_arcsec).

Usage: python external_set_c.py OUT_DIR [N] [SEED]   (needs lenstronomy, astropy, scipy)
"""
import sys

import numpy as np
from lenstronomy.LightModel.light_model import LightModel
from scipy.ndimage import convolve
import lenstronomy.Util.simulation_util as sim_util

from lenstronomy_external_set import BANDS, PIXEL, SIZE, amp_for_snr, arguments, ellipse, write_band, write_truth
from external_set_b import colour_ratios, render, times

ZERO_POINT = 30.0
# 5-sigma depths in a 2" aperture and median seeing, KiDS-like, drawn around below.
DEPTH = {"u": 24.3, "g": 25.2, "r": 25.0, "i": 23.8}
SEEING = {"u": 1.0, "g": 0.85, "r": 0.7, "i": 0.8}


def counts(mag):
    return 10 ** (-0.4 * (mag - ZERO_POINT))


def sky_sigma(band, offset):
    return counts(DEPTH[band] + offset) / 5.0 / np.sqrt(np.pi * (1.0 / PIXEL) ** 2)


def double_gaussian(fwhm, halo_ratio, halo_share, offset, size=25):
    """A core Gaussian of `fwhm` (arcsec) plus a halo `halo_ratio` times wider holding
    `halo_share` of the light, centred `offset` (arcsec) off the pixel centre."""
    y, x = np.mgrid[:size, :size] - size // 2
    x = x - offset[0] / PIXEL
    y = y - offset[1] / PIXEL
    s = fwhm / 2.3548 / PIXEL
    core = np.exp(-(x**2 + y**2) / (2 * s**2))
    halo = np.exp(-(x**2 + y**2) / (2 * (halo_ratio * s) ** 2))
    k = (1 - halo_share) * core / core.sum() + halo_share * halo / halo.sum()
    return k / k.sum()


def normalised(parts, flux):
    """`parts` scaled to a total flux `flux`."""
    totals = LightModel([p[0] for p in parts]).total_flux([p[1] for p in parts])
    return times(parts, flux / max(sum(totals), 1e-30))


def bulge_and_disc(rng, x, y, r_mag, size):
    """A red bulge and, in half, a bluer exponential disc: parts per band (a colour gradient)."""
    e1, e2 = ellipse(rng, 0.55, 1.0)
    bulge = normalised([("SERSIC_ELLIPSE", {"amp": 1.0, "R_sersic": size, "n_sersic": rng.uniform(3.0, 6.0), "e1": e1, "e2": e2, "center_x": x, "center_y": y})], counts(r_mag))
    per_band = {b: [] for b in BANDS}
    red = colour_ratios(rng, rng.uniform(0.65, 0.95))
    share = rng.uniform(0.55, 0.85) if rng.uniform() < 0.5 else 1.0
    for b in BANDS:
        per_band[b] += times(bulge, share * red[b])
    if share < 1.0:
        de1, de2 = ellipse(rng, 0.3, 0.9)
        disc = normalised([("SERSIC_ELLIPSE", {"amp": 1.0, "R_sersic": size * rng.uniform(2.0, 3.5), "n_sersic": 1.0, "e1": de1, "e2": de2, "center_x": x, "center_y": y})], counts(r_mag))
        bluer = colour_ratios(rng, rng.uniform(0.35, 0.6))
        for b in BANDS:
            per_band[b] += times(disc, (1 - share) * bluer[b])
    return per_band


def gaussians_along(rng, points, sigma, amp):
    return [("GAUSSIAN", {"amp": amp * rng.uniform(0.6, 1.0), "sigma": sigma, "center_x": px, "center_y": py}) for px, py in points]


def ellipse_points(cx, cy, radius, q, tilt, count, start=0.0, span=2 * np.pi):
    t = start + span * np.arange(count) / count
    u, v = radius * np.cos(t), radius * q * np.sin(t)
    return list(zip(cx + u * np.cos(tilt) - v * np.sin(tilt), cy + u * np.sin(tilt) + v * np.cos(tilt)))


def main():
    out_dir, n, rng = arguments(2718)
    kwargs_data = sim_util.data_configure_simple(SIZE, PIXEL, 1.0, 1.0)
    resample = np.outer([0.15, 0.7, 0.15], [0.15, 0.7, 0.15])
    resample_gain = np.sqrt((resample**2).sum())
    rows = []
    kinds = ["elliptical", "satellites", "ring_galaxy", "merger", "edge_on_disc"]
    for k in range(n):
        ident = 700000 + k
        is_lens = rng.uniform() < 0.5
        kind = "lens" if is_lens else rng.choice(kinds, p=[0.25, 0.25, 0.2, 0.2, 0.1])
        seeing_scale = rng.uniform(0.8, 1.45)
        fwhm = {b: SEEING[b] * seeing_scale * rng.uniform(0.93, 1.07) for b in BANDS}
        halo = (rng.uniform(2.0, 3.0), rng.uniform(0.1, 0.3))
        kernels = {b: double_gaussian(fwhm[b], *halo, rng.uniform(-0.05, 0.05, 2)) for b in BANDS}
        sigma = {b: sky_sigma(b, rng.uniform(-0.4, 0.4)) for b in BANDS}
        gain = rng.uniform(1.0, 4.0)
        cx, cy = rng.normal(0, 0.12, 2)
        theta_e = float(np.exp(rng.uniform(np.log(0.8), np.log(3.2))))
        host_mag = 19.4 - 2.0 * np.log10(theta_e / 1.4) + rng.normal(0, 0.5)
        host_size = float(np.clip(0.5 * theta_e ** 0.7 * np.exp(rng.normal(0, 0.35)), 0.2, 2.5))
        per_band = {b: [] for b in BANDS}
        lensed = {b: [] for b in BANDS}
        lens, blue = None, []
        if kind != "edge_on_disc":
            scale = 0.4 if kind == "ring_galaxy" else 1.0
            host = bulge_and_disc(rng, cx, cy, host_mag + (0.7 if kind == "ring_galaxy" else 0.0), host_size * scale)
            for b in BANDS:
                per_band[b] += host[b]
        satellites = 0
        if kind == "satellites" or (kind == "lens" and rng.uniform() < 0.3):
            satellites = int(rng.integers(1, 4)) if kind == "satellites" else 1
        sat_lenses = []
        for _ in range(satellites):
            d, a = rng.uniform(1.0, 3.0), rng.uniform(0, 2 * np.pi)
            sx, sy = cx + d * np.cos(a), cy + d * np.sin(a)
            sat = normalised([("SERSIC", {"amp": 1.0, "R_sersic": rng.uniform(0.15, 0.4), "n_sersic": rng.uniform(1.0, 4.0), "center_x": sx, "center_y": sy})], counts(host_mag + rng.uniform(1.5, 3.5)))
            c = colour_ratios(rng, rng.uniform(0.3, 0.9))
            for b in BANDS:
                per_band[b] += times(sat, c[b])
            sat_lenses.append({"theta_E": rng.uniform(0.1, 0.3), "center_x": sx, "center_y": sy})
        if kind == "lens":
            e1, e2 = ellipse(rng, 0.55, 1.0)
            g1, g2 = rng.normal(0, 0.05, 2)
            models = ["SIE", "SHEAR"] + ["SIS"] * len(sat_lenses)
            lens = (models, [{"theta_E": theta_e, "e1": e1, "e2": e2, "center_x": cx, "center_y": cy}, {"gamma1": g1, "gamma2": g2, "ra_0": 0, "dec_0": 0}] + sat_lenses)
            for _ in range(25):
                radius = theta_e * np.sqrt(rng.uniform(0.0, 0.15))
                a = rng.uniform(0, 2 * np.pi)
                sx, sy = cx + radius * np.cos(a), cy + radius * np.sin(a)
                se1, se2 = ellipse(rng, 0.3, 1.0)
                body = [("SERSIC_ELLIPSE", {"amp": 1.0, "R_sersic": rng.uniform(0.08, 0.5), "n_sersic": rng.uniform(0.5, 2.0), "e1": se1, "e2": se2, "center_x": sx, "center_y": sy})]
                knots = [("GAUSSIAN", {"amp": rng.uniform(0.1, 0.4), "sigma": rng.uniform(0.03, 0.1), "center_x": sx + dx, "center_y": sy + dy}) for dx, dy in rng.normal(0, 0.2, (int(rng.integers(0, 5)), 2))]
                blue = normalised(body, 1.0) + knots
                if render(kwargs_data, kernels["g"], blue, lens).sum() >= 2.5 * render(kwargs_data, kernels["g"], blue).sum():
                    break
        elif kind == "ring_galaxy":
            radius, q, tilt = rng.uniform(0.9, 3.5), rng.uniform(0.45, 1.0), rng.uniform(0, np.pi)
            width = rng.uniform(0.12, 0.45)
            count = int(2 * np.pi * radius / (0.7 * width)) + 8
            blue = gaussians_along(rng, ellipse_points(cx, cy, radius, q, tilt, count), width, 1.0)
            knots = ellipse_points(cx, cy, radius, q, tilt, int(rng.integers(3, 10)), rng.uniform(0, 2 * np.pi))
            blue += [("GAUSSIAN", {"amp": rng.uniform(1.0, 4.0), "sigma": rng.uniform(0.06, 0.15), "center_x": x, "center_y": y}) for x, y in knots]
        elif kind == "merger":
            d, a = rng.uniform(0.8, 2.2), rng.uniform(0, 2 * np.pi)
            other = bulge_and_disc(rng, cx + d * np.cos(a), cy + d * np.sin(a), host_mag + rng.uniform(0.0, 1.2), host_size * rng.uniform(0.4, 0.9))
            for b in BANDS:
                per_band[b] += other[b]
            tail_r = rng.uniform(1.5, 3.5)
            span = rng.uniform(0.6, 1.8)
            pts = ellipse_points(cx, cy, tail_r, rng.uniform(0.6, 1.0), rng.uniform(0, np.pi), int(12 * span), rng.uniform(0, 2 * np.pi), span)
            blue = gaussians_along(rng, pts, rng.uniform(0.15, 0.35), 1.0)
        elif kind == "edge_on_disc":
            angle = rng.uniform(0, np.pi)
            q = rng.uniform(0.1, 0.25)
            e = (1 - q) / (1 + q)
            e1, e2 = e * np.cos(2 * angle), e * np.sin(2 * angle)
            disc = normalised([("SERSIC_ELLIPSE", {"amp": 1.0, "R_sersic": rng.uniform(1.0, 3.0), "n_sersic": 1.0, "e1": e1, "e2": e2, "center_x": cx, "center_y": cy})], counts(rng.uniform(17.5, 19.5)))
            c = colour_ratios(rng, rng.uniform(0.4, 0.8))
            for b in BANDS:
                per_band[b] += times(disc, c[b])
        snr_g = None
        if blue:
            c = colour_ratios(rng, rng.uniform(-0.15, 0.65))
            unit_g = render(kwargs_data, kernels["g"], times(blue, c["g"]), lens)
            snr_g = float(np.exp(rng.uniform(np.log(12), np.log(150))))
            factor = amp_for_snr(unit_g, sigma["g"], snr_g)
            for b in BANDS:
                (lensed if lens else per_band)[b] += times(blue, factor * c[b])
        star = None
        if rng.uniform() < 0.1:
            star = (rng.uniform(-9, 9, 2), counts(rng.uniform(15.0, 18.5)), colour_ratios(rng, rng.uniform(0.3, 1.3)))
        pedestal = rng.uniform(0.5, 5.0) if rng.uniform() < 0.3 else 0.0
        gradient = rng.normal(0, 0.01, 2) * pedestal
        edge = int(rng.integers(5, 25)) if rng.uniform() < 0.05 else 0
        yy, xx = np.mgrid[:SIZE, :SIZE] - SIZE // 2
        for b in BANDS:
            image = render(kwargs_data, kernels[b], per_band[b])
            if lensed[b]:
                image = image + render(kwargs_data, kernels[b], lensed[b], lens)
            if star is not None:
                image = image + render(kwargs_data, kernels[b], [("GAUSSIAN", {"amp": star[1] * star[2][b], "sigma": 0.02, "center_x": star[0][0], "center_y": star[0][1]})])
            electrons = np.clip(image, 0, None) * gain
            shot = (rng.poisson(electrons) - electrons) / gain
            sky = convolve(rng.normal(0, sigma[b] / resample_gain, image.shape), resample, mode="wrap")
            noisy = image + shot + sky + sigma[b] * (pedestal + gradient[0] * xx + gradient[1] * yy)
            if edge:
                noisy[:, :edge] = np.nan
            write_band(out_dir, ident, b, noisy, {"BUNIT": "counts", "MAGZERO": ZERO_POINT, "ORIGIN": "external set, recipe C"})
        rows.append([ident, int(is_lens), kind, f"{theta_e:.3f}" if is_lens else "", f"{snr_g:.1f}" if snr_g else "", f"{fwhm['r']:.3f}"])
        if (k + 1) % 100 == 0:
            print(f"{k + 1}/{n}", file=sys.stderr, flush=True)
    write_truth(out_dir, rows)


if __name__ == "__main__":
    main()
