"""Receipts checked by the mesh (docs/protocol.md, trust model): GET /v1/jobs/{id}/receipts on any
node gives each node's receipt with its status; members carry a `score` and `trusted`; GET
/v1/node a `reputation` and the receipt counters, which stay 0 in an honest mesh (every node checks
every result its peers send, against the keys gossip knows); `meshwork verify` prints the node's
word beside its own check; the Python client's receipts(id). Every answer is validated against
api/openapi.json by the harness."""

import os
import sys
import unittest

from test_mesh import Mesh

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "api", "clients", "python"))

import meshwork_client as mc  # noqa: E402  (after the path is set)

UNKNOWN_ID = "0" * 64
COUNTERS = ("receipts_refused", "receipts_forged", "receipts_unknown_node", "receipts_too_large",
            "receipts_unchecked")


class Receipts(Mesh):

    def setUp(self):
        super().setUp()
        self.start_mesh(3)
        self.c = self.client(self.nodes[0])

    def receipts(self, node, job_id, status=200):
        r = self.client(node).get("/v1/jobs/%s/receipts" % job_id)
        self.assertEqual(r.status, status, r)
        return r.json()

    def test_every_node_checks_the_receipts_of_a_finished_job(self):
        ok = self.run_job(self.c, {"type": "echo", "payload": {"n": [1.5, 2], "u": "caf\u00e9"}})
        failed = self.run_job(self.c, {"type": "flaky", "payload": {"fail_times": 3},
                                       "max_attempts": 1}, until="failed")
        for job in (ok, failed):
            producer = job["receipt"]["node"]
            for node in self.nodes:
                view = self.receipts(node, job["id"])
                self.assertEqual(view["id"], job["id"])
                self.assertEqual(view["redundancy"], 1)
                self.assertNotIn("verdict", view)
                by_node = {rc["node"]: rc for rc in view["receipts"]}
                self.assertEqual(by_node[producer]["status"], "valid", view)
                self.assertIsNone(by_node[producer]["why"])
                self.assertEqual(by_node[producer]["signature"], job["receipt"]["signature"])
                self.assertEqual(by_node[producer]["outcome"], job["state"])
        self.assertProblem(self.client(self.nodes[1]).get(
            "/v1/jobs/%s/receipts" % UNKNOWN_ID), 404)
        self.assertProblem(self.c.get("/v1/jobs/not-an-id/receipts"), 404)

    def test_a_redundant_job_shows_its_verdict(self):
        job = self.run_job(self.c, {"type": "pow", "redundancy": 3,
                                    "payload": {"data": "hi", "difficulty_bits": 8}})
        view = self.receipts(self.nodes[1], job["id"])
        self.assertEqual(view["redundancy"], 3)
        # The majority (2 of 3) decides; the third runner's result may come after, or not at all.
        self.assertIn(len(view["receipts"]), (2, 3))
        self.assertEqual({rc["status"] for rc in view["receipts"]}, {"valid"})
        verdict = view["verdict"]
        self.assertTrue(verdict["decided"])
        self.assertGreaterEqual(len(verdict["agreeing"]), 2)
        self.assertLessEqual(set(verdict["agreeing"]), {n.name for n in self.nodes})
        self.assertEqual(verdict["dissenting"], [])
        self.assertEqual(verdict["result_hash"], job["receipt"]["result_hash"])

    def test_an_honest_mesh_refuses_no_receipt_and_trusts_everyone(self):
        for k in range(6):  # results replicated to every node, each checked there
            self.run_job(self.client(self.nodes[k % 3]), {"type": "echo", "payload": {"k": k}})
        names = {n.name for n in self.nodes}
        # Each signature covers one batch of at least one result of the node that made it. A
        # runner counts a success once a majority acknowledged its outcome, which may be after a
        # replica already shows the job succeeded (run_job's poll), so the counts are compared
        # once they stand: a batch signed over no result would keep them apart for good.
        def counts():
            infos = [self.client(node).get("/v1/node").json() for node in self.nodes]
            return (sum(i["stats"]["receipt_batches"] for i in infos),
                    sum(i["stats"]["succeeded"] for i in infos))
        def settled():
            batches, succeeded = counts()
            return batches <= succeeded
        self.wait_until("every signed batch's success counted", settled, 30)
        batches, succeeded = counts()
        self.assertGreaterEqual(batches, 1)
        self.assertLessEqual(batches, succeeded)
        for node in self.nodes:
            members = self.client(node).get("/v1/cluster/members").json()["members"]
            self.assertEqual({m["name"] for m in members}, names)
            for m in members:
                self.assertTrue(m["trusted"], m)
                self.assertGreaterEqual(m["score"], 0.3)
            info = self.client(node).get("/v1/node").json()
            for counter in COUNTERS:
                self.assertEqual(info["stats"][counter], 0, (node.name, counter, info["stats"]))
            self.assertEqual(info["reputation"]["threshold"], 0.3)
            for host in info["reputation"]["hosts"].values():
                self.assertEqual(host["forged"], 0)
            metrics = self.client(node).get("/metrics").body.decode()
            for reason in ("forged", "too_large", "unknown_node"):
                self.assertIn('meshwork_receipts_refused_total{reason="%s"} 0' % reason, metrics)
            self.assertIn("# TYPE meshwork_host_score gauge", metrics)

    def test_verify_prints_the_nodes_word_and_the_client_asks_for_it(self):
        job = self.run_job(self.c, {"type": "echo", "payload": {"amount": 10}})
        r = self.run_cli("verify", "--node", self.nodes[2].url, job["id"], check=0)
        self.assertIn("all valid", r.stdout)
        self.assertIn("[the node says: valid]", r.stdout)
        mesh = mc.Client(self.nodes[1].url)
        try:
            view = mesh.receipts(job["id"])
        finally:
            mesh.close()
        self.assertEqual([rc["status"] for rc in view["receipts"]], ["valid"])


if __name__ == "__main__":
    unittest.main()
