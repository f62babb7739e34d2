"""The client libraries (api/clients/) against a real three-node mesh on 127.0.0.1: the Python
client in this process, the Node.js client as `node api/clients/node/test.mjs`.

For each client: a key made, saved and loaded (in the node's key-file format: `meshwork sign`
reads it); a job signed and submitted, whose id the node computes exactly as the client did;
waiting until it succeeds; its receipts verified against the members' keys, and found invalid once
the result, the signature or the key is tampered with; cancel; list; batch; and both over https
(a TLS proxy with its own CA in front of a node). A stub node checks that waiting long-polls with
?wait_s= and still works against a node that answers at once.
"""

import base64
import http.server
import json
import os
import random
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

import harness
from harness import NodeTestCase, scaled
from test_membership import MeshNode

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
NODE_CLIENT = os.path.join(ROOT, "api", "clients", "node")
sys.path.insert(0, os.path.join(ROOT, "api", "clients", "python"))

import meshwork_client as mc  # noqa: E402  (after the path is set)

NODEJS = shutil.which("node") or shutil.which("nodejs")


def run_node_client(*args, timeout=300, expect_failure=False):
    """Runs test.mjs; returns its JSON report or fails with its output (or, expecting a failure,
    returns its stderr)."""
    r = subprocess.run([NODEJS, os.path.join(NODE_CLIENT, "test.mjs")] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=scaled(timeout),
                       stdin=subprocess.DEVNULL)
    if expect_failure:
        if r.returncode != 1:
            raise AssertionError("node test.mjs %s exited %d, not 1\nstderr: %s"
                                 % (" ".join(map(str, args)), r.returncode, r.stderr[-4000:]))
        return r.stderr
    if r.returncode != 0:
        raise AssertionError("node test.mjs %s exited %d\nstdout: %s\nstderr: %s"
                             % (" ".join(map(str, args)), r.returncode, r.stdout[-2000:],
                                r.stderr[-4000:]))
    return json.loads(r.stdout)


def tricky_payload():
    """Numbers and strings the node prints its own way: the receipt hash is over that text."""
    rnd = random.Random(13)
    floats = [rnd.uniform(-1e20, 1e20) for _ in range(50)] + \
        [rnd.uniform(-1, 1) * 10.0 ** rnd.randint(-300, 300) for _ in range(150)]
    return {"big": 2**64 - 1, "neg": -(2**63), "one": 1.0, "floats": floats,
            "text": "é ✓ \x01 \"q\"", "z": {"b": 1, "a": [True, False, None]}}


class TlsProxy:
    """Terminates TLS on a loopback port and relays each connection to a node's API port."""

    def __init__(self, tmp, backend_port):
        self.cert = os.path.join(tmp, "proxy.pem")
        key = os.path.join(tmp, "proxy.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out",
                        self.cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                        "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, key)
        self.backend = backend_port
        self.listener = ctx.wrap_socket(socket.create_server(("127.0.0.1", 0)), server_side=True)
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except ssl.SSLError:
                continue  # a client that does not trust the certificate
            except OSError:
                return
            back = socket.create_connection(("127.0.0.1", self.backend))
            for a, b in ((conn, back), (back, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_RDWR)  # the other direction's thread ends too
        except OSError:
            pass
        src.close()

    def close(self):
        self.closed = True
        self.listener.close()


class ClientsOnMesh(NodeTestCase):

    def setUp(self):
        super().setUp()
        self.nodes = []
        for i in range(1, 4):
            node = MeshNode(self.tmp, "n%d" % i, ["--workers", 2],
                            join=[self.nodes[0].gossip] if self.nodes else [])
            self.addCleanup(node.stop)
            self.nodes.append(node.start())
        deadline = time.monotonic() + scaled(30)
        while not all(self.alive_seen(n) == 3 for n in self.nodes):
            self.assertLess(time.monotonic(), deadline, "the mesh did not form")
            time.sleep(0.05)

    def alive_seen(self, node):
        c = mc.Client(node.url)
        try:
            return sum(m["state"] == "alive" for m in c.members()["members"])
        finally:
            c.close()

    def client(self, node, **kw):
        c = mc.Client(node.url, **kw)
        self.addCleanup(c.close)
        return c

    def assert_same_signing_as_harness(self, key, envelope, job_id):
        """The node's id, the harness's id and the client's id agree; Ed25519 is deterministic,
        so the reference implementation in harness.py makes the very same signature."""
        self.assertEqual(job_id, harness.job_id_of(envelope))
        self.assertEqual(job_id, mc.job_id_of(envelope))
        ref = harness.Key(key.seed).envelope(envelope["job"])
        self.assertEqual(ref, envelope)

    def assert_key_works_with_cli(self, path):
        """A key file the client saved is one `meshwork sign` can use."""
        r = self.run_cli("sign", "--key", path, "--type", "echo", "--payload", "{}", check=0)
        env = json.loads(r.stdout)
        self.assertEqual(env["public_key"], mc.Key.load(path).public_key_b64)

    # ---- Python ----

    def test_python_client(self):
        key_path = os.path.join(self.tmp, "py.key")
        key = mc.Key.generate()
        key.save(key_path)
        with self.assertRaises(FileExistsError):
            key.save(key_path)
        self.assertEqual(oct(os.stat(key_path).st_mode & 0o777), "0o600")
        self.assertEqual(mc.Key.load(key_path).public_key, key.public_key)
        self.assert_key_works_with_cli(key_path)
        cli_key = os.path.join(self.tmp, "cli.key")
        self.run_cli("keygen", "--out", cli_key, check=0)
        mc.Key.load(cli_key)  # and the other way round

        mesh = self.client(self.nodes[0], key=key)
        payload = tricky_payload()
        env = mc.sign_job({"type": "echo", "payload": payload, "max_attempts": 2}, key)
        job = mesh.submit(env)
        self.assert_same_signing_as_harness(key, env, job["id"])
        self.assertFalse(job["duplicate"])
        self.assertTrue(mesh.submit(env)["duplicate"])

        # Read it from another node than the one it was submitted to.
        other = self.client(self.nodes[2])
        done = other.wait_job(job["id"], timeout=scaled(60))
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["result"], {"echo": payload})
        check = other.verify_job(done["id"])
        self.assertEqual(check["status"], "valid", check)
        self.assertTrue(all(r["valid"] for r in check["receipts"]), check)
        self.assertTrue(harness.receipt_verifies(done["receipt"]))
        self.assert_tampering_detected(done, other.node_keys())

        self.cancel_and_list(mesh, key, done["id"])
        self.batch(mesh, key)
        plain = self.client(self.nodes[1]).submit({"type": "echo", "payload": 1})  # node-signed
        self.assertEqual(mesh.wait_job(plain["id"], timeout=scaled(60))["state"], "succeeded")

    def assert_tampering_detected(self, done, keys):
        fresh = lambda: mc.parse_json(mc.canonical_json(done))  # noqa: E731 (keeps JsonFloat)
        self.assertEqual(mc.verify_receipts(fresh(), keys)["status"], "valid")
        node = done["receipt"]["node"]
        tampered = []
        job = fresh()
        job["result"]["echo"]["text"] += "!"
        tampered.append(job)
        job = fresh()
        job["result"]["echo"]["big"] -= 1
        tampered.append(job)
        job = fresh()
        job["results"][node]["result"] = {"echo": "something else"}
        tampered.append(job)
        job = fresh()
        job["receipt"]["signature"] = base64.b64encode(bytes(64)).decode()
        tampered.append(job)
        # Correctly signed, but by a key that is not the node's: it proves nothing.
        # A batched receipt with another index, root or proof: its path misses the signed root.
        for change in ({"index": done["receipt"]["index"] + 1}, {"root": "00" * 32},
                       {"proof": ["00" * 32] + done["receipt"]["proof"]}):
            job = fresh()
            for rc in (job["receipt"], job["results"][node]["receipt"]):
                rc.update(change)
            self.assertFalse(harness.receipt_verifies(job["receipt"]))
            tampered.append(job)
        job = fresh()
        stranger = mc.Key.generate()
        for rc in (job["receipt"], job["results"][node]["receipt"]):
            for batch_field in ("root", "index", "proof"):  # the form from before batches
                rc.pop(batch_field)
            rc["public_key"] = stranger.public_key_b64
            msg = "meshwork-receipt-v1|{job_id}|{node}|{attempt}|{result_hash}".format(**rc)
            rc["signature"] = base64.b64encode(stranger.sign(msg.encode())).decode()
        self.assertTrue(harness.receipt_verifies(job["receipt"]))  # self-consistent ...
        tampered.append(job)
        for i, job in enumerate(tampered):
            check = mc.verify_receipts(job, keys)
            self.assertEqual(check["status"], "invalid", (i, check))  # ... and still refused
        self.assertEqual(mc.verify_receipts(done, {})["status"], "unchecked")

    def cancel_and_list(self, mesh, key, echo_id):
        env = mc.sign_job({"type": "sleep", "payload": {"ms": 600000}, "max_attempts": 1}, key)
        job_id = mesh.submit(env)["id"]
        deadline = time.monotonic() + scaled(30)
        while mesh.get_job(job_id)["state"] != "running":
            self.assertLess(time.monotonic(), deadline, "the sleep job never started")
            time.sleep(0.05)
        self.assertEqual(mesh.cancel(job_id)["id"], job_id)
        cancelled = mesh.wait_job(job_id, timeout=scaled(60))
        self.assertEqual(cancelled["state"], "cancelled", cancelled)
        self.assertEqual(mesh.verify_job(cancelled)["status"], "valid")
        with self.assertRaises(mc.MeshworkError) as e:
            mesh.cancel(job_id)
        self.assertEqual(e.exception.status, 409)
        # A cancelled job is a dead letter: the client's signed retry runs it again.
        again = mesh.retry(job_id)
        self.assertEqual((again["state"], again["retries"]), ("queued", 1), again)
        mesh.cancel(job_id)
        self.assertEqual(mesh.wait_job(job_id, timeout=scaled(60))["state"], "cancelled")
        with self.assertRaises(mc.MeshworkError) as e:
            mesh.get_job("0" * 64)
        self.assertEqual(e.exception.status, 404)

        page = mesh.list_jobs(state="cancelled")
        self.assertIn(job_id, [j["id"] for j in page["jobs"]])
        self.assertTrue(all(j["state"] == "cancelled" for j in page["jobs"]), page)
        ids = [j["id"] for j in mesh.iter_jobs(limit=1)]  # one per page: the cursor works
        self.assertIn(job_id, ids)
        self.assertIn(echo_id, ids)
        self.assertEqual(len(ids), len(set(ids)))

    def batch(self, mesh, key):
        envs = [mc.sign_job({"type": "echo", "payload": {"i": i}}, key) for i in range(3)]
        first = mesh.submit_batch(envs)
        self.assertEqual(first["accepted"], 3, first)
        self.assertEqual([r["id"] for r in first["results"]], [mc.job_id_of(e) for e in envs])
        self.assertEqual(mesh.submit_batch(envs)["duplicates"], 3)
        # Signed once: one signature over the root of the jobs' ids; each keeps its id alone.
        once = mesh.submit_batch([{"type": "echo", "payload": {"once": i}} for i in range(3)])
        self.assertEqual(once["accepted"], 3, once)
        body, proved = mc.sign_job_batch(
            [{"type": "echo", "payload": {"proved": i}} for i in range(5)], key)
        self.assertEqual(len({e["signature"] for e in proved}), 1)
        first = mesh.submit_batch(proved)  # each envelope with its own proof
        self.assertEqual(first["accepted"], 5, first)
        self.assertEqual([r["id"] for r in first["results"]], [mc.job_id_of(e) for e in proved])
        self.assertEqual(mesh.request("POST", "/v1/jobs/batch", body).body["duplicates"], 5)
        ids = [mc.job_id_of(e) for e in envs + proved] + [r["id"] for r in once["results"]]
        for job_id in ids:
            self.assertEqual(mesh.wait_job(job_id, timeout=scaled(60))["state"], "succeeded")

    # ---- Node.js ----

    @unittest.skipUnless(NODEJS, "Node.js is not installed")
    def test_node_client(self):
        key_path = os.path.join(self.tmp, "js.key")
        report = run_node_client("mesh", self.nodes[1].url, "--key-out", key_path)
        env = report["envelope"]
        key = mc.Key.load(key_path)
        self.assertEqual(env["public_key"], key.public_key_b64)
        self.assert_same_signing_as_harness(key, env, report["id"])
        self.assert_key_works_with_cli(key_path)
        # What the Node.js client found valid, this side finds valid too.
        mesh = self.client(self.nodes[0])
        job = mesh.get_job(report["id"])
        self.assertEqual(job["receipt"], report["receipt"])
        self.assertEqual(mesh.verify_job(job)["status"], "valid")
        reader = mc.Client(self.nodes[2].url)
        self.addCleanup(reader.close)
        self.assertEqual(reader.get_job(report["cancelled"])["state"], "cancelled")
        for job_id in report["batch"]:
            self.assertEqual(reader.get_job(job_id)["state"], "succeeded")

    # ---- https ----

    def test_https_with_a_ca_file(self):
        proxy = TlsProxy(self.tmp, self.nodes[0].port)
        self.addCleanup(proxy.close)
        with self.assertRaises(mc.MeshworkError) as e:
            mc.Client(proxy.url).members()  # the system CAs do not know this one
        self.assertEqual(e.exception.status, 0)
        self.assertIn("certificate", str(e.exception))
        key = mc.Key.generate()
        mesh = mc.Client(proxy.url, key=key, ca_file=proxy.cert)
        self.addCleanup(mesh.close)
        job = mesh.submit({"type": "echo", "payload": {"over": "tls"}})
        done = mesh.wait_job(job["id"], timeout=scaled(60))
        self.assertEqual(mesh.verify_job(done)["status"], "valid")
        if NODEJS:
            run_node_client("mesh", proxy.url, "--ca", proxy.cert)
            err = run_node_client("mesh", proxy.url, expect_failure=True)
            self.assertIn("MeshworkError", err)
            self.assertIn("certificate", err)


class StubNode(http.server.BaseHTTPRequestHandler):
    """Answers GET /v1/jobs/{id} with `queued` the first three times, then `succeeded`, at once
    (as a node without long polling would), and records each query."""

    protocol_version = "HTTP/1.1"
    queries = []

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        self.queries.append(urllib.parse.parse_qs(url.query))
        state = "queued" if len(self.queries) <= 3 else "succeeded"
        body = json.dumps({"id": url.path.rsplit("/", 1)[-1], "state": state}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class WaitWithoutLongPoll(unittest.TestCase):

    def setUp(self):
        StubNode.queries = []
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), StubNode)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]

    def assert_long_polled(self):
        self.assertEqual(len(StubNode.queries), 4, StubNode.queries)
        for q in StubNode.queries:
            self.assertIn("wait_s", q, q)
            self.assertTrue(0 <= int(q["wait_s"][0]) <= 60, q)

    def test_python(self):
        c = mc.Client(self.url)
        self.addCleanup(c.close)
        job = c.wait_job("a" * 64, timeout=30)
        self.assertEqual(job["state"], "succeeded")
        self.assert_long_polled()

    @unittest.skipUnless(NODEJS, "Node.js is not installed")
    def test_node(self):
        self.assertEqual(run_node_client("wait", self.url)["state"], "succeeded")
        self.assert_long_polled()


class NodeClientUnit(unittest.TestCase):

    @unittest.skipUnless(NODEJS, "Node.js is not installed")
    def test_hashing_and_json(self):
        self.assertEqual(run_node_client("unit"), {"unit": "ok"})

    def test_python_json_matches_the_node(self):
        text = ('{"b":18446744073709551615,"f":[1.0,-0.0,1e-05,0.0001,1e+15,100000000000000.0,'
                '0.1,-2.5e-07],"k":{"a":2,"z":-9223372036854775808,"é":1},"s":"é\\u0001\\n"}')
        self.assertEqual(mc.canonical_json(mc.parse_json(text)), text)
        # Keys sort by UTF-8 bytes; an integer beyond uint64 is a double to the node.
        self.assertEqual(mc.canonical_json({"\U0001F600": 1, "\uFFFD": 2, "b": [1.5, 1e21, 2**64]}),
                         '{"b":[1.5,1e+21,1.8446744073709552e+19],"\uFFFD":2,"\U0001F600":1}')
        self.assertEqual(mc.blake2b256_hex(b"abc"),
                         "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319")


if __name__ == "__main__":
    unittest.main()
