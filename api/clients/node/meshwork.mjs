// A meshwork client for Node.js (20+) on built-in modules only: Ed25519 keys in the node's key-file
// format, signed job envelopes, the v1 REST API over http:// or https:// (with a CA file), and
// receipt verification. See docs/clients.md.
//
//   import { Client, Key } from './meshwork.mjs';
//   const key = Key.generate();
//   const mesh = new Client('http://127.0.0.1:8080', { key });
//   const job = await mesh.waitJob((await mesh.submit({ type: 'echo', payload: { hi: 1 } })).id);
//   const check = await mesh.verifyJob(job);   // check.status: 'valid' | 'invalid' | 'unchecked'
//
// Wire formats (node/envelope.cpp, node/job_runner.cpp, dht/hash.cpp):
//   envelope   {"job": <JSON text of the spec>, "public_key": b64(32 bytes), "signature": b64(64)}:
//              Ed25519 over the UTF-8 bytes of `job`.
//   job id     hex BLAKE2b-256 of those bytes followed by the 32 raw public-key bytes.
//   batch      jobs signed together (signJobBatch, submitBatch): one Ed25519 signature over
//              "meshwork-jobs-v1|<root hex>", the root of the Merkle tree below whose leaf i is
//              BLAKE2b-256(0x00 || u32 LE i || "meshwork-job-v1|" + job id i); each job's envelope
//              then carries `root`, `index` and `proof` and keeps its id.
//   cancel     signed with Meshwork-Key/-Time/-Signature headers (requestHeaders below).
//   retry      a failed or cancelled job, again, signed as cancel is.
//   receipt    message = "meshwork-receipt-v1|job_id|node|attempt|result_hash"; result_hash = hex
//              BLAKE2b-256 of the result's compact JSON (json.mjs) when the attempt succeeded,
//              else of its error text. Nodes sign receipts in batches (dht/merkle.h): a receipt
//              with `root` has `index` and `proof` (hex siblings, at most 32); its leaf is
//              BLAKE2b-256(0x00 || u32 LE index || message), inner nodes BLAKE2b-256(0x01 || l || r)
//              (right child at level k when bit k of index is set); the signature is Ed25519 over
//              "meshwork-receipts-v2|node|root". Without `root`: Ed25519 over the message.
// Requests go through node:http/node:https rather than fetch(): Node 20's fetch cannot be given a
// CA for one connection without the undici package (only NODE_EXTRA_CA_CERTS, process-wide).

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';

import { blake2b, blake2b256Hex } from './blake2b.mjs';
import { JsonFloat, canonicalJson, parseJson } from './json.mjs';

export { blake2b256Hex, canonicalJson, parseJson, JsonFloat };

export const TERMINAL_STATES = ['succeeded', 'failed', 'cancelled'];
const WAIT_S_MAX = 60;            // the API's bound on ?wait_s=
const POLL_MS_MIN = 50;           // first pause when a node answers a long poll at once
const POLL_MS_MAX = 1000;
const BUSY_RETRIES = 3;           // resends of a signed envelope after 429/503 (same id: safe)
const KEY_FILE_BYTES = 64;        // seed || public key, as `meshwork keygen` writes it
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');

// An Ed25519 identity. The key file is the node's: 64 raw bytes, seed then public key, mode 0600.
export class Key {
  constructor(seed) {
    if (seed.length !== 32) throw new RangeError('an Ed25519 seed is 32 bytes');
    this.seed = Buffer.from(seed);
    this.privateKey = crypto.createPrivateKey({
      key: Buffer.concat([PKCS8_ED25519, this.seed]), format: 'der', type: 'pkcs8' });
    const spki = crypto.createPublicKey(this.privateKey).export({ format: 'der', type: 'spki' });
    this.publicKey = spki.subarray(SPKI_ED25519.length);
    this.publicKeyB64 = this.publicKey.toString('base64');
  }

  static generate() {
    return new Key(crypto.randomBytes(32));
  }

  static load(path) {
    const bytes = fs.readFileSync(path);
    if (bytes.length !== KEY_FILE_BYTES) throw new Error(`${path} is not a 64-byte Ed25519 key`);
    const key = new Key(bytes.subarray(0, 32));
    if (!key.publicKey.equals(bytes.subarray(32))) throw new Error(`${path} is inconsistent`);
    return key;
  }

  // Creates `path` with mode 0600; refuses to overwrite an existing file.
  save(path) {
    fs.writeFileSync(path, Buffer.concat([this.seed, this.publicKey]), { flag: 'wx', mode: 0o600 });
  }

  sign(bytes) {
    return crypto.sign(null, Buffer.from(bytes), this.privateKey);
  }
}

export function verifySignature(publicKeyB64, message, signatureB64) {
  const raw = Buffer.from(publicKeyB64, 'base64');
  const sig = Buffer.from(signatureB64, 'base64');
  if (raw.length !== 32 || sig.length !== 64) return false;
  try {
    const key = crypto.createPublicKey({
      key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' });
    return crypto.verify(null, Buffer.from(message), key, sig);
  } catch {
    return false;  // not a point on the curve
  }
}

export function jobIdOf(envelope) {
  return blake2b256Hex(Buffer.concat([Buffer.from(envelope.job, 'utf8'),
                                      Buffer.from(envelope.public_key, 'base64')]));
}

// Signs a plain job {type, payload, max_attempts?, timeout_ms?}, adding a random nonce and
// created_at (ms) when absent. The signed text is compact JSON with sorted keys.
function jobText(spec, nowMs) {
  const full = { payload: {}, ...spec };
  if (full.nonce === undefined) full.nonce = crypto.randomBytes(16).toString('hex');
  if (full.created_at === undefined) full.created_at = nowMs;
  return canonicalJson(full);
}

export function signJob(spec, key, nowMs = Date.now()) {
  const job = jobText(spec, nowMs);
  return { job, public_key: key.publicKeyB64, signature: key.sign(job).toString('base64') };
}

// dht/merkle.h's tree over raw 32-byte leaf hashes: { root, proofs }, each proof the siblings from
// the bottom; an odd level pairs its last node with itself.
export function merkleTree(leaves) {
  const proofs = leaves.map(() => []);
  let level = leaves;
  for (let k = 0; level.length > 1; k++) {
    proofs.forEach((proof, i) => proof.push(level[Math.min((Math.floor(i / 2 ** k)) ^ 1,
                                                           level.length - 1)]));
    const up = [];
    for (let i = 0; i < level.length; i += 2)
      up.push(blake2b(Buffer.concat([Buffer.from([1]), level[i],
                                     level[Math.min(i + 1, level.length - 1)]])));
    level = up;
  }
  return { root: level[0], proofs };
}

// Leaf `index` of a job batch: BLAKE2b-256(0x00 || u32 LE index || "meshwork-job-v1|" + job id).
export function jobLeaf(index, jobId) {
  const index4 = Buffer.alloc(4);
  index4.writeUInt32LE(index);
  return blake2b(Buffer.concat([Buffer.from([0]), index4,
                                Buffer.from(`meshwork-job-v1|${jobId}`, 'utf8')]));
}

// Signs 1 to 1,000 plain jobs together with one signature over the Merkle root of their ids.
// Returns { body, envelopes }: the body of POST /v1/jobs/batch signed once ({jobs: [{job}],
// public_key, signature}) and each job's envelope as the node stores it (root, index, proof;
// jobIdOf gives its id, the same as signed alone).
export function signJobBatch(specs, key, nowMs = Date.now()) {
  const texts = specs.map((spec) => jobText(spec, nowMs));
  const ids = texts.map((job) => jobIdOf({ job, public_key: key.publicKeyB64 }));
  const { root, proofs } = merkleTree(ids.map((id, i) => jobLeaf(i, id)));
  const rootHex = root.toString('hex');
  const signature = key.sign(`meshwork-jobs-v1|${rootHex}`).toString('base64');
  const body = { jobs: texts.map((job) => ({ job })), public_key: key.publicKeyB64, signature };
  const envelopes = texts.map((job, index) => ({
    job, public_key: key.publicKeyB64, signature, root: rootHex, index,
    proof: proofs[index].map((p) => p.toString('hex')) }));
  return { body, envelopes };
}

// An error answer of the node (RFC 9457 problem+json), or a transport failure (status 0).
// The headers of a request on a job signed with `key` (node/client_auth.h): Ed25519 over
// "meshwork-request-v1\n<action>\n<job id>\n<time ms>", good for 5 minutes, once per node.
export function requestHeaders(key, action, jobId, nowMs = Date.now()) {
  const message = `meshwork-request-v1\n${action}\n${jobId}\n${nowMs}`;
  return { 'Meshwork-Key': key.publicKeyB64, 'Meshwork-Time': String(nowMs),
           'Meshwork-Signature': key.sign(message).toString('base64') };
}

export class MeshworkError extends Error {
  constructor(status, problem, message) {
    super(message ?? `${status} ${problem?.title ?? ''}: ${problem?.detail ?? ''}`);
    this.status = status;
    this.problem = problem;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const isEnvelope = (j) => j !== null && typeof j === 'object' && typeof j.job === 'string';

function resultHash(receipt, text) {
  return receipt.result_hash === blake2b256Hex(text);
}

const MERKLE_LEVELS_MAX = 32;
const HEX_HASH = /^[0-9a-fA-F]{64}$/;

// What a receipt's signature is over; null when a batched receipt's index, proof or root is
// malformed or its proof does not lead from its leaf to its root.
export function receiptSignedMessage(receipt) {
  const message = `meshwork-receipt-v1|${receipt.job_id}|${receipt.node}|` +
                  `${receipt.attempt}|${receipt.result_hash}`;
  if (!('root' in receipt)) return message;
  const { index, proof, root } = receipt;
  if (!Number.isInteger(index) || index < 0 || index >= 2 ** 32 || typeof root !== 'string' ||
      !HEX_HASH.test(root) || !Array.isArray(proof) || proof.length > MERKLE_LEVELS_MAX ||
      Math.floor(index / 2 ** proof.length) !== 0 ||
      !proof.every((p) => typeof p === 'string' && HEX_HASH.test(p)))
    return null;
  const index4 = Buffer.alloc(4);
  index4.writeUInt32LE(index);
  let node = blake2b(Buffer.concat([Buffer.from([0]), index4, Buffer.from(message, 'utf8')]));
  proof.forEach((hex, k) => {
    const sibling = Buffer.from(hex, 'hex');
    const right = Math.floor(index / 2 ** k) % 2 === 1;
    node = blake2b(Buffer.concat([Buffer.from([1]), right ? sibling : node, right ? node : sibling]));
  });
  if (!node.equals(Buffer.from(root, 'hex'))) return null;
  return `meshwork-receipts-v2|${receipt.node}|${root}`;
}

// One receipt against what it vouches for; `hashed` is the result text or the error text.
function checkReceipt(receipt, where, jobId, hashed, keys) {
  const out = { where, node: receipt?.node, attempt: receipt?.attempt, valid: false, reason: '' };
  const fields = ['job_id', 'node', 'result_hash', 'public_key', 'signature'];
  if (!receipt || !fields.every((f) => typeof receipt[f] === 'string') ||
      !Number.isInteger(receipt.attempt)) {
    out.reason = 'the receipt is malformed';
    return out;
  }
  const known = keys.get(receipt.node);
  if (receipt.job_id !== jobId) out.reason = 'the receipt names another job';
  else if (known === undefined) {
    out.valid = null;
    out.reason = `node ${receipt.node} is not in the membership: its key is unknown`;
  } else if (receipt.public_key !== known) out.reason = "the key is not the node's key";
  else if (!resultHash(receipt, hashed)) out.reason = 'the result does not match result_hash';
  else if (receiptSignedMessage(receipt) === null)
    out.reason = "the inclusion proof does not lead to the receipt's root";
  else if (!verifySignature(known, receiptSignedMessage(receipt), receipt.signature))
    out.reason = 'the signature does not verify';
  else out.valid = true;
  return out;
}

// Checks every receipt of a job view against node keys (a Map name → base64 public key).
// Returns {status, receipts}: status 'valid' when every receipt verifies, 'invalid' when one does
// not, 'unchecked' when a key is unknown or the job has no receipt yet.
export function verifyReceipts(job, keys) {
  const receipts = [];
  const results = job.results ?? {};
  for (const [node, res] of Object.entries(results)) {
    const hashed = res?.outcome === 'succeeded' ? canonicalJson(res.result) : (res?.error ?? '');
    const check = checkReceipt(res?.receipt, `results.${node}`, job.id, hashed, keys);
    if (check.valid && (res.receipt.node !== node || res.receipt.attempt !== res.attempt)) {
      check.valid = false;
      check.reason = 'the receipt belongs to another node or attempt';
    }
    receipts.push(check);
  }
  if (job.receipt) {
    // The final receipt is the one its node signed for its last attempt (results[node]): it
    // vouches for the job's `result` when that attempt succeeded, else for that attempt's error.
    const fin = results[job.receipt.node];
    const succeeded = fin ? fin.outcome === 'succeeded' : job.state === 'succeeded';
    const hashed = succeeded ? canonicalJson(job.result) : ((fin ? fin.error : job.error) ?? '');
    const check = checkReceipt(job.receipt, 'receipt', job.id, hashed, keys);
    if (check.valid && fin && fin.receipt?.signature !== job.receipt.signature) {
      check.valid = false;
      check.reason = "the receipt is not its node's last one";
    }
    receipts.push(check);
  }
  let status = 'valid';
  if (receipts.some((r) => r.valid === false)) status = 'invalid';
  else if (receipts.length === 0 || receipts.some((r) => r.valid === null)) status = 'unchecked';
  return { status, receipts };
}

export class Client {
  // baseUrl: http://host:port or https://host:port. Options: key (a Key: plain jobs are signed
  // with it), caFile (PEM file of CAs to trust for https), timeoutMs (per request, default 90 s).
  constructor(baseUrl, { key = null, caFile = null, timeoutMs = 90_000 } = {}) {
    this.url = new URL(baseUrl);
    if (!['http:', 'https:'].includes(this.url.protocol))
      throw new TypeError(`the node URL must be http:// or https://, not ${baseUrl}`);
    this.key = key;
    this.timeoutMs = timeoutMs;
    this.lib = this.url.protocol === 'https:' ? https : http;
    const agentOptions = { keepAlive: true, noDelay: true, maxSockets: 8 };
    if (caFile) agentOptions.ca = fs.readFileSync(caFile);
    this.agent = new this.lib.Agent(agentOptions);
  }

  close() {
    this.agent.destroy();
  }

  // One request; resolves {status, headers, body (parsed), text}. Throws MeshworkError(0) when the
  // node cannot be reached.
  request(method, path, body = undefined, extraHeaders = {}) {
    const data = body === undefined ? undefined : Buffer.from(canonicalJson(body));
    const headers = { Accept: 'application/json', ...extraHeaders };
    if (data) Object.assign(headers, { 'Content-Type': 'application/json',
                                       'Content-Length': data.length });
    const base = this.url.pathname.replace(/\/$/, '');
    return new Promise((resolve, reject) => {
      const req = this.lib.request(new URL(base + path, this.url), {
        method, headers, agent: this.agent, timeout: this.timeoutMs }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', (e) => reject(new MeshworkError(0, null, e.message)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed = null;
          try { parsed = text ? parseJson(text) : null; } catch { parsed = null; }
          resolve({ status: res.statusCode, headers: res.headers, body: parsed, text });
        });
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (e) => reject(new MeshworkError(0, null, `${method} ${path}: ${e.message}`)));
      req.end(data);
    });
  }

  async call(method, path, body = undefined, ok = [200], headers = {}) {
    const r = await this.request(method, path, body, headers);
    if (!ok.includes(r.status))
      throw new MeshworkError(r.status, r.body, r.body?.detail ? undefined
                                                  : `${r.status}: ${r.text.slice(0, 200)}`);
    if (r.body === null) throw new MeshworkError(r.status, null, `${method} ${path}: not JSON`);
    return r;
  }

  // A plain job is signed with the client's key when it has one (else the node signs it).
  envelopeOf(job) {
    return isEnvelope(job) || this.key === null ? job : signJob(job, this.key);
  }

  // POST /v1/jobs. Returns the job view, with `duplicate: true` when the node already held it.
  // A signed envelope is resent (same id) after 429/503, waiting Retry-After.
  async submit(job) {
    const body = this.envelopeOf(job);
    for (let attempt = 0; ; attempt++) {
      const r = await this.request('POST', '/v1/jobs', body);
      if (r.status === 202 || r.status === 200) {
        const id = isEnvelope(body) ? jobIdOf(body) : r.body.id;
        if (r.body.id !== id)
          throw new MeshworkError(r.status, null, `the node named job ${r.body.id}, not ${id}`);
        return { ...r.body, duplicate: r.status === 200 };
      }
      if (!isEnvelope(body) || ![429, 503].includes(r.status) || attempt >= BUSY_RETRIES)
        throw new MeshworkError(r.status, r.body);
      await sleep(1000 * Number(r.headers['retry-after'] ?? 1));
    }
  }

  // POST /v1/jobs/batch: {results: [{status, id?, ...}], accepted, duplicates, rejected}. With a
  // key and only plain jobs, the batch is signed once (signJobBatch) unless oneSignature is
  // false; else each plain job is signed on its own and envelopes go as they are.
  async submitBatch(jobs, { oneSignature = true } = {}) {
    if (oneSignature && this.key !== null && jobs.length > 0 && !jobs.some(isEnvelope)) {
      const { body, envelopes } = signJobBatch(jobs, this.key);
      const out = (await this.call('POST', '/v1/jobs/batch', body)).body;
      out.results.forEach((r, i) => {
        const id = jobIdOf(envelopes[i]);
        if (r.id !== undefined && r.id !== id)
          throw new MeshworkError(200, out, `the node named job ${r.id}, not ${id}`);
      });
      return out;
    }
    const body = { jobs: jobs.map((j) => this.envelopeOf(j)) };
    return (await this.call('POST', '/v1/jobs/batch', body)).body;
  }

  // GET /v1/jobs/{id}; waitS (0..60) asks the node to answer once the job is terminal.
  async getJob(id, { waitS = null, scope = null } = {}) {
    const q = new URLSearchParams();
    if (waitS !== null) q.set('wait_s', String(waitS));
    if (scope !== null) q.set('scope', scope);
    const qs = q.toString();
    return (await this.call('GET', `/v1/jobs/${encodeURIComponent(id)}${qs ? '?' + qs : ''}`)).body;
  }

  // Long-polls until the job is terminal; throws MeshworkError(0) after timeoutS. A node that
  // answers a long poll at once (one without ?wait_s=) is polled with a growing pause instead.
  async waitJob(id, { timeoutS = 300 } = {}) {
    const deadline = Date.now() + timeoutS * 1000;
    let pauseMs = POLL_MS_MIN;
    for (;;) {
      const leftS = Math.ceil((deadline - Date.now()) / 1000);
      const asked = Date.now();
      const waitS = Math.min(WAIT_S_MAX, leftS, Math.floor(this.timeoutMs / 1000) - 1);
      const job = await this.getJob(id, { waitS: Math.max(0, waitS) });
      if (TERMINAL_STATES.includes(job.state)) return job;
      if (Date.now() >= deadline)
        throw new MeshworkError(0, null, `job ${id} still ${job.state} after ${timeoutS} s`);
      if (Date.now() - asked < pauseMs) {
        await sleep(Math.min(pauseMs, Math.max(0, deadline - Date.now())));
        pauseMs = Math.min(POLL_MS_MAX, pauseMs * 2);
      }
    }
  }

  // POST /v1/jobs/{id}/cancel; 409 (already finished) and 404 throw, and 403 when the job was
  // signed by a client and the request is not signed by its key or an admin key. The request is
  // signed with `key` (default: the client's key) when there is one.
  async cancel(id, { key = this.key } = {}) {
    return this.change('cancel', id, key);
  }

  // POST /v1/jobs/{id}/retry: a failed or cancelled job runs again with a fresh set of attempts.
  // Signed as cancel is; 409 (not failed or cancelled), 404 and 403 throw.
  async retry(id, { key = this.key } = {}) {
    return this.change('retry', id, key);
  }

  async change(action, id, key) {
    const headers = key === null ? {} : requestHeaders(key, action, id);
    return (await this.call('POST', `/v1/jobs/${encodeURIComponent(id)}/${action}`, undefined,
                            [200], headers)).body;
  }

  // GET /v1/jobs: {jobs, next_cursor}.
  async listJobs({ state = null, type = null, limit = null, cursor = null, scope = null } = {}) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries({ state, type, limit, cursor, scope }))
      if (v !== null) q.set(k, String(v));
    const qs = q.toString();
    return (await this.call('GET', `/v1/jobs${qs ? '?' + qs : ''}`)).body;
  }

  // Every job summary matching the filter, page after page.
  async *jobs(filter = {}) {
    let cursor = null;
    do {
      const page = await this.listJobs({ ...filter, cursor });
      yield* page.jobs;
      cursor = page.next_cursor;
    } while (cursor);
  }

  async members() {
    return (await this.call('GET', '/v1/cluster/members')).body;
  }

  async nodeInfo() {
    return (await this.call('GET', '/v1/node')).body;
  }

  // The node's own check of a job's receipts (GET /v1/jobs/{id}/receipts): { id, redundancy,
  // verdict?, receipts: [{ node, ..., status, why }] }. This is the node's word; verifyJob checks
  // the receipts here, against the members' keys.
  async receipts(id) {
    return (await this.call('GET', `/v1/jobs/${id}/receipts`)).body;
  }

  // Node name → base64 public key, as this node knows its members.
  async nodeKeys() {
    const keys = new Map();
    for (const m of (await this.members()).members) keys.set(m.name, m.public_key);
    return keys;
  }

  // Verifies a job's receipts (a job view, or an id to fetch) against the members' keys.
  async verifyJob(jobOrId) {
    const job = typeof jobOrId === 'string' ? await this.getJob(jobOrId) : jobOrId;
    return verifyReceipts(job, await this.nodeKeys());
  }
}
