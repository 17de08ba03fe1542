#!/usr/bin/env bash
# pipelines/slurm/ on a real Slurm cluster of one node: installs Debian's slurm-wlm and munge
# when they are missing (apt-get; root, or sudo without a password), starts munged, slurmctld
# and slurmd on 127.0.0.1 with their own configuration, key, ports, state and logs in a
# temporary folder (no systemd, no /etc/slurm), submits the whole chain on 24 demo faces with
# pipelines/slurm/chain.sh (rgb2class, unet-eval and cheek-lab as arrays of 3 tasks, each with
# its merge; a one-epoch model), and checks the merged outputs against unsharded runs: the
# masks manifest (the same items, mask paths taken relative to each run's mask folder, the same
# per-class pixel counts and provenance apart from the merge's own step, every mask byte for
# byte), the evaluation's scores and tables, and the cheek CSV and report. Prints the wall
# times and "slurm test: ok".
#
#   tests/cluster/slurm.sh                 # BIN defaults to ${CARGO_TARGET_DIR:-target}/release
#   BIN=/path/to/release KEEP=1 tests/cluster/slurm.sh
#
# Exit 0 ok, 1 failed, 2 setup error (binaries missing), 77 skipped (not root and no sudo).
# KEEP=1 keeps the temporary folder (configuration, daemon logs, job logs, manifests). Every
# daemon it started is stopped on exit, by pid.
set -euo pipefail
export LC_ALL=C PATH=$PATH:/usr/sbin:/sbin
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BIN:-${CARGO_TARGET_DIR:-target}/release}
case $bin in /*) ;; *) bin=$repo/$bin ;; esac
for b in demo-faces xml-pairs rgb2class manifest-merge; do
  [ -x "$bin/$b" ] || { echo "slurm test: $bin/$b is missing: build first (make build) or set BIN" >&2; exit 2; }
done

# The daemons run as root (SlurmUser=root), and so does apt-get: become root or skip.
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "slurm test: skipped: needs root (to install and run slurmd) and sudo is absent"; exit 77; }
  sudo -n true 2>/dev/null || { echo "slurm test: skipped: needs root and sudo asks for a password"; exit 77; }
  exec sudo -n env BIN="$bin" KEEP="${KEEP:-0}" bash "$0" "$@"
fi

us() { local t=${EPOCHREALTIME//[.,]/}; echo "$t"; } # wall clock in µs
secs() { printf '%d.%01d s' $(($1 / 1000000)) $(($1 % 1000000 / 100000)); }
t_start=$(us)

# --- 1. Slurm and munge from Debian, when missing -------------------------------------------
t_install=0
missing=0
for c in munged slurmctld slurmd sbatch squeue sinfo scontrol; do
  command -v "$c" >/dev/null || missing=1
done
if [ $missing = 1 ]; then
  command -v apt-get >/dev/null || { echo "slurm test: skipped: Slurm or munge is missing and there is no apt-get"; exit 77; }
  echo "== installing slurm-wlm and munge (apt-get)"
  t0=$(us)
  # No daemon may start with the packages' default configuration (a container has a
  # policy-rc.d saying so; elsewhere one is put there for the install only).
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy && own_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
  [ $own_policy = 0 ] || rm -f $policy
  t_install=$(($(us) - t0))
  echo "installed in $(secs $t_install)"
fi
echo "slurm $(slurmd -V | awk '{print $2}'), munge $(munged --version | awk '{print $1}' | sed 's/munge-//')"

# --- 2. A one-node cluster in a temporary folder -------------------------------------------
T=$(mktemp -d) # 0700: munged warns that only root can reach its socket; only root needs to
node=$(hostname -s)
pids=()     # the daemons started here, in start order
jobs_out='' # the submitted job ids, cancelled on exit
stop() {    # TERM, up to 10 s, then KILL
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "slurm test: pid $pid ignored TERM: KILL" >&2
    kill -9 "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? i
  set +e
  if [ -n "$jobs_out" ] && [ ${#pids[@]} = 3 ]; then
    # Job steps (slurmstepd, detached from slurmd) end with their jobs, not with slurmd: cancel
    # the jobs, then wait for the steps' sockets in the spool folder to go.
    scancel ${jobs_out//,/ } 2>/dev/null
    for i in $(seq 20); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
    for i in $(seq 20); do compgen -G "$T/spool/${node}_*" >/dev/null || break; sleep 0.5; done
  fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop "${pids[i]}"; done
  if [ "${KEEP:-0}" = 1 ]; then echo "slurm test: kept $T" >&2; else rm -rf "$T"; fi
  exit $rc
}
trap cleanup EXIT
trap 'echo "slurm test: interrupted" >&2; exit 130' INT
trap 'echo "slurm test: terminated" >&2; exit 143' TERM

logs() { # the daemon logs, on a failure
  local f
  for f in "$T"/log/*; do echo "----- $f (last 40 lines)" >&2; tail -n 40 "$f" >&2; done
}
fail() { echo "slurm test: FAILED: $*" >&2; logs; exit 1; }

t0=$(us)
mkdir -p "$T"/{etc,log,state,spool,munge}
cpus=$(nproc)
# Half the machine's memory, in MB: below what slurmd measures, or the node would be drained.
mem=$(awk '/^MemTotal:/ {print int($2 / 1024 / 2)}' /proc/meminfo)
# Two free ports, asked of the kernel (a clash with another cluster is possible only if one
# takes them in the next second).
read -r ctld_port slurmd_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

# munge: its own key and socket, so that it shares nothing with a munged already running.
dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$T/munge/munge.key"
sock=$T/munge/munge.socket
munged --foreground --force --key-file="$T/munge/munge.key" --socket="$sock" \
  --pid-file="$T/munge/munged.pid" --log-file="$T/log/munged.log" --seed-file="$T/munge/munged.seed" \
  >>"$T/log/munged.out" 2>&1 &
pids+=($!)

export SLURM_CONF=$T/etc/slurm.conf
cat >"$SLURM_CONF" <<EOF
ClusterName=fptest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$sock
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups, no systemd: processes tracked by parentage, tasks not bound
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MailProg=/bin/true
# finished jobs stay visible to scontrol (there is no slurmdbd for sacct)
MinJobAge=3600
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF

for i in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || fail "munged did not make its socket $sock"
slurmctld -D -c -f "$SLURM_CONF" >>"$T/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -N "$node" -f "$SLURM_CONF" >>"$T/log/slurmd.out" 2>&1 &
pids+=($!)

# The node is idle once slurmd has registered with slurmctld.
state=''
for i in $(seq 120); do
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || fail "a daemon (pid $p) exited while starting"; done
  state=$(sinfo -h -N -n "$node" -o %t 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 0.5
done
[ "$state" = idle ] || fail "node $node is '${state:-unknown}', not idle, after 60 s"
t_cluster=$(($(us) - t0))
echo "== cluster up in $(secs $t_cluster): node $node, $cpus CPUs, ${mem} MB, ports $ctld_port/$slurmd_port, $T"

# --- 3. Demo data and the unsharded reference ----------------------------------------------
"$bin/demo-faces" --out-dir "$T/demo" --count 24 --size 64 --seed 7 -q
"$bin/xml-pairs" -i "$T/demo/training.xml" -o "$T/pairs.json" -q
mkdir -p "$T/ref"

# --- 4. The whole chain through chain.sh: 3 shards per array, a tiny model ------------------
t0=$(us)
# (cheek-lab on the true masks, which predictions.json carries too: a one-epoch model finds no
# cheeks, the truth gives an agreement to merge)
export BIN=$bin TRAIN_ARGS="--arch smp --size 32 --bs 4 --fine-tune-epochs 0 --no-lr-find --epochs 1 --lr 1e-3" \
  CHEEK_ARGS="--mask-field mask"
ids=$("$repo/pipelines/slurm/chain.sh" "$T/demo" "$T/run" 3 --time=10) || fail "chain.sh failed"
echo "$ids"
jobs_out=$(awk '{print $2}' <<<"$ids" | paste -sd,)
echo "== submitted $(wc -l <<<"$ids") jobs"
for i in $(seq 600); do
  [ -z "$(squeue -h -j "$jobs_out" -o %i 2>/dev/null)" ] && break
  sleep 0.5
done
[ -z "$(squeue -h -j "$jobs_out" -o %i)" ] || fail "jobs still queued after 300 s: $(squeue)"
t_jobs=$(($(us) - t0))
# Each job's (and array task's) final state and exit code, as slurmctld remembers them.
states=$(for j in ${jobs_out//,/ }; do scontrol -o show job "$j"; done | awk '{
  s = ""
  for (i = 1; i <= NF; i++) if ($i ~ /^(JobId|ArrayTaskId|JobName|JobState|ExitCode)=/) s = s " " $i
  print substr(s, 2) }')
echo "$states"
# 7 single jobs and 3 arrays of 3 tasks
if [ "$(grep 'JobState=COMPLETED' <<<"$states" | grep -c 'ExitCode=0:0')" != 16 ]; then
  for f in "$T"/run/logs/*.out; do echo "----- $f" >&2; cat "$f" >&2; done
  fail "not every job completed (7 jobs and 3 arrays of 3 tasks)"
fi

# Unsharded runs on the chain's own inputs: rgb2class (its manifest beside the chain's, so
# that the recorded input paths are the same), unet-eval on its model, cheek-lab on its
# predictions.
"$bin/rgb2class" -i "$T/run/pairs.json" -o "$T/run/masks-one.json" --out-dir "$T/ref/masks" -q
"$bin/unet-eval" --model "$T/run/model" -i "$T/run/split.json" -o "$T/ref/predictions.json" \
  --out-dir "$T/ref/eval" --split all --bs 8 -q
"$bin/cheek-lab" -i "$T/run/predictions.json" -o "$T/ref/cheeks.csv" --report "$T/ref/cheeks.json" \
  --reference "$T/demo/participants.csv" --mask-field mask -q

# --- 5. The merged run against the unsharded one -------------------------------------------
python3 "$repo/tests/cluster/compare.py" "$T/run" "$T/ref" 3 cheeks ||
  { echo "slurm test: FAILED: the Slurm run differs (KEEP=1 keeps the files)" >&2; exit 1; }

t_total=$(($(us) - t_start))
echo "== wall times: install $(secs $t_install), cluster start $(secs $t_cluster), jobs $(secs $t_jobs), total $(secs $t_total)"
echo "slurm test: ok"
