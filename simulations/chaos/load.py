"""The chaos run's client: signs jobs and submits them at a steady rate to random nodes.

A share of the jobs (`redundancy_share`, drawn from a generator of its own so that a share of 0
submits exactly the jobs of earlier runs) carries `"redundancy": k`: k replicas run it and a
majority of their results must agree (a chaos run with a liar).
Only `202` and `200` count as acknowledged. A `503`, `429`, timeout or connection error is not: the
client retries the *same signed envelope* (same job id, so a retry can never make a second job) at
another random node after a short backoff, until `give_up_s` has passed since the first try.
Envelopes are signed with libsodium through ctypes (a dependency of the node already).
Thread-safety: `acks` and `attempts` are appended under `lock`.
"""

import base64
import ctypes
import ctypes.util
import hashlib
import http.client
import json
import queue
import random
import threading
import time

from cluster import http_json

# Job mix: (weight, type, payload maker). Long sleeps keep jobs running when faults strike.
MIXES = {
    "mixed": [
        (30, "echo", lambda r: {"n": r.randrange(1 << 30)}),
        (30, "sleep", lambda r: {"ms": r.randint(1000, 5000)}),
        (15, "sleep", lambda r: {"ms": r.randint(50, 500)}),
        (15, "pow", lambda r: {"data": "chaos-%d" % r.randrange(1 << 30),
                               "difficulty_bits": r.randint(8, 14)}),
        (10, "flaky", lambda r: {"fail_times": 1, "ms": r.randint(0, 200)}),
    ],
    "sleep": [(1, "sleep", lambda r: {"ms": r.randint(2000, 5000)})],
}


def expected_attempts(job_type, payload):
    """Attempts a job needs with no fault at all: flaky fails `fail_times` times by design."""
    return payload["fail_times"] + 1 if job_type == "flaky" else 1


class Signer:
    def __init__(self, seed32):
        name = ctypes.util.find_library("sodium") or "libsodium.so.23"
        self.na = ctypes.CDLL(name)
        if self.na.sodium_init() < 0:
            raise RuntimeError("sodium_init failed")
        self.pk = ctypes.create_string_buffer(32)
        self.sk = ctypes.create_string_buffer(64)
        self.na.crypto_sign_seed_keypair(self.pk, self.sk, seed32)
        self.public = self.pk.raw
        self.public_b64 = base64.b64encode(self.public).decode()

    def envelope(self, job_text):
        sig = ctypes.create_string_buffer(64)
        msg = job_text.encode()
        self.na.crypto_sign_detached(sig, None, msg, ctypes.c_ulonglong(len(msg)), self.sk)
        job_id = hashlib.blake2b(msg + self.public, digest_size=32).hexdigest()
        return job_id, {"job": job_text, "public_key": self.public_b64,
                        "signature": base64.b64encode(sig.raw).decode()}


class Load:
    def __init__(self, cluster, seed, rate, mix, give_up_s, t0, workers=16, redundancy_share=0.0,
                 redundancy=3):
        self.cluster = cluster
        self.rng = random.Random(seed * 7919 + 1)
        self.pick = random.Random(seed * 104729 + 3)  # which node each try goes to
        self.signer = Signer(hashlib.sha256(b"meshwork-chaos-%d" % seed).digest())
        self.rate = rate
        self.mix = MIXES[mix]
        self.give_up_s = give_up_s
        self.t0 = t0
        self.share_rng = random.Random(seed * 15485863 + 5)  # which jobs are redundant
        self.redundancy_share = redundancy_share
        self.redundancy = redundancy
        self.lock = threading.Lock()
        # {"id", "type", "payload", "redundancy", "t_submit", "t_ack", "status", "node", "tries"}
        self.acks = []
        self.gave_up = []     # {"id", "t_submit", "last"}: never acknowledged (not counted as lost)
        self.tries = {"202": 0, "200": 0, "503": 0, "429": 0, "other": 0, "error": 0}
        self.q = queue.Queue(maxsize=10_000)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(workers)]

    def _make(self, k):
        weights = [w for w, _, _ in self.mix]
        _, job_type, maker = self.rng.choices(self.mix, weights=weights)[0]
        payload = maker(self.rng)
        spec = {"type": job_type, "payload": payload, "nonce": "chaos-%d" % k,
                "created_at": int(time.time() * 1000), "max_attempts": 3}
        k_runs = 1
        if self.redundancy_share > 0 and self.share_rng.random() < self.redundancy_share:
            k_runs = spec["redundancy"] = self.redundancy
        job_id, env = self.signer.envelope(json.dumps(spec, separators=(",", ":")))
        return {"id": job_id, "type": job_type, "payload": payload, "env": env,
                "redundancy": k_runs}

    def run(self, duration_s):
        """Submits for `duration_s` seconds from now at `rate` jobs/s; returns when submission stops
        (workers keep retrying what is queued until `finish`)."""
        for t in self.threads:
            t.start()
        start = time.time()
        k = 0
        while True:
            due = start + k / self.rate
            if due >= start + duration_s:
                break
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            job = self._make(k)
            job["t_submit"] = time.time()
            self.q.put(job)
            k += 1
        return k

    def finish(self):
        """Waits for every queued submission to be acknowledged or given up."""
        self.q.join()
        self.stop.set()

    def _worker(self):
        while True:
            job = self.q.get()
            try:
                self._submit(job)
            finally:
                self.q.task_done()

    def _submit(self, job):
        tries, last = 0, ""
        while time.time() - job["t_submit"] < self.give_up_s:
            nodes = self.cluster.live_for_clients()
            if not nodes:
                time.sleep(0.2)
                continue
            n = self.pick.choice(nodes)
            tries += 1
            try:
                status, _, body = http_json(n.host, n.api_port, "POST", "/v1/jobs", job["env"],
                                            timeout=8)
            except (OSError, http.client.HTTPException) as e:
                self._count("error")
                last = "%s: %s" % (n.name, type(e).__name__)
                time.sleep(0.2)
                continue
            if status in (200, 202):
                self._count(str(status))
                if body and body.get("id") != job["id"]:
                    raise AssertionError("node %s answered id %s for %s" % (n.name, body.get("id"),
                                                                            job["id"]))
                with self.lock:
                    self.acks.append({"id": job["id"], "type": job["type"],
                                      "payload": job["payload"],
                                      "redundancy": job["redundancy"], "t_submit": job["t_submit"],
                                      "t_ack": time.time(), "status": status, "node": n.name,
                                      "tries": tries})
                return
            self._count(str(status) if status in (503, 429) else "other")
            last = "%s: %d %s" % (n.name, status, (body or {}).get("detail", ""))
            if 400 <= status < 500 and status != 429:
                break  # refused as invalid: a retry cannot help
            time.sleep(0.3 if status in (503, 429) else 0.1)
        with self.lock:
            self.gave_up.append({"id": job["id"], "t_submit": job["t_submit"], "last": last})

    def _count(self, key):
        with self.lock:
            self.tries[key] += 1
