#!/usr/bin/env bash
# The tour behind `make demo`: a 5-node mesh on 127.0.0.1, every job type, idempotent submission,
# retries, a kill -9 of the node running a job and the takeover by another replica (its receipt
# checked with `meshwork verify`), cancellation, then a clean stop. Takes about half a minute.
# Uses simulations/launch.sh (data and logs under run/; ports from MESHWORK_API_BASE, 8000, and
# MESHWORK_GOSSIP_BASE, 7000: node K listens on base+K).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/build/bin/meshwork"
launch="$root/simulations/launch.sh"
run=${MESHWORK_RUN:-$root/run}
api_base=${MESHWORK_API_BASE:-8000}
gossip_base=${MESHWORK_GOSSIP_BASE:-7000}
export MESHWORK_RUN=$run MESHWORK_API_BASE=$api_base MESHWORK_GOSSIP_BASE=$gossip_base
trap '"$launch" stop >/dev/null 2>&1 || true' EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
url() { echo "http://127.0.0.1:$((api_base + $1))"; }  # url K: node nK's API
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
post() { curl -sf -XPOST "$(url "$1")/v1/jobs" -d "$2"; }
job() { curl -sf "$(url "$1")/v1/jobs/$2"; }
wait_state() {  # wait_state K ID STATE...
  local k=$1 id=$2; shift 2
  for _ in $(seq 1 600); do
    s=$(job "$k" "$id" | field 'd["state"]' 2>/dev/null || true)
    for want in "$@"; do [ "$s" = "$want" ] && return 0; done
    sleep 0.1
  done
  echo "job $id never reached $*" >&2; return 1
}
summary() { job "$1" "$2" | field '"%-9s %-10s attempts=%s node=%s result=%s" % (d["type"], d["state"], d["attempts"], (d["receipt"] or {}).get("node"), json.dumps(d["result"])[:90])'; }
history() { job "$1" "$2" | field '"\n".join("  %-9s attempt %s  %s%s" % (h["state"], h["attempt"], h["reason"], "    <- the takeover" if "takes over" in h["reason"] else "") for h in d["history"])'; }
member_is() {  # member_is K NAME STATE: wait until node nK sees NAME in STATE
  for _ in $(seq 1 150); do
    "$bin" members --node "$(url "$1")" | grep -q "^$2 *$3" && return 0; sleep 0.1
  done
}

"$launch" stop >/dev/null 2>&1 || true
rm -rf "$run"
say "1. Five nodes, joined by SWIM gossip"
"$launch" 5 -- --log-level warn
"$bin" members --node "$(url 1)"

say "2. Every job type, posted to different nodes (plain bodies: the entry node signs them)"
declare -A ids
ids[echo]=$(post 1 '{"type":"echo","payload":{"hello":"mesh"}}' | field 'd["id"]')
ids[pow]=$(post 2 '{"type":"pow","payload":{"data":"edge","difficulty_bits":18}}' | field 'd["id"]')
ids[tx]=$(post 3 '{"type":"tx-verify","payload":{"generate":{"accounts":50,"txs":500,"seed":7,"invalid_ratio":0.1}}}' | field 'd["id"]')
ids[enrich]=$(post 4 '{"type":"enrich","payload":{"records":[{"ts":"2026-11-27T10:00:00Z","ip":"100.64.1.2","ua":"Mozilla/5.0 (iPhone)","url":"https://cdn.example/img/a.png?x=1","status":200,"bytes":5120},{"ts":1795824000,"ip":"8.8.8.8","ua":"curl/8.0","url":"https://cdn.example/api/v1","status":503,"bytes":12}]}}' | field 'd["id"]')
declare -A at=([echo]=1 [pow]=2 [tx]=3 [enrich]=4)
for k in echo pow tx enrich; do wait_state "${at[$k]}" "${ids[$k]}" succeeded; summary "${at[$k]}" "${ids[$k]}"; done
echo "receipt of the pow job (signed by the node that ran it):"
job 2 "${ids[pow]}" | field 'json.dumps(d["receipt"], indent=2)'

say "3. Signed by a client, submitted twice: one job (202, then 200 with the same id)"
"$bin" keygen --out "$run/client.key" >/dev/null 2>&1 || true
"$bin" sign --key "$run/client.key" --type echo --payload '{"order":42}' > "$run/envelope.json"
for try in 1 2; do
  curl -s -o /dev/null -w "POST #$try -> %{http_code}\n" -XPOST "$(url 5)/v1/jobs" -d @"$run/envelope.json"
done

say "4. A flaky job fails twice, backs off with jitter, succeeds on attempt 3"
fid=$(post 1 '{"type":"flaky","payload":{"fail_times":2}}' | field 'd["id"]')
wait_state 1 "$fid" succeeded
history 1 "$fid"

say "5. kill -9 the node running a job: another replica takes it over, and its receipt verifies"
sid=$(post 3 '{"type":"sleep","payload":{"ms":3000}}' | field 'd["id"]')
wait_state 3 "$sid" running
owner=$(job 3 "$sid" | field 'd["claim"]["node"] or d["owner"]')
k=${owner#n}
ask=$(( k == 1 ? 2 : 1 ))  # a node that stays up, to ask from now on
job 3 "$sid" | field '"%s runs on %s; its replicas: %s" % (d["id"][:16], d["claim"]["node"], " ".join(d["replicas"]))'
kill -9 "$(cat "$run/$owner.pid")"
echo "$owner killed (kill -9) in the middle of the job"
member_is "$ask" "$owner" dead
"$bin" members --node "$(url "$ask")" | grep -E "NAME|^$owner "
wait_state "$ask" "$sid" succeeded
echo "the job's history, as n$ask reads it from the replicas:"
history "$ask" "$sid"
summary "$ask" "$sid"
echo "\$ meshwork verify $sid"
"$bin" verify --node "$(url "$ask")" "$sid"
echo "$owner restarts on the same data dir and rejoins:"
"$bin" node --name "$owner" --api "127.0.0.1:$((api_base + k))" --gossip "127.0.0.1:$((gossip_base + k))" \
  --join "127.0.0.1:$((gossip_base + 1)),127.0.0.1:$((gossip_base + 2))" --data "$run/$owner" \
  --log-level warn >>"$run/$owner.log" 2>&1 &
echo $! > "$run/$owner.pid"
member_is "$ask" "$owner" alive
"$bin" members --node "$(url "$ask")" | grep -E "NAME|^$owner "

say "6. Cancel: a queued job at once, a running one cooperatively"
lid=$(post 2 '{"type":"sleep","payload":{"ms":60000}}' | field 'd["id"]')
wait_state 2 "$lid" running
"$bin" cancel --node "$(url 2)" "$lid" >/dev/null
wait_state 2 "$lid" cancelled
summary 2 "$lid"
echo "\$ meshwork cancel (again)"
"$bin" cancel --node "$(url 2)" "$lid" >/dev/null || echo "exit $?"

say "7. Errors are problem+json"
curl -s -XPOST "$(url 1)/v1/jobs" -d '{"type":"nope"}' | field '"%s %s" % (d["status"], d["detail"])'
curl -s -XPOST "$(url 1)/v1/jobs" -d '{not json' | field '"%s %s" % (d["status"], d["detail"])'

say "8. The jobs so far, newest first (meshwork jobs), and node counters"
"$bin" jobs --node "$(url 1)" --limit 6
curl -sf "$(url 1)/v1/node" | field 'json.dumps({k: d[k] for k in ("name", "jobs", "stats")}, indent=1)'

say "9. Watching it: Prometheus metrics, the event stream, the dashboard"
curl -sf "$(url 1)/metrics" | grep -E '^meshwork_(members|takeovers_total|jobs)' | head -12
echo "\$ meshwork watch --kinds job (a new job, seen as it runs)"
"$bin" watch --node "$(url 1)" --kinds job > "$run/watch.txt" 2>&1 & watch_pid=$!
sleep 0.5
wid=$(post 2 '{"type":"sleep","payload":{"ms":300}}' | field 'd["id"]')
wait_state 1 "$wid" succeeded
sleep 0.3; kill "$watch_pid" 2>/dev/null || true; wait "$watch_pid" 2>/dev/null || true
grep "$wid" "$run/watch.txt" || cat "$run/watch.txt"
echo "every node serves the live dashboard at /, e.g. $(url 1)/ (docs/dashboard.png)"
if [ -n "${MESHWORK_DEMO_KEEP:-}" ]; then
  trap - EXIT
  say "done: the mesh keeps running (MESHWORK_DEMO_KEEP); simulations/launch.sh stop ends it"
  exit 0
fi
say "done: the mesh stops now (MESHWORK_DEMO_KEEP=1 make demo keeps it; simulations/launch.sh N starts your own)"
