"""The lenstronomy side of `lens-inspect bench simulate --lenstronomy PYTHON`.

Simulates N galaxy-galaxy lenses the way a lenstronomy script would, at the sizes and ranges of
`lens-inspect simulate --look kids`: 101 x 101 pixels of 0.2", four bands (u, g, r, i) each with
its own Moffat PSF (beta 3, FWHM about KiDS's per band, a pixel kernel of 31 x 31), an SIE with
external shear (theta_E 0.8-3"), an elliptical Sersic lens light and an elliptical Sersic source
with a compact Gaussian clump, supersampling 4, then sky and Poisson noise. One ImageModel per
band and object (the PSF changes with the seeing), as a catalogue of varied seeing needs.
Prints one JSON line: {"cutouts": N, "seconds": S}, timing everything after the imports.

Usage: python simulate_lenstronomy.py [N]
"""
import json
import sys
import time

import numpy as np
from lenstronomy.Data.imaging_data import ImageData
from lenstronomy.Data.psf import PSF
from lenstronomy.ImSim.image_model import ImageModel
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LightModel.light_model import LightModel
import lenstronomy.Util.simulation_util as sim_util

SIZE, PIXEL = 101, 0.2
FWHM = [1.0, 0.85, 0.7, 0.85]
BETA = 3.0


def moffat(fwhm, half=15):
    alpha = fwhm / PIXEL / (2.0 * np.sqrt(2.0 ** (1.0 / BETA) - 1.0))
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    k = (1.0 + (x * x + y * y) / alpha**2) ** (-BETA)
    return k / k.sum()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    rng = np.random.default_rng(7)
    t0 = time.perf_counter()
    lens = LensModel(["SIE", "SHEAR"])
    lens_light = LightModel(["SERSIC_ELLIPSE"])
    source = LightModel(["SERSIC_ELLIPSE", "GAUSSIAN"])
    kwargs_data = sim_util.data_configure_simple(SIZE, PIXEL, 1.0, 1.0)
    for _ in range(n):
        theta_e = rng.uniform(0.8, 3.0)
        kl = [
            {"theta_E": theta_e, "e1": rng.normal(0, 0.1), "e2": rng.normal(0, 0.1), "center_x": 0.0, "center_y": 0.0},
            {"gamma1": rng.normal(0, 0.03), "gamma2": rng.normal(0, 0.03), "ra_0": 0, "dec_0": 0},
        ]
        sx, sy = rng.uniform(-0.3, 0.3, 2) * theta_e
        for band in range(4):
            data = ImageData(**kwargs_data)
            psf = PSF(psf_type="PIXEL", kernel_point_source=moffat(FWHM[band] * rng.uniform(0.88, 1.12)))
            model = ImageModel(
                data,
                psf,
                lens_model_class=lens,
                source_model_class=source,
                lens_light_model_class=lens_light,
                kwargs_numerics={"supersampling_factor": 4, "supersampling_convolution": False},
            )
            kll = [{"amp": 100.0, "R_sersic": 1.0, "n_sersic": 4.0, "e1": 0.1, "e2": 0.0, "center_x": 0, "center_y": 0}]
            ks = [
                {"amp": 40.0, "R_sersic": 0.2, "n_sersic": 1.0, "e1": 0.1, "e2": 0.1, "center_x": sx, "center_y": sy},
                {"amp": 10.0, "sigma": 0.05, "center_x": sx + 0.1, "center_y": sy},
            ]
            image = model.image(kl, ks, kll)
            image = rng.poisson(np.clip(image, 0, None)).astype(float) + rng.normal(0, 1.0, image.shape)
    print(json.dumps({"cutouts": n, "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
