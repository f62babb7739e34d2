"""The command-line client and the node's flags, run as real processes: keygen, sign, submit,
status, their exit codes (0 ok, 1 job failed, 2 usage, 3 refused, 4 unreachable), node --help and
startup errors, and the node's JSON log lines; then, against a real 3-node mesh, the commands that
cover the rest of the API (cancel, jobs, ring, info, watch) and `meshwork verify`, whose exit code
says whether a job's receipts hold: 0 valid, 1 invalid (a tampered document), 2 not checkable."""

import base64
import hashlib
import json
import os
import queue
import stat
import subprocess
import threading
import time
import unittest

from harness import (BIN, Key, Node, NodeTestCase, ed25519_sign, ed25519_verify, free_port,
                     job_id_of, scaled)
from test_mesh import Mesh

UNKNOWN_ID = "ab" * 32


class Keys(NodeTestCase):
    def test_keygen_writes_a_private_identity_once(self):
        path = os.path.join(self.tmp, "id.key")
        r = self.run_cli("keygen", "--out", path, check=0)
        printed = r.stdout.strip()
        self.assertEqual(len(base64.b64decode(printed, validate=True)), 32)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path, "rb") as f:
            original = f.read()
        self.assertEqual(len(original), 64)
        # The file is libsodium's seed || public key; the printed key is the one the seed derives.
        self.assertEqual(Key(original[:32]).public_b64, printed)
        self.assertEqual(original[32:], base64.b64decode(printed))

        again = self.run_cli("keygen", "--out", path)
        self.assertNotEqual(again.returncode, 0)
        self.assertTrue(again.stderr.strip(), "no message when refusing to overwrite")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), original, "keygen overwrote an identity")
        other = self.run_cli("keygen", "--out", os.path.join(self.tmp, "other.key"), check=0)
        self.assertNotEqual(other.stdout.strip(), printed)

    def test_cluster_key(self):
        # A cluster key file holds hex keys, one per line (a new key goes on top to rotate);
        # keygen --cluster writes one fresh 32-byte key.
        a, b = os.path.join(self.tmp, "cluster-a"), os.path.join(self.tmp, "cluster-b")
        self.run_cli("keygen", "--cluster", "--out", a, check=0)
        self.run_cli("keygen", "--cluster", "--out", b, check=0)
        keys = []
        for path in (a, b):
            with open(path) as f:
                lines = f.read().splitlines()
            self.assertEqual(len(lines), 1, lines)
            self.assertRegex(lines[0], "^[0-9a-f]{64}$")
            keys.append(bytes.fromhex(lines[0]))
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual([len(k) for k in keys], [32, 32])
        self.assertNotEqual(keys[0], keys[1])
        self.assertNotEqual(self.run_cli("keygen", "--cluster", "--out", a).returncode, 0)
        # A node takes the file as it is.
        node = self.start_node("sealed", ["--cluster-key", a])
        self.assertEqual(node.client().get("/healthz").status, 200)

    def test_keygen_into_a_missing_directory_fails(self):
        r = self.run_cli("keygen", "--out", os.path.join(self.tmp, "no", "such", "dir", "k"))
        self.assertEqual(r.returncode, 2, r)
        self.assertTrue(r.stderr.strip())


class Client(NodeTestCase):
    def setUp(self):
        super().setUp()
        self.node = self.start_node("cli")
        self.c = self.node.client()
        self.key_file = os.path.join(self.tmp, "client.key")
        self.public = self.run_cli("keygen", "--out", self.key_file, check=0).stdout.strip()

    def test_sign_prints_an_envelope_the_node_accepts(self):
        r = self.run_cli("sign", "--key", self.key_file, "--type", "echo", "--payload",
                         '{"hello": "world"}', "--max-attempts", 2, check=0)
        env = json.loads(r.stdout)
        self.assertEqual(set(env), {"job", "public_key", "signature"})
        self.assertEqual(env["public_key"], self.public)
        self.assertTrue(ed25519_verify(base64.b64decode(self.public), env["job"].encode(),
                                       base64.b64decode(env["signature"])))
        spec = json.loads(env["job"])
        self.assertEqual((spec["type"], spec["payload"], spec["max_attempts"]),
                         ("echo", {"hello": "world"}, 2))
        self.assertTrue(spec["nonce"])
        self.assertGreater(spec["created_at"], 0)
        posted = self.c.post("/v1/jobs", env)
        self.assertEqual(posted.status, 202, posted)
        self.assertEqual(posted.json()["id"], job_id_of(env))
        self.assertEqual(posted.json()["submitted_by"], self.public)
        # Two signings of the same job differ (fresh nonce), so they are two jobs.
        env2 = json.loads(self.run_cli("sign", "--key", self.key_file, "--type", "echo",
                                       "--payload", '{"hello": "world"}', check=0).stdout)
        self.assertNotEqual(job_id_of(env2), job_id_of(env))

    def test_sign_usage_errors(self):
        self.assertEqual(self.run_cli("sign", "--type", "echo").returncode, 2)
        self.assertEqual(self.run_cli("sign", "--key", self.key_file, "--type", "echo",
                                      "--payload", "{not json").returncode, 2)
        self.assertEqual(self.run_cli("sign", "--key", os.path.join(self.tmp, "missing"),
                                      "--type", "echo").returncode, 2)

    def test_submit_wait_prints_the_finished_job(self):
        r = self.run_cli("submit", "--to", self.node.url, "--type", "echo", "--payload",
                         '{"x": [1, 2]}', "--wait", check=0)
        job = json.loads(r.stdout)
        self.assertEqual(job["state"], "succeeded")
        self.assertEqual(job["result"], {"echo": {"x": [1, 2]}})
        self.assertEqual(self.get_job(self.c, job["id"])["state"], "succeeded")

    def test_submit_without_wait_prints_the_acceptance(self):
        r = self.run_cli("submit", "--to", self.node.url, "--type", "sleep", "--payload",
                         '{"ms": 10}', "--key", self.key_file, check=0)
        job = json.loads(r.stdout)
        self.assertIn(job["state"], ("queued", "running", "succeeded"))
        self.assertEqual(job["submitted_by"], self.public)
        self.wait_job(self.c, job["id"], "succeeded")

    def test_submit_with_priority_and_delay(self):
        spec = json.loads(json.loads(self.run_cli(
            "sign", "--key", self.key_file, "--type", "echo", "--priority", 0, "--delay-ms", 500,
            check=0).stdout)["job"])
        self.assertEqual((spec["priority"], spec["delay_ms"]), (0, 500))
        r = self.run_cli("submit", "--to", self.node.url, "--type", "echo", "--priority", 8,
                         "--delay-ms", 60000, check=0)
        job = json.loads(r.stdout)
        self.assertEqual((job["state"], job["priority"], job["delay_ms"]), ("scheduled", 8, 60000))
        r = self.run_cli("submit", "--to", self.node.url, "--type", "echo", "--priority", 10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("priority", r.stdout + r.stderr)

    def test_submit_with_redundancy(self):
        # A one-node mesh has R = 1 in effect but the node's --replicas (3) bounds k: k = 2 is
        # admitted and shown; k = 8 is refused (422 → exit 3) with the field named.
        spec = json.loads(json.loads(self.run_cli(
            "sign", "--key", self.key_file, "--type", "echo", "--redundancy", 2,
            check=0).stdout)["job"])
        self.assertEqual(spec["redundancy"], 2)
        r = self.run_cli("submit", "--to", self.node.url, "--type", "echo", "--redundancy", 2,
                         check=0)
        self.assertEqual(json.loads(r.stdout)["redundancy"], 2)
        r = self.run_cli("submit", "--to", self.node.url, "--type", "echo", "--redundancy", 8)
        self.assertEqual(r.returncode, 3)
        self.assertIn("redundancy", r.stdout + r.stderr)

    def test_submit_envelope_file_twice(self):
        env_file = os.path.join(self.tmp, "job.json")
        with open(env_file, "w") as f:
            f.write(self.run_cli("sign", "--key", self.key_file, "--type", "echo", "--payload",
                                 '{"once": true}', check=0).stdout)
        first = json.loads(self.run_cli("submit", "--to", self.node.url, "--envelope", env_file,
                                        "--wait", check=0).stdout)
        second = json.loads(self.run_cli("submit", "--to", self.node.url, "--envelope", env_file,
                                         check=0).stdout)
        self.assertEqual(first["id"], second["id"])
        self.assertEqual(second["state"], "succeeded")

    def test_submit_wait_of_a_failing_job_exits_1(self):
        r = self.run_cli("submit", "--to", self.node.url, "--type", "flaky", "--payload",
                         '{"fail_times": 1}', "--max-attempts", 1, "--wait", check=1)
        job = json.loads(r.stdout)
        self.assertEqual((job["state"], job["attempts"]), ("failed", 1))
        self.assertIn("deliberate failure", job["error"])

    def test_submit_refused_exits_3(self):
        r = self.run_cli("submit", "--to", self.node.url, "--type", "nope", check=3)
        self.assertEqual(json.loads(r.stdout)["status"], 422)
        r = self.run_cli("submit", "--to", self.node.url, "--type", "sleep", "--payload",
                         '{"ms": -5}', "--wait", check=3)
        self.assertEqual(json.loads(r.stdout)["status"], 422)
        self.assertEqual(self.c.get("/v1/jobs").json()["jobs"], [])

    def test_status(self):
        job = self.run_job(self.c, {"type": "echo", "payload": {"s": 1}})
        r = self.run_cli("status", "--to", self.node.url, job["id"], check=0)
        self.assertEqual(json.loads(r.stdout), self.get_job(self.c, job["id"]))
        r = self.run_cli("status", "--to", self.node.url, UNKNOWN_ID, check=3)
        self.assertEqual(json.loads(r.stdout)["status"], 404)
        self.run_cli("status", "--to", self.node.url, "not-an-id", check=2)

    def test_unreachable_node_exits_4(self):
        closed = "http://127.0.0.1:%d" % free_port()
        r = self.run_cli("status", "--to", closed, UNKNOWN_ID, check=4)
        self.assertTrue(r.stderr.strip())
        self.run_cli("submit", "--to", closed, "--type", "echo", "--payload", "{}", check=4)
        self.run_cli("submit", "--to", closed, "--type", "echo", "--wait", check=4)


class Usage(NodeTestCase):
    def test_bad_usage_exits_2(self):
        for args in ([], ["bogus"], ["status"], ["submit", "--to"], ["keygen"],
                     ["node", "--workers", "many"], ["node", "--log-format", "xml"],
                     ["node", "--api", "no-port-here"], ["node", "--no-such-flag"],
                     ["node", "--reap-after-s", "0"], ["node", "--reap-after-s", "-5"],
                     ["node", "--allowed-keys", os.path.join(self.tmp, "missing")]):
            with self.subTest(args=args):
                r = self.run_cli(*args, timeout=30)
                self.assertEqual(r.returncode, 2, r)
                self.assertTrue((r.stderr + r.stdout).strip(), "no message for %s" % args)

    def test_node_help_lists_every_flag(self):
        r = self.run_cli("node", "--help", check=0)
        for flag in ("--name", "--api", "--data", "--workers", "--log-level", "--log-format",
                     "--require-signed", "--allowed-keys", "--body-max", "--payload-max",
                     "--backlog-max", "--http-threads", "--gossip", "--reap-after-s"):
            self.assertIn(flag, r.stdout)
        top = self.run_cli("--help", check=0).stdout
        for command in ("node", "keygen", "sign", "submit", "status", "cancel", "members",
                        "jobs", "ring", "info", "watch", "verify"):
            self.assertIn(command, top)
            if command not in ("node", "keygen", "sign"):
                self.assertIn("--node", self.run_cli(command, "--help", check=0).stdout)

    def test_node_refuses_a_bad_allowed_keys_file(self):
        bad = os.path.join(self.tmp, "keys")
        with open(bad, "w") as f:
            f.write("this is not a key\n")
        r = self.run_cli("node", "--name", "bad", "--api", "127.0.0.1:%d" % free_port(),
                         "--data", os.path.join(self.tmp, "d"), "--allowed-keys", bad, timeout=60)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn(":1", r.stdout + r.stderr)

    def test_node_refuses_a_port_in_use(self):
        node = self.start_node("holder")
        second = Node(self.tmp, "second", [])
        second.port = node.port
        self.addCleanup(second.kill9)
        cmd = [BIN, "node", "--name", "second", "--api", "127.0.0.1:%d" % node.port,
               "--data", second.data_dir]
        with open(second.log_path, "wb") as log:
            second.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL)
        try:
            code = second.proc.wait(timeout=scaled(15))
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            names = set()
            for _ in range(20):
                c = node.client()
                names.add(c.get("/v1/node").json()["name"])
                c.close()
            self.fail("a second node started on a port already in use; requests to it reach %s"
                      % sorted(names))
        self.assertEqual(code, 2, second.log_tail())
        self.assertTrue(node.alive())

    def test_json_logs_name_the_node_and_the_job(self):
        node = self.start_node("jsonlog", ["--log-format", "json", "--log-level", "debug"])
        c = node.client()
        job = self.run_job(c, {"type": "echo", "payload": {}})
        self.assertEqual(node.sigterm(), 0)
        lines = [l for l in node.log_text().splitlines() if l and not l.startswith("===")]
        self.assertTrue(lines)
        events = [json.loads(l) for l in lines]  # every line is one JSON object
        for e in events:
            self.assertEqual(e["node"], "jsonlog")
            self.assertIn("event", e)
            self.assertIn("level", e)
        self.assertTrue(any(e.get("job") == job["id"] for e in events), events)


class MeshCommands(Mesh):
    """cancel, jobs, ring and info against a 3-node mesh, through --node (the URL of any node)."""

    def setUp(self):
        super().setUp()
        self.start_mesh(3)
        self.n1 = self.nodes[0]
        self.c = self.client(self.n1)

    def cli(self, *args, check=None):
        return self.run_cli(*(list(args) + ["--node", self.nodes[1].url]), check=check)

    def test_cancel(self):
        job = self.submit(self.c, {"type": "sleep", "payload": {"ms": 60000}})
        self.wait_job(self.c, job["id"], "running")
        r = self.cli("cancel", job["id"], check=0)
        self.assertEqual(json.loads(r.stdout)["id"], job["id"])
        self.wait_job(self.c, job["id"], "cancelled")
        again = self.cli("cancel", job["id"], check=3)
        self.assertEqual(json.loads(again.stdout)["status"], 409)
        self.assertIn("409", again.stderr)
        self.assertIn(json.loads(again.stdout)["detail"], again.stderr)
        unknown = self.cli("cancel", UNKNOWN_ID, check=3)
        self.assertIn("404", unknown.stderr)
        self.cli("cancel", "not-an-id", check=2)

    def test_jobs_pages_through_every_job_with_the_cursor(self):
        ids = {self.run_job(self.c, {"type": "echo", "payload": {"i": i}})["id"] for i in range(5)}
        failed = self.run_job(self.c, {"type": "flaky", "payload": {"fail_times": 1},
                                       "max_attempts": 1}, until="failed")["id"]
        seen, cursor, pages = [], None, 0
        while True:
            args = ["jobs", "--type", "echo", "--limit", 2] + (["--cursor", cursor] if cursor else [])
            lines = self.cli(*args, check=0).stdout.splitlines()
            self.assertEqual(lines[0].split(), ["ID", "TYPE", "STATE", "ATTEMPTS", "CREATED"])
            rows = [l.split() for l in lines[1:] if not l.startswith("next cursor: ")]
            self.assertLessEqual(len(rows), 2, lines)
            for row in rows:
                self.assertEqual(row[1:4], ["echo", "succeeded", "1/3"], row)
            seen += [row[0] for row in rows]
            nxt = [l[len("next cursor: "):] for l in lines if l.startswith("next cursor: ")]
            pages += 1
            if not nxt:
                break
            self.assertLess(pages, 10, "the cursor never ran out")
            cursor = nxt[0]
        self.assertEqual(sorted(seen), sorted(ids), "each job exactly once over the pages")
        self.assertGreaterEqual(pages, 3)
        rows = self.cli("jobs", "--state", "failed", check=0).stdout.splitlines()[1:]
        self.assertEqual([r.split()[0] for r in rows], [failed])
        page = json.loads(self.cli("jobs", "--state", "succeeded", "--json", check=0).stdout)
        self.assertEqual({j["id"] for j in page["jobs"]}, ids)
        self.cli("jobs", "--state", "bogus", check=2)
        self.cli("jobs", "--limit", 0, check=2)
        bad = self.cli("jobs", "--cursor", "x" * 500, check=3)
        self.assertIn("422", bad.stderr)

    def test_ring_and_info(self):
        lines = self.cli("ring", check=0).stdout.splitlines()
        self.assertRegex(lines[0], r"R=3 W=2")
        rows = {l.split()[0]: l.split() for l in lines[2:]}
        self.assertEqual(set(rows), {"n1", "n2", "n3"})
        for name, row in rows.items():
            self.assertEqual(row[1], "alive", row)
            self.assertEqual(row[2], next(n.api for n in self.nodes if n.name == name))
        raw = json.loads(self.cli("ring", "--json", check=0).stdout)
        self.assertEqual({m["name"] for m in raw["members"]}, {"n1", "n2", "n3"})

        node = self.client(self.nodes[1]).get("/v1/node").json()
        text = self.cli("info", check=0).stdout
        self.assertTrue(text.startswith("n2 "), text)
        self.assertIn(node["public_key"], text)
        self.assertIn("write_quorum=2", text)
        for job_type in node["job_types"]:
            self.assertIn(job_type["type"], text)
        self.assertEqual(json.loads(self.cli("info", "--json", check=0).stdout)["name"], "n2")

    def test_every_client_command_answers_unreachable_with_4(self):
        closed = "http://127.0.0.1:%d" % free_port()
        for args in (["cancel", UNKNOWN_ID], ["jobs"], ["ring"], ["info"], ["members"],
                     ["watch"]):
            with self.subTest(args=args):
                r = self.run_cli(*(args + ["--node", closed]), check=4)
                self.assertIn("cannot reach", r.stderr)


class Verify(Mesh):
    """`meshwork verify`: each receipt against the key the mesh knows for its node, and its hash
    against the result. Tampering is shown through --file, a saved job document."""

    def setUp(self):
        super().setUp()
        self.start_mesh(3)
        self.c = self.client(self.nodes[0])

    def verify(self, *args, check):
        return self.run_cli("verify", "--node", self.nodes[2].url, *args, check=check)

    def saved(self, job, name="job.json"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            json.dump(job, f)
        return path

    def test_valid_receipts_exit_0(self):
        ok = self.run_job(self.c, {"type": "echo", "payload": {"u": "caf\u00e9", "n": [1.5, 2]}})
        r = self.verify(ok["id"], check=0)
        self.assertIn("all valid", r.stdout)
        self.assertIn("node=%s" % ok["receipt"]["node"], r.stdout)
        # A failed job's receipt vouches for its error text.
        failed = self.run_job(self.c, {"type": "flaky", "payload": {"fail_times": 3},
                                       "max_attempts": 1}, until="failed")
        self.verify(failed["id"], check=0)
        self.verify("--file", self.saved(self.get_job(self.c, ok["id"])), check=0)

    def test_a_tampered_document_exits_1(self):
        job = self.run_job(self.c, {"type": "echo", "payload": {"amount": 10}})
        node = job["receipt"]["node"]

        result = json.loads(json.dumps(job))
        result["result"] = {"echo": {"amount": 1000}}
        result["results"][node]["result"] = result["result"]
        r = self.verify("--file", self.saved(result), check=1)
        self.assertIn("result_hash does not match", r.stdout)

        signature = json.loads(json.dumps(job))
        sig = bytearray(base64.b64decode(job["receipt"]["signature"]))
        sig[0] ^= 1
        for rc in (signature["receipt"], signature["results"][node]["receipt"]):
            rc["signature"] = base64.b64encode(bytes(sig)).decode()
        r = self.verify("--file", self.saved(signature), check=1)
        self.assertIn("signature does not verify", r.stdout)

        # A forger re-signs the forged result with a key of its own and puts that key in the
        # receipt: the signature holds under the key the receipt carries, not under the node's.
        forged = json.loads(json.dumps(result))
        forger = Key.generate()
        for rc in (forged["receipt"], forged["results"][node]["receipt"]):
            for batch_field in ("root", "index", "proof"):  # the form from before batches
                rc.pop(batch_field)
            rc["result_hash"] = hashlib.blake2b(
                json.dumps(forged["result"], separators=(",", ":"), sort_keys=True).encode(),
                digest_size=32).hexdigest()
            message = "meshwork-receipt-v1|{job_id}|{node}|{attempt}|{result_hash}".format(**rc)
            rc["public_key"] = forger.public_b64
            rc["signature"] = base64.b64encode(ed25519_sign(forger.seed, message.encode())).decode()
        r = self.verify("--file", self.saved(forged), check=1)
        self.assertIn("not the one the mesh knows", r.stdout)

        # A batched receipt whose root or proof is altered: its path no longer reaches the root
        # the node signed; a proof past its bound is refused as malformed.
        for change in ({"root": "00" * 32}, {"proof": ["00" * 32] + job["receipt"]["proof"]},
                       {"index": job["receipt"]["index"] + 1}):
            moved = json.loads(json.dumps(job))
            for rc in (moved["receipt"], moved["results"][node]["receipt"]):
                rc.update(change)
            r = self.verify("--file", self.saved(moved), check=1)
            self.assertIn("inclusion proof does not lead to its root", r.stdout)
        huge = json.loads(json.dumps(job))
        for rc in (huge["receipt"], huge["results"][node]["receipt"]):
            rc["proof"] = ["00" * 32] * 33
        r = self.verify("--file", self.saved(huge), check=1)
        self.assertIn("malformed receipt", r.stdout)

        other = json.loads(json.dumps(job))
        other["id"] = UNKNOWN_ID
        self.verify("--file", self.saved(other), check=1)

    def test_nothing_to_check_exits_2(self):
        r = self.verify(UNKNOWN_ID, check=2)
        self.assertIn("404", r.stderr)
        running = self.submit(self.c, {"type": "sleep", "payload": {"ms": 60000}})
        self.wait_job(self.c, running["id"], "running")
        r = self.verify(running["id"], check=2)
        self.assertIn("no receipt", r.stderr)
        self.verify("not-an-id", check=2)
        self.verify(check=2)
        job = self.run_job(self.c, {"type": "echo", "payload": {}})
        closed = "http://127.0.0.1:%d" % free_port()
        r = self.run_cli("verify", "--node", closed, job["id"], check=2)
        self.assertIn("cannot reach", r.stderr)
        # A receipt of a node the mesh has never heard of proves nothing either way.
        stranger = self.get_job(self.c, job["id"])
        node = stranger["receipt"]["node"]
        stranger["results"]["n9"] = stranger["results"].pop(node)
        for rc in (stranger["receipt"], stranger["results"]["n9"]["receipt"]):
            rc["node"] = "n9"
            # A batch of one of n9's (root = its leaf), so that only the key is in question.
            message = "meshwork-receipt-v1|{job_id}|{node}|{attempt}|{result_hash}".format(**rc)
            rc.update(index=0, proof=[], root=hashlib.blake2b(
                b"\x00" + bytes(4) + message.encode(), digest_size=32).hexdigest())
        r = self.verify("--file", self.saved(stranger), check=2)
        self.assertIn("knows no key for node n9", r.stdout)

    def test_a_job_taken_over_from_a_killed_owner_verifies(self):
        job = self.submit(self.c, {"type": "sleep", "payload": {"ms": 3000}})
        running = self.wait_job(self.c, job["id"], "running")
        owner = next(n for n in self.nodes if n.name == running["claim"]["node"])
        survivor = next(n for n in self.nodes if n is not owner)
        owner.kill9()
        done = self.wait_job(self.client(survivor), job["id"], "succeeded", timeout=90)
        self.assertNotEqual(done["receipt"]["node"], owner.name)
        r = self.run_cli("verify", "--node", survivor.url, job["id"], check=0)
        self.assertIn("node=%s" % done["receipt"]["node"], r.stdout)


class Watch(Mesh):
    """`meshwork watch` on the real GET /v1/events stream."""

    def setUp(self):
        super().setUp()
        self.start_mesh(3)
        self.c = self.client(self.nodes[0])

    def test_watch_job_follows_it_to_the_end(self):
        job = self.submit(self.c, {"type": "sleep", "payload": {"ms": 1500}})
        r = self.run_cli("watch", "--node", self.nodes[1].url, "--job", job["id"], check=0)
        states = [l.split()[3] for l in r.stdout.splitlines()]
        self.assertEqual(states[-1], "succeeded", r.stdout)
        self.assertTrue(all(l.split()[2] == job["id"] for l in r.stdout.splitlines()), r.stdout)
        # A job that has already finished: its state at once, and the same exit code.
        again = self.run_cli("watch", "--node", self.nodes[2].url, "--job", job["id"], "--json",
                             check=0)
        last = json.loads(again.stdout.splitlines()[-1])
        self.assertEqual((last["event"], last["data"]["state"]), ("job", "succeeded"))
        failed = self.submit(self.c, {"type": "flaky", "payload": {"fail_times": 1},
                                      "max_attempts": 1})
        self.run_cli("watch", "--node", self.nodes[0].url, "--job", failed["id"], check=1)

    def test_watch_members_shows_a_killed_node_dead(self):
        proc = subprocess.Popen([BIN, "watch", "--node", self.nodes[0].url, "--kinds", "member"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
        self.addCleanup(proc.stdout.close)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout] + [lines.put(None)],
                         daemon=True).start()
        self.nodes[2].kill9()
        deadline, seen = time.monotonic() + scaled(60), []
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line)
            if line.split()[1:4] == ["member", "n3", "dead"]:
                return
        self.fail("no 'member n3 dead' line; watch printed: %s" % seen)

    def test_bad_filters_are_refused(self):
        r = self.run_cli("watch", "--node", self.nodes[0].url, "--kinds", "job,bogus", check=3)
        self.assertIn("422", r.stderr)
        self.run_cli("watch", "--node", self.nodes[0].url, "--job", "not-an-id", check=2)


if __name__ == "__main__":
    unittest.main()
