#!/usr/bin/env bash
# Soak: a fixed number of jobs through a 3-node mesh with a short retention, to show that disk use
# and memory level off instead of growing with the jobs ever run (docs/benchmarks.md, retention).
#
#   usage: simulations/bench/soak.sh [jobs=200000] [retain_s=30] [tombstone_s=60]
#
# Starts 3 nodes (R=3, W=2, fsync on, --retain-s retain_s, --tombstone-s tombstone_s, the default
# --backlog-max) with simulations/launch.sh and posts echo jobs in batches of 64 from 16
# connections (meshwork-bench-load) until the nodes have stored `jobs` of them: while the backlog
# is full the nodes answer 429 and the client sends those jobs again, so jobs arrive no faster
# than the mesh runs them, as with a real client. Every 10 s it prints: seconds since the start, jobs accepted (sum of
# stats.submitted) and completed (stats.succeeded) over the nodes, jobs held and tombstones kept
# (per node, GET /v1/node; and each node's backlog + running), the bytes of each node's data dir (du -sb) and each node's resident
# memory (VmRSS). After the load it goes on for retain_s + tombstone_s + 20 s more, so that the
# last jobs expire too.
#
# Levelling off: over the samples taken while the load ran, the mean total disk use and the mean
# total RSS of the last third are compared with those of the middle third; each levels off when
# the last third's mean is less than 25% above the middle third's. Growth with the job count would
# put it about 67% above (the means of a line over its second and last thirds), and means, unlike
# maxima, ride out the sawtooth of compactions (disk drops by half at each). Exits 1 when either
# did not, 2 when the harness failed. SAMPLES=FILE only evaluates a samples file a run kept.
#
# Environment: MESHWORK_BIN (build/bin/meshwork), CONNECTIONS (16), BATCH (64), MESH_FLAGS (extra
# node flags), KEEP_WORK=1 keeps the temp dir. Ports: API 19301.., gossip 19401...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

jobs=${1:-200000}
retain_s=${2:-30}
tombstone_s=${3:-60}
usage() { sed -n 's/^#  *usage: /usage: /p' "$0" >&2; exit 2; }
case "${1:-}" in -h|--help) usage ;; esac
if ! [[ "$jobs" =~ ^[0-9]+$ && "$retain_s" =~ ^[0-9]+$ && "$tombstone_s" =~ ^[0-9]+$ ]] ||
  [ "$jobs" -lt 1 ] || [ "$retain_s" -lt 1 ] || [ "$tombstone_s" -lt 1 ]; then usage; fi
verdict() {
  python3 - "$1" <<'PY'
import re, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
def figures(line, key):
    return [float(x) for x in re.search(key + r"=(\S+)", line).group(1).split("/")]
load = [r[1] for r in rows if r[0] == "load"]
after = [r[1] for r in rows if r[0] == "after"]
if len(load) < 6:
    print("too few samples while the load ran (%d, need 6): run more jobs" % len(load))
    sys.exit(2)
third = len(load) // 3
middle, last = load[third:2 * third], load[2 * third:]
ok = True
total = lambda l, key: sum(figures(l, key))
mean = lambda ls, key: sum(total(l, key) for l in ls) / len(ls)
for key, what in (("disk_MB", "disk use"), ("rss_MB", "RSS")):
    mid, end = mean(middle, key), mean(last, key)
    peak = max(total(l, key) for l in load + after)
    final = total((after or load)[-1], key)
    levels = end < 1.25 * mid
    ok = ok and levels
    print("%s (3 nodes): mean %.1f MB over the middle third of the load, %.1f MB over the last "
          "third (%+.0f%%), peak %.1f MB, %.1f MB at the end: %s"
          % (what, mid, end, 100 * (end / mid - 1), peak, final,
             "levels off" if levels else "DOES NOT level off"))
sys.exit(0 if ok else 1)
PY
}
conns=${CONNECTIONS:-16}
batch=${BATCH:-64}
read -r -a mesh_flags <<<"${MESH_FLAGS:-}"
if [ -n "${SAMPLES:-}" ]; then verdict "$SAMPLES"; exit $?; fi
bin=${MESHWORK_BIN:-$root/build/bin/meshwork}
load=$(dirname "$bin")/meshwork-bench-load
api=19300 gossip=19400
interval_s=10

die() { echo "soak.sh: $*" >&2; exit 2; }
[ -x "$bin" ] || die "$bin is missing; run 'make build'"
[ -x "$load" ] || die "$load is missing; run 'make build'"
command -v python3 >/dev/null || die "python3 is missing"

W=$(mktemp -d -t meshwork-soak.XXXX)
load_pid=""
cleanup() {
  [ -z "$load_pid" ] || kill "$load_pid" 2>/dev/null || true
  MESHWORK_RUN=$W/mesh "$root/simulations/launch.sh" stop >/dev/null 2>&1 || true
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "soak.sh: work dir kept: $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'echo "soak.sh: interrupted" >&2; exit 130' INT TERM

MESHWORK_RUN=$W/mesh MESHWORK_API_BASE=$api MESHWORK_GOSSIP_BASE=$gossip MESHWORK_BIN=$bin \
  "$root/simulations/launch.sh" 3 -- --replicas 3 --write-quorum 2 --log-level warn \
  --retain-s "$retain_s" --tombstone-s "$tombstone_s" "${mesh_flags[@]}" \
  >"$W/launch.log" 2>&1 || { cat "$W/launch.log" >&2; die "launch.sh could not start 3 nodes"; }
ports="$((api + 1)),$((api + 2)),$((api + 3))"

# sample ELAPSED PHASE → one line of figures, also appended to $W/samples
sample() {
  python3 - "$W/mesh" "$api" "$1" "$2" <<'PY' | tee -a "$W/samples"
import json, os, subprocess, sys, urllib.request
run, api, elapsed, phase = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
acc = done = 0
held, tomb, disk, rss, backlog = [], [], [], [], []
for i in (1, 2, 3):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/v1/node" % (api + i), timeout=10) as r:
            n = json.load(r)
        acc += n["stats"]["submitted"]
        done += n["stats"]["succeeded"]
        held.append(n["mesh"]["held"])
        tomb.append(n["mesh"]["tombstones"])
        backlog.append(n["backlog"] + n["running"])
    except Exception:
        held.append(-1)
        tomb.append(-1)
        backlog.append(-1)
    out = subprocess.run(["du", "-sb", os.path.join(run, "n%d" % i)], capture_output=True, text=True)
    disk.append(int(out.stdout.split()[0]) if out.returncode == 0 else -1)
    kb = -1
    try:
        pid = open(os.path.join(run, "n%d.pid" % i)).read().strip()
        for line in open("/proc/%s/status" % pid):
            if line.startswith("VmRSS:"):
                kb = int(line.split()[1])
    except OSError:
        pass
    rss.append(kb)
mb = lambda b: "%.1f" % (b / 1e6)
print("%s\tt=%4ss accepted=%7d completed=%7d backlog=%s held=%s tombstones=%s disk_MB=%s rss_MB=%s"
      % (phase, elapsed, acc, done, "/".join(map(str, backlog)), "/".join(map(str, held)),
         "/".join(map(str, tomb)), "/".join(mb(d) for d in disk), "/".join(mb(k * 1024) for k in rss)))
PY
}

echo "soak.sh: $jobs jobs, --retain-s $retain_s --tombstone-s $tombstone_s, $conns connections x" \
  "$batch jobs; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
t0=$(date +%s)
"$load" batch 86400 "$conns" "$batch" "$ports" 0 "$jobs" >"$W/load.out" 2>"$W/load.err" &
load_pid=$!
sample 0 load | cut -f2
while kill -0 "$load_pid" 2>/dev/null; do
  sleep "$interval_s"
  if kill -0 "$load_pid" 2>/dev/null; then phase=load; else phase=after; fi
  sample $(($(date +%s) - t0)) "$phase" | cut -f2
done
wait "$load_pid" || die "meshwork-bench-load failed: $(cat "$W/load.err")"
load_pid=""
load_s=$(($(date +%s) - t0))
echo "load done in ${load_s} s: $(tr '\n' ' ' <"$W/load.out")"
[ ! -s "$W/load.err" ] || echo "load client: $(head -c 300 "$W/load.err")"
end=$(($(date +%s) + retain_s + tombstone_s + 20))
while [ "$(date +%s)" -lt "$end" ]; do
  sleep "$interval_s"
  sample $(($(date +%s) - t0)) after | cut -f2
done
for i in 1 2 3; do
  kill -0 "$(cat "$W/mesh/n$i.pid")" 2>/dev/null || echo "soak.sh: n$i CRASHED (log kept in $W)"
done

verdict "$W/samples"
