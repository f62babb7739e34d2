"""The public REST API v1 against a real node: submit, read, receipts, every job type, idempotent
submission, listing with filters and cursors, cancel, node info, health."""

import base64
import datetime
import hashlib
import json
import os
import re
import time
import unittest

from harness import (Key, NodeTestCase, blake2b_hex, canonical_json, ed25519_verify,
                     job_id_of)

HEX64 = re.compile(r"^[0-9a-f]{64}$")
JOB_TYPES = {"echo", "sleep", "flaky", "pow", "tx-verify", "enrich"}


class SubmitAndRead(NodeTestCase):
    def setUp(self):
        super().setUp()
        self.node = self.start_node("api1")
        self.c = self.node.client()
        self.info = self.c.get("/v1/node").json()

    def test_plain_job_is_accepted_run_and_receipted(self):
        payload = {"msg": "hello", "n": [1, 2, 3], "nested": {"b": True, "a": None}, "u": "é✓"}
        r = self.c.post("/v1/jobs", {"type": "echo", "payload": payload})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.content_type, "application/json")
        body = r.json()
        self.assertRegex(body["id"], HEX64)
        self.assertEqual(r.headers.get("Location"), "/v1/jobs/" + body["id"])
        self.assertIn(body["state"], ("queued", "running", "succeeded"))
        self.assertEqual(body["type"], "echo")
        self.assertEqual(body["payload"], payload)
        self.assertEqual(body["max_attempts"], 3)
        # A plain job is signed by the entry node.
        self.assertEqual(body["submitted_by"], self.info["public_key"])

        job = self.wait_job(self.c, body["id"], "succeeded")
        self.assertEqual(job["result"], {"echo": payload})
        self.assertEqual(job["attempts"], 1)
        self.assertIsNone(job["error"])
        self.assertReceipt(job, "api1", self.info["public_key"])
        # The receipt hashes the node's canonical text of the result, byte for byte.
        self.assertEqual(job["receipt"]["result_hash"],
                         hashlib.blake2b(canonical_json({"echo": payload}).encode(),
                                         digest_size=32).hexdigest())
        self.assertEqual([h["state"] for h in job["history"]], ["queued", "running", "succeeded"])
        for h in job["history"]:
            self.assertEqual(set(h), {"state", "node", "attempt", "at", "reason"}, h)
            self.assertEqual(h["node"], "api1")
        self.assertEqual(job["results"]["api1"]["outcome"], "succeeded")
        self.assertEqual(job["results"]["api1"]["receipt"], job["receipt"])

    def test_receipt_check_detects_tampering(self):
        # The receipt checks above would be worthless if they passed for any receipt.
        job = self.run_job(self.c, {"type": "echo", "payload": {"x": 1}})
        self.assertReceipt(job, "api1", self.info["public_key"])
        forged = dict(job, result={"echo": {"x": 2}})
        with self.assertRaises(AssertionError):
            self.assertReceipt(forged, "api1", self.info["public_key"])
        receipt = dict(job["receipt"], attempt=2)
        with self.assertRaises(AssertionError):
            self.assertReceipt(dict(job, attempts=2, receipt=receipt), "api1",
                               self.info["public_key"])
        # A batched receipt: a wrong index, root or proof breaks the path to the signed root.
        rc = job["receipt"]
        sibling = ["00" * 32]
        for bad in (dict(rc, index=rc["index"] ^ 1), dict(rc, root="00" * 32),
                    dict(rc, proof=sibling + rc["proof"][1:]), dict(rc, proof=sibling * 40)):
            with self.assertRaises(AssertionError):
                self.assertReceipt(dict(job, receipt=bad), "api1", self.info["public_key"])

    def test_signed_envelope_twice_gives_the_same_job(self):
        key_file = os.path.join(self.tmp, "client.key")
        printed = self.run_cli("keygen", "--out", key_file, check=0).stdout.strip()
        out = self.run_cli("sign", "--key", key_file, "--type", "echo", "--payload",
                           '{"order": 17}', check=0).stdout
        envelope = json.loads(out)
        self.assertEqual(envelope["public_key"], printed)
        # The CLI's signature is a real Ed25519 signature over the exact job bytes.
        self.assertTrue(ed25519_verify(base64.b64decode(printed), envelope["job"].encode(),
                                       base64.b64decode(envelope["signature"])))
        before = self.c.get("/v1/node").json()

        first = self.c.post("/v1/jobs", envelope)
        self.assertEqual(first.status, 202, first)
        job_id = first.json()["id"]
        self.assertEqual(job_id, job_id_of(envelope))
        self.assertEqual(first.json()["submitted_by"], printed)
        second = self.c.post("/v1/jobs", envelope)
        self.assertEqual(second.status, 200, second)
        self.assertEqual(second.json()["id"], job_id)
        self.assertEqual(second.headers.get("Location"), "/v1/jobs/" + job_id)

        job = self.wait_job(self.c, job_id, "succeeded")
        self.assertEqual(job["result"], {"echo": {"order": 17}})
        third = self.c.post("/v1/jobs", envelope)
        self.assertEqual(third.status, 200, third)
        self.assertEqual(third.json()["state"], "succeeded")  # the existing job, as it is now
        after = self.c.get("/v1/node").json()
        self.assertEqual(after["stats"]["submitted"] - before["stats"]["submitted"], 1)
        self.assertEqual(after["stats"]["duplicates"] - before["stats"]["duplicates"], 2)
        self.assertEqual(sum(after["jobs"].values()) - sum(before["jobs"].values()), 1)

    def test_range_header_never_truncates_a_success(self):
        # Range is defined for GET only (RFC 9110 14.2): a POST must ignore it, and a GET either
        # ignores it (200, whole document) or answers 206 with Content-Range. A 200 or 202 with a
        # cut-off JSON body is wrong; cpp-httplib applies ranges to every response by default.
        full = self.c.get("/v1/node")
        self.assertEqual(full.status, 200)
        r = self.c.get("/v1/node", headers={"Range": "bytes=0-5"})
        if r.status == 206:
            self.assertTrue(r.headers.get("Content-Range", "").startswith("bytes 0-5/"), r.headers)
            self.assertEqual(len(r.body), 6)
        else:
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body[:6], full.body[:6])
            self.assertGreater(len(r.body), 6, "200 with only the requested 6 bytes: %r" % r)
        r = self.c.post("/v1/jobs", {"type": "echo", "payload": {"r": 1}},
                        headers={"Range": "bytes=0-5"})
        self.assertEqual(r.status, 202, r)
        self.assertIsNone(r.headers.get("Content-Range"), r.headers)
        self.assertTrue(r.body.endswith(b"}"), "202 with a cut-off body: %r" % r)
        self.assertEqual(r.json()["payload"], {"r": 1}, r)

    def test_node_info_health_and_readiness(self):
        info = self.info
        self.assertEqual(info["name"], "api1")
        self.assertEqual(info["api"], "127.0.0.1:%d" % self.node.port)
        self.assertEqual(len(base64.b64decode(info["public_key"], validate=True)), 32)
        self.assertGreaterEqual(info["workers"], 1)
        self.assertEqual({t["type"] for t in info["job_types"]}, JOB_TYPES)
        self.assertEqual(info["limits"]["body_bytes_max"], 1024 * 1024)
        self.assertEqual(info["limits"]["payload_bytes_max"], 256 * 1024)
        self.assertFalse(info["limits"]["require_signed"])
        for state in ("queued", "running", "succeeded", "failed", "cancelled"):
            self.assertIn(state, info["jobs"])
        self.assertEqual(info["store"]["corrupt_records"], 0)

        self.run_job(self.c, {"type": "echo", "payload": {}})
        later = self.c.get("/v1/node").json()
        self.assertEqual(later["jobs"]["succeeded"], info["jobs"]["succeeded"] + 1)
        self.assertEqual(later["stats"]["submitted"], info["stats"]["submitted"] + 1)

        r = self.c.get("/healthz")
        self.assertEqual((r.status, r.json()), (200, {"status": "ok"}))
        r = self.c.get("/readyz")
        self.assertEqual((r.status, r.json()), (200, {"status": "ready"}))

    def test_node_info_reflects_flags(self):
        other = self.start_node("api2", ["--workers", 3, "--body-max", 4096, "--payload-max", 1000,
                                         "--backlog-max", 7, "--require-signed",
                                         "--rate-limit", 2.5, "--rate-burst", 4,
                                         "--reap-after-s", 600, "--retain-s", 3600,
                                         "--tombstone-s", 7200])
        info = other.client().get("/v1/node").json()
        self.assertEqual(info["name"], "api2")
        self.assertEqual(info["workers"], 3)
        self.assertEqual(info["limits"], {"body_bytes_max": 4096, "payload_bytes_max": 1000,
                                          "backlog_max": 7, "require_signed": True,
                                          "allowed_keys": False, "admin_keys": False,
                                          "rate_limit": 2.5, "rate_burst": 4,
                                          "rate_clients_max": 65536, "reap_after_s": 600,
                                          "retain_s": 3600, "tombstone_s": 7200})
        defaults = self.c.get("/v1/node").json()["limits"]
        self.assertEqual((defaults["rate_limit"], defaults["rate_burst"]), (0, 0))
        self.assertEqual(defaults["reap_after_s"], 86400)
        self.assertEqual((defaults["retain_s"], defaults["tombstone_s"]), (7 * 86400, 10 * 86400))
        self.assertNotEqual(info["public_key"], self.info["public_key"])


class JobTypes(NodeTestCase):
    """Every job type once, reaching its documented state with a result we check independently."""

    def setUp(self):
        super().setUp()
        self.node = self.start_node("types", ["--workers", 2])
        self.c = self.node.client()
        self.key = self.c.get("/v1/node").json()["public_key"]

    def finished(self, spec, until="succeeded"):
        job = self.run_job(self.c, spec, until)
        self.assertReceipt(job, "types", self.key)
        return job

    def test_sleep(self):
        job = self.finished({"type": "sleep", "payload": {"ms": 200}})
        self.assertEqual(job["result"], {"slept_ms": 200})
        self.assertEqual(job["attempts"], 1)

    def test_flaky_succeeds_on_its_third_attempt(self):
        job = self.finished({"type": "flaky", "payload": {"fail_times": 2}, "max_attempts": 3})
        self.assertEqual(job["attempts"], 3)
        self.assertEqual(job["result"], {"succeeded_on_attempt": 3, "fail_times": 2})
        self.assertEqual(job["receipt"]["attempt"], 3)
        reasons = [h["reason"] for h in job["history"]]
        for n in (1, 2):
            self.assertTrue(any("deliberate failure on attempt %d" % n in r for r in reasons),
                            reasons)
        self.assertEqual([h["attempt"] for h in job["history"] if h["state"] == "running"],
                         [1, 2, 3])

    def test_flaky_fails_after_its_last_attempt(self):
        job = self.finished({"type": "flaky", "payload": {"fail_times": 5}, "max_attempts": 2},
                            "failed")
        self.assertEqual(job["attempts"], 2)
        self.assertIsNone(job["result"])
        self.assertIn("attempt 2", job["error"])
        self.assertEqual(job["results"]["types"]["outcome"], "failed")

    def test_pow_finds_the_smallest_nonce(self):
        data, bits = "meshwork integration", 12
        job = self.finished({"type": "pow", "payload": {"data": data, "difficulty_bits": bits}})
        res = job["result"]

        def digest(n):
            return hashlib.blake2b(data.encode() + n.to_bytes(8, "little"), digest_size=32).digest()

        def zeros(h):
            return 256 - int.from_bytes(h, "big").bit_length()

        nonce = res["nonce"]
        self.assertEqual(res["hash"], digest(nonce).hex())
        self.assertGreaterEqual(zeros(digest(nonce)), bits)
        self.assertTrue(all(zeros(digest(n)) < bits for n in range(nonce)), "not the smallest")
        self.assertEqual(res["hashes"], nonce + 1)
        self.assertEqual(res["difficulty_bits"], bits)

    def test_tx_verify_generated_batch(self):
        payload = {"generate": {"accounts": 6, "txs": 80, "seed": 7, "invalid_ratio": 0.25}}
        res = self.finished({"type": "tx-verify", "payload": payload})["result"]
        self.assertEqual(res["valid"] + res["invalid"], 80)
        self.assertGreater(res["invalid"], 0)
        self.assertGreater(res["valid"], 0)
        self.assertEqual(res["invalid"], res["generated"]["bad_planned"])
        self.assertEqual(sum(res["reasons"].values()), res["invalid"])
        self.assertEqual(len(res["verdicts"]), 80)
        self.assertEqual(sum(1 for v in res["verdicts"] if v["ok"]), res["valid"])
        self.assertEqual(res["accounts"], 6)
        # Transfers move money, they never create or destroy it.
        self.assertEqual(sum(res["balances"].values()), 6 * 1_000_000)
        self.assertRegex(res["merkle_root"], HEX64)
        # Deterministic: the same batch in another job gives the same verdicts and root.
        again = self.finished({"type": "tx-verify", "payload": payload})["result"]
        self.assertEqual(again, res)

    def test_tx_verify_explicit_batch_matches_an_independent_check(self):
        alice, bob, carol = Key.generate(), Key.generate(), Key.generate()

        def tx(sender, to, amount, nonce, corrupt=False):
            text = "meshwork-tx-v1|%s|%s|%d|%d" % (sender.public_b64, to.public_b64, amount, nonce)
            sig = bytearray(base64.b64decode(sender.envelope(text)["signature"]))
            if corrupt:
                sig[0] ^= 1
            return ({"from": sender.public_b64, "to": to.public_b64, "amount": amount,
                     "nonce": nonce, "signature": base64.b64encode(bytes(sig)).decode()},
                    blake2b_hex(text.encode() + bytes(sig)))

        txs = [tx(alice, bob, 30, 0),                 # valid
               tx(alice, bob, 10, 0),                 # replayed_nonce
               tx(alice, bob, 10, 1, corrupt=True),   # bad_signature
               tx(alice, bob, 1000, 1),               # overdraft
               tx(bob, alice, 5, 0),                  # valid
               tx(carol, alice, 1, 0),                # unknown_sender
               tx(alice, bob, 5, 3)]                  # nonce_gap
        payload = {"accounts": {alice.public_b64: 100, bob.public_b64: 0},
                   "txs": [t for t, _ in txs]}
        res = self.finished({"type": "tx-verify", "payload": payload})["result"]
        expected = [None, "replayed_nonce", "bad_signature", "overdraft", None, "unknown_sender",
                    "nonce_gap"]
        self.assertEqual([v.get("reason") for v in res["verdicts"]], expected)
        self.assertEqual([v["ok"] for v in res["verdicts"]], [r is None for r in expected])
        self.assertEqual(res["valid"], 2)
        self.assertEqual(res["invalid"], 5)
        self.assertEqual(res["balances"], {alice.public_b64: 75, bob.public_b64: 25})
        leaves = [bytes.fromhex(txs[0][1]), bytes.fromhex(txs[4][1])]
        self.assertEqual(res["merkle_root"], blake2b_hex(leaves[0] + leaves[1]))

    def test_enrich(self):
        epoch = int(datetime.datetime(2024, 5, 1, 12, 34, 56,
                                      tzinfo=datetime.timezone.utc).timestamp())
        iphone = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
                  "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")
        records = [
            {"ts": "2024-05-01T12:34:56Z", "ip": "10.1.2.3", "ua": "curl/8.5.0",
             "url": "https://cdn.example.com/img/logo.png?v=2", "status": 200, "bytes": 1234},
            {"ts": epoch + 3600, "ip": "2001:db8::1", "ua": iphone, "url": "/api/v1/items",
             "status": 404},
            {"ts": "yesterday", "ip": "1.2.3.4", "url": "/", "status": 200},
        ]
        res = self.finished({"type": "enrich", "payload": {"records": records}})["result"]
        first, second, bad = res["records"]
        self.assertEqual((first["ip_version"], first["ip_class"]), (4, "private"))
        self.assertEqual((first["ua_family"], first["device_class"]), ("curl", "cli"))
        self.assertEqual((first["url_host"], first["url_ext"], first["content_class"]),
                         ("cdn.example.com", "png", "image"))
        self.assertEqual(first["url_query_params"], 1)
        self.assertEqual(first["status_class"], "2xx")
        self.assertEqual((first["ts_utc"], first["hour_bucket"]),
                         ("2024-05-01T12:34:56Z", "2024-05-01T12:00:00Z"))
        self.assertEqual((second["ip_version"], second["ip_class"]), (6, "documentation"))
        self.assertEqual((second["ua_family"], second["device_class"], second["os"]),
                         ("safari", "mobile", "ios"))
        self.assertEqual((second["content_class"], second["status_class"]), ("api", "4xx"))
        self.assertEqual(second["hour_bucket"], "2024-05-01T13:00:00Z")
        self.assertEqual(set(bad), {"error"})
        self.assertIn("ts", bad["error"])
        s = res["summary"]
        self.assertEqual((s["records"], s["valid"], s["invalid"]), (3, 2, 1))
        self.assertEqual(s["bytes_total"], 1234)
        self.assertEqual(s["by_ip_class"], {"private": 1, "documentation": 1})
        self.assertEqual(s["by_status_class"], {"2xx": 1, "4xx": 1})
        self.assertEqual(s["time_range"], {"first": "2024-05-01T12:34:56Z",
                                           "last": "2024-05-01T13:34:56Z"})


class Listing(NodeTestCase):
    def setUp(self):
        super().setUp()
        self.node = self.start_node("lister", ["--workers", 2])
        self.c = self.node.client()

    def pages(self, query, limit):
        """Follows next_cursor to the end; returns the pages (lists of summaries)."""
        pages, cursor = [], None
        for _ in range(100):
            path = "/v1/jobs?limit=%d%s%s" % (limit, "&" + query if query else "",
                                              "&cursor=" + cursor if cursor else "")
            r = self.c.get(path)
            self.assertEqual(r.status, 200, r)
            body = r.json()
            pages.append(body["jobs"])
            self.assertLessEqual(len(body["jobs"]), limit)
            cursor = body["next_cursor"]
            if cursor is None:
                return pages
            self.assertIsInstance(cursor, str)
        self.fail("listing did not end")

    def test_paging_filters_and_order(self):
        echo_ids = []
        for i in range(30):
            echo_ids.append(self.submit(self.c, {"type": "echo", "payload": {"i": i}})["id"])
            time.sleep(0.003)  # distinct created_at milliseconds, so "newest first" is exact
        failed_ids = [self.submit(self.c, {"type": "flaky", "payload": {"fail_times": 1},
                                           "max_attempts": 1})["id"] for _ in range(4)]
        for job_id in echo_ids:
            self.wait_job(self.c, job_id, "succeeded")
        for job_id in failed_ids:
            self.wait_job(self.c, job_id, "failed")
        newest_first = list(reversed(echo_ids))

        for limit in (7, 10, 1000):
            pages = self.pages("type=echo", limit)
            ids = [j["id"] for page in pages for j in page]
            self.assertEqual(ids, newest_first, "limit %d" % limit)
            self.assertTrue(all(pages), "an empty page with limit %d" % limit)
            self.assertEqual(len(pages), -(-30 // limit))

        everything = [j["id"] for page in self.pages("", 8) for j in page]
        self.assertEqual(len(everything), len(set(everything)))
        self.assertEqual(set(everything), set(echo_ids) | set(failed_ids))
        created = [j["created_at"] for page in self.pages("", 8) for j in page]
        self.assertEqual(created, sorted(created, reverse=True))

        failed = [j for page in self.pages("state=failed", 3) for j in page]
        self.assertEqual({j["id"] for j in failed}, set(failed_ids))
        for j in failed:
            self.assertEqual((j["type"], j["state"], j["attempts"]), ("flaky", "failed", 1))
        both = [j["id"] for page in self.pages("state=succeeded&type=echo", 9) for j in page]
        self.assertEqual(both, newest_first)
        none = self.c.get("/v1/jobs?state=succeeded&type=flaky").json()
        self.assertEqual(none, {"jobs": [], "next_cursor": None})
        self.assertEqual(self.c.get("/v1/jobs?state=queued").json()["jobs"], [])
        self.assertEqual(self.c.get("/v1/jobs?type=pow").json()["jobs"], [])

    def test_default_page(self):
        ids = [self.submit(self.c, {"type": "echo", "payload": {"i": i}})["id"] for i in range(3)]
        body = self.c.get("/v1/jobs").json()
        self.assertEqual({j["id"] for j in body["jobs"]}, set(ids))
        self.assertIsNone(body["next_cursor"])
        for j in body["jobs"]:
            for field in ("id", "type", "state", "attempts", "created_at"):
                self.assertIn(field, j)


class Cancel(NodeTestCase):
    def setUp(self):
        super().setUp()
        self.node = self.start_node("canceller", ["--workers", 1])
        self.c = self.node.client()

    def test_cancel_queued_running_and_finished(self):
        blocker = self.submit(self.c, {"type": "sleep", "payload": {"ms": 120_000}})["id"]
        self.wait_job(self.c, blocker, "running")
        queued = self.submit(self.c, {"type": "echo", "payload": {"q": 1}})["id"]
        self.assertEqual(self.get_job(self.c, queued)["state"], "queued")

        # Queued: cancelled at once, never run.
        r = self.c.post("/v1/jobs/%s/cancel" % queued)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["state"], "cancelled")
        job = self.get_job(self.c, queued)
        self.assertEqual((job["state"], job["attempts"], job["result"]), ("cancelled", 0, None))
        self.assertEqual(job["history"][-1]["state"], "cancelled")

        # Running: cancel is requested, then the handler stops.
        r = self.c.post("/v1/jobs/%s/cancel" % blocker)
        self.assertEqual(r.status, 200, r)
        self.assertIn(r.json()["state"], ("running", "cancelled"))
        job = self.wait_job(self.c, blocker, "cancelled", timeout=30)
        self.assertEqual(job["attempts"], 1)
        self.assertIsNone(job["result"])
        self.assertIn("cancel", job["error"])
        self.assertReceipt(job, "canceller", self.c.get("/v1/node").json()["public_key"])

        # The worker is free again; the cancelled queued job stays unrun.
        later = self.run_job(self.c, {"type": "echo", "payload": {"after": True}})
        self.assertEqual(later["result"], {"echo": {"after": True}})
        job = self.get_job(self.c, queued)
        self.assertEqual((job["state"], job["attempts"]), ("cancelled", 0))
        self.assertEqual(job["results"], {})

        # Finished: 409, and nothing changes.
        for job_id in (queued, blocker, later["id"]):
            before = self.get_job(self.c, job_id)
            self.assertProblem(self.c.post("/v1/jobs/%s/cancel" % job_id), 409)
            self.assertEqual(self.get_job(self.c, job_id), before)


if __name__ == "__main__":
    unittest.main()
