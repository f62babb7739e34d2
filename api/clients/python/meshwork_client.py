"""A meshwork client for Python 3: Ed25519 keys in the node's key-file format, signed job envelopes,
the v1 REST API over http:// or https:// (with a CA file), and receipt verification.

Needs python3-nacl (Debian) and the standard library. See docs/clients.md.

    from meshwork_client import Client, Key
    key = Key.generate()
    mesh = Client("http://127.0.0.1:8080", key=key)
    job = mesh.wait_job(mesh.submit({"type": "echo", "payload": {"hi": 1}})["id"])
    check = mesh.verify_job(job)          # check["status"]: "valid" | "invalid" | "unchecked"

Wire formats (node/envelope.cpp, node/job_runner.cpp, dht/hash.cpp):
  envelope  {"job": <JSON text of the spec>, "public_key": b64(32 bytes), "signature": b64(64)}:
            Ed25519 over the UTF-8 bytes of `job`.
  job id    hex BLAKE2b-256 of those bytes followed by the 32 raw public-key bytes.
  batch     jobs signed together (sign_job_batch, submit_batch): one Ed25519 signature over
            "meshwork-jobs-v1|<root hex>", the root of the Merkle tree below whose leaf i is
            BLAKE2b-256(0x00 || u32 LE i || "meshwork-job-v1|" + job id i); each job's envelope
            then carries `root`, `index` and `proof` instead of a signature over `job`, and keeps
            its id.
  cancel    signed with the headers of request_headers() (Meshwork-Key, -Time, -Signature).
  retry     a failed or cancelled job, again, signed as cancel is.
  receipt   message = "meshwork-receipt-v1|job_id|node|attempt|result_hash"; result_hash = hex
            BLAKE2b-256 of the result's compact JSON (canonical_json) when the attempt succeeded,
            else of its error text. A node signs its receipts in batches (dht/merkle.h): a receipt
            with `root` carries `index` and `proof` (hex siblings, at most 32); its leaf is
            BLAKE2b-256(0x00 || u32 LE index || message), inner nodes BLAKE2b-256(0x01 || l || r)
            (the node is the right child at level k when bit k of index is set), and the
            signature is Ed25519 over "meshwork-receipts-v2|node|root". A receipt without `root`
            (from before batches) is signed over the message itself.
Thread-safety: a Client holds one keep-alive connection; use one Client per thread.
"""

import base64
import http.client
import json
import math
import os
import socket
import ssl
import time
import urllib.parse

import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.signing

TERMINAL_STATES = ("succeeded", "failed", "cancelled")
WAIT_S_MAX = 60        # the API's bound on ?wait_s=
POLL_S_MIN = 0.05      # first pause when a node answers a long poll at once
POLL_S_MAX = 1.0
BUSY_RETRIES = 3       # resends of a signed envelope after 429/503 (same id: safe)
KEY_FILE_BYTES = 64    # seed || public key, as `meshwork keygen` writes it
INT64_MIN, UINT64_MAX = -(2**63), 2**64 - 1


# ---- hashing and the node's JSON ----

def blake2b256_hex(data):
    """meshwork's blake2b_hex (dht/hash.h): BLAKE2b-256 as 64 lowercase hex characters."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return nacl.hash.blake2b(data, digest_size=32, encoder=nacl.encoding.HexEncoder).decode()


class JsonFloat(float):
    """A float read from the node's JSON, kept with its exact text (see parse_json)."""

    def __new__(cls, text):
        value = super().__new__(cls, text)
        value.text = text
        return value


def parse_json(text):
    """json.loads, with floats kept as JsonFloat so that they re-serialise exactly as the node
    printed them. Integers are Python ints (no precision is lost)."""
    return json.loads(text, parse_float=JsonFloat)


def format_float(x):
    """nlohmann::json's dump() of a double: shortest round-trip digits, decimal notation while the
    decimal point is at -4 < n <= 15, else d.ddde±XX ("1.0", "0.0001", "1e-05", "1e+15")."""
    if math.isnan(x) or math.isinf(x):
        return "null"
    if x == 0:
        return "-0.0" if math.copysign(1, x) < 0 else "0.0"
    sign = "-" if x < 0 else ""
    mant, _, exp = ("%r" % abs(x)).partition("e")
    whole, _, frac = mant.partition(".")
    digits = (whole + frac).lstrip("0")
    n = len(whole) + int(exp or 0) - (len(whole + frac) - len(digits))  # the decimal point
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 15:
        return sign + digits + "0" * (n - k) + ".0"
    if 0 < n <= 15:
        return sign + digits[:n] + "." + digits[n:]
    if -4 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    body = digits if k == 1 else digits[0] + "." + digits[1:]
    return "%s%se%s%02d" % (sign, body, "-" if e < 0 else "+", abs(e))


def canonical_json(value):
    """The node's compact dump(): keys sorted by their UTF-8 bytes, no spaces, raw UTF-8, integers
    as integers (int64..uint64; beyond, the node reads a double), floats as format_float."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, JsonFloat):
        return value.text
    if isinstance(value, int):
        return str(value) if INT64_MIN <= value <= UINT64_MAX else format_float(float(value))
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-8"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical_json(value[k])
                              for k in keys) + "}"
    raise TypeError("cannot serialise %s as JSON" % type(value).__name__)


# ---- keys, envelopes, receipts ----

class Key:
    """An Ed25519 identity. The key file is the node's: 64 raw bytes, seed then public key, 0600."""

    def __init__(self, seed):
        self.signing_key = nacl.signing.SigningKey(bytes(seed))
        self.seed = bytes(seed)
        self.public_key = bytes(self.signing_key.verify_key)
        self.public_key_b64 = base64.b64encode(self.public_key).decode()

    @staticmethod
    def generate():
        return Key(os.urandom(32))

    @staticmethod
    def load(path):
        with open(path, "rb") as f:
            data = f.read()
        if len(data) != KEY_FILE_BYTES:
            raise ValueError("%s is not a 64-byte Ed25519 key" % path)
        key = Key(data[:32])
        if key.public_key != data[32:]:
            raise ValueError("%s is inconsistent" % path)
        return key

    def save(self, path):
        """Creates `path` with mode 0600; refuses to overwrite an existing file."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.seed + self.public_key)

    def sign(self, data):
        return self.signing_key.sign(data).signature


def verify_signature(public_key_b64, message, signature_b64):
    try:
        raw = base64.b64decode(public_key_b64, validate=True)
        sig = base64.b64decode(signature_b64, validate=True)
        if len(raw) != 32 or len(sig) != 64:
            return False
        nacl.signing.VerifyKey(raw).verify(message, sig)
        return True
    except (ValueError, nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError):
        return False


def job_id_of(envelope):
    public_key = base64.b64decode(envelope["public_key"])
    return blake2b256_hex(envelope["job"].encode("utf-8") + public_key)


def _job_text(spec, now_ms):
    full = dict({"payload": {}}, **spec)
    full.setdefault("nonce", os.urandom(16).hex())
    full.setdefault("created_at", now_ms if now_ms is not None else int(time.time() * 1000))
    return canonical_json(full)


def sign_job(spec, key, now_ms=None):
    """Signs a plain job {type, payload, max_attempts?, timeout_ms?}, adding a random nonce and
    created_at (ms) when absent. The signed text is compact JSON with sorted keys."""
    job = _job_text(spec, now_ms)
    return {"job": job, "public_key": key.public_key_b64,
            "signature": base64.b64encode(key.sign(job.encode("utf-8"))).decode()}


def merkle_tree(leaves):
    """dht/merkle.h's tree over raw 32-byte leaf hashes: (root, proofs), each proof the siblings
    from the bottom; an odd level pairs its last node with itself."""
    proofs = [[] for _ in leaves]
    level, k = list(leaves), 0
    while len(level) > 1:
        for i, proof in enumerate(proofs):
            proof.append(level[min((i >> k) ^ 1, len(level) - 1)])
        level = [_blake2b256(b"\x01" + level[i] + level[min(i + 1, len(level) - 1)])
                 for i in range(0, len(level), 2)]
        k += 1
    return level[0], proofs


def job_leaf(index, job_id):
    """Leaf `index` of a job batch: BLAKE2b-256(0x00 || u32 LE index || "meshwork-job-v1|" + id)."""
    return _blake2b256(b"\x00" + index.to_bytes(4, "little") +
                       ("meshwork-job-v1|" + job_id).encode("utf-8"))


def sign_job_batch(specs, key, now_ms=None):
    """Signs 1 to 1,000 plain jobs together with one signature over the Merkle root of their ids.
    Returns (body, envelopes): the body of POST /v1/jobs/batch signed once ({"jobs": [{"job":
    text}, ...], "public_key", "signature"}) and each job's envelope as the node stores it (with
    root, index and proof; job_id_of gives its id, the same as signed alone)."""
    texts = [_job_text(spec, now_ms) for spec in specs]
    ids = [blake2b256_hex(t.encode("utf-8") + key.public_key) for t in texts]
    root, proofs = merkle_tree([job_leaf(i, job_id) for i, job_id in enumerate(ids)])
    signature = base64.b64encode(key.sign(("meshwork-jobs-v1|" + root.hex()).encode())).decode()
    body = {"jobs": [{"job": t} for t in texts], "public_key": key.public_key_b64,
            "signature": signature}
    envelopes = [{"job": t, "public_key": key.public_key_b64, "signature": signature,
                  "root": root.hex(), "index": i, "proof": [p.hex() for p in proofs[i]]}
                 for i, t in enumerate(texts)]
    return body, envelopes


def request_headers(key, action, job_id, now_ms=None):
    """The headers of a request on a job signed with `key` (node/client_auth.h): Ed25519 over
    "meshwork-request-v1\n<action>\n<job id>\n<time ms>", good for 5 minutes, once per node."""
    t = now_ms if now_ms is not None else int(time.time() * 1000)
    message = "meshwork-request-v1\n%s\n%s\n%d" % (action, job_id, t)
    return {"Meshwork-Key": key.public_key_b64, "Meshwork-Time": str(t),
            "Meshwork-Signature": base64.b64encode(key.sign(message.encode("utf-8"))).decode()}


MERKLE_LEVELS_MAX = 32


def _blake2b256(data):
    return nacl.hash.blake2b(data, digest_size=32, encoder=nacl.encoding.RawEncoder)


def receipt_signed_message(receipt):
    """The bytes a receipt's signature is over, or None when a batched receipt's index, proof or
    root is malformed or its proof does not lead from its leaf to its root."""
    message = "meshwork-receipt-v1|{job_id}|{node}|{attempt}|{result_hash}".format(**receipt)
    if "root" not in receipt:
        return message.encode("utf-8")
    index, proof, root = receipt.get("index"), receipt.get("proof"), receipt.get("root")
    if type(index) is not int or not 0 <= index < 2 ** 32 or not isinstance(root, str) \
            or not isinstance(proof, list) or len(proof) > MERKLE_LEVELS_MAX \
            or index >> len(proof):
        return None
    try:
        node = _blake2b256(b"\x00" + index.to_bytes(4, "little") + message.encode("utf-8"))
        for k, sibling_hex in enumerate(proof):
            sibling = bytes.fromhex(sibling_hex)
            if len(sibling) != 32:
                return None
            pair = sibling + node if (index >> k) & 1 else node + sibling
            node = _blake2b256(b"\x01" + pair)
        if node != bytes.fromhex(root):
            return None
    except (TypeError, ValueError):
        return None
    return ("meshwork-receipts-v2|%s|%s" % (receipt["node"], root)).encode("utf-8")


def _check_receipt(receipt, where, job_id, hashed, keys):
    if not isinstance(receipt, dict):
        receipt = {}
    out = {"where": where, "node": receipt.get("node"), "attempt": receipt.get("attempt"),
           "valid": False, "reason": ""}
    if not all(isinstance(receipt.get(f), str)
               for f in ("job_id", "node", "result_hash", "public_key", "signature")) \
            or type(receipt.get("attempt")) is not int:
        out["reason"] = "the receipt is malformed"
        return out
    known = keys.get(receipt["node"])
    message = receipt_signed_message(receipt)
    if receipt["job_id"] != job_id:
        out["reason"] = "the receipt names another job"
    elif known is None:
        out["valid"] = None
        out["reason"] = "node %s is not in the membership: its key is unknown" % receipt["node"]
    elif receipt["public_key"] != known:
        out["reason"] = "the key is not the node's key"
    elif receipt["result_hash"] != blake2b256_hex(hashed):
        out["reason"] = "the result does not match result_hash"
    elif message is None:
        out["reason"] = "the inclusion proof does not lead to the receipt's root"
    elif not verify_signature(known, message, receipt["signature"]):
        out["reason"] = "the signature does not verify"
    else:
        out["valid"] = True
    return out


def verify_receipts(job, keys):
    """Checks every receipt of a job view against node keys ({name: base64 public key}). Returns
    {"status", "receipts"}: "valid" when every receipt verifies, "invalid" when one does not,
    "unchecked" when a key is unknown or the job has no receipt yet."""
    receipts = []
    results = job.get("results") or {}
    for node, res in results.items():
        res = res if isinstance(res, dict) else {}
        hashed = canonical_json(res.get("result")) if res.get("outcome") == "succeeded" \
            else res.get("error") or ""
        check = _check_receipt(res.get("receipt"), "results." + node, job["id"], hashed, keys)
        if check["valid"] and (res["receipt"]["node"] != node
                               or res["receipt"]["attempt"] != res.get("attempt")):
            check.update(valid=False, reason="the receipt belongs to another node or attempt")
        receipts.append(check)
    final = job.get("receipt")
    if final:
        # The final receipt is the one its node signed for its last attempt (results[node]): it
        # vouches for the job's `result` when that attempt succeeded, else for that attempt's error.
        fin = results.get(final.get("node")) if isinstance(final, dict) else None
        fin = fin if isinstance(fin, dict) else None
        succeeded = fin.get("outcome") == "succeeded" if fin else job.get("state") == "succeeded"
        hashed = canonical_json(job.get("result")) if succeeded \
            else (fin.get("error") if fin else job.get("error")) or ""
        check = _check_receipt(final, "receipt", job["id"], hashed, keys)
        if check["valid"] and fin and (fin.get("receipt") or {}).get("signature") \
                != final["signature"]:
            check.update(valid=False, reason="the receipt is not its node's last one")
        receipts.append(check)
    status = "valid"
    if any(r["valid"] is False for r in receipts):
        status = "invalid"
    elif not receipts or any(r["valid"] is None for r in receipts):
        status = "unchecked"
    return {"status": status, "receipts": receipts}


# ---- HTTP ----

class MeshworkError(Exception):
    """An error answer of the node (its problem+json in .problem), or a transport failure
    (status 0)."""

    def __init__(self, status, problem=None, message=None):
        if message is None:
            p = problem if isinstance(problem, dict) else {}
            message = "%s %s: %s" % (status, p.get("title", ""), p.get("detail", ""))
        super().__init__(message)
        self.status = status
        self.problem = problem


class Response:
    def __init__(self, status, headers, text):
        self.status, self.headers, self.text = status, headers, text
        try:
            self.body = parse_json(text) if text else None
        except ValueError:
            self.body = None


class Client:
    """base_url: http://host:port or https://host:port. key: a Key to sign plain jobs with (else
    the node signs them). ca_file: PEM file of CAs to trust for https. timeout: seconds per
    request (it must exceed a long poll's wait_s)."""

    def __init__(self, base_url, key=None, ca_file=None, timeout=90):
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("the node URL must be http:// or https://, not %r" % base_url)
        self.key = key
        self.timeout = timeout
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port or (443 if self._https else 80)
        self._base = url.path.rstrip("/")
        self._ssl = ssl.create_default_context(cafile=ca_file) if self._https else None
        self._conn = None

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connect(self):
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout,
                                               context=self._ssl)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def request(self, method, path, body=None, headers=None):
        """One request on the keep-alive connection; a connection the node closed while idle is
        replaced once (the node had not read the request)."""
        data = canonical_json(body).encode("utf-8") if body is not None else None
        headers = dict({"Accept": "application/json"}, **(headers or {}))
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            fresh = self._conn is None
            try:
                if fresh:
                    self._conn = self._connect()
                self._conn.request(method, self._base + path, body=data, headers=headers)
                r = self._conn.getresponse()
                text = r.read().decode("utf-8", "replace")
                if r.will_close:
                    self.close()
                return Response(r.status, r.headers, text)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self.close()
                if fresh or attempt == 1:
                    raise MeshworkError(0, None, "%s %s: %s" % (method, path, e)) from e
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise MeshworkError(0, None, "%s %s: %s" % (method, path, e)) from e
        raise AssertionError("unreachable")

    def _call(self, method, path, body=None, ok=(200,), headers=None):
        r = self.request(method, path, body, headers)
        if r.status not in ok:
            detail = None if isinstance(r.body, dict) and "detail" in r.body \
                else "%d: %s" % (r.status, r.text[:200])
            raise MeshworkError(r.status, r.body, detail)
        if r.body is None:
            raise MeshworkError(r.status, None, "%s %s: not JSON" % (method, path))
        return r.body

    def _envelope(self, job):
        if _is_envelope(job) or self.key is None:
            return job
        return sign_job(job, self.key)

    def submit(self, job):
        """POST /v1/jobs. Returns the job view, with "duplicate": True when the node already held
        it. A signed envelope is resent (same id) after 429/503, waiting Retry-After."""
        body = self._envelope(job)
        for attempt in range(BUSY_RETRIES + 1):
            r = self.request("POST", "/v1/jobs", body)
            if r.status in (200, 202):
                if _is_envelope(body) and r.body["id"] != job_id_of(body):
                    raise MeshworkError(r.status, None, "the node named job %s, not %s"
                                        % (r.body["id"], job_id_of(body)))
                return dict(r.body, duplicate=r.status == 200)
            if not _is_envelope(body) or r.status not in (429, 503) or attempt == BUSY_RETRIES:
                raise MeshworkError(r.status, r.body)
            time.sleep(float(r.headers.get("Retry-After") or 1))
        raise AssertionError("unreachable")

    def submit_batch(self, jobs, one_signature=True):
        """POST /v1/jobs/batch: {"results": [{"status", "id"?, ...}], "accepted", "duplicates",
        "rejected"}. With a key and only plain jobs, the batch is signed once (sign_job_batch)
        unless one_signature is False; else each plain job is signed on its own and envelopes go
        as they are (without a key the node signs the plain jobs)."""
        if one_signature and self.key is not None and jobs and \
                not any(_is_envelope(j) for j in jobs):
            body, envelopes = sign_job_batch(jobs, self.key)
            out = self._call("POST", "/v1/jobs/batch", body)
            for r, env in zip(out["results"], envelopes):
                if "id" in r and r["id"] != job_id_of(env):
                    raise MeshworkError(200, out, "the node named job %s, not %s"
                                        % (r["id"], job_id_of(env)))
            return out
        return self._call("POST", "/v1/jobs/batch", {"jobs": [self._envelope(j) for j in jobs]})

    def get_job(self, job_id, wait_s=None, scope=None):
        """GET /v1/jobs/{id}; wait_s (0..60) asks the node to answer once the job is terminal."""
        q = {k: v for k, v in (("wait_s", wait_s), ("scope", scope)) if v is not None}
        return self._call("GET", "/v1/jobs/%s%s" % (urllib.parse.quote(job_id, safe=""),
                                                    "?" + urllib.parse.urlencode(q) if q else ""))

    def wait_job(self, job_id, timeout=300):
        """Long-polls until the job is terminal; MeshworkError(0) after `timeout` s. A node that
        answers a long poll at once (one without ?wait_s=) is polled with a growing pause."""
        deadline = time.monotonic() + timeout
        pause = POLL_S_MIN
        while True:
            left = max(0, min(WAIT_S_MAX, math.ceil(deadline - time.monotonic()),
                              int(self.timeout) - 1))
            asked = time.monotonic()
            job = self.get_job(job_id, wait_s=left)
            if job["state"] in TERMINAL_STATES:
                return job
            now = time.monotonic()
            if now >= deadline:
                raise MeshworkError(0, None, "job %s still %s after %s s"
                                    % (job_id, job["state"], timeout))
            if now - asked < pause:
                time.sleep(min(pause, deadline - now))
                pause = min(POLL_S_MAX, pause * 2)

    def cancel(self, job_id, key=None):
        """POST /v1/jobs/{id}/cancel, signed with `key` (default: the client's key) when there is
        one. 409 (already finished), 404, and 403 when the job was signed by a client and the
        request is not signed by its key or an admin key, raise."""
        return self._change("cancel", job_id, key)

    def retry(self, job_id, key=None):
        """POST /v1/jobs/{id}/retry: a failed or cancelled job runs again with a fresh set of
        attempts. Signed as cancel() is; 409 (not failed or cancelled), 404 and 403 raise."""
        return self._change("retry", job_id, key)

    def _change(self, action, job_id, key):
        key = key or self.key
        headers = request_headers(key, action, job_id) if key is not None else None
        return self._call("POST", "/v1/jobs/%s/%s" % (urllib.parse.quote(job_id, safe=""), action),
                          headers=headers)

    def list_jobs(self, state=None, type=None, limit=None, cursor=None, scope=None):
        """GET /v1/jobs: {"jobs", "next_cursor"}."""
        q = {k: v for k, v in (("state", state), ("type", type), ("limit", limit),
                               ("cursor", cursor), ("scope", scope)) if v is not None}
        return self._call("GET", "/v1/jobs" + ("?" + urllib.parse.urlencode(q) if q else ""))

    def iter_jobs(self, **filters):
        """Every job summary matching the filters, page after page."""
        cursor = None
        while True:
            page = self.list_jobs(cursor=cursor, **filters)
            yield from page["jobs"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def members(self):
        return self._call("GET", "/v1/cluster/members")

    def node_info(self):
        return self._call("GET", "/v1/node")

    def receipts(self, job_id):
        """The node's own check of a job's receipts (GET /v1/jobs/{id}/receipts): {"id",
        "redundancy", "verdict"?, "receipts": [{"node", ..., "status", "why"}]}. This is the node's
        word; verify_job checks the receipts here, against the members' keys."""
        return self._call("GET", "/v1/jobs/" + job_id + "/receipts")

    def node_keys(self):
        """Node name -> base64 public key, as this node knows its members."""
        return {m["name"]: m["public_key"] for m in self.members()["members"]}

    def verify_job(self, job_or_id):
        """Verifies a job's receipts (a job view, or an id to fetch) against the members' keys."""
        job = self.get_job(job_or_id) if isinstance(job_or_id, str) else job_or_id
        return verify_receipts(job, self.node_keys())


def _is_envelope(job):
    return isinstance(job, dict) and isinstance(job.get("job"), str)
