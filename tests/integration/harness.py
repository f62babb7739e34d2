"""Integration-test harness: real `meshwork node` processes on 127.0.0.1, talked to over HTTP
(or HTTPS: Node.tls).

Standard library only (jsonschema, when present, checks every answer against the API document).
What it gives a test:
  NodeTestCase        unittest.TestCase with a temp dir, start_node(), run_cli() and assertions
                      for problem+json errors; every node it starts is stopped in a cleanup, even
                      when the test fails, and a node that died or exited non-zero (ASan reports)
                      fails the test with the tail of its log.
  Node                one node process: start, kill -9, SIGTERM, restart on the same data dir.
  Client              a keep-alive HTTP/1.1 client (http.client, TCP_NODELAY); HTTPS with `tls`,
                      an ssl.SSLContext that trusts the node's CA; `source` picks the local
                      address (another loopback address is another client to a rate limit). Every answer it gets is
                      checked against api/openapi.json when jsonschema is importable.
  ed25519_*           RFC 8032 Ed25519 in pure Python, to check signatures the node makes.
  canonical_json()    the node's serialisation of a result (compact, keys sorted, UTF-8).

Environment:
  MESHWORK_BIN            the binary (default: ../../build/bin/meshwork from this file)
  MESHWORK_TIMEOUT_SCALE  multiplies every timeout (default 1; 5 when the binary is ASan-built)
  MESHWORK_KEEP_TMP       keep temp dirs (logs, data dirs) after the tests
Timeouts are generous upper bounds for waiting; no test asserts on how long anything took.
"""

import base64
import ctypes
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

try:
    import jsonschema
except ImportError:  # the checks against api/openapi.json are skipped, nothing else changes
    jsonschema = None

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("MESHWORK_BIN") or os.path.normpath(
    os.path.join(HERE, "..", "..", "build", "bin", "meshwork"))
TERMINAL_STATES = ("succeeded", "failed", "cancelled")


def _is_sanitized(path):
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


TIMEOUT_SCALE = float(os.environ.get("MESHWORK_TIMEOUT_SCALE") or (5 if _is_sanitized(BIN) else 1))


def scaled(seconds):
    return seconds * TIMEOUT_SCALE


def _die_with_parent():
    """Runs in the child before exec: SIGKILL it if the test process dies (Linux prctl), so an
    interrupted or timed-out test run leaves no node behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port():
    """A loopback TCP port that was free a moment ago (Node.start retries if it is taken since)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def blake2b_hex(data):
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def canonical_json(value):
    """The text the node hashes for a result: nlohmann's compact dump (keys sorted, raw UTF-8)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def job_id_of(envelope):
    """A job id: hex BLAKE2b-256 of the signed job bytes followed by the raw public key."""
    return blake2b_hex(envelope["job"].encode() + base64.b64decode(envelope["public_key"]))


# ---- Ed25519 (RFC 8032, section 6 reference code): slow but exact ----

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _add(p, q):
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * p[3] * q[3] * _D % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s, p):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _equal(p, q):
    return (p[0] * q[2] - q[0] * p[2]) % _P == 0 and (p[1] * q[2] - q[1] * p[2]) % _P == 0


def _recover_x(y, sign):
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    if (x & 1) != sign:
        x = _P - x
    return x


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
_G = (_GX, _GY, 1, _GX * _GY % _P)


def _compress(p):
    zinv = pow(p[2], _P - 2, _P)
    x, y = p[0] * zinv % _P, p[1] * zinv % _P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _decompress(s):
    y = int.from_bytes(s, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


def _hash_int(data):
    return int.from_bytes(hashlib.sha512(data).digest(), "little") % _L


def _expand(seed):
    h = hashlib.sha512(seed).digest()
    a = (int.from_bytes(h[:32], "little") & ((1 << 254) - 8)) | (1 << 254)
    return a, h[32:]


def ed25519_public_key(seed):
    a, _ = _expand(seed)
    return _compress(_mul(a, _G))


def ed25519_sign(seed, message):
    a, prefix = _expand(seed)
    public = _compress(_mul(a, _G))
    r = _hash_int(prefix + message)
    rs = _compress(_mul(r, _G))
    s = (r + _hash_int(rs + public + message) * a) % _L
    return rs + int.to_bytes(s, 32, "little")


def ed25519_verify(public, message, signature):
    if len(public) != 32 or len(signature) != 64:
        return False
    a = _decompress(public)
    r = _decompress(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _L:
        return False
    h = _hash_int(signature[:32] + public + message)
    return _equal(_mul(s, _G), _add(r, _mul(h, a)))


class Key:
    """A client identity in the node's key-file format: 64 bytes, seed || public key."""

    def __init__(self, seed):
        self.seed = seed
        self.public = ed25519_public_key(seed)
        self.public_b64 = base64.b64encode(self.public).decode()

    @staticmethod
    def load(path):
        with open(path, "rb") as f:
            return Key(f.read()[:32])

    @staticmethod
    def generate():
        return Key(os.urandom(32))

    def envelope(self, job_text):
        """A signed envelope over the exact bytes of `job_text` (any text, valid or not)."""
        sig = ed25519_sign(self.seed, job_text.encode())
        return {"job": job_text, "public_key": self.public_b64,
                "signature": base64.b64encode(sig).decode()}

    def request_headers(self, action, job_id, now_ms=None):
        """The headers of a signed client request on a job (node/client_auth.h): Ed25519 over
        "meshwork-request-v1\n<action>\n<job id>\n<time>", the time in ms (default: now)."""
        t = int(time.time() * 1000) if now_ms is None else now_ms
        message = "meshwork-request-v1\n%s\n%s\n%d" % (action, job_id, t)
        return {"Meshwork-Key": self.public_b64, "Meshwork-Time": str(t),
                "Meshwork-Signature": base64.b64encode(
                    ed25519_sign(self.seed, message.encode())).decode()}


MERKLE_LEVELS_MAX = 32  # dht/merkle.h kMerkleLevelsMax


def merkle_root_of(leaf, index, proof):
    """The root a receipt's proof leads to from its leaf (dht/merkle.h), or None when malformed:
    inner node = BLAKE2b-256(0x01 || left || right), the node is the right child at level k when
    bit k of the index is set."""
    if len(proof) > MERKLE_LEVELS_MAX or index >> len(proof):
        return None
    node = leaf
    for k, sibling in enumerate(proof):
        if len(sibling) != 32:
            return None
        pair = sibling + node if (index >> k) & 1 else node + sibling
        node = hashlib.blake2b(b"\x01" + pair, digest_size=32).digest()
    return node


def receipt_signed_message(receipt):
    """What a receipt's signature is over: its message (meshwork-receipt-v1|...) for a receipt
    without a root; for a batched one, "meshwork-receipts-v2|node|root" once its proof leads from
    the leaf BLAKE2b-256(0x00 || u32 LE index || message) to its root; None when it does not."""
    message = "meshwork-receipt-v1|{job_id}|{node}|{attempt}|{result_hash}".format(**receipt)
    if "root" not in receipt:
        return message.encode()
    try:
        index = receipt["index"]
        if type(index) is not int or not 0 <= index < 2 ** 32:
            return None
        leaf = hashlib.blake2b(b"\x00" + index.to_bytes(4, "little") + message.encode(),
                               digest_size=32).digest()
        root = merkle_root_of(leaf, index, [bytes.fromhex(p) for p in receipt["proof"]])
        if root is None or root != bytes.fromhex(receipt["root"]):
            return None
    except (TypeError, ValueError, KeyError):
        return None
    return ("meshwork-receipts-v2|%s|%s" % (receipt["node"], receipt["root"])).encode()


def receipt_verifies(receipt):
    """Checks a receipt's Ed25519 signature over what it signs (receipt_signed_message)."""
    message = receipt_signed_message(receipt)
    return message is not None and ed25519_verify(
        base64.b64decode(receipt["public_key"]), message, base64.b64decode(receipt["signature"]))


# ---- HTTP ----

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage: case-insensitive get()
        self.body = body

    @property
    def content_type(self):
        return (self.headers.get("Content-Type") or "").split(";")[0].strip()

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %s %r>" % (self.status, self.content_type, self.body[:300])


# ---- the API document: every answer a Client gets must be one it describes ----

OPENAPI_PATH = os.path.normpath(os.path.join(HERE, "..", "..", "api", "openapi.json"))


class OpenApiMismatch(AssertionError):
    pass


def _error_text(e):
    """A jsonschema error as: what, where in the value, and which schema keyword said so."""
    return "%s at /%s (schema path %s)" % (e.message, "/".join(map(str, e.absolute_path)),
                                           "/".join(map(str, e.absolute_schema_path)))


class OpenApi:
    """api/openapi.json, read from the source tree, as a checker of answers.

    check() finds the operation by method and path template (concrete paths before templated
    ones, as OpenAPI says), the response by status code, the media type by Content-Type, and
    validates a JSON body against its schema with a Draft 2020-12 validator whose root is the whole
    document (so every $ref to #/components/... resolves). A request that matches no operation must
    get the document's UnmatchedRequest answer (a problem document, 4xx). A status or content type
    the operation does not list is a mismatch too: the document must be complete."""

    def __init__(self, path=OPENAPI_PATH):
        with open(path, encoding="utf-8") as f:
            self.doc = json.load(f)
        self.validated = 0   # answers whose body was validated against a schema
        self.mismatches = []  # those raised in threads, for NodeTestCase to report
        self._validators = {}
        self._routes = []
        for template, item in self.doc["paths"].items():
            params = template.count("{")
            pattern = "/".join("[^/]+" if part.startswith("{") else re.escape(part)
                               for part in template.split("/"))
            self._routes.append((params, template, re.compile("^%s$" % pattern), item))
        self._routes.sort(key=lambda r: r[0])

    def operation(self, method, path):
        """(template, operation) for a request path (query string ignored), or (None, None)."""
        path = urllib.parse.unquote(path.split("?", 1)[0].split("#", 1)[0])
        for _, template, pattern, item in self._routes:
            if pattern.match(path):
                op = item.get(method.lower())
                if op is not None:
                    return template, op
        return None, None

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            node = self.pointer(node["$ref"])
        return node

    def pointer(self, ref):
        if not ref.startswith("#/"):
            raise KeyError("only local references are used: %s" % ref)
        node = self.doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def validator(self, ref):
        """A Draft 2020-12 validator for the schema at JSON pointer `ref`, with the whole document
        as its root so that the schema's own $refs resolve."""
        v = self._validators.get(ref)
        if v is None:
            root = dict(self.doc)
            root["$ref"] = ref
            cls = jsonschema.Draft202012Validator
            cls.check_schema(self.pointer(ref))
            v = self._validators[ref] = cls(root)
        return v

    def validate_value(self, ref, value):
        """Raises jsonschema.ValidationError when `value` does not match the schema at `ref`."""
        error = jsonschema.exceptions.best_match(self.validator(ref).iter_errors(value))
        if error is not None:
            raise error
        self.validated += 1

    def check(self, method, path, status, content_type, body):
        try:
            self._check(method, path, status, content_type, body)
        except OpenApiMismatch as e:
            if threading.current_thread() is not threading.main_thread():
                self.mismatches.append(str(e))  # an exception in a thread fails no test by itself
            raise

    def _check(self, method, path, status, content_type, body):
        where = "%s %s -> %d %s" % (method, path[:200], status, content_type or "(no type)")
        template, op = self.operation(method, path)
        if op is None:
            if status < 400:
                raise OpenApiMismatch("api/openapi.json: %s: the request matches no operation of "
                                      "the document but succeeded: document the route" % where)
            response_ref = "#/components/responses/UnmatchedRequest"
        else:
            key = str(status) if str(status) in op["responses"] else "%dXX" % (status // 100)
            if key not in op["responses"]:
                key = "default"
            if key not in op["responses"]:
                raise OpenApiMismatch("api/openapi.json: %s: %s %s does not document status %d "
                                      "(it lists %s)" % (where, method, template, status,
                                                         ", ".join(op["responses"])))
            response_ref = self._response_ref(method, template, key, op["responses"][key])
        response = self.resolve(self.pointer(response_ref))
        content = response.get("content")
        if not content:
            if body:
                raise OpenApiMismatch("api/openapi.json: %s: the response has a body, the document "
                                      "none" % where)
            return
        if content_type not in content:
            raise OpenApiMismatch("api/openapi.json: %s: content type %r is not documented for "
                                  "this response (it lists %s)"
                                  % (where, content_type, ", ".join(content)))
        if not (content_type == "application/json" or content_type.endswith("+json")):
            return  # text/html, text/plain, text/event-stream: the media type is the contract
        try:
            value = json.loads(body)
        except ValueError as e:
            raise OpenApiMismatch("api/openapi.json: %s: the body is not JSON (%s): %r"
                                  % (where, e, body[:200])) from None
        schema_ref = response_ref + "/content/" + content_type.replace("/", "~1") + "/schema"
        try:
            self.validate_value(schema_ref, value)
        except jsonschema.ValidationError as e:
            raise OpenApiMismatch("api/openapi.json: %s: the body does not match %s: %s\nbody: %s"
                                  % (where, schema_ref, _error_text(e), body[:2000])) from None
        if content_type == "application/problem+json" and value.get("status") != status:
            raise OpenApiMismatch("api/openapi.json: %s: the problem document says status %r"
                                  % (where, value.get("status")))

    def _response_ref(self, method, template, key, response):
        ref = response.get("$ref")
        if ref:
            return ref
        return "#/paths/%s/%s/responses/%s" % (template.replace("~", "~0").replace("/", "~1"),
                                               method.lower(), key)

    def check_event(self, kind, data):
        """Validates the data of a server-sent event of `kind` (job, member) against the document;
        raises OpenApiMismatch."""
        _, op = self.operation("GET", "/v1/events")
        events = op["responses"]["200"]["x-events"]
        if kind not in events:
            raise OpenApiMismatch("api/openapi.json: event kind %r is not documented" % kind)
        try:
            self.validate_value(events[kind]["$ref"], data)
        except jsonschema.ValidationError as e:
            raise OpenApiMismatch("api/openapi.json: event %s: %s\ndata: %r"
                                  % (kind, _error_text(e), data)) from None


OPENAPI = OpenApi() if jsonschema is not None else None


class _Connection(http.client.HTTPConnection):
    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _TlsConnection(http.client.HTTPSConnection):
    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Client:
    """One keep-alive connection to a node. A request that meets a connection the server already
    closed (idle timeout) is retried once on a fresh connection; the server had not read it."""

    def __init__(self, port, timeout=None, host="127.0.0.1", tls=None, source=None):
        self.port = port
        self.host = host
        self.tls = tls  # ssl.SSLContext: HTTPS, verified with it
        self.source = (source, 0) if source else None  # the local address to send from
        self.timeout = timeout or scaled(60)
        self._conn = None
        self._used = False

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method, path, body=None, headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        hdrs.update(headers or {})
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = (_TlsConnection(self.host, self.port, timeout=self.timeout,
                                             context=self.tls, source_address=self.source)
                              if self.tls else
                              _Connection(self.host, self.port, timeout=self.timeout,
                                          source_address=self.source))
                self._used = False
            reused = self._used
            try:
                self._conn.request(method, path, body=body, headers=hdrs)
                r = self._conn.getresponse()
                data = r.read()
                self._used = True
                if r.will_close:
                    self.close()
                response = Response(r.status, r.headers, data)
                if OPENAPI is not None and method != "HEAD":
                    OPENAPI.check(method, path, response.status, response.content_type, data)
                return response
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 1 or not reused:
                    raise
        raise AssertionError("unreachable")

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)


# ---- node processes ----

class NodeError(AssertionError):
    pass


class Node:
    """A `meshwork node` process with its own data dir and log file under `tmp`. Set before start:
    `tls` (an ssl.SSLContext: the node serves HTTPS, pass --tls-cert/--tls-key in args), `host`
    (where clients reach it), `bind_host` (its --api host, default `host`) and `prefix` (a command
    it runs under, such as `ip netns exec NS`)."""

    def __init__(self, tmp, name="n1", args=(), data_dir=None):
        self.name = name
        self.args = [str(a) for a in args]
        self.data_dir = data_dir or os.path.join(tmp, name + "-data")
        self.log_path = os.path.join(tmp, name + ".log")
        self.port = None
        self.proc = None
        self.starts = 0
        self._clients = []
        self._expected_exit = False
        self.tls = None
        self.host = "127.0.0.1"
        self.bind_host = None
        self.prefix = []

    @property
    def url(self):
        return "%s://%s:%d" % ("https" if self.tls else "http", self.host, self.port)

    def start(self, port=None):
        """Starts the process and waits until /healthz answers 200."""
        assert self.proc is None or self.proc.poll() is not None, "node already running"
        for attempt in range(5):
            self.port = port if (port and attempt == 0) else free_port()
            if self._spawn_and_wait():
                return self
        raise NodeError("node %s did not start\n%s" % (self.name, self.log_tail()))

    def restart(self):
        """Starts again on the same data dir (and the same port when it is still free)."""
        return self.start(port=self.port)

    def _spawn_and_wait(self):
        cmd = self.prefix + [BIN, "node", "--name", self.name,
                             "--api", "%s:%d" % (self.bind_host or self.host, self.port),
                             "--data", self.data_dir] + self.args
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(("\n=== start %d: %s\n" % (self.starts, " ".join(cmd))).encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self._expected_exit = False
        deadline = time.monotonic() + scaled(30)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "cannot listen" in self.log_tail():
                    return False  # the port was taken in the meantime: try another
                raise NodeError("node %s exited with %s while starting\n%s"
                                % (self.name, self.proc.returncode, self.log_tail()))
            try:
                with self._connect(timeout=1) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        if self._port_is_ours():
                            return True
                        self.kill9()  # someone else answers on this port too: take another
                        return False
            except OSError:
                pass
            time.sleep(0.05)
        self.kill9()
        raise NodeError("node %s did not answer /healthz\n%s" % (self.name, self.log_tail()))

    def _connect(self, timeout):
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        return self.tls.wrap_socket(s, server_hostname=self.host) if self.tls else s

    def _port_is_ours(self):
        """True when fresh connections to the port all reach this node (its key is in its data
        dir). Guards against another process listening on the same port with SO_REUSEPORT."""
        try:
            with open(os.path.join(self.data_dir, "node.key"), "rb") as f:
                expected = base64.b64encode(f.read()[32:64]).decode()
        except OSError:
            return True  # no key file to compare with: nothing to check
        for _ in range(4):
            c = Client(self.port, timeout=scaled(10), host=self.host, tls=self.tls)
            try:
                if c.get("/v1/node").json().get("public_key") != expected:
                    return False
            finally:
                c.close()
        return True

    def client(self):
        c = Client(self.port, host=self.host, tls=self.tls)
        self._clients.append(c)
        return c

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        self._close_clients()
        if self.alive():
            self._expected_exit = True
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=scaled(30))

    def sigterm(self, timeout=None):
        """Graceful shutdown; returns the exit code."""
        self._close_clients()
        if not self.alive():
            raise NodeError("node %s is not running (exit %s)\n%s"
                            % (self.name, self.proc and self.proc.returncode, self.log_tail()))
        self._expected_exit = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout or scaled(30))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise NodeError("node %s ignored SIGTERM\n%s" % (self.name, self.log_tail()))

    def stop(self):
        """Cleanup: SIGTERM (kill -9 if that hangs); fails if the node had died on its own or
        exited non-zero, which is how sanitizer reports surface."""
        if self.proc is None:
            return
        died_unexpectedly = not self.alive() and not self._expected_exit
        code = self.proc.returncode
        if self.alive():
            try:
                code = self.sigterm()
            except NodeError:
                code = None
        self._close_clients()
        if died_unexpectedly:
            raise NodeError("node %s died during the test (exit %s)\n%s"
                            % (self.name, code, self.log_tail()))
        if code != 0 and not (code == -signal.SIGKILL and self._expected_exit):
            raise NodeError("node %s exited with %s at shutdown\n%s"
                            % (self.name, code, self.log_tail()))

    def _close_clients(self):
        for c in self._clients:
            c.close()

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=40):
        return "--- %s (%s) ---\n%s" % (self.name, self.log_path,
                                          "\n".join(self.log_text().splitlines()[-lines:]))


class NodeTestCase(unittest.TestCase):
    """Base class: a temp dir per test, nodes stopped in cleanups, helpers for jobs and errors."""

    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="meshwork-it-")
        if not os.environ.get("MESHWORK_KEEP_TMP"):
            self.addCleanup(shutil.rmtree, self.tmp, True)
        if OPENAPI is not None:
            # A mismatch raises in the request; this catches one raised in a thread.
            seen = len(OPENAPI.mismatches)
            self.addCleanup(lambda: self.assertEqual(
                OPENAPI.mismatches[seen:], [], "answers that api/openapi.json does not describe"))

    def start_node(self, name="n1", args=(), data_dir=None):
        node = Node(self.tmp, name, args, data_dir)
        self.addCleanup(node.stop)  # runs before the temp dir is removed (LIFO)
        return node.start()

    def wait_until(self, what, check, timeout, nodes=None):
        """Polls `check()` until it is true; fails after `timeout` (scaled) seconds with the log
        tails of `nodes` (default: self.nodes, when the test keeps one)."""
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.05)
        nodes = getattr(self, "nodes", ()) if nodes is None else nodes
        self.fail("timed out (%ss) waiting for %s\n%s"
                  % (scaled(timeout), what, "\n".join(n.log_tail(20) for n in nodes)))

    def run_cli(self, *args, timeout=None, check=None):
        r = subprocess.run([BIN] + [str(a) for a in args], capture_output=True, text=True,
                           timeout=timeout or scaled(120), stdin=subprocess.DEVNULL)
        if check is not None:
            self.assertEqual(r.returncode, check,
                             "meshwork %s\nstdout: %s\nstderr: %s" % (args, r.stdout, r.stderr))
        return r

    # ---- jobs ----

    def submit(self, client, body, expect=202):
        r = client.post("/v1/jobs", body)
        self.assertEqual(r.status, expect, r)
        return r.json()

    def get_job(self, client, job_id):
        r = client.get("/v1/jobs/" + job_id)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def wait_job(self, client, job_id, until=TERMINAL_STATES, timeout=60, node=None):
        """Polls GET /v1/jobs/{id} until its state is in `until`; returns the job."""
        until = (until,) if isinstance(until, str) else tuple(until)
        deadline = time.monotonic() + scaled(timeout)
        job = None
        while time.monotonic() < deadline:
            job = self.get_job(client, job_id)
            if job["state"] in until:
                return job
            if job["state"] in TERMINAL_STATES:
                self.fail("job %s ended %s, waiting for %s: %s"
                          % (job_id, job["state"], until, job))
            time.sleep(0.02)
        self.fail("job %s still %s after %ss, waiting for %s%s"
                  % (job_id, job and job["state"], timeout, until,
                     "\n" + node.log_tail() if node else ""))

    def run_job(self, client, spec, until="succeeded", timeout=60):
        return self.wait_job(client, self.submit(client, spec)["id"], until, timeout)

    # ---- assertions ----

    def assertProblem(self, r, status, detail_has=None):
        """An RFC 9457 problem document with this status, a title and a human-readable detail."""
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.content_type, "application/problem+json", r)
        p = r.json()
        self.assertEqual(p.get("status"), status, p)
        for field in ("title", "detail"):
            self.assertIsInstance(p.get(field), str, p)
            self.assertTrue(p[field].strip(), p)
        if detail_has is not None:
            self.assertIn(detail_has.lower(), p["detail"].lower(), p)
        return p

    def assertReceipt(self, job, node_name, node_key_b64):
        """The receipt belongs to the job, names the node and its key, hashes the result (or the
        error) exactly, and carries a valid Ed25519 signature over its batch's Merkle root."""
        rc = job["receipt"]
        self.assertIsInstance(rc, dict, job)
        self.assertEqual(set(rc), {"job_id", "node", "attempt", "result_hash", "signature",
                                   "public_key", "root", "index", "proof"}, rc)
        self.assertEqual(rc["job_id"], job["id"])
        self.assertEqual(rc["node"], node_name)
        self.assertEqual(rc["attempt"], job["attempts"])
        self.assertEqual(rc["public_key"], node_key_b64)
        hashed = canonical_json(job["result"]) if job["state"] == "succeeded" else job["error"]
        self.assertEqual(rc["result_hash"], blake2b_hex(hashed.encode()), job)
        self.assertTrue(receipt_verifies(rc), rc)
