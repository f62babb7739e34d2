#!/usr/bin/env bash
# The tour behind `make demo`: a 5-node mesh on 127.0.0.1, every job type, idempotent submission,
# retries, a kill -9 in the middle of a job and its recovery, cancellation, then a clean stop.
# Takes about a minute. Uses simulations/launch.sh (data and logs under run/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/build/bin/meshwork"
launch="$root/simulations/launch.sh"
run=${MESHWORK_RUN:-$root/run}
export MESHWORK_RUN=$run
trap '"$launch" stop >/dev/null 2>&1 || true' EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
post() { curl -sf -XPOST "http://127.0.0.1:$1/v1/jobs" -d "$2"; }
job() { curl -sf "http://127.0.0.1:$1/v1/jobs/$2"; }
wait_state() {  # wait_state PORT ID STATE...
  local port=$1 id=$2; shift 2
  for _ in $(seq 1 600); do
    s=$(job "$port" "$id" | field 'd["state"]' 2>/dev/null || true)
    for want in "$@"; do [ "$s" = "$want" ] && return 0; done
    sleep 0.1
  done
  echo "job $id never reached $*" >&2; return 1
}
summary() { job "$1" "$2" | field '"%-9s %-10s attempts=%s node=%s result=%s" % (d["type"], d["state"], d["attempts"], (d["receipt"] or {}).get("node"), json.dumps(d["result"])[:90])'; }

"$launch" stop >/dev/null 2>&1 || true
rm -rf "$run"
say "1. Five nodes, joined by SWIM gossip"
"$launch" 5 -- --log-level warn
"$bin" members --to http://127.0.0.1:8001

say "2. Every job type, posted to different nodes (plain bodies: the entry node signs them)"
declare -A ids
ids[echo]=$(post 8001 '{"type":"echo","payload":{"hello":"mesh"}}' | field 'd["id"]')
ids[pow]=$(post 8002 '{"type":"pow","payload":{"data":"edge","difficulty_bits":18}}' | field 'd["id"]')
ids[tx]=$(post 8003 '{"type":"tx-verify","payload":{"generate":{"accounts":50,"txs":500,"seed":7,"invalid_ratio":0.1}}}' | field 'd["id"]')
ids[enrich]=$(post 8004 '{"type":"enrich","payload":{"records":[{"ts":"2026-11-27T10:00:00Z","ip":"100.64.1.2","ua":"Mozilla/5.0 (iPhone)","url":"https://cdn.example/img/a.png?x=1","status":200,"bytes":5120},{"ts":1795824000,"ip":"8.8.8.8","ua":"curl/8.0","url":"https://cdn.example/api/v1","status":503,"bytes":12}]}}' | field 'd["id"]')
declare -A ports=([echo]=8001 [pow]=8002 [tx]=8003 [enrich]=8004)
for k in echo pow tx enrich; do wait_state "${ports[$k]}" "${ids[$k]}" succeeded; summary "${ports[$k]}" "${ids[$k]}"; done
echo "receipt of the pow job (signed by the node that ran it):"
job 8002 "${ids[pow]}" | field 'json.dumps(d["receipt"], indent=2)'

say "3. Signed by a client, submitted twice: one job (202, then 200 with the same id)"
"$bin" keygen --out "$run/client.key" >/dev/null 2>&1 || true
"$bin" sign --key "$run/client.key" --type echo --payload '{"order":42}' > "$run/envelope.json"
for try in 1 2; do
  curl -s -o /dev/null -w "POST #$try -> %{http_code}\n" -XPOST http://127.0.0.1:8005/v1/jobs -d @"$run/envelope.json"
done

say "4. A flaky job fails twice, backs off with jitter, succeeds on attempt 3"
fid=$(post 8001 '{"type":"flaky","payload":{"fail_times":2}}' | field 'd["id"]')
wait_state 8001 "$fid" succeeded
job 8001 "$fid" | field '"\n".join("  %-9s attempt %s  %s" % (h["state"], h["attempt"], h["reason"]) for h in d["history"])'

say "5. kill -9 a node in the middle of a job; restart it on the same data dir"
sid=$(post 8003 '{"type":"sleep","payload":{"ms":3000}}' | field 'd["id"]')
wait_state 8003 "$sid" running
kill -9 "$(cat "$run/n3.pid")"
echo "n3 killed while running $sid"
for _ in $(seq 1 100); do
  "$bin" members --to http://127.0.0.1:8001 | grep -q "^n3 *dead" && break; sleep 0.1
done
"$bin" members --to http://127.0.0.1:8001 | grep -E "NAME|^n3"
"$bin" node --name n3 --api 127.0.0.1:8003 --gossip 127.0.0.1:7003 --join 127.0.0.1:7001 \
  --data "$run/n3" --log-level warn >>"$run/n3.log" 2>&1 &
echo $! > "$run/n3.pid"
wait_state 8003 "$sid" succeeded
job 8003 "$sid" | field '"\n".join("  %-9s attempt %s  %s" % (h["state"], h["attempt"], h["reason"]) for h in d["history"])'
for _ in $(seq 1 100); do
  "$bin" members --to http://127.0.0.1:8001 | grep -q "^n3 *alive" && break; sleep 0.1
done
"$bin" members --to http://127.0.0.1:8001 | grep -E "NAME|^n3"

say "6. Cancel: a queued job at once, a running one cooperatively"
lid=$(post 8002 '{"type":"sleep","payload":{"ms":60000}}' | field 'd["id"]')
wait_state 8002 "$lid" running
curl -sf -XPOST "http://127.0.0.1:8002/v1/jobs/$lid/cancel" -d '' >/dev/null
wait_state 8002 "$lid" cancelled
summary 8002 "$lid"
curl -s -XPOST "http://127.0.0.1:8002/v1/jobs/$lid/cancel" -d '' | field '"cancel again -> %s: %s" % (d["status"], d["detail"])'

say "7. Errors are problem+json"
curl -s -XPOST http://127.0.0.1:8001/v1/jobs -d '{"type":"nope"}' | field '"%s %s" % (d["status"], d["detail"])'
curl -s -XPOST http://127.0.0.1:8001/v1/jobs -d '{not json' | field '"%s %s" % (d["status"], d["detail"])'

say "8. Node counters"
curl -sf http://127.0.0.1:8001/v1/node | field 'json.dumps({k: d[k] for k in ("name", "jobs", "stats")}, indent=1)'
say "done: the mesh stops now (simulations/launch.sh N to start your own)"
