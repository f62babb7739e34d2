#!/usr/bin/env bash
# Benchmark: failure detection, meshwork beside HashiCorp Serf (memberlist SWIM + Lifeguard), in one
# run, on 127.0.0.1. Prints a table; exits non-zero only when the harness itself fails.
#
#   usage: simulations/bench/detect.sh [runs=5] [fp_seconds=60]      (~6.5 min with the defaults)
#          simulations/bench/detect.sh 1 10                          smoke test (~3 min)
#
# 1. Detection, for N in SIZES (5 20): start N meshwork nodes / N serf agents (fresh processes every
#    run), wait until every one sees N alive, wait 2 s, kill -9 the last one and measure the time
#    until EVERY survivor reports it dead, and until the first does. meshwork: every survivor's
#    GET /v1/cluster/members polled every POLL_MS=50 ms by its own thread (a cross-check from the
#    nodes' "member_dead" log timestamps is printed per run); serf: member-failed event-handler
#    timestamps, the method of ../shared/anchors/serf_detect.sh. The systems alternate run by run
#    (mw 5, serf 5, mw 20, serf 20, repeat) so that background load hits both alike.
# 2. Gossip bytes/s per node, steady state: one N-node cluster of each system per size, all running
#    at once (no kill); after BYTES_WARMUP=45 s of uptime, a BYTES_SECONDS=60 s window, i.e. two full
#    push-pull periods (30 s in both systems' lan profile). meshwork: /v1/node gossip.bytes_sent and
#    packets_sent deltas; serf: memberlist's own memberlist.udp.sent + memberlist.tcp.sent counters
#    (one sample per datagram / stream write, its byte length), streamed by each agent to a
#    stand-in statsite server (statsite_addr). Both are payload bytes handed to the socket (after
#    serf's compression; no IP/UDP/TCP headers); both averaged over all N nodes.
# 3. False positives: BUSY (default: nproc) busy loops saturate the cores while 5 meshwork nodes and
#    5 serf agents run side by side, fp_seconds after converging; every death declared counts
#    (meshwork: "member_dead" log lines, one per node per death it learns; serf: member-failed events).
#
# Environment: RUNS, FP_SECONDS, SIZES ("5 20"; one or two sizes, 3..99), PROFILE (lan), POLL_MS (50),
# BYTES_WARMUP (45), BYTES_SECONDS (60; 0 skips), BUSY (nproc), MESHWORK_BIN (build/bin/meshwork),
# SERF_BIN (serf), KEEP_WORK=1 keeps the temp dir. Ports (slot s = 0, 1 is the size's index):
# meshwork API 18401+100s.., gossip 17401+100s..; serf bind 17600+100s.., RPC 18600+100s..,
# statsite stand-in 18800+100s.. (launch.sh uses 7001../8001..).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

runs=${1:-${RUNS:-5}}
fp_secs=${2:-${FP_SECONDS:-60}}
sizes=${SIZES:-5 20}
profile=${PROFILE:-lan}
bytes_warmup=${BYTES_WARMUP:-45}
bytes_secs=${BYTES_SECONDS:-60}
poll_ms=${POLL_MS:-50}
busy=${BUSY:-$(nproc)}
bin=${MESHWORK_BIN:-$root/build/bin/meshwork}
serf=${SERF_BIN:-$(command -v serf || true)}
MW_API=18400 MW_GOSSIP=17400 SF_BIND=17600 SF_RPC=18600 SF_STAT=18800

usage() { sed -n '5,6p' "$0" | sed 's/^#  *//' >&2; exit 2; }
case "${1:-}" in -h|--help) usage ;; esac
for v in "$runs" "$fp_secs" "$bytes_secs" "$bytes_warmup" "$poll_ms" "$busy"; do
  [[ "$v" =~ ^[0-9]+$ ]] || usage
done
if [ "$runs" -lt 1 ] || [ "$runs" -gt 50 ] || [ "$fp_secs" -gt 3600 ] || [ "$bytes_secs" -gt 600 ] ||
  [ "$bytes_warmup" -gt 600 ] || [ "$poll_ms" -lt 10 ]; then usage; fi
nsizes=0
for n in $sizes; do
  if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 3 ] || [ "$n" -gt 99 ]; then
    echo "detect.sh: every N in SIZES must be 3..99" >&2; exit 2
  fi
  nsizes=$((nsizes + 1))
done
if [ "$nsizes" -lt 1 ] || [ "$nsizes" -gt 2 ]; then echo "detect.sh: SIZES holds one or two sizes" >&2; exit 2; fi
[ -x "$bin" ] || { echo "detect.sh: $bin is missing; run 'make build'" >&2; exit 2; }
if [ -z "$serf" ] || ! [ -x "$serf" ]; then echo "detect.sh: serf is missing (apt-get install -y serf)" >&2; exit 2; fi
command -v python3 >/dev/null || { echo "detect.sh: python3 is missing" >&2; exit 2; }

W=$(mktemp -d -t meshwork-detect.XXXX)
PIDS=()      # every process this script started (nodes, agents, collectors, busy loops)
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done   # not a bare wait: the stderr filter
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "detect.sh: work dir kept: $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'echo "detect.sh: interrupted" >&2; exit 130' INT TERM
# bash reports every kill -9'd child ("line N: PID Killed ..."); those are ours and expected.
exec 2> >(grep --line-buffered -v '^.*line [0-9]*: *[0-9]* Killed ' >&2)
die() { echo "detect.sh: harness failure: $*" >&2; exit 2; }
say() { echo "[$(date +%H:%M:%S)] $*"; }
# record_detect SYSTEM N RUN ALL FIRST REPORTED SURVIVORS WHAT DETAIL: one detection run's result
# line in $results (ALL is "-" when not every survivor reported WHAT within 60 s), and a log line.
record_detect() {
  local sys=$1 n=$2 run=$3 all=$4 first=$5 reported=$6 survivors=$7 what=$8 detail=$9
  if [ "$all" = - ]; then
    printf 'detect\t%s\t%s\t%s\tfail\tonly-%s-of-%s\n' "$sys" "$n" "$run" "$reported" "$survivors" >>"$results"
    say "$(printf '%-8s' "$sys") N=$n run $run: only $reported of $survivors survivors reported $what within 60 s"
  else
    printf 'detect\t%s\t%s\t%s\tok\t%s\t%s\n' "$sys" "$n" "$run" "$all" "$first" >>"$results"
    say "$(printf '%-8s' "$sys") N=$n run $run: $detail"
  fi
}
results=$W/results.tsv
: >"$results"

# ---------------------------------------------------------------------------------------------
# Python helper (stdlib only): HTTP polling, counters, parsing and statistics.
cat >"$W/h.py" <<'PY'
import datetime, http.client, json, os, re, signal, socket, statistics, sys, threading, time

def get(conn, port, path, attempts=2):
    """GET path on 127.0.0.1:port over the keep-alive connection conn[0]; JSON or None. A
    connection the server closed while we slept (keep-alive timeout) is reopened once."""
    for _ in range(attempts):
        try:
            if conn[0] is None:
                conn[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn[0].request("GET", path)
            r = conn[0].getresponse()
            body = r.read()
            return json.loads(body) if r.status == 200 else None
        except Exception:
            try:
                conn[0].close()
            except Exception:
                pass
            conn[0] = None
    return None

def ports_free(timeout, specs):
    """Exit 0 once every PROTO:PORT can be bound (retrying for timeout s), else 1 and the busy ones."""
    deadline = time.time() + timeout
    while True:
        busy = ports_busy(specs)
        if not busy or time.time() >= deadline:
            break
        time.sleep(0.1)
    print(" ".join(busy))
    return 1 if busy else 0

def ports_busy(specs):
    busy = []
    for spec in specs:
        proto, port = spec.split(":")
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
        if proto == "tcp":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", int(port)))
        except OSError:
            busy.append(spec)
        finally:
            s.close()
    return busy

def mw_converge(n, timeout, ports):
    conns = {p: [None] for p in ports}
    t0 = time.time()
    counts = {}
    while time.time() - t0 < timeout:
        for p in ports:
            d = get(conns[p], p, "/v1/cluster/members")
            counts[p] = sum(m["state"] == "alive" for m in d["members"]) if d else -1
        if all(c == n for c in counts.values()):
            print(f"{time.time() - t0:.2f}")
            return 0
        time.sleep(0.1)
    print("alive counts " + " ".join(f"{p}:{c}" for p, c in counts.items()))
    return 1

def mw_snap(out_path, ports):
    """One snapshot of every node's gossip counters (GET /v1/node), each with its own time."""
    snap = {}
    for p in ports:
        d = get([None], p, "/v1/node")
        if d is None:
            snap = None
            break
        g = d["gossip"]
        snap[p] = [time.time(), g["bytes_sent"], g["packets_sent"], g["push_pulls"]]
    with open(out_path, "w") as f:
        json.dump(snap, f)
    return 0

def mw_rate(a_path, b_path):
    """Mean per-node bytes/s and packets/s between two snapshots, and push-pulls started."""
    a, b = json.load(open(a_path)), json.load(open(b_path))
    if a is None or b is None:
        print("n/a n/a node-unreachable")
        return 0
    bps = [(b[p][1] - a[p][1]) / (b[p][0] - a[p][0]) for p in a]
    pps = [(b[p][2] - a[p][2]) / (b[p][0] - a[p][0]) for p in a]
    pulls = sum(b[p][3] - a[p][3] for p in a)
    print(f"{statistics.mean(bps):.0f} {statistics.mean(pps):.1f} {pulls}-push-pulls-started")
    return 0

LOG_DEAD = re.compile(r"^(\S+Z) \S+ \S+ member_dead (\S+) at ")

def log_epoch(ts):
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()

def mw_detect(victim_pid, victim, timeout, poll_ms, ports, logs):
    """kill -9 the victim, poll every survivor until each reports it dead; JSON on stdout."""
    seen, others, lock = {}, set(), threading.Lock()
    stop = threading.Event()
    t0 = time.time()
    os.kill(victim_pid, signal.SIGKILL)
    deadline = t0 + timeout
    def watch(port):
        conn = [None]
        nxt = time.time()
        while not stop.is_set() and time.time() < deadline:
            d = get(conn, port, "/v1/cluster/members")
            if d:
                for m in d["members"]:
                    if m["name"] == victim and m["state"] == "dead":
                        with lock:
                            seen[port] = time.time() - t0
                        return
                    if m["name"] != victim and m["state"] == "dead":
                        with lock:
                            others.add(m["name"])
            nxt += poll_ms / 1000.0
            time.sleep(max(0.0, nxt - time.time()))
    threads = [threading.Thread(target=watch, args=(p,), daemon=True) for p in ports]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.time()) + 3)
    stop.set()
    # The nodes also log "member_dead NAME at ..." with a ms timestamp (flushed at warn): a
    # cross-check that does not depend on the polling period.
    log_times = []
    for path in logs:
        first = None
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    m = LOG_DEAD.match(line)
                    if m and m.group(2) == victim:
                        t = log_epoch(m.group(1)) - t0
                        first = t if first is None else min(first, t)
        except OSError:
            pass
        if first is not None:
            log_times.append(first)
    res = {"survivors": len(ports), "reported": len(seen),
           "all": max(seen.values()) if len(seen) == len(ports) else None,
           "first": min(seen.values()) if seen else None,
           "log_all": max(log_times) if len(log_times) == len(logs) else None,
           "others_dead": sorted(others)}
    print(json.dumps(res))
    return 0

def statsite_collect(out_path, base, n, max_s):
    """Stand-in statsite server for n serf agents: agent i sends its go-metrics stream to port
    base+i. Writes 'i epoch udp|tcp bytes' for every memberlist.{udp,tcp}.sent counter sample
    (one sample per packet or stream write, valued at its byte length). Exits after max_s."""
    import selectors
    sel = selectors.DefaultSelector()
    for i in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", base + i))
        s.listen(4)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, ("listen", i))
    out = open(out_path, "w")
    print("ready", flush=True)
    bufs = {}
    end = time.time() + max_s
    while time.time() < end:
        for key, _ in sel.select(timeout=0.5):
            kind, i = key.data
            if kind == "listen":
                c, _ = key.fileobj.accept()
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ, ("conn", i))
                bufs[c] = b""
                continue
            c = key.fileobj
            try:
                d = c.recv(65536)
            except OSError:
                d = b""
            if not d:
                sel.unregister(c)
                c.close()
                continue
            now = time.time()
            lines = (bufs[c] + d).split(b"\n")
            bufs[c] = lines.pop()
            for line in lines:
                for proto in (b"udp", b"tcp"):
                    tag = b"memberlist." + proto + b".sent:"
                    k = line.find(tag)
                    if k >= 0 and line.endswith(b"|c"):
                        v = float(line[k + len(tag):-2])
                        out.write(f"{i} {now:.4f} {proto.decode()} {v:.0f}\n")
        out.flush()
    return 0

def serf_bytes(path, t1, t2, n):
    byts, pkts, tcp = [0.0] * n, [0] * n, 0.0
    with open(path) as f:
        for line in f:
            i, ts, proto, v = line.split()
            if t1 <= float(ts) < t2:
                byts[int(i)] += float(v)
                pkts[int(i)] += proto == "udp"
                tcp += float(v) if proto == "tcp" else 0.0
    if any(b == 0 for b in byts):   # an agent that never reported: no honest figure
        print("n/a n/a")
        return 0
    print(f"{statistics.mean(byts) / (t2 - t1):.0f} {statistics.mean(pkts) / (t2 - t1):.1f} "
          f"{tcp / (t2 - t1) / n:.0f}-B/s-of-it-TCP")
    return 0

def serf_events(path, t0, victim, need):
    """Events file of the anchor's handler: 'EPOCH SELF NAME\\tADDR\\t...' per member-failed."""
    per_self, others = {}, set()
    with open(path, errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) < 3:
                continue
            ts, self_, rest = float(parts[0]), parts[1], parts[2]
            name = rest.split("\t")[0]
            if name == victim:
                per_self[self_] = min(per_self.get(self_, ts), ts)
            else:
                others.add(name)
    res = {"survivors": need, "reported": len(per_self),
           "all": max(per_self.values()) - t0 if len(per_self) >= need else None,
           "first": min(per_self.values()) - t0 if per_self else None,
           "others_dead": sorted(others)}
    print(json.dumps(res))
    return 0

def fp_count(kind, paths):
    deaths, names, suspects = 0, set(), 0
    for path in paths:
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    if kind == "meshwork":
                        m = LOG_DEAD.match(line)
                        if m:
                            deaths += 1
                            names.add(m.group(2))
                        elif " member_suspect " in line:
                            suspects += 1
                    else:
                        parts = line.split(" ", 2)
                        if len(parts) == 3:
                            deaths += 1
                            names.add(parts[2].split("\t")[0])
        except OSError:
            pass
    print(f"{deaths} {len(names)} {suspects if kind == 'meshwork' else '-'}")
    return 0

def table(path, runs, fp_secs, bytes_secs, sizes):
    det, byt, fp = {}, {}, {}
    with open(path) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if p[0] == "detect":
                det.setdefault((p[1], int(p[2])), []).append(p[4:])
            elif p[0] == "bytes":
                byt[(p[1], int(p[2]))] = (p[3], p[4])
            elif p[0] == "fp":
                fp[(p[1], int(p[2]))] = p[3:]
    def f2(x):
        return "n/a" if x is None else f"{x:.2f}"
    print()
    print(f"Failure detection, kill -9 one node, loopback; {runs} run(s) per row; bytes: steady state, "
          f"{bytes_secs} s window")
    hdr = ("system", "N", "runs ok", "median_s", "max_s", "first_med_s", "bytes/s/node",
           "pkts/s/node", f"false deaths ({fp_secs}s, CPU sat.)")
    w = (9, 4, 8, 9, 7, 12, 13, 12, 0)
    print("".join(h.ljust(x) if x else h for h, x in zip(hdr, w)))
    medians = {}
    for n in sizes:
        for system in ("meshwork", "serf"):
            rows = det.get((system, n), [])
            ok = [r for r in rows if r[0] == "ok"]
            alls = sorted(float(r[1]) for r in ok)
            firsts = sorted(float(r[2]) for r in ok)
            med = statistics.median(alls) if alls else None
            medians[(system, n)] = med
            b, pk = byt.get((system, n), ("n/a", "n/a"))
            fpv = fp.get((system, n))
            fps = "-" if fpv is None else (fpv[0] if fpv[3] == "yes" else f"{fpv[0]} (not converged)")
            cells = (system, str(n), f"{len(ok)}/{len(rows)}", f2(med), f2(alls[-1] if alls else None),
                     f2(statistics.median(firsts) if firsts else None), b, pk, fps)
            print("".join(c.ljust(x) if x else c for c, x in zip(cells, w)))
    for n in sizes:
        m, s = medians.get(("meshwork", n)), medians.get(("serf", n))
        bm, bs = byt.get(("meshwork", n), ("n/a",))[0], byt.get(("serf", n), ("n/a",))[0]
        ratio_t = f"{s / m:.1f}x faster" if m and s else "n/a"
        try:
            ratio_b = f"{float(bm) / float(bs):.2f}x Serf's bytes"
        except (ValueError, ZeroDivisionError):
            ratio_b = "n/a"
        print(f"N={n}: meshwork median detection {ratio_t} than serf; meshwork sends {ratio_b}")
        try:   # what the datagrams cost with their 28-byte IPv4+UDP headers (TCP segments: not counted)
            pm, ps = byt[("meshwork", n)][1], byt[("serf", n)][1]
            wm, ws = float(bm) + 28 * float(pm), float(bs) + 28 * float(ps)
            print(f"N={n}: with 28 B of IPv4+UDP header per datagram: meshwork {wm:.0f} B/s, "
                  f"serf {ws:.0f} B/s + its TCP push-pull segment headers ({wm / ws:.2f}x)")
        except (KeyError, ValueError, ZeroDivisionError):
            pass
    for (system, n), v in sorted(fp.items()):
        print(f"false-positive window {system} N={n}: {v[0]} death declarations about {v[1]} distinct "
              f"member(s); suspicions logged: {v[2]}; converged under load: {v[3]}; crashed: {v[4]}")
    return 0

def main():
    a = sys.argv[1:]
    cmd = a[0]
    if cmd == "ports-free":
        return ports_free(float(a[1]), a[2:])
    if cmd == "mw-converge":
        return mw_converge(int(a[1]), float(a[2]), [int(x) for x in a[3:]])
    if cmd == "mw-snap":
        return mw_snap(a[1], [int(x) for x in a[2:]])
    if cmd == "mw-rate":
        return mw_rate(a[1], a[2])
    if cmd == "mw-detect":
        sep = a.index("--")
        return mw_detect(int(a[1]), a[2], float(a[3]), float(a[4]), [int(x) for x in a[5:sep]], a[sep + 1:])
    if cmd == "statsite-collect":
        return statsite_collect(a[1], int(a[2]), int(a[3]), float(a[4]))
    if cmd == "serf-bytes":
        return serf_bytes(a[1], float(a[2]), float(a[3]), int(a[4]))
    if cmd == "serf-events":
        return serf_events(a[1], float(a[2]), a[3], int(a[4]))
    if cmd == "fp-count":
        return fp_count(a[1], a[2:])
    if cmd == "json-field":   # json-field KEY... < json: print fields tab-separated, None -> -
        d = json.load(sys.stdin)
        print("\t".join("-" if d.get(k) is None else (f"{d[k]:.3f}" if isinstance(d[k], float) else
                        (",".join(d[k]) or "none") if isinstance(d[k], list) else str(d[k])) for k in a[1:]))
        return 0
    if cmd == "table":
        return table(a[1], int(a[2]), int(a[3]), int(a[4]), [int(x) for x in a[5:]])
    raise SystemExit(f"h.py: unknown command {cmd}")

sys.exit(main())
PY
h() { python3 "$W/h.py" "$@"; }
now() { date +%s.%N; }

# Serf event handler: the anchor's, verbatim (timestamp, observer, the member line from stdin).
cat >"$W/handler.sh" <<'H'
#!/bin/sh
while read line; do echo "$(date +%s.%N) $SELF $line" >> "$EVDIR/events"; done
H
chmod +x "$W/handler.sh"

# wait_ports_free SPEC... : our previous processes may take a moment to release their ports.
wait_ports_free() {
  local busy_ports
  busy_ports=$(h ports-free 10 "$@") || die "ports in use by another process: $busy_ports" \
    "(change MW_API/MW_GOSSIP/SF_BIND/SF_RPC/SF_STAT in $0)"
}

stop_pids() {  # stop_pids PID... : kill -9 and reap
  local p
  for p in "$@"; do kill -9 "$p" 2>/dev/null; done
  for p in "$@"; do wait "$p" 2>/dev/null; done
}

# ---------------------------------------------------------------------------------------------
# meshwork
mw_start() {  # mw_start N DIR SLOT → MW_PIDS, MW_PORTS (API), MW_LOGS
  local n=$1 d=$2 api=$((MW_API + 100 * $3)) gossip=$((MW_GOSSIP + 100 * $3)) i specs=()
  for i in $(seq 1 "$n"); do specs+=("tcp:$((api + i))" "udp:$((gossip + i))"); done
  wait_ports_free "${specs[@]}"
  mkdir -p "$d"
  local seeds="127.0.0.1:$((gossip + 1)),127.0.0.1:$((gossip + 2))"   # as launch.sh
  MW_PIDS=() MW_PORTS=() MW_LOGS=()
  for i in $(seq 1 "$n"); do
    "$bin" node --name "n$i" --api "127.0.0.1:$((api + i))" --gossip "127.0.0.1:$((gossip + i))" \
      --join "$seeds" --data "$d/n$i" --profile "$profile" --log-level warn >"$d/n$i.log" 2>&1 &
    MW_PIDS+=($!) MW_PORTS+=($((api + i))) MW_LOGS+=("$d/n$i.log")
    PIDS+=($!)
  done
}

mw_run() {  # mw_run N RUN
  local n=$1 run=$2 d="$W/mw-$1-$2" out conv
  mw_start "$n" "$d" 0
  if ! conv=$(h mw-converge "$n" 60 "${MW_PORTS[@]}"); then
    say "meshwork N=$n run $run: did not converge in 60 s ($conv)"
    printf 'detect\tmeshwork\t%s\t%s\tfail\tno-convergence\n' "$n" "$run" >>"$results"
    stop_pids "${MW_PIDS[@]}"; return
  fi
  sleep 2
  local last=$((n - 1))
  out=$(h mw-detect "${MW_PIDS[$last]}" "n$n" 60 "$poll_ms" "${MW_PORTS[@]:0:$last}" -- "${MW_LOGS[@]:0:$last}") ||
    die "mw-detect failed"
  local all first log_all others reported
  IFS=$'\t' read -r all first log_all others reported < <(echo "$out" |
    h json-field all first log_all others_dead reported)
  record_detect meshwork "$n" "$run" "$all" "$first" "$reported" "$last" "n$n dead" \
    "all saw $n alive after ${conv} s of polling; all_survivors_s=$all first_s=$first (from node logs: $log_all); other members seen dead: $others"
  local p crashed=()
  for p in $(seq 0 $((last - 1))); do kill -0 "${MW_PIDS[$p]}" 2>/dev/null || crashed+=("n$((p + 1))"); done
  [ ${#crashed[@]} -eq 0 ] || say "meshwork N=$n run $run: CRASHED survivors: ${crashed[*]} (KEEP_WORK=1 keeps $d)"
  stop_pids "${MW_PIDS[@]}"
}

# ---------------------------------------------------------------------------------------------
# serf
serf_converge() {  # serf_converge N TIMEOUT_S SLOT → 0 when every agent sees N alive
  local n=$1 rpc=$((SF_RPC + 100 * $3)) i c ok
  for _ in $(seq 1 $(($2 * 4))); do
    ok=1
    for i in $(seq 0 $((n - 1))); do
      c=$("$serf" members -rpc-addr=127.0.0.1:$((rpc + i)) -status=alive 2>/dev/null | wc -l)
      [ "$c" -eq "$n" ] || { ok=0; break; }
    done
    [ $ok -eq 1 ] && return 0
    sleep 0.25
  done
  return 1
}

sf_start() {  # sf_start N DIR SLOT [metrics] → SF_PIDS, SF_COLLECTOR; events in DIR/events
  # With "metrics", a stand-in statsite server (SF_COLLECTOR) receives every agent's go-metrics
  # stream and writes memberlist's per-packet byte counters to DIR/sent.
  local n=$1 d=$2 slot=$3 metrics=${4:-} i specs=()
  local bind=$((SF_BIND + 100 * slot)) rpc=$((SF_RPC + 100 * slot)) stat=$((SF_STAT + 100 * slot))
  for i in $(seq 0 $((n - 1))); do specs+=("tcp:$((bind + i))" "udp:$((bind + i))" "tcp:$((rpc + i))"); done
  if [ -n "$metrics" ]; then for i in $(seq 0 $((n - 1))); do specs+=("tcp:$((stat + i))"); done; fi
  wait_ports_free "${specs[@]}"
  mkdir -p "$d"; : >"$d/events"
  SF_PIDS=() SF_COLLECTOR=""
  if [ -n "$metrics" ]; then
    python3 "$W/h.py" statsite-collect "$d/sent" "$stat" "$n" 900 >"$d/collector.out" 2>&1 &
    SF_COLLECTOR=$!; PIDS+=($!)
    for _ in $(seq 1 50); do grep -q ready "$d/collector.out" && break; sleep 0.1; done
    grep -q ready "$d/collector.out" || die "the statsite stand-in did not start: $(cat "$d/collector.out")"
  fi
  for i in $(seq 0 $((n - 1))); do
    local join=() conf=()
    [ "$i" -gt 0 ] && join=(-retry-join="127.0.0.1:$bind" -retry-interval=1s)
    if [ -n "$metrics" ]; then
      echo "{\"statsite_addr\": \"127.0.0.1:$((stat + i))\"}" >"$d/n$i.json"
      conf=(-config-file="$d/n$i.json")
    fi
    SELF=n$i EVDIR=$d "$serf" agent -node="n$i" -bind="127.0.0.1:$((bind + i))" -rpc-addr="127.0.0.1:$((rpc + i))" \
      -profile="$profile" "${join[@]}" "${conf[@]}" -event-handler="member-failed=$W/handler.sh" -log-level=err \
      >>"$d/n$i.log" 2>&1 &
    SF_PIDS+=($!)
    PIDS+=($!)
    if [ "$i" -eq 0 ]; then  # the seed first, so the others' first join attempt finds it
      for _ in $(seq 1 50); do "$serf" members -rpc-addr="127.0.0.1:$rpc" >/dev/null 2>&1 && break; sleep 0.1; done
    fi
  done
}

sf_run() {  # sf_run N RUN
  local n=$1 run=$2 d="$W/serf-$1-$2" out ts conv
  ts=$(now)
  sf_start "$n" "$d" 0
  if ! serf_converge "$n" 60 0; then
    say "serf N=$n run $run: did not converge in 60 s"
    printf 'detect\tserf\t%s\t%s\tfail\tno-convergence\n' "$n" "$run" >>"$results"
    stop_pids "${SF_PIDS[@]}"; return
  fi
  conv=$(python3 -c "import time; print(f'{time.time() - $ts:.1f}')")
  sleep 2
  local last=$((n - 1)) t0 c
  t0=$(now); kill -9 "${SF_PIDS[$last]}"
  for _ in $(seq 1 600); do   # up to 60 s, as the anchor
    c=$(grep -cP " n$last\t" "$d/events" 2>/dev/null)
    [ "${c:-0}" -ge "$last" ] && break
    sleep 0.1
  done
  out=$(h serf-events "$d/events" "$t0" "n$last" "$last") || die "serf-events failed"
  local all first others reported
  IFS=$'\t' read -r all first others reported < <(echo "$out" | h json-field all first others_dead reported)
  record_detect serf "$n" "$run" "$all" "$first" "$reported" "$last" "n$last failed" \
    "all saw $n alive ${conv} s after the first start; all_survivors_s=$all first_s=$first; other members failed: $others"
  stop_pids "${SF_PIDS[@]}"
}

# ---------------------------------------------------------------------------------------------
# Steady-state gossip bytes: one cluster of each system per size, all at once.
bytes_phase() {
  local slot=0 n k t_up t1 t2 conv_ok=() all_mw_pids=() all_sf_pids=() mw_ports=()
  say "bytes: ${sizes// /+} meshwork nodes and as many serf agents side by side;" \
    "window ${bytes_secs} s after ${bytes_warmup} s of uptime"
  t_up=$(now)
  for n in $sizes; do
    mw_start "$n" "$W/bytes-mw-$n" "$slot"
    all_mw_pids+=("${MW_PIDS[@]}"); mw_ports[slot]="${MW_PORTS[*]}"
    sf_start "$n" "$W/bytes-serf-$n" "$slot" metrics
    all_sf_pids+=("${SF_PIDS[@]}" "$SF_COLLECTOR")
    slot=$((slot + 1))
  done
  slot=0
  for n in $sizes; do
    # shellcheck disable=SC2086
    h mw-converge "$n" 60 ${mw_ports[slot]} >/dev/null && serf_converge "$n" 60 "$slot" &&
      conv_ok[slot]=yes || conv_ok[slot]=no
    slot=$((slot + 1))
  done
  python3 -c "import time; time.sleep(max(0.0, $t_up + $bytes_warmup - time.time()))"
  t1=$(now); slot=0
  # shellcheck disable=SC2086
  for n in $sizes; do h mw-snap "$W/bytes-mw-$n/a.json" ${mw_ports[slot]}; slot=$((slot + 1)); done
  sleep "$bytes_secs"
  t2=$(now); slot=0
  # shellcheck disable=SC2086
  for n in $sizes; do h mw-snap "$W/bytes-mw-$n/b.json" ${mw_ports[slot]}; slot=$((slot + 1)); done
  sleep 0.3   # go-metrics flushes its statsite stream every 100 ms
  slot=0
  for n in $sizes; do
    local bps pps extra
    read -r bps pps extra < <(h mw-rate "$W/bytes-mw-$n/a.json" "$W/bytes-mw-$n/b.json")
    printf 'bytes\tmeshwork\t%s\t%s\t%s\n' "$n" "$bps" "$pps" >>"$results"
    say "bytes meshwork N=$n: $bps B/s per node, $pps packets/s; $extra; converged: ${conv_ok[slot]}"
    read -r bps pps extra < <(h serf-bytes "$W/bytes-serf-$n/sent" "$t1" "$t2" "$n")
    printf 'bytes\tserf\t%s\t%s\t%s\n' "$n" "$bps" "$pps" >>"$results"
    say "bytes serf     N=$n: $bps B/s per node, $pps UDP packets/s; $extra"
    slot=$((slot + 1))
  done
  k=$(cat "$W"/bytes-serf-*/events | wc -l)
  [ "$k" -eq 0 ] || say "bytes: serf declared $k failure(s) during the bytes window"
  k=$(cat "$W"/bytes-mw-*/n*.log | grep -c member_dead)
  [ "$k" -eq 0 ] || say "bytes: meshwork logged $k member_dead line(s) during the bytes window"
  stop_pids "${all_mw_pids[@]}" "${all_sf_pids[@]}"
}

# ---------------------------------------------------------------------------------------------
t_begin=$(date +%s)
say "detect.sh: runs=$runs fp_seconds=$fp_secs sizes=($sizes) profile=$profile; $(nproc) cores," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg); serf $("$serf" version | head -1)"
for run in $(seq 1 "$runs"); do
  for n in $sizes; do
    mw_run "$n" "$run"
    sf_run "$n" "$run"
  done
done

[ "$bytes_secs" -gt 0 ] && bytes_phase

# False positives: busy loops on every core, 5 meshwork nodes and 5 serf agents side by side.
if [ "$fp_secs" -gt 0 ]; then
  say "false positives: $busy busy loop(s), 5 meshwork nodes + 5 serf agents, ${fp_secs} s after convergence"
  busy_pids=()
  for _ in $(seq 1 "$busy"); do (while :; do :; done) & busy_pids+=($!); PIDS+=($!); done
  mw_start 5 "$W/fp-mw" 0
  sf_start 5 "$W/fp-serf" 0
  mw_conv=no sf_conv=no
  h mw-converge 5 90 "${MW_PORTS[@]}" >/dev/null && mw_conv=yes
  serf_converge 5 90 0 && sf_conv=yes
  say "false positives: converged under load: meshwork=$mw_conv serf=$sf_conv; observing for ${fp_secs} s"
  sleep "$fp_secs"
  crashed=()
  for i in 0 1 2 3 4; do
    kill -0 "${MW_PIDS[$i]}" 2>/dev/null || crashed+=("meshwork:n$((i + 1))")
    kill -0 "${SF_PIDS[$i]}" 2>/dev/null || crashed+=("serf:n$i")
  done
  read -r d_mw names_mw susp_mw < <(h fp-count meshwork "${MW_LOGS[@]}")
  read -r d_sf names_sf _ < <(h fp-count serf "$W/fp-serf/events")
  mw_crash=none sf_crash=none
  for c in "${crashed[@]}"; do
    case $c in meshwork:*) mw_crash=${c#*:} ;; serf:*) sf_crash=${c#*:} ;; esac
  done
  printf 'fp\tmeshwork\t5\t%s\t%s\t%s\t%s\t%s\n' "$d_mw" "$names_mw" "$susp_mw" "$mw_conv" "$mw_crash" >>"$results"
  printf 'fp\tserf\t5\t%s\t%s\t-\t%s\t%s\n' "$d_sf" "$names_sf" "$sf_conv" "$sf_crash" >>"$results"
  if [ "$d_mw" -gt 0 ]; then
    grep -h "member_dead\|member_suspect\|member_alive" "${MW_LOGS[@]}" | sort | head -30 | sed 's/^/  meshwork log: /'
  fi
  if [ "$d_sf" -gt 0 ]; then sort "$W/fp-serf/events" | head -20 | sed 's/^/  serf event: /'; fi
  stop_pids "${MW_PIDS[@]}" "${SF_PIDS[@]}" "${busy_pids[@]}"
fi

# shellcheck disable=SC2086
h table "$results" "$runs" "$fp_secs" "$bytes_secs" $sizes || die "could not build the table"
echo "profile $profile; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); wall time $(($(date +%s) - t_begin)) s"
