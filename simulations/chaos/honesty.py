"""Liars in a chaos run (--faults ...,lie|forge): were wrong results accepted, were liars caught?

  honest_result     what a job's handler returns when nobody lies: recomputed where the job type
                    allows (echo, sleep, pow, flaky: the handlers in node/ are pure functions of
                    the payload and the attempt), else the result most honest nodes of the record
                    give for the final attempt (None when none gave one).
  wrong_results     acknowledged jobs that succeeded with a result other than the honest one,
                    split by redundancy: k >= 3 must have none (a quorum of honest runners outvotes
                    one liar); k = 1 jobs run by a liar are wrong by design and show the lie
                    happened.
  liars_detected    a broken node (liar or forger) is detected when a majority of the honest
                    nodes still reachable list it in GET /v1/cluster/members with `trusted` false.
"""

import hashlib
import http.client

from cluster import http_json

POW_NONCE_BYTES = 8  # node/handler_pow.cpp: the nonce as 8 little-endian bytes after the data


def leading_zero_bits(digest):
    bits = 0
    for byte in digest:
        if byte:
            return bits + 8 - byte.bit_length()
        bits += 8
    return bits


def pow_result(data, bits, _cache={}):
    """node/handler_pow.cpp in Python: the smallest nonce whose hash has `bits` leading zeros."""
    key = (data, bits)
    if key not in _cache:
        prefix = hashlib.blake2b(data.encode(), digest_size=32)
        nonce = 0
        while True:
            h = prefix.copy()
            h.update(nonce.to_bytes(POW_NONCE_BYTES, "little"))
            digest = h.digest()
            if leading_zero_bits(digest) >= bits:
                break
            nonce += 1
        _cache[key] = {"nonce": nonce, "hash": digest.hex(), "hashes": nonce + 1,
                       "difficulty_bits": bits}
    return _cache[key]


def recomputed(job_type, payload, attempt):
    """The honest result of a job type whose handler this module can replay, else None."""
    if job_type == "echo":
        return {"echo": payload}
    if job_type == "sleep":
        return {"slept_ms": payload["ms"]}
    if job_type == "pow":
        return pow_result(payload["data"], payload["difficulty_bits"])
    if job_type == "flaky":
        return {"succeeded_on_attempt": attempt, "fail_times": payload["fail_times"]}
    return None


def by_honest_nodes(rec, broken):
    """The result most honest nodes of `rec` give for its final attempt, or None."""
    votes = {}
    for node, res in (rec.get("results") or {}).items():
        if node in broken or res.get("attempt") != rec.get("attempts"):
            continue
        if res.get("outcome") == "succeeded":
            text = repr(res.get("result"))
            votes.setdefault(text, [0, res.get("result")])[0] += 1
    if not votes:
        return None
    return max(votes.values(), key=lambda v: v[0])[1]


def honest_result(ack, rec, broken):
    got = recomputed(ack["type"], ack["payload"], rec.get("attempts"))
    return got if got is not None else by_honest_nodes(rec, broken)


def wrong_results(acks, records, broken):
    """→ (wrong jobs with k >= 3, wrong jobs with k < 3): [{"id", "type", "redundancy", "got",
    "honest", "producer"}], jobs that succeeded with a result other than the honest one."""
    strong, weak = [], []
    for a in acks:
        rec = records.get(a["id"])
        if rec is None or rec.get("state") != "succeeded":
            continue
        honest = honest_result(a, rec, broken)
        if honest is None or rec.get("result") == honest:
            continue
        k = a.get("redundancy", 1)
        (strong if k >= 3 else weak).append({
            "id": a["id"], "type": a["type"], "redundancy": k, "got": rec.get("result"),
            "honest": honest, "producer": (rec.get("receipt") or {}).get("node")})
    return strong, weak


def distrusted_by(node):
    """→ names `node` lists with `trusted` false, or None when it does not answer."""
    try:
        status, _, body = http_json(node.host, node.api_port, "GET", "/v1/cluster/members",
                                    timeout=5)
    except (OSError, http.client.HTTPException):
        return None
    if status != 200 or not body:
        return None
    return {m.get("name") for m in body.get("members", []) if m.get("trusted") is False}


def liars_detected(reachable, broken):
    """→ ({broken node: honest nodes that distrust it}, honest nodes asked): a broken node is
    detected when more than half of the honest nodes asked distrust it."""
    views = [v for v in (distrusted_by(n) for n in reachable if n.name not in broken)
             if v is not None]
    return {b: sum(b in v for v in views) for b in sorted(broken)}, len(views)
