#!/usr/bin/env bash
# The whole facepipe chain on Slurm, without Snakemake: one job per step, the per-item stages
# (rgb2class, unet-eval, cheek-lab) as job arrays of SHARDS tasks (`--shard env`), each array
# followed by its merge, every job waiting for the one before it (afterok; a failed job cancels
# the rest instead of leaving them pending). Prints "STEP JOBID" per job; the logs go to
# OUT/logs/, the results where `make all` puts them (OUT/masks.json, split.json, model/,
# predictions.json, eval/, cheeks.csv, cheeks.json), the shards' own files in OUT/shards/.
#
#   pipelines/slurm/chain.sh DATA OUT SHARDS [sbatch args for every job...]
#   pipelines/slurm/chain.sh /data/mut1ny runs/m 16 --partition=cpu --time=2:00:00
#   TRAIN_SBATCH="--partition=gpu --gres=gpu:1 --time=12:00:00" TRAIN_ARGS="--device cuda ..." \
#     pipelines/slurm/chain.sh /data/mut1ny runs/m 16 --partition=cpu
#
# DATA is the folder holding training.xml. Environment (as the Makefile's variables):
#   BIN          the stage binaries (default target/release)
#   SEED         split and training seed (default 2020)
#   TRAIN_ARGS   unet-train flags (default: the demo's CPU configuration)
#   EVAL_ARGS    unet-eval flags (default --split all --bs 8)
#   CHEEK_ARGS   cheek-lab flags
#   REFERENCE    reference CSV for cheek-lab (default DATA/participants.csv when there is one)
#   TRAIN_SBATCH, EVAL_SBATCH   extra sbatch flags of the training job / the unet-eval array
#                (a GPU partition, --gres, a longer --time)
# Every path must be on storage every node sees.
set -euo pipefail
usage="usage: pipelines/slurm/chain.sh DATA OUT SHARDS [sbatch args...]"
[ $# -ge 3 ] || { echo "$usage" >&2; exit 2; }
[[ $3 =~ ^[1-9][0-9]*$ ]] || { echo "chain: SHARDS must be a whole number ≥ 1, not '$3'" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
bin=${BIN:-target/release}
for b in xml-pairs rgb2class manifest-merge split unet-train unet-eval cheek-lab; do
  [ -x "$bin/$b" ] || { echo "chain: $bin/$b is missing or not executable (build first, or set BIN)" >&2; exit 2; }
done
[ -f "$1/training.xml" ] || { echo "chain: no $1/training.xml" >&2; exit 2; }
command -v sbatch >/dev/null || { echo "chain: sbatch not found: is this a Slurm login node?" >&2; exit 2; }

# Absolute paths: the jobs find them whatever their working folder.
abs() { (cd "$1" && pwd); }
B=$(abs "$bin")
DATA=$(abs "$1")
mkdir -p "$2"
OUT=$(abs "$2")
N=$3
shift 3
mkdir -p "$OUT/shards" "$OUT/logs" "$OUT/eval-shards" "$OUT/cheek-qc"
SEED=${SEED:-2020}
TRAIN_ARGS=${TRAIN_ARGS:---arch smp --size 128 --bs 4 --recipe $(abs "$here/..")/demo-recipe.json}
EVAL_ARGS=${EVAL_ARGS:---split all --bs 8}
CHEEK_ARGS=${CHEEK_ARGS:-}
REFERENCE=${REFERENCE:-$([ -f "$DATA/participants.csv" ] && echo "$DATA/participants.csv" || true)}
ref=()
[ -z "$REFERENCE" ] || ref=(--reference "$(abs "$(dirname "$REFERENCE")")/$(basename "$REFERENCE")")
read -r -a train_sbatch <<<"${TRAIN_SBATCH:-}"
read -r -a eval_sbatch <<<"${EVAL_SBATCH:-}"
read -r -a train_args <<<"$TRAIN_ARGS"
read -r -a eval_args <<<"$EVAL_ARGS"
read -r -a cheek_args <<<"$CHEEK_ARGS"
every=("$@") # sbatch flags for every job

last='' # the job the next one waits for
# submit STEP [sbatch flags...] -- COMMAND...: a job after $last; sets $last to its id.
submit() {
  local step=$1 flags=() id
  shift
  while [ "$1" != -- ]; do flags+=("$1"); shift; done
  shift
  local log="$OUT/logs/$step.%j.out"
  [[ " ${flags[*]} " != *" --array="* ]] || log="$OUT/logs/$step.%A_%a.out"
  id=$(sbatch --parsable --job-name="fp-$step" --output="$log" \
    ${last:+--dependency=afterok:$last --kill-on-invalid-dep=yes} \
    "${every[@]}" "${flags[@]}" "$here/job.sbatch" "$@")
  last=${id%%;*} # --parsable prints JOBID[;CLUSTER]
  echo "$step $last"
}
parts() { # the N shard files of a pattern with {k}
  local k
  for ((k = 0; k < N; k++)); do echo "${1//\{k\}/$k}"; done
}
array=--array=0-$((N - 1))

submit xml-pairs -- "$B/xml-pairs" -i "$DATA/training.xml" -o "$OUT/pairs.json"
submit rgb2class "$array" -- "$B/rgb2class" -i "$OUT/pairs.json" -o "$OUT/shards/masks.{k}.json" \
  --out-dir "$OUT/masks" --shard env
mapfile -t masks < <(parts "$OUT/shards/masks.{k}.json")
submit masks -- "$B/manifest-merge" -o "$OUT/masks.json" --expect "$OUT/pairs.json" "${masks[@]}"
submit split -- "$B/split" -i "$OUT/masks.json" -o "$OUT/split.json" --seed "$SEED"
submit unet-train "${train_sbatch[@]}" -- "$B/unet-train" -i "$OUT/split.json" --out-dir "$OUT/model" \
  --seed "$SEED" "${train_args[@]}"
submit unet-eval "$array" "${eval_sbatch[@]}" -- "$B/unet-eval" --model "$OUT/model" -i "$OUT/split.json" \
  -o "$OUT/shards/predictions.{k}.json" --out-dir "$OUT/eval-shards/{k}" --shard env "${eval_args[@]}"
eval_array=$last
mapfile -t preds < <(parts "$OUT/shards/predictions.{k}.json")
mapfile -t evals < <(parts "$OUT/eval-shards/{k}")
submit eval-merge -- "$B/unet-eval" --merge "${evals[@]}" --out-dir "$OUT/eval" --expect "$OUT/split.json"
last=$eval_array
submit predictions -- "$B/manifest-merge" -o "$OUT/predictions.json" --expect "$OUT/split.json" "${preds[@]}"
submit cheek-lab "$array" -- "$B/cheek-lab" -i "$OUT/predictions.json" -o "$OUT/shards/cheeks.{k}.csv" \
  --report "$OUT/shards/cheeks.{k}.json" --qc-dir "$OUT/cheek-qc/{k}" --shard env "${ref[@]}" "${cheek_args[@]}"
mapfile -t cheeks < <(parts "$OUT/shards/cheeks.{k}.json")
submit cheeks -- "$B/cheek-lab" --merge "${cheeks[@]}" -o "$OUT/cheeks.csv" --report "$OUT/cheeks.json" \
  --expect "$OUT/predictions.json"
