"""Jobs signed per batch (docs/protocol.md, "Jobs signed per batch"), on a 3-node mesh: a client
signs 100 jobs with one Ed25519 signature over the Merkle root of their ids; every job is stored
under BLAKE2b-256(job || public key) and runs; the same job signed alone is the same job; a
tampered batch signature is 401 for the whole batch, and a bad proof is refused with a clear
problem. Each node verifies a batch's root about once (GET /v1/node, stats.job_root_verifications),
not once per job. The signing side is the Python client's (python3-nacl), checked here against
hashlib so that a client bug cannot hide a node bug."""

import base64
import hashlib
import json
import os
import sys
import unittest

from harness import scaled
from test_mesh import Mesh

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "api", "clients", "python"))

import meshwork_client as mc  # noqa: E402  (after the path is set)

JOBS = 100
WORKERS = 2  # Mesh.start_mesh's --workers: racing workers may each verify a root once


def job_id(text, public_key):
    return hashlib.blake2b(text.encode() + public_key, digest_size=32).hexdigest()


class BatchSigned(Mesh):

    def setUp(self):
        super().setUp()
        self.start_mesh(3)
        self.key = mc.Key.generate()

    def verifications(self):
        return [self.client(n).get("/v1/node").json()["stats"]["job_root_verifications"]
                for n in self.nodes]

    def post_batch(self, node, body):
        return self.client(node).post("/v1/jobs/batch", json.dumps(body))

    def test_a_batch_signed_once_runs_every_job_under_its_own_id(self):
        specs = [{"type": "echo", "payload": {"i": i}} for i in range(JOBS)]
        body, envelopes = mc.sign_job_batch(specs, self.key)
        self.assertEqual(len(body["jobs"]), JOBS)
        before = self.verifications()
        r = self.post_batch(self.nodes[0], body)
        self.assertEqual(r.status, 200, r)
        out = r.json()
        self.assertEqual(out["accepted"], JOBS, out["results"][:3])
        ids = [x["id"] for x in out["results"]]
        self.assertEqual(ids, [job_id(item["job"], self.key.public_key) for item in body["jobs"]])
        self.assertEqual(ids, [mc.job_id_of(e) for e in envelopes])
        self.wait_until("the batch to finish", lambda: all(
            (self.job(self.nodes[2], i) or {}).get("state") == "succeeded" for i in ids), 90)
        # The entry node verified the root once; each runner once (twice if two workers raced).
        spent = [after - b for after, b in zip(self.verifications(), before)]
        self.assertGreaterEqual(spent[0], 1, spent)
        for n in spent:
            self.assertLessEqual(n, 1 + WORKERS, spent)
        self.assertLess(sum(spent), JOBS // 10, spent)

        # The same job signed alone is the job that exists: 200, same id.
        text = body["jobs"][7]["job"]
        alone = {"job": text, "public_key": self.key.public_key_b64,
                 "signature": base64.b64encode(self.key.sign(text.encode())).decode()}
        r = self.client(self.nodes[1]).post("/v1/jobs", json.dumps(alone))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["id"], ids[7])
        self.assertEqual(r.json()["state"], "succeeded")
        # So is the whole batch again, and one job's envelope with its proof, on another node.
        again = self.post_batch(self.nodes[2], body).json()
        self.assertEqual(again["duplicates"], JOBS, again["results"][:3])
        r = self.client(self.nodes[2]).post("/v1/jobs", json.dumps(envelopes[42]))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["id"], ids[42])

    def test_a_tampered_signature_refuses_the_whole_batch(self):
        body, _ = mc.sign_job_batch([{"type": "echo", "payload": {"t": i}} for i in range(10)],
                                    self.key)
        forged = dict(body, signature=base64.b64encode(
            self.key.sign(b"meshwork-jobs-v1|" + b"0" * 64)).decode())
        self.assertProblem(self.post_batch(self.nodes[0], forged), 401, "root")
        swapped = dict(body, jobs=[body["jobs"][1], body["jobs"][0]] + body["jobs"][2:])
        self.assertProblem(self.post_batch(self.nodes[1], swapped), 401)
        stranger = dict(body, public_key=mc.Key.generate().public_key_b64)
        self.assertProblem(self.post_batch(self.nodes[2], stranger), 401)
        mixed = dict(body, jobs=body["jobs"][:9] + [{"type": "echo"}])
        self.assertProblem(self.post_batch(self.nodes[0], mixed), 422)
        for n in self.nodes:  # nothing of it was stored
            listed = self.client(n).get("/v1/jobs?limit=100").json()
            self.assertEqual(listed["jobs"], [], listed)

    def test_a_bad_proof_is_refused_with_a_clear_problem(self):
        _, envs = mc.sign_job_batch([{"type": "echo", "payload": {"p": i}} for i in range(6)],
                                    self.key)
        c = self.client(self.nodes[1])
        bad_sibling = dict(envs[3], proof=list(envs[3]["proof"]))
        bad_sibling["proof"][1] = "0" * 64
        self.assertProblem(c.post("/v1/jobs", json.dumps(bad_sibling)), 401, "inclusion proof")
        moved = dict(envs[3], index=2)
        self.assertProblem(c.post("/v1/jobs", json.dumps(moved)), 401, "inclusion proof")
        too_long = dict(envs[3], proof=["0" * 64] * (mc.MERKLE_LEVELS_MAX + 1))
        self.assertProblem(c.post("/v1/jobs", json.dumps(too_long)), 422, "proof")
        past = dict(envs[3], index=8)  # a proof of 3 siblings reaches leaves 0 to 7
        self.assertProblem(c.post("/v1/jobs", json.dumps(past)), 422, "index")
        not_hex = dict(envs[3], root="Z" * 64)
        self.assertProblem(c.post("/v1/jobs", json.dumps(not_hex)), 422, "root")
        # In a batch of envelopes each is answered on its own: the good ones are stored.
        r = self.post_batch(self.nodes[0], {"jobs": [envs[0], bad_sibling, too_long, envs[5]]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual([x["status"] for x in r.json()["results"]], [202, 401, 422, 202])
        for e in (envs[0], envs[5]):
            done = self.wait_job(self.client(self.nodes[2]), mc.job_id_of(e), timeout=scaled(60))
            self.assertEqual(done["state"], "succeeded")

    def test_plain_jobs_of_a_batch_are_signed_once_by_the_entry_node(self):
        entry = self.nodes[2]
        before = self.verifications()
        r = self.post_batch(entry, {"jobs": [{"type": "echo", "payload": {"plain": i}}
                                             for i in range(50)]})
        self.assertEqual(r.status, 200, r)
        ids = [x["id"] for x in r.json()["results"]]
        self.assertEqual(len(set(ids)), 50)
        self.wait_until("the plain batch to finish", lambda: all(
            (self.job(self.nodes[0], i) or {}).get("state") == "succeeded" for i in ids), 90)
        spent = [after - b for after, b in zip(self.verifications(), before)]
        self.assertGreaterEqual(sum(spent), 1, spent)  # batch-signed: the runners check roots
        self.assertLess(sum(spent), 50 // 5, spent)


if __name__ == "__main__":
    unittest.main()
