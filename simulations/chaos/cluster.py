"""The real cluster a chaos run drives: node processes, their network, and HTTP to them.

Two networks:
  Namespaces  each node in its own network namespace (<prefix>-n<i>), its eth0 a veth whose other
              end sits on bridge br0 in the hub namespace, where this driver runs (chaos.sh starts
              it there with `ip netns exec`). Addresses are 169.254.77.<i>/24 (link-local, inside
              namespaces this run made; the hub has .254). A partition moves the hub ends of the
              cut nodes' veths onto a second bridge, br1: the cut nodes still reach one another,
              the rest (and this driver) reach none of them; healing moves them back.
  Loopback    every node on 127.0.0.1 with its own ports (base_port + i for the API, base_port +
              100 + i for gossip); no partitions. Used where namespaces are refused.
Nodes are started with PR_SET_PDEATHSIG, so a driver that dies takes them with it.
Thread-safety: Cluster's methods are called from the fault thread and the final phase; the load
and poll threads only read addresses and call `reachable()`/`live_for_clients()`, which take the
lock. Every node process is forked by one spawner thread (see _spawner).
"""

import ctypes
import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time

SUBNET = "169.254.77"
API_PORT = 8001
GOSSIP_PORT = 7001


def _die_with_parent():
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def sh(*args, check=True):
    """Runs an `ip` command; returns its exit code (raises on failure when check)."""
    r = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stderr.strip()))
    return r.returncode


def http_json(host, port, method, path, body=None, timeout=5.0):
    """One request on a fresh connection → (status, headers, parsed body or None). Raises OSError
    (connection refused, reset, timeout) and http.client exceptions."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return resp.status, resp.headers, parsed
    finally:
        conn.close()


class Node:
    def __init__(self, index, name, host, api_port, gossip_port, data_dir, log_path):
        self.index = index
        self.name = name
        self.host = host
        self.api_port = api_port
        self.gossip_port = gossip_port
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc = None
        self.expected_exit = True  # False while running: an exit we did not cause is a crash
        self.paused = False
        self.cut = False
        self.down = True
        self.permanently_down = False
        self.starts = 0
        self.test_break = ""  # this node's own --test-break (a liar or forger), else the run's


class Cluster:
    def __init__(self, args, run_dir, log):
        self.args = args
        self.run_dir = run_dir
        self.log = log
        self.netns = bool(args.netns_prefix)
        self.prefix = args.netns_prefix
        self.lock = threading.Lock()
        self.crashes = []  # {"node", "t", "exit_code"}
        self.spawn_q = queue.Queue()
        self.spawn_done = threading.Event()
        self.spawn_lock = threading.Lock()
        threading.Thread(target=self._spawner, daemon=True).start()
        self.nodes = []
        for i in range(1, args.nodes + 1):
            name = "n%d" % i
            if self.netns:
                host, api, gossip = "%s.%d" % (SUBNET, i), API_PORT, GOSSIP_PORT
            else:
                host, api, gossip = "127.0.0.1", args.base_port + i, args.base_port + 100 + i
            self.nodes.append(Node(i, name, host, api, gossip, os.path.join(run_dir, name),
                                   os.path.join(run_dir, name + ".log")))

    # ---- network ----

    def ns(self, node):
        return "%s-%s" % (self.prefix, node.name)

    def setup_network(self):
        if not self.netns:
            return
        sh("ip", "link", "set", "lo", "up")
        for br in ("br0", "br1"):
            sh("ip", "link", "add", br, "type", "bridge")
            sh("ip", "link", "set", br, "up")
        sh("ip", "addr", "add", SUBNET + ".254/24", "dev", "br0")
        for n in self.nodes:
            ns, veth = self.ns(n), "v%d" % n.index
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", veth, "master", "br0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", "%s.%d/24" % (SUBNET, n.index), "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")

    def teardown_network(self):
        if not self.netns:
            return
        for n in self.nodes:
            sh("ip", "netns", "del", self.ns(n), check=False)
        for br in ("br0", "br1"):
            sh("ip", "link", "del", br, check=False)

    def cut(self, group):
        """Partitions `group` (nodes) from the rest: their veths move to br1."""
        for n in group:
            sh("ip", "link", "set", "v%d" % n.index, "master", "br1")
            with self.lock:
                n.cut = True

    def heal(self, group):
        for n in group:
            sh("ip", "link", "set", "v%d" % n.index, "master", "br0")
            with self.lock:
                n.cut = False

    # ---- processes ----

    def seeds(self):
        return ",".join("%s:%d" % (n.host, n.gossip_port) for n in self.nodes[:2])

    def _spawner(self):
        # PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, so every node is
        # forked by this one thread, which lives as long as the driver.
        while True:
            cmd, log_path, done = self.spawn_q.get()
            try:
                with open(log_path, "ab") as logf:
                    done.append(subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL,
                                                 preexec_fn=_die_with_parent))
            except OSError as e:
                done.append(e)
            self.spawn_done.set()

    def _spawn(self, cmd, log_path):
        done = []
        with self.spawn_lock:
            self.spawn_done.clear()
            self.spawn_q.put((cmd, log_path, done))
            self.spawn_done.wait()
        if isinstance(done[0], OSError):
            raise done[0]
        return done[0]

    def start(self, n):
        cmd = [self.args.bin, "node", "--name", n.name, "--api", "%s:%d" % (n.host, n.api_port),
               "--gossip", "%s:%d" % (n.host, n.gossip_port), "--join", self.seeds(),
               "--data", n.data_dir, "--workers", str(self.args.workers),
               "--replicas", str(self.args.replicas), "--profile", self.args.profile]
        if self.args.retain_s:
            cmd += ["--retain-s", str(self.args.retain_s), "--tombstone-s", "3600"]
        if self.args.sync_interval_ms:
            cmd += ["--sync-interval-ms", str(self.args.sync_interval_ms)]
        if n.test_break or self.args.test_break:
            cmd += ["--test-break", n.test_break or self.args.test_break]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.ns(n)] + cmd
        n.proc = self._spawn(cmd, n.log_path)
        with self.lock:
            n.expected_exit = False
            n.down = False
            n.paused = False
            n.starts += 1

    def kill(self, n, sig=signal.SIGKILL):
        with self.lock:
            n.expected_exit = True
            n.down = True
        if n.proc and n.proc.poll() is None:
            if n.paused:
                n.proc.send_signal(signal.SIGCONT)
            n.proc.send_signal(sig)
            try:
                n.proc.wait(timeout=15 if sig != signal.SIGKILL else 5)
            except subprocess.TimeoutExpired:
                n.proc.kill()
                n.proc.wait()
        with self.lock:
            n.paused = False

    def pause(self, n):
        n.proc.send_signal(signal.SIGSTOP)
        with self.lock:
            n.paused = True

    def resume(self, n):
        n.proc.send_signal(signal.SIGCONT)
        with self.lock:
            n.paused = False

    def check_crashes(self, now):
        """Records nodes that exited without being told to; returns the new ones."""
        new = []
        for n in self.nodes:
            with self.lock:
                if n.proc is None or n.expected_exit:
                    continue
                code = n.proc.poll()
                if code is None:
                    continue
                n.expected_exit = True
                n.down = True
            c = {"node": n.name, "t": now, "exit_code": code}
            self.crashes.append(c)
            new.append(c)
        return new

    def reachable(self):
        """Nodes the driver can talk to now: running, not paused, not cut off."""
        with self.lock:
            return [n for n in self.nodes if not n.down and not n.paused and not n.cut]

    def live_for_clients(self):
        """Nodes a client would still try: all but the permanently killed (a client cannot tell a
        paused or cut-off node from a slow one; its requests there time out)."""
        with self.lock:
            return [n for n in self.nodes if not n.permanently_down]

    def alive_seen_by(self, n):
        try:
            status, _, body = http_json(n.host, n.api_port, "GET", "/v1/cluster/members", timeout=2)
        except (OSError, http.client.HTTPException):
            return 0
        if status != 200 or not body:
            return 0
        return sum(m.get("state") == "alive" for m in body.get("members", []))

    def wait_converged(self, want, timeout):
        """Waits until every reachable node sees `want` alive members; False on timeout."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(self.alive_seen_by(n) >= want for n in self.reachable()):
                return True
            self.check_crashes(time.time())
            time.sleep(0.2)
        return False

    def stop_all(self):
        """SIGTERM every node still running; returns {name: exit code} of those it stopped."""
        codes, stopping = {}, []
        for n in self.nodes:
            if n.proc is None or n.proc.poll() is not None:
                continue
            with self.lock:
                n.expected_exit = True
            if n.paused:
                n.proc.send_signal(signal.SIGCONT)
            n.proc.send_signal(signal.SIGTERM)
            stopping.append(n)
        for n in stopping:
            try:
                codes[n.name] = n.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                n.proc.kill()
                codes[n.name] = n.proc.wait()
        return codes
