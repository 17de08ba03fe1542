#!/usr/bin/env python3
"""Run a facepipe stage as N shards (`--shard K/N`) on Ray, then merge the parts.

For those who already run Ray (the original Python workflow prepared its data on a Ray
cluster); Snakemake, Slurm and Kubernetes do the same job without it. Any stage that takes
--shard works, with the merge of its kind. Each shard is a Ray task running the stage's
command; as each ends the driver reports its time (and the end of its output: stderr and
stdout, captured together). If a shard failed the driver names it, with its exit code, and
exits 1 without merging; otherwise it runs the merge command here and exits with its status.

    B=target/release
    python pipelines/ray_shards.py --shards 3 --shard-output 'out/shards/masks.{k}.json' \\
        --merge "$B/manifest-merge -o out/masks.json --expect out/pairs.json {shards}" \\
        -- $B/rgb2class -i out/pairs.json -o {output} --out-dir out/masks --shard {k}/{n} -q

    # on a running cluster, 4 CPUs a shard (tell the stage, or each shard uses every core)
    python pipelines/ray_shards.py --address auto --shards 16 --num-cpus-per-task 4 ... \\
        -- $B/rgb2class ... --shard {k}/{n} --threads 4

Placeholders are replaced inside each argument; no shell is involved (wrap in `sh -c` for one):
  stage command    {k} the shard (0..N-1), {n} N, {output} the shard's --shard-output
  --shard-output   {k}, {n}  (its folder is made)
  --merge          {n}; the argument {shards} becomes the N shard outputs, k = 0..N-1

Where it runs: every task runs the stage in this working directory (the same path), and the
merge runs here, reading what the tasks wrote. On one machine that is simply so; a multi-node
cluster needs a shared filesystem mounted at the same path on every node, holding binaries,
inputs and outputs (as with Slurm). Do not give a runtime_env working_dir: Ray would run the
stage in an uploaded copy and the outputs would stay there.

--address: `local` (the default unless RAY_ADDRESS is set) starts a private Ray on this
machine with --num-cpus CPUs (default all) and stops it at the end, stages and all, also on
Ctrl-C; `auto` joins the cluster this machine belongs to; `ray://HOST:10001` connects
through Ray Client (pip install 'ray[client]'). Recent Ray (2.60) gives a new local Ray
token authentication, writing a token to ~/.ray/auth_token unless RAY_AUTH_TOKEN is set; to
join a cluster, have its token (RAY_AUTH_MODE=disabled where it runs without).
"""

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

TAIL_LINES = 20


def fill(arg, **values):
    """`arg` with each {name} replaced (plain text replacement: other braces are left alone)."""
    for name, value in values.items():
        arg = arg.replace("{" + name + "}", str(value))
    return arg


def run_shard(k, argv, cwd):
    """One shard, as a Ray task: (k, exit code, last lines of its stderr and stdout, seconds)."""
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace")
        code, err = proc.returncode, proc.stdout
    except OSError as e:  # not found, not executable
        code, err = 127, f"cannot run {argv[0]}: {e}"
    tail = "\n".join(err.rstrip().splitlines()[-TAIL_LINES:])
    return k, code, tail, time.monotonic() - start


def parse_args(argv):
    p = argparse.ArgumentParser(
        usage="%(prog)s --shards N --shard-output PATH --merge COMMAND [options] -- STAGE ...",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", type=int, required=True, metavar="N", help="number of shards")
    p.add_argument("--shard-output", required=True, metavar="PATH",
                   help="each shard's output, with {k}: {output} in the stage, "
                        "{shards} in the merge")
    p.add_argument("--merge", required=True, metavar="COMMAND",
                   help="run here once every shard succeeded, with {shards} (split like a shell)")
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS") or "local",
                   help="local, auto or ray://HOST:PORT (default: $RAY_ADDRESS, else local)")
    p.add_argument("--num-cpus", type=int, metavar="C", help="CPUs of a local Ray (default: all)")
    p.add_argument("--num-cpus-per-task", type=float, default=1, metavar="C",
                   help="CPUs Ray keeps for each shard (default 1): give the stage --threads C")
    p.add_argument("--num-gpus-per-task", type=float, default=0, metavar="G",
                   help="GPUs for each shard (default 0; Ray sets CUDA_VISIBLE_DEVICES)")
    # everything after the first `--` is the stage's command, taken as it is
    split = argv.index("--") if "--" in argv else len(argv)
    args = p.parse_args(argv[:split])
    args.stage = argv[split + 1:]
    merge = shlex.split(args.merge)
    if args.shards < 1:
        p.error("--shards must be at least 1")
    if not args.stage:
        p.error("give the stage's command after --")
    if not any("{k}" in a for a in args.stage) or "{k}" not in args.shard_output:
        p.error("the stage command and --shard-output must use {k}, or every shard does the same")
    if "{shards}" not in merge:
        p.error("--merge must have the argument {shards} (the shard outputs)")
    args.merge = merge
    return args


def describe(code):
    if code is None:
        return "its Ray task died"
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


def run_shards(ray, args, outputs):
    """Runs the shards as Ray tasks, reports each as it ends; returns [(k, code)] of failures."""
    n = args.shards
    if args.address == "local":  # a task that fits no node waits for ever
        have = ray.cluster_resources()
        for what, want in ("CPU", args.num_cpus_per_task), ("GPU", args.num_gpus_per_task):
            if want > have.get(what, 0):
                sys.exit(f"ray_shards: a shard wants {want:g} {what}s; this Ray has "
                         f"{have.get(what, 0):g}")
    # Ray retries a task whose worker or node died, never one whose stage failed
    task = ray.remote(num_cpus=args.num_cpus_per_task,
                      num_gpus=args.num_gpus_per_task)(run_shard)
    cwd, start = os.getcwd(), time.monotonic()
    shard_of = {task.remote(k, [fill(a, k=k, n=n, output=outputs[k]) for a in args.stage], cwd): k
                for k in range(n)}
    pending, failed = list(shard_of), []
    try:
        while pending:
            # a timeout, so that Ctrl-C is seen while waiting
            done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in done:
                try:
                    k, code, tail, secs = ray.get(ref)
                except ray.exceptions.RayError as e:  # the task's worker or node died
                    tail = "\n".join(str(e).strip().splitlines()[-TAIL_LINES:])
                    k, code, secs = shard_of[ref], None, None
                status = "ok" if code == 0 else f"FAILED ({describe(code)})"
                took = f" in {secs:.2f} s" if secs is not None else ""
                print(f"shard {k}/{n}: {status}{took}", file=sys.stderr, flush=True)
                if tail:  # warnings too (a stage's -q keeps them short)
                    print("  " + tail.replace("\n", "\n  "), file=sys.stderr, flush=True)
                if code != 0:
                    failed.append((k, code))
    except KeyboardInterrupt:
        for ref in pending:  # interrupts run_shard: subprocess.run kills the stage
            ray.cancel(ref)
        raise
    print(f"{n} shards in {time.monotonic() - start:.2f} s", file=sys.stderr)
    return failed


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    n = args.shards
    outputs = [fill(args.shard_output, k=k, n=n) for k in range(n)]
    for out in outputs:
        Path(out).parent.mkdir(parents=True, exist_ok=True)

    import ray  # here, so that --help and errors in the arguments need no Ray

    # the stages' output comes back with the results: worker logs need not reach the driver
    common = dict(include_dashboard=False, log_to_driver=False)
    try:
        if args.address == "local":  # "local" even if RAY_ADDRESS is set
            ray.init(address="local", num_cpus=args.num_cpus, **common)
        else:
            ray.init(address=args.address, **common)
    except ConnectionError as e:
        sys.exit(f"ray_shards: no Ray cluster at {args.address}: {e}")
    try:
        failed = run_shards(ray, args, outputs)
    finally:
        ray.shutdown()  # a local Ray stops with it

    if failed:
        which = ", ".join(f"shard {k} ({describe(c)})" for k, c in sorted(failed))
        print(f"ray_shards: {len(failed)} of {n} shards failed: {which}; not merging",
              file=sys.stderr)
        return 1
    merge = [x for a in args.merge for x in (outputs if a == "{shards}" else [fill(a, n=n)])]
    print(f"merging: {shlex.join(merge)}", file=sys.stderr, flush=True)
    try:
        code = subprocess.run(merge).returncode
    except OSError as e:
        print(f"ray_shards: cannot run the merge {merge[0]}: {e}", file=sys.stderr)
        return 127
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ray is shut down by now, and with a local Ray the stages too
        print("ray_shards: interrupted", file=sys.stderr)
        sys.exit(130)
