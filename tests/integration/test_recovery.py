"""Crash and restart on the same data dir: kill -9 in the middle of a running job, kill -9 right
after acknowledgements, and a graceful SIGTERM. Acknowledged jobs are never lost, a job that was
running when the node died runs again with attempt + 1, finished jobs come back unchanged."""

import unittest

from harness import NodeTestCase


class Recovery(NodeTestCase):
    def finished_jobs(self, c):
        """A few jobs in each terminal state, as the node shows them once they are done."""
        ids = [self.submit(c, {"type": "echo", "payload": {"i": i}})["id"] for i in range(3)]
        ids.append(self.submit(c, {"type": "flaky", "payload": {"fail_times": 1},
                                   "max_attempts": 1})["id"])
        ids.append(self.submit(c, {"type": "pow", "payload": {"data": "r", "difficulty_bits": 8}})
                   ["id"])
        return {job_id: self.wait_job(c, job_id) for job_id in ids}

    def assertUnchanged(self, c, before):
        for job_id, job in before.items():
            self.assertEqual(self.get_job(c, job_id), job, "a finished job changed on restart")

    def test_kill9_during_a_running_job(self):
        node = self.start_node("crash", ["--workers", 1])
        c = node.client()
        key = c.get("/v1/node").json()["public_key"]
        done = self.finished_jobs(c)
        self.assertEqual({j["state"] for j in done.values()}, {"succeeded", "failed"})

        sleeper = self.submit(c, {"type": "sleep", "payload": {"ms": 3000}})["id"]
        self.wait_job(c, sleeper, "running", node=node)
        waiting = self.submit(c, {"type": "echo", "payload": {"behind": "sleeper"}})["id"]
        self.assertEqual(self.get_job(c, sleeper)["state"], "running")
        node.kill9()

        node.restart()
        c = node.client()
        self.assertEqual(c.get("/v1/node").json()["public_key"], key, "identity not kept")
        job = self.wait_job(c, sleeper, "succeeded", node=node)
        self.assertEqual(job["attempts"], 2)
        self.assertEqual(job["result"], {"slept_ms": 3000})
        self.assertEqual(job["receipt"]["attempt"], 2)
        self.assertReceipt(job, "crash", key)
        reasons = " | ".join(h["reason"] for h in job["history"])
        self.assertIn("interrupted", reasons)
        self.assertEqual([h["attempt"] for h in job["history"] if h["state"] == "running"], [1, 2])
        # The job queued behind it was acknowledged before the crash: it runs, once.
        behind = self.wait_job(c, waiting, "succeeded", node=node)
        self.assertEqual(behind["attempts"], 1)
        self.assertEqual(behind["result"], {"echo": {"behind": "sleeper"}})
        self.assertUnchanged(c, done)

    def test_kill9_right_after_acknowledgements(self):
        node = self.start_node("acks", ["--workers", 1])
        c = node.client()
        blocker = self.submit(c, {"type": "sleep", "payload": {"ms": 60_000}})["id"]
        acked = [self.submit(c, {"type": "echo", "payload": {"n": n}})["id"] for n in range(40)]
        node.kill9()  # no grace: only what was on disk at 202 survives

        node.restart()
        c = node.client()
        self.assertEqual(c.post("/v1/jobs/%s/cancel" % blocker).status, 200)
        for n, job_id in enumerate(acked):
            job = self.wait_job(c, job_id, "succeeded", timeout=120, node=node)
            self.assertEqual(job["result"], {"echo": {"n": n}})
        listed = {j["id"] for j in c.get("/v1/jobs?limit=1000").json()["jobs"]}
        self.assertEqual(listed, set(acked) | {blocker})
        self.assertEqual(self.wait_job(c, blocker, "cancelled")["result"], None)

    def test_sigterm_then_restart_keeps_everything(self):
        node = self.start_node("graceful", ["--workers", 1])
        c = node.client()
        key = c.get("/v1/node").json()["public_key"]
        done = self.finished_jobs(c)
        sleeper = self.submit(c, {"type": "sleep", "payload": {"ms": 2000}})["id"]
        self.wait_job(c, sleeper, "running", node=node)
        queued = self.submit(c, {"type": "echo", "payload": {"q": True}})["id"]
        counts = c.get("/v1/node").json()["jobs"]

        self.assertEqual(node.sigterm(), 0, node.log_tail())
        node.restart()
        c = node.client()
        self.assertEqual(c.get("/v1/node").json()["public_key"], key)
        self.assertEqual(sum(c.get("/v1/node").json()["jobs"].values()), sum(counts.values()))
        self.assertUnchanged(c, done)
        job = self.wait_job(c, sleeper, "succeeded", node=node)
        self.assertEqual(job["result"], {"slept_ms": 2000})
        self.assertIn(job["attempts"], (1, 2))
        self.assertReceipt(job, "graceful", key)
        self.assertEqual(self.wait_job(c, queued, "succeeded", node=node)["attempts"], 1)

        # A second clean restart with nothing running changes nothing at all.
        snapshot = {j: self.get_job(c, j) for j in list(done) + [sleeper, queued]}
        self.assertEqual(node.sigterm(), 0, node.log_tail())
        node.restart()
        self.assertUnchanged(node.client(), snapshot)


if __name__ == "__main__":
    unittest.main()
