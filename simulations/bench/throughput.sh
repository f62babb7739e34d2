#!/usr/bin/env bash
# Benchmark: replicated submission throughput. 3 meshwork nodes (R=3, W=2, fsync on) beside a
# 3-server NATS JetStream cluster (R3, file storage, work-queue stream), in one run, on 127.0.0.1,
# compared at equal concurrency. Prints a table; exits non-zero only when the harness fails.
#
#   usage: simulations/bench/throughput.sh [seconds=10] [batch=64]     (~2 min with the defaults)
#
#   meshwork single : 64 keep-alive connections spread over the 3 nodes, each posting one `echo`
#                     job (POST /v1/jobs) at a time  -> 64 jobs in flight
#   JetStream 64    : js_PublishAsync with at most 64 acks pending (R3 PubAck = stored on a quorum)
#   meshwork batch  : round(4000 / batch) connections, each posting batches of `batch` echo jobs
#                     (POST /v1/jobs/batch) -> ~4,000 jobs in flight (63 x 64 = 4,032 by default)
#   JetStream 4000  : js_PublishAsync with at most 4,000 acks pending
#
#   accepted/s  : meshwork: jobs answered 202 (each on W=2 disks first), counted one by one by
#                 meshwork-bench-load, over the window from the first request to the last answer.
#                 Every job is distinct, so a 200 ("existing") is also a job this run stored (a
#                 retry inside the mesh): it counts, and the 200s are printed apart.
#                 JetStream: messages whose PubAck arrived, per second of the async publish phase.
#   completed/s : meshwork: accepted jobs / time from the first request until the sum of
#                 stats.succeeded over the 3 nodes (GET /v1/node, polled every 50 ms) reaches them
#                 and no node has a job left in its backlog or running.
#                 JetStream: its pull consumer (fetch 256 + ack each), run after publishing.
#   CPU per job : meshwork: user + system CPU of the 3 node processes (/proc/<pid>/stat) from the
#                 first request until the load client saw every job done and the nodes idle,
#                 divided by the jobs stored. Printed with each phase's p99 request latency.
#
# Durability is not the same on both sides by default: meshwork acknowledges a job once it is
# fsync'd on W=2 nodes (DESIGN.md §1), while JetStream acknowledges a message once its R3 quorum
# holds it in memory and the OS; its file store syncs in the background (nats-server 2.9 every
# 60 s, 2.10 on every 2 min: sync_interval). So two more meshwork phases run the same loads with
# --sync-interval-ms $SYNC_INTERVAL_MS (1000): acknowledged once written to the OS on W nodes and
# fsync'd within a second, still stricter than the anchor. The aims are judged on the default
# (fsync'd) phases; the others show how much of the gap is the fsync.
#
# Each phase runs alone on the machine, in the order JetStream 64, meshwork single, JetStream
# 4000, meshwork batch, so each pair runs close in time; every meshwork phase starts a fresh
# 3-node mesh (fresh data dirs) with simulations/launch.sh. The JetStream anchor is
# ../shared/anchors/jsbench.c (the project's shared anchor, outside this repository), compiled into the temp dir and run
# unchanged: JS_MESSAGES messages of JS_BYTES bytes (its sync-publish phase, n/10 messages, runs
# first and is reported too). Missing anchor, nats-server or libnats-dev: the anchor is skipped.
#
# Environment: ANCHORS ($root/../shared/anchors), JS_MESSAGES (100000), JS_BYTES (256),
# BATCH_IN_FLIGHT (4000), SINGLE_CONNECTIONS (64), WAIT_S (300: completion timeout), MESH_FLAGS
# (extra node flags), MESHWORK_BIN (build/bin/meshwork), KEEP_WORK=1 keeps the temp dir,
# SYNC_INTERVAL_MS (1000; 0 skips the two periodic-sync phases, ~1 min less).
# Ports: meshwork API 19101.., gossip 19201..; NATS clients 4222-4224 (fixed in jsbench.c),
# cluster 6222-6224, monitoring 8222-8224. Needs python3, curl; make deps-bench for NATS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=simulations/bench/lib.sh
. "$here/lib.sh"

secs=${1:-10}
batch=${2:-64}
usage() { sed -n 's/^#  *usage: /usage: /p' "$0" >&2; exit 2; }
case "${1:-}" in -h|--help) usage ;; esac
if ! [[ "$secs" =~ ^[0-9]+$ && "$batch" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ] || [ "$secs" -gt 600 ] ||
  [ "$batch" -lt 1 ] || [ "$batch" -gt 1000 ]; then usage; fi

anchors=${ANCHORS:-$root/../shared/anchors}
js_messages=${JS_MESSAGES:-100000}
js_bytes=${JS_BYTES:-256}
batch_in_flight=${BATCH_IN_FLIGHT:-4000}
single_conns=${SINGLE_CONNECTIONS:-64}
wait_s=${WAIT_S:-300}
sync_interval_ms=${SYNC_INTERVAL_MS:-1000}
[[ "$sync_interval_ms" =~ ^[0-9]+$ ]] || usage
read -r -a mesh_flags <<<"${MESH_FLAGS:-}"
bin=${MESHWORK_BIN:-$root/build/bin/meshwork}
load=$(dirname "$bin")/meshwork-bench-load
MW_API=19100 MW_GOSSIP=19200
# Batch connections: as many as keep ~BATCH_IN_FLIGHT jobs in flight (at least one).
batch_conns=$(( (batch_in_flight + batch / 2) / batch ))
[ "$batch_conns" -ge 1 ] || batch_conns=1

die() { echo "throughput.sh: $*" >&2; exit 2; }
say() { echo "[$(date +%H:%M:%S)] $*"; }
[ -x "$bin" ] || die "$bin is missing; run 'make build'"
[ -x "$load" ] || die "$load is missing; run 'make build'"
command -v python3 >/dev/null || die "python3 is missing"
command -v curl >/dev/null || die "curl is missing"

W=$(mktemp -d -t meshwork-throughput.XXXX)
NATS_PIDS=()
cleanup() {
  local p d
  for d in "$W"/mw-*; do
    if [ -d "$d" ]; then MESHWORK_RUN=$d "$root/simulations/launch.sh" stop >/dev/null 2>&1 || true; fi
  done
  for p in "${NATS_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${NATS_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "throughput.sh: work dir kept: $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'echo "throughput.sh: interrupted" >&2; exit 130' INT TERM

# ports_busy PROTO:PORT... → prints the ones that cannot be bound on 127.0.0.1 (after up to 10 s).
ports_busy() {
  python3 - "$@" <<'PY'
import socket, sys, time
def busy(specs):
    out = []
    for spec in specs:
        proto, port = spec.split(":")
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
        if proto == "tcp":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", int(port)))
        except OSError:
            out.append(spec)
        finally:
            s.close()
    return out
deadline = time.time() + 10
while busy(sys.argv[1:]) and time.time() < deadline:
    time.sleep(0.2)
print(" ".join(busy(sys.argv[1:])))
PY
}

# ---------------------------------------------------------------------------------------------
# The JetStream anchor.
js_skip=""
if [ ! -f "$anchors/jsbench.c" ]; then
  js_skip="no $anchors/jsbench.c (set ANCHORS)"
elif ! command -v nats-server >/dev/null; then
  js_skip="nats-server is missing (make deps-bench)"
elif ! command -v gcc >/dev/null || [ ! -f /usr/include/nats/nats.h ]; then
  js_skip="gcc or libnats-dev is missing (make deps-bench)"
elif ! gcc -O2 "$anchors/jsbench.c" -o "$W/jsbench" -lnats 2>"$W/jsbench-build.log"; then
  js_skip="jsbench.c did not compile: $(head -3 "$W/jsbench-build.log")"
fi
[ -z "$js_skip" ] || say "JetStream anchor SKIPPED: $js_skip"

nats_start() {  # nats_start DIR → NATS_PIDS; 3 servers, JetStream meta leader elected
  local d=$1 i busy
  busy=$(ports_busy tcp:4222 tcp:4223 tcp:4224 tcp:6222 tcp:6223 tcp:6224 tcp:8222 tcp:8223 tcp:8224)
  [ -z "$busy" ] || die "NATS ports in use by another process: $busy"
  mkdir -p "$d"
  for i in 1 2 3; do
    nats-server -a 127.0.0.1 -p "422$((i + 1))" -m "822$((i + 1))" -js -sd "$d/n$i" --server_name "n$i" \
      --cluster_name jobs --cluster "nats://127.0.0.1:622$((i + 1))" \
      --routes nats://127.0.0.1:6222,nats://127.0.0.1:6223,nats://127.0.0.1:6224 \
      -l "$d/n$i.log" &
    NATS_PIDS+=($!)
  done
  for _ in $(seq 1 100); do
    curl -sf http://127.0.0.1:8222/jsz 2>/dev/null | grep -q '"leader"' && break
    sleep 0.2
  done
  curl -sf http://127.0.0.1:8222/jsz 2>/dev/null | grep -q '"leader"' || die "JetStream did not elect a leader in 20 s ($d)"
  sleep 2   # as the anchor script: let the routes settle
}

nats_stop() {
  local p
  for p in "${NATS_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${NATS_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  NATS_PIDS=()
}

# js_run IN_FLIGHT → JS_ASYNC, JS_PULL, JS_SYNC (msgs/s; "n/a" when the anchor is skipped or
# failed). jsbench gives up on a publish stalled 200 ms (libnats' default StallWait), which a
# loaded machine can cause at 4,000 pending: one retry on a fresh cluster, then n/a.
js_run() {
  local inflight=$1 out="" line try ok=0
  JS_ASYNC=n/a JS_PULL=n/a JS_SYNC=n/a
  [ -z "$js_skip" ] || return 0
  for try in 1 2; do
    nats_start "$W/nats-$inflight-$try"
    out=$("$W/jsbench" "$js_messages" "$js_bytes" 3 "$inflight" 2>&1) && ok=1
    nats_stop
    while IFS= read -r line; do echo "  jsbench($inflight): $line"; done <<<"$out"
    [ "$ok" -eq 0 ] || break
    say "JetStream $inflight pending: jsbench failed (try $try of 2)"
  done
  [ "$ok" -eq 1 ] || return 0
  JS_ASYNC=$(echo "$out" | awk '/async publish/ {print $(NF-1)}')
  JS_PULL=$(echo "$out" | awk '/pull fetch/ {print $(NF-1)}')
  JS_SYNC=$(echo "$out" | awk '/sync publish/ && !/async/ {print $(NF-3)}')
}

# ---------------------------------------------------------------------------------------------
# meshwork: mw_run single|batch CONNECTIONS BATCH [TAG FLAG...] → the load client's key=value lines
# in $W/load-MODE[-TAG].out; the flags are added to the nodes'.
mw_run() {
  local mode=$1 conns=$2 size=$3 tag=${4:-} ports busy i
  shift 3; [ $# -eq 0 ] || shift
  local extra=("$@") name=$mode${tag:+-$tag}
  local d="$W/mw-$name"
  busy=$(ports_busy tcp:$((MW_API + 1)) tcp:$((MW_API + 2)) tcp:$((MW_API + 3)) \
    udp:$((MW_GOSSIP + 1)) udp:$((MW_GOSSIP + 2)) udp:$((MW_GOSSIP + 3)) \
    tcp:$((MW_GOSSIP + 1)) tcp:$((MW_GOSSIP + 2)) tcp:$((MW_GOSSIP + 3)))
  [ -z "$busy" ] || die "meshwork ports in use by another process: $busy (change MW_API/MW_GOSSIP in $0)"
  if ! MESHWORK_RUN=$d MESHWORK_API_BASE=$MW_API MESHWORK_GOSSIP_BASE=$MW_GOSSIP MESHWORK_BIN=$bin \
    "$root/simulations/launch.sh" 3 -- --replicas 3 --write-quorum 2 --log-level warn \
    --backlog-max 1000000 "${mesh_flags[@]}" "${extra[@]}" >"$W/launch-$name.log" 2>&1; then
    cat "$W/launch-$name.log" >&2
    die "launch.sh could not start 3 nodes"
  fi
  ports="$((MW_API + 1)),$((MW_API + 2)),$((MW_API + 3))"
  local cpu0 cpu1
  cpu0=$(nodes_cpu_ticks "$d")
  "$load" "$mode" "$secs" "$conns" "$size" "$ports" "$wait_s" >"$W/load-$name.out" 2>"$W/load-$name.err" ||
    die "meshwork-bench-load failed: $(cat "$W/load-$name.err")"
  cpu1=$(nodes_cpu_ticks "$d")
  # CPU of the 3 nodes from the first request until the load client saw them idle (it waits for
  # completion): submission, replication and execution of every job.
  echo "node_cpu_s=$(python3 -c "print(($cpu1 - $cpu0) / $(getconf CLK_TCK))")" >>"$W/load-$name.out"
  for i in 1 2 3; do
    kill -0 "$(cat "$d/n$i.pid")" 2>/dev/null || say "meshwork $name: n$i CRASHED (log: $d/n$i.log)"
  done
  MESHWORK_RUN=$d "$root/simulations/launch.sh" stop >/dev/null
}

# ---------------------------------------------------------------------------------------------
t_begin=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
say "throughput.sh: ${secs} s per meshwork phase, batch=$batch ($batch_conns connections);" \
  "$(nproc) cores, load average $load_start; $(nats-server --version 2>/dev/null || echo 'no nats-server')"

say "JetStream R3, async publish, 64 acks pending ($js_messages messages of $js_bytes B)"
js_run 64
js64=$JS_ASYNC js64_pull=$JS_PULL js_sync=$JS_SYNC
say "meshwork single: $single_conns connections, POST /v1/jobs, ${secs} s"
mw_run single "$single_conns" 1
say "JetStream R3, async publish, $batch_in_flight acks pending"
js_run "$batch_in_flight"
js4k=$JS_ASYNC js4k_pull=$JS_PULL js_sync2=$JS_SYNC
say "meshwork batch: $batch_conns connections x $batch jobs, POST /v1/jobs/batch, ${secs} s"
mw_run batch "$batch_conns" "$batch"
phases=(single batch)
if [ "$sync_interval_ms" -gt 0 ]; then
  say "meshwork single, --sync-interval-ms $sync_interval_ms (the anchor's durability): $single_conns connections, ${secs} s"
  mw_run single "$single_conns" 1 periodic --sync-interval-ms "$sync_interval_ms"
  say "meshwork batch, --sync-interval-ms $sync_interval_ms: $batch_conns connections x $batch jobs, ${secs} s"
  mw_run batch "$batch_conns" "$batch" periodic --sync-interval-ms "$sync_interval_ms"
  phases+=(single-periodic batch-periodic)
fi

for m in "${phases[@]}"; do
  f="$W/load-$m.out"
  say "meshwork $m: $(field requests "$f") requests in $(field window_s "$f") s; jobs stored $(field stored "$f")" \
    "(202: $(field accepted "$f"), 200 existing: $(field existing "$f")), items refused $(field items_refused "$f"), 429: $(field requests_429 "$f")," \
    "503: $(field requests_503 "$f"), other: $(field requests_other "$f"), transport errors: $(field transport_errors "$f");" \
    "request latency p50 $(field p50_ms "$f") ms, p99 $(field p99_ms "$f") ms; $(field completed "$f") succeeded" \
    "(reached stored: $(field completed_all "$f"), then idle: $(field idle "$f")) at $(field completed_s "$f") s;" \
    "CPU of the 3 nodes $(field node_cpu_s "$f") s"
  c=$(field completed "$f") st=$(field stored "$f")
  extra=$(( ${c:-0} - ${st:-0} ))
  if [ "$extra" -gt 0 ]; then
    say "meshwork $m: $extra more successes than jobs stored: refused items that ran anyway, or duplicate runs"
  fi
  if [ -s "$W/load-$m.err" ]; then say "meshwork $m: $(head -c 400 "$W/load-$m.err")"; fi
done

python3 - "$W/load-single.out" "$W/load-batch.out" "$js64" "$js64_pull" "$js4k" "$js4k_pull" \
  "$single_conns" "$batch_conns" "$batch" "$batch_in_flight" "$secs" "$js_sync" "$js_sync2" \
  "$sync_interval_ms" "$W/load-single-periodic.out" "$W/load-batch-periodic.out" <<'PY'
import sys
def kv(path):
    with open(path) as f:
        return dict(line.strip().split("=", 1) for line in f if "=" in line)
def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None
single, batchd = kv(sys.argv[1]), kv(sys.argv[2])
js64, js64p, js4k, js4kp = (num(x) for x in sys.argv[3:7])
sconns, bconns, bsize, binflight, secs = sys.argv[7:12]
js_sync = [x for x in sys.argv[12:14] if num(x) is not None]
sync_ms = sys.argv[14]
import os
periodic = [kv(f) if os.path.exists(f) else None for f in sys.argv[15:17]]
def f0(x):
    return "n/a" if x is None else f"{x:,.0f}"
def ratio(a, b):
    return "n/a" if a is None or not b else f"{a / b:.2f}"
def done_of(d):  # completed/s, once every accepted job succeeded
    return num(d.get("completed_per_s")) if d.get("completed_all") == "yes" else None
s_acc, s_done = num(single.get("accepted_per_s")), done_of(single)
b_acc, b_done = num(batchd.get("accepted_per_s")), done_of(batchd)
print()
print(f"Replicated submission throughput, loopback: 3 meshwork nodes (R=3, W=2, fsync before the ack, "
      f"echo jobs, {secs} s per phase) vs NATS JetStream R3 (file storage, work-queue stream; "
      f"acks before its background sync)")
w = (40, 20, 13, 14, 16)
hdr = ("what", "in flight", "accepted/s", "completed/s", "ratio to JS")
print("".join(h.ljust(x) for h, x in zip(hdr, w)))
rows = [
    ("meshwork single POST /v1/jobs", f"{sconns} jobs", s_acc, s_done, ratio(s_acc, js64)),
    ("JetStream async publish, 64 pending", "64 msgs", js64, js64p, "1.00" if js64 else "n/a"),
    (f"meshwork batches of {bsize}", f"{bconns}x{bsize}={int(bconns) * int(bsize)} jobs", b_acc, b_done,
     ratio(b_acc, js4k)),
    (f"JetStream async publish, {binflight} pending", f"{binflight} msgs", js4k, js4kp,
     "1.00" if js4k else "n/a"),
]
if periodic[0] is not None:
    p_acc = num(periodic[0].get("accepted_per_s"))
    rows.append((f"meshwork single, sync every {sync_ms} ms", f"{sconns} jobs", p_acc, done_of(periodic[0]),
                 ratio(p_acc, js64)))
if periodic[1] is not None:
    p_acc = num(periodic[1].get("accepted_per_s"))
    rows.append((f"meshwork batches, sync every {sync_ms} ms", f"{int(bconns) * int(bsize)} jobs", p_acc,
                 done_of(periodic[1]), ratio(p_acc, js4k)))
for name, infl, acc, done, r in rows:
    print("".join(c.ljust(x) for c, x in zip((name, infl, f0(acc), f0(done), r), w)))
print("completed/s: meshwork = accepted jobs / (first request -> last success, stats.succeeded over "
      "the nodes); JetStream = its pull consumer (fetch 256 + ack), run after publishing")
if js_sync:
    print("JetStream sync publish (1 in flight): " + " / ".join(f"{float(x):,.0f}" for x in js_sync) + " msgs/s")
aim_b = "n/a" if b_acc is None or not js4k else ("met" if b_acc >= js4k else "not met")
aim_s = "n/a" if s_acc is None or not js64 else ("met" if s_acc >= 0.5 * js64 else "not met")
print(f"aim: batches ahead of JetStream (ratio >= 1): {aim_b}; single requests at least half of "
      f"JetStream at 64 (ratio >= 0.5): {aim_s}")
def cpu_per_job(d):
    cpu, stored = num(d.get("node_cpu_s")), num(d.get("stored"))
    return "n/a" if cpu is None or not stored else f"{cpu / stored * 1e6:,.0f} µs"
print(f"CPU per stored job, the 3 nodes together, first request to idle: single {cpu_per_job(single)}, "
      f"batches {cpu_per_job(batchd)}; request latency p99: single {single.get('p99_ms', 'n/a')} ms, "
      f"batches {batchd.get('p99_ms', 'n/a')} ms")
if all(d is not None for d in periodic):
    ps, pb = periodic
    print(f"with --sync-interval-ms {sync_ms} (acked once in the OS on W nodes, fsync'd within the interval; "
          f"the anchor syncs every 60-120 s): CPU per stored job single {cpu_per_job(ps)}, batches "
          f"{cpu_per_job(pb)}; p99 single {ps.get('p99_ms', 'n/a')} ms, batches {pb.get('p99_ms', 'n/a')} ms; "
          f"items refused {ps.get('items_refused', 'n/a')} / {pb.get('items_refused', 'n/a')}")
print("aims are judged on the default phases (fsync before the ack)")
PY
echo "load average at the start: $load_start, at the end: $(cut -d' ' -f1-3 /proc/loadavg);" \
  "wall time $(($(date +%s) - t_begin)) s (2 cores shared with any other work: compare ratios)"
