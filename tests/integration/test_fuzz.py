"""Throws MESHWORK_FUZZ_N (default 10,000) random and malformed requests at a real node over a few
keep-alive connections: random bytes, truncated and mutated jobs (wrong types in every field, huge
numbers, unicode garbage), deep nesting, tampered envelopes, random methods, paths and headers, and
oversized bodies. Every request must get an answer, every answer must be a documented status (never
5xx), every 202 must be readable afterwards, and the node must stay alive and keep running jobs.

Reproduce a run with MESHWORK_FUZZ_SEED=<seed printed on failure>.
"""

import copy
import json
import os
import random
import socket
import threading
import time
import unittest

from harness import TERMINAL_STATES, Key, NodeTestCase, scaled

FUZZ_N = int(os.environ.get("MESHWORK_FUZZ_N", "10000"))
FUZZ_SEED = (int(os.environ.get("MESHWORK_FUZZ_SEED", "0"))
             or random.SystemRandom().randrange(1, 1 << 30))
CONNECTIONS = 4
BODY_MAX = 65536
# The statuses the API documents, plus two that cpp-httplib answers at the HTTP layer before any
# route runs: 414 for a request line over 8 KiB and 416 for an unsatisfiable Range header.
ALLOWED = {200, 202, 400, 401, 403, 404, 405, 409, 413, 422, 429} | {414, 416}

TEMPLATES = [
    {"type": "echo", "payload": {"a": 1, "b": [1, 2, {"c": "d"}], "e": "text"}},
    {"type": "sleep", "payload": {"ms": 1}},
    {"type": "flaky", "payload": {"fail_times": 1, "ms": 0}, "max_attempts": 2},
    {"type": "pow", "payload": {"data": "fuzz", "difficulty_bits": 4}},
    {"type": "tx-verify", "payload": {"generate": {"accounts": 3, "txs": 4, "seed": "s",
                                                   "invalid_ratio": 0.5}}},
    {"type": "enrich", "payload": {"records": [
        {"ts": 1700000000, "ip": "8.8.8.8", "ua": "curl/8", "url": "https://a.b/x.png?q=1",
         "status": 200, "bytes": 10},
        {"ts": "2024-01-01T00:00:00Z", "ip": "::1", "url": "/", "status": 404}]}},
    {"type": "echo", "payload": {}, "max_attempts": 1, "timeout_ms": 1000, "nonce": "n",
     "created_at": 1},
]
# Wrong types, boundaries and huge numbers. Numbers that are valid somewhere are small, so a
# mutated job that still validates stays cheap to run.
ODD_VALUES = [None, True, False, 0, 1, -1, -0.0, 0.5, 1e308, -1e308, 2**31, 2**32 + 1, 2**53 + 1,
              2**63, 2**64, 2**64 + 1, -2**63 - 1, 10**40, "", "1", "true", "null", "{}", "ms",
              "echo", [], [None], [1, "a"], {}, {"k": "v"}, {"ms": 1}, "\u0000", "\ud7ff\ue000",
              "é✓🚀", "\u202e", "x" * 5000]
GARBAGE_CHARS = ["\u0000", "\u001f", "\"", "\\", "\u00ff", "\u0100", "\u200b", "\u202e", "\ufeff",
                 "\uffff", "\U0001f600", "\U0010ffff", "é", "✓", "a", "{", "]", ":"]
RAW_GARBAGE = [b"\xff", b"\xfe", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80",
               b"\\ud800", b"\\udfff", b"\\u12", b"\\x41", b"\x00", b"\r\n"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "get",
           "FOO", "POSTT", "G-E-T"]
ROUTES = ["/", "/v1", "/v1/", "/v1/jobs", "/v1/jobs/", "/v1/node", "/healthz", "/readyz",
          "/internal/v1/records", "//v1//jobs", "/v1/jobs/../node", "/v1/jobs/%2e%2e/node",
          "/%00", "/v1/jobs/%00", "/v1/jobs/" + "f" * 64 + "/cancel/x", "/../../etc/passwd",
          "/v1/jobs/" + "0" * 63, "/v1/jobs/" + "0" * 65, "/v1/jobs/" + "G" * 64]
HEADER_NAMES = ["X-Fuzz", "Accept", "User-Agent", "Content-Type", "Cookie", "Authorization",
                "Accept-Encoding", "X-Forwarded-For", "Origin", "Range", "If-None-Match", "Via"]


def rand_text(rng, n):
    return "".join(rng.choice(GARBAGE_CHARS) if rng.random() < 0.3 else chr(rng.randrange(32, 127))
                   for _ in range(n))


def rand_value(rng, depth=0):
    k = rng.random()
    if k < 0.5 or depth > 2:
        return copy.deepcopy(rng.choice(ODD_VALUES))  # mutate() edits values in place
    if k < 0.7:
        return rand_text(rng, rng.randrange(0, 40))
    if k < 0.85:
        return [rand_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {rand_text(rng, rng.randrange(0, 8)): rand_value(rng, depth + 1)
            for _ in range(rng.randrange(0, 4))}


def containers(value, out):
    """Every dict and list inside `value` (including itself)."""
    if isinstance(value, (dict, list)):
        out.append(value)
        for child in (value.values() if isinstance(value, dict) else value):
            containers(child, out)
    return out


def mutate(rng, job):
    """1-3 edits anywhere in the job: replace, delete, add, retype."""
    job = json.loads(json.dumps(job))
    for _ in range(rng.randrange(1, 4)):
        target = rng.choice(containers(job, []))
        if isinstance(target, dict):
            keys = list(target)
            op = rng.random()
            if keys and op < 0.6:
                target[rng.choice(keys)] = rand_value(rng)
            elif keys and op < 0.8:
                del target[rng.choice(keys)]
            else:
                target[rng.choice(["type", "payload", "ms", "extra", rand_text(rng, 5)])] = \
                    rand_value(rng)
        elif target:
            target[rng.randrange(len(target))] = rand_value(rng)
        else:
            target.append(rand_value(rng))
    return job


def nested(rng):
    depth = rng.choice([30, 63, 64, 65, 100, 1000, 50_000])
    opener = rng.choice(["[", '{"a":', '{"type":"echo","payload":['])
    closer = {"[": "]", '{"a":': "}", '{"type":"echo","payload":[': "]"}[opener]
    inner = opener * depth + rng.choice(["1", "", '"x"']) + closer * depth
    if opener.startswith('{"type"'):
        inner += "}"
    if rng.random() < 0.2:
        inner = inner[:rng.randrange(len(inner))]  # unbalanced
    return inner.encode()


class Fuzzer:
    """Builds one random request at a time; remembers ids the node acknowledged."""

    def __init__(self, rng, envelopes, known_ids):
        self.rng = rng
        self.envelopes = envelopes
        self.known = known_ids

    def request(self):
        r = self.rng.random()
        kinds = [(0.25, self.mutated_job), (0.37, self.truncated_job), (0.47, self.random_bytes),
                 (0.55, self.unicode_job), (0.61, self.deep), (0.71, self.envelope),
                 (0.86, self.random_route), (0.89, self.oversized), (1.0, self.valid)]
        for bound, make in kinds:
            if r < bound:
                return make()

    def post(self, body, headers=()):
        return ("POST", b"/v1/jobs", body, list(headers))

    def mutated_job(self):
        return self.post(json.dumps(mutate(self.rng, self.rng.choice(TEMPLATES))).encode())

    def truncated_job(self):
        text = json.dumps(self.rng.choice(TEMPLATES)).encode()
        return self.post(text[:self.rng.randrange(len(text))])

    def random_bytes(self):
        return self.post(self.rng.randbytes(self.rng.choice([0, 1, 2, 16, 100, 1000, 4000])))

    def unicode_job(self):
        rng = self.rng
        if rng.random() < 0.5:
            job = {"type": "echo", "payload": {rand_text(rng, 6): rand_text(rng, 30)}}
            return self.post(json.dumps(job, ensure_ascii=rng.random() < 0.5).encode())
        text = bytearray(json.dumps(rng.choice(TEMPLATES)).encode())
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(text))
            text[at:at] = rng.choice(RAW_GARBAGE)
        return self.post(bytes(text))

    def deep(self):
        return self.post(nested(self.rng))

    def envelope(self):
        rng = self.rng
        env = dict(rng.choice(self.envelopes))
        op = rng.random()
        if op < 0.15:
            pass  # as signed: 202 the first time, 200 after
        elif op < 0.55:
            field = rng.choice(["job", "signature", "public_key"])
            text = list(env[field])
            text[rng.randrange(len(text))] = rng.choice("AZaz09+/={}\"x")
            env[field] = "".join(text)
        elif op < 0.8:
            env[rng.choice(["job", "signature", "public_key", "extra"])] = rand_value(rng)
        else:
            del env[rng.choice(["job", "signature", "public_key"])]
        return self.post(json.dumps(env).encode())

    def random_path(self):
        rng = self.rng
        k = rng.random()
        if k < 0.3:
            return rng.choice(ROUTES).encode()
        if k < 0.5 and self.known:
            job_id = rng.choice(self.known)
            return ("/v1/jobs/" + job_id + rng.choice(["", "/cancel", "/cancel/", "?x=1"])).encode()
        if k < 0.75:
            params = []
            for name in rng.sample(["state", "type", "limit", "cursor", "x"], rng.randrange(1, 4)):
                value = rng.choice(["queued", "running", "succeeded", "failed", "cancelled",
                                    "retry_wait", "echo", "0", "1", "1000", "1001", "-1",
                                    "99999999",
                                    "", "%00", "%ff%fe", "a" * 300, rand_text(rng, 5)])
                params.append("%s=%s" % (name, value))
            query = "&".join(params)
            return ("/v1/jobs?" + "".join(c if 33 <= ord(c) < 127 else "%%%02X" % (ord(c) & 255)
                                          for c in query)).encode()
        if k < 0.8:
            return b"/" + b"a" * rng.choice([100, 5000, 9000])
        raw = bytes(rng.choice(b"abcdefghij/%?&=.~-_0123456789\x80\xff") for _ in range(20))
        return b"/" + raw

    def random_route(self):
        rng = self.rng
        method = rng.choice(METHODS)
        headers = []
        for _ in range(rng.randrange(0, 4)):
            name = rng.choice(HEADER_NAMES)
            if name == "Range":
                value = rng.choice(["bytes=0-5", "bytes=5-1", "bytes=-3", "bytes=x", "lines=1-2"])
            else:
                value = rand_text(rng, rng.randrange(0, 60)).encode("utf-8", "replace")
                value = value.replace(b"\r", b"").replace(b"\n", b"").decode("latin-1")
            headers.append((name, value))
        body = b""
        if method in ("POST", "PUT", "PATCH") and rng.random() < 0.7:
            body = json.dumps(rng.choice(TEMPLATES)).encode()
        return (method, self.random_path(), body, headers)

    def oversized(self):
        n = self.rng.choice([BODY_MAX + 1, BODY_MAX + 1000, 200_000])
        body = (b'{"type":"echo","payload":{"pad":"' + b"x" * n + b'"}}')[:n]
        return self.post(body)

    def valid(self):
        rng = self.rng
        k = rng.random()
        if k < 0.5:
            return self.post(json.dumps(rng.choice(TEMPLATES)).encode())
        if k < 0.7 and self.known:
            return ("POST", ("/v1/jobs/%s/cancel" % rng.choice(self.known)).encode(), b"", [])
        return ("GET", rng.choice([b"/healthz", b"/readyz", b"/v1/node", b"/v1/jobs?limit=5"]),
                b"", [])


class RawConnection:
    """HTTP/1.1 over a plain socket, so the fuzzer controls every byte of the request."""

    def __init__(self, port):
        self.port = port
        self.sock = None
        self.buf = b""

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock, self.buf = None, b""

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the node")
        self.buf += data

    def _read_response(self, head_only):
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_only or status in (100, 204, 304) else \
            int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._recv()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def exchange(self, method, path, body, headers):
        """Sends one request; returns (status, headers, body). Raises if no answer came."""
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=scaled(60))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method.encode(), path)
        for name, value in headers:
            head += b"%s: %s\r\n" % (name.encode(), value.encode("latin-1"))
        if body or method in ("POST", "PUT", "PATCH"):
            head += b"Content-Length: %d\r\n" % len(body)
        try:
            self.sock.sendall(head + b"\r\n" + body)
            status, rheaders, rbody = self._read_response(method == "HEAD")
            while status == 100:
                status, rheaders, rbody = self._read_response(method == "HEAD")
        except (OSError, ValueError, IndexError):
            self.close()
            raise
        # After HEAD the node may or may not send a body (cpp-httplib sends one with a 414, before
        # it has parsed the method), so the connection's framing is unknown: start a fresh one.
        if rheaders.get("connection", "").lower() == "close" or method == "HEAD":
            self.close()
        return status, rheaders, rbody


def judge(req, status, headers, body):
    """(what is wrong with this answer or None, the job id a POST /v1/jobs got or None)."""
    if status not in ALLOWED:
        return "status %d: %r" % (status, body[:200]), None
    if req[0] == "HEAD":
        return None, None
    ctype = headers.get("content-type")
    if status >= 400 and ctype != "application/problem+json":
        return "%d is not problem+json: %r" % (status, headers), None
    if ctype in ("application/json", "application/problem+json"):
        try:
            doc = json.loads(body)
        except ValueError as e:
            return "%d %s body is not JSON (%s): %r" % (status, ctype, e, body[:200]), None
        if status >= 400 and (doc.get("status") != status or not doc.get("detail")):
            return "%d with a bad problem document: %r" % (status, doc), None
        if status in (200, 202) and req[:2] == ("POST", b"/v1/jobs"):
            return None, doc["id"]
    return None, None


class Fuzz(NodeTestCase):
    def test_random_and_malformed_requests(self):
        node = self.start_node("fuzz", ["--workers", 4, "--body-max", BODY_MAX,
                                        "--payload-max", 16384, "--log-level", "warn"])
        c = node.client()
        key = Key.generate()
        envelopes = []
        for i, t in enumerate(TEMPLATES[:4]):
            spec = dict(t, nonce="fuzz-%d-%d" % (FUZZ_SEED, i), created_at=1_700_000_000_000)
            envelopes.append(key.envelope(json.dumps(spec)))

        known, accepted, lock = [], [], threading.Lock()
        statuses, failures, errors = {}, [], []

        def worker(index, count):
            rng = random.Random(FUZZ_SEED * 1000 + index)
            fuzzer = Fuzzer(rng, envelopes, known)
            conn = RawConnection(node.port)
            try:
                for _ in range(count):
                    req = fuzzer.request()
                    try:
                        status, headers, body = conn.exchange(*req)
                    except Exception as e:  # no answer at all
                        failures.append(("no answer: %r" % e, req))
                        if not node.alive():
                            return
                        continue
                    with lock:
                        statuses[status] = statuses.get(status, 0) + 1
                    problem, job_id = judge(req, status, headers, body)
                    if problem:
                        failures.append((problem, req))
                    elif job_id:
                        with lock:
                            known.append(job_id)
                            if status == 202:
                                accepted.append(job_id)
            except Exception as e:
                errors.append(repr(e))
            finally:
                conn.close()

        threads = [threading.Thread(target=worker, args=(i, FUZZ_N // CONNECTIONS +
                                                         (i < FUZZ_N % CONNECTIONS)))
                   for i in range(CONNECTIONS)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        summary = "seed %d, %d requests in %.1fs, statuses %s" % (
            FUZZ_SEED, sum(statuses.values()), elapsed, dict(sorted(statuses.items())))
        print("\n" + summary)

        def show(failure):
            what, (method, path, body, headers) = failure
            return "%s <- %s %r headers=%r body=%r" % (what, method, path[:100], headers,
                                                      body[:200])
        self.assertEqual(errors, [], summary)
        self.assertTrue(node.alive(), "the node died\n" + node.log_tail())
        self.assertEqual(failures, [], summary + "\n" + "\n".join(map(show, failures[:20])))
        self.assertEqual(sum(statuses.values()), FUZZ_N)
        self.assertGreater(statuses.get(202, 0), 0, "no valid job got through: a useless fuzz")

        # The node still answers, everything it acknowledged is there, and it still runs jobs.
        self.assertEqual(c.get("/healthz").status, 200)
        for job_id in accepted:
            self.assertEqual(c.get("/v1/jobs/" + job_id).status, 200, job_id)
        self.cancel_unfinished(c, key)
        job = self.run_job(c, {"type": "echo", "payload": {"after": "fuzz"}}, timeout=120)
        self.assertEqual(job["result"], {"echo": {"after": "fuzz"}})
        info = c.get("/v1/node").json()
        self.assertEqual(info["store"]["corrupt_records"], 0)
        self.assertGreaterEqual(sum(info["jobs"].values()), len(accepted) + 1)
        self.assertTrue(node.alive())

    def cancel_unfinished(self, c, key):
        """Mutated jobs may still be sleeping or retrying; cancel them so the check job runs (the
        ones `key` signed with a request it signs, as the node requires)."""
        for state in ("queued", "running"):
            for job in c.get("/v1/jobs?limit=1000&state=" + state).json()["jobs"]:
                signed = job["submitted_by"] == key.public_b64
                r = c.post("/v1/jobs/%s/cancel" % job["id"],
                           headers=key.request_headers("cancel", job["id"]) if signed else None)
                self.assertIn(r.status, (200, 409), r)
        deadline = time.monotonic() + scaled(60)
        while time.monotonic() < deadline:
            busy = [j for s in ("queued", "running")
                    for j in c.get("/v1/jobs?limit=1000&state=" + s).json()["jobs"]
                    if j["state"] not in TERMINAL_STATES]
            if not busy:
                return
            time.sleep(0.1)


if __name__ == "__main__":
    unittest.main()
