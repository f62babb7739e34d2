#!/usr/bin/env bash
# Benchmark: failover time. 5 meshwork nodes on 127.0.0.1 (R=3, W=2, default gossip profile). Each
# run posts a `sleep` job, waits until it runs, kill -9s the node running it, and measures the time
# from the kill until the job has succeeded on a survivor, minus the job's own run time (the
# takeover runs it again from the start). Prints each run, then p50 / p99 / max against the aim
# (p50 <= 2 s). Exits non-zero only when the harness itself fails.
#
#   usage: simulations/bench/failover.sh [runs=20] [job_ms=1000]     (~2 min with the defaults)
#
# One run:
#   1. POST {"type":"sleep","payload":{"ms":job_ms},"max_attempts":3} to a random node; its answer
#      names the owner.
#   2. Poll the job (GET /v1/jobs/{id} on another node, every POLL_MS) until it is `running`; the
#      victim is the node holding the claim (claim.node; the owner when the view has no claim).
#   3. kill -9 the victim and take t_kill. One thread per survivor polls
#      GET /v1/jobs/{id}?scope=local (that node's own disk, no fan-out to the dead peer) every
#      POLL_MS over keep-alive; t_success is the first answer that reads `succeeded`.
#      failover_s = t_success - t_kill - job_ms, late by at most one poll plus one GET.
#      Cross-checks from the final job record (wall-clock ms stamps, same machine): takeover_s =
#      the new attempt's `running` history entry - t_kill (detection + claim + start), and
#      record_s = the winning result's `at` - t_kill - job_ms.
#   4. Restart the victim on its data dir with launch.sh's command line (appending to its log),
#      wait until all 5 nodes see 5 alive, then SETTLE_S more.
# p99 is nearest-rank: with fewer than 100 runs it is the maximum.
#
# Environment: NODES (5), POLL_MS (20), SETTLE_S (1), PROFILE (empty: the node's default, lan),
# MESH_FLAGS (extra node flags), MESHWORK_BIN (build/bin/meshwork), KEEP_WORK=1 keeps the temp dir.
# Ports: API 19301.., gossip 19401.. (launch.sh uses 8001../7001..). Needs python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

runs=${1:-20}
job_ms=${2:-1000}
usage() { sed -n 's/^#  *usage: /usage: /p' "$0" >&2; exit 2; }
case "${1:-}" in -h|--help) usage ;; esac
nodes=${NODES:-5}
poll_ms=${POLL_MS:-20}
settle_s=${SETTLE_S:-1}
for v in "$runs" "$job_ms" "$nodes" "$poll_ms" "$settle_s"; do [[ "$v" =~ ^[0-9]+$ ]] || usage; done
if [ "$runs" -lt 1 ] || [ "$runs" -gt 1000 ] || [ "$job_ms" -lt 1 ] || [ "$job_ms" -gt 600000 ] ||
  [ "$nodes" -lt 3 ] || [ "$nodes" -gt 50 ] || [ "$poll_ms" -lt 5 ]; then usage; fi
read -r -a mesh_flags <<<"${MESH_FLAGS:-}"
[ -z "${PROFILE:-}" ] || mesh_flags+=(--profile "$PROFILE")
bin=${MESHWORK_BIN:-$root/build/bin/meshwork}
MW_API=19300 MW_GOSSIP=19400
node_flags=(--replicas 3 --write-quorum 2 --log-level warn "${mesh_flags[@]}")

die() { echo "failover.sh: harness failure: $*" >&2; exit 2; }
say() { echo "[$(date +%H:%M:%S)] $*"; }
[ -x "$bin" ] || die "$bin is missing; run 'make build'"
command -v python3 >/dev/null || die "python3 is missing"

W=$(mktemp -d -t meshwork-failover.XXXX)
run_dir=$W/run
cleanup() {
  MESHWORK_RUN=$run_dir "$root/simulations/launch.sh" stop >/dev/null 2>&1 || true
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "failover.sh: work dir kept: $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'echo "failover.sh: interrupted" >&2; exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Python helper (stdlib only): one measured run, convergence, and the summary.
cat >"$W/h.py" <<'PY'
import http.client, json, os, random, signal, sys, threading, time

def request(conn, port, method, path, body=None, timeout=5):
    """One request over the keep-alive connection conn[0] (reopened once if the server dropped
    it); (status, JSON or None, headers), or (None, None, {}) when the node does not answer."""
    for _ in range(2):
        try:
            if conn[0] is None:
                conn[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            hdrs = {"Content-Type": "application/json"} if body is not None else {}
            conn[0].request(method, path, body=body, headers=hdrs)
            r = conn[0].getresponse()
            data = r.read()
            try:
                js = json.loads(data)
            except ValueError:
                js = None
            return r.status, js, dict(r.getheaders())
        except Exception:
            try:
                conn[0].close()
            except Exception:
                pass
            conn[0] = None
    return None, None, {}

def converge(n, timeout, ports):
    conns = {p: [None] for p in ports}
    t0 = time.time()
    while time.time() - t0 < timeout:
        ok = True
        for p in ports:
            _, d, _ = request(conns[p], p, "GET", "/v1/cluster/members", timeout=2)
            if not d or sum(m.get("state") == "alive" for m in d.get("members", [])) != n:
                ok = False
                break
        if ok:
            print(f"{time.time() - t0:.2f}")
            return 0
        time.sleep(0.1)
    print("timeout")
    return 1

def attempt_of(view):
    return view.get("attempt", view.get("attempts", 0))

def one_run(run_dir, api_base, n, job_ms, poll_ms, seed):
    rnd = random.Random(seed)
    names = [f"n{i}" for i in range(1, n + 1)]
    port = {name: api_base + i for i, name in enumerate(names, 1)}
    res = {"ok": False}
    # 1. Submit to a random node (retry on 429/503 for up to 10 s).
    entry = rnd.choice(names)
    body = json.dumps({"type": "sleep", "payload": {"ms": job_ms}, "max_attempts": 3,
                       "timeout_ms": job_ms + 60000})
    deadline = time.time() + 10
    while True:
        st, view, hdrs = request([None], port[entry], "POST", "/v1/jobs", body)
        if st in (200, 202) or time.time() > deadline:
            break
        time.sleep(0.2)
    if st not in (200, 202) or not view:
        res["error"] = f"submit to {entry}: HTTP {st} {view}"
        return res
    job, owner = view["id"], view.get("owner") or view.get("claim", {}).get("node")
    res.update(id=job, entry=entry, owner=owner, replicas=view.get("replicas"))
    # 2. Wait until it runs, watching from a node that is not the owner.
    watcher = rnd.choice([x for x in names if x != owner] or names)
    wconn, t_sub = [None], time.time()
    while True:
        st, view, _ = request(wconn, port[watcher], "GET", f"/v1/jobs/{job}")
        state = view.get("state") if view else None
        if state == "running" or time.time() - t_sub > 15:
            break
        if state in ("succeeded", "failed", "cancelled"):
            res["error"] = f"the job was already {state} before the kill (job_ms too small?)"
            return res
        time.sleep(poll_ms / 1000.0)
    if state != "running":
        res["error"] = f"the job was not running 15 s after submission (last: HTTP {st}, {state})"
        return res
    claim = (view.get("claim") or {}).get("node")
    victim = claim or view.get("owner") or owner
    res.update(victim=victim, owner_when_running=view.get("owner"), claim_node=claim,
               attempt_killed=attempt_of(view), running_after_s=round(time.time() - t_sub, 3))
    with open(os.path.join(run_dir, f"{victim}.pid")) as f:
        pid = int(f.read().strip())
    survivors = [x for x in names if x != victim]
    # 3. Kill, then watch every survivor's own disk.
    seen, lock, stop = {}, threading.Lock(), threading.Event()
    t_kill_wall = time.time()
    t_kill = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    limit = t_kill + 60 + job_ms / 1000.0
    def watch(name):
        conn, nxt = [None], time.monotonic()
        while not stop.is_set() and time.monotonic() < limit:
            st, v, _ = request(conn, port[name], "GET", f"/v1/jobs/{job}?scope=local", timeout=2)
            if v and v.get("state") in ("succeeded", "failed", "cancelled"):
                with lock:
                    seen.setdefault(name, (time.monotonic(), v.get("state")))
                stop.set()
                return
            nxt += poll_ms / 1000.0
            time.sleep(max(0.0, nxt - time.monotonic()))
    threads = [threading.Thread(target=watch, args=(x,), daemon=True) for x in survivors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if not seen:
        res["error"] = f"no survivor reported the job finished within {limit - t_kill:.0f} s"
        return res
    first, (t_done, state) = min(seen.items(), key=lambda kv: kv[1][0])
    res.update(seen_on=first, final_state=state)
    if state != "succeeded":
        res["error"] = f"the job ended {state} on {first}"
        return res
    res["failover_s"] = round(t_done - t_kill - job_ms / 1000.0, 3)
    # Cross-checks from the merged record, read from a survivor.
    st, final, _ = request([None], port[first], "GET", f"/v1/jobs/{job}")
    if final:
        res["attempt_final"] = attempt_of(final)
        res["owner_after"] = final.get("owner")
        runs_after = [h for h in final.get("history", []) if h.get("state") == "running"
                      and h.get("attempt", 0) > res["attempt_killed"]]
        if runs_after:
            res["takeover_s"] = round(min(h["at"] for h in runs_after) / 1000.0 - t_kill_wall, 3)
            res["ran_on"] = runs_after[0].get("node")
        wins = [r for r in (final.get("results") or {}).values() if r.get("outcome") == "succeeded"]
        if wins:
            res["record_s"] = round(min(r["at"] for r in wins) / 1000.0 - t_kill_wall - job_ms / 1000.0, 3)
    res["ok"] = True
    return res

def summary(path, job_ms):
    rows = [json.loads(line) for line in open(path)]
    ok = sorted(r["failover_s"] for r in rows if r.get("ok"))
    def nearest_rank(v, p):
        import math
        return v[max(0, math.ceil(p / 100.0 * len(v)) - 1)]
    print()
    print(f"Failover, kill -9 the node running a {job_ms} ms sleep job; time from the kill to "
          f"`succeeded` on a survivor minus {job_ms} ms")
    print(f"runs ok: {len(ok)}/{len(rows)}")
    if not ok:
        return 0
    p50, p99 = nearest_rank(ok, 50), nearest_rank(ok, 99)
    print(f"{'':<14}{'p50_s':>8}{'p99_s':>8}{'max_s':>8}{'min_s':>8}")
    print(f"{'failover':<14}{p50:>8.2f}{p99:>8.2f}{ok[-1]:>8.2f}{ok[0]:>8.2f}")
    for key, label in (("takeover_s", "takeover"), ("record_s", "from record")):
        v = sorted(r[key] for r in rows if r.get("ok") and key in r)
        if v:
            print(f"{label:<14}{nearest_rank(v, 50):>8.2f}{nearest_rank(v, 99):>8.2f}{v[-1]:>8.2f}{v[0]:>8.2f}")
    print("takeover = kill -> the new attempt's `running` entry in the record (detection + claim + start)")
    print(f"aim: p50 <= 2 s: {'met' if p50 <= 2.0 else 'not met'} (p50 {p50:.2f} s)")
    return 0

def main():
    a = sys.argv[1:]
    if a[0] == "converge":
        return converge(int(a[1]), float(a[2]), [int(x) for x in a[3:]])
    if a[0] == "run":
        print(json.dumps(one_run(a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]), int(a[6]))))
        return 0
    if a[0] == "summary":
        return summary(a[1], int(a[2]))
    if a[0] == "line":   # line JSON: one human-readable line per run
        r = json.loads(a[1])
        if not r.get("ok"):
            print(f"FAILED ({r.get('error')}) id={r.get('id', '-')[:12]} victim={r.get('victim', '-')}")
            return 0
        print(f"failover_s={r['failover_s']:.3f} takeover_s={r.get('takeover_s', 'n/a')} "
              f"record_s={r.get('record_s', 'n/a')} | entry={r['entry']} owner={r['owner']} "
              f"killed={r['victim']} (attempt {r['attempt_killed']}) -> ran on {r.get('ran_on', '?')}, "
              f"seen on {r['seen_on']}, attempt {r.get('attempt_final', '?')}; id={r['id'][:12]}")
        return 0
    raise SystemExit(f"h.py: unknown command {a[0]}")

sys.exit(main())
PY
h() { python3 "$W/h.py" "$@"; }

api_ports=()
for i in $(seq 1 "$nodes"); do api_ports+=($((MW_API + i))); done

# restart NAME: the victim again, on its data dir, with launch.sh's command line (log appended).
# The node is started from a subshell, like launch.sh does, so it is not a job of this shell.
restart() {
  local i=${1#n} seeds="127.0.0.1:$((MW_GOSSIP + 1)),127.0.0.1:$((MW_GOSSIP + 2))"
  (
    "$bin" node --name "n$i" --api "127.0.0.1:$((MW_API + i))" --gossip "127.0.0.1:$((MW_GOSSIP + i))" \
      --join "$seeds" --data "$run_dir/n$i" "${node_flags[@]}" >>"$run_dir/n$i.log" 2>&1 &
    echo $! >"$run_dir/n$i.pid"
  )
}

# ---------------------------------------------------------------------------------------------
t_begin=$(date +%s)
say "failover.sh: runs=$runs job_ms=$job_ms nodes=$nodes poll_ms=$poll_ms profile=${PROFILE:-default};" \
  "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
if ! MESHWORK_RUN=$run_dir MESHWORK_API_BASE=$MW_API MESHWORK_GOSSIP_BASE=$MW_GOSSIP MESHWORK_BIN=$bin \
  "$root/simulations/launch.sh" "$nodes" -- "${node_flags[@]}" >"$W/launch.log" 2>&1; then
  cat "$W/launch.log" >&2
  die "launch.sh could not start $nodes nodes"
fi
results=$W/results.jsonl
: >"$results"
for run in $(seq 1 "$runs"); do
  out=$(h run "$run_dir" "$MW_API" "$nodes" "$job_ms" "$poll_ms" "$run") || die "the run helper failed"
  echo "$out" >>"$results"
  say "run $run: $(h line "$out")"
  victim=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("victim", ""))' "$out")
  if [ -n "$victim" ] && ! kill -0 "$(cat "$run_dir/$victim.pid")" 2>/dev/null; then restart "$victim"; fi
  for i in $(seq 1 "$nodes"); do   # a node that died on its own is a finding; bring it back too
    if ! kill -0 "$(cat "$run_dir/n$i.pid")" 2>/dev/null; then
      say "run $run: n$i is DOWN though not killed by this run; restarting it (log: $run_dir/n$i.log)"
      restart "n$i"
    fi
  done
  h converge "$nodes" 60 "${api_ports[@]}" >/dev/null || die "the mesh did not see $nodes alive within 60 s after run $run"
  [ "$run" -eq "$runs" ] || sleep "$settle_s"
done
h summary "$results" "$job_ms"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); wall time $(($(date +%s) - t_begin)) s" \
  "(2 cores shared with any other work)"
