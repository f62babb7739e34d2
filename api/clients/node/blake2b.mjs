// BLAKE2b (RFC 7693) with a chosen digest length, unkeyed, in plain JavaScript.
//
// node:crypto offers only 'blake2b512', and BLAKE2b-256 is not a truncation of it (the digest
// length is part of the parameter block), so meshwork's job ids and receipt hashes (BLAKE2b-256,
// libsodium's crypto_generichash with 32 bytes) need this. 64-bit words are pairs of 32-bit halves
// in a Uint32Array: v[2i] the low half, v[2i+1] the high half.
// Thread-safety: pure functions.

const IV = new Uint32Array([
  0xf3bcc908, 0x6a09e667, 0x84caa73b, 0xbb67ae85, 0xfe94f82b, 0x3c6ef372, 0x5f1d36f1, 0xa54ff53a,
  0xade682d1, 0x510e527f, 0x2b3e6c1f, 0x9b05688c, 0xfb41bd6b, 0x1f83d9ab, 0x137e2179, 0x5be0cd19,
]);

const SIGMA = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
  [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
  [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
  [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
  [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
  [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
  [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
  [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
  [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
];

const BLOCK_BYTES = 128;

// v[a] += v[b] (64-bit, on word pairs).
function add64(v, a, b) {
  const lo = v[a] + v[b];
  v[a + 1] = v[a + 1] + v[b + 1] + (lo > 0xffffffff ? 1 : 0);
  v[a] = lo;
}

// v[a] += the 64-bit word at m[i].
function add64m(v, a, m, i) {
  const lo = v[a] + m[i];
  v[a + 1] = v[a + 1] + m[i + 1] + (lo > 0xffffffff ? 1 : 0);
  v[a] = lo;
}

// v[a] = (v[a] ^ v[b]) rotated right by r bits (r in {16, 24, 32, 63}).
function xorRotr(v, a, b, r) {
  let lo = v[a] ^ v[b];
  let hi = v[a + 1] ^ v[b + 1];
  if (r === 32) {
    [lo, hi] = [hi, lo];
  } else if (r < 32) {
    [lo, hi] = [(lo >>> r) | (hi << (32 - r)), (hi >>> r) | (lo << (32 - r))];
  } else {
    const s = r - 32;
    [lo, hi] = [(hi >>> s) | (lo << (32 - s)), (lo >>> s) | (hi << (32 - s))];
  }
  v[a] = lo;
  v[a + 1] = hi;
}

function mix(v, m, a, b, c, d, x, y) {
  add64(v, a, b); add64m(v, a, m, x); xorRotr(v, d, a, 32);
  add64(v, c, d); xorRotr(v, b, c, 24);
  add64(v, a, b); add64m(v, a, m, y); xorRotr(v, d, a, 16);
  add64(v, c, d); xorRotr(v, b, c, 63);
}

function compress(h, block, bytesDone, last) {
  const m = new Uint32Array(32);
  for (let i = 0; i < 32; i++) m[i] = block.readUInt32LE(i * 4);
  const v = new Uint32Array(32);
  v.set(h);
  v.set(IV, 16);
  v[24] ^= bytesDone % 0x100000000;  // the byte counter t, low word (messages stay < 2^53 bytes)
  v[25] ^= Math.floor(bytesDone / 0x100000000);
  if (last) { v[28] = ~v[28]; v[29] = ~v[29]; }
  for (let round = 0; round < 12; round++) {
    const s = SIGMA[round % 10];
    mix(v, m, 0, 8, 16, 24, s[0] * 2, s[1] * 2);
    mix(v, m, 2, 10, 18, 26, s[2] * 2, s[3] * 2);
    mix(v, m, 4, 12, 20, 28, s[4] * 2, s[5] * 2);
    mix(v, m, 6, 14, 22, 30, s[6] * 2, s[7] * 2);
    mix(v, m, 0, 10, 20, 30, s[8] * 2, s[9] * 2);
    mix(v, m, 2, 12, 22, 24, s[10] * 2, s[11] * 2);
    mix(v, m, 4, 14, 16, 26, s[12] * 2, s[13] * 2);
    mix(v, m, 6, 8, 18, 28, s[14] * 2, s[15] * 2);
  }
  for (let i = 0; i < 16; i++) h[i] ^= v[i] ^ v[i + 16];
}

// BLAKE2b of `data` (a Buffer, Uint8Array or string, strings as UTF-8) with a digest of
// `outBytes` (1..64) bytes; returns a Buffer.
export function blake2b(data, outBytes = 32) {
  if (!Number.isInteger(outBytes) || outBytes < 1 || outBytes > 64)
    throw new RangeError('BLAKE2b digest length must be 1..64 bytes');
  const input = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
  const h = new Uint32Array(IV);
  h[0] ^= 0x01010000 ^ outBytes;  // parameter block: digest length, no key, fanout 1, depth 1
  const block = Buffer.alloc(BLOCK_BYTES);
  let done = 0;
  while (input.length - done > BLOCK_BYTES) {
    input.copy(block, 0, done, done + BLOCK_BYTES);
    done += BLOCK_BYTES;
    compress(h, block, done, false);
  }
  block.fill(0);
  input.copy(block, 0, done);
  compress(h, block, input.length, true);
  const out = Buffer.alloc(64);
  for (let i = 0; i < 16; i++) out.writeUInt32LE(h[i], i * 4);
  return out.subarray(0, outBytes);
}

// BLAKE2b-256 as 64 lowercase hex characters: meshwork's blake2b_hex (dht/hash.h).
export function blake2b256Hex(data) {
  return blake2b(data, 32).toString('hex');
}
