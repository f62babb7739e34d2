#!/usr/bin/env bash
# Benchmark: the cost of redundant execution. The same fixed number of jobs through a fresh 3-node
# mesh (R=3, W=2, fsync on) at redundancy 1 and at redundancy 3 (every replica runs each job and a
# majority of the 3 results must agree), in one run, for cheap `echo` jobs (the cost is the
# protocol: co-runs, results replicated, the verdict) and for `pow` jobs (the cost is the work,
# done three times). Prints a table; exits non-zero only when the harness fails.
#
#   usage: simulations/bench/redundancy.sh [echo_jobs=10000] [pow_jobs=1000] [pow_bits=14]
#
#   completed/s  : jobs stored / time from the first request until the sum of stats.succeeded
#                  over the 3 nodes reaches them and no node has a job left in its backlog or
#                  running (meshwork-bench-load with WAIT_S; batches of 64 from 8 connections,
#                  stopping once the nodes stored the phase's jobs).
#   CPU per job  : user + system CPU of the 3 node processes over the same window, divided by the
#                  jobs stored; on a shared machine this is the steadier figure.
#   k=3 / k=1    : the ratios of both, per job type.
#
# Phases run one after the other, each on a fresh mesh (simulations/launch.sh): echo k=1, echo
# k=3, pow k=1, pow k=3. Environment: MESHWORK_BIN (build/bin/meshwork), CONNECTIONS (8), BATCH
# (64), WAIT_S (300: completion timeout per phase), MESH_FLAGS (extra node flags), KEEP_WORK=1
# keeps the temp dir. Ports: API 19501.., gossip 19601...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=simulations/bench/lib.sh
. "$here/lib.sh"

echo_jobs=${1:-10000}
pow_jobs=${2:-1000}
pow_bits=${3:-14}
usage() { sed -n 's/^#  *usage: /usage: /p' "$0" >&2; exit 2; }
case "${1:-}" in -h|--help) usage ;; esac
if ! [[ "$echo_jobs" =~ ^[0-9]+$ && "$pow_jobs" =~ ^[0-9]+$ && "$pow_bits" =~ ^[0-9]+$ ]] ||
  [ "$echo_jobs" -lt 1 ] || [ "$pow_jobs" -lt 1 ] || [ "$pow_bits" -lt 1 ] ||
  [ "$pow_bits" -gt 24 ]; then usage; fi
conns=${CONNECTIONS:-8}
batch=${BATCH:-64}
wait_s=${WAIT_S:-300}
phase_s_max=120  # the load client's time bound; the job count ends a phase long before
read -r -a mesh_flags <<<"${MESH_FLAGS:-}"
bin=${MESHWORK_BIN:-$root/build/bin/meshwork}
load=$(dirname "$bin")/meshwork-bench-load
api=19500 gossip=19600

die() { echo "redundancy.sh: $*" >&2; exit 2; }
say() { echo "[$(date +%H:%M:%S)] $*"; }
[ -x "$bin" ] || die "$bin is missing; run 'make build'"
[ -x "$load" ] || die "$load is missing; run 'make build'"
command -v python3 >/dev/null || die "python3 is missing"
command -v curl >/dev/null || die "curl is missing"

W=$(mktemp -d -t meshwork-redundancy.XXXX)
cleanup() {
  local d
  for d in "$W"/mw-*; do
    [ -d "$d" ] || continue
    MESHWORK_RUN=$d "$root/simulations/launch.sh" stop >/dev/null 2>&1 || true
  done
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "redundancy.sh: work dir kept: $W" >&2
  else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'echo "redundancy.sh: interrupted" >&2; exit 130' INT TERM

# probe K: one job at redundancy K must be accepted (202) before a phase loads the mesh; a node
# that refuses the field would otherwise refuse every item for the phase's whole time bound.
probe() {
  local code field=""
  [ "$1" -le 1 ] || field=",\"redundancy\":$1"  # as the load client: the field only when k > 1
  code=$(curl -s -o "$W/probe.out" -w '%{http_code}' -XPOST \
    "http://127.0.0.1:$((api + 1))/v1/jobs" \
    -d "{\"type\":\"echo\",\"payload\":{\"probe\":$1}$field}") || true
  [ "$code" = 202 ] ||
    die "a job with redundancy $1 was answered $code: $(head -c 300 "$W/probe.out")"
  sleep 0.5  # let it finish before the load client counts the successes already there
}

# phase NAME JOBS K POW_BITS → the load client's key=value lines in $W/NAME.out (+ node_cpu_s).
phase() {
  local name=$1 jobs=$2 k=$3 bits=$4 d="$W/mw-$1" cpu0 cpu1 i
  MESHWORK_RUN=$d MESHWORK_API_BASE=$api MESHWORK_GOSSIP_BASE=$gossip MESHWORK_BIN=$bin \
    "$root/simulations/launch.sh" 3 -- --replicas 3 --write-quorum 2 --log-level warn \
    --backlog-max 1000000 "${mesh_flags[@]}" >"$W/launch-$name.log" 2>&1 ||
    { cat "$W/launch-$name.log" >&2; die "launch.sh could not start 3 nodes"; }
  probe "$k"
  cpu0=$(nodes_cpu_ticks "$d")
  "$load" batch "$phase_s_max" "$conns" "$batch" "$((api + 1)),$((api + 2)),$((api + 3))" \
    "$wait_s" "$jobs" "$k" "$bits" >"$W/$name.out" 2>"$W/$name.err" ||
    die "meshwork-bench-load failed: $(cat "$W/$name.err")"
  cpu1=$(nodes_cpu_ticks "$d")
  echo "node_cpu_s=$(python3 -c "print(($cpu1 - $cpu0) / $(getconf CLK_TCK))")" >>"$W/$name.out"
  for i in 1 2 3; do
    kill -0 "$(cat "$d/n$i.pid")" 2>/dev/null || say "$name: n$i CRASHED (log: $d/n$i.log)"
  done
  MESHWORK_RUN=$d "$root/simulations/launch.sh" stop >/dev/null
  local out="$W/$name.out"
  say "$name: stored $(field stored "$out"), refused items $(field items_refused "$out")," \
    "completed $(field completed "$out") (all: $(field completed_all "$out"), idle:" \
    "$(field idle "$out")) in $(field completed_s "$out") s, CPU $(field node_cpu_s "$out") s"
  if [ -s "$W/$name.err" ]; then say "$name: $(head -c 300 "$W/$name.err")"; fi
}

t_begin=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
say "redundancy.sh: $echo_jobs echo jobs and $pow_jobs pow jobs ($pow_bits bits) at k=1 and k=3;" \
  "$(nproc) cores, load average $load_start"
phase echo-k1 "$echo_jobs" 1 0
phase echo-k3 "$echo_jobs" 3 0
phase pow-k1 "$pow_jobs" 1 "$pow_bits"
phase pow-k3 "$pow_jobs" 3 "$pow_bits"

python3 - "$W" "$pow_bits" <<'PY'
import os, sys
work, bits = sys.argv[1], sys.argv[2]
def kv(name):
    with open(os.path.join(work, name + ".out")) as f:
        return dict(line.strip().split("=", 1) for line in f if "=" in line)
def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None
def figures(name):
    d = kv(name)
    ok = d.get("idle") == "yes" and num(d.get("stored"))
    done = num(d.get("completed_per_s")) if ok else None
    cpu, stored = num(d.get("node_cpu_s")), num(d.get("stored"))
    return done, (cpu / stored * 1e6 if cpu is not None and stored else None), d.get("stored")
def f0(x):
    return "n/a" if x is None else f"{x:,.0f}"
def ratio(a, b):
    return "n/a" if a is None or not b else f"{a / b:.2f}"
print()
print("Redundant execution, loopback: 3 meshwork nodes (R=3, W=2, fsync on), k=3 against k=1")
w = (22, 10, 14, 16, 22)
print("".join(h.ljust(x) for h, x in zip(("jobs", "stored", "completed/s", "CPU per job",
                                           "k=3/k=1 (jobs/s, CPU)"), w)))
for kind, label in (("echo", "echo"), ("pow", f"pow {bits} bits")):
    one, three = figures(kind + "-k1"), figures(kind + "-k3")
    for k, (done, cpu, stored) in ((1, one), (3, three)):
        extra = f"{ratio(three[0], one[0])}, {ratio(three[1], one[1])}" if k == 3 else ""
        print("".join(c.ljust(x) for c, x in zip(
            (f"{label}, k={k}", stored or "n/a", f0(done), f0(cpu) + " µs", extra), w)))
PY
echo "load average at the start: $load_start, at the end: $(cut -d' ' -f1-3 /proc/loadavg);" \
  "wall time $(($(date +%s) - t_begin)) s (2 cores shared with any other work: compare ratios)"
