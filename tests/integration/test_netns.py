"""Real deployment: `--advertise HOST`, joining by host name, and 3 nodes on 3 network namespaces.

Loopback (always runs):
- binding 0.0.0.0 without --advertise is a startup error, before anything is bound;
- a node joins through `localhost:PORT`, and one that advertises `localhost` is announced with
  that name for its API and its resolved address for gossip.
Namespaces (needs root and `ip netns add`; skipped with the reason otherwise, as chaos.sh does):
- a hub namespace holds a bridge; three namespaces each hold one node whose eth0 is a veth on
  that bridge, 10.213.77.<i>/24 (a private subnet that exists only inside namespaces this test
  made and removes, whatever happens). Each node binds 0.0.0.0 and advertises its own address.
  The test process moves into the hub namespace for the test (setns) and back afterwards.
- every node sees the others at their advertised addresses; a long job's owner is killed with
  kill -9 and another node takes the job over and finishes it.
"""

import ctypes
import os
import shutil
import subprocess
import unittest

from harness import BIN, Node, NodeTestCase, free_port, scaled
from test_membership import MeshNode

SUBNET = "10.213.77"
API_PORT, GOSSIP_PORT = 8001, 7001
CLONE_NEWNET = 0x40000000


def ip(*args, check=True):
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), r.stderr.strip()))
    return r.returncode


def namespaces_refused():
    """Why this process cannot make network namespaces, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip"):
        return "the ip command (iproute2) is missing"
    probe = "mwprobe%d" % os.getpid()
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return "'ip netns add' was refused: " + r.stderr.strip()
    ip("netns", "del", probe, check=False)
    return None


def setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns: " + os.strerror(ctypes.get_errno()))


class Helpers(NodeTestCase):

    @staticmethod
    def members(client):
        r = client.get("/v1/cluster/members")
        return {m["name"]: m for m in r.json()["members"]} if r.status == 200 else {}


class Advertise(Helpers):

    def start_refused(self, *args):
        cmd = [BIN, "node", "--name", "bad", "--data", os.path.join(self.tmp, "bad")] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=scaled(30),
                           stdin=subprocess.DEVNULL)
        return r.returncode, r.stdout + r.stderr

    def test_binding_every_interface_needs_an_advertised_address(self):
        # Refused before any socket is bound, so nothing listens on the host's interfaces.
        for args in (["--api", "0.0.0.0:%d" % free_port()],
                     ["--api", "127.0.0.1:%d" % free_port(), "--gossip", "0.0.0.0:0"]):
            with self.subTest(args=args):
                code, out = self.start_refused(*args)
                self.assertNotEqual(code, 0, out)
                self.assertIn("--advertise", out)
        code, out = self.start_refused("--api", "127.0.0.1:%d" % free_port(),
                                       "--advertise", "0.0.0.0")
        self.assertNotEqual(code, 0, out)
        self.assertIn("--advertise", out)
        code, out = self.start_refused("--api", "127.0.0.1:%d" % free_port(),
                                       "--join", "no-such-host.invalid:7001")
        self.assertNotEqual(code, 0, out)
        self.assertIn("no-such-host.invalid", out)

    def test_join_by_host_name_and_advertise_a_name(self):
        n1 = MeshNode(self.tmp, "n1", ["--workers", 1])
        self.addCleanup(n1.stop)
        n1.start()
        n2 = MeshNode(self.tmp, "n2", ["--workers", 1, "--advertise", "localhost"],
                      join=["localhost:%d" % n1.gossip_port])
        self.addCleanup(n2.stop)
        n2.start()
        c1, c2 = n1.client(), n2.client()
        self.wait_until("both nodes to see each other alive", lambda: all(
            len(m) == 2 and all(x["state"] == "alive" for x in m.values())
            for m in (self.members(c1), self.members(c2))), 30, (n1, n2))
        seen = self.members(c1)["n2"]
        self.assertEqual(seen["api"], "localhost:%d" % n2.port, seen)
        self.assertEqual(seen["gossip"], "127.0.0.1:%d" % n2.gossip_port, seen)
        self.assertEqual(c2.get("/v1/node").json()["api"], "localhost:%d" % n2.port)
        job = self.submit(c2, {"type": "echo", "payload": {"via": "localhost"}})
        self.assertEqual(self.wait_job(c1, job["id"])["state"], "succeeded")


REFUSED = namespaces_refused()


@unittest.skipIf(REFUSED, "network namespaces unavailable: %s" % REFUSED)
class Namespaces(Helpers):

    def setUp(self):
        super().setUp()
        self.prefix = "mwt%d" % os.getpid()
        self.hub = self.prefix + "-hub"
        self.addCleanup(self.teardown_network)  # runs after the nodes are stopped (LIFO)
        ip("netns", "add", self.hub)
        own = os.open("/proc/self/ns/net", os.O_RDONLY)
        self.addCleanup(os.close, own)
        self.addCleanup(setns, own)
        hub = os.open("/run/netns/" + self.hub, os.O_RDONLY)
        try:
            setns(hub)
        finally:
            os.close(hub)
        ip("link", "set", "lo", "up")
        ip("link", "add", "br0", "type", "bridge")
        ip("link", "set", "br0", "up")
        ip("addr", "add", SUBNET + ".254/24", "dev", "br0")
        for i in (1, 2, 3):
            ns = "%s-n%d" % (self.prefix, i)
            ip("netns", "add", ns)
            ip("link", "add", "v%d" % i, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("link", "set", "v%d" % i, "master", "br0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", "%s.%d/24" % (SUBNET, i), "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")

    def teardown_network(self):
        for name in (self.hub,) + tuple("%s-n%d" % (self.prefix, i) for i in (1, 2, 3)):
            ip("netns", "del", name, check=False)

    def start_mesh(self):
        seeds = ",".join("%s.%d:%d" % (SUBNET, i, GOSSIP_PORT) for i in (1, 2))
        nodes = []
        for i in (1, 2, 3):
            address = "%s.%d" % (SUBNET, i)
            node = Node(self.tmp, "n%d" % i, ["--gossip", "0.0.0.0:%d" % GOSSIP_PORT,
                                              "--advertise", address, "--join", seeds,
                                              "--workers", 2])
            node.host, node.bind_host = address, "0.0.0.0"
            node.prefix = ["ip", "netns", "exec", "%s-n%d" % (self.prefix, i)]
            self.addCleanup(node.stop)
            node.start(port=API_PORT)
            nodes.append(node)
        return nodes

    def test_three_hosts_bind_every_interface_and_take_over_a_killed_owner(self):
        nodes = self.start_mesh()
        clients = {n.name: n.client() for n in nodes}
        self.wait_until("every node to see 3 alive members", lambda: all(
            sum(m["state"] == "alive" for m in self.members(c).values()) == 3
            for c in clients.values()), 30, nodes)
        for c in clients.values():
            for n in nodes:
                m = self.members(c)[n.name]
                self.assertEqual(m["gossip"], "%s:%d" % (n.host, GOSSIP_PORT), m)
                self.assertEqual(m["api"], "%s:%d" % (n.host, n.port), m)

        job = self.submit(clients["n1"], {"type": "sleep", "payload": {"ms": 4000},
                                          "max_attempts": 1})
        owner = next(n for n in nodes if n.name == job["owner"])
        other = next(n for n in nodes if n is not owner)
        self.wait_job(clients[other.name], job["id"], "running", 30, other)
        owner.kill9()
        view = self.wait_job(clients[other.name], job["id"], "succeeded", 45, other)
        self.assertEqual(view["attempts"], 2, view)
        self.assertNotEqual(view["receipt"]["node"], owner.name, view)
        reasons = [h["reason"] for h in view["history"]]
        self.assertTrue(any(("owner %s dead" % owner.name) in x for x in reasons), reasons)


if __name__ == "__main__":
    unittest.main()
