"""HTTPS on the public API (`meshwork node --tls-cert FILE --tls-key FILE`), with a CA and node
certificate made by `openssl` in the test's temp dir.

- A 3-node mesh that serves HTTPS only: a job submitted to one node is read from another, and a
  cluster-wide list on each node shows the jobs every other node holds (R = 1, so a node holds only
  its own share and the list needs its peers' answers, which travel over HTTPS too).
- The CLI: an https:// URL with --ca-file verifies; without it the node's certificate is refused.
- Garbage on the TLS port (plain HTTP, random bytes, a connection that says nothing) closes those
  connections only: the node goes on serving.
- Bad startup: a key that does not match the certificate, a file that is no certificate, a
  certificate without its key: a clear error, a non-zero exit, nothing served.
"""

import json
import os
import shutil
import socket
import ssl
import subprocess
import unittest

from harness import BIN, NodeTestCase, free_port, scaled
from test_membership import MeshNode


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True,
                   stdin=subprocess.DEVNULL)


def make_pki(directory):
    """A self-signed CA (ca.pem) and a node certificate it signed (node.pem, node.key) for
    127.0.0.1 and localhost; another key (other.key) that matches nothing."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=meshwork test CA", cwd=directory)
    openssl("req", *ec, "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=meshwork node",
            cwd=directory)
    with open(os.path.join(directory, "san.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "node.pem", "-days", "2", "-extfile", "san.cnf",
            cwd=directory)
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-out", "other.key", cwd=directory)
    return {name: os.path.join(directory, name)
            for name in ("ca.pem", "node.pem", "node.key", "other.key")}


@unittest.skipUnless(shutil.which("openssl"), "the openssl command is needed to make certificates")
class Tls(NodeTestCase):

    def setUp(self):
        super().setUp()
        self.pki = make_pki(self.tmp)
        self.tls = ssl.create_default_context(cafile=self.pki["ca.pem"])
        self.nodes = []

    def tls_args(self):
        return ["--tls-cert", self.pki["node.pem"], "--tls-key", self.pki["node.key"],
                "--tls-ca", self.pki["ca.pem"]]

    def start_mesh(self, n, extra=()):
        first = None
        for i in range(1, n + 1):
            node = MeshNode(self.tmp, "n%d" % i, ["--workers", 2] + self.tls_args() + list(extra),
                            join=[first.gossip] if first else [])
            node.tls = self.tls
            self.addCleanup(node.stop)
            node.start()
            self.nodes.append(node)
            first = first or node
        clients = [node.client() for node in self.nodes]
        self.wait_until("every node to see %d alive members" % n, lambda: all(
            sum(m["state"] == "alive" for m in c.get("/v1/cluster/members").json()["members"]) == n
            for c in clients), 30)
        return self.nodes, clients

    def test_a_tls_mesh_accepts_reads_and_lists_jobs_over_https(self):
        nodes, clients = self.start_mesh(3, ["--replicas", 1, "--write-quorum", 1])
        ids = []
        for i in range(12):
            job = self.submit(clients[i % 3], {"type": "echo", "payload": {"i": i}})
            ids.append(job["id"])
        for job_id in ids:
            self.wait_job(clients[2], job_id, "succeeded")
        holders = set()
        for node, c in zip(nodes, clients):
            local = {j["id"] for j in c.get("/v1/jobs?scope=local&limit=100").json()["jobs"]}
            if local & set(ids):
                holders.add(node.name)
            self.assertFalse(local >= set(ids), "with R = 1 no node should hold every job")
        self.assertGreater(len(holders), 1, "the jobs should be spread over the nodes")
        for node, c in zip(nodes, clients):
            r = c.get("/v1/jobs?limit=100")
            self.assertEqual(r.status, 200, r)
            listed = {j["id"] for j in r.json()["jobs"]}
            self.assertEqual(listed & set(ids), set(ids),
                             "%s lists only part of the mesh's jobs\n%s" % (node.name,
                                                                          node.log_tail(20)))
            ring = c.get("/v1/cluster/ring").json()
            held = {m["name"]: m["jobs_held"] for m in ring["members"]}
            self.assertTrue(all(isinstance(v, int) for v in held.values()), held)
            self.assertEqual(sum(held.values()), len(ids), held)
        # Plain HTTP to a TLS node gets no HTTP answer.
        with socket.create_connection(("127.0.0.1", nodes[0].port), timeout=scaled(10)) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            self.assertFalse(self.read_all(s).startswith(b"HTTP/"))

    def test_cli_verifies_the_node_with_its_ca_file_and_refuses_it_without(self):
        nodes, clients = self.start_mesh(1)
        url = nodes[0].url
        self.assertTrue(url.startswith("https://"), url)
        r = self.run_cli("submit", "--to", url, "--ca-file", self.pki["ca.pem"], "--type", "echo",
                         "--payload", '{"x":1}', "--wait", check=0)
        job = json.loads(r.stdout)
        self.assertEqual(job["state"], "succeeded", job)
        self.run_cli("status", "--to", url, "--ca-file", self.pki["ca.pem"], job["id"], check=0)
        self.run_cli("members", "--to", url, "--ca-file", self.pki["ca.pem"], check=0)
        refused = self.run_cli("status", "--to", url, job["id"])
        self.assertEqual(refused.returncode, 4, refused)
        self.assertIn("verif", refused.stderr.lower(), refused.stderr)
        # A CA that did not sign the node's certificate is refused as well.
        refused = self.run_cli("status", "--to", url, "--ca-file", self.pki["node.pem"], job["id"])
        self.assertEqual(refused.returncode, 4, refused)
        # The certificate names 127.0.0.1 and localhost; the host name is checked too.
        self.run_cli("status", "--to", "https://localhost:%d" % nodes[0].port, "--ca-file",
                     self.pki["ca.pem"], job["id"], check=0)

    @staticmethod
    def read_all(sock):
        data = b""
        try:
            while len(data) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        return data

    def test_garbage_on_the_tls_port_closes_that_connection_only(self):
        nodes, clients = self.start_mesh(1)
        node, c = nodes[0], clients[0]
        silent = socket.create_connection(("127.0.0.1", node.port), timeout=scaled(10))
        self.addCleanup(silent.close)  # says nothing while the others are refused
        garbage = [b"GET /v1/node HTTP/1.1\r\nHost: x\r\n\r\n",
                   b"\x16\x03\x01\x02\x00" + os.urandom(512),  # a TLS record header, then noise
                   os.urandom(4096), b"\x00" * 70000]
        for payload in garbage * 3:
            with socket.create_connection(("127.0.0.1", node.port), timeout=scaled(10)) as s:
                try:
                    s.sendall(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # closed while we wrote: as refused as it gets
                data = self.read_all(s)
                self.assertFalse(data.startswith(b"HTTP/"), data[:80])
            r = c.get("/v1/node")
            self.assertEqual(r.status, 200, r)
        self.assertTrue(node.alive(), node.log_tail())
        job = self.submit(c, {"type": "echo", "payload": {"after": "garbage"}})
        self.assertEqual(self.wait_job(c, job["id"])["state"], "succeeded")

    def start_bad(self, *args):
        """Runs a node that must refuse to start; returns its exit code and output."""
        cmd = [BIN, "node", "--name", "bad", "--api", "127.0.0.1:%d" % free_port(),
               "--data", os.path.join(self.tmp, "bad-data")] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=scaled(30),
                           stdin=subprocess.DEVNULL)
        return r.returncode, r.stdout + r.stderr

    def test_a_bad_certificate_or_key_is_a_clear_startup_error(self):
        not_pem = os.path.join(self.tmp, "not.pem")
        with open(not_pem, "w") as f:
            f.write("this is not a certificate\n")
        cases = [
            (["--tls-cert", self.pki["node.pem"], "--tls-key", self.pki["other.key"]],
             "does not match"),
            (["--tls-cert", not_pem, "--tls-key", self.pki["node.key"]], "--tls-cert"),
            (["--tls-cert", self.pki["node.pem"], "--tls-key", not_pem], "--tls-key"),
            (["--tls-cert", self.pki["node.pem"]], "--tls-key"),
            (["--tls-key", self.pki["node.key"]], "--tls-cert"),
            (["--tls-cert", os.path.join(self.tmp, "missing.pem"), "--tls-key",
              self.pki["node.key"]], "missing.pem"),
            (["--tls-cert", self.pki["node.pem"], "--tls-key", self.pki["node.key"],
              "--tls-ca", not_pem], "--tls-ca"),
        ]
        for args, says in cases:
            with self.subTest(args=args):
                code, out = self.start_bad(*args)
                self.assertNotEqual(code, 0, out)
                self.assertIn(says, out)


if __name__ == "__main__":
    unittest.main()
