"""Checks a sharded run of the chain (Snakemake, Slurm, Ray) against unsharded runs of the same
stages on the same inputs: what the cluster tests under tests/cluster/ end with.

    compare.py RUN REF SHARDS CHEEKS

RUN: the sharded run's folder (masks.json, masks-one.json: one rgb2class run written beside
it, so that the recorded input paths match; eval/; CHEEKS.csv/.json; shards/masks.*.json).
REF: the unsharded runs' folder (masks/, eval/, CHEEKS.csv/.json). Exit 1 with every
difference named.
"""
import json, os, sys

run_dir, ref_dir, shards, cheeks = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
load = lambda p: json.load(open(p))
ref, run = load(f"{run_dir}/masks-one.json"), load(f"{run_dir}/masks.json")

def items(m, masks):
    """The items, each mask path relative to its run's mask folder."""
    out = []
    for it in m["items"]:
        it = dict(it)
        it["mask"] = os.path.relpath(os.path.join(run_dir, it["mask"]), masks)
        out.append(it)
    return out

def masks(d):
    """Every mask file below d/masks: relative path -> bytes (lock files left out)."""
    out = {}
    for top, _, names in os.walk(f"{d}/masks"):
        for n in names:
            if not n.endswith(".lock"):
                p = os.path.join(top, n)
                out[os.path.relpath(p, f"{d}/masks")] = open(p, "rb").read()
    return out

errors = []
def check(ok, what):
    if not ok:
        errors.append(what)

ri, si = items(ref, f"{ref_dir}/masks"), items(run, f"{run_dir}/masks")
check(ri == si, f"the items differ ({len(ri)} vs {len(si)}): "
      + ", ".join(x["id"] for x, y in zip(ri, si) if x != y))
pixels = lambda m: [(c["name"], c.get("pixels")) for c in m["classes"]]
check(pixels(ref) == pixels(run), f"per-class pixels differ:\n  {pixels(ref)}\n  {pixels(run)}")
no_pixels = lambda m: [{k: v for k, v in c.items() if k != "pixels"} for c in m["classes"]]
check(no_pixels(ref) == no_pixels(run), "the classes differ")
for k in sorted(set(ref) | set(run)):
    if k not in ("items", "provenance", "classes"):
        check(ref.get(k) == run.get(k), f"{k} differs: {ref.get(k)!r} vs {run.get(k)!r}")
steps = run["provenance"]
merge = steps[-1]
check(merge["stage"] == "manifest-merge", f"the last step is {merge['stage']}, not manifest-merge")
check(len(merge["inputs"]) == shards + 1, f"the merge read {len(merge['inputs'])} files, not {shards} shards and the pairs")
check(steps[:-1] == ref["provenance"], "the provenance before the merge differs")
# each shard manifest is its own part of 3
parts = sorted(
    load(os.path.join(run_dir, "shards", f))["provenance"][-1]["params"].get("shard", "?")
    for f in os.listdir(os.path.join(run_dir, "shards")) if f.startswith("masks.")
)
check(parts == sorted(f"{k}/{shards}" for k in range(shards)), f"the shard manifests are parts {parts}")
a, b = masks(ref_dir), masks(run_dir)
check(len(a) == len(ref["items"]), f"{len(a)} reference masks for {len(ref['items'])} items")
check(sorted(a) == sorted(b), f"mask files differ: {sorted(set(a) ^ set(b))}")
check(all(a[k] == b.get(k) for k in a), f"mask bytes differ: {[k for k in a if a[k] != b.get(k)]}")
# unet-eval: the merged scores (confusion matrices summed) and per-image rows are one run's
def close(x, y):
    """Equal, fractions to 1e-6 (a tile's float sums depend on the batch it was in)."""
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(close(x[k], y[k]) for k in x)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(close(a, b) for a, b in zip(x, y))
    if isinstance(x, float) or isinstance(y, float):
        return abs(x - y) <= 1e-6 * max(abs(x), abs(y), 1e-12)
    return x == y
re_, me = load(f"{ref_dir}/eval/eval.json"), load(f"{run_dir}/eval/eval.json")
check(close(re_["groups"], me["groups"]), "the merged eval.json's scores differ from one unet-eval run's")
check(len(me.get("shards", [])) == shards, f"the merged eval.json does not list {shards} shards")
for f in ("per_image.csv", "confusion.csv"):
    check(open(f"{ref_dir}/eval/{f}", "rb").read() == open(f"{run_dir}/eval/{f}", "rb").read(), f"eval {f} differs")
# cheek-lab: the CSV byte for byte, the report (the agreement on all rows) but its shard list
check(open(f"{ref_dir}/{cheeks}.csv", "rb").read() == open(f"{run_dir}/{cheeks}.csv", "rb").read(), f"{cheeks}.csv differs")
rc, mc = load(f"{ref_dir}/{cheeks}.json"), load(f"{run_dir}/{cheeks}.json")
check(len(mc.pop("shards", [])) == shards, f"the merged cheek report does not list {shards} shards")
# where each wrote its CSV (and QC pictures) differs: each names its own, a merge no QC folder
for r, d in ((rc, ref_dir), (mc, run_dir)):
    # named relative to the report's folder, so that a moved run folder still reports
    named = r.pop("csv", None)
    check(named is not None and os.path.abspath(os.path.join(d, named)) == os.path.abspath(f"{d}/{cheeks}.csv"),
          f"the cheek report in {d} does not name its CSV")
rc.pop("qc_dir", None)
check("qc_dir" not in mc, "the merged cheek report names a QC folder")
check(rc == mc, "the merged cheek report differs from one cheek-lab run's")
check(mc["agreement"]["cheeks_compared"] > 20, "fewer than 20 cheeks compared with the reference")
if errors:
    sys.exit("merged vs unsharded:\n" + "\n".join(errors))
print(f"merged = unsharded: {len(run['items'])} items, {len(b)} masks byte for byte, "
      f"{sum(p or 0 for _, p in pixels(run))} pixels in {len(run['classes'])} classes, shards {parts}; "
      f"eval of {me['items']} images, "
      f"{mc['agreement']['cheeks_compared']} cheeks against the reference, CIEDE2000 median "
      f"{mc['agreement']['delta_e2000']['median']:.2f}")
