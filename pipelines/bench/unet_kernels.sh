#!/usr/bin/env bash
# The UNet bench on burn's CPU backend (flex) with facepipe's kernels (the default) and with
# burn's own operations (FACEPIPE_CPU_KERNELS=burn), same shapes and threads, each in its own
# process. Ratios are against the kernels. (burn's other pure-Rust CPU backends: ndarray is
# about 20x slower than flex on conv nets; candle, deprecated in burn 0.21, cannot run the
# ResNet at all: no padded max-pool, no max-pool backward.)
#
#   pipelines/bench/unet_kernels.sh BENCH_BINARY [THREADS]
set -euo pipefail
bin=$1
threads=${2:-2}
configs=${UNET_BENCH_CONFIGS:-"smp:128:4 fastai:128:4"}
steps=${UNET_BENCH_STEPS:-3}
field() { local v; v=$(sed -nE "s/.*$1 ([0-9]+) (ms|MiB).*/\1/p"); echo "${v:--}"; }
ratio() { if [ "$1" = - ] || [ "$2" = - ]; then echo -; else awk "BEGIN{printf \"%.2f\", $1/$2}"; fi; }
printf '%-7s %-8s %-3s | %-18s | %9s %6s | %9s %6s | %9s\n' arch size bs backend "train ms" ratio "infer ms" ratio "peak MiB"
for c in $configs; do
  IFS=: read -r arch size bs <<<"$c"
  base_t=; base_i=
  for variant in kernels burn-ops; do
    case $variant in
      kernels) line=$(RAYON_NUM_THREADS=$threads "$bin" "$arch" "$size" "$bs" "$steps" 2>&1 | grep '^burn-') ;;
      burn-ops) line=$(FACEPIPE_CPU_KERNELS=burn RAYON_NUM_THREADS=$threads "$bin" "$arch" "$size" "$bs" "$steps" 2>&1 | grep '^burn-') ;;
    esac
    t=$(field "train step" <<<"$line"); i=$(field "inference" <<<"$line"); m=$(field "peak RSS" <<<"$line")
    base_t=${base_t:-$t}; base_i=${base_i:-$i}
    printf '%-7s %-8s %-3s | %-18s | %9s %6s | %9s %6s | %9s\n' "$arch" "${size}x$size" "$bs" "flex $variant" "$t" "$(ratio "$t" "$base_t")" "$i" "$(ratio "$i" "$base_i")" "$m"
  done
done
