// Tests of the Node.js client, run by tests/integration/test_clients.py (which starts the mesh):
//   node test.mjs unit                                   hashing and JSON, no network
//   node test.mjs mesh URL [--ca FILE] [--key-out PATH]  the whole client against a running mesh
//   node test.mjs wait URL                               waitJob against the test's stub node
// Exits 0 and prints a JSON report on success; a failed check throws (exit 1, the message on
// stderr).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { blake2b } from './blake2b.mjs';
import { Client, JsonFloat, Key, MeshworkError, blake2b256Hex, canonicalJson, jobIdOf, parseJson,
         signJob, signJobBatch, verifyReceipts } from './meshwork.mjs';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function unit() {
  // RFC 7693 appendix A and the libsodium crypto_generichash test vectors.
  assert.equal(blake2b256Hex(''),
               '0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8');
  assert.equal(blake2b256Hex('abc'),
               'bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319');
  assert.equal(blake2b('abc', 64).toString('hex'),
               'ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1' +
               '7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923');
  for (const n of [1, 111, 127, 128, 129, 255, 256, 257, 1000, 65537]) {  // block edges
    const data = crypto.randomBytes(n);
    const expected = crypto.createHash('blake2b512').update(data).digest();
    assert.ok(blake2b(data, 64).equals(expected), `n=${n}`);
  }
  const text = '{"b":18446744073709551615,"f":[1.0,-0.0,1e-05,0.0001,1e+15,100000000000000.0,' +
               '0.1,-2.5e-07],"k":{"a":2,"z":-9223372036854775808,"é":1},"s":"é\\u0001\\n"}';
  const v = parseJson(text);
  assert.equal(canonicalJson(v), text);
  assert.equal(v.b, 18446744073709551615n);
  assert.ok(v.f[0] instanceof JsonFloat && v.f[0] == 1);
  assert.equal(v.f[6], 0.1);
  // Keys sort by UTF-8 bytes ("\u{1F600}" after "\uFFFD"), not by UTF-16 units as .sort() would.
  assert.equal(canonicalJson({ '\u{1F600}': 1, '\uFFFD': 2, b: [1.5, 1e21, 2 ** 64] }),
               '{"b":[1.5,1e+21,1.8446744073709552e+19],"\uFFFD":2,"\u{1F600}":1}');
  return { unit: 'ok' };
}

// Echoed back by the node: every number and string form the node prints its own way.
function trickyPayload() {
  const floats = [];
  for (let i = 0; i < 200; i++) {
    const x = crypto.randomBytes(8).readDoubleLE(0);
    if (Number.isFinite(x) && !Number.isInteger(x)) floats.push(x);
  }
  return { big: 18446744073709551615n, neg: -9223372036854775808n, one: new JsonFloat('1.0'),
           floats: floats.concat([0.1, 1e-7, 123456789.125, 1.5e300]), text: 'é ✓ \u0001 "q"',
           z: { b: 1, a: [true, false, null] } };
}

async function expectError(promise, status) {
  await assert.rejects(promise, (e) => e instanceof MeshworkError && e.status === status);
}

async function keys(keyOut) {
  const key = Key.generate();
  if (keyOut) {
    key.save(keyOut);
    assert.throws(() => key.save(keyOut), /EEXIST/);  // never overwritten
    assert.ok(Key.load(keyOut).publicKey.equals(key.publicKey));
  }
  return key;
}

async function echoJob(mesh, key, report) {
  const payload = trickyPayload();
  const env = signJob({ type: 'echo', payload, max_attempts: 2 }, key);
  const job = await mesh.submit(env);
  assert.equal(job.id, jobIdOf(env));
  assert.equal(job.duplicate, false);
  assert.equal((await mesh.submit(env)).duplicate, true);  // the same envelope is the same job
  const done = await mesh.waitJob(job.id, { timeoutS: 60 });
  assert.equal(done.state, 'succeeded');
  // The same values; not always the same text: the node prints some floats with more digits than
  // the shortest form (nlohmann's Grisu2), and parseJson keeps those as JsonFloat with that text.
  const bigints = (k, x) => (typeof x === 'bigint' ? `${x}n` : x);
  const values = (v) => JSON.parse(JSON.stringify(v, bigints));
  assert.deepEqual(values(done.result), values({ echo: payload }));
  report.floats = payload.floats.length;
  report.floats_printed_otherwise =
    done.result.echo.floats.filter((x) => x instanceof JsonFloat).length;
  const check = await mesh.verifyJob(done.id);
  assert.equal(check.status, 'valid', JSON.stringify(check));
  assert.ok(check.receipts.length >= 2 && check.receipts.every((r) => r.valid === true));
  const said = await mesh.receipts(done.id);  // the node's own check agrees
  assert.equal(said.id, done.id);
  assert.ok(said.receipts.length >= 1 && said.receipts.every((r) => r.status === 'valid'));
  report.envelope = env;
  report.id = done.id;
  report.receipt = done.receipt;
  return done;
}

async function tamper(mesh, done) {
  const nodeKeys = await mesh.nodeKeys();
  const verdict = (job) => verifyReceipts(job, nodeKeys).status;
  const copy = () => parseJson(canonicalJson(done));  // keeps BigInt and JsonFloat
  assert.equal(verdict(copy()), 'valid');

  let job = copy();
  job.result.echo.text += '!';
  assert.equal(verdict(job), 'invalid');
  job = copy();
  job.result.echo.big -= 1n;
  assert.equal(verdict(job), 'invalid');
  job = copy();
  const node = done.receipt.node;
  job.results[node].result = { echo: 'something else' };
  assert.equal(verdict(job), 'invalid');
  job = copy();
  const forged = Buffer.alloc(64, 1).toString('base64');
  job.receipt.signature = job.results[node].receipt.signature = forged;
  assert.equal(verdict(job), 'invalid');
  // A receipt signed correctly, but by a key that is not the node's, proves nothing.
  const stranger = Key.generate();
  job = copy();
  for (const rc of [job.receipt, job.results[node].receipt]) {
    for (const field of ['root', 'index', 'proof']) delete rc[field];  // the form before batches
    rc.public_key = stranger.publicKeyB64;
    rc.signature = stranger.sign(`meshwork-receipt-v1|${rc.job_id}|${rc.node}|${rc.attempt}|` +
                                 rc.result_hash).toString('base64');
  }
  assert.equal(verdict(job), 'invalid');
  // A batched receipt with another index, root or proof: its path misses the signed root.
  for (const change of [{ index: done.receipt.index + 1 }, { root: '00'.repeat(32) },
                        { proof: ['00'.repeat(32), ...done.receipt.proof] }]) {
    job = copy();
    Object.assign(job.receipt, change);
    Object.assign(job.results[node].receipt, change);
    assert.equal(verdict(job), 'invalid');
  }
  // A node the membership does not know: the receipt cannot be checked either way.
  assert.equal(verifyReceipts(done, new Map()).status, 'unchecked');
}

async function cancelAndList(mesh, key, report) {
  const env = signJob({ type: 'sleep', payload: { ms: 600000 }, max_attempts: 1 }, key);
  const id = (await mesh.submit(env)).id;
  for (let i = 0; (await mesh.getJob(id)).state !== 'running'; i++) {
    assert.ok(i < 600, 'the sleep job never started');
    await sleep(50);
  }
  const cancelling = await mesh.cancel(id);
  assert.equal(cancelling.id, id);
  const cancelled = await mesh.waitJob(id, { timeoutS: 60 });
  assert.equal(cancelled.state, 'cancelled');
  assert.equal((await mesh.verifyJob(cancelled)).status, 'valid');
  await expectError(mesh.cancel(id), 409);
  // A cancelled job is a dead letter: the client's signed retry runs it again.
  const again = await mesh.retry(id);
  assert.deepEqual([again.state, again.retries], ['queued', 1]);
  await mesh.cancel(id);
  assert.equal((await mesh.waitJob(id, { timeoutS: 60 })).state, 'cancelled');
  await expectError(mesh.getJob('0'.repeat(64)), 404);

  const page = await mesh.listJobs({ state: 'cancelled' });
  assert.ok(page.jobs.some((j) => j.id === id));
  assert.ok(page.jobs.every((j) => j.state === 'cancelled'));
  const all = [];
  for await (const j of mesh.jobs({ limit: 1 })) all.push(j.id);  // one per page: the cursor works
  assert.ok(all.includes(id) && all.includes(report.id), JSON.stringify(all));
  assert.equal(new Set(all).size, all.length);
  report.cancelled = id;
}

async function batch(mesh, key, report) {
  const envs = [1, 2, 3].map((i) => signJob({ type: 'echo', payload: { i } }, key));
  const first = await mesh.submitBatch(envs);
  assert.equal(first.accepted, 3, JSON.stringify(first));
  assert.deepEqual(first.results.map((r) => r.id), envs.map(jobIdOf));
  const again = await mesh.submitBatch(envs);
  assert.equal(again.duplicates, 3, JSON.stringify(again));
  // Signed once: one signature over the root of the jobs' ids; each keeps the id it has alone.
  const once = await mesh.submitBatch([1, 2, 3].map((i) => ({ type: 'echo',
                                                              payload: { once: i } })));
  assert.equal(once.accepted, 3, JSON.stringify(once));
  const specs = [1, 2, 3, 4, 5].map((i) => ({ type: 'echo', payload: { proved: i } }));
  const { body, envelopes } = signJobBatch(specs, key);
  assert.equal(new Set(envelopes.map((e) => e.signature)).size, 1);
  const proved = await mesh.submitBatch(envelopes);  // each envelope with its own proof
  assert.equal(proved.accepted, 5, JSON.stringify(proved));
  assert.deepEqual(proved.results.map((r) => r.id), envelopes.map(jobIdOf));
  const whole = (await mesh.call('POST', '/v1/jobs/batch', body)).body;
  assert.equal(whole.duplicates, 5, JSON.stringify(whole));
  const ids = [...envs, ...envelopes].map(jobIdOf).concat(once.results.map((r) => r.id));
  for (const id of ids) assert.equal((await mesh.waitJob(id)).state, 'succeeded');
  report.batch = ids;
}

async function meshTest(url, { ca = null, keyOut = null }) {
  const report = {};
  const key = await keys(keyOut);
  report.public_key = key.publicKeyB64;
  const mesh = new Client(url, { key, caFile: ca });
  try {
    const info = await mesh.nodeInfo();
    assert.equal(typeof info.name, 'string');
    const done = await echoJob(mesh, key, report);
    await tamper(mesh, done);
    await cancelAndList(mesh, key, report);
    await batch(mesh, key, report);
    // Plain jobs need no key: the node signs them.
    const plain = await new Client(url, { caFile: ca }).submit({ type: 'echo', payload: 1 });
    assert.equal((await mesh.waitJob(plain.id)).state, 'succeeded');
  } finally {
    mesh.close();
  }
  return report;
}

async function waitTest(url) {
  const mesh = new Client(url);
  try {
    const job = await mesh.waitJob('a'.repeat(64), { timeoutS: 30 });
    return { state: job.state };
  } finally {
    mesh.close();
  }
}

const [mode, url, ...rest] = process.argv.slice(2);
const opt = (name) => { const i = rest.indexOf(name); return i < 0 ? null : rest[i + 1]; };
const run = {
  unit: () => unit(),
  mesh: () => meshTest(url, { ca: opt('--ca'), keyOut: opt('--key-out') }),
  wait: () => waitTest(url),
}[mode];
if (!run) {
  console.error('usage: node test.mjs unit | mesh URL [--ca FILE] [--key-out PATH] | wait URL');
  process.exit(2);
}
console.log(JSON.stringify(await run(), (k, v) => typeof v === 'bigint' ? `${v}` : v));
