"""Writes tests/data/wcs_sip.json: astropy's positions for two TAN-SIP headers (a rotated CD
matrix with third-order distortion, and a CDELT/PC one with fourth order), at pixels spread over
the image and its corners where the distortion is largest. Run: python scripts/wcs_sip_reference.py
(astropy); the Rust test `sip_matches_astropy_both_ways` reads the file."""
import json
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS


def header(case):
    h = fits.Header()
    h["NAXIS"] = 2
    h["NAXIS1"], h["NAXIS2"] = case["naxis"]
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
    h["CRPIX1"], h["CRPIX2"] = case["crpix"]
    h["CRVAL1"], h["CRVAL2"] = case["crval"]
    for k, v in case["linear"].items():
        h[k] = v
    for name in ("A", "B"):
        h[f"{name}_ORDER"] = case["order"]
        for (p, q), v in case[name].items():
            h[f"{name}_{p}_{q}"] = v
    return h


cases = [
    dict(
        name="rotated_cd_order3",
        naxis=(2048, 4096),
        crpix=(1024.5, 2048.5),
        crval=(150.1, 2.2),
        linear={"CD1_1": -5.2e-5, "CD1_2": 1.1e-5, "CD2_1": 1.05e-5, "CD2_2": 5.18e-5},
        order=3,
        A={(2, 0): 2.1e-6, (1, 1): -3.4e-6, (0, 2): 1.2e-6, (3, 0): 4.0e-10, (2, 1): -1.5e-10, (0, 3): 2.2e-10},
        B={(2, 0): -1.1e-6, (1, 1): 2.7e-6, (0, 2): -2.3e-6, (1, 2): 3.1e-10, (3, 0): -2.5e-10, (0, 3): 1.0e-10},
    ),
    dict(
        name="cdelt_pc_order4_south",
        naxis=(1000, 1000),
        crpix=(300.0, 700.0),
        crval=(35.5, -45.3),
        linear={"CDELT1": -7.5e-5, "CDELT2": 7.5e-5, "PC1_1": 0.9848, "PC1_2": -0.1736, "PC2_1": 0.1736, "PC2_2": 0.9848},
        order=4,
        A={(2, 0): -4.2e-6, (0, 2): 3.3e-6, (2, 2): 1.5e-13, (4, 0): -2.0e-13, (3, 1): 1.0e-13},
        B={(1, 1): 5.5e-6, (0, 2): -1.8e-6, (0, 4): 2.4e-13, (1, 3): -1.1e-13},
    ),
]

out = {"note": "astropy all_pix2world / all_world2pix, origin 1 (FITS pixels)", "cases": []}
rng = np.random.default_rng(7)
for case in cases:
    h = header(case)
    w = WCS(h)
    nx, ny = case["naxis"]
    pix = [[1.0, 1.0], [nx, 1.0], [1.0, ny], [nx, ny], list(case["crpix"])]
    pix += [[float(x), float(y)] for x, y in zip(rng.uniform(1, nx, 8), rng.uniform(1, ny, 8))]
    sky = w.all_pix2world(np.array(pix), 1)
    back = w.all_world2pix(sky, 1, tolerance=1e-10, maxiter=100)
    assert np.abs(back - np.array(pix)).max() < 1e-6
    hdr = {k: h[k] for k in h if k not in ("NAXIS",)}
    out["cases"].append({"name": case["name"], "header": hdr, "pixel_1based": pix, "sky_deg": sky.tolist()})
with open("tests/data/wcs_sip.json", "w") as f:
    json.dump(out, f, indent=1)
print("wrote tests/data/wcs_sip.json")
