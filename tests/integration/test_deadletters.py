"""Dead letters, retry and Idempotency-Key with real node processes on 127.0.0.1 (issue 14,
items 3 and 7).

DeadLetters: a job that used up its attempts is listed by GET /v1/jobs?state=failed; POST
/v1/jobs/{id}/retry runs it again with a fresh set of attempts (history "retried", `retries`),
through any node of a mesh; a cancelled job can be retried and its old cancel does not stop the new
attempt; anything else is 409, an unknown job 404; the CLI's `meshwork retry` does the same.
RetryAuth: retrying a job a client signed needs its key or an admin key (403 otherwise).
Idempotency: the same Idempotency-Key and body give the same job (200) — across a restart of the
node too; another body with the key is 422; malformed keys are 400 and store nothing; a signed
envelope is idempotent by itself.
"""

import http.client
import json
import os
import time
import unittest

from harness import Key, NodeTestCase, scaled
from test_limits import signed_job
from test_mesh import Mesh
from test_metrics import parse_exposition, value

# Fails on attempts 1..3, succeeds from attempt 4: with max_attempts 2 the first round fails
# (attempts 1, 2), the retried round fails attempt 3 and succeeds on attempt 4.
FLAKY = {"type": "flaky", "payload": {"fail_times": 3, "ms": 10}, "max_attempts": 2}
LONG_SLEEP = {"type": "sleep", "payload": {"ms": 600_000}, "max_attempts": 1}


def reasons(job):
    return [h["reason"] for h in job["history"]]


class DeadLetters(NodeTestCase):

    def setUp(self):
        super().setUp()
        self.node = self.start_node("dl", ["--workers", 2])
        self.c = self.node.client()

    def retry(self, job_id, headers=None):
        return self.c.post("/v1/jobs/%s/retry" % job_id, headers=headers)

    def test_a_failed_job_is_listed_and_a_retry_runs_it_with_fresh_attempts(self):
        job = self.submit(self.c, FLAKY)
        failed = self.wait_job(self.c, job["id"], "failed", node=self.node)
        self.assertEqual(failed["attempts"], 2, failed)
        self.assertNotIn("retries", failed)
        listed = [j["id"] for j in self.c.get("/v1/jobs?state=failed").json()["jobs"]]
        self.assertIn(job["id"], listed)

        r = self.retry(job["id"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["state"], "queued", r)
        self.assertEqual(r.json()["retries"], 1, r)
        self.assertEqual(reasons(r.json())[-1], "retried", r)
        done = self.wait_job(self.c, job["id"], "succeeded", node=self.node)
        self.assertEqual(done["attempts"], 4, done)  # attempt numbers keep counting
        self.assertEqual(done["result"], {"succeeded_on_attempt": 4, "fail_times": 3}, done)
        self.assertEqual(done["retries"], 1, done)
        self.assertIn("retried", reasons(done))
        listed = [j["id"] for j in self.c.get("/v1/jobs?state=failed").json()["jobs"]]
        self.assertNotIn(job["id"], listed)
        stats = self.c.get("/v1/node").json()["stats"]
        self.assertEqual(stats["retries_requested"], 1, stats)
        samples, _ = parse_exposition(self.c.get("/metrics").body.decode())
        self.assertEqual(value(samples, "meshwork_retries_requested_total"), 1)
        self.assertEqual(value(samples, "meshwork_retries_refused_total"), 0)
        # A succeeded job is not a dead letter.
        self.assertProblem(self.retry(job["id"]), 409, "only a failed or cancelled job")

    def test_a_second_round_that_fails_fails_again_and_can_be_retried_again(self):
        job = self.submit(self.c, dict(FLAKY, payload={"fail_times": 100, "ms": 10}))
        self.wait_job(self.c, job["id"], "failed", node=self.node)
        self.assertEqual(self.retry(job["id"]).status, 200)
        again = self.wait_job(self.c, job["id"], "failed", node=self.node)
        self.assertEqual(again["attempts"], 4, again)  # max_attempts (2) more, no more
        self.assertEqual(again["retries"], 1, again)
        self.assertEqual(self.retry(job["id"]).json()["retries"], 2)

    def test_a_cancelled_job_runs_again_and_its_old_cancel_does_not_stop_it(self):
        job = self.submit(self.c, {"type": "sleep", "payload": {"ms": 60_000}, "max_attempts": 1})
        self.wait_job(self.c, job["id"], "running", node=self.node)
        self.assertEqual(self.c.post("/v1/jobs/%s/cancel" % job["id"]).status, 200)
        self.wait_job(self.c, job["id"], "cancelled", node=self.node)
        r = self.retry(job["id"])
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("cancel_requested", r.json())
        running = self.wait_job(self.c, job["id"], "running", node=self.node)
        time.sleep(scaled(1))  # a stale cancel would have stopped it by now
        now = self.get_job(self.c, job["id"])
        self.assertEqual(now["state"], "running", now)
        self.assertNotIn("cancel_requested", now)
        self.assertEqual(running["attempts"], 2, running)

    def test_anything_but_a_dead_letter_is_409_and_unknown_is_404(self):
        running = self.submit(self.c, LONG_SLEEP)
        self.wait_job(self.c, running["id"], "running", node=self.node)
        self.assertProblem(self.retry(running["id"]), 409, "is running")
        self.assertNotIn("retries", self.get_job(self.c, running["id"]))
        later = self.submit(self.c, {"type": "echo", "payload": {}, "delay_ms": 600_000})
        self.assertProblem(self.retry(later["id"]), 409, "is scheduled")
        self.assertProblem(self.retry("f" * 64), 404)
        self.assertProblem(self.retry("not-a-job"), 404, "not a job id")

    def test_the_cli_retries(self):
        job = self.submit(self.c, FLAKY)
        self.wait_job(self.c, job["id"], "failed", node=self.node)
        r = self.run_cli("retry", job["id"], "--node", self.node.url, timeout=scaled(30))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["retries"], 1, r.stdout)
        self.wait_job(self.c, job["id"], "succeeded", node=self.node)
        r = self.run_cli("retry", job["id"], "--node", self.node.url, timeout=scaled(30))
        self.assertEqual(r.returncode, 3, r.stdout)  # refused (409)


class RetryAuth(NodeTestCase):

    def test_a_client_signed_job_is_retried_only_with_its_key_or_an_admin_key(self):
        admin = Key.generate()
        admin_file = os.path.join(self.tmp, "admins")
        with open(admin_file, "w") as f:
            f.write("%s\n" % admin.public_b64)
        node = self.start_node("ra", ["--admin-keys", admin_file])
        c = node.client()
        owner, stranger = Key.generate(), Key.generate()
        ids = [self.submit(c, signed_job(owner, FLAKY, "ra-%d" % i))["id"] for i in range(2)]
        for job_id in ids:
            self.wait_job(c, job_id, "failed", node=node)
        first, second = ids

        def retry(job_id, headers=None):
            return c.post("/v1/jobs/%s/retry" % job_id, headers=headers)

        self.assertProblem(retry(first), 403, "the job's key or an admin key")
        self.assertProblem(retry(first, stranger.request_headers("retry", first)), 403)
        # A cancel's signature does not retry.
        self.assertProblem(retry(first, owner.request_headers("cancel", first)), 401)
        self.assertEqual(self.get_job(c, first)["state"], "failed")
        self.assertNotIn("retries", self.get_job(c, first))
        self.assertEqual(c.get("/v1/node").json()["stats"]["retries_refused"], 3)
        samples, _ = parse_exposition(c.get("/metrics").body.decode())
        self.assertEqual(value(samples, "meshwork_retries_refused_total"), 3)
        self.assertEqual(value(samples, "meshwork_cancels_refused_total"), 0)
        self.assertEqual(value(samples, "meshwork_retries_requested_total"), 0)

        self.assertEqual(retry(first, owner.request_headers("retry", first)).status, 200)
        self.assertEqual(retry(second, admin.request_headers("retry", second)).status, 200)
        for job_id in ids:
            self.wait_job(c, job_id, "succeeded", node=node)
        r = self.run_cli("retry", first, "--node", node.url, timeout=scaled(30))
        self.assertEqual(r.returncode, 3, r.stdout)  # succeeded now: 409


class RetryAcrossTheMesh(Mesh):

    def test_any_node_retries_a_dead_letter_and_its_owner_runs_it(self):
        nodes = self.start_mesh(3)
        clients = [n.client() for n in nodes]
        job = self.submit(clients[0], FLAKY)
        self.wait_job(clients[0], job["id"], "failed", timeout=60)
        # Through a node chosen to be a different one each time round.
        r = clients[2].post("/v1/jobs/%s/retry" % job["id"])
        self.assertEqual(r.status, 200, r)
        done = self.wait_job(clients[1], job["id"], "succeeded", timeout=60)
        self.assertEqual(done["attempts"], 4, done)
        for c in clients:
            self.assertEqual(self.get_job(c, job["id"])["retries"], 1)


class Idempotency(NodeTestCase):

    def setUp(self):
        super().setUp()
        self.node = self.start_node("idem")
        self.c = self.node.client()

    def post(self, body, key):
        return self.c.post("/v1/jobs", body, headers={"Idempotency-Key": key})

    def count(self):
        return len(self.c.get("/v1/jobs?limit=1000").json()["jobs"])

    def test_the_same_key_and_body_return_the_same_job(self):
        body = {"type": "echo", "payload": {"order": 17}}
        first = self.post(body, "order-17")
        self.assertEqual(first.status, 202, first)
        again = self.post(body, "order-17")
        self.assertEqual(again.status, 200, again)
        self.assertEqual(again.json()["id"], first.json()["id"])
        quoted = self.post(body, '"order-17"')  # the draft standard's quoted form
        self.assertEqual(quoted.json()["id"], first.json()["id"])
        other = self.post(body, "order-18")
        self.assertEqual(other.status, 202, other)
        self.assertNotEqual(other.json()["id"], first.json()["id"])
        self.assertEqual(self.count(), 2)
        # Without the header the same body is a new job each time, as before.
        self.assertEqual(self.c.post("/v1/jobs", body).status, 202)
        self.assertEqual(self.count(), 3)
        # The node remembers the key across a restart.
        self.node.kill9()  # the entry was synced before the job was submitted
        self.node.restart()
        self.c = self.node.client()
        again = self.post(body, "order-17")
        self.assertEqual(again.status, 200, again)
        self.assertEqual(again.json()["id"], first.json()["id"])
        self.assertEqual(self.count(), 3)

    def test_the_key_with_another_body_is_422_and_stores_nothing(self):
        self.assertEqual(self.post({"type": "echo", "payload": {"a": 1}}, "k1").status, 202)
        self.assertProblem(self.post({"type": "echo", "payload": {"a": 2}}, "k1"), 422,
                           "different body")
        self.assertEqual(self.count(), 1)
        # A body the node refuses leaves no entry: the key is still free for a good body.
        self.assertProblem(self.post({"type": "no-such-type", "payload": {}}, "k2"), 422)
        self.assertEqual(self.post({"type": "echo", "payload": {"a": 3}}, "k2").status, 202)
        self.assertEqual(self.count(), 2)

    def test_malformed_keys_are_400_and_store_nothing(self):
        body = {"type": "echo", "payload": {}}
        # (An empty value cannot be tested: cpp-httplib drops a header with no value, so the node
        # sees no key at all.)
        for key in ("a b", "x" * 256, "caf\u00e9", 'a"b', '""'):
            self.assertProblem(self.post(body, key), 400, "Idempotency-Key")
        # The header twice: http.client's putheader sends each one.
        conn = http.client.HTTPConnection("127.0.0.1", self.node.port, timeout=scaled(30))
        data = json.dumps(body).encode()
        conn.putrequest("POST", "/v1/jobs")
        for key in ("a", "b"):
            conn.putheader("Idempotency-Key", key)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        r = conn.getresponse()
        problem = json.loads(r.read())
        conn.close()
        self.assertEqual(r.status, 400, problem)
        self.assertIn("once", problem["detail"])
        self.assertEqual(self.count(), 0)

    def test_a_key_is_remembered_for_the_retention_window_only(self):
        node = self.start_node("idem-short", ["--retain-s", 2])
        c = node.client()
        body = {"type": "echo", "payload": {"short": True}}
        first = c.post("/v1/jobs", body, headers={"Idempotency-Key": "w"})
        self.assertEqual(first.status, 202, first)
        again = c.post("/v1/jobs", body, headers={"Idempotency-Key": "w"})
        self.assertEqual((again.status, again.json()["id"]), (200, first.json()["id"]))
        time.sleep(2.5)  # past the window, by the node's clock (the key's time is when it was used)
        later = c.post("/v1/jobs", body, headers={"Idempotency-Key": "w"})
        self.assertEqual(later.status, 202, later)
        self.assertNotEqual(later.json()["id"], first.json()["id"])

    def test_a_signed_envelope_is_idempotent_by_itself(self):
        env = signed_job(Key.generate(), {"type": "echo", "payload": {}}, "idem-signed")
        self.assertEqual(self.post(env, "s").status, 202)
        self.assertEqual(self.post(env, "t").status, 200)  # the same envelope, whatever the key
        self.assertEqual(self.count(), 1)


if __name__ == "__main__":
    unittest.main()
