#!/usr/bin/env bash
# Benchmark: what an idle member costs. N meshwork nodes and N Serf agents (the anchor: memberlist
# SWIM + Lifeguard, lan profile), side by side in one run on 127.0.0.1; after UPTIME_S of uptime
# (joins and the first anti-entropy rounds are over) the CPU each process uses over WINDOW_S is
# read from /proc/<pid>/stat (utime + stime), and the threads of each meshwork node from
# /proc/<pid>/task. Prints per-member CPU (% of one core), the ratio, threads and RSS.
#
#   usage: simulations/bench/idle.sh [N=20] [UPTIME_S=40] [WINDOW_S=30]     (~2.5 min defaults)
#
# The two systems run at the same time, so background load hits both alike. Serf is started with
# -profile=lan; meshwork with its default (lan) profile, no jobs. Environment: MESHWORK_BIN
# (build/bin/meshwork), SERF_BIN (serf), KEEP_WORK=1 keeps the temp dir. Ports: meshwork API
# 19501.., gossip 19601..; serf bind 19701.., RPC 19801... Needs serf (make deps-bench).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
n=${1:-20}; uptime_s=${2:-40}; window_s=${3:-30}
bin=${MESHWORK_BIN:-$root/build/bin/meshwork}
serf=${SERF_BIN:-$(command -v serf || true)}
[ -x "$bin" ] || { echo "idle.sh: $bin is missing; run 'make build'" >&2; exit 2; }
[ -n "$serf" ] || { echo "idle.sh: serf is missing (make deps-bench)" >&2; exit 2; }
[[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 2 ] && [ "$n" -le 100 ] || { echo "idle.sh: N must be 2..100" >&2; exit 2; }
work=$(mktemp -d -t meshwork-idle.XXXX)
mesh_pids=(); serf_pids=()
cleanup() {
  for p in "${mesh_pids[@]}" "${serf_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "${KEEP_WORK:-0}" = 1 ] && echo "work dir: $work" || rm -rf "$work"
}
trap cleanup EXIT

seeds=127.0.0.1:19601,127.0.0.1:19602
for i in $(seq 1 "$n"); do
  "$bin" node --name "n$i" --api "127.0.0.1:$((19500 + i))" --gossip "127.0.0.1:$((19600 + i))" \
    --join "$seeds" --data "$work/n$i" >"$work/n$i.log" 2>&1 &
  mesh_pids+=($!)
  join=(); [ "$i" -gt 1 ] && join=(-join=127.0.0.1:19701)
  "$serf" agent -node="s$i" -bind="127.0.0.1:$((19700 + i))" -rpc-addr="127.0.0.1:$((19800 + i))" \
    -profile=lan "${join[@]}" -log-level=err >"$work/s$i.log" 2>&1 &
  serf_pids+=($!)
  sleep 0.05
done

ticks() {  # ticks PID... → total utime+stime clock ticks
  local t=0 f
  for p in "$@"; do
    f=$(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null) || { echo "idle.sh: process $p exited" >&2; exit 1; }
    t=$((t + ${f% *} + ${f#* }))
  done
  echo "$t"
}
sleep "$uptime_s"
alive=$(curl -sf "http://127.0.0.1:19501/v1/cluster/members" |
  python3 -c 'import json,sys; print(sum(m["state"]=="alive" for m in json.load(sys.stdin)["members"]))' || echo 0)
serf_alive=$("$serf" members -rpc-addr=127.0.0.1:19801 -status=alive 2>/dev/null | wc -l)
m0=$(ticks "${mesh_pids[@]}"); s0=$(ticks "${serf_pids[@]}"); t0=$(date +%s.%N)
sleep "$window_s"
m1=$(ticks "${mesh_pids[@]}"); s1=$(ticks "${serf_pids[@]}"); t1=$(date +%s.%N)
hz=$(getconf CLK_TCK)
threads=(); rss=0
for p in "${mesh_pids[@]}"; do
  threads+=("$(ls "/proc/$p/task" | wc -l)")
  rss=$((rss + $(awk '/VmRSS/ {print $2}' "/proc/$p/status")))
done
serf_rss=0
for p in "${serf_pids[@]}"; do serf_rss=$((serf_rss + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); done
python3 - "$n" "$hz" "$t0" "$t1" "$m0" "$m1" "$s0" "$s1" "$alive" "$serf_alive" "$rss" "$serf_rss" "${threads[@]}" <<'PY'
import sys
n, hz = int(sys.argv[1]), int(sys.argv[2])
t0, t1 = float(sys.argv[3]), float(sys.argv[4])
m = (int(sys.argv[6]) - int(sys.argv[5])) / hz / (t1 - t0) / n * 100
s = (int(sys.argv[8]) - int(sys.argv[7])) / hz / (t1 - t0) / n * 100
alive, serf_alive, rss, serf_rss = map(int, sys.argv[9:13])
threads = sorted(int(x) for x in sys.argv[13:])
print(f"idle members: {n} meshwork nodes (n1 sees {alive} alive), {n} serf agents (s1 sees {serf_alive} alive)")
print(f"window: {t1 - t0:.1f} s after the uptime")
print(f"{'':10} {'cpu %/member':>13} {'rss MiB/member':>15}")
print(f"{'meshwork':10} {m:13.3f} {rss / n / 1024:15.1f}")
print(f"{'serf':10} {s:13.3f} {serf_rss / n / 1024:15.1f}")
print(f"meshwork / serf cpu: {m / s:.2f}x" if s > 0 else "serf used no measurable cpu")
print(f"meshwork threads per node: min {threads[0]}, median {threads[len(threads) // 2]}, max {threads[-1]}")
PY
