"""Per-client rate limits and who may cancel a job (issue 14, items 7 and 8), on real nodes.

RateLimit: --rate-limit/--rate-burst. A burst from one signing key over the limit gets 429 +
Retry-After and stores nothing, while another key and another address are not limited by it; batch
items are refused one by one; waiting Retry-After is enough; /v1/node shows the limit and counts
the refusals; bad flag values stop the node.
CancelAuth: a job a client signed is cancelled only by a request signed by its key or an admin key
(--admin-keys); unsigned or another key is 403, a stale, forged or replayed signature 401, malformed
headers 400 — each changing nothing; a plain job stays open to anyone; the CLI (--key) and the
Python client sign their cancels.
CancelAcrossTheMesh: a plain job taken by one node is open at another node (it knows the first
node's key from gossip), but not at a node started with --require-signed, where an admin key can.
"""

import json
import os
import sys
import time
import unittest

from harness import Client, Key, NodeTestCase, job_id_of, scaled
from test_membership import MeshNode

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "api", "clients", "python"))
try:
    import meshwork_client as mc
except ImportError:  # python3-nacl missing: the Python client's check is skipped
    mc = None

LONG_SLEEP = {"type": "sleep", "payload": {"ms": 600_000}, "max_attempts": 1}


def signed_job(key, spec, nonce):
    job = dict(spec, nonce=nonce, created_at=int(time.time() * 1000))
    return key.envelope(json.dumps(job, separators=(",", ":"), sort_keys=True))


def echo(key, i):
    return signed_job(key, {"type": "echo", "payload": {"i": i}}, "rate-%s-%d" % (key.public_b64, i))


class RateLimit(NodeTestCase):
    RATE = 0.2  # a token every 5 s: a burst sent within a few seconds earns at most one more
    BURST = 5

    def setUp(self):
        super().setUp()
        self.node = self.start_node("limited", ["--workers", 2, "--rate-limit", self.RATE,
                                                "--rate-burst", self.BURST])
        self.c = self.node.client()

    def assertRefusedByRate(self, r):
        self.assertProblem(r, 429, "rate limit")
        retry_after = int(r.headers.get("Retry-After"))
        self.assertGreaterEqual(retry_after, 1)
        self.assertLessEqual(retry_after, 1 / self.RATE)
        return retry_after

    def assertNotStored(self, envelope):
        job_id = job_id_of(envelope)
        self.assertProblem(self.c.get("/v1/jobs/" + job_id), 404)
        self.assertProblem(self.c.get("/v1/jobs/%s?scope=local" % job_id), 404)

    def test_a_burst_over_the_limit_gets_429_and_other_clients_are_not_limited(self):
        a, b = Key.generate(), Key.generate()
        envelopes = [echo(a, i) for i in range(15)]  # signed before the clock starts
        started = time.monotonic()
        answers = [self.c.post("/v1/jobs", e) for e in envelopes]
        elapsed = time.monotonic() - started
        accepted = [i for i, r in enumerate(answers) if r.status == 202]
        refused = [i for i, r in enumerate(answers) if r.status == 429]
        self.assertEqual(len(accepted) + len(refused), len(answers), answers)
        self.assertEqual(accepted[:self.BURST], list(range(self.BURST)), answers)
        self.assertLessEqual(len(accepted), self.BURST + int(elapsed * self.RATE), answers)
        self.assertGreater(len(refused), 0)
        last_wait = None
        for i in refused:
            last_wait = self.assertRefusedByRate(answers[i])
            self.assertNotStored(envelopes[i])
        for i in accepted:
            self.assertEqual(self.get_job(self.c, job_id_of(envelopes[i]))["submitted_by"],
                             a.public_b64)

        # Another key, and a plain job from this address, have buckets of their own.
        self.assertEqual(self.c.post("/v1/jobs", echo(b, 0)).status, 202)
        self.assertEqual(self.c.post("/v1/jobs", {"type": "echo", "payload": {}}).status, 202)
        # a is still limited; after Retry-After seconds it may submit again.
        self.assertRefusedByRate(self.c.post("/v1/jobs", envelopes[refused[-1]]))
        time.sleep(last_wait)
        self.assertEqual(self.c.post("/v1/jobs", envelopes[refused[-1]]).status, 202)

        info = self.c.get("/v1/node").json()
        self.assertEqual(info["limits"]["rate_limit"], self.RATE)
        self.assertEqual(info["limits"]["rate_burst"], self.BURST)
        self.assertEqual(info["limits"]["rate_clients_max"], 65536)
        self.assertEqual(info["stats"]["rate_limited"], len(refused) + 1)
        self.assertEqual(info["stats"]["rate_clients"], 3)  # a, b and 127.0.0.1

    def test_batch_items_over_the_limit_are_refused_one_by_one(self):
        a, b = Key.generate(), Key.generate()
        jobs = [echo(a, i) for i in range(8)] + [echo(b, i) for i in range(2)]
        r = self.c.post("/v1/jobs/batch", {"jobs": jobs})
        self.assertEqual(r.status, 200, r)
        out = r.json()
        statuses = [item["status"] for item in out["results"]]
        self.assertEqual(statuses, [202] * 5 + [429] * 3 + [202] * 2, out)
        self.assertEqual((out["accepted"], out["rejected"]), (7, 3))
        for item, job in zip(out["results"][5:8], jobs[5:8]):
            self.assertIn("rate limit", item["detail"])
            self.assertGreaterEqual(item["retry_after"], 1)
            self.assertLessEqual(item["retry_after"], 1 / self.RATE)
            self.assertNotStored(job)
        # A single submission from a is refused too: the batch spent its bucket.
        self.assertRefusedByRate(self.c.post("/v1/jobs", echo(a, 100)))
        self.assertEqual(self.c.get("/v1/node").json()["stats"]["rate_limited"], 4)

    def test_plain_jobs_are_limited_per_address(self):
        first = self.node.client()
        other = Client(self.node.port, source="127.0.0.2")
        self.addCleanup(other.close)
        answers = [first.post("/v1/jobs", {"type": "echo", "payload": {"n": i}})
                   for i in range(self.BURST + 2)]
        self.assertEqual([r.status for r in answers[:self.BURST]], [202] * self.BURST, answers)
        self.assertRefusedByRate(answers[-1])
        self.assertEqual(other.post("/v1/jobs", {"type": "echo", "payload": {}}).status, 202)
        # A signed job from the limited address counts against its key, not the address.
        self.assertEqual(first.post("/v1/jobs", echo(Key.generate(), 0)).status, 202)

    def test_bad_flag_values_stop_the_node(self):
        data = os.path.join(self.tmp, "bad")
        for args in (["--rate-limit", "-1"], ["--rate-limit", "fast"],
                     ["--rate-limit", "1", "--rate-burst", "0"], ["--rate-burst", "5"]):
            r = self.run_cli("node", "--name", "bad", "--data", data, "--api", "127.0.0.1:0",
                             *args, timeout=scaled(30))
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn("rate", r.stderr, args)


class CancelAuth(NodeTestCase):

    def setUp(self):
        super().setUp()
        self.admin = Key.generate()
        admin_file = os.path.join(self.tmp, "admins")
        with open(admin_file, "w") as f:
            f.write("# who may cancel anything\n%s\n" % self.admin.public_b64)
        self.node = self.start_node("canceller", ["--workers", 1, "--admin-keys", admin_file])
        self.c = self.node.client()
        self.owner = Key.generate()
        self.count = 0

    def submit_signed(self, key):
        self.count += 1
        env = signed_job(key, LONG_SLEEP, "cancel-%d" % self.count)
        return self.submit(self.c, env)["id"]

    def cancel(self, job_id, headers=None):
        return self.c.post("/v1/jobs/%s/cancel" % job_id, headers=headers)

    def assertUntouched(self, job_id):
        job = self.get_job(self.c, job_id)
        self.assertIn(job["state"], ("queued", "running"), job)
        self.assertNotIn("cancel_requested", job)

    def assertCancelled(self, r, job_id):
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["id"], job_id)
        self.wait_job(self.c, job_id, "cancelled", timeout=30)

    def test_a_client_signed_job_needs_its_key_or_an_admin_key(self):
        first, second = self.submit_signed(self.owner), self.submit_signed(self.owner)
        stranger = Key.generate()
        self.assertProblem(self.cancel(first), 403, "signed by the job's key or an admin key")
        self.assertProblem(self.cancel(first, stranger.request_headers("cancel", first)), 403,
                           "neither the job's key nor an admin key")
        # The owner's signature, but over another job, another action or another time.
        self.assertProblem(self.cancel(first, self.owner.request_headers("cancel", second)), 401)
        self.assertProblem(self.cancel(first, self.owner.request_headers("retry", first)), 401)
        moved = self.owner.request_headers("cancel", first)
        moved["Meshwork-Time"] = str(int(moved["Meshwork-Time"]) + 1)
        self.assertProblem(self.cancel(first, moved), 401, "does not verify")
        # Stale or from the future: more than 5 minutes from the node's clock.
        now = int(time.time() * 1000)
        for at in (now - 6 * 60_000, now + 6 * 60_000):
            self.assertProblem(self.cancel(first, self.owner.request_headers("cancel", first, at)),
                               401, "sign the request again")
        self.assertUntouched(first)
        self.assertUntouched(second)

        signed = self.owner.request_headers("cancel", first)
        self.assertCancelled(self.cancel(first, signed), first)
        self.assertProblem(self.cancel(first, signed), 401, "used before")  # a replay
        self.assertUntouched(second)
        self.assertCancelled(self.cancel(second, self.admin.request_headers("cancel", second)),
                             second)
        # An admin key cancels a job it never signed; the owner's key is not an admin key.
        third = self.submit_signed(stranger)
        self.assertProblem(self.cancel(third, self.owner.request_headers("cancel", third)), 403)
        self.assertCancelled(self.cancel(third, self.admin.request_headers("cancel", third)), third)

        info = self.c.get("/v1/node").json()
        self.assertTrue(info["limits"]["admin_keys"])
        self.assertEqual(info["limits"]["rate_limit"], 0)
        self.assertEqual(info["stats"]["cancels_refused"], 9)

    def test_a_plain_job_stays_open_to_anyone(self):
        for headers in (None, Key.generate().request_headers):
            job_id = self.submit(self.c, LONG_SLEEP)["id"]
            self.assertCancelled(self.cancel(job_id, headers and headers("cancel", job_id)), job_id)
        self.assertEqual(self.c.get("/v1/node").json()["stats"]["cancels_refused"], 0)

    def test_malformed_headers_are_400_and_change_nothing(self):
        job_id = self.submit_signed(self.owner)
        good = self.owner.request_headers("cancel", job_id)
        cases = [
            ({"Meshwork-Key": good["Meshwork-Key"]}, "all three headers"),
            ({k: v for k, v in good.items() if k != "Meshwork-Time"}, "all three headers"),
            (dict(good, **{"Meshwork-Key": "not base64!"}), "Meshwork-Key"),
            (dict(good, **{"Meshwork-Key": good["Meshwork-Key"][:-4]}), "Meshwork-Key"),
            (dict(good, **{"Meshwork-Key": "A" * 5000}), "Meshwork-Key"),
            (dict(good, **{"Meshwork-Signature": good["Meshwork-Key"]}), "Meshwork-Signature"),
            (dict(good, **{"Meshwork-Signature": "=" * 88}), "Meshwork-Signature"),
            (dict(good, **{"Meshwork-Time": "-1"}), "Meshwork-Time"),
            (dict(good, **{"Meshwork-Time": "1e12"}), "Meshwork-Time"),
            (dict(good, **{"Meshwork-Time": "9" * 21}), "Meshwork-Time"),
            (dict(good, **{"Meshwork-Time": ""}), "Meshwork-Time"),
        ]
        for headers, detail in cases:
            with self.subTest(headers=headers):
                self.assertProblem(self.cancel(job_id, headers), 400, detail)
        self.assertUntouched(job_id)
        # An unknown job with a well-formed signature: 404, not a hint about keys.
        unknown = "0" * 64
        self.assertProblem(self.cancel(unknown, self.owner.request_headers("cancel", unknown)),
                           404)
        self.assertCancelled(self.cancel(job_id, good), job_id)  # none of those used it up

    def test_the_cli_signs_its_cancel_with_key(self):
        key_file = os.path.join(self.tmp, "owner.key")
        self.run_cli("keygen", "--out", key_file, check=0)
        key = Key.load(key_file)
        first, second = self.submit_signed(key), self.submit_signed(key)
        refused = self.run_cli("cancel", first, "--node", self.node.url, check=3)
        self.assertIn("403", refused.stderr)
        self.assertUntouched(first)
        r = self.run_cli("cancel", first, "--key", key_file, "--node", self.node.url, check=0)
        self.assertEqual(json.loads(r.stdout)["id"], first)
        self.wait_job(self.c, first, "cancelled", timeout=30)
        # Another key file is refused; a file that is not a key is a usage error.
        other = os.path.join(self.tmp, "other.key")
        self.run_cli("keygen", "--out", other, check=0)
        self.assertIn("403", self.run_cli("cancel", second, "--key", other,
                                          "--node", self.node.url, check=3).stderr)
        bad = os.path.join(self.tmp, "bad.key")
        with open(bad, "w") as f:
            f.write("nope")
        self.run_cli("cancel", second, "--key", bad, "--node", self.node.url, check=2)
        self.assertUntouched(second)

    @unittest.skipIf(mc is None, "python3-nacl is not installed")
    def test_the_python_client_signs_its_cancel_with_its_key(self):
        key = mc.Key.generate()
        owner, anonymous = mc.Client(self.node.url, key=key), mc.Client(self.node.url)
        self.addCleanup(owner.close)
        self.addCleanup(anonymous.close)
        job_id = owner.submit(LONG_SLEEP)["id"]
        for other in (None, mc.Key.generate()):
            with self.assertRaises(mc.MeshworkError) as e:
                anonymous.cancel(job_id, key=other)
            self.assertEqual(e.exception.status, 403)
        self.assertEqual(owner.cancel(job_id)["id"], job_id)
        self.wait_job(self.c, job_id, "cancelled", timeout=30)
        plain = anonymous.submit(LONG_SLEEP)["id"]
        self.assertEqual(anonymous.cancel(plain, key=key)["id"], plain)


class CancelAcrossTheMesh(NodeTestCase):

    def test_plain_jobs_are_open_except_on_signed_only_nodes(self):
        admin = Key.generate()
        admin_file = os.path.join(self.tmp, "admins")
        with open(admin_file, "w") as f:
            f.write(admin.public_b64 + "\n")
        nodes = []
        for name, extra in (("n1", []), ("n2", []),
                            ("n3", ["--require-signed", "--admin-keys", admin_file])):
            node = MeshNode(self.tmp, name, ["--workers", 1] + extra,
                            join=[nodes[0].gossip] if nodes else [])
            self.addCleanup(node.stop)
            nodes.append(node.start())
        self.nodes = nodes
        clients = [n.client() for n in nodes]

        def members_alive(c):
            r = c.get("/v1/cluster/members")
            return r.status == 200 and sum(m["state"] == "alive" for m in r.json()["members"]) == 3
        self.wait_until("every node to see 3 alive members",
                        lambda: all(members_alive(c) for c in clients), 30)

        # Taken by n1 and signed with n1's key: n2 knows that key from gossip.
        first = self.submit(clients[0], LONG_SLEEP)["id"]
        r = clients[1].post("/v1/jobs/%s/cancel" % first)
        self.assertEqual(r.status, 200, r)
        self.wait_job(clients[1], first, "cancelled", timeout=30)

        second = self.submit(clients[0], LONG_SLEEP)["id"]
        path = "/v1/jobs/%s/cancel" % second
        self.assertProblem(clients[2].post(path), 403)
        self.assertProblem(clients[2].post(path, headers=Key.generate().request_headers(
            "cancel", second)), 403)
        self.assertIn(self.get_job(clients[2], second)["state"], ("queued", "running"))
        r = clients[2].post(path, headers=admin.request_headers("cancel", second))
        self.assertEqual(r.status, 200, r)
        self.wait_job(clients[2], second, "cancelled", timeout=30)
        self.assertFalse(clients[0].get("/v1/node").json()["limits"]["admin_keys"])
        self.assertTrue(clients[2].get("/v1/node").json()["limits"]["admin_keys"])


if __name__ == "__main__":
    unittest.main()
