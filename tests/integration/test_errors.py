"""Every error the API documents, observed against a real node: each is an RFC 9457
application/problem+json document with status, title and detail, and a rejected request stores
nothing (the node's job counts, its submitted counter and its listing are unchanged)."""

import http.client
import json
import os
import time
import unittest

from harness import Key, NodeTestCase, scaled

MIB = 1024 * 1024


def padded_echo(total_bytes):
    """A valid plain echo job whose JSON text is exactly `total_bytes` long."""
    head, tail = '{"type":"echo","payload":{"pad":"', '"}}'
    return head + "x" * (total_bytes - len(head) - len(tail)) + tail


class ErrorTestCase(NodeTestCase):
    def snapshot(self, client):
        info = client.get("/v1/node").json()
        listed = client.get("/v1/jobs?limit=1000").json()["jobs"]
        return info["jobs"], info["stats"]["submitted"], sorted(j["id"] for j in listed)

    def assertRejected(self, client, method, path, body, status, detail_has=None, headers=None):
        """The request gets `status` as problem+json and leaves the store as it was."""
        before = self.snapshot(client)
        r = client.request(method, path, body=body, headers=headers)
        problem = self.assertProblem(r, status, detail_has)
        self.assertEqual(self.snapshot(client), before, "a rejected request changed the store")
        return r, problem


class Errors(ErrorTestCase):
    """One default node serves most cases."""

    def setUp(self):
        super().setUp()
        self.node = self.start_node("err")
        self.c = self.node.client()
        # One job already there, so "nothing changed" is checked against a non-empty store.
        self.done = self.run_job(self.c, {"type": "echo", "payload": {"seed": True}})

    def post(self, body, status, detail_has=None, headers=None):
        return self.assertRejected(self.c, "POST", "/v1/jobs", body, status, detail_has, headers)

    def test_400_malformed_json(self):
        for body in ['{"type": "echo", "payload": ', "{not json}", "", "nul", '{"a":1}}',
                     b'{"type":"echo","payload":"\xff\xfe"}',          # invalid UTF-8
                     '{"type":"echo","payload":"\\ud800"}']:           # lone surrogate
            with self.subTest(body=body):
                self.post(body, 400)

    def test_400_body_not_an_object(self):
        for body in ["[]", '[{"type":"echo"}]', "42", '"echo"', "null", "true"]:
            with self.subTest(body=body):
                self.post(body, 400, "object")

    def test_400_nesting_100_deep(self):
        self.post('{"a":' * 100 + "1" + "}" * 100, 400, "nested")
        self.post('{"type":"echo","payload":' + "[" * 100 + "]" * 100 + "}", 400, "nested")
        self.post('{"type":"echo","payload":' + "[" * 200_000 + "]" * 200_000 + "}", 400)
        # Brackets inside strings are not nesting: this one is a valid job.
        ok = self.c.post("/v1/jobs", {"type": "echo", "payload": {"s": "[" * 1000}})
        self.assertEqual(ok.status, 202, ok)

    def test_401_tampered_envelope(self):
        key_file = os.path.join(self.tmp, "k")
        self.run_cli("keygen", "--out", key_file, check=0)
        env = json.loads(self.run_cli("sign", "--key", key_file, "--type", "echo", "--payload",
                                      '{"amount": 1}', check=0).stdout)
        tampered = dict(env, job=env["job"].replace('"amount":1', '"amount":9'))
        self.assertNotEqual(tampered["job"], env["job"])
        self.post(tampered, 401, "signature")
        other = Key.generate()
        self.post(dict(env, public_key=other.public_b64), 401)        # someone else's key
        self.post(dict(env, signature="AAAA"), 401)                    # wrong length
        self.post(dict(env, signature="not base64!"), 401)
        self.post(dict(env, public_key="c2hvcnQ="), 401)               # 5 bytes
        # The untouched envelope is accepted: the rejections above were about the signature.
        self.assertEqual(self.c.post("/v1/jobs", env).status, 202)

    def test_404_unknown_job_and_route(self):
        unknown = "0" * 64
        self.assertRejected(self.c, "GET", "/v1/jobs/" + unknown, None, 404)
        self.assertRejected(self.c, "POST", "/v1/jobs/%s/cancel" % unknown, None, 404)
        self.assertRejected(self.c, "GET", "/v1/jobs/not-a-job-id", None, 404)
        self.assertRejected(self.c, "GET", "/v1/jobs/" + "A" * 64, None, 404)
        self.assertRejected(self.c, "GET", "/v1/nothing-here", None, 404)
        self.assertRejected(self.c, "GET", "/v2/jobs", None, 404)
        self.assertRejected(self.c, "POST", "/v1/jobs/%s/extra" % self.done["id"], "{}", 404)

    def test_409_cancel_finished_job(self):
        before = self.get_job(self.c, self.done["id"])
        self.assertRejected(self.c, "POST", "/v1/jobs/%s/cancel" % self.done["id"], None, 409)
        self.assertEqual(self.get_job(self.c, self.done["id"]), before)

    def test_413_default_body_limit_is_1_mib(self):
        self.post(padded_echo(MIB + 1), 413)
        # Chunked bodies are held to the same limit.
        conn = http.client.HTTPConnection("127.0.0.1", self.node.port, timeout=scaled(60))
        self.addCleanup(conn.close)
        chunks = (b"x" * 65536 for _ in range(20))
        before = self.snapshot(self.c)
        conn.request("POST", "/v1/jobs", body=chunks, encode_chunked=True,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        self.assertEqual(r.status, 413)
        self.assertEqual(r.getheader("Content-Type"), "application/problem+json")
        r.read()
        self.assertEqual(self.snapshot(self.c), before)

    def test_413_default_payload_limit_is_256_kib(self):
        self.post(padded_echo(256 * 1024 + 200), 413, "payload")
        ok = self.c.post("/v1/jobs", padded_echo(200 * 1024))
        self.assertEqual(ok.status, 202, ok)

    def test_413_signed_job_text_too_large(self):
        key = Key.generate()
        env = key.envelope("x" * 0)
        env["job"] = json.dumps({"type": "echo", "payload": {"pad": "x" * (310 * 1024)},
                                 "nonce": "n", "created_at": 1})
        self.post(env, 413)

    def test_422_invalid_fields(self):
        cases = [
            ({"type": "nope", "payload": {}}, "type"),
            ({"payload": {}}, "type"),
            ({"type": 42, "payload": {}}, "type"),
            ({"type": "sleep", "payload": {"ms": -1}}, "ms"),
            ({"type": "sleep", "payload": {"ms": "10"}}, "ms"),
            ({"type": "sleep", "payload": {"ms": 1.5}}, "ms"),
            ({"type": "sleep", "payload": {"ms": 3_600_001}}, "ms"),
            ({"type": "sleep", "payload": {}}, "ms"),
            ({"type": "sleep", "payload": {"ms": 1, "extra": 1}}, "extra"),
            ({"type": "flaky", "payload": {"fail_times": 101}}, "fail_times"),
            ({"type": "pow", "payload": {"data": "x", "difficulty_bits": 33}}, "difficulty_bits"),
            ({"type": "pow", "payload": {"data": 7, "difficulty_bits": 1}}, "data"),
            ({"type": "tx-verify", "payload": {"generate": {"accounts": 1, "txs": 1,
                                                            "seed": 1}}}, "accounts"),
            ({"type": "enrich", "payload": {"records": {}}}, "records"),
            ({"type": "echo", "payload": {}, "max_attempts": 0}, "max_attempts"),
            ({"type": "echo", "payload": {}, "max_attempts": 21}, "max_attempts"),
            ({"type": "echo", "payload": {}, "max_attempts": -3}, "max_attempts"),
            ({"type": "echo", "payload": {}, "timeout_ms": 0}, "timeout_ms"),
            ({"type": "echo", "payload": {}, "timeout_ms": "soon"}, "timeout_ms"),
            ({"type": "echo", "payload": {}, "colour": "blue"}, "colour"),
            ({"type": "echo", "payload": {}, "nonce": 5}, "nonce"),
            ({"type": "echo", "payload": {}, "nonce": "n" * 129}, "nonce"),
            ({"job": 1, "public_key": "x", "signature": "y"}, "job"),
        ]
        for body, detail in cases:
            with self.subTest(body=json.dumps(body)[:80]):
                self.post(body, 422, detail)

    def test_422_signed_job_without_nonce(self):
        key = Key.generate()
        env = key.envelope(json.dumps({"type": "echo", "payload": {}}))
        self.post(env, 422, "nonce")
        env = key.envelope(json.dumps({"type": "nope", "payload": {}, "nonce": "a",
                                       "created_at": 1}))
        self.post(env, 422, "type")
        # Validly signed text that is not JSON is malformed.
        self.post(key.envelope("{not json"), 400)

    def test_422_bad_list_query(self):
        for query in ("state=bogus", "state=retry_wait", "state=", "limit=0", "limit=1001",
                      "limit=abc", "limit=-1", "limit=1e3", "cursor=" + "c" * 200):
            with self.subTest(query=query):
                self.assertRejected(self.c, "GET", "/v1/jobs?" + query, None, 422)


class LimitFlags(ErrorTestCase):
    def test_413_body_over_body_max(self):
        node = self.start_node("small", ["--body-max", 2048])
        c = node.client()
        self.assertRejected(c, "POST", "/v1/jobs", padded_echo(2049), 413)
        self.assertRejected(c, "POST", "/v1/jobs", padded_echo(100_000), 413)
        ok = c.post("/v1/jobs", padded_echo(2048))
        self.assertEqual(ok.status, 202, ok)

    def test_413_payload_over_payload_max(self):
        node = self.start_node("tight", ["--payload-max", 1000])
        c = node.client()
        body = {"type": "echo", "payload": {"pad": "y" * 1100}}
        self.assertRejected(c, "POST", "/v1/jobs", body, 413, "payload")
        key = Key.generate()
        env = key.envelope(json.dumps(dict(body, nonce="a", created_at=1)))
        self.assertRejected(c, "POST", "/v1/jobs", env, 413, "payload")
        ok = c.post("/v1/jobs", {"type": "echo", "payload": {"pad": "y" * 900}})
        self.assertEqual(ok.status, 202, ok)


class Auth(ErrorTestCase):
    def keygen(self, name):
        path = os.path.join(self.tmp, name)
        public = self.run_cli("keygen", "--out", path, check=0).stdout.strip()
        return path, public

    def sign(self, key_file, payload='{"k": 1}'):
        return json.loads(self.run_cli("sign", "--key", key_file, "--type", "echo", "--payload",
                                       payload, check=0).stdout)

    def test_401_plain_job_on_require_signed_node(self):
        node = self.start_node("strict", ["--require-signed"])
        c = node.client()
        self.assertRejected(c, "POST", "/v1/jobs", {"type": "echo", "payload": {}}, 401)
        key_file, public = self.keygen("client")
        r = c.post("/v1/jobs", self.sign(key_file))
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json()["submitted_by"], public)

    def test_403_key_not_allowed(self):
        allowed_file, allowed_pub = self.keygen("allowed")
        stranger_file, _ = self.keygen("stranger")
        keys = os.path.join(self.tmp, "allowed-keys")
        with open(keys, "w") as f:
            f.write("# clients allowed to submit\n\n%s  # ops\n" % allowed_pub)
        node = self.start_node("guarded", ["--allowed-keys", keys])
        c = node.client()
        self.assertRejected(c, "POST", "/v1/jobs", self.sign(stranger_file), 403)
        self.assertRejected(c, "POST", "/v1/jobs", {"type": "echo", "payload": {}}, 401)
        # A stranger's envelope with a bad signature is a 401, whoever signed it.
        env = self.sign(stranger_file)
        env["job"] = env["job"].replace('"k":1', '"k":2')
        self.assertRejected(c, "POST", "/v1/jobs", env, 401)
        r = c.post("/v1/jobs", self.sign(allowed_file))
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json()["submitted_by"], allowed_pub)
        self.assertTrue(c.get("/v1/node").json()["limits"]["allowed_keys"])


class Overload(ErrorTestCase):
    def test_429_when_the_backlog_is_full_and_503_not_ready(self):
        node = self.start_node("busy", ["--workers", 1, "--backlog-max", 2])
        c = node.client()
        blocker = self.submit(c, {"type": "sleep", "payload": {"ms": 300_000}})["id"]
        self.wait_job(c, blocker, "running")
        self.assertEqual(c.get("/readyz").status, 200)
        accepted = []
        for i in range(200):  # queue until the node pushes back (the limit is 2 queued jobs)
            r = c.post("/v1/jobs", {"type": "echo", "payload": {"i": i}})
            if r.status != 202:
                break
            accepted.append(r.json()["id"])
        self.assertProblem(r, 429)
        # --backlog-max counts jobs waiting for a worker: exactly 2 fit behind the running one.
        self.assertEqual(len(accepted), 2, "jobs acknowledged with the worker busy")
        r, _ = self.assertRejected(c, "POST", "/v1/jobs", {"type": "echo", "payload": {}}, 429)
        self.assertTrue(r.headers.get("Retry-After"), r.headers)
        ready = c.get("/readyz")
        self.assertProblem(ready, 503)
        self.assertTrue(ready.headers.get("Retry-After"))
        # Everything acknowledged is still there and queued.
        for job_id in accepted:
            self.assertEqual(self.get_job(c, job_id)["state"], "queued")

        # Free the worker: the backlog drains, the node is ready again and accepts work.
        self.assertEqual(c.post("/v1/jobs/%s/cancel" % blocker).status, 200)
        for job_id in accepted:
            self.wait_job(c, job_id, "succeeded")
        deadline = time.monotonic() + scaled(30)
        while c.get("/readyz").status != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(c.get("/readyz").status, 200)
        self.run_job(c, {"type": "echo", "payload": {"after": True}})


if __name__ == "__main__":
    unittest.main()
