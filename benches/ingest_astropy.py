"""The astropy side of `lens-inspect bench ingest --astropy PYTHON`.

Ingests the same Bologna-layout folder the way a notebook would: for every object, each band's
file opened with astropy.io.fits, its pixels as float32, the r band's header made into a WCS
(the sky position of the centre), a robust sky sigma per band (median absolute deviation of the
finite pixels, as `ingest` stores), and one row per object inserted into an SQLite table in one
transaction. Prints one JSON line: {"cutouts": N, "seconds": S}, timing everything after the
imports.

With --pixels-only it only reads every file's pixels as float32 (no WCS, statistics or
database): the least an ingest can do, and the harder side to beat.

Usage: python ingest_astropy.py BOLOGNA_DIR DB_PATH [--pixels-only]
"""
import glob
import json
import os
import sqlite3
import sys
import time
import warnings

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

BANDS = {"r": "Band1", "i": "Band2", "g": "Band3", "u": "Band4"}


def main():
    root, db_path = sys.argv[1:3]
    pixels_only = "--pixels-only" in sys.argv[3:]
    warnings.simplefilter("ignore", FITSFixedWarning)
    t0 = time.perf_counter()
    if pixels_only:
        n = 0
        for folder in BANDS.values():
            for path in glob.glob(os.path.join(root, folder, "*.fits")):
                with fits.open(path) as hdul:
                    np.asarray(hdul[0].data, dtype=np.float32)
                n += 1
        print(json.dumps({"cutouts": n // 4, "seconds": time.perf_counter() - t0}))
        return
    files = {}
    for band, folder in BANDS.items():
        for path in glob.glob(os.path.join(root, folder, "*.fits")):
            obj = os.path.basename(path).rsplit("-", 1)[1][: -len(".fits")]
            files.setdefault(obj, {})[band] = path
    if os.path.exists(db_path):
        os.remove(db_path)
    db = sqlite3.connect(db_path)
    db.execute("create table candidates (name text primary key, ra real, dec real, sky_u real, sky_g real, sky_r real, sky_i real, paths text)")
    rows = []
    for obj, bands in files.items():
        sky = {}
        ra = dec = None
        for band in "ugri":
            with fits.open(bands[band]) as hdul:
                data = np.asarray(hdul[0].data, dtype=np.float32)
                if band == "r":
                    w = WCS(hdul[0].header)
                    if w.has_celestial:
                        c = w.pixel_to_world_values((data.shape[1] - 1) / 2, (data.shape[0] - 1) / 2)
                        ra, dec = float(c[0]), float(c[1])
            v = data[np.isfinite(data)]
            med = np.median(v)
            sky[band] = float(1.4826 * np.median(np.abs(v - med)))
        rows.append((obj, ra, dec, sky["u"], sky["g"], sky["r"], sky["i"], json.dumps(bands)))
    with db:
        db.executemany("insert into candidates values (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    seconds = time.perf_counter() - t0
    print(json.dumps({"cutouts": len(rows), "seconds": seconds}))


if __name__ == "__main__":
    main()
