"""Completion push with real node processes: the long-poll GET /v1/jobs/{id}?wait_s=N and the
server-sent events of GET /v1/events — on nodes that hold a copy of the job and on nodes that do
not, with a takeover seen as it happens, and their bad input (422, 429).

Timeouts are generous upper bounds; the only time checked is that a long-poll answered because the
job ended and not because its wait ran out (the job ends long before the wait would).
"""

import json
import queue
import socket
import threading
import time
import unittest

from harness import OPENAPI, scaled
from test_mesh import Mesh


class EventStream:
    """A GET /v1/events reader on a thread of its own: events land in a queue as (kind, data)."""

    def __init__(self, port, query=""):
        self.events = queue.Queue()
        self.seen = []
        self.error = None
        self.status = None
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=scaled(30))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(("GET /v1/events%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Accept: text/event-stream\r\n\r\n" % query).encode())
        self.file = self.sock.makefile("rb")
        status_line = self.file.readline().decode()
        self.status = int(status_line.split()[1])
        self.headers = {}
        while True:
            line = self.file.readline().decode().strip()
            if not line:
                break
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.body_start = b""
        if self.status != 200:
            return
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        kind, data = None, None
        try:
            while True:
                line = self.file.readline()
                if not line:
                    break
                line = line.decode().rstrip("\r\n")
                # Chunked transfer: skip the chunk-size lines (hex digits only).
                if line and all(c in "0123456789abcdefABCDEF" for c in line):
                    continue
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and kind is not None:
                    event = json.loads(data) if data else None
                    if OPENAPI is not None:  # each event's data as api/openapi.json describes it
                        OPENAPI.check_event(kind, event)
                    self.events.put((kind, event))
                    kind, data = None, None
        except (OSError, ValueError):
            pass
        except AssertionError as e:  # an event api/openapi.json does not describe
            self.error = e
        self.events.put(("closed", None))

    def until(self, test, what, timeout=30):
        """Returns the first event (kind, data) for which test(kind, data) holds, among those
        already read (events arrive in any order relative to what a test waits for) and those to
        come."""
        for kind, data in self.seen:
            if test(kind, data):
                return kind, data
        deadline = time.monotonic() + scaled(timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no event: " + what)
            try:
                kind, data = self.events.get(timeout=left)
            except queue.Empty:
                raise AssertionError("no event: " + what)
            if kind == "closed":
                raise self.error or AssertionError("the stream closed while waiting for " + what)
            self.seen.append((kind, data))
            if test(kind, data):
                return kind, data

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Live(Mesh):

    def stream(self, node, query=""):
        s = EventStream(node.port, query)
        self.addCleanup(s.close)
        return s

    def post(self, node, spec):
        r = self.client(node).post("/v1/jobs", json.dumps(spec))
        self.assertEqual(r.status, 202, r)
        return r.json()

    def holders_and_others(self, nodes, job):
        holders = [n for n in nodes if n.name in job["replicas"]]
        others = [n for n in nodes if n.name not in job["replicas"]]
        return holders, others

    def test_long_poll_answers_when_the_job_ends_on_holders_and_elsewhere(self):
        # R = 2 of 4 nodes: two hold each job, two hold no copy and follow it remotely.
        nodes = self.start_mesh(4, ["--replicas", 2, "--write-quorum", 1])
        job = self.post(nodes[0], {"type": "sleep", "payload": {"ms": 1500}})
        holders, others = self.holders_and_others(nodes, job)
        self.assertEqual(len(holders), 2, job)
        self.assertEqual(len(others), 2, job)
        answers = {}

        def long_poll(node):
            c = node.client()
            started = time.monotonic()
            r = c.get("/v1/jobs/%s?wait_s=60" % job["id"])
            answers[node.name] = (r.status, r.json(), time.monotonic() - started, time.time())
            c.close()

        threads = [threading.Thread(target=long_poll, args=(n,)) for n in (holders + others)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(scaled(70))
        self.assertEqual(len(answers), 4, answers)
        for name, (status, view, took, at) in answers.items():
            self.assertEqual(status, 200, view)
            self.assertEqual(view["state"], "succeeded", (name, view))
            # Answered because the job ended, not because 60 s ran out.
            self.assertLess(took, scaled(30), (name, took))
            done = next(h["at"] for h in view["history"] if h["state"] == "succeeded")
            print("long-poll on %s (%s): answered %.0f ms after the job ended"
                  % (name, "holds a copy" if name in job["replicas"] else "no copy",
                     at * 1000 - done))

    def test_long_poll_times_out_with_the_current_state_and_checks_its_input(self):
        nodes = self.start_mesh(3)
        job = self.post(nodes[0], {"type": "sleep", "payload": {"ms": 20000}})
        c = self.client(nodes[1])
        started = time.monotonic()
        r = c.get("/v1/jobs/%s?wait_s=1" % job["id"])
        self.assertEqual(r.status, 200, r)
        self.assertIn(r.json()["state"], ("queued", "running"))
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        r = c.get("/v1/jobs/%s?wait_s=0" % job["id"])  # 0: answer at once
        self.assertEqual(r.status, 200, r)
        for bad in ("61", "-1", "1.5", "abc", "", "9999999999"):
            self.assertProblem(c.get("/v1/jobs/%s?wait_s=%s" % (job["id"], bad)), 422, "wait_s")
        unknown = "0" * 64
        self.assertProblem(c.get("/v1/jobs/%s?wait_s=2" % unknown), 404)
        self.assertEqual(self.client(nodes[0]).post("/v1/jobs/%s/cancel" % job["id"]).status, 200)
        r = c.get("/v1/jobs/%s?wait_s=30" % job["id"])
        self.assertEqual(r.json()["state"], "cancelled", r)

    def test_events_stream_job_changes_and_a_takeover_and_member_deaths(self):
        nodes = self.start_mesh(3, ["--profile", "local"])
        watchers = {n.name: self.stream(n) for n in nodes}
        for w in watchers.values():
            self.assertEqual(w.status, 200)
            self.assertTrue(w.headers["content-type"].startswith("text/event-stream"), w.headers)
        job = self.post(nodes[0], {"type": "sleep", "payload": {"ms": 4000}, "max_attempts": 2})
        owner = next(n for n in nodes if n.name == job["owner"])
        survivors = [n for n in nodes if n is not owner]
        for n in nodes:
            watchers[n.name].until(lambda k, d: k == "job" and d["id"] == job["id"]
                                   and d["state"] == "running", "the job running on " + n.name)
        owner.kill9()
        for n in survivors:
            w = watchers[n.name]
            _, takeover = w.until(
                lambda k, d: k == "job" and d["id"] == job["id"] and "takeover" in d,
                "the takeover seen on " + n.name, 60)
            self.assertIn("owner %s dead" % owner.name, takeover["takeover"], takeover)
            self.assertIn("takes over", takeover["takeover"])
            w.until(lambda k, d: k == "member" and d["name"] == owner.name
                    and d["state"] == "dead", owner.name + " dead, seen on " + n.name, 60)
            _, done = w.until(lambda k, d: k == "job" and d["id"] == job["id"]
                              and d["state"] == "succeeded", "the job done on " + n.name, 60)
            self.assertNotEqual(done["node"], owner.name)
            self.assertEqual(done["type"], "sleep")

    def test_events_filtered_by_job_also_on_a_node_without_a_copy(self):
        nodes = self.start_mesh(4, ["--replicas", 2, "--write-quorum", 1])
        job = self.post(nodes[0], {"type": "sleep", "payload": {"ms": 800}})
        other = self.post(nodes[0], {"type": "sleep", "payload": {"ms": 200}})
        holders, others = self.holders_and_others(nodes, job)
        for n in (holders[0], others[0]):
            w = self.stream(n, "?job=" + job["id"])
            self.assertEqual(w.status, 200)
            seen = []

            def record(k, d):
                seen.append((k, d))
                return k == "job" and d["state"] == "succeeded"

            w.until(record, "the job to succeed, on " + n.name, 30)
            self.assertTrue(all(k == "job" and d["id"] == job["id"] for k, d in seen),
                            (n.name, seen))
            self.assertNotIn(other["id"], [d["id"] for _, d in seen])
        only_members = self.stream(nodes[1], "?kinds=member")
        nodes[3].kill9()
        _, m = only_members.until(lambda k, d: True, "a member event", 60)
        self.assertEqual(m["name"], nodes[3].name, m)

    def test_events_bad_filters_and_the_bound_on_streams(self):
        node = self.start_node("n1", ["--events-max", 2])
        c = node.client()
        self.addCleanup(c.close)
        for query, detail in (("?kinds=bogus", "kind"), ("?kinds=", "kinds"),
                              ("?job=nothex", "job"), ("?colour=red", "parameter"),
                              ("?kinds=member&job=" + "a" * 64, "kinds must include job")):
            self.assertProblem(c.get("/v1/events" + query), 422, detail)
        first, second = self.stream(node), self.stream(node)
        self.assertEqual((first.status, second.status), (200, 200))
        third = EventStream(node.port)
        self.addCleanup(third.close)
        self.assertEqual(third.status, 429)
        self.assertIn("retry-after", third.headers)
        first.close()

        def fourth_admitted():
            s = EventStream(node.port)
            if s.status == 200:
                self.addCleanup(s.close)
                return True
            s.close()
            return False

        deadline = time.monotonic() + scaled(30)
        while not fourth_admitted():
            self.assertLess(time.monotonic(), deadline, "a closed stream never freed its place")
            time.sleep(0.2)
        info = c.get("/v1/node").json()
        self.assertEqual(info["events"]["streams_max"], 2)
        self.assertTrue(node.alive())


if __name__ == "__main__":
    unittest.main()
