#!/usr/bin/env bash
# Benchmark: one meshwork node under keep-alive load posting `echo` jobs, beside a bare cpp-httplib
# endpoint (the HTTP ceiling on this machine) run in the same script, and their ratio.
#
#   accepted/s   : 202 answers per second (each one fsync'd to LevelDB before the answer)
#   completed/s  : jobs that reached `succeeded`, from the first request to the last completion
#   ceiling/s    : the bare cpp-httplib server answering 202 with no work (same threads, same wrk)
#
# usage: simulations/bench/submit.sh [seconds=10] [connections=64] [threads=2]
# Needs wrk (make deps-bench). Prints a table; writes nothing outside a temp dir.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$root/build/bin"
secs=${1:-10}; conns=${2:-64}; wthreads=${3:-2}
command -v wrk >/dev/null || { echo "submit.sh: wrk is missing (make deps-bench)" >&2; exit 2; }
work=$(mktemp -d -t meshwork-bench.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return 0; sleep 0.1; done; return 1; }
succeeded() { curl -sf "http://127.0.0.1:$1/v1/node" | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"]["succeeded"])'; }
now() { date +%s.%N; }

# 1. The ceiling: bare cpp-httplib.
cport=$(free_port)
"$bin/meshwork-bench-httplib" "$cport" 64 & pids+=($!)
wait_http "$cport"
ceiling_out=$(wrk -t"$wthreads" -c"$conns" -d"${secs}s" -s "$here/post_job.lua" "http://127.0.0.1:$cport")
ceiling=$(echo "$ceiling_out" | awk '/Requests\/sec/ {print $2}')
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

# 2. meshwork: one node, fsync on, workers = cores.
mport=$(free_port)
"$bin/meshwork" node --name bench --api "127.0.0.1:$mport" --data "$work/node" --log-level warn \
  --backlog-max 1000000 > "$work/node.log" 2>&1 & pids+=($!)
wait_http "$mport"
t0=$(now)
mesh_out=$(wrk -t"$wthreads" -c"$conns" -d"${secs}s" -s "$here/post_job.lua" "http://127.0.0.1:$mport")
t1=$(now)
# wrk counts only answers it read; the node's own counter also has the requests in flight at the end.
sleep 0.5
accepted_total=$(curl -sf "http://127.0.0.1:$mport/v1/node" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["submitted"])')
accepted=$(echo "$mesh_out" | awk '/Requests\/sec/ {print $2}')
# Wait for every accepted job to finish (bounded: 5 minutes).
for _ in $(seq 1 3000); do
  done_n=$(succeeded "$mport")
  [ "$done_n" -ge "$accepted_total" ] && break
  sleep 0.1
done
t2=$(now)
completed=$(python3 -c "print(f'{$done_n / ($t2 - $t0):.0f}')")
echo "$mesh_out" | grep -E "^requests=|Latency" | sed 's/^/  meshwork wrk: /'
echo "$ceiling_out" | grep -E "^requests=" | sed 's/^/  ceiling wrk:  /'
python3 - "$ceiling" "$accepted" "$completed" "$accepted_total" "$done_n" "$conns" "$secs" <<'PY'
import sys
ceiling, accepted, completed = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
acc_n, done_n, conns, secs = sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
print(f"\nsubmit benchmark: 1 node, echo jobs, {conns} keep-alive connections, {secs} s, fsync on")
print(f"{'what':<34}{'per second':>12}{'ratio to ceiling':>20}")
print(f"{'bare cpp-httplib 202 (ceiling)':<34}{ceiling:>12.0f}{1.0:>20.2f}")
print(f"{'meshwork accepted (durable 202)':<34}{accepted:>12.0f}{accepted / ceiling:>20.2f}")
print(f"{'meshwork completed (succeeded)':<34}{completed:>12.0f}{completed / ceiling:>20.2f}")
print(f"accepted {acc_n} jobs, {done_n} succeeded")
PY
