"""chaos.sh's driver: start a real mesh, load it, inject faults from a seed, heal, verify, report.

Run through simulations/chaos.sh (which puts this process in the hub network namespace and removes
every namespace on exit). Phases: start N nodes and wait until each sees N alive; submit jobs at
--rate for --duration seconds while the seed's fault plan (plan.py) runs; heal (resume paused
nodes, heal partitions, restart nodes whose restart is due; permanently killed nodes stay down);
wait until every acknowledged job is terminal (--settle seconds at most); check every acknowledged
job on several nodes (verify.py); write the JSON report and the SVG timeline; stop the nodes.
With `lie` or `forge` among the faults, one node per such kind (chosen by the seed) runs all along
with `--test-break lie|forge`, a share of the jobs asks for redundancy 3, and the report says
whether a wrong result was accepted and whether the honest nodes distrust the broken ones
(honesty.py).
Exit status: 0 when nothing was lost, no node crashed by itself, the nodes agree and no job with
redundancy >= 3 succeeded with a wrong result; 1 otherwise; 2 when the run could not start.
"""

import argparse
import json
import os
import random
import signal
import sys
import threading
import time

from cluster import Cluster
from load import MIXES, Load
from plan import KINDS, make_plan
import honesty
import timeline
import verify

DEATH_GRACE_S = 20.0
BREAKS = ("lie", "forge")  # node-long faults: --test-break on one node each
REDUNDANCY = 3             # the redundancy of the redundant share of the load
REDUNDANCY_SHARE_WITH_LIARS = 0.5


def parse_args(argv):
    p = argparse.ArgumentParser(prog="chaos.sh", description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=5)
    p.add_argument("--duration", type=float, default=60, help="seconds of load and faults")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate", type=float, default=10, help="jobs submitted per second")
    p.add_argument("--faults", default="kill,pause,restart,partition",
                   help="among %s, and %s (one node each, broken from its start)"
                        % (",".join(KINDS), ",".join(BREAKS)))
    p.add_argument("--redundancy-share", type=float, default=None,
                   help="share of jobs submitted with redundancy %d (default %.1f with lie or "
                        "forge, else 0)" % (REDUNDANCY, REDUNDANCY_SHARE_WITH_LIARS))
    p.add_argument("--report", default=None, help="JSON report (default: <run dir>/report.json)")
    p.add_argument("--timeline", default=None, help="SVG (default: next to the report)")
    p.add_argument("--unsafe", action="store_true",
                   help="allow R or more faulty nodes at once (jobs may then be lost)")
    p.add_argument("--fault-interval", type=float, default=6.0, help="mean seconds between faults")
    p.add_argument("--settle", type=float, default=120, help="longest wait for quiescence, s")
    p.add_argument("--give-up", type=float, default=30, help="a client gives a job up after, s")
    p.add_argument("--mix", choices=sorted(MIXES), default="mixed")
    p.add_argument("--workers", type=int, default=8, help="job workers per node")
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--readers", type=int, default=3, help="nodes asked for each job at the end")
    p.add_argument("--retain-s", type=int, default=0,
                   help="nodes remove finished jobs after this many seconds (0: the node default, "
                        "7 days); checks that no removed job comes back")
    p.add_argument("--sync-interval-ms", type=int, default=0,
                   help="the nodes' --sync-interval-ms (0: fsync before every ack, the default); "
                        "kill -9 must lose nothing either way")
    p.add_argument("--profile", default="lan")
    p.add_argument("--bin", default=None)
    p.add_argument("--run-dir", default=None)
    p.add_argument("--base-port", type=int, default=None, help="loopback mode: ports base+i")
    p.add_argument("--netns-prefix", default="", help=argparse.SUPPRESS)
    p.add_argument("--test-break", default="", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.faults = [f for f in a.faults.split(",") if f]
    a.breaks = [f for f in BREAKS if f in a.faults]
    a.faults = [f for f in a.faults if f not in BREAKS]
    bad = [f for f in a.faults if f not in KINDS]
    if bad or not 2 <= a.nodes <= 50 or a.rate <= 0 or a.duration <= 0:
        p.error("faults must be among %s; nodes 2..50; rate and duration > 0"
                % ",".join(KINDS + BREAKS))
    if a.redundancy_share is None:
        a.redundancy_share = REDUNDANCY_SHARE_WITH_LIARS if a.breaks else 0.0
    if not 0.0 <= a.redundancy_share <= 1.0 or (a.redundancy_share > 0 and
                                                 a.replicas < REDUNDANCY):
        p.error("--redundancy-share is a fraction 0..1, and needs --replicas >= %d" % REDUNDANCY)
    if a.breaks and (a.test_break or len(a.breaks) >= a.nodes):
        p.error("lie/forge take one node each: not with --test-break, and fewer than --nodes")
    if "partition" in a.faults and not a.netns_prefix:
        print("chaos: network namespaces are not available: partitions are NOT injected in this "
              "run (the other faults are)", flush=True)
        a.faults = [f for f in a.faults if f != "partition"]
    if a.base_port is None:
        a.base_port = 20000 + (os.getpid() % 400) * 100
    return a


def pick_broken(seed, nodes, breaks):
    """→ {node index: "lie"|"forge"}: one distinct node per kind, drawn from the seed alone (the
    fault plan and the load keep their own generators)."""
    rng = random.Random(seed * 613 + 11)
    return dict(zip(rng.sample(range(nodes), len(breaks)), breaks))


class Faults:
    """Runs the plan: applies each fault at its start and undoes it at its end."""

    def __init__(self, cluster, plan, t0, log):
        self.cluster, self.plan, self.t0, self.log = cluster, plan, t0, log
        self.windows = []  # {"kind", "node", "start", "end"}: epoch seconds, end None = permanent
        self.active = []   # plan items applied and not undone
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _nodes(self, item):
        return [self.cluster.nodes[i] for i in item["nodes"]]

    def apply(self, item):
        c, kind, now = self.cluster, item["kind"], time.time()
        for n in self._nodes(item):
            self.windows.append({"kind": kind, "node": n.name, "start": now, "end": None})
        if kind == "kill":
            for n in self._nodes(item):
                c.kill(n)
                n.permanently_down = item["permanent"]
        elif kind == "pause":
            for n in self._nodes(item):
                c.pause(n)
        elif kind == "restart":
            for n in self._nodes(item):
                c.kill(n, signal.SIGTERM)
        elif kind == "partition":
            c.cut(self._nodes(item))
        item["at"] = now
        self.log("  %6.1fs  %s %s%s" % (now - self.t0, kind, ",".join(n.name for n in
                                                                    self._nodes(item)),
                                        " (permanent)" if item["permanent"] else ""))
        if not item["permanent"]:
            self.active.append(item)

    def undo(self, item):
        c, kind = self.cluster, item["kind"]
        if kind in ("kill", "restart"):
            for n in self._nodes(item):
                c.start(n)
        elif kind == "pause":
            for n in self._nodes(item):
                c.resume(n)
        elif kind == "partition":
            c.heal(self._nodes(item))
        now = time.time()
        item["until"] = now
        names = {n.name for n in self._nodes(item)}
        for w in self.windows:
            if w["node"] in names and w["kind"] == kind and w["end"] is None:
                w["end"] = now
        self.active.remove(item)
        self.log("  %6.1fs  end of %s %s" % (now - self.t0, kind, ",".join(sorted(names))))

    def _run(self):
        events = []
        for k, item in enumerate(self.plan):
            events.append((item["start"], 1, k, "apply"))
            if item["end"] is not None:
                events.append((item["end"], 0, k, "undo"))
        for at, _, k, what in sorted(events):
            if self.stop.wait(max(0.0, self.t0 + at - time.time())):
                return
            item = self.plan[k]
            if what == "apply":
                self.apply(item)
            elif item in self.active:
                self.undo(item)

    def heal_all(self):
        for item in list(self.active):
            self.undo(item)


def honesty_report(a, cluster, load, records, detected):
    """The report's fields on liars (empty-handed when no node was broken)."""
    broken = {n.name: n.test_break for n in cluster.nodes if n.test_break}
    strong, weak = honesty.wrong_results(load.acks, records, set(broken))
    seen, asked = detected
    return {
        "broken_nodes": broken,
        "redundancy_share": a.redundancy_share,
        "redundant_jobs": sum(x.get("redundancy", 1) >= REDUNDANCY for x in load.acks),
        "wrong_results_accepted": len(strong),
        "wrong_results_jobs": strong[:20],
        "wrong_results_k1": len(weak),
        "results_disagree": sum("results disagree" in (r.get("error") or "")
                                for r in records.values() if r.get("state") == "failed"),
        "liars_detected": sum(2 * n > asked for n in seen.values()),
        "liars": {b: {"kind": broken[b], "distrusted_by": n, "honest_nodes_asked": asked}
                  for b, n in seen.items()},
    }


def failed_job(r):
    """A failed record for the report: its id, type, error and history (ms from submission)."""
    hist = r.get("history") or []
    t0 = hist[0]["at"] if hist else 0
    return {"id": r.get("id"), "type": r.get("type"), "error": r.get("error"),
            "history": ["%+d ms %s %s a%s %s" % (h["at"] - t0, h["state"], h["node"],
                                                  h["attempt"], h["reason"]) for h in hist]}


def summarize(a, load, plan, faults, cluster, records, lost, disagree, deaths, t0, wall,
              retention=None, detected=({}, 0)):
    acks = load.acks
    states = {s: 0 for s in verify.TERMINAL}
    for r in records.values():
        if r.get("state") in states:
            states[r["state"]] += 1
    dup_jobs, dup_extra, dup_confirmed, dup_completed = verify.duplicates(acks, records)
    starts = [verify.executions(r)[0] for r in records.values()]
    fo = verify.failovers(faults.windows, records, acks)
    fo_ms = [f["ms"] for f in fo]
    beyond = [f["beyond_run_ms"] for f in fo]
    false, by_faulted = verify.false_deaths(deaths, faults.windows, DEATH_GRACE_S)
    for d in false:
        d["class"] = "false"
    for d in by_faulted:
        d["class"] = "by_faulted"
    rel = lambda t: None if t is None else round(t - t0, 3)
    return {
        "seed": a.seed,
        "nodes": a.nodes,
        "duration_s": a.duration,
        "rate": a.rate,
        "faults_enabled": a.faults + a.breaks,
        "partitions": "network namespaces" if a.netns_prefix else "unavailable",
        "unsafe": a.unsafe,
        "submitted": len(acks) + len(load.gave_up),
        "acknowledged": len(acks),
        "not_acknowledged": len(load.gave_up),
        "client_tries": load.tries,
        "succeeded": states["succeeded"],
        "failed": states["failed"],
        # What a failed job went through (none of the load's jobs fails with no fault: a flaky
        # one fails only attempts 1..fail_times of max_attempts 3), times from its submission.
        "failed_jobs": [failed_job(r) for _, r in sorted(records.items())
                        if r.get("state") == "failed"][:20],
        "cancelled": states["cancelled"],
        "lost": len(lost),
        "lost_jobs": [{"id": k, "why": v} for k, v in sorted(lost.items())][:50],
        "disagreements": len(disagree),
        "disagreeing_jobs": [{"id": k, "answers": v} for k, v in sorted(disagree.items())][:20],
        "duplicate_executions": len(dup_jobs),
        "duplicate_extra_runs": dup_extra,
        "duplicate_executions_confirmed": len(dup_confirmed),
        "duplicate_completions": len(dup_completed),
        "most_attempts": max(starts) if starts else 0,
        "unconfirmed_claims": sum(verify.UNCONFIRMED in h.get("reason", "")
                                  for r in records.values() for h in r.get("history", [])),
        "false_deaths": len(false),
        "false_death_list": [dict(d, t=rel(d["t"])) for d in false],
        "deaths_seen_by_faulted_nodes": len(by_faulted),
        "deaths_declared": len(deaths),
        "failover_ms": {"p50": verify.percentile(fo_ms, 50), "p99": verify.percentile(fo_ms, 99),
                        "max": max(fo_ms) if fo_ms else None, "count": len(fo_ms)},
        "failover_beyond_run_ms": {"p50": verify.percentile(beyond, 50),
                                   "p99": verify.percentile(beyond, 99),
                                   "max": max(beyond) if beyond else None},
        "failover_slowest": [dict(f, fault_t=rel(f["fault_t"]))
                             for f in sorted(fo, key=lambda f: -f["beyond_run_ms"])[:10]],
        "faults": [{"kind": i["kind"], "nodes": ["n%d" % (k + 1) for k in i["nodes"]],
                    "planned_at_s": i["start"], "planned_until_s": i["end"],
                    "at_s": rel(i.get("at")), "until_s": rel(i.get("until")),
                    "permanent": i["permanent"]} for i in plan if "at" in i],
        "crashes": [dict(c, t=rel(c["t"])) for c in cluster.crashes],
        "wall_s": round(wall, 1),
        "retain_s": a.retain_s,
        "sync_interval_ms": a.sync_interval_ms,
        "expired": len(retention.gone) if retention else 0,
        "came_back": len(retention.back) if retention else 0,
        "came_back_jobs": [{"id": k, "why": v}
                           for k, v in sorted(retention.back.items())][:20] if retention else [],
        **honesty_report(a, cluster, load, records, detected),
    }


def print_summary(r, report_path, svg_path):
    fo = r["failover_ms"]
    print("chaos: seed %d, %d nodes, %.0f s at %.1f jobs/s, faults %s%s" % (
        r["seed"], r["nodes"], r["duration_s"], r["rate"], ",".join(r["faults_enabled"]) or "none",
        ", --sync-interval-ms %d" % r["sync_interval_ms"] if r.get("sync_interval_ms") else ""))
    print("  faults injected   %d (%s)" % (len(r["faults"]), ", ".join(
        "%s %s@%.0fs" % (f["kind"], "+".join(f["nodes"]), f["at_s"]) for f in r["faults"])))
    print("  acknowledged      %d (of %d submitted; %d never acknowledged)" % (
        r["acknowledged"], r["submitted"], r["not_acknowledged"]))
    print("  succeeded/failed/cancelled  %d / %d / %d" % (r["succeeded"], r["failed"],
                                                          r["cancelled"]))
    for j in r["failed_jobs"][:3]:
        print("    failed %s (%s): %s" % (j["id"][:12], j["type"], j["error"]))
        for h in j["history"]:
            print("      %s" % h)
    print("  lost              %d" % r["lost"])
    for j in r["lost_jobs"][:10]:
        print("    %s  %s" % (j["id"], j["why"]))
    print("  disagreements     %d" % r["disagreements"])
    for j in r["disagreeing_jobs"][:5]:
        print("    %s  %s" % (j["id"], j["answers"]))
    print("  duplicate execs   %d jobs (%d extra starts; %d jobs counting only confirmed claims;"
          " %d claims not confirmed; most attempts of a job %d)" % (
              r["duplicate_executions"], r["duplicate_extra_runs"],
              r["duplicate_executions_confirmed"], r["unconfirmed_claims"], r["most_attempts"]))
    print("  duplicate ends    %d jobs completed more often than they need" %
          r["duplicate_completions"])
    print("  false deaths      %d (deaths declared %d; %d seen by faulted nodes)" % (
        r["false_deaths"], r["deaths_declared"], r["deaths_seen_by_faulted_nodes"]))
    print("  failover ms       p50 %s  p99 %s  max %s  (%d jobs)" % (fo["p50"], fo["p99"],
                                                                     fo["max"], fo["count"]))
    fb = r["failover_beyond_run_ms"]
    print("  beyond run time   p50 %s  p99 %s  max %s" % (fb["p50"], fb["p99"], fb["max"]))
    for f in r["failover_slowest"][:5]:
        print("    %s  %s %s at %.1f s: %d ms (%d ms beyond its run time)" % (
            f["job"][:12], f["kind"], f["node"], f["fault_t"], f["ms"], f["beyond_run_ms"]))
    print("  crashes           %d" % len(r["crashes"]))
    for c in r["crashes"]:
        print("    %s exited with %s at %.1f s" % (c["node"], c["exit_code"], c["t"]))
    print("  wall              %.1f s" % r["wall_s"])
    print("  report %s, timeline %s" % (report_path, svg_path))
    if r["retain_s"]:
        print("  retention         %d s: %d jobs removed (404 after they finished), %d came back"
              % (r["retain_s"], r["expired"], r["came_back"]))
        for j in r["came_back_jobs"][:10]:
            print("    came back %s: %s" % (j["id"][:16], j["why"]))
    if r["broken_nodes"]:
        print_honesty(r)
    ok = r["lost"] == 0 and not r["crashes"] and r["disagreements"] == 0 and r["came_back"] == 0
    ok = ok and r["wrong_results_accepted"] == 0
    print("chaos: %s" % ("PASS: lost=0" if ok else "FAIL"))
    return ok


def print_honesty(r):
    print("  broken nodes      %s; %d jobs with redundancy %d (share %.2f)" % (
        ", ".join("%s %s" % kv for kv in sorted(r["broken_nodes"].items())), r["redundant_jobs"],
        REDUNDANCY, r["redundancy_share"]))
    print("  wrong results     %d accepted with redundancy >= %d; %d with redundancy 1 (a liar's "
          "own, expected); %d failed as results disagree" % (
              r["wrong_results_accepted"], REDUNDANCY, r["wrong_results_k1"],
              r["results_disagree"]))
    for j in r["wrong_results_jobs"][:5]:
        print("    %s  %s from %s: %s, honest %s" % (j["id"][:16], j["type"], j["producer"],
                                                    j["got"], j["honest"]))
    print("  liars detected    %d of %d (%s)" % (
        r["liars_detected"], len(r["broken_nodes"]), ", ".join(
            "%s distrusted by %d of %d honest nodes" % (b, v["distrusted_by"],
                                                        v["honest_nodes_asked"])
            for b, v in sorted(r["liars"].items()))))


def _interrupted(signum, _frame):
    raise SystemExit(128 + signum)  # runs the finally blocks: nodes stopped, namespaces removed


def main(argv):
    signal.signal(signal.SIGTERM, _interrupted)
    a = parse_args(argv)
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    a.bin = a.bin or os.path.join(root, "build", "bin", "meshwork")
    if not os.access(a.bin, os.X_OK):
        print("chaos: %s is missing; run 'make build'" % a.bin, file=sys.stderr)
        return 2
    run_dir = a.run_dir or os.path.join(root, "run", "chaos-%d-%d" % (a.seed, os.getpid()))
    os.makedirs(run_dir, exist_ok=True)
    report_path = a.report or os.path.join(run_dir, "report.json")
    svg_path = a.timeline or os.path.splitext(report_path)[0] + ".svg"
    os.makedirs(os.path.dirname(os.path.abspath(report_path)), exist_ok=True)
    log = lambda s: print(s, flush=True)
    started = time.time()
    cluster = Cluster(a, run_dir, log)
    for i, kind in pick_broken(a.seed, a.nodes, a.breaks).items():
        cluster.nodes[i].test_break = kind
    plan = make_plan(a.seed, a.nodes, a.duration, a.faults, a.replicas, a.unsafe,
                     a.fault_interval)
    try:
        cluster.setup_network()
        for n in cluster.nodes:
            cluster.start(n)
        if not cluster.wait_converged(a.nodes, 60):
            log("chaos: the mesh did not converge in 60 s; logs in %s" % run_dir)
            return 2
        t0 = time.time()
        log("chaos: %d nodes up in %.1f s (%s); run dir %s" % (
            a.nodes, t0 - started, "namespaces " + a.netns_prefix + "-n*" if a.netns_prefix
            else "loopback", run_dir))
        for n in cluster.nodes:
            if n.test_break:
                log("chaos: %s runs with --test-break %s" % (n.name, n.test_break))
        faults = Faults(cluster, plan, t0, log)
        faults.thread.start()
        load = Load(cluster, a.seed, a.rate, a.mix, a.give_up, t0,
                    redundancy_share=a.redundancy_share, redundancy=REDUNDANCY)
        watch_retention = verify.RetentionWatch(cluster, load, a.retain_s) if a.retain_s else None
        if watch_retention:
            watch_retention.start()
        expired = watch_retention.expired if watch_retention else (lambda job_id: False)
        crash_watch = threading.Event()

        def watch():
            while not crash_watch.wait(0.5):
                for c in cluster.check_crashes(time.time()):
                    log("chaos: %s EXITED BY ITSELF (code %s)" % (c["node"], c["exit_code"]))
        threading.Thread(target=watch, daemon=True).start()

        submitted = load.run(a.duration)
        faults.stop.set()
        faults.thread.join()
        log("chaos: load over (%d jobs submitted); healing: %d fault(s) to end" % (
            submitted, len(faults.active)))
        faults.heal_all()
        load.finish()
        log("chaos: %d acknowledged, %d never acknowledged; waiting for quiescence (<= %.0f s)" % (
            len(load.acks), len(load.gave_up), a.settle))
        live = len([n for n in cluster.nodes if not n.permanently_down])
        cluster.wait_converged(live, 30)
        pending = verify.wait_quiescent(cluster, load.acks, time.time() + a.settle, log, expired)
        log("chaos: %s; checking %d jobs on %d nodes" % (
            "quiescent" if not pending else "%d job(s) still not terminal" % len(pending),
            len(load.acks), min(a.readers, len(cluster.reachable()))))
        records, lost, disagree = verify.check(cluster, load.acks, a.readers, log,
                                               expired=expired)
        broken = {n.name for n in cluster.nodes if n.test_break}
        detected = honesty.liars_detected(cluster.reachable(), broken)
        if watch_retention:
            watch_retention.stop()
        crash_watch.set()
        cluster.check_crashes(time.time())
        t_end = time.time()
        last_done = [timeline.terminal_time(r) for r in records.values()]
        t_draw = min(t_end, max([t0 + a.duration] + last_done) + 3)
        codes = cluster.stop_all()
        for name, code in codes.items():
            if code not in (0, -signal.SIGTERM):
                cluster.crashes.append({"node": name, "t": t_end, "exit_code": code,
                                        "at": "shutdown"})
        deaths = verify.deaths_in_logs([n.log_path for n in cluster.nodes])
        report = summarize(a, load, plan, faults, cluster, records, lost, disagree, deaths, t0,
                           time.time() - started, watch_retention, detected)
        with open(report_path, "w") as f:
            json.dump(report, f, indent=2)
        with open(os.path.join(run_dir, "records.json"), "w") as f:
            json.dump({"acks": load.acks, "records": records}, f)
        timeline.draw(svg_path, "meshwork chaos: seed %d, %d nodes, faults %s, lost %d" % (
            a.seed, a.nodes, ",".join(a.faults), report["lost"]), t0, t_draw, t0 + a.duration,
            [n.name for n in cluster.nodes], faults.windows, load.acks, records,
            deaths, cluster.crashes)
        return 0 if print_summary(report, report_path, svg_path) else 1
    finally:
        cluster.stop_all()
        cluster.teardown_network()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
