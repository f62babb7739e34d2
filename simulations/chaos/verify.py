"""The verdict of a chaos run: the client's log of acknowledged jobs checked against the mesh.

  wait_quiescent  polls every acknowledged job until all are terminal (or, with retention, gone
                  after they finished) or the deadline passes.
  RetentionWatch  with --retain-s: polls every acknowledged job, in turn on the reachable nodes,
                  from the start of the load to the end of the check. It notes when each was first
                  seen finished (its first terminal history entry) and when it first answered 404
                  after that. A job that answers 200 to a request sent after its 404 came back.
                  A job 404 everywhere at the check is expired, not lost, when it was seen
                  finished and retain_s have passed since.
  check           asks several reachable nodes for every acknowledged job; a job is lost when any
                  of them does not have it (404 or no answer) or it is not terminal; the answers
                  must agree (state, attempts, result).
  duplicates      a job's executions are the attempts that started a handler: the distinct attempt
                  numbers with a claim entry ("attempt N", state running) in its history (the
                  record's `attempts` when the bounded history has dropped some). A duplicate is an
                  execution beyond what the job needs without faults (1; fail_times + 1 for flaky).
                  Completions are counted apart: the attempts whose handler's outcome was recorded
                  (succeeded, failed, or failed and retried) — a duplicate completion is a job that
                  ran to an outcome more often than it needs, the costlier kind of duplicate (a
                  duplicate start whose handler was stopped when its claim lost is cheaper).
  failover        for every fault on node X at T and every job whose attempt was running on X at T
                  (X's claim entry before T and no end of that attempt before T), that had not
                  succeeded before T, and that later succeeded on another node: the time from T
                  to its first success there, and that time less the job's own run time
                  (sleep/flaky `ms`). A job that had already succeeded has nothing to fail over:
                  a claim of it that was superseded by that success leaves no end of its own in
                  the history, and a later run of it is a duplicate completion, counted there.
  false deaths    a death (a `member_dead` event in a node's log: that node declared the member
                  dead) of a member that had no fault from `grace` before it up to then, declared
                  by an observer that had none either. Deaths seen by a faulted observer (a paused
                  node waking up, the cut side of a partition) are counted apart.
"""

import concurrent.futures
import datetime
import re
import http.client
import threading
import time

from cluster import http_json
from load import expected_attempts

TERMINAL = ("succeeded", "failed", "cancelled")
HISTORY_MAX = 32  # node/job_record.h kHistoryMax


def get_job(node, job_id, timeout=5.0):
    try:
        status, _, body = http_json(node.host, node.api_port, "GET", "/v1/jobs/" + job_id,
                                    timeout=timeout)
    except (OSError, http.client.HTTPException) as e:
        return None, type(e).__name__
    return status, body


def wait_quiescent(cluster, acks, deadline, log, expired=lambda job_id: False):
    """Returns the ids still not terminal at the deadline (empty when quiescent); `expired(id)`
    jobs are done too."""
    pending = {a["id"] for a in acks}
    rr, said = 0, None
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        while pending and time.time() < deadline:
            nodes = cluster.reachable()
            if not nodes:
                time.sleep(0.5)
                continue
            ids = sorted(pending)
            futs = {}
            for k, job_id in enumerate(ids):
                futs[pool.submit(get_job, nodes[(rr + k) % len(nodes)], job_id)] = job_id
            rr += 1
            for f in concurrent.futures.as_completed(futs):
                status, body = f.result()
                if (status == 200 and body and body.get("state") in TERMINAL) or \
                        (status == 404 and expired(futs[f])):
                    pending.discard(futs[f])
            if pending:
                if len(pending) != said:
                    log("  waiting: %d acknowledged job(s) not terminal yet" % len(pending))
                    said = len(pending)
                time.sleep(1.0)
    return pending


def _answer(body):
    return (body.get("state"), body.get("attempts"), repr(body.get("result")))


def check(cluster, acks, readers, log, rounds=3, expired=lambda job_id: False):
    """→ (records by id from the first reader, lost ids with why, disagreeing ids); a job that
    answers 404 and is `expired(id)` is neither."""
    nodes = cluster.reachable()[:readers]
    records, lost, disagree = {}, {}, {}
    todo = [a["id"] for a in acks]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for r in range(rounds):
            lost, disagree, retry = {}, {}, []
            answers = {job_id: [pool.submit(get_job, n, job_id) for n in nodes] for job_id in todo}
            for job_id, futs in answers.items():
                got = [(n.name,) + f.result() for n, f in zip(nodes, futs)]
                missing = [g for g in got if g[1] != 200]
                if any(g[1] == 404 for g in got) and expired(job_id):
                    continue
                if missing:
                    lost[job_id] = "%s answered %s" % (missing[0][0], missing[0][1])
                    retry.append(job_id)
                    continue
                first = got[0][2]
                records[job_id] = first
                if first.get("state") not in TERMINAL:
                    claim = first.get("claim") or {}
                    lost[job_id] = "still %s (attempt %s, claimed by %s)" % (
                        first.get("state"), first.get("attempts"), claim.get("node") or "nobody")
                    retry.append(job_id)
                    continue
                if len({_answer(g[2]) for g in got}) > 1:
                    disagree[job_id] = [(g[0],) + _answer(g[2]) for g in got]
                    retry.append(job_id)
            if not retry or r == rounds - 1:
                break
            log("  check: %d job(s) to look at again" % len(retry))
            time.sleep(2.0)
            todo = retry
    return records, lost, disagree


class RetentionWatch:
    """See the module comment. Runs on a thread from start() to stop()."""

    def __init__(self, cluster, load, retain_s):
        self.cluster, self.load, self.retain_s = cluster, load, retain_s
        self.finished = {}  # id → epoch s of its first terminal history entry
        self.gone = {}      # id → epoch s when its first 404 after it finished arrived
        self.back = {}      # id → "node answered 200 (state) at t after a 404 at t0"
        self.requests = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_event.set()
        self.thread.join()

    def expired(self, job_id):
        t = self.finished.get(job_id)
        return job_id in self.gone or (t is not None and time.time() >= t + self.retain_s)

    def _look(self, node, job_id):
        sent = time.time()
        status, body = get_job(node, job_id)
        self.requests += 1
        if status == 200 and body and body.get("state") in TERMINAL:
            ends = [h["at"] for h in body.get("history", []) if h.get("state") in TERMINAL]
            if ends:
                self.finished.setdefault(job_id, min(ends) / 1000.0)
        if status == 200 and job_id in self.gone and sent > self.gone[job_id]:
            self.back.setdefault(job_id, "%s answered it %s at %.1f after a 404 at %.1f" % (
                node.name, body and body.get("state"), sent, self.gone[job_id]))
        if status == 404 and job_id in self.finished:
            self.gone.setdefault(job_id, time.time())

    def _run(self):
        rr = 0
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            while not self.stop_event.is_set():
                nodes = self.cluster.reachable()
                ids = [a["id"] for a in list(self.load.acks)]
                if not nodes or not ids:
                    self.stop_event.wait(0.5)
                    continue
                futs = [pool.submit(self._look, nodes[(rr + k) % len(nodes)], job_id)
                        for k, job_id in enumerate(ids)]
                concurrent.futures.wait(futs)
                rr += 1
                self.stop_event.wait(0.5)


UNCONFIRMED = "not confirmed by a majority"


def executions(rec):
    """→ (attempts that started a handler, those of them whose claim a majority confirmed)."""
    hist = rec.get("history", [])
    started = {h["attempt"] for h in hist
               if h.get("state") == "running" and h.get("reason", "").startswith("attempt ")}
    refused = {h["attempt"] for h in hist if UNCONFIRMED in h.get("reason", "")}
    n = len(started)
    if len(hist) >= HISTORY_MAX:  # older claims may have been dropped
        n = max(n, rec.get("attempts") or 0)
    return n, n - len(refused & started)


INTERRUPTED = ("interrupted", "takes over", "lease expired", UNCONFIRMED)


def completions(rec):
    """→ attempts whose handler's outcome was recorded: a `succeeded` or `failed` entry, or the
    retry after a failed attempt — not the end of an attempt by takeover, restart or lost claim."""
    done = set()
    for h in rec.get("history", []):
        reason = h.get("reason", "")
        if any(word in reason for word in INTERRUPTED):
            continue
        if h.get("state") in ("succeeded", "failed") or reason.startswith("attempt failed"):
            done.add(h["attempt"])
    return len(done)


def duplicates(acks, records):
    """→ (ids of jobs started more often than needed, extra starts, ids of jobs whose confirmed
    attempts alone exceed the need, ids of jobs that completed more often than needed)."""
    jobs, extra, confirmed, completed = [], 0, [], []
    for a in acks:
        rec = records.get(a["id"])
        if rec is None:
            continue
        need = expected_attempts(a["type"], a["payload"])
        started, held = executions(rec)
        if started > need:
            jobs.append(a["id"])
            extra += started - need
        if held > need:
            confirmed.append(a["id"])
        if completions(rec) > need:
            completed.append(a["id"])
    return jobs, extra, confirmed, completed


def _faulted(windows, node, t0, t1):
    """True when `node` had a fault overlapping [t0, t1]."""
    return any(w["node"] == node and w["start"] <= t1 and (w["end"] is None or w["end"] >= t0)
               for w in windows)


def run_ms(ack):
    """→ how long the job's handler runs by itself (sleep and flaky wait `ms`; the rest ~0)."""
    if ack is None:
        return 0
    return int(ack["payload"].get("ms", 0)) if ack["type"] in ("sleep", "flaky") else 0


def failovers(windows, records, acks=()):
    """→ list of {"job", "node", "kind", "fault_t", "ms", "beyond_run_ms"}; times in epoch s.
    `ms` is from the fault to the job's first success on another node after it (a later success
    by a takeover on a stale copy is a duplicate completion, not the failover); `beyond_run_ms`
    takes the job's own run time off."""
    by_id = {a["id"]: a for a in acks}
    out = []
    for w in windows:
        node, t = w["node"], w["start"]
        if w["kind"] not in ("kill", "pause", "partition", "restart"):
            continue
        for job_id, rec in records.items():
            hist = rec.get("history", [])
            runs = [h for h in hist if h.get("state") == "running" and h.get("node") == node
                    and h.get("reason", "").startswith("attempt ") and h["at"] / 1000 <= t]
            if not runs:
                continue
            attempt = runs[-1]["attempt"]
            ended = any(h["attempt"] == attempt and h is not runs[-1] and h["at"] / 1000 <= t and
                        h.get("state") != "running" for h in hist)
            later = [h for h in hist if h["at"] / 1000 <= t and h["attempt"] > attempt]
            succeeded_before = any(h.get("state") == "succeeded" and h["at"] / 1000 <= t
                                   for h in hist)
            if ended or later or succeeded_before:
                continue
            done = [h for h in hist if h.get("state") == "succeeded" and h["at"] / 1000 > t]
            if rec.get("state") != "succeeded" or not done or done[0].get("node") == node:
                continue
            ms = int(done[0]["at"] - t * 1000)
            out.append({"job": job_id, "node": node, "kind": w["kind"], "fault_t": t, "ms": ms,
                        "beyond_run_ms": max(0, ms - run_ms(by_id.get(job_id)))})
    return out


def false_deaths(deaths, windows, grace_s):
    """deaths: {"observer", "member", "t"} → (false ones, ones seen by a faulted observer)."""
    false, by_faulted = [], []
    for d in deaths:
        if _faulted(windows, d["member"], d["t"] - grace_s, d["t"]):
            continue
        if _faulted(windows, d["observer"], d["t"] - grace_s, d["t"]):
            by_faulted.append(d)
        else:
            false.append(d)
    return false, by_faulted


DEATH_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z \w (\S+) member_dead (\S+) ")


def deaths_in_logs(paths):
    """Every `member_dead` event in the nodes' logs (text format) → {"observer", "member", "t"},
    sorted by time. Logs cover the whole run, pauses and partitions included."""
    out = []
    for path in paths:
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    m = DEATH_LINE.match(line)
                    if m:
                        at = datetime.datetime.fromisoformat(m.group(1)).replace(
                            tzinfo=datetime.timezone.utc)
                        out.append({"observer": m.group(2), "member": m.group(3),
                                    "t": at.timestamp()})
        except OSError:
            pass
    return sorted(out, key=lambda d: d["t"])


def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]
