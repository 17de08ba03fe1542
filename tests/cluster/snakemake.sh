#!/usr/bin/env bash
# pipelines/Snakefile on this machine: the whole chain on 24 demo faces with rgb2class,
# unet-eval and cheek-lab in 3 shards each and a one-epoch model (`snakemake --cores 2`), then
# unsharded runs of those stages on the same inputs, and tests/cluster/compare.py between them
# (masks byte for byte, the manifest, the scores, the cheek CSV and report). Prints the wall
# times and "snakemake test: ok".
#
#   tests/cluster/snakemake.sh     # SNAKEMAKE: the snakemake to run (default .venv-snakemake/bin/snakemake)
#   BIN=/path/to/release KEEP=1 tests/cluster/snakemake.sh
#
# Exit 0 ok, 1 failed, 2 setup error (binaries or snakemake missing: `make snakemake-venv`).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BIN:-${CARGO_TARGET_DIR:-target}/release}
case $bin in /*) ;; *) bin=$repo/$bin ;; esac
snakemake=${SNAKEMAKE:-$repo/.venv-snakemake/bin/snakemake}
for b in demo-faces xml-pairs rgb2class manifest-merge split unet-train unet-eval cheek-lab; do
  [ -x "$bin/$b" ] || { echo "snakemake test: $bin/$b is missing: build first (make build) or set BIN" >&2; exit 2; }
done
[ -x "$snakemake" ] || { echo "snakemake test: $snakemake is missing: make snakemake-venv, or set SNAKEMAKE" >&2; exit 2; }

T=$(mktemp -d)
cleanup() {
  local rc=$?
  if [ "${KEEP:-0}" = 1 ]; then echo "snakemake test: kept $T" >&2; else rm -rf "$T"; fi
  exit $rc
}
trap cleanup EXIT
us() { local t=${EPOCHREALTIME//[.,]/}; echo "$t"; }
secs() { printf '%d.%01d s' $(($1 / 1000000)) $(($1 % 1000000 / 100000)); }

t0=$(us)
# (run from the repository: the Snakefile's default recipe path is relative to it)
(cd "$repo" && "$snakemake" -s pipelines/Snakefile --cores 2 --quiet rules \
  --directory "$repo" --config out="$T/run" bin="$bin" shards=3 demo_count=24 demo_size=64 \
  "train_args=--arch smp --size 32 --bs 4 --fine-tune-epochs 0 --no-lr-find --epochs 1 --lr 1e-3") \
  >"$T/snakemake.log" 2>&1 || { tail -n 40 "$T/snakemake.log" >&2; echo "snakemake test: FAILED: snakemake" >&2; exit 1; }
t_run=$(($(us) - t0))

# Unsharded runs on the same inputs (rgb2class's manifest beside the merged one, so that the
# recorded input paths are the same).
mkdir -p "$T/ref"
"$bin/rgb2class" -i "$T/run/pairs.json" -o "$T/run/masks-one.json" --out-dir "$T/ref/masks" -q
"$bin/unet-eval" --model "$T/run/model" -i "$T/run/split.json" -o "$T/ref/predictions.json" \
  --out-dir "$T/ref/eval" --split all --bs 8 -q
"$bin/cheek-lab" -i "$T/run/split.json" -o "$T/ref/cheeks_truth.csv" --report "$T/ref/cheeks_truth.json" \
  --reference "$T/run/demo-data/participants.csv" --mask-field mask -q
grep -q 'id="provenance"' "$T/run/report.html" ||
  { echo "snakemake test: FAILED: no report.html with its sections" >&2; exit 1; }
python3 "$repo/tests/cluster/compare.py" "$T/run" "$T/ref" 3 cheeks_truth ||
  { echo "snakemake test: FAILED: the Snakemake run differs (KEEP=1 keeps the files)" >&2; exit 1; }
echo "== wall times: snakemake $(secs $t_run), total $(secs $(($(us) - t0)))"
echo "snakemake test: ok"
