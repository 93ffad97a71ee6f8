"""The astropy side of `lens-inspect bench cutouts --astropy PYTHON`.

Cuts the same tiles around the same catalogue the way an astropy script would: each band file
memory-mapped (fits.open(memmap=True)), its own WCS, Cutout2D(mode='partial', fill_value=nan) per
band, and a 4-plane float32 cube with the r band's cutout WCS written per object. Prints one JSON
line: {"cutouts": N, "seconds": S}, timing everything after the imports.

Usage: python cutouts_astropy.py TILES_DIR CATALOGUE.fits OUT_DIR [SIZE]
"""
import glob
import json
import os
import re
import sys
import time

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.table import Table
from astropy.wcs import WCS


def main():
    tiles_dir, catalogue, out_dir = sys.argv[1:4]
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 101
    t0 = time.perf_counter()
    cat = Table.read(catalogue)
    ra = np.asarray(cat["RAJ2000"], dtype=float)
    dec = np.asarray(cat["DECJ2000"], dtype=float)
    ids = [str(i).strip() for i in cat["ID"]]
    tiles = {}
    for path in sorted(glob.glob(os.path.join(tiles_dir, "*_sci.fits"))):
        m = re.match(r"(.+)_([ugri])_sci\.fits$", os.path.basename(path))
        if m:
            tiles.setdefault(m.group(1), {})[m.group(2)] = path
    done = np.zeros(len(ra), dtype=bool)
    n = 0
    for name, bands in tiles.items():
        hdus = {b: fits.open(bands[b], memmap=True) for b in "ugri"}
        wcss = {b: WCS(hdus[b][0].header) for b in "ugri"}
        h, w = hdus["r"][0].data.shape
        x, y = wcss["r"].all_world2pix(ra, dec, 0)
        inside = (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5) & ~done
        for k in np.nonzero(inside)[0]:
            position = SkyCoord(ra[k], dec[k], unit="deg")
            planes = []
            header = None
            for b in "ugri":
                c = Cutout2D(hdus[b][0].data, position, size, wcs=wcss[b], mode="partial", fill_value=np.nan)
                planes.append(c.data)
                if b == "r":
                    header = c.wcs.to_header()
            safe = re.sub(r"[^A-Za-z0-9._+-]", "_", ids[k])
            cube = np.stack(planes).astype(np.float32)
            fits.writeto(os.path.join(out_dir, safe + ".fits"), cube, header, overwrite=True)
            done[k] = True
            n += 1
        for hdul in hdus.values():
            hdul.close()
    print(json.dumps({"cutouts": n, "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
