#!/usr/bin/env python3
"""A drop-in replacement for facepipe's `split` stage, in plain Python (standard library only).

It honours the manifest contract (see schemas/dataset.schema.json and
crates/facepipe-core/src/manifest.rs):
  * reads a facepipe/dataset manifest (-i FILE, or - for stdin) and refuses a newer version;
  * carries every field it does not know through unchanged;
  * rewrites relative paths so they still resolve from the output manifest's folder;
  * appends its step to `provenance` (no timestamps: same input, same bytes);
  * writes the manifest atomically (temp file + rename), or to stdout with -o -.

It implements the same algorithm as the Rust stage (sorted ids, SplitMix64 Fisher-Yates
shuffle, the first floor(valid_pct * n) are valid; --group-by shuffles sorted group keys and
fills valid greedily with whole groups), so it gives the same split. Use it as a template for
your own stage:  make all SPLIT="python3 pipelines/split.py"
"""
import argparse
import hashlib
import json
import math
import os
import sys
import tempfile

SCHEMA = "facepipe/dataset"
SCHEMA_VERSION = 1
PATH_FIELDS = ("image", "label_rgb", "mask", "pred_mask")
MASK64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n):
        threshold = ((1 << 64) - n) % n
        while True:
            r = self.next()
            if r >= threshold:
                return r % n

    def shuffle(self, xs):
        for i in range(len(xs) - 1, 0, -1):
            j = self.below(i + 1)
            xs[i], xs[j] = xs[j], xs[i]


def valid_count(pct, n):
    return int(math.floor(pct * n + 1e-9))


def assign(ids, groups, pct, seed):
    n = len(ids)
    target = valid_count(pct, n)
    rng = SplitMix64(seed)
    out = ["train"] * n
    if groups is None:
        order = sorted(range(n), key=lambda i: ids[i].encode("utf-8"))
        rng.shuffle(order)
        for i in order[:target]:
            out[i] = "valid"
    else:
        members = {}
        for i, k in enumerate(groups):
            members.setdefault(k, []).append(i)
        order = [members[k] for k in sorted(members, key=lambda k: k.encode("utf-8"))]
        rng.shuffle(order)
        taken = 0
        for g in order:
            if taken + len(g) <= target:
                taken += len(g)
                for i in g:
                    out[i] = "valid"
    return out


def fail(msg):
    print(f"split.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


def rebase(m, src_dir, dst_dir):
    def conv(p):
        if p == "-":
            return p
        return os.path.relpath(os.path.normpath(os.path.join(src_dir, p)), dst_dir).replace(os.sep, "/")

    if "root" in m:
        m["root"] = conv(m["root"])
    for it in m["items"]:
        for f in PATH_FIELDS:
            if isinstance(it.get(f), str):
                it[f] = conv(it[f])
    for step in m.get("provenance", []):
        for inp in step.get("inputs", []):
            inp["path"] = conv(inp["path"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-i", "--input", default="-")
    ap.add_argument("-o", "--output", default="-")
    ap.add_argument("--valid-pct", type=float, default=0.35)
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--group-by", default=None)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("-q", "--quiet", action="store_true")
    ap.add_argument("-v", "--verbose", action="count", default=0)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()

    if not 0.0 <= a.valid_pct < 1.0:
        fail(f"--valid-pct must be at least 0 and less than 1 (got {a.valid_pct})")
    try:
        raw = sys.stdin.buffer.read() if a.input == "-" else open(a.input, "rb").read()
    except OSError as e:
        fail(f"cannot read {a.input}: {e.strerror}")
    shown = "<stdin>" if a.input == "-" else a.input
    try:
        m = json.loads(raw)
    except ValueError as e:
        fail(f"manifest {shown}: not valid JSON: {e}")
    if not isinstance(m, dict) or m.get("schema") != SCHEMA:
        fail(f"manifest {shown}: not a facepipe dataset manifest")
    if not isinstance(m.get("schema_version"), int) or m["schema_version"] > SCHEMA_VERSION:
        fail(f"manifest {shown}: schema_version {m.get('schema_version')} is newer than this script understands")
    items = m.get("items") or []
    if not items:
        fail(f"manifest {shown} has no items to split")

    groups = None
    if a.group_by:
        groups = []
        for it in items:
            v = it.get(a.group_by)
            if v is None:
                fail(f"item {it['id']!r} in {shown} has no field {a.group_by!r} to group by")
            groups.append(v if isinstance(v, str) else json.dumps(v, separators=(",", ":")))
    splits = assign([it["id"] for it in items], groups, a.valid_pct, a.seed)
    for it, s in zip(items, splits):
        it["split"] = s
    n_valid = splits.count("valid")

    src_dir = os.getcwd() if a.input == "-" else os.path.dirname(os.path.abspath(a.input))
    dst_dir = os.getcwd() if a.output == "-" else os.path.dirname(os.path.abspath(a.output))
    rebase(m, src_dir, dst_dir)
    m.setdefault("provenance", []).append({
        "stage": "split.py",
        "version": "0.1.0",
        "params": {"group_by": a.group_by, "seed": a.seed, "valid_pct": a.valid_pct},
        "inputs": [{
            "path": "-" if a.input == "-" else os.path.relpath(os.path.abspath(a.input), dst_dir),
            "sha256": hashlib.sha256(raw).hexdigest(),
            "bytes": len(raw),
        }],
        "summary": {"items": len(items), "train": len(items) - n_valid, "valid": n_valid},
    })
    out = (json.dumps(m, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    if a.output == "-":
        sys.stdout.buffer.write(out)
        return
    if os.path.exists(a.output) and not a.force:
        try:
            ok = json.load(open(a.output)).get("schema") == SCHEMA
        except (OSError, ValueError, AttributeError):
            ok = False
        if not ok:
            fail(f"output {a.output} exists and is not a facepipe manifest; refusing to overwrite it (use --force)")
    fd, tmp = tempfile.mkstemp(dir=dst_dir, prefix=".facepipe-tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(out)
        os.replace(tmp, a.output)
    except BaseException:
        os.unlink(tmp)
        raise


if __name__ == "__main__":
    main()
