#!/usr/bin/env bash
# pipelines/ray_shards.py on a local Ray: rgb2class on 24 demo faces as 3 shards, merged by
# manifest-merge, must equal one unsharded run (the manifest apart from the merge's own
# provenance step, and every mask byte for byte); a failing shard must stop the merge; no Ray
# process may outlive the driver. Needs the release binaries and, the first time, PyPI (ray
# goes into a venv).
#
#   tests/cluster/ray.sh                                  # BIN=${CARGO_TARGET_DIR:-target}/release
#   BIN=/path/to/release RAY_VENV=/var/tmp/rayvenv tests/cluster/ray.sh
set -euo pipefail

RAY_VERSION=2.60.0 # the newest on PyPI with a CPython 3.11 manylinux x86_64 wheel
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=$(cd "${BIN:-${CARGO_TARGET_DIR:-target}/release}" && pwd)
VENV=${RAY_VENV:-.venv-ray}
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }
fail() { echo "ray test: FAILED: $*" >&2; exit 1; }
for b in demo-faces xml-pairs rgb2class manifest-merge; do
    [ -x "$BIN/$b" ] || fail "no $BIN/$b: cargo build --release, or give BIN"
done
start=$(now)

# Ray in its own venv, pinned
t=$(now)
has_ray="import ray, sys; sys.exit(ray.__version__ != '$RAY_VERSION')"
if ! "$VENV/bin/python" -c "$has_ray" 2>/dev/null; then
    echo "installing ray==$RAY_VERSION into $VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "ray==$RAY_VERSION"
fi
RAY_PY=$(cd "$VENV/bin" && pwd)/python
venv_time=$(since "$t")

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# Ray's session files (logs, sockets) in $T rather than /tmp/ray; a token of our own rather
# than one Ray writes to ~/.ray/auth_token; no usage statistics; no cluster from the caller's
# environment
export RAY_TMPDIR=$T/r RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=token
RAY_AUTH_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export RAY_AUTH_TOKEN
unset RAY_ADDRESS
ray_procs() { pgrep -f -- 'raylet|gcs_server|ray::|/ray/_private/|/ray/dashboard/' | sort || true; }
procs_before=$(ray_procs)

# the demo data and the unsharded reference; the sharded run mirrors its layout
cd "$T"
t=$(now)
"$BIN/demo-faces" --out-dir demo --count 24 --size 64 --seed 7 -q
"$BIN/xml-pairs" -i demo/training.xml -o pairs.json
mkdir ref sharded fail
"$BIN/rgb2class" -i pairs.json -o ref/masks.json --out-dir ref/masks -q
data_time=$(since "$t")

# relative paths throughout: the tasks must run in the driver's working directory
driver=("$RAY_PY" "$ROOT/pipelines/ray_shards.py" --address local --num-cpus 2 --shards 3)
t=$(now)
"${driver[@]}" --shard-output 'sharded/shards/masks.{k}.json' \
    --merge "$(printf %q "$BIN/manifest-merge") -o sharded/masks.json --expect pairs.json \
             {shards}" \
    -- "$BIN/rgb2class" -i pairs.json -o {output} --out-dir sharded/masks --shard {k}/{n} -q
sharded_time=$(since "$t")

python3 - <<'EOF'
import json
from pathlib import Path

def load(p):
    return json.loads(Path(p).read_text())

def files(d):
    """Every file below d (lock files left out): relative path -> bytes."""
    return {p.relative_to(d): p.read_bytes() for p in Path(d).rglob("*")
            if p.is_file() and not p.name.endswith(".lock")}

ref, merged = load("ref/masks.json"), load("sharded/masks.json")
me = merged["provenance"].pop()
assert me["stage"] == "manifest-merge", me
assert len(me["inputs"]) == 4, f"3 shards and the input: {me['inputs']}"
assert merged == ref, "the merged manifest differs from the unsharded one"
for k in range(3):
    part = load(f"sharded/shards/masks.{k}.json")
    assert len(part["items"]) == 8, (k, len(part["items"]))
    assert part["provenance"][-1]["params"]["shard"] == f"{k}/3", part["provenance"][-1]
a, b = files("ref/masks"), files("sharded/masks")
assert len(a) == 24, sorted(a)
assert a.keys() == b.keys(), sorted(a.keys() ^ b.keys())
assert not [p for p in a if a[p] != b[p]], [str(p) for p in a if a[p] != b[p]]
print(f"merged manifest = unsharded; {len(a)} masks identical")
EOF

# shard 1 fails: the driver names it and exits 1, and the merge (it would leave a file) never runs
t=$(now)
rc=0
"${driver[@]}" --shard-output 'fail/part.{k}.json' \
    --merge "sh -c 'touch fail/merge-ran' sh {shards}" \
    -- sh -c 'if [ {k} = 1 ]; then echo "shard {k} of {n}: broken on purpose" >&2; exit 3; fi' \
    >fail/log 2>&1 || rc=$?
failing_time=$(since "$t")
sed 's/^/    | /' fail/log
[ "$rc" = 1 ] || fail "a failed shard: the driver exited $rc, not 1"
grep -q 'shard 1/3: FAILED (exit code 3)' fail/log || fail "the failed shard is not named"
grep -q 'shard 1 of 3: broken on purpose' fail/log || fail "no stderr of the failed shard"
grep -q 'not merging' fail/log || fail "no word that the merge was skipped"
[ ! -e fail/merge-ran ] || fail "the merge ran after a shard failed"
echo "a failed shard stops the merge"

# nothing of Ray stays running (ray.shutdown() in the driver)
for _ in $(seq 20); do
    left=$(comm -13 <(echo "$procs_before") <(ray_procs))
    [ -z "$left" ] && break
    sleep 0.5
done
[ -z "$left" ] || fail "Ray processes left running: $(ps -o pid=,args= -p "${left//$'\n'/,}")"

echo "times: venv $venv_time, data + reference $data_time, sharded run $sharded_time," \
    "failing run $failing_time, total $(since "$start")"
echo "ray test: ok"
