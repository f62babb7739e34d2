"""The command-line client and the node's flags, run as real processes: keygen, sign, submit,
status, their exit codes (0 ok, 1 job failed, 2 usage, 3 refused, 4 unreachable), node --help and
startup errors, and the node's JSON log lines."""

import base64
import json
import os
import stat
import subprocess
import unittest

from harness import BIN, Key, Node, NodeTestCase, ed25519_verify, free_port, job_id_of, scaled

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
                     ["node", "--allowed-keys", os.path.join(self.tmp, "missing")]):
            with self.subTest(args=args):
                r = self.run_cli(*args, timeout=30)
                self.assertEqual(r.returncode, 2, r)
                self.assertTrue((r.stderr + r.stdout).strip(), "no message for %s" % args)

    def test_node_help_lists_every_flag(self):
        r = self.run_cli("node", "--help", check=0)
        for flag in ("--name", "--api", "--data", "--workers", "--log-level", "--log-format",
                     "--require-signed", "--allowed-keys", "--body-max", "--payload-max",
                     "--backlog-max", "--http-threads", "--gossip"):
            self.assertIn(flag, r.stdout)
        top = self.run_cli("--help", check=0).stdout
        for command in ("node", "keygen", "sign", "submit", "status"):
            self.assertIn(command, top)

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


if __name__ == "__main__":
    unittest.main()
