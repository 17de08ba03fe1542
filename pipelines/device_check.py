#!/usr/bin/env python3
"""Checks that a GPU device (--device wgpu, cuda, ...) trains and predicts as the CPU does.

Uses only the Python standard library and the stage binaries, so the same checks run in CI on a
software Vulkan (lavapipe: `make test-wgpu`) and on a GPU machine that has no Rust
(`pipelines/gpu-check.sh`). First `unet-train --check-device` compares every operation the
model trains with, and both UNets' training step, with the CPU's (forward and gradients, from
the same inputs). Then, on a tiny demo set (8 training faces at 32x32, batch 8, so each epoch
is one optimiser step):

  1. the same seed on DEVICE and on the CPU starts from the same weights (unet-train takes the
     CPU's initial weights on every device) and gives the same losses for the first steps:
     train loss within LOSS_TOL (relative, 1e-2) for steps 1-3, the validation loss likewise;
  2. DEVICE's training loss falls (the last step's below 0.8 of the first);
  3. a run stopped as a kill would after half the steps and resumed with --resume ends as the
     uninterrupted run on DEVICE does (every loss within RESUME_TOL, relative);
  4. unet-eval on DEVICE predicts the class unet-eval on the CPU predicts for the same weights
     on >= 99 % of pixels (DEVICE's predictions scored against the CPU's as if they were the
     truth), and its validation loss is the CPU's within LOSS_TOL.

  device_check.py --bin DIR --device wgpu [--cpu-bin DIR] [--work DIR] [--arch smp|fastai]

--bin holds unet-train and unet-eval built with the device's feature; --cpu-bin (default --bin)
the other stages. Prints every figure; exits 0 when every check passes, 1 when one fails, 2 when
it could not run (a missing binary, a stage that failed).
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

# Relative differences a float32 network shows between two backends on the same weights and
# batch. At 32x32 the encoder's last stage is 1x1, so its BatchNorms normalise 8 values per
# channel, many of them ReLU's zeros: a near-zero variance turns the backends' different
# summation orders (each operation agrees to 1e-6, see --check-device) into loss differences
# of about 1e-3 (lavapipe: 1.2e-3 to 2.0e-3 over steps 1-3). A wrong operation is far beyond.
LOSS_TOL = 1e-2
RESUME_TOL = 1e-4
AGREEMENT = 0.99
STEPS = 6
# The stages run from the home folder: burn-wgpu keeps its autotune results in the `target/` of
# the Cargo project a run starts in, or else in ~/.cache/cubecl, which outlives a clone (CI).
CWD = os.path.expanduser("~")


def say(*a):
    print(*a, flush=True)


class Failed(Exception):
    pass


def run(cmd, log, what):
    """Runs a stage; its stderr goes to `log`. A failure stops the check (exit 2)."""
    t = time.time()
    with open(log, "ab") as f:
        f.write(("$ " + " ".join(map(str, cmd)) + "\n").encode())
        f.flush()
        r = subprocess.run([str(c) for c in cmd], stdout=subprocess.DEVNULL, stderr=f, cwd=CWD)
    if r.returncode != 0:
        with open(log, errors="replace") as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"{what} failed (exit {r.returncode}):\n{tail}")
    return time.time() - t


def rel(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def metrics(model_dir):
    with open(os.path.join(model_dir, "metrics.csv")) as f:
        return [{k: float(v) for k, v in row.items() if k in ("train_loss", "valid_loss")}
                for row in csv.DictReader(f)]


def model_scores(eval_dir, split):
    """The model-resolution scores of one split in unet-eval's eval.json."""
    with open(os.path.join(eval_dir, "eval.json")) as f:
        e = json.load(f)
    for g in e["groups"]:
        if g["name"] == split:
            return g["full_resolution"], g["model_resolution"]
    raise RuntimeError(f"{eval_dir}/eval.json has no group {split!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="unet-train and unet-eval built for --device")
    ap.add_argument("--cpu-bin", help="the other stages (default: --bin)")
    ap.add_argument("--device", required=True, help="wgpu, wgpu:N, cuda or cuda:N")
    ap.add_argument("--arch", default="smp", choices=["smp", "fastai"])
    ap.add_argument("--work", help="working folder (default: a new temporary one, removed on success)")
    a = ap.parse_args()
    dev_bin = os.path.abspath(a.bin)
    cpu_bin = os.path.abspath(a.cpu_bin or a.bin)
    for d, names in ((dev_bin, ["unet-train", "unet-eval"]),
                     (cpu_bin, ["demo-faces", "xml-pairs", "rgb2class", "split", "unet-train", "unet-eval"])):
        for n in names:
            if not os.access(os.path.join(d, n), os.X_OK):
                say(f"device_check: {d}/{n} is missing or not executable")
                return 2
    work = os.path.abspath(a.work or tempfile.mkdtemp(prefix="device-check-"))
    os.makedirs(work, exist_ok=True)
    log = os.path.join(work, "stages.log")
    try:
        failures = check(a, dev_bin, cpu_bin, work, log)
    except RuntimeError as e:
        say(f"device_check: {e}")
        say(f"device_check: could not run; the stages' output is in {log}{drop_weights(a, work)}")
        return 2
    if failures:
        for f in failures:
            say(f"FAILED: {f}")
        say(f"device_check: {len(failures)} check(s) failed on {a.device}; the stages' output is in {log}"
            f"{drop_weights(a, work)}")
        return 1
    say(f"device_check: every check passed on {a.device}")
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def drop_weights(a, work):
    """After a failure in a folder of its own (no --work), the logs, manifests and metrics stay
    for reading, and the model weights and optimiser states (about 2 GB over the runs, on a
    machine's /tmp) go. Returns what to add to the message."""
    if a.work:
        return ""
    freed = 0
    for root, _, files in os.walk(work):
        for f in files:
            if f.endswith((".bpk", ".safetensors")):
                p = os.path.join(root, f)
                freed += os.path.getsize(p)
                os.remove(p)
    return f" (its weight files, {freed / 2**20:.0f} MiB, were removed; --work DIR keeps them)" if freed else ""


def check(a, dev_bin, cpu_bin, work, log):
    t0 = time.time()
    cpu = lambda n: os.path.join(cpu_bin, n)  # noqa: E731
    dev = lambda n: os.path.join(dev_bin, n)  # noqa: E731
    d = os.path.join(work, "data")
    run([cpu("demo-faces"), "--out-dir", d, "--count", 10, "--size", 64, "--seed", 7, "-q"], log, "demo-faces")
    run([cpu("xml-pairs"), "-i", f"{d}/training.xml", "-o", f"{work}/pairs.json"], log, "xml-pairs")
    run([cpu("rgb2class"), "-i", f"{work}/pairs.json", "-o", f"{work}/masks.json", "--out-dir", f"{work}/masks",
         "-q"], log, "rgb2class")
    run([cpu("split"), "-i", f"{work}/masks.json", "-o", f"{work}/split.json", "--valid-pct", "0.2"], log, "split")
    recipe = os.path.join(work, "recipe.json")
    with open(recipe, "w") as f:
        json.dump({"patience": None, "steps": [{"fit_one_cycle": {"epochs": STEPS, "lr_max": 1e-3}}]}, f)

    def train_cmd(binary, out, device, *extra):
        """unet-train on the tiny set into `out`, as every run of this check trains."""
        return [str(c) for c in [binary, "-i", f"{work}/split.json", "--out-dir", out, "--device", device, "--arch",
                                 a.arch, "--size", 32, "--bs", 8, "--seed", 2020, "--recipe", recipe, *extra]]

    def train(binary, out, device, *extra):
        return run(train_cmd(binary, out, device, *extra), log,
                   f"unet-train --device {device} {' '.join(map(str, extra))}".strip())

    failures = []
    secs = {}
    # 0. every operation, forward and gradients, and both UNets' training step
    t = time.time()
    r = subprocess.run([dev("unet-train"), "--check-device", "--device", a.device], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, cwd=CWD)
    secs["check-device"] = time.time() - t
    say(r.stderr.rstrip())
    if r.returncode != 0:
        failures.append(f"unet-train --check-device --device {a.device} exited {r.returncode}")
    secs["train cpu"] = train(cpu("unet-train"), f"{work}/cpu", "cpu", "--force")
    secs["train " + a.device] = train(dev("unet-train"), f"{work}/dev", a.device, "--force")
    c, g = metrics(f"{work}/cpu"), metrics(f"{work}/dev")
    say(f"{'step':>4} {'train cpu':>11} {'train ' + a.device:>13} {'rel':>9} {'valid cpu':>11} "
        f"{'valid ' + a.device:>13} {'rel':>9}")
    for i, (x, y) in enumerate(zip(c, g)):
        say(f"{i + 1:>4} {x['train_loss']:>11.6f} {y['train_loss']:>13.6f} {rel(x['train_loss'], y['train_loss']):>9.2e} "
            f"{x['valid_loss']:>11.6f} {y['valid_loss']:>13.6f} {rel(x['valid_loss'], y['valid_loss']):>9.2e}")

    # 1. the first steps agree
    for i in range(3):
        for k in ("train_loss", "valid_loss"):
            r = rel(c[i][k], g[i][k])
            if not r <= LOSS_TOL:
                failures.append(f"step {i + 1} {k}: cpu {c[i][k]:.6f}, {a.device} {g[i][k]:.6f} "
                                f"(relative {r:.2e} > {LOSS_TOL:g})")
    # 2. the loss falls
    first, last = g[0]["train_loss"], g[-1]["train_loss"]
    say(f"{a.device} train loss: step 1 {first:.4f} -> step {len(g)} {last:.4f}")
    if not last < 0.8 * first:
        failures.append(f"the training loss on {a.device} did not fall by 20 % ({first:.4f} -> {last:.4f})")

    # 3. interrupted and resumed
    half = STEPS // 2
    r = subprocess.run(train_cmd(dev("unet-train"), f"{work}/halted", a.device, "--force", "--halt-after-epochs", half),
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=CWD)
    if r.returncode == 0 or "--resume" not in r.stderr:
        raise RuntimeError(f"unet-train --halt-after-epochs {half} did not stop as a kill would:\n{r.stderr[-2000:]}")
    secs["resume " + a.device] = train(dev("unet-train"), f"{work}/halted", a.device, "--resume")
    h = metrics(f"{work}/halted")
    worst = max(rel(x[k], y[k]) for x, y in zip(g, h) for k in ("train_loss", "valid_loss"))
    say(f"resumed after step {half} against uninterrupted, on {a.device}: largest relative difference {worst:.2e}")
    if len(h) != len(g) or not worst <= RESUME_TOL:
        failures.append(f"the resumed run on {a.device} differs from the uninterrupted one ({worst:.2e} > {RESUME_TOL:g})")

    # 4. the same weights predict the same classes
    model = f"{work}/cpu"
    secs["eval cpu"] = run([cpu("unet-eval"), "--model", model, "-i", f"{work}/split.json", "-o",
                            f"{work}/pred_cpu.json", "--out-dir", f"{work}/eval_cpu", "--split", "all", "--device",
                            "cpu", "-q"], log, "unet-eval --device cpu")
    with open(f"{work}/pred_cpu.json") as f:
        m = json.load(f)
    for it in m["items"]:
        it["mask"] = it["pred_mask"]
        del it["pred_mask"]
    # beside pred_cpu.json, so its relative mask paths still resolve
    with open(f"{work}/as_truth.json", "w") as f:
        json.dump(m, f)
    secs["eval " + a.device] = run([dev("unet-eval"), "--model", model, "-i", f"{work}/as_truth.json", "-o",
                                    f"{work}/pred_dev.json", "--out-dir", f"{work}/eval_dev", "--split", "all",
                                    "--device", a.device, "-q"], log, f"unet-eval --device {a.device}")
    for split in ("train", "valid"):
        full, _ = model_scores(f"{work}/eval_dev", split)
        agree = full["pixel_accuracy"]
        say(f"unet-eval {split}: {a.device} predicts the CPU's class on {100 * agree:.3f} % of {full['pixels']} pixels")
        if not agree >= AGREEMENT:
            failures.append(f"unet-eval on {a.device} agrees with the CPU on {100 * agree:.2f} % of {split} pixels "
                            f"(< {100 * AGREEMENT:g} %)")
    # the validation loss against the true masks, on both
    secs["eval " + a.device + " (truth)"] = run(
        [dev("unet-eval"), "--model", model, "-i", f"{work}/split.json", "-o", f"{work}/pred_dev2.json", "--out-dir",
         f"{work}/eval_dev2", "--split", "valid", "--device", a.device, "-q"], log, f"unet-eval --device {a.device}")
    _, mc = model_scores(f"{work}/eval_cpu", "valid")
    _, md = model_scores(f"{work}/eval_dev2", "valid")
    r = rel(mc["loss"], md["loss"])
    say(f"unet-eval valid loss: cpu {mc['loss']:.6f}, {a.device} {md['loss']:.6f} (relative {r:.2e})")
    if not r <= LOSS_TOL:
        failures.append(f"unet-eval's valid loss on {a.device} differs from the CPU's ({r:.2e} > {LOSS_TOL:g})")
    say("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in secs.items()) + f"; all {time.time() - t0:.0f}")
    return failures


if __name__ == "__main__":
    sys.exit(main())
