#!/usr/bin/env python3
"""Learning-curve parity: fastai itself against unet-train, on the same split, from random
initial weights, with the same job (size, batch, epochs, fit_one_cycle(N, LR)).

For each arch and seed:
  fastai   unet_learner(dls, resnet34, pretrained=False, n_out=C) (DynamicUnet), or for smp
           segmentation_models_pytorch.Unet(resnet34, encoder_weights=None) in a fastai Learner
           (fastai's Adam, one-cycle, CrossEntropyLossFlat), data as facepipe prepares it
           (Resize(size) by cropping: random in training, centre in validation; ImageNet
           normalisation);
  facepipe unet-train --arch ARCH --size SIZE --bs BS --seed SEED with a recipe of one
           fit_one_cycle(N, LR) and no early stopping.
Prints the valid loss after each epoch and the final foreground mean IoU (global sums over
the valid set, classes present, background left out: what unet-train's metrics.csv reports),
then mean ± sd per side.

    python3 tests/parity/fastai_learning.py SPLIT.json UNET_TRAIN_BINARY \
        [--epochs 5] [--seeds 1,2,3] [--archs fastai,smp] [--size 128] [--bs 4] [--lr 3e-3] \
        [--train N] [--valid M]

--fastai-cache FILE keeps fastai's results (its runs are deterministic: set_seed(seed,
reproducible=True); two runs of the same job give the same curve to the last digit) keyed by
what determines them: the photos' and masks' bytes, the split, the classes, the job, the seed,
and the torch and fastai versions. A rerun then measures only facepipe; delete the file (or
change any of those) and fastai runs again.

--train/--valid keep the first N train and M valid items of the split (in its order), so a long
job (40 epochs) can be run at the scale it was first seen at (20 train / 50 valid images); both
sides read the same subset, written as a manifest of absolute paths in a temporary folder.

Needs torch, fastai and segmentation_models_pytorch (`make parity-fastai TORCH_PYTHON=...`).
"""
import argparse
import csv
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
try:
    import numpy as np
    import torch
    from fastai.vision.all import (CrossEntropyLossFlat, DataBlock, FuncSplitter, ImageBlock,
                                   Learner, MaskBlock, Normalize, Resize, ResizeMethod,
                                   imagenet_stats, resnet34, set_seed, unet_learner)
except ImportError as e:  # pragma: no cover - environment dependent
    print(f"fastai parity: skipped ({e}); pip install torch torchvision fastai segmentation-models-pytorch")
    sys.exit(0)


def subset_split(path, n_train, n_valid, work):
    """The split with only its first n_train train and n_valid valid items (None = all), its
    paths made absolute, written into `work`; returns the new manifest's path."""
    m = json.loads(Path(path).read_text())
    base = Path(path).resolve().parent
    keep, seen = [], {"train": 0, "valid": 0}
    limit = {"train": n_train, "valid": n_valid}
    for it in m["items"]:
        s = it.get("split")
        if not it.get("mask") or s not in seen:
            continue
        if limit[s] is not None and seen[s] >= limit[s]:
            continue
        seen[s] += 1
        it = dict(it)
        for k in ("image", "label_rgb", "mask"):
            if it.get(k):
                it[k] = str(base / it[k])
        keep.append(it)
    for s, n in limit.items():
        if n is not None and seen[s] < n:
            sys.exit(f"{path}: asked for {n} {s} items, the split has {seen[s]}")
    m["items"] = keep
    m["root"] = str(base / m["root"]) if m.get("root") else m.get("root")
    out = Path(work) / "subset.json"
    out.write_text(json.dumps(m))
    return str(out)


def load_split(path):
    m = json.loads(Path(path).read_text())
    base = Path(path).resolve().parent
    items = [(str(base / it["image"]), str(base / it["mask"]), it["split"] == "valid")
             for it in m["items"] if it.get("mask") and it.get("split")]
    codes = [c["name"] for c in m["classes"]]
    return items, codes


def job_key(items, codes, arch, seed, a):
    """What fastai's result depends on, as one string: the data's bytes and roles, the classes,
    the job, the seed, and the library versions."""
    import fastai

    h = hashlib.sha256()
    for image, mask, valid in items:
        h.update(Path(image).read_bytes())
        h.update(Path(mask).read_bytes())
        h.update(b"v" if valid else b"t")
    h.update(json.dumps(codes).encode())
    return (f"{arch} seed {seed} epochs {a.epochs} lr {a.lr} size {a.size} bs {a.bs} "
            f"torch {torch.__version__} fastai {fastai.__version__} data {h.hexdigest()[:16]}")


def cached_fastai(items, codes, arch, seed, a):
    """run_fastai, through --fastai-cache when it is given; and whether it came from there."""
    if not a.fastai_cache:
        return (*run_fastai(items, codes, arch, seed, a), False)
    path = Path(a.fastai_cache)
    cache = json.loads(path.read_text()) if path.exists() else {}
    key = job_key(items, codes, arch, seed, a)
    if key in cache:
        c = cache[key]
        return c["valid_loss"], c["fg_iou"], c.get("class_iou"), True
    curve, iou, per_class = run_fastai(items, codes, arch, seed, a)
    cache = json.loads(path.read_text()) if path.exists() else {}
    cache[key] = {"valid_loss": curve, "fg_iou": iou, "class_iou": per_class}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(cache, indent=1))
    tmp.replace(path)
    return curve, iou, per_class, False


def class_iou(conf, codes):
    """Each class's IoU over the valid set (None where it is neither in the masks nor
    predicted)."""
    inter = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - inter
    return {codes[c]: (float(inter[c] / union[c]) if union[c] > 0 else None) for c in range(len(conf))}


def fg_iou(conf):
    inter = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - inter
    ious = [inter[c] / union[c] for c in range(1, len(conf)) if union[c] > 0]
    return float(np.mean(ious)) if ious else float("nan")


def run_fastai(items, codes, arch, seed, a):
    set_seed(seed, reproducible=True)
    block = DataBlock(
        blocks=(ImageBlock, MaskBlock(codes)),
        get_x=lambda i: items[i][0], get_y=lambda i: items[i][1],
        splitter=FuncSplitter(lambda i: items[i][2]),
        item_tfms=Resize(a.size, method=ResizeMethod.Crop),
        batch_tfms=Normalize.from_stats(*imagenet_stats))
    dls = block.dataloaders(list(range(len(items))), bs=a.bs, num_workers=0, device="cpu")
    if arch == "fastai":
        learn = unet_learner(dls, resnet34, pretrained=False, n_out=len(codes), normalize=False)
    else:
        import segmentation_models_pytorch as smp
        model = smp.Unet("resnet34", encoder_weights=None, classes=len(codes))
        learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(axis=1))
    losses = []

    from fastai.callback.core import Callback

    class Record(Callback):
        order = 99  # after the Recorder has stored the epoch's values

        def after_epoch(self):
            losses.append(float(self.recorder.values[-1][1]))

    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(a.epochs, a.lr, cbs=Record())
        preds, targs = learn.get_preds()
    p = preds.argmax(1).flatten().numpy()
    t = targs.flatten().numpy()
    keep = t != 255
    conf = np.bincount(t[keep] * len(codes) + p[keep], minlength=len(codes) ** 2).reshape(len(codes), -1)
    return losses, fg_iou(conf), class_iou(conf, codes)


def run_facepipe(split, binary, arch, seed, a, work):
    out = Path(work) / f"{arch}-{seed}"
    recipe = Path(work) / "recipe.json"
    recipe.write_text(json.dumps({"patience": None, "steps": [
        {"fit_one_cycle": {"epochs": a.epochs, "lr_max": a.lr}}]}))
    subprocess.run([binary, "-i", split, "--out-dir", str(out), "--arch", arch, "--size", str(a.size),
                    "--bs", str(a.bs), "--seed", str(seed), "--recipe", str(recipe), "-q"], check=True)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    last = rows[-1]
    per_class = {k[len("iou_"):]: (float(v) if v not in ("", "nan") else None)
                 for k, v in last.items() if k.startswith("iou_")}
    return [float(r["valid_loss"]) for r in rows], float(last["mean_iou_fg"]), per_class


def overlap_report(arch, curves):
    """Per epoch, each side's valid-loss mean ± sd over the seeds, and whether the two
    mean ± sd bands overlap; then how many epochs overlap."""
    f, p = curves["fastai"], curves["facepipe"]
    n = min(min(map(len, f)), min(map(len, p)))
    hits = 0
    print(f"{arch:6} epoch  fastai valid loss   facepipe valid loss   bands overlap")
    for e in range(n):
        fv, pv = [c[e] for c in f], [c[e] for c in p]
        fm, pm = statistics.mean(fv), statistics.mean(pv)
        fs = statistics.stdev(fv) if len(fv) > 1 else 0.0
        ps = statistics.stdev(pv) if len(pv) > 1 else 0.0
        ok = abs(fm - pm) <= fs + ps
        hits += ok
        print(f"{arch:6} {e:5}  {fm:.4f} ± {fs:.4f}     {pm:.4f} ± {ps:.4f}       {'yes' if ok else 'no'}")
    print(f"{arch:6} valid-loss bands overlap in {hits} of {n} epochs")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("split")
    ap.add_argument("binary")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--archs", default="fastai,smp")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--bs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--fastai-cache", help="JSON file of fastai's results, reused when the job is the same")
    ap.add_argument("--train", type=int, help="use only the split's first N train items")
    ap.add_argument("--valid", type=int, help="use only the split's first M valid items")
    a = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    seeds = [int(s) for s in a.seeds.split(",")]
    with tempfile.TemporaryDirectory() as work:
        if a.train is not None or a.valid is not None:
            a.split = subset_split(a.split, a.train, a.valid, work)
        items, codes = load_split(a.split)
        print(f"{len(items)} items ({sum(v for *_, v in items)} valid), {len(codes)} classes; "
              f"size {a.size}, batch {a.bs}, fit_one_cycle({a.epochs}, {a.lr}), seeds {seeds}")
        for arch in a.archs.split(","):
            final = {"fastai": [], "facepipe": []}
            curves = {"fastai": [], "facepipe": []}
            for seed in seeds:
                for side in ("fastai", "facepipe"):
                    t0, cached = time.monotonic(), False
                    if side == "fastai":
                        curve, iou, per_class, cached = cached_fastai(items, codes, arch, seed, a)
                    else:
                        curve, iou, per_class = run_facepipe(a.split, a.binary, arch, seed, a, work)
                    final[side].append(iou)
                    curves[side].append(curve)
                    print(f"{arch:6} seed {seed} {side:8} valid loss " +
                          " ".join(f"{v:.4f}" for v in curve) +
                          f"   fg IoU {iou:.4f}   " +
                          ("(cached)" if cached else f"{time.monotonic() - t0:.0f} s"), flush=True)
                    if per_class:
                        print(f"{arch:6} seed {seed} {side:8} class IoU " + ", ".join(
                            f"{c} {'–' if v is None else f'{v:.3f}'}" for c, v in per_class.items()), flush=True)
            for side, v in final.items():
                sd = statistics.stdev(v) if len(v) > 1 else 0.0
                print(f"{arch:6} {side:8} final foreground IoU {statistics.mean(v):.4f} ± {sd:.4f} (n={len(v)})")
            overlap_report(arch, curves)
            f, p = final["fastai"], final["facepipe"]
            sd = statistics.stdev(f) if len(f) > 1 else 0.0
            verdict = "within" if statistics.mean(p) >= statistics.mean(f) - sd else "BELOW"
            print(f"{arch:6} facepipe mean is {verdict} fastai's mean minus one sd")


if __name__ == "__main__":
    main()
