"""An external test set made by another simulator: lenstronomy, with recipes written here for
this purpose and never used for training or for choosing a model.

lens-inspect's own simulator made every cutout the shipped model trained and validated on. This
script makes KiDS-sized cutouts with independent code (lenstronomy's ray shooting, light profiles
and convolution) and choices our simulator does not make: Gaussian PSFs, a noise model in units
of each band's sky sigma with shot noise from a fixed gain, lens and source colours from fixed
flux ratios with scatter, sources of one Sersic with Gaussian star-forming knots. Half are
lenses; the rest are plain ellipticals, ellipticals with unlensed blue companions, and
ellipticals with a blue elongated companion lying tangentially (the classic false positive).

Output: the Bologna challenge layout (Band1..Band4 = r, i, g, u; imageSDSS_<B>-<ID>.fits) and
classifications.csv (ID, is_lens, kind, theta_e_arcsec, arc_snr_g: the blue light's S/N in g,
flux over the pixels above one sigma over sigma sqrt(N), as the challenge defines it; seeing_arcsec), which
`lens-inspect evaluate --data DIR --by kind` reads.

Usage: python lenstronomy_external_set.py OUT_DIR [N] [SEED] [LENS_FRACTION]   (needs lenstronomy, astropy)
LENS_FRACTION (default 0.5) makes a survey-like pool: lenses spread evenly, as every other one at 0.5.
"""
import csv
import os
import sys

import numpy as np
from astropy.io import fits
from lenstronomy.Data.imaging_data import ImageData
from lenstronomy.Data.psf import PSF
from lenstronomy.ImSim.image_model import ImageModel
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LightModel.light_model import LightModel
import lenstronomy.Util.param_util as param_util
import lenstronomy.Util.simulation_util as sim_util

SIZE, PIXEL = 101, 0.2
BANDS = ["u", "g", "r", "i"]
FOLDER = {"r": "Band1", "i": "Band2", "g": "Band3", "u": "Band4"}
# Seeing relative to r, and the sky noise of each band relative to r (u shallow, i shallower).
SEEING_FACTOR = {"u": 1.15, "g": 1.05, "r": 1.0, "i": 0.95}
NOISE_FACTOR = {"u": 2.2, "g": 1.0, "r": 1.1, "i": 1.8}
# Flux ratios to r: a red elliptical and a blue star-forming source.
RED = {"u": 0.10, "g": 0.45, "r": 1.0, "i": 1.35}
BLUE = {"u": 0.75, "g": 0.95, "r": 1.0, "i": 1.0}
# Counts per sky sigma: shot noise of a source whose flux is F sky sigmas has sigma sqrt(F / GAIN).
GAIN = 0.5


def colours(base, rng, scatter):
    return {b: base[b] * np.exp(rng.normal(0.0, scatter)) for b in BANDS}


def ellipse(rng, q_low, q_high, phi=None):
    phi = rng.uniform(0, np.pi) if phi is None else phi
    return param_util.phi_q2_ellipticity(phi, rng.uniform(q_low, q_high))


def star_forming(rng, x, y, tangential=False):
    """A blue galaxy: one Sersic disc plus 0-3 Gaussian knots, as LightModel kwargs per unit amp.
    `tangential`: elongated and lying across the line to the cutout's centre, like an arc."""
    phi = np.arctan2(y, x) + np.pi / 2 if tangential else None
    e1, e2 = ellipse(rng, *((0.25, 0.6) if tangential else (0.4, 0.95)), phi)
    r = rng.uniform(0.4, 0.8) if tangential else rng.uniform(0.12, 0.45)
    parts = [("SERSIC_ELLIPSE", {"amp": 1.0, "R_sersic": r, "n_sersic": rng.uniform(0.7, 1.5), "e1": e1, "e2": e2, "center_x": x, "center_y": y})]
    for _ in range(rng.integers(0, 4)):
        dx, dy = rng.normal(0, 0.6 * r, 2)
        parts.append(("GAUSSIAN", {"amp": rng.uniform(0.05, 0.3), "sigma": rng.uniform(0.03, 0.08), "center_x": x + dx, "center_y": y + dy}))
    return parts


def render(kwargs_data, fwhm, lens_kw, lens_light, extra, lensed):
    """Noise-free image (sky sigmas of r before the band's factor) of lens light plus `extra`."""
    data = ImageData(**kwargs_data)
    psf = PSF(psf_type="GAUSSIAN", fwhm=fwhm, truncation=5)
    numerics = {"supersampling_factor": 3, "supersampling_convolution": False}
    out = np.zeros((SIZE, SIZE))
    if lens_light is not None:
        model = ImageModel(data, psf, lens_light_model_class=LightModel([lens_light[0]]), kwargs_numerics=numerics)
        out += model.image(kwargs_lens_light=[lens_light[1]], unconvolved=False, source_add=False, lens_light_add=True)
    if extra:
        light = LightModel([p[0] for p in extra])
        if lensed:
            model = ImageModel(data, psf, lens_model_class=LensModel(["SIE", "SHEAR"]), source_model_class=light, kwargs_numerics=numerics)
            out += model.image(kwargs_lens=lens_kw, kwargs_source=[p[1] for p in extra], source_add=True, lens_light_add=False)
        else:
            model = ImageModel(data, psf, lens_light_model_class=light, kwargs_numerics=numerics)
            out += model.image(kwargs_lens_light=[p[1] for p in extra], source_add=False, lens_light_add=True)
    return out


def snr(image, sigma):
    """The challenge's S/N of an arc: its flux over the pixels above one sigma, over sigma sqrt(N)."""
    above = image > sigma
    return image[above].sum() / (sigma * np.sqrt(above.sum())) if above.any() else 0.0


def amp_for_snr(unit, sigma, target):
    """The factor that gives `unit` (a noise-free image) the S/N `target`, by bisection in log."""
    lo, hi = 1e-6, 1e9
    for _ in range(60):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if snr(unit * mid, sigma) < target else (lo, mid)
    return np.sqrt(lo * hi)


def scaled(parts, factor):
    return [(name, dict(kw, amp=kw["amp"] * factor)) for name, kw in parts]


def arguments(default_seed):
    """OUT_DIR [N] [SEED] from the command line, the band folders made: (out_dir, n, rng)."""
    out_dir = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    rng = np.random.default_rng(int(sys.argv[3]) if len(sys.argv) > 3 else default_seed)
    for f in FOLDER.values():
        os.makedirs(os.path.join(out_dir, f), exist_ok=True)
    return out_dir, n, rng


def write_band(out_dir, ident, band, image, keys):
    """One band of one object as float32 FITS in the Bologna layout, with FILTER and `keys`."""
    hdu = fits.PrimaryHDU(image.astype(np.float32))
    hdu.header["FILTER"] = f"SDSS_{band.upper()}"
    for key, value in keys.items():
        hdu.header[key] = value
    hdu.writeto(os.path.join(out_dir, FOLDER[band], f"imageSDSS_{band.upper()}-{ident}.fits"), overwrite=True)


def write_truth(out_dir, rows):
    """classifications.csv: one row per object, as `lens-inspect evaluate --by` reads it."""
    with open(os.path.join(out_dir, "classifications.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ID", "is_lens", "kind", "theta_e_arcsec", "arc_snr_g", "seeing_arcsec"])
        w.writerows(rows)


def main():
    out_dir, n, rng = arguments(31337)
    lens_fraction = float(sys.argv[4]) if len(sys.argv) > 4 else 0.5
    kwargs_data = sim_util.data_configure_simple(SIZE, PIXEL, 1.0, 1.0)
    rows = []
    for k in range(n):
        ident = 500000 + k
        seeing = rng.uniform(0.6, 1.1)
        # Evenly spread: at 0.5 every other object from the first, as sets made before the option.
        is_lens = np.floor(k * lens_fraction) != np.floor((k - 1) * lens_fraction)
        kind = "lens" if is_lens else rng.choice(["elliptical", "companions", "tangential_companion"], p=[0.4, 0.3, 0.3])
        # Lens galaxy: r-band peak 30-300 sky sigmas once convolved (set below through amp).
        e1, e2 = ellipse(rng, 0.6, 1.0)
        cx, cy = rng.normal(0, 0.08, 2)
        lens_light = ("SERSIC_ELLIPSE", {"amp": 1.0, "R_sersic": rng.uniform(0.6, 2.0), "n_sersic": rng.uniform(3.0, 5.0), "e1": e1, "e2": e2, "center_x": cx, "center_y": cy})
        lens_colour = colours(RED, rng, 0.12)
        theta_e = rng.uniform(1.0, 3.0) if is_lens else None
        se1, se2 = rng.normal(0, 0.08, 2)
        g1, g2 = rng.normal(0, 0.04, 2)
        lens_kw = [
            {"theta_E": theta_e or 1.0, "e1": se1, "e2": se2, "center_x": cx, "center_y": cy},
            {"gamma1": g1, "gamma2": g2, "ra_0": 0, "dec_0": 0},
        ]
        extra = []
        if is_lens:
            radius = theta_e * np.sqrt(rng.uniform(0.0, 0.5))
            a = rng.uniform(0, 2 * np.pi)
            extra = star_forming(rng, cx + radius * np.cos(a), cy + radius * np.sin(a))
        elif kind == "companions":
            for _ in range(rng.integers(1, 4)):
                d, a = rng.uniform(1.5, 5.0), rng.uniform(0, 2 * np.pi)
                extra += star_forming(rng, d * np.cos(a), d * np.sin(a))
        elif kind == "tangential_companion":
            d, a = rng.uniform(1.5, 3.5), rng.uniform(0, 2 * np.pi)
            extra = star_forming(rng, d * np.cos(a), d * np.sin(a), tangential=True)
        source_colour = colours(BLUE, rng, 0.2)
        # Brightness: lens peak, and the blue light's S/N in g as the challenge defines it, log-uniform.
        peak = np.exp(rng.uniform(np.log(30), np.log(300)))
        snr_g = np.exp(rng.uniform(np.log(20), np.log(150)))
        r_fwhm = seeing * SEEING_FACTOR["r"]
        base_lens = render(kwargs_data, r_fwhm, lens_kw, lens_light, [], False)
        lens_amp = peak / base_lens.max()
        g_fwhm = seeing * SEEING_FACTOR["g"]
        if extra:
            base_extra = render(kwargs_data, g_fwhm, lens_kw, None, extra, is_lens)
            extra_amp = amp_for_snr(base_extra * source_colour["g"], NOISE_FACTOR["g"], snr_g)
        for b in BANDS:
            fwhm = seeing * SEEING_FACTOR[b]
            ll = (lens_light[0], dict(lens_light[1], amp=lens_amp * lens_colour[b]))
            ex = scaled(extra, extra_amp * source_colour[b]) if extra else []
            image = render(kwargs_data, fwhm, lens_kw, ll, ex, is_lens)
            sigma = NOISE_FACTOR[b]
            shot = np.sqrt(np.clip(image, 0, None) / GAIN)
            noisy = image + rng.normal(0, 1, image.shape) * np.sqrt(sigma**2 + shot**2)
            # Fluxes in arbitrary survey-like units (1e-12 per sky sigma of r).
            write_band(out_dir, ident, b, noisy * 1e-12, {"ORIGIN": "lenstronomy external set"})
        rows.append([ident, int(is_lens), kind, f"{theta_e:.3f}" if is_lens else "", f"{snr_g:.1f}" if extra else "", f"{seeing:.3f}"])
        if (k + 1) % 100 == 0:
            print(f"{k + 1}/{n}", file=sys.stderr, flush=True)
    write_truth(out_dir, rows)


if __name__ == "__main__":
    main()
