"""Scheduling with real node processes on 127.0.0.1: priorities on a one-worker node, delayed jobs
that show as `scheduled`, never start early and survive a kill -9 of their owner, and the bad
input for both fields (422, nothing stored).

What is asserted comes from the jobs' own histories (when each attempt started, by the node's
wall clock), never from how long the test waited.
"""

import json
import time
import unittest

from harness import Key, NodeTestCase, scaled
from test_errors import ErrorTestCase
from test_mesh import Mesh

DAY_MS = 24 * 3600 * 1000


def first_running_at(job):
    starts = [h["at"] for h in job["history"] if h["state"] == "running"]
    return min(starts) if starts else None


class Priority(NodeTestCase):

    def test_a_late_priority_9_job_starts_before_queued_priority_1_jobs(self):
        node = self.start_node("prio", ["--workers", 1])
        c = node.client()
        # Long enough that the four below are all queued before it ends (checked below).
        busy = self.submit(c, {"type": "sleep", "payload": {"ms": 3000}})
        self.wait_job(c, busy["id"], "running", node=node)
        low = [self.submit(c, {"type": "sleep", "payload": {"ms": 100}, "priority": 1})
               for _ in range(3)]
        urgent = self.submit(c, {"type": "sleep", "payload": {"ms": 100}, "priority": 9})
        self.assertEqual(urgent["priority"], 9, urgent)
        self.assertEqual(low[0]["priority"], 1, low[0])
        # Still the first job's turn: the four wait together in the queue.
        self.assertEqual(self.get_job(c, busy["id"])["state"], "running")
        jobs = {j["id"]: self.wait_job(c, j["id"], "succeeded", node=node)
                for j in [busy] + low + [urgent]}
        started = {i: first_running_at(j) for i, j in jobs.items()}
        for j in low:
            self.assertLess(started[urgent["id"]], started[j["id"]],
                            "the priority-9 job started after a priority-1 one: %s" % started)
        # Among equals, the order they came in.
        self.assertEqual(sorted(low, key=lambda j: started[j["id"]]), low)
        self.assertEqual(self.get_job(c, busy["id"])["priority"], 5)  # the default


class DelayOneNode(NodeTestCase):

    def test_a_delayed_job_is_scheduled_until_due_and_does_not_start_early(self):
        node = self.start_node("later", ["--workers", 2])
        c = node.client()
        delay = 2500
        job = self.submit(c, {"type": "echo", "payload": {"x": 1}, "delay_ms": delay})
        self.assertEqual(job["state"], "scheduled", job)
        self.assertEqual(job["delay_ms"], delay, job)
        self.assertEqual(job["run_after"], job["created_at"] + delay, job)
        now = c.get("/v1/jobs/" + job["id"]).json()
        if now["state"] == "scheduled":  # not yet due (it cannot be queued or running before)
            listed = [j["id"] for j in c.get("/v1/jobs?state=scheduled").json()["jobs"]]
            self.assertIn(job["id"], listed)
            queued = [j["id"] for j in c.get("/v1/jobs?state=queued").json()["jobs"]]
            self.assertNotIn(job["id"], queued)
        done = self.wait_job(c, job["id"], "succeeded", node=node)
        self.assertGreaterEqual(first_running_at(done), job["created_at"] + delay, done)
        self.assertEqual(done["attempts"], 1, done)
        listed = [j["id"] for j in c.get("/v1/jobs?state=scheduled").json()["jobs"]]
        self.assertNotIn(job["id"], listed)

    def test_an_undelayed_job_is_not_scheduled(self):
        node = self.start_node("now", ["--workers", 1])
        c = node.client()
        job = self.submit(c, {"type": "echo", "payload": {}, "delay_ms": 0})
        self.assertNotEqual(job["state"], "scheduled", job)
        self.assertNotIn("run_after", job)
        self.wait_job(c, job["id"], "succeeded", node=node)


class DelayMesh(Mesh):

    def test_a_delayed_job_survives_a_kill_of_its_owner(self):
        nodes = self.start_mesh(3)
        delay = 10_000
        entry = nodes[0]
        r = self.client(entry).post("/v1/jobs", json.dumps(
            {"type": "echo", "payload": {"later": True}, "delay_ms": delay}))
        self.assertEqual(r.status, 202, r)
        job = r.json()
        self.assertEqual(job["state"], "scheduled", job)
        owner = next(n for n in nodes if n.name == job["owner"])
        others = [n for n in nodes if n is not owner]
        self.wait_until("both other replicas to hold the job",
                        lambda: all(self.job(n, job["id"], local=True) for n in others), 30)
        for n in others:
            seen = self.job(n, job["id"], local=True)
            self.assertEqual(seen["run_after"], job["run_after"], seen)  # the same on every copy
        owner.kill9()
        survivor = others[0]
        self.wait_until("a surviving replica to run the job",
                        lambda: (self.job(survivor, job["id"]) or {}).get("state") == "succeeded",
                        delay / 1000 + 60)
        done = self.job(survivor, job["id"])
        self.assertGreaterEqual(first_running_at(done), job["created_at"] + delay, done)
        self.assertEqual(done["attempts"], 1, done)  # the owner never started it
        self.assertNotEqual(done["receipt"]["node"], owner.name, done)


class BadScheduleInput(ErrorTestCase):

    def setUp(self):
        super().setUp()
        self.node = self.start_node("bad")
        self.c = self.node.client()
        self.done = self.run_job(self.c, {"type": "echo", "payload": {"seed": True}})

    def post(self, body, detail_has):
        return self.assertRejected(self.c, "POST", "/v1/jobs", json.dumps(body), 422, detail_has)

    def test_priority_outside_0_to_9(self):
        for bad in (-1, 10, 1000, 1.5, "5", True, None, [5]):
            with self.subTest(priority=bad):
                self.post({"type": "echo", "payload": {}, "priority": bad}, "priority")

    def test_delay_negative_oversized_or_not_an_integer(self):
        for bad in (-1, 30 * DAY_MS + 1, 2 ** 64, 1.5, "1000", False, None, {"ms": 1}):
            with self.subTest(delay_ms=bad):
                self.post({"type": "echo", "payload": {}, "delay_ms": bad}, "delay_ms")

    def test_the_longest_delay_is_accepted(self):
        r = self.c.post("/v1/jobs", json.dumps(
            {"type": "echo", "payload": {}, "delay_ms": 30 * DAY_MS}))
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json()["state"], "scheduled")

    def test_a_signed_job_due_more_than_30_days_ahead(self):
        key = Key.generate()
        ahead = int(time.time() * 1000) + DAY_MS
        text = json.dumps({"type": "echo", "payload": {}, "nonce": "n1", "created_at": ahead,
                           "delay_ms": 30 * DAY_MS})
        self.assertRejected(self.c, "POST", "/v1/jobs", json.dumps(key.envelope(text)), 422,
                            "30")

    def test_the_list_filter_takes_scheduled_and_refuses_unknown_states(self):
        self.assertEqual(self.c.get("/v1/jobs?state=scheduled").status, 200)
        self.assertProblem(self.c.get("/v1/jobs?state=later"), 422, "scheduled")


if __name__ == "__main__":
    unittest.main()
