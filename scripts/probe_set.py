"""Probes of what a model reacts to on a test set in the Bologna layout: copies of its
highest-scored objects of one kind and its lowest-scored lenses, each changed in one way, written
as a new set for `lens-inspect evaluate --data OUT --scores FILE`; then `summary` prints the mean
and median score of each group and change.

Changes (each applied to the sky-subtracted image; the sky level is the median of the top and
bottom 10 rows, the sky sigma their MAD):
- orig: unchanged (the scores must match the set's own);
- scale4: everything divided by 4, noise included (the preprocessing must not care);
- noise2: white noise of 1.7 sky sigmas added (twice the noise in all);
- oneshape: every band replaced by the r band's image (smoothed by 1 px, new noise added) scaled
  to that band's own flux, so there are no colour gradients;
- poissonG: noise of variance flux * sigma / G added (objects made grainy, as Poisson noise does;
  G = 0.3, 0.1, 0.03).

Usage:
  python scripts/probe_set.py make SET_DIR SCORES.csv KIND OUT_DIR [N]
  lens-inspect evaluate --data OUT_DIR --scores OUT.csv
  python scripts/probe_set.py summary OUT_DIR OUT.csv
(needs numpy, scipy and astropy). docs/robustness.md, "What another simulator's ellipticals and
rings show", has what it found.
"""
import csv
import glob
import os
import sys

import numpy as np
from astropy.io import fits
from scipy.ndimage import gaussian_filter

FOLDERS = {"r": "Band1", "i": "Band2", "g": "Band3", "u": "Band4"}


def load(set_dir, ident):
    return {
        b: np.nan_to_num(fits.getdata(glob.glob(f"{set_dir}/{f}/*-{ident}.fits")[0]).astype(float))
        for b, f in FOLDERS.items()
    }


def sky(image):
    edge = np.concatenate([image[:10].ravel(), image[-10:].ravel()])
    level = np.median(edge)
    return level, 1.4826 * np.median(np.abs(edge - level))


def changes(bands, rng):
    out = {"orig": bands}
    out["scale4"] = {b: v / 4 for b, v in bands.items()}
    out["noise2"] = {b: v + rng.normal(0, 1.7 * sky(v)[1], v.shape) for b, v in bands.items()}
    r_level, _ = sky(bands["r"])
    r_obj = bands["r"] - r_level
    r_flux = r_obj[30:71, 30:71].sum()
    one = {}
    for b, v in bands.items():
        level, sigma = sky(v)
        flux = (v - level)[30:71, 30:71].sum()
        one[b] = level + gaussian_filter(r_obj, 1.0) * flux / r_flux + rng.normal(0, sigma, v.shape)
    out["oneshape"] = one
    for gain in (0.3, 0.1, 0.03):
        grainy = {}
        for b, v in bands.items():
            level, sigma = sky(v)
            flux = np.clip(v - level, 0, None)
            grainy[b] = v + rng.normal(0, 1, v.shape) * np.sqrt(flux * sigma / gain)
        out[f"poisson{gain}"] = grainy
    return out


def make(set_dir, scores, kind, out_dir, n):
    truth = {r["ID"]: r for r in csv.DictReader(open(f"{set_dir}/classifications.csv"))}
    scored = [(float(r["score"]), r["name"]) for r in csv.DictReader(open(scores))]
    top = sorted(x for x in scored if truth[x[1]]["kind"] == kind)[-n:]
    low = sorted(x for x in scored if truth[x[1]]["is_lens"] == "1")[:n]
    for f in FOLDERS.values():
        os.makedirs(f"{out_dir}/{f}", exist_ok=True)
    rng = np.random.default_rng(2)
    rows, ident = [], 900000
    for group, chosen, is_lens in ((f"top-{kind}", top, 0), ("low-lens", low, 1)):
        for _, name in chosen:
            for change, bands in changes(load(set_dir, name), rng).items():
                for b, f in FOLDERS.items():
                    path = f"{out_dir}/{f}/imageSDSS_{b.upper()}-{ident}.fits"
                    fits.PrimaryHDU(bands[b].astype(np.float32)).writeto(path, overwrite=True)
                rows.append([ident, is_lens, f"{group}:{change}", name])
                ident += 1
    with open(f"{out_dir}/classifications.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ID", "is_lens", "kind", "source"])
        w.writerows(rows)


def summary(out_dir, scores):
    kinds = {r["ID"]: r["kind"] for r in csv.DictReader(open(f"{out_dir}/classifications.csv"))}
    by = {}
    for r in csv.DictReader(open(scores)):
        by.setdefault(kinds[r["name"]], []).append(float(r["score"]))
    for group in sorted(by):
        s = np.array(by[group])
        print(f"{group:32s} n {len(s):3d}  mean {s.mean():.3f}  median {np.median(s):.3f}  above 0.5 {np.mean(s > 0.5):.2f}")


if __name__ == "__main__":
    if len(sys.argv) >= 6 and sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]) if len(sys.argv) > 6 else 40)
    elif len(sys.argv) == 4 and sys.argv[1] == "summary":
        summary(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
