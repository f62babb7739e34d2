"""The replicated mesh with real node processes on 127.0.0.1: quorum writes, reads from any node,
takeover when an owner is killed, catch-up by anti-entropy after a restart, the batch endpoint,
the ring view and the cluster-wide list over the peer transport (no peer endpoints over HTTP), and a
peer port that refuses strangers and malformed messages.

These tests check the guarantees of docs/guarantees.md, not the code: every acknowledged job reaches a
terminal state; every node answers the same for every job; every preference-list node ends up
holding the record. Timeouts are generous upper bounds (scaled() for ASan builds); no test asserts
on timing.
"""

import base64
import hashlib
import http.client
import json
import os
import random
import socket
import threading
import time
import unittest

from harness import (Client, NodeTestCase, TERMINAL_STATES, ed25519_public_key, ed25519_sign,
                     scaled)
from test_membership import start_mesh


class Mesh(NodeTestCase):

    def setUp(self):
        super().setUp()
        self.nodes = []
        self.clients = {}

    def client(self, node):
        """One keep-alive client per node process: a fresh connection per request would hold one
        of the node's HTTP threads for the keep-alive timeout each."""
        c = self.clients.get(node)
        if c is None or c[0] != node.starts or c[1].port != node.port:
            c = (node.starts, node.client())  # the harness closes it on kill -9 / SIGTERM / stop
            self.clients[node] = c
        return c[1]

    def start_mesh(self, n, extra=()):
        return start_mesh(self, n, ["--workers", 2] + list(extra))

    def alive_seen(self, node):
        r = self.client(node).get("/v1/cluster/members")
        return sum(m["state"] == "alive" for m in r.json()["members"]) if r.status == 200 else -1

    def dead_seen(self, node):
        r = self.client(node).get("/v1/cluster/members")
        return sum(m["state"] == "dead" for m in r.json()["members"]) if r.status == 200 else -1

    def live(self):
        return [n for n in self.nodes if n.alive()]

    def job(self, node, job_id, local=False):
        r = self.client(node).get("/v1/jobs/%s%s" % (job_id, "?scope=local" if local else ""))
        return r.json() if r.status == 200 else None

    @staticmethod
    def fingerprint(view):
        """What must agree between nodes: state, attempts, result, who produced it."""
        receipt = view.get("receipt") or {}
        return (view["state"], view["attempts"], json.dumps(view.get("result"), sort_keys=True),
                receipt.get("node"), receipt.get("attempt"))


class Replication(Mesh):

    def test_every_acknowledged_job_survives_two_kills_and_all_nodes_agree(self):
        nodes = self.start_mesh(5)
        acked, lock = {}, threading.Lock()
        stop = threading.Event()
        rng = random.Random(4)

        def post(k):
            """Posts job k to live nodes until one acknowledges it or the run ends."""
            body = json.dumps({"type": "sleep", "payload": {"ms": rng.randrange(50, 400)},
                               "max_attempts": 2, "timeout_ms": 30000, "nonce": str(k)})
            while not stop.is_set():
                node = rng.choice(self.live())
                # This thread's own connection, closed after one request, and not registered
                # with the node: kill9() closes registered clients from the test's thread.
                c = Client(node.port)
                try:
                    r = c.post("/v1/jobs", body)
                except (OSError, http.client.HTTPException):
                    continue  # the node was killed under us: not acknowledged, try another
                finally:
                    c.close()
                if r.status in (200, 202):
                    with lock:
                        acked[r.json()["id"]] = k
                    return
                self.assertIn(r.status, (429, 503), r)
                time.sleep(0.05)

        def poster(ks):
            for k in ks:
                post(k)

        threads = [threading.Thread(target=poster, args=(range(i, 500, 8),)) for i in range(8)]
        for t in threads:
            t.start()
        self.wait_until("half the jobs to be acknowledged", lambda: len(acked) >= 250, 120)
        victims = nodes[3:5]
        for v in victims:
            v.kill9()
        for t in threads:
            t.join(scaled(300))
        stop.set()
        self.assertEqual(len(acked), 500, "every job is eventually acknowledged by a live node")

        survivors = nodes[:3]
        self.wait_until("the survivors to see the two kills",
                        lambda: all(self.alive_seen(s) == 3 for s in survivors), 30)
        # Jobs whose every replica is among the dead wait for them; the rest finish now.
        for v in victims:
            v.restart()
        self.wait_until("every node to see 5 alive members",
                        lambda: all(self.alive_seen(x) == 5 for x in nodes), 60)

        def all_terminal():
            pending = [i for i in acked if (self.job(nodes[0], i) or {}).get("state")
                       not in TERMINAL_STATES]
            return not pending
        self.wait_until("every acknowledged job to finish", all_terminal, 240)

        for job_id in acked:
            views = [self.job(n, job_id) for n in nodes]
            self.assertTrue(all(views), "every node answers for %s" % job_id)
            self.assertEqual(views[0]["state"], "succeeded", views[0])
            self.assertEqual(len({self.fingerprint(v) for v in views}), 1,
                             "nodes disagree on %s: %s" % (job_id, views))
            self.assertEqual(views[0]["owner"], views[0]["replicas"][0])
            self.assertEqual(len(views[0]["replicas"]), 3)

        def replicas_hold_everything():
            for job_id in acked:
                view = self.job(nodes[0], job_id)
                for name in view["replicas"]:
                    node = next(n for n in nodes if n.name == name)
                    local = self.job(node, job_id, local=True)
                    if local is None or self.fingerprint(local) != self.fingerprint(view):
                        return False
            return True
        self.wait_until("anti-entropy to put every record on its replicas", replicas_hold_everything,
                        120)

    def test_owner_killed_mid_run_is_taken_over_with_a_reason(self):
        nodes = self.start_mesh(5)
        r = self.client(nodes[0]).post("/v1/jobs", json.dumps(
            {"type": "sleep", "payload": {"ms": 3000}, "max_attempts": 1}))
        self.assertEqual(r.status, 202, r)
        job = r.json()
        owner = next(n for n in nodes if n.name == job["owner"])
        other = next(n for n in nodes if n is not owner)
        self.wait_until("the job to run", lambda: self.job(other, job["id"])["state"] == "running",
                        30)
        owner.kill9()
        self.wait_until("the job to succeed elsewhere",
                        lambda: self.job(other, job["id"])["state"] == "succeeded", 60)
        view = self.job(other, job["id"])
        self.assertEqual(view["attempts"], 2, view)
        self.assertNotEqual(view["receipt"]["node"], owner.name)
        reasons = [h["reason"] for h in view["history"]]
        self.assertTrue(any(("owner %s dead" % owner.name) in x for x in reasons), reasons)

    def test_fewer_than_w_replicas_is_503_and_never_a_false_ack(self):
        nodes = self.start_mesh(3)
        nodes[1].kill9()
        nodes[2].kill9()
        # Dead, not merely suspect: a suspect peer is still written to, and a write that then
        # reaches too few replicas is refused but may have left a copy (docs/api.md, "503").
        self.wait_until("n1 to see both dead", lambda: self.dead_seen(nodes[0]) == 2, 60)
        r = self.client(nodes[0]).post("/v1/jobs", json.dumps({"type": "echo", "payload": {}}))
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.headers.get("Retry-After"), "1")
        self.assertEqual(r.content_type, "application/problem+json")
        listed = self.client(nodes[0]).get("/v1/jobs?scope=local").json()["jobs"]
        self.assertEqual(listed, [], "a refused job was not stored as if acknowledged")

    def test_cancel_through_a_node_that_does_not_run_the_job(self):
        nodes = self.start_mesh(3)
        r = self.client(nodes[0]).post("/v1/jobs", json.dumps({"type": "sleep",
                                                           "payload": {"ms": 60000}}))
        job = r.json()
        other = next(n for n in nodes if n.name != job["owner"])
        self.wait_until("the job to run", lambda: self.job(other, job["id"])["state"] == "running",
                        30)
        r = self.client(other).post("/v1/jobs/%s/cancel" % job["id"], "")
        self.assertEqual(r.status, 200, r)
        self.wait_until("the job to be cancelled everywhere",
                        lambda: all(self.job(n, job["id"])["state"] == "cancelled" for n in nodes),
                        30)


class Endpoints(Mesh):

    def test_batch_answers_per_item(self):
        nodes = self.start_mesh(3)
        jobs = [{"type": "echo", "payload": {"i": i}} for i in range(200)]
        jobs += [{"type": "no-such-type", "payload": {}}, "not an object"]
        r = self.client(nodes[1]).post("/v1/jobs/batch", json.dumps({"jobs": jobs}))
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(len(body["results"]), 202)
        self.assertEqual(body["accepted"], 200, body["results"][:3])
        self.assertEqual(body["rejected"], 2)
        self.assertEqual([x["status"] for x in body["results"][200:]], [422, 400])
        ids = [x["id"] for x in body["results"][:200]]
        self.assertEqual(len(set(ids)), 200)
        self.wait_until("the batch to finish", lambda: all(
            (self.job(nodes[2], i) or {}).get("state") == "succeeded" for i in ids), 60)
        too_many = self.client(nodes[0]).post("/v1/jobs/batch",
                                          json.dumps({"jobs": [{"type": "echo"}] * 1001}))
        self.assertEqual(too_many.status, 422, too_many)
        listed = self.client(nodes[0]).get("/v1/jobs?limit=1000").json()
        self.assertEqual(len(listed["jobs"]), 200, "the cluster-wide list shows every job once")
        self.assertIsNone(listed["next_cursor"])
        page = self.client(nodes[2]).get("/v1/jobs?limit=150").json()
        rest = self.client(nodes[2]).get("/v1/jobs?limit=150&cursor=" + page["next_cursor"]).json()
        self.assertEqual(len(page["jobs"]) + len(rest["jobs"]), 200)
        self.assertEqual({j["id"] for j in page["jobs"] + rest["jobs"]}, set(ids))

    def test_ring_view(self):
        nodes = self.start_mesh(3)
        r = self.client(nodes[0]).post("/v1/jobs/batch",
                                   json.dumps({"jobs": [{"type": "echo", "payload": {"i": i}}
                                                        for i in range(30)]}))
        self.assertEqual(r.json()["accepted"], 30)
        ring = self.client(nodes[2]).get("/v1/cluster/ring").json()
        self.assertEqual((ring["replicas"], ring["write_quorum"]), (3, 2))
        self.assertEqual(sorted(m["name"] for m in ring["members"]), ["n1", "n2", "n3"])
        self.assertAlmostEqual(sum(m["primary_fraction"] for m in ring["members"]), 1.0, places=6)
        for m in ring["members"]:
            self.assertEqual(m["tokens"], ring["vnodes"])
            self.assertTrue(m["primary_ranges"])
        self.wait_until("every member to hold all 30 jobs (R=3 of 3)", lambda: all(
            m["jobs_held"] == 30 for m in self.client(nodes[0]).get("/v1/cluster/ring").json()["members"]),
            30)

    def test_a_list_shows_jobs_held_only_on_other_members_and_asks_them_over_frames(self):
        # R=1: each job is on one member only, so a node lists the others' jobs only by asking
        # them, over the framed peer transport (docs/protocol.md, "Cluster view requests").
        nodes = self.start_mesh(3, ["--replicas", 1, "--write-quorum", 1])
        r = self.client(nodes[0]).post("/v1/jobs/batch",
                                   json.dumps({"jobs": [{"type": "echo", "payload": {"i": i}}
                                                        for i in range(30)]}))
        self.assertEqual(r.json()["accepted"], 30)
        ids = {x["id"] for x in r.json()["results"]}
        local = {n.name: {j["id"] for j in self.client(n).get("/v1/jobs?scope=local&limit=1000")
                          .json()["jobs"]} for n in nodes}
        self.assertEqual(sum(len(v) for v in local.values()), 30, local)
        self.assertTrue(all(len(v) < 30 for v in local.values()), "the jobs are spread out")

        def received(node):
            return self.client(node).get("/v1/node").json()["mesh"]["peer_messages_received"]

        for n in nodes:
            before = {m.name: received(m) for m in nodes if m is not n}
            listed = self.client(n).get("/v1/jobs?limit=1000").json()
            self.assertEqual({j["id"] for j in listed["jobs"]}, ids, n.name)
            self.assertIsNone(listed["next_cursor"])
            for m in nodes:
                if m is not n:
                    self.assertGreater(received(m), before[m.name], "%s asked %s" % (n.name, m.name))
        held = {name: len(v) for name, v in local.items()}
        self.wait_until("the ring view to show what each member holds", lambda: {
            m["name"]: m["jobs_held"]
            for m in self.client(nodes[1]).get("/v1/cluster/ring").json()["members"]} == held, 30)

    def test_no_peer_endpoints_over_http(self):
        nodes = self.start_mesh(2)
        c = nodes[0].client()
        forged = {"X-Meshwork-Node": "n2", "X-Meshwork-Time": str(int(time.time() * 1000)),
                  "X-Meshwork-Signature": "A" * 86 + "=="}
        for path, body in [("/internal/v1/list", json.dumps({})), ("/internal/v1/held", "{}"),
                           ("/internal/v1/msg", b"\x00\x00\x00\x00")]:
            r = c.post(path, body)
            self.assertEqual(r.status, 404, (path, r))
            r = c.post(path, body, headers=forged)
            self.assertEqual(r.status, 404, (path, r))

    def test_peer_port_refuses_garbage_and_strangers_and_counts_them(self):
        # The peer transport listens on TCP at the gossip address (docs/protocol.md). Anything but
        # a member's signed hello for this node closes the connection and is counted; a member's
        # hello is answered with a welcome; the node goes on working.
        nodes = self.start_mesh(2)
        c = nodes[0].client()
        host, port = nodes[0].gossip.rsplit(":", 1)
        with open(os.path.join(nodes[1].data_dir, "node.key"), "rb") as f:
            member = f.read()[:32]  # n2's identity
        stranger = os.urandom(32)

        def hello(seed, name, target):
            body = (b"MWP1" + bytes([1, 1, len(name)]) + name.encode() + bytes([len(target)])
                    + target.encode() + ed25519_public_key(seed) + os.urandom(32))
            body += ed25519_sign(seed, b"meshwork-peer-hello-v1" + body)
            return len(body).to_bytes(2, "little") + body

        def answer(data):
            """What the node sends back before it closes (b"" when it just closes)."""
            with socket.create_connection((host, int(port)), timeout=scaled(10)) as s:
                s.sendall(data)
                got = b""
                try:
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            return got
                        got += chunk
                        if len(got) >= 2 and len(got) >= 2 + int.from_bytes(got[:2], "little"):
                            return got  # a whole handshake answer: the node keeps it open
                except ConnectionResetError:
                    return got

        before = c.get("/v1/node").json()["mesh"]["peer_handshakes_refused"]
        refused = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00\x00", b"\xff\xff" + b"x" * 10,
                   hello(stranger, "mallory", "n1"), hello(stranger, "n2", "n1"),
                   hello(member, "n2", "n9")]
        for data in refused:
            self.assertEqual(answer(data), b"", data[:24])
        self.assertEqual(c.get("/v1/node").json()["mesh"]["peer_handshakes_refused"],
                         before + len(refused))
        welcome = answer(hello(member, "n2", "n1"))
        self.assertEqual(welcome[2:8], b"MWP1\x01\x02")  # version 1, a welcome
        self.assertEqual(welcome[8:11], b"\x02n1")
        self.run_job(c, {"type": "echo", "payload": {"still": "fine"}})


if __name__ == "__main__":
    unittest.main()
