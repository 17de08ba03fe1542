#!/usr/bin/env bash
# UNet training step and inference, burn (flex, CPU) next to PyTorch on the same shapes and
# thread count, each configuration in its own process (peak memory is per process). Prints
# one row per configuration with the ratios burn/PyTorch (below 1 = burn faster), the
# inference throughput in images/s, and the data loader's time for one training batch as a
# share of burn's training step (target: at most 10 %). UNET_BENCH_MODE=infer skips the
# training step. Inference has a second anchor: the PyTorch twin exported to ONNX and run by
# ONNX Runtime (unet_onnx.py; skipped, saying so, where PYTHON has no onnxruntime).
#
#   pipelines/bench/unet_compare.sh BURN_BENCH_BINARY [PYTHON] [THREADS]
set -euo pipefail
bin=$1
py=${2:-python3}
threads=${3:-2}
here=$(dirname "$0")
configs=${UNET_BENCH_CONFIGS:-"smp:128:4 smp:256:4 fastai:128:4 fastai:256:4"}
steps=${UNET_BENCH_STEPS:-3}
have_torch=1
if ! "$py" -c 'import torch, torchvision, segmentation_models_pytorch' 2>/dev/null; then
  echo "note: $py cannot import torch/torchvision/segmentation_models_pytorch: burn figures only" >&2
  have_torch=0
fi
have_ort=$have_torch
if [ $have_torch = 1 ] && ! "$py" -c 'import onnxruntime' 2>/dev/null; then
  echo "note: $py cannot import onnxruntime: no ONNX Runtime column (pip install onnxruntime)" >&2
  have_ort=0
fi
# a figure from a bench line, or - (a skipped training step)
field() { local v; v=$(sed -nE "s/.*$1 ([0-9]+) (ms|MiB).*/\1/p"); echo "${v:--}"; }
ratio() { if [ "$1" = - ] || [ "$2" = - ]; then echo -; else awk "BEGIN{printf \"%.2f\", $1/$2}"; fi; }
per_s() { if [ "$2" = - ]; then echo -; else awk "BEGIN{printf \"%.1f\", $1*1000/$2}"; fi; }
printf '%-7s %-8s %-3s | %10s %10s %6s | %10s %10s %6s %9s %6s | %9s %9s | %9s %9s | %9s %6s\n' arch size bs "burn ms" "torch ms" ratio "burn inf" "torch inf" ratio "onnx inf" ratio "burn MiB" "torch MiB" "burn im/s" "torch im/s" "loader ms" "%step"
for c in $configs; do
  IFS=: read -r arch size bs <<<"$c"
  b=$(RAYON_NUM_THREADS=$threads "$bin" "$arch" "$size" "$bs" "$steps" 2>&1 | grep '^burn-')
  bt=$(field "train step" <<<"$b"); bi=$(field "inference" <<<"$b"); bm=$(field "peak RSS" <<<"$b"); bl=$(field "loader" <<<"$b")
  if [ $have_torch = 1 ]; then
    t=$("$py" "$here/unet_torch.py" "$arch" "$size" "$bs" "$steps" "$threads" 2>&1 | grep '^pytorch')
    tt=$(field "train step" <<<"$t"); ti=$(field "inference" <<<"$t"); tm=$(field "peak RSS" <<<"$t")
    rt=$(ratio "$bt" "$tt"); ri=$(ratio "$bi" "$ti")
  else
    tt=-; ti=-; tm=-; rt=-; ri=-
  fi
  if [ $have_ort = 1 ]; then
    o=$("$py" "$here/unet_onnx.py" "$arch" "$size" "$bs" "$steps" "$threads" 2>&1 | grep '^onnxruntime' || true)
    [ -n "$o" ] || echo "note: ONNX Runtime failed on $arch $size (rerun pipelines/bench/unet_onnx.py to see why)" >&2
    oi=$(field "inference" <<<"$o"); ro=$(ratio "$bi" "$oi")
    # the exported graph must be the same network: its probabilities within 1e-3 of PyTorch's
    d=$(sed -nE 's/.*max \|p - pytorch\| ([0-9.e+-]+).*/\1/p' <<<"$o")
    if [ -n "$d" ] && awk "BEGIN{exit !($d > 1e-3)}"; then
      echo "note: ONNX Runtime's $arch $size probabilities differ from PyTorch's by $d: its time is not this network's" >&2
    fi
  else
    oi=-; ro=-
  fi
  share=$(if [ "$bt" = - ] || [ "$bl" = - ]; then echo -; else awk "BEGIN{printf \"%.1f\", 100*$bl/$bt}"; fi)
  printf '%-7s %-8s %-3s | %10s %10s %6s | %10s %10s %6s %9s %6s | %9s %9s | %9s %9s | %9s %6s\n' "$arch" "${size}x$size" "$bs" "$bt" "$tt" "$rt" "$bi" "$ti" "$ri" "$oi" "$ro" "$bm" "$tm" \
    "$(per_s "$bs" "$bi")" "$(per_s "$bs" "$ti")" "$bl" "$share"
done
