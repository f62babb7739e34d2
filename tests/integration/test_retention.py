"""Retention with real node processes (docs/guarantees.md, retention): a finished job is removed on
every node once older than --retain-s; then GET answers 404 on every node, listings skip it, the
same signed job submitted again is refused with 409 and does not run again, and a node killed while
it held a copy and restarted afterwards does not bring it back."""

import json
import time
import unittest

from harness import Key, NodeTestCase, scaled
from test_membership import start_mesh

RETAIN_S = 2


class Retention(NodeTestCase):

    def setUp(self):
        super().setUp()
        self.nodes = []

    def start_mesh(self, n):
        return start_mesh(self, n, ["--workers", 2, "--retain-s", RETAIN_S, "--tombstone-s", 3600])

    def alive_seen(self, node):
        r = node.client().get("/v1/cluster/members")
        return sum(m["state"] == "alive" for m in r.json()["members"]) if r.status == 200 else -1

    def signed_job(self, key, tag):
        text = json.dumps({"type": "echo", "payload": {"tag": tag}, "nonce": tag,
                           "created_at": int(time.time() * 1000)})
        return key.envelope(text)

    def status_everywhere(self, job_id, nodes):
        return [n.client().get("/v1/jobs/" + job_id).status for n in nodes]

    def listed_anywhere(self, job_id, nodes):
        for n in nodes:
            for scope in ("", "&scope=local"):
                r = n.client().get("/v1/jobs?limit=1000" + scope)
                self.assertEqual(r.status, 200, r)
                if any(j["id"] == job_id for j in r.json()["jobs"]):
                    return True
        return False

    def test_a_finished_job_is_removed_everywhere_and_never_comes_back(self):
        nodes = self.start_mesh(3)
        c = nodes[0].client()
        limits = c.get("/v1/node").json()["limits"]
        self.assertEqual((limits["retain_s"], limits["tombstone_s"]), (RETAIN_S, 3600))
        key = Key.generate()
        envelope = self.signed_job(key, "kept-then-removed")
        first = c.post("/v1/jobs", envelope)
        self.assertEqual(first.status, 202, first)
        job_id = first.json()["id"]
        # A job that is never finished is never removed: a long sleep outlives the retention.
        sleeper = self.submit(c, {"type": "sleep", "payload": {"ms": 8_000}})["id"]
        done = self.wait_job(c, job_id, "succeeded")
        self.assertEqual(done["result"], {"echo": {"tag": "kept-then-removed"}})
        for n in nodes:
            self.assertEqual(n.client().get("/v1/jobs/%s?scope=local" % job_id).status, 200)

        # n3 goes down holding its copy, and is restarted after the others removed theirs.
        nodes[2].kill9()
        self.wait_until("the job to answer 404 on the nodes that are up",
                        lambda: self.status_everywhere(job_id, nodes[:2]) == [404, 404],
                        RETAIN_S + 20)
        self.assertFalse(self.listed_anywhere(job_id, nodes[:2]))
        nodes[2].restart()
        self.wait_until("the job to answer 404 on every node, n3 included",
                        lambda: self.status_everywhere(job_id, nodes) == [404, 404, 404],
                        RETAIN_S + 30)
        for n in nodes:
            r = n.client().get("/v1/jobs/%s?scope=local" % job_id)
            self.assertEqual(r.status, 404, r)
        self.assertFalse(self.listed_anywhere(job_id, nodes))

        # The same signed job again: refused, not run again, not stored anywhere.
        for n in nodes:
            again = n.client().post("/v1/jobs", envelope)
            self.assertProblem(again, 409, "removed by retention")
        time.sleep(scaled(RETAIN_S + 1))
        self.assertEqual(self.status_everywhere(job_id, nodes), [404, 404, 404])
        self.assertFalse(self.listed_anywhere(job_id, nodes))
        expired = sum(n.client().get("/v1/node").json()["mesh"]["expired"] for n in nodes)
        self.assertGreaterEqual(expired, 3)

        # The sleeper ran for longer than the retention and is kept until it finishes.
        self.assertIn(self.get_job(c, sleeper)["state"], ("running", "succeeded"))
        self.wait_job(c, sleeper, "succeeded", timeout=60)


if __name__ == "__main__":
    unittest.main()
