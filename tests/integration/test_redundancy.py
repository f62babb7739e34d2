"""Redundant execution on untrusted hosts, with real node processes on 127.0.0.1 (issue 15).

1. Five nodes, one of them a liar (`--test-break lie`: wrong results, validly signed), 200 jobs
   with `"redundancy": 3` submitted through the honest nodes: every job succeeds with the honest
   result (recomputed here); the honest nodes' scores of the liar fall below the threshold
   (`trusted: false` in GET /v1/cluster/members) and jobs submitted after that are not run by it;
   the receipts endpoint shows the liar among the dissenting nodes of a job it ran and passes the
   honest receipts; `meshwork verify` fails a tampered copy of a job; `redundancy` outside 1..R
   is refused 422.
2. Four nodes, one a forger (`--test-break forge`: receipts whose signature does not verify): the
   honest nodes refuse its records and count them, and the jobs still succeed.
Timeouts are generous upper bounds (scaled() for ASan builds); no test asserts on timing.
"""

import json
import os
import sys
import unittest

from harness import NodeTestCase
from test_membership import MeshNode

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "simulations", "chaos"))
import honesty  # noqa: E402  (simulations/chaos/honesty.py: the honest result, recomputed)

JOBS = 200
EARLY_JOBS = 40  # submitted before the liar is known; the rest after the honest nodes distrust it
BATCH = 20
K = 3
POW_BITS = 6
THRESHOLD = 0.30  # dht/reputation.h: a host is trusted while its score is at least this


def pow_spec(i):
    return {"type": "pow", "payload": {"data": "redundancy-%d" % i, "difficulty_bits": POW_BITS},
            "redundancy": K}


def echo_spec(i):
    return {"type": "echo", "payload": {"i": i, "what": "redundancy"}, "redundancy": K}


class Redundancy(NodeTestCase):

    def setUp(self):
        super().setUp()
        self.nodes = []
        self.clients = {}

    def start_mesh(self, names, broken):
        """Starts `names` (R = 3) joining through the first; `broken` maps a name to its
        --test-break. Waits until every node sees all of them alive."""
        first = None
        for name in names:
            args = ["--workers", 2] + (["--test-break", broken[name]] if name in broken else [])
            node = MeshNode(self.tmp, name, args, join=[first.gossip] if first else [])
            self.addCleanup(node.stop)
            node.start()
            self.nodes.append(node)
            first = first or node
        self.wait_until("every node to see %d alive members" % len(names),
                        lambda: all(self.members_seen(n, "alive") == len(names)
                                    for n in self.nodes), 30)

    def client(self, node):
        c = self.clients.get(node.name)
        if c is None:
            c = self.clients[node.name] = node.client()
        return c

    def members(self, node):
        r = self.client(node).get("/v1/cluster/members")
        return r.json()["members"] if r.status == 200 else []

    def members_seen(self, node, state):
        return sum(m["state"] == state for m in self.members(node))

    def distrusted_by_all(self, name, honest):
        return all(any(m["name"] == name and m.get("trusted") is False for m in self.members(n))
                   for n in honest)

    def submit_batch(self, node, specs):
        r = self.client(node).post("/v1/jobs/batch", {"jobs": specs})
        self.assertEqual(r.status, 200, r)
        items = r.json()["results"]
        self.assertEqual([i["status"] for i in items], [202] * len(specs), items)
        return [i["id"] for i in items]

    def submit_round_robin(self, honest, specs):
        ids = []
        for k in range(0, len(specs), BATCH):
            ids += self.submit_batch(honest[(k // BATCH) % len(honest)], specs[k:k + BATCH])
        return ids

    def wait_all(self, node, ids, timeout):
        done = {}

        def all_terminal():
            for job_id in ids:
                if job_id not in done:
                    job = self.get_job(self.client(node), job_id)
                    if job["state"] in ("succeeded", "failed", "cancelled"):
                        done[job_id] = job
            return len(done) == len(ids)
        self.wait_until("%d jobs to end" % len(ids), all_terminal, timeout)
        return [done[i] for i in ids]

    def assert_honest(self, specs, jobs):
        for spec, job in zip(specs, jobs):
            self.assertEqual(job["state"], "succeeded", job)
            honest = honesty.recomputed(spec["type"], spec["payload"], job["attempts"])
            self.assertEqual(job["result"], honest, job)

    def test_a_liar_is_outvoted_then_distrusted(self):
        names = ["n1", "n2", "n3", "n4", "n5"]
        self.start_mesh(names, {"n5": "lie"})
        honest, liar = self.nodes[:4], "n5"
        specs = [pow_spec(i) if i % 2 else echo_spec(i) for i in range(JOBS)]

        early_ids = self.submit_round_robin(honest, specs[:EARLY_JOBS])
        early = self.wait_all(honest[0], early_ids, 60)
        self.assert_honest(specs[:EARLY_JOBS], early)
        lied = [j for j in early
                if j["results"].get(liar, {}).get("outcome") == "succeeded"]
        self.assertTrue(lied, "the liar finished none of the first %d jobs" % EARLY_JOBS)
        for job in lied:
            self.assertNotEqual(job["results"][liar]["result"], job["result"], job)
        self.wait_until("the honest nodes to distrust the liar",
                        lambda: self.distrusted_by_all(liar, honest), 30)
        for n in honest:
            seen = {m["name"]: m for m in self.members(n)}
            self.assertLess(seen[liar]["score"], THRESHOLD, seen)
            self.assertTrue(all(seen[h.name]["trusted"] for h in honest), seen)

        late_ids = self.submit_round_robin(honest, specs[EARLY_JOBS:])
        late = self.wait_all(honest[1], late_ids, 90)
        self.assert_honest(specs[EARLY_JOBS:], late)
        ran = [j["id"] for j in late if liar in j["results"]]
        self.assertEqual(ran, [], "jobs submitted after detection that the liar still ran")

        self.check_verify(honest[3], lied[0])
        self.check_refused(honest[0])
        # A job whose final attempt the liar ran (an attempt it claimed is taken over, once the
        # honest nodes distrust it, by an attempt it does not run).
        outvoted = [j for j in lied if j["results"][liar]["attempt"] == j["attempts"]]
        self.assertTrue(outvoted, "the liar ran the final attempt of none of the first jobs")
        self.check_receipts(honest[2], outvoted[0], liar)

    def check_receipts(self, node, job, liar):
        r = self.client(node).get("/v1/jobs/%s/receipts" % job["id"])
        self.assertEqual(r.status, 200, r)
        doc = r.json()
        self.assertEqual(doc["redundancy"], K, doc)
        by_node = {rc["node"]: rc for rc in doc["receipts"]}
        self.assertEqual(set(by_node), set(job["results"]), doc)
        for name, rc in by_node.items():  # the liar's too: a lie with a good signature
            self.assertEqual(rc["status"], "valid", doc)
        self.assertIn("verdict", doc, "GET /v1/jobs/{id}/receipts has no verdict for k = %d" % K)
        verdict = doc["verdict"]
        self.assertTrue(verdict["decided"], doc)
        self.assertIn(liar, verdict["dissenting"], doc)
        self.assertGreaterEqual(len(verdict["agreeing"]), 2, doc)
        self.assertNotIn(liar, verdict["agreeing"], doc)

    def check_verify(self, node, job):
        path = os.path.join(self.tmp, "job.json")
        with open(path, "w") as f:
            json.dump(job, f)
        self.run_cli("verify", "--node", node.url, "--file", path, check=0)
        tampered = json.loads(json.dumps(job))
        producer = tampered["receipt"]["node"]
        tampered["result"] = {"echo": "tampered"}
        tampered["results"][producer]["result"] = tampered["result"]
        with open(path, "w") as f:
            json.dump(tampered, f)
        r = self.run_cli("verify", "--node", node.url, "--file", path, check=1)
        self.assertIn("result_hash does not match", r.stdout)

    def check_refused(self, node):
        c = self.client(node)
        for k in (0, -1, 4, 8, "3", 1.5, None):
            r = c.post("/v1/jobs", {"type": "echo", "payload": {}, "redundancy": k})
            self.assertProblem(r, 422, "redundancy")
        self.run_job(c, {"type": "echo", "payload": {"k": 1}, "redundancy": 1})

    def test_a_forger_is_refused_and_jobs_still_succeed(self):
        self.start_mesh(["n1", "n2", "n3", "n4"], {"n4": "forge"})
        honest, forger = self.nodes[:3], "n4"
        specs = [pow_spec(1000 + i) for i in range(BATCH)]
        ids = self.submit_round_robin(honest, specs)
        jobs = self.wait_all(honest[0], ids, 60)
        self.assert_honest(specs, jobs)
        for job in jobs:
            self.assertNotEqual(job["receipt"]["node"], forger, job)
        refused = 0
        for n in honest:
            stats = self.client(n).get("/v1/node").json()["stats"]
            refused += stats.get("receipts_refused", 0)
        self.assertGreater(refused, 0, "no honest node refused the forger's receipts")
        self.wait_until("the honest nodes to distrust the forger",
                        lambda: self.distrusted_by_all(forger, honest), 30)


if __name__ == "__main__":
    unittest.main()
