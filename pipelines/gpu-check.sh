#!/usr/bin/env bash
# One GPU check, for a machine with an NVIDIA GPU, a CUDA toolkit and PyTorch, but no Rust and
# no network: it runs binaries built elsewhere with `--features cuda` (see the README, "GPU").
# In about 5 minutes on an H100/H200 it
#   1. times the fastai arch's training step and inference at 448², batch 12, on the GPU, with
#      the peak GPU memory (nvidia-smi, sampled);
#   2. times PyTorch (pipelines/bench/unet_torch.py, the same network and shapes) on the same
#      GPU and prints burn/PyTorch ratios;
#   3. runs pipelines/device_check.py on CUDA, and on wgpu where the machine has a Vulkan driver:
#      the same first losses as the CPU from the same seed, the loss falls, a killed and resumed
#      run ends as an uninterrupted one, unet-eval agrees with the CPU on >= 99 % of pixels.
# Exit 0 when the checks in 3 pass; the figures of 1 and 2 are printed, not judged.
#
#   pipelines/gpu-check.sh BIN_DIR [PYTHON] [WORK_DIR]
#
# BIN_DIR holds demo-faces, xml-pairs, rgb2class, split, unet-train, unet-eval (the last two
# built with --features cuda,wgpu: `make gpu-bundle`) and `bench` (the unet crate's example, built with --features
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

# 3. The device checks (pipelines/device_check.py, the ones CI runs on lavapipe): same start and
# first losses as the CPU, the loss falls, a killed and resumed run ends as an uninterrupted
# one, unet-eval agrees with the CPU on >= 99 % of pixels. On CUDA, and on wgpu where the
# machine has a Vulkan driver and the binaries were built with the wgpu feature.
status=0
for dev in cuda wgpu; do
  if [ "$dev" = wgpu ]; then
    if ! ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1; then
      echo "== 3. wgpu: skipped: no Vulkan driver on this machine (no ICD file in /usr/share/vulkan/icd.d or /etc/vulkan/icd.d)"
      continue
    fi
    if "$bin/unet-train" --list-devices 2>&1 | grep -q "^wgpu: not in this build"; then
      echo "== 3. wgpu: skipped: $bin/unet-train was built without the wgpu feature"
      continue
    fi
  fi
  echo "== 3. $dev: the device checks against the CPU =="
  mkdir -p "$work/check-$dev"
  "$py" "$here/device_check.py" --bin "$bin" --device "$dev" --work "$work/check-$dev" --arch fastai || status=1
done
[ $status = 0 ] && echo "gpu-check: passed (work files in $work)" || echo "gpu-check: FAILED (work files in $work)"
exit $status
