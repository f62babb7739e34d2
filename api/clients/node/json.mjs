// The node's JSON text, exactly: a parser that keeps what JSON.parse loses, and the serialiser the
// node hashes results with (nlohmann::json's compact dump()).
//
// A receipt's result_hash is BLAKE2b-256 of the result as the node printed it: keys sorted by their
// UTF-8 bytes, no spaces, non-ASCII raw, integers as integers (up to 2^64-1), and floats as
// nlohmann prints them (shortest digits; "1.0" keeps its ".0"; exponent form below 1e-4 and from
// 1e15: "1e-05", "1e+15"). JSON.parse would lose integers above 2^53 and the ".0" of 1.0, so:
//   parseJson(text)      integers → number when safe, else BigInt; floats → number, except a
//                        float whose text a JS number would not print back identically (1.0,
//                        1e+20) → JsonFloat, a Number subclass that keeps its text.
//   canonicalJson(value) the node's dump() of such a value (or of any plain JSON-like value).
// Thread-safety: pure functions.

// A float from the wire kept with its exact text; arithmetic and JSON.stringify see the number.
export class JsonFloat extends Number {
  constructor(text) {
    super(Number(text));
    this.text = text;
  }
}

const SAFE_INTEGER = /^-?(0|[1-9]\d{0,15})$/;  // 16 digits or fewer: checked against 2^53 below
const NUMBER = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

export function parseJson(text) {
  let i = 0;
  const fail = (what) => { throw new SyntaxError(`JSON: ${what} at offset ${i}`); };
  const ws = () => { while (i < text.length && ' \t\n\r'.includes(text[i])) i++; };
  const value = () => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj = {};
      ws();
      if (text[i] === '}') { i++; return obj; }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const key = string();
        ws();
        if (text[i++] !== ':') fail("expected ':'");
        Object.defineProperty(obj, key, { value: value(), enumerable: true, writable: true,
                                          configurable: true });  // "__proto__" stays a key
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i++] === '}') return obj;
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      const arr = [];
      ws();
      if (text[i] === ']') { i++; return arr; }
      for (;;) {
        arr.push(value());
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i++] === ']') return arr;
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    for (const [word, v] of [['true', true], ['false', false], ['null', null]])
      if (text.startsWith(word, i)) { i += word.length; return v; }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) fail('unexpected character');
    i += m[0].length;
    return number(m[0], m[2] === undefined && m[3] === undefined);
  };
  const string = () => {
    const start = i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= text.length) fail('unterminated string');
    i++;
    return JSON.parse(text.slice(start, i));
  };
  const out = value();
  ws();
  if (i !== text.length) fail('trailing characters');
  return out;
}

function number(text, integral) {
  if (integral) {
    if (SAFE_INTEGER.test(text) && Number.isSafeInteger(Number(text))) return Number(text);
    return BigInt(text);
  }
  const n = Number(text);
  return Number.isInteger(n) || formatFloat(n) !== text ? new JsonFloat(text) : n;
}

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

// nlohmann's dump() of a double: shortest round-trip digits laid out as its to_chars does
// (decimal notation while the decimal point is in -4 < n <= 15, else d.ddde±XX).
export function formatFloat(x) {
  if (!Number.isFinite(x)) return 'null';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mant, exp] = Math.abs(x).toExponential().split('e');
  const digits = mant.replace('.', '');
  const k = digits.length;
  const n = Number(exp) + 1;  // where the decimal point goes, counted from the first digit
  let body;
  if (k <= n && n <= 15) body = digits + '0'.repeat(n - k) + '.0';
  else if (n > 0 && n <= 15) body = digits.slice(0, n) + '.' + digits.slice(n);
  else if (n > -4 && n <= 0) body = '0.' + '0'.repeat(-n) + digits;
  else {
    const e = n - 1;
    const ee = String(Math.abs(e)).padStart(2, '0');
    body = (k === 1 ? digits : digits[0] + '.' + digits.slice(1)) + 'e' + (e < 0 ? '-' : '+') + ee;
  }
  return sign + body;
}

function compareUtf8(a, b) {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function canonicalJson(value) {
  if (value === null || value === undefined) return 'null';
  if (value instanceof JsonFloat) return value.text;
  if (value instanceof Number) return canonicalJson(value.valueOf());
  if (typeof value === 'bigint') {
    // Beyond int64..uint64 the node reads an integer as a double.
    const fits = value >= INT64_MIN && value <= UINT64_MAX;
    return fits ? value.toString() : formatFloat(Number(value));
  }
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) ? String(value === 0 ? 0 : value) : formatFloat(value);
  }
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return '[' + value.map(canonicalJson).join(',') + ']';
  if (typeof value === 'object') {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort(compareUtf8);
    return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonicalJson(value[k])).join(',') + '}';
  }
  throw new TypeError(`cannot serialise a ${typeof value} as JSON`);
}
