#!/usr/bin/env bash
# Launch N meshwork nodes on 127.0.0.1 and join them into one mesh.
#
#   simulations/launch.sh N [-- extra node flags]   start n1..nN (API 8001.., gossip 7001..)
#   simulations/launch.sh stop                      stop every node this script started
#   simulations/launch.sh status                    the member table as n1 sees it
#
# Data and logs go to run/ (ignored by git): run/nK/ is node K's data dir, run/nK.log its log,
# run/nK.pid its pid. Every node joins through n1 and n2. The script waits until every node sees
# N alive members (at most MESHWORK_CONVERGE_S seconds, 60), then prints the endpoints and how long
# convergence took. Environment: MESHWORK_API_BASE (8000), MESHWORK_GOSSIP_BASE (7000),
# MESHWORK_RUN (run), MESHWORK_BIN (build/bin/meshwork), MESHWORK_CONVERGE_S (60).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MESHWORK_BIN:-$root/build/bin/meshwork}
run=${MESHWORK_RUN:-$root/run}
api_base=${MESHWORK_API_BASE:-8000}
gossip_base=${MESHWORK_GOSSIP_BASE:-7000}

stop_all() {
  local pids=()
  for f in "$run"/n*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null && pids+=("$pid")
    rm -f "$f"
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  echo "stopped ${#pids[@]} node(s)"
}

alive_seen_by() {  # alive_seen_by PORT → how many members that node sees alive
  curl -sf "http://127.0.0.1:$1/v1/cluster/members" 2>/dev/null |
    python3 -c 'import json,sys; print(sum(m["state"]=="alive" for m in json.load(sys.stdin)["members"]))' 2>/dev/null || echo 0
}

case "${1:-}" in
  stop) stop_all; exit 0 ;;
  status) exec "$bin" members --to "http://127.0.0.1:$((api_base + 1))" ;;
  ''|-h|--help) sed -n '2,12p' "$0"; exit 0 ;;
esac

n=$1; shift
[ "${1:-}" = "--" ] && shift
[[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 200 ] || { echo "launch.sh: N must be 1..200" >&2; exit 2; }
[ -x "$bin" ] || { echo "launch.sh: $bin is missing; run 'make build'" >&2; exit 2; }
mkdir -p "$run"
seeds="127.0.0.1:$((gossip_base + 1))"
[ "$n" -ge 2 ] && seeds="$seeds,127.0.0.1:$((gossip_base + 2))"
for i in $(seq 1 "$n"); do
  if [ -e "$run/n$i.pid" ] && kill -0 "$(cat "$run/n$i.pid")" 2>/dev/null; then
    echo "launch.sh: n$i is already running (launch.sh stop first)" >&2; exit 2
  fi
  "$bin" node --name "n$i" --api "127.0.0.1:$((api_base + i))" --gossip "127.0.0.1:$((gossip_base + i))" \
    --join "$seeds" --data "$run/n$i" "$@" >"$run/n$i.log" 2>&1 &
  echo $! >"$run/n$i.pid"
done

converge_s=${MESHWORK_CONVERGE_S:-60}
started=$(date +%s.%N)
deadline=$(( $(date +%s) + converge_s ))
while :; do
  ok=1
  for i in $(seq 1 "$n"); do
    [ "$(alive_seen_by $((api_base + i)))" -ge "$n" ] || { ok=0; break; }
  done
  [ $ok -eq 1 ] && break
  for i in $(seq 1 "$n"); do
    kill -0 "$(cat "$run/n$i.pid")" 2>/dev/null || { echo "launch.sh: n$i exited; see $run/n$i.log" >&2; tail -5 "$run/n$i.log" >&2; exit 1; }
  done
  [ "$(date +%s)" -lt "$deadline" ] || break
  sleep 0.1
done
[ $ok -eq 1 ] || { echo "launch.sh: the mesh did not converge in $converge_s s" >&2; exit 1; }
converged=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$started" "$(date +%s.%N)")

printf '%-5s %-8s %-22s %-22s %s\n' NODE PID API GOSSIP LOG
for i in $(seq 1 "$n"); do
  printf '%-5s %-8s %-22s %-22s %s\n' "n$i" "$(cat "$run/n$i.pid")" "http://127.0.0.1:$((api_base + i))" \
    "127.0.0.1:$((gossip_base + i))" "$run/n$i.log"
done
echo "all $n nodes see $n alive members (converged in $converged s)"
