#!/usr/bin/env python3
"""FASSEG's multipose01 faces (folder V3 of massimomauro/FASSEG-repository) as facepipe
manifests, for the real-face parity jobs (`make parity-fastai FASSEG_V3=...`). Standard library
only; nothing is fetched: the folder is the user's copy.

    python3 tests/parity/fasseg.py pairs V3_DIR OUT/pairs.json
        every labelled face (Train_RGB/POSE/NAME.bmp with Train_labels/POSE/NAME.bmp, the same
        for Test_*; the four test labels whose size is not their photo's are left out, named) as an xml-pairs manifest with FASSEG's six classes; `fasseg_set` says
        train or test, `group` the person. rgb2class then turns the labels into masks (their
        anti-aliased borders snap to the nearest class colour).
    python3 tests/parity/fasseg.py split OUT/masks.json OUT/split.json [--train N --valid M]
        sets `split` from FASSEG's own division (train → train, test → valid); with --train
        and --valid keeps N train and M test faces, fixed by name: every k-th in name order,
        so that every pose and person of the set is drawn on. The names kept are listed in
        the manifest's provenance.

The frontal sets (V1, V2) are not read.
"""
import argparse
import hashlib
import json
import struct
import sys
from pathlib import Path

# FASSEG's palette, background first (unet-train's foreground scores leave class 0 out)
CLASSES = [
    ("background", [255, 0, 0]),
    ("hair", [127, 0, 0]),
    ("skin", [255, 255, 0]),
    ("eyes", [0, 0, 255]),
    ("nose", [0, 255, 255]),
    ("mouth", [0, 255, 0]),
]


def fail(msg):
    print(f"fasseg: {msg}", file=sys.stderr)
    sys.exit(1)


def bmp_size(path):
    """A BMP's width and height, from its header."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:2] != b"BM":
        fail(f"{path} is not a BMP file")
    w, h = struct.unpack("<ii", head[18:26])
    return w, abs(h)


def pairs(v3, out):
    v3 = Path(v3).resolve()
    if not (v3 / "Train_RGB").is_dir():
        fail(f"{v3} is not FASSEG's V3 folder: it has no Train_RGB folder (FASSEG_V3 is the "
             "repository's V3 folder, with Train_RGB, Train_labels, Test_RGB, Test_labels)")
    items, unlabelled, mismatched = [], 0, []
    for fs, rgb_dir, lab_dir in (("train", "Train_RGB", "Train_labels"), ("test", "Test_RGB", "Test_labels")):
        for image in sorted((v3 / rgb_dir).glob("*/*.bmp")):
            label = v3 / lab_dir / image.parent.name / image.name
            if not label.is_file():
                unlabelled += 1  # Test_RGB has poses without labels (the pose estimator's test set)
                continue
            if bmp_size(image) != bmp_size(label):
                # four test labels were drawn on a differently cropped photo: no pixel pairing holds
                mismatched.append(f"{fs}/{image.parent.name}/{image.stem}: image {bmp_size(image)}, label {bmp_size(label)}")
                continue
            stem = image.stem
            items.append({
                "id": f"{fs}/{image.parent.name}/{stem}",
                "image": str(image),
                "label_rgb": str(label),
                "group": stem[:10],  # personneNN: the person
                "fasseg_set": fs,
            })
    if not items:
        fail(f"{v3}: no labelled faces found")
    doc = {
        "schema": "facepipe/dataset",
        "schema_version": 1,
        "classes": [{"id": i, "name": n, "rgb": rgb} for i, (n, rgb) in enumerate(CLASSES)],
        "items": items,
        "provenance": [{
            "stage": "fasseg.py pairs",
            "version": "1",
            "params": {"v3": str(v3)},
            "inputs": [],
            "summary": {"items": len(items), "unlabelled_images": unlabelled,
                        "left_out_sizes_differ": mismatched,
                        "train": sum(i["fasseg_set"] == "train" for i in items),
                        "test": sum(i["fasseg_set"] == "test" for i in items)},
        }],
    }
    write(out, doc)
    s = doc["provenance"][0]["summary"]
    for m in mismatched:
        print(f"fasseg: left out {m} (the label is not of this photo's size)")
    print(f"fasseg: {s['train']} train and {s['test']} test faces from {v3} → {out}")


def every_kth(items, n):
    if n is None or n >= len(items):
        return items
    k = len(items) / n
    return [items[int(i * k)] for i in range(n)]


def split(masks, out, n_train, n_valid):
    src = Path(masks)
    doc = json.loads(src.read_text())
    base = src.resolve().parent
    by_set = {"train": [], "test": []}
    for it in doc["items"]:
        if it.get("fasseg_set") not in by_set:
            fail(f"{masks}: item {it.get('id')} has no fasseg_set: make it with `fasseg.py pairs`")
        by_set[it["fasseg_set"]].append(it)
    keep = {fs: every_kth(sorted(v, key=lambda i: i["id"]), n)
            for (fs, v), n in zip(by_set.items(), (n_train, n_valid))}
    items = []
    for fs, name in (("train", "train"), ("test", "valid")):
        for it in keep[fs]:
            it = dict(it)
            it["split"] = name
            for k in ("image", "label_rgb", "mask"):  # absolute: the manifest may be written elsewhere
                if it.get(k):
                    it[k] = str((base / it[k]).resolve())
            items.append(it)
    doc["items"] = items
    doc.pop("root", None)
    data = src.read_bytes()
    doc["provenance"].append({
        "stage": "fasseg.py split",
        "version": "1",
        "params": {"train": n_train, "valid": n_valid, "rule": "FASSEG's train/test; every k-th by name"},
        "inputs": [{"path": str(src), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}],
        "summary": {"items": len(items), "train": len(keep["train"]), "valid": len(keep["test"]),
                    "names": {"train": [i["id"] for i in keep["train"]],
                              "valid": [i["id"] for i in keep["test"]]}},
    })
    write(out, doc)
    print(f"fasseg: {len(keep['train'])} train / {len(keep['test'])} valid → {out}")


def write(path, doc):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pairs")
    p.add_argument("v3")
    p.add_argument("out")
    s = sub.add_parser("split")
    s.add_argument("masks")
    s.add_argument("out")
    s.add_argument("--train", type=int)
    s.add_argument("--valid", type=int)
    a = ap.parse_args()
    if a.cmd == "pairs":
        pairs(a.v3, a.out)
    else:
        split(a.masks, a.out, a.train, a.valid)


if __name__ == "__main__":
    main()
