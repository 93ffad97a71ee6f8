"""A second external test set ("recipe B"), written after stage 9's recipe was fixed and used
only to measure, never to train or to choose a model.

Recipe A (lenstronomy_external_set.py) showed that a set made by other code finds weaknesses our
own stress suite hides. Recipe B makes other choices again, so a model tuned, even unknowingly,
to A's look is caught:

- lens mass: an elliptical power law (slope 1.8 - 2.3) with shear, theta_E 1 - 3.5" log-uniform;
- lens light: a Hernquist profile (not a Sersic), brighter with larger theta_E with a wide scatter,
  with an exponential disc in a third of them;
- sources: 2 - 7 elliptical Gaussian clumps (no smooth Sersic body) within 0.35 theta_E of the
  lens, magnified at least 3 times, colours from blue to yellowish, S/N in g 15 - 150;
- PSF: Moffat with beta 2.5 - 4.5 as a pixel kernel, its own FWHM per band;
- noise: KiDS-like depths (+-0.3 mag per band) in nanomaggies (zero point 22.5), no shot noise;
- negatives: plain ellipticals (30 %), ellipticals with a blue elongated companion on a tangent
  (20 %), ring galaxies made of clumps around a small host (20 %), face-on spirals with blue
  clumps along two arms (15 %), pairs of red galaxies (15 %);
- a tenth of cutouts get cosmic-ray hits (a few single hot pixels).

Output: the Bologna layout (Band1..Band4 = r, i, g, u) and classifications.csv (ID, is_lens,
kind, theta_e_arcsec, arc_snr_g, seeing_arcsec), read by `lens-inspect evaluate --data DIR --by kind`.

Usage: python external_set_b.py OUT_DIR [N] [SEED]   (needs lenstronomy, astropy)
"""
import sys

import numpy as np
from lenstronomy.Data.imaging_data import ImageData
from lenstronomy.Data.psf import PSF
from lenstronomy.ImSim.image_model import ImageModel
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LightModel.light_model import LightModel
import lenstronomy.Util.simulation_util as sim_util

# Recipe A's geometry and helpers (same folder): cutout size and bands, the command line, the
# Bologna layout's files, the flux for a given S/N as the challenge defines it, an ellipse draw.
from lenstronomy_external_set import BANDS, PIXEL, SIZE, amp_for_snr, arguments, ellipse, write_band, write_truth

# 5-sigma depths in a 2" aperture (KiDS-like), and the median seeing per band.
DEPTH = {"u": 24.2, "g": 25.1, "r": 25.0, "i": 23.7}
SEEING = {"u": 1.0, "g": 0.85, "r": 0.7, "i": 0.8}
ZERO_POINT = 22.5


def nanomaggies(mag):
    return 10 ** (-0.4 * (mag - ZERO_POINT))


def sky_sigma(band, offset):
    aperture_pixels = np.pi * (1.0 / PIXEL) ** 2
    return nanomaggies(DEPTH[band] + offset) / 5.0 / np.sqrt(aperture_pixels)


def moffat_kernel(fwhm, beta, size=25):
    alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1)) / PIXEL
    y, x = np.mgrid[: size, : size] - size // 2
    k = (1 + (x**2 + y**2) / alpha**2) ** (-beta)
    return k / k.sum()


def colour_ratios(rng, g_r):
    """Flux ratios to r for a galaxy of colour g - r, u and i following it with scatter."""
    u_r = 0.4 + 1.9 * g_r + rng.normal(0, 0.2)
    r_i = 0.1 + 0.4 * g_r + rng.normal(0, 0.05)
    return {"u": 10 ** (-0.4 * u_r), "g": 10 ** (-0.4 * g_r), "r": 1.0, "i": 10 ** (0.4 * r_i)}


def clumps(rng, x, y, count, spread, sigma):
    """Elliptical Gaussian clumps around (x, y), unit total amplitude."""
    parts = []
    weights = rng.dirichlet(np.ones(count))
    for w in weights:
        dx, dy = rng.normal(0, spread, 2)
        e1, e2 = ellipse(rng, 0.4, 1.0)
        parts.append(("GAUSSIAN_ELLIPSE", {"amp": w, "sigma": rng.uniform(*sigma), "e1": e1, "e2": e2, "center_x": x + dx, "center_y": y + dy}))
    return parts


def render(kwargs_data, kernel, parts, lens=None):
    """The noise-free image of `parts` (lensed by `lens` = (models, kwargs) when given)."""
    if not parts:
        return np.zeros((SIZE, SIZE))
    data = ImageData(**kwargs_data)
    psf = PSF(psf_type="PIXEL", kernel_point_source=kernel)
    numerics = {"supersampling_factor": 3, "supersampling_convolution": False}
    light = LightModel([p[0] for p in parts])
    kw = [p[1] for p in parts]
    if lens is not None:
        model = ImageModel(data, psf, lens_model_class=LensModel(lens[0]), source_model_class=light, kwargs_numerics=numerics)
        return model.image(kwargs_lens=lens[1], kwargs_source=kw, lens_light_add=False)
    model = ImageModel(data, psf, lens_light_model_class=light, kwargs_numerics=numerics)
    return model.image(kwargs_lens_light=kw, source_add=False)


def red_host(rng, x, y, scale, r_mag):
    """A red galaxy (Hernquist, sometimes with an exponential disc) of total r magnitude r_mag,
    as parts with fluxes in r, and its g - r."""
    e1, e2 = ellipse(rng, 0.55, 1.0)
    flux = nanomaggies(r_mag)
    disc = rng.uniform() < 1 / 3
    bulge_share = rng.uniform(0.5, 0.8) if disc else 1.0
    parts = [("HERNQUIST_ELLIPSE", {"amp": 1.0, "Rs": scale, "e1": e1, "e2": e2, "center_x": x, "center_y": y})]
    shares = [bulge_share]
    if disc:
        de1, de2 = ellipse(rng, 0.3, 0.9)
        parts.append(("SERSIC_ELLIPSE", {"amp": 1.0, "R_sersic": scale * rng.uniform(2.0, 4.0), "n_sersic": 1.0, "e1": de1, "e2": de2, "center_x": x, "center_y": y}))
        shares.append(1 - bulge_share)
    # Normalise each part to its share of the total flux (LightModel's total_flux per unit amp).
    light = LightModel([p[0] for p in parts])
    totals = light.total_flux([p[1] for p in parts])
    parts = [(n, dict(kw, amp=flux * s / t)) for (n, kw), s, t in zip(parts, shares, totals)]
    return parts, rng.uniform(0.6, 1.0)


def times(parts, factor):
    return [(n, dict(kw, amp=kw["amp"] * factor)) for n, kw in parts]


def main():
    out_dir, n, rng = arguments(4711)
    kwargs_data = sim_util.data_configure_simple(SIZE, PIXEL, 1.0, 1.0)
    rows = []
    kinds = ["elliptical", "tangential_companion", "ring_galaxy", "spiral", "pair"]
    for k in range(n):
        ident = 600000 + k
        is_lens = rng.uniform() < 0.5
        kind = "lens" if is_lens else rng.choice(kinds, p=[0.3, 0.2, 0.2, 0.15, 0.15])
        seeing_scale = rng.uniform(0.8, 1.4)
        fwhm = {b: SEEING[b] * seeing_scale * rng.uniform(0.92, 1.08) for b in BANDS}
        beta = rng.uniform(2.5, 4.5)
        kernels = {b: moffat_kernel(fwhm[b], beta) for b in BANDS}
        depth = {b: rng.uniform(-0.3, 0.3) for b in BANDS}
        sigma = {b: sky_sigma(b, depth[b]) for b in BANDS}
        cx, cy = rng.normal(0, 0.1, 2)
        theta_e = float(np.exp(rng.uniform(np.log(1.0), np.log(3.5))))
        # Brighter with larger theta_E (Faber-Jackson), with a scatter as wide as the trend.
        host_mag = 19.6 - 2.5 * np.log10(theta_e / 1.5) + rng.normal(0, 0.6)
        host_scale = float(np.clip(0.35 * theta_e * np.exp(rng.normal(0, 0.3)), 0.15, 1.5))
        per_band = {b: [] for b in BANDS}
        lensed = {b: [] for b in BANDS}
        lens = None
        blue = []
        if kind in ("lens", "elliptical", "tangential_companion", "pair"):
            host, g_r = red_host(rng, cx, cy, host_scale, host_mag)
            c = colour_ratios(rng, g_r)
            for b in BANDS:
                per_band[b] += times(host, c[b])
        if kind == "lens":
            e1, e2 = ellipse(rng, 0.6, 1.0)
            g1, g2 = rng.normal(0, 0.05, 2)
            lens = (["EPL", "SHEAR"], [
                {"theta_E": theta_e, "gamma": rng.uniform(1.8, 2.3), "e1": e1, "e2": e2, "center_x": cx, "center_y": cy},
                {"gamma1": g1, "gamma2": g2, "ra_0": 0, "dec_0": 0},
            ])
            # A source behind the inner caustic region, redrawn until it is magnified at least
            # 3 times (a lens anyone would call one).
            for _ in range(20):
                radius = theta_e * np.sqrt(rng.uniform(0.0, 0.12))
                a = rng.uniform(0, 2 * np.pi)
                blue = clumps(rng, cx + radius * np.cos(a), cy + radius * np.sin(a), rng.integers(2, 8), rng.uniform(0.08, 0.4), (0.05, 0.25))
                unlensed = render(kwargs_data, kernels["g"], blue).sum()
                if render(kwargs_data, kernels["g"], blue, lens).sum() >= 3 * unlensed:
                    break
        elif kind == "tangential_companion":
            d, a = rng.uniform(1.5, 4.0), rng.uniform(0, 2 * np.pi)
            phi = a + np.pi / 2
            e1, e2 = ellipse(rng, 0.15, 0.4, phi)
            blue = [("GAUSSIAN_ELLIPSE", {"amp": 1.0, "sigma": rng.uniform(0.2, 0.45), "e1": e1, "e2": e2, "center_x": cx + d * np.cos(a), "center_y": cy + d * np.sin(a)})]
        elif kind == "ring_galaxy":
            core, g_r = red_host(rng, cx, cy, rng.uniform(0.15, 0.4), host_mag + rng.uniform(0.5, 1.5))
            c = colour_ratios(rng, g_r)
            for b in BANDS:
                per_band[b] += times(core, c[b])
            ring_r, q, tilt = rng.uniform(1.0, 4.0), rng.uniform(0.5, 1.0), rng.uniform(0, np.pi)
            beads = rng.integers(8, 20)
            for j in range(beads):
                t = 2 * np.pi * j / beads + rng.normal(0, 0.1)
                u, v = ring_r * np.cos(t), ring_r * q * np.sin(t)
                x = cx + u * np.cos(tilt) - v * np.sin(tilt)
                y = cy + u * np.sin(tilt) + v * np.cos(tilt)
                blue.append(("GAUSSIAN", {"amp": rng.uniform(0.3, 1.0), "sigma": rng.uniform(0.08, 0.25), "center_x": x, "center_y": y}))
        elif kind == "spiral":
            e1, e2 = ellipse(rng, 0.6, 1.0)
            scale = rng.uniform(0.8, 2.0)
            disc = [("SERSIC_ELLIPSE", {"amp": 1.0, "R_sersic": scale, "n_sersic": 1.0, "e1": e1, "e2": e2, "center_x": cx, "center_y": cy})]
            disc = times(disc, nanomaggies(rng.uniform(18.0, 20.0)) / LightModel(["SERSIC_ELLIPSE"]).total_flux([disc[0][1]])[0])
            c = colour_ratios(rng, rng.uniform(0.35, 0.6))
            for b in BANDS:
                per_band[b] += times(disc, c[b])
            phase, pitch = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.45)
            for arm in range(2):
                for j in range(rng.integers(4, 9)):
                    t = rng.uniform(0.3, 2.5)
                    r = 0.5 * scale * np.exp(pitch * t * 2)
                    ang = phase + arm * np.pi + t
                    blue.append(("GAUSSIAN", {"amp": rng.uniform(0.3, 1.0), "sigma": rng.uniform(0.06, 0.18), "center_x": cx + r * np.cos(ang), "center_y": cy + r * np.sin(ang)}))
        elif kind == "pair":
            d, a = rng.uniform(1.0, 3.0), rng.uniform(0, 2 * np.pi)
            other, g_r = red_host(rng, cx + d * np.cos(a), cy + d * np.sin(a), host_scale * rng.uniform(0.5, 1.0), host_mag + rng.uniform(0.0, 1.5))
            c = colour_ratios(rng, g_r)
            for b in BANDS:
                per_band[b] += times(other, c[b])
        snr_g = None
        if blue:
            blue_colours = colour_ratios(rng, rng.uniform(-0.1, 0.7))
            unit_g = render(kwargs_data, kernels["g"], times(blue, blue_colours["g"]), lens)
            snr_g = float(np.exp(rng.uniform(np.log(15), np.log(150))))
            factor = amp_for_snr(unit_g, sigma["g"], snr_g)
            for b in BANDS:
                (lensed if lens else per_band)[b] += times(blue, factor * blue_colours[b])
        hits = rng.integers(2, 6) if rng.uniform() < 0.1 else 0
        hit_pixels = rng.integers(0, SIZE, (hits, 2))
        for b in BANDS:
            image = render(kwargs_data, kernels[b], per_band[b])
            if lensed[b]:
                image = image + render(kwargs_data, kernels[b], lensed[b], lens)
            noisy = image + rng.normal(0, sigma[b], image.shape)
            for y, x in hit_pixels:
                if rng.uniform() < 0.5:
                    noisy[y, x] += sigma[b] * rng.uniform(20, 200)
            write_band(out_dir, ident, b, noisy, {"BUNIT": "nanomaggy", "ORIGIN": "external set, recipe B"})
        rows.append([ident, int(is_lens), kind, f"{theta_e:.3f}" if is_lens else "", f"{snr_g:.1f}" if snr_g else "", f"{fwhm['r']:.3f}"])
        if (k + 1) % 100 == 0:
            print(f"{k + 1}/{n}", file=sys.stderr, flush=True)
    write_truth(out_dir, rows)


if __name__ == "__main__":
    main()
