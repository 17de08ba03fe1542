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
module; each step's loss; at the --save steps (1, 2, 9, 10) every gradient, every parameter
(BatchNorm's running statistics included) and Adam's two moments; after step 1 and after the
last step the eval-mode logits on a validation batch and the validation loss as fastai computes
it (AvgLoss: batch means weighted by batch size).

The data too: facepipe's first validation batch against fastai's own DataBlock pipeline
(Resize with centre crop, ImageNet normalisation) on the same items.

Tolerance: float32 noise, measured. fastai is run again (--nudges times, 3 by default) with every
input image nudged by one float32 rounding (x·(1 + u·2⁻²³), u uniform in ±1, a new draw each
time): the most that moves a tensor is what float32 arithmetic alone can move it by. A tensor
passes when its difference between facepipe and fastai (the L2 norm of the difference over the
L2 norm of fastai's tensor; for running statistics, of their change since the initial values)
is within max(FLOOR, 10 × the nudges'). The first tensor beyond it (in the order computation
reaches them: forward, loss, backward from the head, update) names the cause.

The optimiser's own state is judged another way. Adam divides each gradient by its running RMS,
so its first steps move every weight by about ±lr whatever the gradient's size: a gradient
element near zero that float32 noise flips in sign (tens of thousands of the 24–41 million at
step 1, in facepipe and in the nudged fastai runs alike) moves its weight the other way, and
from then on the two runs' trained parameters and moments differ by more than their gradients
do. So each saved step k whose step k − 1 is saved too is replayed: fastai's own optimiser
(fastai.optimizer.Adam with the hyper-parameters fastai's run had at step k and its do_wd flags)
is applied to facepipe's gradients of step k from facepipe's state after step k − 1, and
facepipe's state after step k must be what it gives ("update.k"): Adam's moments within FLOOR,
each parameter element within what float32 can leave between two correct updates done in
another order (update_allowance). The trained parameters and moments against fastai's run are
still printed, marked "not judged", with the count of sign-flipped gradient elements: with the
gradients within noise and the update fastai's, they are what fastai would have made of them.

    python3 tests/parity/parity_step.py TRAIN_STEPS_BINARY SPLIT.json [--archs fastai,smp]
        [--size 128] [--bs 4] [--epochs 40] [--lr 3e-3] [--steps 10] [--save 1,2,9,10] [--seed 2020]

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
    out = {"act": {}, "loss": {}, "lr": {}, "mom": {}, "eval": {}, "hypers": {}}
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
            out["hypers"][k] = dict(h)
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
    # which parameters fastai decays (wd_bn_bias=False: not BatchNorm's nor any bias)
    out["do_wd"] = {n: learn.opt.state[p].get("do_wd", True) for n, p in model.named_parameters()}

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


def replay(ours, theirs, init, a):
    """fastai's own optimiser (fastai.optimizer.Adam, with the hyper-parameters fastai's run had
    at that step and its do_wd flags) applied to facepipe's gradients of step k, from facepipe's
    state after step k − 1: what fastai would have made of facepipe's gradients. Returns
    {"param.k"/"m.k"/"v.k": {name: tensor}} for each saved step whose previous state is saved
    too (or is the start)."""
    from fastai.optimizer import Adam

    out = {}
    for k in a.save:
        if k > 1 and k - 1 not in a.save:
            continue
        grads = ours[f"grad.{k}"]
        start = init if k == 1 else ours[f"param.{k - 1}"]
        params = {n: torch.nn.Parameter(start[n].detach().clone().float()) for n in theirs["do_wd"]}
        for n, prm in params.items():
            prm.grad = grads[n].detach().clone().float()
        opt = Adam(list(params.values()), lr=a.lr)
        for h, v in theirs["hypers"][k].items():
            opt.set_hyper(h, float(v))
        for n, prm in params.items():
            st = {"do_wd": theirs["do_wd"][n]}
            if k > 1:
                st.update(grad_avg=ours[f"m.{k - 1}"][n].clone(), sqr_avg=ours[f"v.{k - 1}"][n].clone(), step=k - 1)
            opt.state[prm] = st
        opt.step()
        out[f"param.{k}"] = {n: prm.detach() for n, prm in params.items()}
        out[f"m.{k}"] = {n: opt.state[prm]["grad_avg"] for n, prm in params.items()}
        out[f"v.{k}"] = {n: opt.state[prm]["sqr_avg"] for n, prm in params.items()}
        out[f"allow.{k}"] = {
            n: update_allowance(ours[f"param.{k}"][n], out[f"param.{k}"][n], start[n], grads[n],
                                torch.zeros_like(grads[n]) if k == 1 else ours[f"m.{k - 1}"][n],
                                out[f"v.{k}"][n], {h: float(v) for h, v in theirs["hypers"][k].items()}, k)
            for n in params}
        out[f"start.{k}"] = start
    return out


def ulp(t):
    """float32's unit in the last place of |t|, element-wise, as float64."""
    t = t.abs().float()
    return (torch.nextafter(t, torch.full_like(t, math.inf)) - t).double()


def update_allowance(x, y, start, grad, m_prev, v_new, h, k):
    """What float32 can leave between two correct Adam updates of one parameter done in another
    order, element-wise: one unit in the last place of the value for each of the two roundings
    into it (weight decay, the step); the step's error from m = β·m + (1 − β)·g rounded (one unit
    of each term: where the terms nearly cancel, m keeps few correct digits) scaled as the step
    scales m; and 1e-5 of the step for the rest of its arithmetic (the square root, the division)."""
    big = torch.maximum(torch.maximum(start.abs(), y.abs()), x.abs())
    d1, d2 = 1 - h["mom"] ** k, 1 - h["sqr_mom"] ** k
    m_err = ulp(h["mom"] * m_prev) + ulp((1 - h["mom"]) * grad)
    scale = h["lr"] / d1 / ((v_new.double() / d2).sqrt() + h["eps"])
    return 2 * ulp(big) + scale * m_err + 1e-5 * (y.double() - start.double()).abs()


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
    """Rows of (what, name, difference, limit, floor, judged), in the order computation reaches
    them; the floor is the most any of the nudged runs moved the tensor.

    The optimiser's state (Adam's moments and the trained parameters, not BatchNorm's running
    statistics) is judged against fastai's optimiser replayed on facepipe's own gradients
    ("update.k"), not against fastai's run: Adam divides each gradient by its running RMS, so at
    step 1 every weight moves by about ±lr whatever its gradient's size, and a gradient element
    that float32 noise flips in sign moves its weight the other way. Those states are still
    shown against fastai's, unjudged, with the count of such sign flips."""
    rows = []

    def add(what, name, x, y, z, base=None, judged=True):
        r, floor = rel(x, y, base), max(rel(zi, y, base) for zi in z)
        rows.append((what, name, r, max(FLOOR, 10 * floor), floor, judged))

    for k in range(1, a.steps + 1):
        for what in ("lr", "mom"):
            add(what, f"step {k}", ours[what][k].reshape(()), theirs[what][k].reshape(()),
                [theirs[what][k].reshape(())])
    for name in tap_names(arch):
        add("forward 1", name, ours["act"][name], theirs["act"][name], [n["act"][name] for n in nudges])
    for k in range(1, a.steps + 1):
        add("loss", f"step {k}", ours["loss"][k], theirs["loss"][k], [n["loss"][k] for n in nudges])
    trained = set(theirs["do_wd"])
    replayed = replay(ours, theirs, init, a)
    for k in a.save:
        for kind in ("grad", "m", "v", "param"):
            key = f"{kind}.{k}"
            theirs_k = theirs[key]
            names = list(theirs_k)
            if kind == "grad":
                names.reverse()  # backward reaches the head first
            for name in names:
                if name not in ours[key]:
                    rows.append((key, name, math.inf, 0.0, 0.0, True))
                    continue
                base = init.get(name) if kind == "param" else None
                judged = kind == "grad" or name not in trained
                add(key, name, ours[key][name], theirs_k[name], [n[key][name] for n in nudges], base, judged)
        if f"param.{k}" not in replayed:
            continue
        for kind in ("m", "v"):
            for name, t in replayed[f"{kind}.{k}"].items():
                rows.append((f"update.{k}", f"{kind} {name}", rel(ours[f"{kind}.{k}"][name], t), FLOOR, 0.0, True))
        for name, t in replayed[f"param.{k}"].items():
            x = ours[f"param.{k}"][name].double()
            worst = ((x - t.double()).abs() / replayed[f"allow.{k}"][name]).max().item()
            rows.append((f"update.{k}", name, worst, 1.0, 0.0, True))
    for k in (1, a.steps):
        add(f"eval.{k}", "logits", ours["eval"][f"logits.{k}"], theirs["eval"][f"logits.{k}"],
            [n["eval"][f"logits.{k}"] for n in nudges])
        add(f"eval.{k}", "valid loss", ours["eval"][f"loss.{k}"].reshape(()), theirs["eval"][f"loss.{k}"].reshape(()),
            [n["eval"][f"loss.{k}"].reshape(()) for n in nudges])
    return rows


def sign_flips(ours, theirs, nudges, k=1):
    """Gradient elements of step k whose sign differs from fastai's: facepipe's, and the most
    of any nudged fastai run's; and how many elements there are."""
    def flips(g):
        return sum(int((torch.sign(g[n]) != torch.sign(t)).sum()) for n, t in theirs[f"grad.{k}"].items())
    total = sum(t.numel() for t in theirs[f"grad.{k}"].values())
    return flips(ours[f"grad.{k}"]), max(flips(n[f"grad.{k}"]) for n in nudges), total


def report(arch, rows, flips):
    beyond = [r for r in rows if r[5] and not r[2] <= r[3]]
    groups = {}
    for what, name, r, limit, floor, judged in rows:
        g = groups.setdefault(what if judged else f"{what}*", [0, 0.0, "", 0.0])
        g[0] += 1
        if r >= g[1]:
            g[1], g[2], g[3] = r, name, limit
    print(f"{arch}: {sum(1 for r in rows if r[5])} tensors judged, {sum(1 for r in rows if not r[5])} shown")
    print(f"  {'what':10} {'n':>4}  {'worst':>9}  {'its limit':>9}  worst at")
    for what, (n, worst, name, limit) in groups.items():
        shown = "(not judged)" if what.endswith("*") else f"{limit:9.2e}"
        print(f"  {what:10} {n:4}  {worst:9.2e}  {shown:>9}  {name}")
    ours, nudged, total = flips
    print(f"  * Adam's moments and trained parameters against fastai's run, not judged: gradient elements of "
          f"step 1 with fastai's opposite sign: {ours} of {total} (a nudged fastai run: up to {nudged}); "
          f"each moves its weight by about 2·lr the other way. update.k judges them: fastai's optimiser "
          f"replayed on facepipe's gradients (m, v: relative difference; parameters: the largest "
          f"element-wise difference in units of float32's rounding of an Adam step)")
    if beyond:
        what, name, r, limit, floor, _ = beyond[0]
        print(f"  FIRST BEYOND float32 noise: {what} {name}: {r:.3e} > {limit:.3e} (nudges {floor:.1e}); "
              f"{len(beyond)} tensors beyond in all")
    else:
        print("  every judged tensor within float32 noise")
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
    ap.add_argument("--save", default="1,2,9,10", help="steps whose tensors are compared (update.k needs k − 1 too)")
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
            ok &= report(arch, compare(arch, ours, theirs, nudges, init, a), sign_flips(ours, theirs, nudges))
            ok &= data_check(a.split, d, a)
    print("parity-step: " + ("ok" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
