#!/usr/bin/env python3
"""Step-by-step comparison with fastai: the same initial weights, the same batches, the same
schedule, then every tensor compared.

For each arch (fastai's DynamicUnet, segmentation_models_pytorch's Unet):
  facepipe  crates/unet/examples/train_steps.rs builds the model as unet-train does (seeded
            random weights), trains STEPS batches of its own loader as fit_one_cycle(EPOCHS,
            LR) would and writes every tensor (see that file);
  fastai    the PyTorch twin loads facepipe's initial weights and trains in a fastai Learner
            with Learner's defaults as unet_learner sets them (Adam: decoupled weight decay
            0.01, wd_bn_bias=False, eps 1e-5, β2 0.99; fit_one_cycle's learning-rate and
            momentum schedules; CrossEntropyLossFlat(axis=1); BatchNorm momentum 0.1), run by
            learn.fit_one_cycle(EPOCHS, LR) itself over a DataLoader of the same length as
            facepipe's, each batch swapped for facepipe's before it is used, stopped after
            STEPS.
Compared: the learning rate and momentum of each step; step 1's forward results, module by
module; each step's loss; at the --save steps every gradient, every parameter (BatchNorm's
running statistics included) and Adam's two moments; after step 1 and after the last step the
eval-mode logits on a validation batch and the validation loss as fastai computes it (AvgLoss:
batch means weighted by batch size).

The data too: facepipe's first validation batch against fastai's own DataBlock pipeline
(Resize with centre crop, ImageNet normalisation) on the same items.

Tolerance: float32 noise, measured. fastai is run again (--nudges times, 3 by default) with every
input image nudged by one float32 rounding (x·(1 + u·2⁻²³), u uniform in ±1, a new draw each
time): the most that moves a tensor is what float32 arithmetic alone can move it by. A tensor passes when its difference between
facepipe and fastai (the L2 norm of the difference over the L2 norm of fastai's tensor; for
parameters, of their change since the initial weights) is within max(FLOOR, 10 × the nudges').
The first tensor beyond it (in the order computation reaches them: forward, loss, backward
from the head, update) names the cause.

    python3 tests/parity/parity_step.py TRAIN_STEPS_BINARY SPLIT.json [--archs fastai,smp]
        [--size 128] [--bs 4] [--epochs 40] [--lr 3e-3] [--steps 10] [--seed 2020] [--train 20]

Needs torch, fastai and segmentation_models_pytorch (`make parity-step TORCH_PYTHON=...`).
"""
import argparse
import json
import math
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
try:
    import torch
    from fastai.callback.core import Callback, CancelFitException, CancelValidException
    from fastai.data.core import DataLoader, DataLoaders
    from fastai.vision.all import CrossEntropyLossFlat, DynamicUnet, Learner, create_body, resnet34
    from safetensors.torch import load_file
except ImportError as e:  # pragma: no cover - environment dependent
    print(f"parity-step: skipped ({e}); pip install torch torchvision fastai segmentation-models-pytorch")
    sys.exit(0)

FLOOR = 1e-5  # float32's relative precision is 6e-8; sums of thousands of terms reach 1e-6


def twin(arch, n_classes, size):
    if arch == "smp":
        import segmentation_models_pytorch as smp

        return smp.Unet("resnet34", encoder_weights=None, classes=n_classes)
    return DynamicUnet(create_body(resnet34(), pretrained=False), n_out=n_classes, img_size=(size, size))


def tap_names(arch):
    if arch == "smp":
        return (["encoder.relu"] + [f"encoder.layer{i}" for i in range(1, 5)] +
                [f"decoder.blocks.{i}" for i in range(5)] + ["segmentation_head"])
    return ["layers.0.2", "layers.0.4", "layers.0.5", "layers.0.6", "layers.0.7", "layers.2", "layers.3",
            "layers.4", "layers.5", "layers.6", "layers.7", "layers.8", "layers.9", "layers.10", "layers.11",
            "layers.12"]


def validate(model, b):
    """Eval-mode logits on the first validation batch, and the validation loss as fastai's
    AvgLoss computes it (batch means weighted by batch size)."""
    model.eval()
    loss_func = CrossEntropyLossFlat(axis=1)
    total, count, logits0, j = 0.0, 0, None, 0
    with torch.no_grad():
        while f"vx.{j}" in b:
            p = model(b[f"vx.{j}"])
            if j == 0:
                logits0 = p.clone()
            total += float(loss_func(p, b[f"vy.{j}"])) * p.shape[0]
            count += p.shape[0]
            j += 1
    return logits0, torch.tensor(total / count)


def run_fastai(arch, d, a, n_classes, nudge=0):
    """fastai's run of facepipe's job: returns {kind: {name: tensor}} as train_steps writes."""
    b = load_file(f"{d}/batches.safetensors")
    torch.manual_seed(0)
    model = twin(arch, n_classes, a.size)
    missing, unexpected = model.load_state_dict(load_file(f"{d}/init.safetensors"), strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    xs = {k: b[f"x.{k}"] for k in range(1, a.steps + 1)}
    if nudge:
        g = torch.Generator().manual_seed(nudge)
        xs = {k: x * (1 + (torch.rand(x.shape, generator=g) * 2 - 1) * 2.0 ** -23) for k, x in xs.items()}
    # a DataLoader as long as facepipe's epoch, so that fit_one_cycle's schedule is the same;
    # its batches are swapped for facepipe's in before_batch
    n_iter = a.n_iter
    dl = DataLoader(list(range(n_iter * a.bs)), bs=a.bs, drop_last=True, shuffle=False)
    dls = DataLoaders(dl, DataLoader(list(range(a.bs)), bs=a.bs))
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(axis=1))
    out = {"act": {}, "loss": {}, "lr": {}, "mom": {}, "eval": {}}
    names = dict(model.named_modules())
    hooks = []

    def hook(name):
        def f(_m, _i, o):
            if learn.train_iter == 0 and _m.training:  # not the evaluation after step 1
                out["act"][name] = o.detach().clone()
        return f

    for name in tap_names(arch):
        hooks.append(names[name].register_forward_hook(hook(name)))

    class Swap(Callback):
        order = 1  # after TrainEvalCallback and before anything that reads the batch

        def before_batch(self):
            k = self.learn.train_iter + 1
            self.learn.xb = (xs[k],)
            self.learn.yb = (b[f"y.{k}"],)

        def after_loss(self):
            k = self.learn.train_iter + 1
            out["loss"][k] = self.learn.loss.detach().clone()

        def before_step(self):
            k = self.learn.train_iter + 1
            h = self.learn.opt.hypers[-1]
            out["lr"][k], out["mom"][k] = torch.tensor(h["lr"]), torch.tensor(h["mom"])
            if k in a.save:
                out[f"grad.{k}"] = {n: p.grad.detach().clone() for n, p in model.named_parameters()
                                    if p.grad is not None}

        def after_step(self):
            k = self.learn.train_iter + 1
            if k in (1, a.steps):
                out["eval"][f"logits.{k}"], out["eval"][f"loss.{k}"] = validate(model, b)
                model.train()
            if k in a.save:
                out[f"param.{k}"] = {n: t.detach().clone() for n, t in model.state_dict().items()
                                     if not n.endswith("num_batches_tracked")}
                st = self.learn.opt.state
                out[f"m.{k}"] = {n: st[p]["grad_avg"].clone() for n, p in model.named_parameters() if "grad_avg" in st[p]}
                out[f"v.{k}"] = {n: st[p]["sqr_avg"].clone() for n, p in model.named_parameters() if "sqr_avg" in st[p]}

        def before_validate(self):
            raise CancelValidException()  # the loader is a stand-in; validation is compared below

        def after_batch(self):
            if self.learn.train_iter >= a.steps:  # TrainEvalCallback (order -10) has counted this step
                raise CancelFitException()

    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(a.epochs, a.lr, cbs=Swap())
    for h in hooks:
        h.remove()
    assert len(out["loss"]) == a.steps, f"fastai ran {len(out['loss'])} steps, not {a.steps}"

    return out


def data_check(split, d, a):
    """facepipe's first validation batch against fastai's own pipeline on the same items
    (Resize(size, method=Crop): the centre crop, bilinear for photos, nearest for masks;
    ImageNet normalisation). Photos may differ by one 8-bit level (rounding), masks not at all."""
    from fastai.vision.all import (DataBlock, FuncSplitter, ImageBlock, MaskBlock, Normalize, Resize,
                                   ResizeMethod, imagenet_stats)
    m = json.loads(Path(split).read_text())
    base = Path(split).resolve().parent
    items = [(str(base / it["image"]), str(base / it["mask"]), it["split"] == "valid")
             for it in m["items"] if it.get("mask") and it.get("split")]
    block = DataBlock(blocks=(ImageBlock, MaskBlock([c["name"] for c in m["classes"]])),
                      get_x=lambda i: items[i][0], get_y=lambda i: items[i][1],
                      splitter=FuncSplitter(lambda i: items[i][2]),
                      item_tfms=Resize(a.size, method=ResizeMethod.Crop),
                      batch_tfms=Normalize.from_stats(*imagenet_stats))
    dls = block.dataloaders(list(range(len(items))), bs=a.bs, num_workers=0, device="cpu")
    x, y = dls.valid.one_batch()
    b = load_file(f"{d}/batches.safetensors")
    level = 1 / 255 / min(imagenet_stats[1])  # one 8-bit level, normalised
    dx = (x.as_subclass(torch.Tensor) - b["vx.0"]).abs().max().item()
    same = (y.as_subclass(torch.Tensor) == b["vy.0"]).float().mean().item()
    ok = dx <= level * 1.001 and same == 1.0
    print(f"  data: facepipe's validation batch against fastai's pipeline: photos within {dx:.4f} "
          f"(one 8-bit level is {level:.4f}), masks equal on {100 * same:.2f} % of pixels: "
          f"{'ok' if ok else 'DIFFERENT'}")
    return ok


def facepipe_side(d, a):
    b = load_file(f"{d}/batches.safetensors")
    out = {"act": load_file(f"{d}/act.safetensors"),
           "loss": {k: b[f"loss.{k}"].reshape(()) for k in range(1, a.steps + 1)},
           "lr": {k: b[f"lr.{k}"] for k in range(1, a.steps + 1)},
           "mom": {k: b[f"mom.{k}"] for k in range(1, a.steps + 1)},
           "eval": load_file(f"{d}/eval.safetensors")}
    for k in a.save:
        for kind in ("grad", "param", "m", "v"):
            out[f"{kind}.{k}"] = load_file(f"{d}/{kind}.{k}.safetensors")
    return out


def rel(x, y, base=None):
    """‖x − y‖ / ‖y − base‖ (base: the tensor's starting value, for parameters)."""
    x, y = x.double(), y.double()
    ref = y if base is None else y - base.double()
    den = ref.norm().item()
    num = (x - y).norm().item()
    if den == 0:
        return 0.0 if num == 0 else math.inf
    return num / den


def compare(arch, ours, theirs, nudges, init, a):
    """Rows of (what, name, rel, limit, floor), in the order computation reaches them; the
    floor is the most any of the nudged runs moved the tensor."""
    rows = []

    def add(what, name, x, y, z, base=None):
        r, floor = rel(x, y, base), max(rel(zi, y, base) for zi in z)
        rows.append((what, name, r, max(FLOOR, 10 * floor), floor))

    for k in range(1, a.steps + 1):
        for what in ("lr", "mom"):
            add(what, f"step {k}", ours[what][k].reshape(()), theirs[what][k].reshape(()),
                [theirs[what][k].reshape(())])
    for name in tap_names(arch):
        add("forward 1", name, ours["act"][name], theirs["act"][name], [n["act"][name] for n in nudges])
    for k in range(1, a.steps + 1):
        add("loss", f"step {k}", ours["loss"][k], theirs["loss"][k], [n["loss"][k] for n in nudges])
    for k in a.save:
        for kind in ("grad", "m", "v", "param"):
            key = f"{kind}.{k}"
            theirs_k = theirs[key]
            names = list(theirs_k)
            if kind == "grad":
                names.reverse()  # backward reaches the head first
            for name in names:
                if name not in ours[key]:
                    rows.append((key, name, math.inf, 0.0, 0.0))
                    continue
                base = init.get(name) if kind == "param" else None
                add(key, name, ours[key][name], theirs_k[name], [n[key][name] for n in nudges], base)
    for k in (1, a.steps):
        add(f"eval.{k}", "logits", ours["eval"][f"logits.{k}"], theirs["eval"][f"logits.{k}"],
            [n["eval"][f"logits.{k}"] for n in nudges])
        add(f"eval.{k}", "valid loss", ours["eval"][f"loss.{k}"].reshape(()), theirs["eval"][f"loss.{k}"].reshape(()),
            [n["eval"][f"loss.{k}"].reshape(()) for n in nudges])
    return rows


def report(arch, rows):
    beyond = [r for r in rows if not r[2] <= r[3]]
    groups = {}
    for what, name, r, limit, floor in rows:
        g = groups.setdefault(what, [0, 0.0, "", 0.0])
        g[0] += 1
        if r >= g[1]:
            g[1], g[2], g[3] = r, name, limit
    print(f"{arch}: {len(rows)} tensors compared")
    print(f"  {'what':10} {'n':>4}  {'worst':>9}  {'its limit':>9}  worst at")
    for what, (n, worst, name, limit) in groups.items():
        print(f"  {what:10} {n:4}  {worst:9.2e}  {limit:9.2e}  {name}")
    if beyond:
        what, name, r, limit, floor = beyond[0]
        print(f"  FIRST BEYOND float32 noise: {what} {name}: {r:.3e} > {limit:.3e} (nudges {floor:.1e}); "
              f"{len(beyond)} tensors beyond in all")
    else:
        print("  every tensor within float32 noise")
    return not beyond


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("split")
    ap.add_argument("--archs", default="fastai,smp")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--bs", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--save", default="1,2,10")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--valid", type=int, default=8)
    ap.add_argument("--nudges", type=int, default=3, help="nudged fastai runs that measure float32 noise")
    a = ap.parse_args()
    a.save = [int(s) for s in a.save.split(",")]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    m = json.loads(Path(a.split).read_text())
    n_classes = len(m["classes"])
    a.n_iter = sum(1 for it in m["items"] if it.get("split") == "train" and it.get("mask")) // a.bs
    ok = True
    for arch in a.archs.split(","):
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([a.binary, arch, a.split, d, "--size", str(a.size), "--bs", str(a.bs),
                            "--seed", str(a.seed), "--epochs", str(a.epochs), "--lr", str(a.lr),
                            "--steps", str(a.steps), "--save", ",".join(map(str, a.save)),
                            "--valid", str(a.valid)], check=True)
            ours = facepipe_side(d, a)
            theirs = run_fastai(arch, d, a, n_classes)
            nudges = [run_fastai(arch, d, a, n_classes, nudge=s) for s in range(1, a.nudges + 1)]
            init = load_file(f"{d}/init.safetensors")
            ok &= report(arch, compare(arch, ours, theirs, nudges, init, a))
            ok &= data_check(a.split, d, a)
    print("parity-step: " + ("ok" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
