#!/usr/bin/env bash
# One GPU check, for a machine with an NVIDIA GPU, a CUDA toolkit and PyTorch, but no Rust and
# no network: it runs binaries built elsewhere with `--features cuda` (see the README, "GPU").
# In about 5 minutes on an H100/H200 it
#   1. times the fastai arch's training step and inference at 448², batch 12, on the GPU, with
#      the peak GPU memory (nvidia-smi, sampled);
#   2. times PyTorch (pipelines/bench/unet_torch.py, the same network and shapes) on the same
#      GPU and prints burn/PyTorch ratios;
#   3. trains a short run on demo data on the GPU and checks that its loss falls, then checks
#      that unet-eval on the GPU predicts the same class as on the CPU on >= 99 % of pixels.
# Exit 0 when the checks in 3 pass; the figures of 1 and 2 are printed, not judged.
#
#   pipelines/gpu-check.sh BIN_DIR [PYTHON] [WORK_DIR]
#
# BIN_DIR holds demo-faces, xml-pairs, rgb2class, split, unet-train, unet-eval (the last two
# built with --features cuda) and `bench` (the unet crate's example, built with --features
# unet/cuda). GPU_CHECK_STEPS (default 10) sets the timed steps.
set -euo pipefail
bin=$(cd "${1:?usage: pipelines/gpu-check.sh BIN_DIR [PYTHON] [WORK_DIR]}" && pwd)
py=${2:-python3}
work=${3:-$(mktemp -d)}
here=$(cd "$(dirname "$0")" && pwd)
steps=${GPU_CHECK_STEPS:-10}
mkdir -p "$work"
for b in demo-faces xml-pairs rgb2class split unet-train unet-eval bench; do
  [ -x "$bin/$b" ] || { echo "gpu-check: $bin/$b is missing or not executable" >&2; exit 2; }
done
command -v nvidia-smi >/dev/null || { echo "gpu-check: nvidia-smi not found: no NVIDIA driver?" >&2; exit 2; }
"$py" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null \
  || echo "gpu-check: $py has no CUDA-enabled torch: PyTorch figures will be missing" >&2
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

# Peak GPU memory of a command: nvidia-smi samples every 100 ms, minus what was in use before.
peak_gpu() {
  local log=$work/smi.$$ base
  base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 | head -1)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 -lms 100 >"$log" &
  local smi=$!
  "$@"
  local rc=$?
  kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null || true
  echo "peak GPU $(sort -n "$log" | tail -1 | awk -v b="$base" '{print $1 - b}') MiB (nvidia-smi)" >&2
  return $rc
}

field() { sed -nE "s/.*$1 ([0-9]+) (ms|MiB).*/\1/p" | head -1; }

echo "== 1-2. fastai arch, 448x448, batch 12: burn (CUDA) vs PyTorch, $steps steps =="
export UNET_BENCH_DEVICE=cuda
b=$(peak_gpu "$bin/bench" fastai 448 12 "$steps" 2>&1 | tee /dev/stderr | grep -E '^burn-|^peak GPU' | tr '\n' ' ')
t=$("$py" "$here/bench/unet_torch.py" fastai 448 12 "$steps" 2>&1 | grep '^pytorch' || true)
echo "$t"
bt=$(field "train step" <<<"$b"); bi=$(field "inference" <<<"$b"); bm=$(field "peak GPU" <<<"$b")
tt=$(field "train step" <<<"$t"); ti=$(field "inference" <<<"$t"); tm=$(field "peak GPU" <<<"$t")
ratio() { if [ -n "$1" ] && [ -n "$2" ]; then awk "BEGIN{printf \"%.2f\", $1/$2}"; else echo -; fi; }
ims() { if [ -n "$1" ]; then awk "BEGIN{printf \"%.1f\", 12*1000/$1}"; else echo -; fi; }
printf '%-10s %12s %12s %12s %12s %14s\n' "" "train ms" "train im/s" "infer ms" "infer im/s" "peak GPU MiB"
printf '%-10s %12s %12s %12s %12s %14s\n' burn "${bt:--}" "$(ims "$bt")" "${bi:--}" "$(ims "$bi")" "${bm:--}"
printf '%-10s %12s %12s %12s %12s %14s\n' pytorch "${tt:--}" "$(ims "$tt")" "${ti:--}" "$(ims "$ti")" "${tm:--}"
printf '%-10s %12s %12s %12s\n' burn/torch "$(ratio "$bt" "$tt")" "" "$(ratio "$bi" "$ti")"
unset UNET_BENCH_DEVICE

echo "== 3. a short training on the GPU, then unet-eval on GPU and CPU =="
d=$work/demo
"$bin/demo-faces" --out "$d/data" --count 48 --size 256 --seed 7 -q
"$bin/xml-pairs" --xml "$d/data/training.xml" -o "$d/pairs.json"
"$bin/rgb2class" -i "$d/pairs.json" -o "$d/masks.json" --out-dir "$d/masks"
"$bin/split" -i "$d/masks.json" -o "$d/split.json"
cat >"$d/recipe.json" <<'EOF'
{"patience": null, "steps": [{"fit_one_cycle": {"epochs": 6, "lr_max": 0.003}}]}
EOF
"$bin/unet-train" -i "$d/split.json" --out-dir "$d/model" --device cuda --arch fastai --size 128 --bs 8 \
  --recipe "$d/recipe.json" --force
"$py" - "$d/model/metrics.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
first, last = float(rows[0]["train_loss"]), float(rows[-1]["train_loss"])
print(f"train loss: epoch 1 {first:.4f} -> epoch {len(rows)} {last:.4f}")
if not last < 0.8 * first:
    sys.exit("gpu-check: FAILED: the training loss did not fall by 20 %")
EOF
for dev in cuda cpu; do
  "$bin/unet-eval" --model "$d/model" -i "$d/split.json" -o "$d/pred-$dev.json" --out-dir "$d/eval-$dev" \
    --split all --device "$dev" --bs 8 --force
done
"$py" - "$d/eval-cuda/masks" "$d/eval-cpu/masks" <<'EOF'
import pathlib, sys
import numpy as np
from PIL import Image
gpu, cpu = map(pathlib.Path, sys.argv[1:3])
same = total = 0
for f in sorted(gpu.rglob("*.tif")):
    a = np.asarray(Image.open(f)); b = np.asarray(Image.open(cpu / f.relative_to(gpu)))
    same += int((a == b).sum()); total += a.size
if total == 0:
    sys.exit("gpu-check: FAILED: unet-eval wrote no masks")
print(f"GPU vs CPU predictions: {same / total:.4%} of {total} pixels agree")
if same < 0.99 * total:
    sys.exit("gpu-check: FAILED: under 99 % agreement")
EOF
echo "gpu-check: passed (work files in $work)"
