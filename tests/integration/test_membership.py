"""Membership (SWIM + Lifeguard gossip) between 5 real node processes on 127.0.0.1: join, kill -9,
a short SIGSTOP that must not be fatal, a long SIGSTOP that is and its refutation, a node with
the wrong cluster key, restart under the same name, graceful leave.

Every test polls GET /v1/cluster/members on the nodes and records every (state, incarnation) that
any node reports for any member, so a transient false death between two assertions is caught too.
Timeouts are generous upper bounds (scaled() for ASan builds); no test asserts on timing. The
observation windows (how long we watch for something that must not happen) are fixed.
"""

import os
import random
import signal
import socket
import time
import unittest

from harness import Node, NodeError, NodeTestCase, free_port, scaled

N = 5
POLL_S = 0.03  # pause between two polling rounds, so that polling does not starve the nodes


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_gossip_port():
    """A loopback port free for both UDP (gossip) and TCP (the peer transport listens at the
    gossip address) a moment ago, below the kernel's ephemeral range: outgoing connections never
    take it, so a restarted node finds it free again. MeshNode retries if it is taken since."""
    rng = random.SystemRandom()
    high = min(_ephemeral_low(), 32768)
    for _ in range(1000):
        port = rng.randrange(10000, high)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free gossip port below %d" % high)


class MeshNode(Node):
    """A Node with a gossip address of its own and seeds to join through. The gossip port is
    chosen on the first start and kept across restarts (the same address, as a restarted process
    would have)."""

    def __init__(self, tmp, name, args=(), join=()):
        super().__init__(tmp, name, args)
        self.base_args = list(self.args)
        self.join = list(join)
        self.gossip_port = None
        self.pinned = False  # once started, restarts use the same gossip port
        self.paused = False  # SIGSTOPped: its API does not answer, do not poll it

    @property
    def gossip(self):
        return "127.0.0.1:%d" % self.gossip_port

    @property
    def api(self):
        return "127.0.0.1:%d" % self.port

    def _spawn_and_wait(self):
        if self.gossip_port is None:
            self.gossip_port = free_gossip_port()
        self.args = self.base_args + ["--gossip", self.gossip]
        if self.join:
            self.args += ["--join", ",".join(self.join)]
        taken = ("cannot bind gossip socket", "cannot listen for peers")
        try:
            ok = super()._spawn_and_wait()
        except NodeError:
            if not self.pinned and any(t in self.last_start_log() for t in taken):
                self.gossip_port = None  # taken since we looked: try another
                return False
            raise
        if ok:
            self.pinned = True
        elif not self.pinned and any(t in self.last_start_log() for t in taken):
            self.gossip_port = None
        return ok

    def last_start_log(self):
        text = self.log_text()
        return text[text.rfind("=== start"):]

    def pause(self):
        self._pause_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self._pause_signal(signal.SIGCONT)
        self.paused = False

    def _pause_signal(self, sig):
        assert self.alive(), "node %s is not running" % self.name
        self.proc.send_signal(sig)



def start_mesh(test, n, args):
    """Starts n1..nN with `args`, each joining through n1, into test.nodes (stopped in the test's
    cleanups), and waits until every node sees N alive members (test.alive_seen(node))."""
    first = None
    for i in range(1, n + 1):
        node = MeshNode(test.tmp, "n%d" % i, list(args), join=[first.gossip] if first else [])
        test.addCleanup(node.stop)
        node.start()
        test.nodes.append(node)
        first = first or node
    test.wait_until("every node to see %d alive members" % n,
                    lambda: all(test.alive_seen(x) == n for x in test.nodes), 30)
    return test.nodes

class Membership(NodeTestCase):

    def setUp(self):
        super().setUp()
        self.nodes = []
        self.clients = {}
        # (observer, member) -> [(t, state, incarnation)], one entry per change seen
        self.history = {}
        self.t0 = time.monotonic()
        self.wall_start_ms = int(time.time() * 1000)

    # ---- nodes ----

    def start_member(self, name, key=None, join=(), extra=()):
        args = ["--workers", 1, "--tag", "zone=z-" + name] + list(extra)
        if key:
            args += ["--cluster-key", key]
        node = MeshNode(self.tmp, name, args, join)
        self.addCleanup(node.stop)
        # Runs before node.stop (LIFO): a node still SIGSTOPped would otherwise ignore SIGTERM.
        self.addCleanup(self._resume_if_paused, node)
        node.start()
        self.nodes.append(node)
        return node

    def _resume_if_paused(self, node):
        if node.paused and node.alive():
            node.resume()

    def cluster_key(self, name):
        path = os.path.join(self.tmp, name + ".key")
        self.run_cli("keygen", "--cluster", "--out", path, check=0)
        return path

    def start_mesh(self, n=N, key=None):
        """n nodes, n2..nN joining through n1; returns them once every node sees n alive."""
        first = self.start_member("n1", key)
        for i in range(2, n + 1):
            self.start_member("n%d" % i, key, join=[first.gossip])
        nodes = list(self.nodes)
        self.wait_all_alive(nodes, "the initial join")
        return nodes

    def client(self, node):
        c = self.clients.get(node)
        if c is None or c[0] != node.starts or c[1].port != node.port:
            c = (node.starts, node.client())  # the harness closes it on kill -9 / SIGTERM / stop
            self.clients[node] = c
        return c[1]

    def node_info(self, node):
        r = self.client(node).get("/v1/node")
        self.assertEqual(r.status, 200, r)
        return r.json()

    # ---- observing ----

    def view(self, node):
        """node's member list as {name: member}, recorded into self.history."""
        r = self.client(node).get("/v1/cluster/members")
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(body["self"], node.name, body)
        members = {}
        now = time.monotonic() - self.t0
        for m in body["members"]:
            self.assertNotIn(m["name"], members, "a member listed twice: %s" % body)
            self.assertIn(m["state"], ("alive", "suspect", "dead", "left"), m)
            members[m["name"]] = m
            seen = self.history.setdefault((node.name, m["name"]), [])
            if not seen or seen[-1][1:] != (m["state"], m["incarnation"]):
                seen.append((round(now, 3), m["state"], m["incarnation"]))
        return members

    def views(self, observers):
        return {o.name: self.view(o) for o in observers if not o.paused}

    def states_seen(self, member, observers=None):
        """Every state any observer (default: all) ever reported for `member`."""
        names = None if observers is None else {o.name for o in observers}
        return {s for (obs, m), seen in self.history.items()
                if m == member and (names is None or obs in names) for _, s, _ in seen}

    def describe(self, observers=(), members=None):
        """History and log tails for a failure message."""
        lines = ["history (t s since test start, state, incarnation), per observer -> member:"]
        for (obs, m), seen in sorted(self.history.items()):
            if members is None or m in members:
                lines.append("  %s -> %s: %s" % (obs, m, seen))
        for node in observers or self.nodes:
            lines.append(node.log_tail(25))
        return "\n".join(lines)

    def wait_until(self, what, check, observers, timeout):
        """Polls the observers' views until check(views) is true; fails with the history."""
        deadline = time.monotonic() + scaled(timeout)
        last = None
        while time.monotonic() < deadline:
            last = self.views(observers)
            if check(last):
                return last
            time.sleep(POLL_S)
        self.fail("timed out (%ss) waiting for %s\nlast views: %s\n%s"
                  % (scaled(timeout), what, last, self.describe()))

    def watch(self, observers, seconds, every=None):
        """Polls the observers for `seconds` (fixed, not scaled), calling every(views) each round."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            v = self.views(observers)
            if every:
                every(v)
            time.sleep(POLL_S)

    def wait_all_alive(self, nodes, what, timeout=30):
        """Every node in `nodes` sees exactly `nodes`, all alive, with matching incarnations."""
        names = {n.name for n in nodes}

        def ok(views):
            if any(set(v) != names or any(m["state"] != "alive" for m in v.values())
                   for v in views.values()):
                return False
            incs = {name: {v[name]["incarnation"] for v in views.values()} for name in names}
            return all(len(s) == 1 for s in incs.values())

        return self.wait_until("every node to see %s alive (%s)" % (sorted(names), what), ok,
                               nodes, timeout)

    def assertNeverDead(self, members, observers=None, what=""):
        """No observer ever reported any of `members` dead (or left)."""
        for name in members:
            bad = self.states_seen(name, observers) & {"dead", "left"}
            self.assertFalse(bad, "%s was reported %s%s\n%s"
                             % (name, sorted(bad), what, self.describe(members=[name])))

    def incarnation_everywhere(self, member, observers):
        incs = {v[member]["incarnation"] for v in self.views(observers).values()}
        self.assertEqual(len(incs), 1, "observers disagree on %s's incarnation: %s\n%s"
                         % (member, incs, self.describe(members=[member])))
        return incs.pop()

    # ---- the tests ----

    def test_1_join_through_one_seed(self):
        nodes = self.start_mesh()
        keys = {n.name: self.node_info(n)["public_key"] for n in nodes}
        views = self.views(nodes)
        for node in nodes:
            for peer in nodes:
                m = views[node.name][peer.name]
                where = "%s's record of %s: %s" % (node.name, peer.name, m)
                self.assertEqual(m["state"], "alive", where)
                self.assertEqual(m["api"], peer.api, where)
                self.assertEqual(m["gossip"], peer.gossip, where)
                self.assertEqual(m["public_key"], keys[peer.name], where)
                self.assertEqual(m["tags"], {"zone": "z-" + peer.name}, where)
                self.assertIsInstance(m["incarnation"], int, where)
                self.assertIsInstance(m["since"], int, where)
                if peer is not node:  # self: see test_since_of_self
                    self.assertGreaterEqual(m["since"], self.wall_start_ms - 1000, where)
                    self.assertLessEqual(m["since"], time.time() * 1000 + 1000, where)
        # Each node's own incarnation is the one the others hold.
        for node in nodes:
            g = self.node_info(node)["gossip"]
            where = "%s's gossip stats: %s" % (node.name, g)
            self.assertEqual(g["incarnation"], views["n1"][node.name]["incarnation"], where)
            self.assertEqual(g["members"], N, where)
            self.assertEqual(g["live"], N, where)
            self.assertEqual(g["dropped_unsealable"], 0, where)
            # Nodes of one build never send each other an undecodable packet, so any count
            # here is a datagram corrupted on its way in (seen with ASan builds: the driver's
            # drain() reads into the buffer a pending async receive owns).
            self.assertEqual(g["dropped_malformed"], 0, where)
        self.assertNeverDead([n.name for n in nodes])

    def test_2_kill9_is_detected_by_every_survivor(self):
        nodes = self.start_mesh()
        victim = nodes[2]
        survivors = [n for n in nodes if n is not victim]
        victim.kill9()
        self.wait_until("every survivor to mark %s dead" % victim.name,
                        lambda vs: all(v[victim.name]["state"] == "dead" for v in vs.values()),
                        survivors, 30)
        # And it stays dead for a while, while the survivors stay alive to one another.
        self.watch(survivors, 2.0)
        self.assertEqual(self.states_seen(victim.name) - {"alive", "suspect", "dead"}, set(),
                         self.describe(members=[victim.name]))
        self.wait_all_alive_among(survivors, dead=[victim.name])
        self.assertNeverDead([s.name for s in survivors])

    def wait_all_alive_among(self, nodes, dead):
        """Every node in `nodes` sees all of `nodes` alive and every name in `dead` dead."""
        names = {n.name for n in nodes}

        def ok(views):
            return all(set(v) == names | set(dead)
                       and all(v[n]["state"] == "alive" for n in names)
                       and all(v[d]["state"] == "dead" for d in dead) for v in views.values())

        return self.wait_until("%s alive and %s dead everywhere" % (sorted(names), dead), ok,
                               nodes, 30)

    def test_3_short_sigstop_is_not_fatal(self):
        nodes = self.start_mesh()
        victim = nodes[3]
        others = [n for n in nodes if n is not victim]
        inc_before = self.incarnation_everywhere(victim.name, nodes)
        self.watch(nodes, 1.0)  # a steady state to compare with

        victim.pause()
        stopped_at = time.monotonic()
        while time.monotonic() - stopped_at < 0.3:
            self.views(others)
            time.sleep(0.01)
        victim.resume()
        stopped_for = time.monotonic() - stopped_at

        self.watch(nodes, 6.0)  # during and after: every state anyone reports is recorded
        self.assertNeverDead([n.name for n in nodes],
                             what=" after a SIGSTOP of %s for %.2f s" % (victim.name, stopped_for))
        views = self.wait_all_alive(nodes, "after the short SIGSTOP")
        self.assertGreaterEqual(views["n1"][victim.name]["incarnation"], inc_before)

    def test_4_long_sigstop_is_fatal_then_refuted(self):
        nodes = self.start_mesh()
        victim = nodes[1]
        others = [n for n in nodes if n is not victim]
        inc_before = self.incarnation_everywhere(victim.name, nodes)

        victim.pause()
        stopped_at = time.monotonic()
        self.wait_until("every other node to mark the stopped %s dead" % victim.name,
                        lambda vs: all(v[victim.name]["state"] == "dead" for v in vs.values()),
                        others, 30)
        while time.monotonic() - stopped_at < 6.0:  # stopped for ~6 s (longer if detection was)
            self.views(others)
            time.sleep(POLL_S)
        victim.resume()

        def refuted(vs):
            return all(v[victim.name]["state"] == "alive"
                       and v[victim.name]["incarnation"] > inc_before for v in vs.values())

        self.wait_until("%s to refute with an incarnation above %d, alive everywhere"
                        % (victim.name, inc_before), refuted, nodes, 30)
        views = self.wait_all_alive(nodes, "after the refutation")
        inc_after = views["n1"][victim.name]["incarnation"]
        self.assertGreater(inc_after, inc_before)
        g = self.node_info(victim)["gossip"]
        self.assertEqual(g["incarnation"], inc_after, g)
        self.assertEqual(g["live"], N, g)
        self.assertNeverDead([n.name for n in others])

    def test_5_wrong_cluster_key_never_joins(self):
        key = self.cluster_key("cluster")
        other_key = self.cluster_key("other")
        sealed = self.start_mesh(N - 1, key=key)
        before = {n.name: self.node_info(n)["gossip"]["dropped_unsealable"] for n in sealed}
        intruder = self.start_member("x5", other_key, join=[n.gossip for n in sealed])
        sealed_names = {n.name for n in sealed}

        def no_intruder(views):
            for name, v in views.items():
                if name == intruder.name:
                    self.assertEqual(set(v), {intruder.name}, "the intruder learned: %s" % v)
                else:
                    self.assertEqual(set(v), sealed_names, "%s's members: %s" % (name, v))
                    for m in v.values():
                        self.assertNotEqual(m["gossip"], intruder.gossip, m)

        self.watch(sealed + [intruder], 5.0, every=no_intruder)

        def dropped(node):
            return self.node_info(node)["gossip"]["dropped_unsealable"]

        deadline = time.monotonic() + scaled(30)
        while any(dropped(n) <= before[n.name] for n in sealed) and time.monotonic() < deadline:
            time.sleep(0.1)
        after = {n.name: dropped(n) for n in sealed}
        for n in sealed:
            self.assertGreater(after[n.name], before[n.name],
                               "%s dropped no unsealable packet: %s -> %s\n%s"
                               % (n.name, before, after, intruder.log_tail()))
        self.assertEqual(self.node_info(intruder)["gossip"]["live"], 1)
        self.wait_all_alive(sealed, "the sealed nodes, with the intruder knocking")
        self.assertNeverDead(sealed_names)

    def test_6_restart_with_the_same_name(self):
        nodes = self.start_mesh()
        victim = nodes[2]
        survivors = [n for n in nodes if n is not victim]
        inc_before = self.incarnation_everywhere(victim.name, nodes)
        key = self.node_info(victim)["public_key"]
        api, gossip = victim.api, victim.gossip

        victim.kill9()
        self.wait_until("every survivor to mark %s dead" % victim.name,
                        lambda vs: all(v[victim.name]["state"] == "dead" for v in vs.values()),
                        survivors, 30)
        victim.restart()
        self.assertEqual((victim.api, victim.gossip), (api, gossip), "restarted elsewhere")
        views = self.wait_all_alive(nodes, "after %s restarted" % victim.name)
        m = views["n1"][victim.name]
        self.assertGreater(m["incarnation"], inc_before, m)
        self.assertEqual((m["public_key"], m["api"], m["gossip"]), (key, api, gossip), m)
        # The restarted node may still refute a suspicion of its old self (incarnation + 1) after
        # n1's view above was read: every member must end up on the node's own incarnation.
        self.wait_until("every member to hold %s's own incarnation" % victim.name,
                        lambda vs: all(v[victim.name]["incarnation"]
                                       == self.node_info(victim)["gossip"]["incarnation"]
                                       for v in vs.values()), nodes, 30)

        # Again, restarting at once: the survivors may not even have noticed the gap. The new
        # process starts from wall-clock seconds, which may be the second its predecessor refuted
        # or started in; then nothing changes (docs/protocol.md, "Restart"), so require >= here.
        inc_before = m["incarnation"]
        victim.kill9()
        victim.restart()
        views = self.wait_all_alive(nodes, "after a quick restart")
        inc_now = views["n1"][victim.name]["incarnation"]
        self.assertGreaterEqual(inc_now, inc_before)
        self.wait_until("every member to hold %s's own incarnation" % victim.name,
                        lambda vs: all(v[victim.name]["incarnation"]
                                       == self.node_info(victim)["gossip"]["incarnation"]
                                       for v in vs.values()), nodes, 30)

        # At once and on another API port: the new metadata must win everywhere, and so the
        # incarnation must go up, even within the same wall-clock second (the node refutes its
        # old self's alive, which has the same incarnation but other metadata).
        inc_before = inc_now
        victim.kill9()
        victim.start(port=free_port())
        self.assertNotEqual(victim.api, api)
        views = self.wait_until(
            "%s alive everywhere at its new API address %s" % (victim.name, victim.api),
            lambda vs: all(v[victim.name]["state"] == "alive"
                           and v[victim.name]["api"] == victim.api for v in vs.values()),
            nodes, 30)
        self.assertGreater(views["n1"][victim.name]["incarnation"], inc_before)
        self.wait_all_alive(nodes, "after the restart on a new API port")
        self.assertNeverDead([s.name for s in survivors])

    def test_7_sigterm_leaves_gracefully(self):
        nodes = self.start_mesh()
        leaver = nodes[4]
        others = [n for n in nodes if n is not leaver]
        inc_before = self.incarnation_everywhere(leaver.name, nodes)

        self.assertEqual(leaver.sigterm(), 0, leaver.log_tail())
        self.wait_until("every other node to see %s left" % leaver.name,
                        lambda vs: all(v[leaver.name]["state"] == "left" for v in vs.values()),
                        others, 30)
        self.watch(others, 4.0)  # left stays left: nobody probes it into dead
        self.assertNotIn("dead", self.states_seen(leaver.name),
                         "a node that left was reported dead\n" + self.describe())
        for v in self.views(others).values():
            self.assertEqual(v[leaver.name]["state"], "left", v)
            self.assertEqual(v[leaver.name]["incarnation"], inc_before, v)
        self.assertNeverDead([n.name for n in others])

        # Coming back after leaving: alive everywhere again, above the incarnation it left with.
        leaver.restart()
        views = self.wait_all_alive(nodes, "after %s came back" % leaver.name)
        self.assertGreater(views["n1"][leaver.name]["incarnation"], inc_before)

    # docs/api.md says `since` is when the member entered its state; for the node itself that is
    # when it started (it once reported the host's boot time).
    def test_since_of_self(self):
        node = self.start_member("solo")
        me = self.view(node)["solo"]
        self.assertGreaterEqual(me["since"], self.wall_start_ms - 1000, me)
        self.assertLessEqual(me["since"], time.time() * 1000 + 1000, me)


if __name__ == "__main__":
    unittest.main()
