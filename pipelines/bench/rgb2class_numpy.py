#!/usr/bin/env python3
"""Baseline for `make bench`: the rgb2class job done the usual Python way, on one core.

Pillow decodes each RGB label, numpy maps colours to class indices in a vectorised way
(pack RGB into one integer, exact match by binary search, nearest palette colour for the rest), and
Pillow writes a deflate-compressed 8-bit TIFF. Prints one line: `numpy+pillow: X Mpx/s`.

usage: rgb2class_numpy.py PAIRS.json OUT_DIR
"""
import json
import os
import sys
import time

import numpy as np
from PIL import Image

PALETTE = np.array([
    (0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255),
    (255, 0, 255), (255, 255, 255), (128, 128, 128), (255, 192, 192), (0, 128, 128), (255, 128, 128),
], dtype=np.int32)
KEYS = (PALETTE[:, 0] << 16) | (PALETTE[:, 1] << 8) | PALETTE[:, 2]


ORDER = np.argsort(KEYS)
SORTED = KEYS[ORDER]


def convert(label, out):
    rgb = np.asarray(Image.open(label).convert("RGB"), dtype=np.int32)
    key = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    pos = np.minimum(np.searchsorted(SORTED, key), len(SORTED) - 1)
    mask = ORDER[pos].astype(np.uint8)
    off = SORTED[pos] != key
    if off.any():
        d = ((rgb[off][:, None, :] - PALETTE[None, :, :]) ** 2).sum(axis=2)
        mask[off] = np.argmin(d, axis=1)
    Image.fromarray(mask, mode="L").save(out, compression="tiff_adobe_deflate")


def main():
    pairs, out_dir = sys.argv[1], sys.argv[2]
    m = json.load(open(pairs))
    base = os.path.dirname(os.path.abspath(pairs))
    labels = [os.path.join(base, it["label_rgb"]) for it in m["items"]]
    os.makedirs(out_dir, exist_ok=True)
    mpx = 0.0
    t = time.perf_counter()
    for i, lab in enumerate(labels):
        convert(lab, os.path.join(out_dir, f"{i:05}.tif"))
    dt = time.perf_counter() - t
    for lab in labels:
        w, h = Image.open(lab).size
        mpx += w * h / 1e6
    print(f"numpy+pillow: {mpx / dt:.1f} Mpx/s")


if __name__ == "__main__":
    main()
