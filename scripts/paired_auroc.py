#!/usr/bin/env python3
"""Paired bootstrap of the AUROC difference between two models scored on the same cutouts.

Usage: python3 scripts/paired_auroc.py A.csv B.csv [RESAMPLES]
A.csv and B.csv are `lens-inspect evaluate --data DIR --scores FILE` outputs (name, is_lens,
score). Prints AUROC(B) - AUROC(A) with a 95 % interval from resampling cutouts (the same
resample for both models, so what the two share cancels). Standard library only.
"""
import csv
import random
import sys


def read(path):
    with open(path) as f:
        return {r["name"]: (int(r["is_lens"]), float(r["score"])) for r in csv.DictReader(f)}


def auroc(pairs):
    # Mann-Whitney U with ties counted half, from ranks.
    order = sorted(range(len(pairs)), key=lambda k: pairs[k][1])
    ranks = [0.0] * len(pairs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and pairs[order[j + 1]][1] == pairs[order[i]][1]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    n_pos = sum(1 for y, _ in pairs if y == 1)
    n_neg = len(pairs) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r_pos = sum(r for r, (y, _) in zip(ranks, pairs) if y == 1)
    return (r_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def main():
    a, b = read(sys.argv[1]), read(sys.argv[2])
    resamples = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    names = sorted(set(a) & set(b))
    if any(a[n][0] != b[n][0] for n in names):
        sys.exit("the two files disagree on a label: not the same truth")
    pa = [a[n] for n in names]
    pb = [b[n] for n in names]
    diff = auroc(pb) - auroc(pa)
    rng = random.Random(1)
    draws = []
    for _ in range(resamples):
        idx = [rng.randrange(len(names)) for _ in names]
        draws.append(auroc([pb[k] for k in idx]) - auroc([pa[k] for k in idx]))
    draws.sort()
    lo, hi = draws[int(0.025 * resamples)], draws[int(0.975 * resamples) - 1]
    print(f"n = {len(names)}: AUROC A {auroc(pa):.4f}, B {auroc(pb):.4f}, B - A {diff:+.4f} (95 % {lo:+.4f} to {hi:+.4f})")


if __name__ == "__main__":
    main()
