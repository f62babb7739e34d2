"""One node's wall clock an hour ahead, another's an hour behind (the hidden node flag
--test-clock-offset-ms shifts the clock the replica core writes into claims, leases, retry times
and history). Leases and retry waits are judged by each node's own monotonic clock
(docs/guarantees.md, "Leases and clocks"), so while every node is up nothing is taken over — not
even the claims of the node an hour behind, whose leases look long expired to the others' wall
clocks — and once the node an hour ahead is killed, its running job and its job waiting to retry
are finished by the others within seconds, not an hour.

Timeouts are generous upper bounds (scaled() for ASan builds); no test asserts on timing.
"""

import json
import unittest

from test_membership import MeshNode
from test_mesh import Mesh

HOUR_MS = 3_600_000
LONG_SLEEP_MS = 20_000  # longer than a lease (15 s) and its skew allowance (2 s): renewed


class SkewedClocks(Mesh):

    def start_skewed_mesh(self):
        """n1 an hour ahead, n2 an hour behind, n3 right."""
        first = None
        for name, offset in (("n1", HOUR_MS), ("n2", -HOUR_MS), ("n3", 0)):
            args = ["--workers", 4]
            if offset:
                args.append("--test-clock-offset-ms=%d" % offset)
            node = MeshNode(self.tmp, name, args, join=[first.gossip] if first else [])
            self.addCleanup(node.stop)
            node.start()
            self.nodes.append(node)
            first = first or node
        self.wait_until("every node to see 3 alive members",
                        lambda: all(self.alive_seen(x) == 3 for x in self.nodes), 30)
        return {n.name: n for n in self.nodes}

    def submit_owned(self, via, spec, owner, tries=40):
        """Submits `spec` with fresh nonces until a job lands on `owner`; returns every id
        submitted (all must finish) and the one `owner` owns."""
        ids = []
        for _ in range(tries):
            self.nonce = getattr(self, "nonce", 0) + 1
            body = dict(spec, nonce="clock-%d" % self.nonce)
            job = self.submit(self.client(via), json.dumps(body))
            ids.append(job["id"])
            if job["owner"] == owner:
                return ids, job["id"]
        self.fail("no %s job landed on %s in %d tries" % (spec["type"], owner, tries))

    def reasons(self, view):
        return [h["reason"] for h in view["history"]]

    def assertNoTakeover(self, view):
        for reason in self.reasons(view):
            for phrase in ("takes over", "lease expired", "interrupted"):
                self.assertNotIn(phrase, reason, view)

    def test_skewed_claims_are_renewed_not_taken_over_and_survive_their_node(self):
        nodes = self.start_skewed_mesh()
        n1, n3 = nodes["n1"], nodes["n3"]

        # While all are up: long jobs on both skewed nodes run to the end, once each.
        long_spec = {"type": "sleep", "payload": {"ms": LONG_SLEEP_MS}, "max_attempts": 1}
        ids = []
        for owner in ("n1", "n2", "n1", "n2"):
            submitted, _ = self.submit_owned(n3, long_spec, owner)
            ids += submitted
        ids += [self.submit(self.client(self.nodes[k % 3]),
                            json.dumps({"type": "echo", "payload": {"k": k}}))["id"]
                for k in range(9)]
        for job_id in ids:
            view = self.wait_job(self.client(n3), job_id, "succeeded", timeout=180)
            self.assertEqual(view["attempts"], 1, view)
            self.assertNoTakeover(view)
        owners = {self.job(n3, j)["owner"] for j in ids}
        self.assertTrue({"n1", "n2"} <= owners, owners)

        # n1 (an hour ahead) runs a long job and fails a flaky one into a retry_wait whose retry_at
        # is an hour away on the others' clocks; then it dies.
        _, running = self.submit_owned(n3, {"type": "sleep", "payload": {"ms": LONG_SLEEP_MS}},
                                       "n1")
        self.wait_until("n1 to run the long job",
                        lambda: self.job(n3, running)["state"] == "running", 30)
        flaky_ids, waiting = self.submit_owned(
            n3, {"type": "flaky", "payload": {"fail_times": 5}, "max_attempts": 6}, "n1")

        def waits_after_fifth_failure():
            view = self.job(n3, waiting, local=True)
            return view is not None and view["state"] == "queued" and view["attempts"] == 5
        self.wait_until("n1's flaky job to wait after its 5th failure", waits_after_fifth_failure,
                        60)
        seen = self.job(n3, waiting, local=True)
        self.assertGreater(seen["retry_at"], seen["created_at"] + HOUR_MS // 2, seen)
        n1.kill9()

        view = self.wait_job(self.client(n3), running, "succeeded", timeout=120)
        self.assertEqual(view["attempts"], 2, view)
        self.assertNotEqual(view["receipt"]["node"], "n1")
        self.assertTrue(any("owner n1 dead" in r for r in self.reasons(view)), self.reasons(view))
        view = self.wait_job(self.client(n3), waiting, "succeeded", timeout=120)
        self.assertEqual(view["attempts"], 6, view)
        self.assertNotEqual(view["receipt"]["node"], "n1")
        for job_id in flaky_ids:
            self.wait_job(self.client(n3), job_id, "succeeded", timeout=120)


if __name__ == "__main__":
    unittest.main()
