// The two forms of the job record: binary (what the store writes and `replicate` ships) and JSON
// (what `fetch`, `list` and records stored before the binary form use). Decoding checks every
// field, the bounds, and that the id is the hash of the envelope; it never throws.
//
// Binary form, version 5 (all integers little-endian; "str" is a u32 byte length, then the bytes):
//   u8 version = 5   (a JSON record starts with '{', so the first byte tells the forms apart)
//   str id; str envelope.job; 32 B public key; 64 B signature;
//      u8 batched (0 or 1), and when batched: 32 B root, u32 index, u8 n proof
//      (<= kMerkleLevelsMax), n × 32 B siblings   (a job signed in a batch, dht/envelope.h)
//   status:  u8 state, u32 attempt, str node, u64 at_ms, str error, u64 retry_at_ms,
//            u32 round, u32 base (base <= attempt)
//   claim:   u32 attempt, str node, u64 lease_until_ms
//   u32 cancel_round (<= round + 1)
//   u8 n results (<= kResultsMax), each, in strictly ascending node order: str node, u32 attempt,
//      u8 outcome, str result, str error, u64 at_ms, receipt: str job_id, str node, u32 attempt,
//      str result_hash, str public_key, str signature, batch fields as the envelope's
//   u8 n history (<= kHistoryMax), each: u8 state, str node, u32 attempt, u64 at_ms, str reason
//   u64 updated_at_ms
// and nothing after it. Version 4 (records stored before jobs signed in batches) is version 5
// without the envelope's batch fields; version 3 (before batched receipts) is version 4 without
// the receipts' batch fields; version 2 (before retries) is version 3 without round and base
// (both 0) and with u8 cancel_requested (0 or 1) for cancel_round. All are still read, and a
// record read from any is written back as version 5. Roots and proofs are hex in the record
// (dht/job_record.h, dht/envelope.h): a record whose root or siblings are not 32 bytes of
// lowercase hex, or whose unbatched receipt or envelope carries an index or proof, is refused in
// either form. The fields derived from the signed spec (type, max_attempts, ...) are not stored:
// they are read from the envelope on decode, as for the JSON form.
#include <algorithm>
#include <cassert>
#include <optional>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "dht/job_record.h"
#include "dht/merkle.h"
#include "dht/require.h"

namespace meshwork {
namespace {

using nlohmann::json;

inline constexpr int kRecordVersion = 1;                        // the JSON form's "v"
inline constexpr uint8_t kBinaryRecordVersion = 5;              // the binary form's first byte
inline constexpr uint8_t kBinaryRecordVersionNoJobBatches = 4;  // before batched jobs: still read
inline constexpr uint8_t kBinaryRecordVersionNoBatches = 3;  // before batched receipts: still read
inline constexpr uint8_t kBinaryRecordVersionNoRounds = 2;   // before retry rounds: still read
static_assert(kBinaryRecordVersionNoRounds + 3 == kBinaryRecordVersion, "forms 2 to 5 are read");
// A string's length is a u32; reading one checks it against the bytes left before allocating, so
// the input's size bounds every allocation.
inline constexpr size_t kRecordStringBytesMax = UINT32_MAX;
static_assert(kJobTextBytesMax <= kRecordStringBytesMax);
static_assert(kResultsMax <= 255 && kHistoryMax <= 255 && kMerkleLevelsMax <= 255);

// The batch fields of a receipt or envelope object `j` (none without "root").
void proof_from_json(const json& j, std::string& root, uint32_t& index,
                     std::vector<std::string>& proof) {
  if (!j.contains("root")) {
    if (j.contains("index") || j.contains("proof"))
      throw json::other_error::create(501, "proof without a root", &j);
    return;
  }
  const json& p = j.at("proof");
  const json& i = j.at("index");
  if (!p.is_array() || p.size() > kMerkleLevelsMax || !i.is_number_unsigned() ||
      i.get<uint64_t>() > UINT32_MAX)
    throw json::other_error::create(501, "inclusion proof", &j);
  root = j.at("root").get<std::string>();
  index = i.get<uint32_t>();
  proof = p.get<std::vector<std::string>>();
}

Receipt receipt_from_json(const json& j) {
  Receipt r{j.at("job_id").get<std::string>(),     j.at("node").get<std::string>(),
            j.at("attempt").get<uint32_t>(),       j.at("result_hash").get<std::string>(),
            j.at("public_key").get<std::string>(), j.at("signature").get<std::string>()};
  proof_from_json(j, r.root, r.index, r.proof);
  return r;
}

// A receipt's or envelope's batch fields: none (index 0, no proof) without a root, else a root and
// at most kMerkleLevelsMax siblings of 32 bytes as lowercase hex, the only form they take in a
// record.
bool proof_form_ok(const std::string& root, uint32_t index, const std::vector<std::string>& proof) {
  if (root.empty()) return index == 0 && proof.empty();
  return is_hash_hex(root) && proof.size() <= kMerkleLevelsMax &&
         std::all_of(proof.begin(), proof.end(),
                     [](const std::string& s) { return is_hash_hex(s); });
}

JobState state_from_json(const json& j) {
  auto s = parse_state(j.get<std::string>());
  if (!s) throw json::other_error::create(501, "unknown state", &j);
  return *s;
}

// A job's spec fields as a record holds them; the defaults are the spec's.
struct SpecFields {
  std::string type;
  uint32_t max_attempts = kMaxAttemptsDefault;
  uint64_t timeout_ms = kTimeoutMsDefault, created_at_ms = 0;
  uint32_t priority = kPriorityDefault;
  uint64_t delay_ms = 0;
  uint32_t redundancy = kRedundancyDefault;

  [[nodiscard]] static SpecFields of(const JobRecord& r) {
    return {r.type, r.max_attempts, r.timeout_ms, r.created_at_ms, r.priority, r.delay_ms,
            r.redundancy};
  }
  void apply_to(JobRecord& r) const {
    r.type = type;
    r.max_attempts = max_attempts;
    r.timeout_ms = timeout_ms;
    r.created_at_ms = created_at_ms;
    r.priority = priority;
    r.delay_ms = delay_ms;
    r.redundancy = redundancy;
  }
};

// The spec fields of a job text, read by one SAX pass that builds no document (the job text is
// parsed on every decode the spec cache misses: the record of a job in a long backlog comes back
// long after its first copy). It answers only where it reads exactly what fill_spec_fields would:
// a top-level object whose last "type" is a string and whose last max_attempts, timeout_ms,
// created_at, priority, delay_ms and redundancy, where present, are unsigned integers (nlohmann
// casts those with static_cast, as here). Anything else — a parse error, a negative, fractional or
// boolean number, a missing type — is left to the document parse, which returns or throws what it
// always did.
class SpecSax {
 public:
  explicit SpecSax(SpecFields& r) : r_(r) {}
  [[nodiscard]] bool complete() const { return has_type_ && !bad_; }

  bool null() { return other(); }
  bool boolean(bool) { return other(); }
  bool number_integer(json::number_integer_t) { return other(); }
  bool number_float(json::number_float_t, const json::string_t&) { return other(); }
  bool number_unsigned(json::number_unsigned_t v) {
    if (depth_ != 1) return true;
    switch (field_) {
      case Field::max_attempts:
        r_.max_attempts = static_cast<uint32_t>(v);
        break;
      case Field::timeout_ms:
        r_.timeout_ms = static_cast<uint64_t>(v);
        break;
      case Field::created_at:
        r_.created_at_ms = static_cast<uint64_t>(v);
        break;
      case Field::priority:
        r_.priority = static_cast<uint32_t>(v);
        break;
      case Field::delay_ms:
        r_.delay_ms = static_cast<uint64_t>(v);
        break;
      case Field::redundancy:
        r_.redundancy = static_cast<uint32_t>(v);
        break;
      case Field::type:
        bad_ = true;
        break;
      case Field::none:
        break;
    }
    field_ = Field::none;
    return true;
  }
  bool string(json::string_t& v) {
    if (depth_ != 1) return true;
    if (field_ == Field::type) {
      r_.type = v;
      has_type_ = true;
    } else if (field_ != Field::none) {
      bad_ = true;
    }
    field_ = Field::none;
    return true;
  }
  bool binary(json::binary_t&) { return false; }
  bool start_object(std::size_t) {
    if (depth_ == 0 && seen_top_) return false;
    seen_top_ = true;
    if (depth_ == 1) other();
    ++depth_;
    return true;
  }
  bool key(json::string_t& k) {
    if (depth_ == 1) field_ = field_of(k);
    return true;
  }
  bool end_object() {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) {
    if (depth_ == 0) return false;  // a top-level array: no spec
    if (depth_ == 1) other();
    ++depth_;
    return true;
  }
  bool end_array() {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const json::exception&) { return false; }

 private:
  enum class Field : uint8_t {
    none,
    type,
    max_attempts,
    timeout_ms,
    created_at,
    priority,
    delay_ms,
    redundancy
  };
  static Field field_of(const std::string& k) {
    if (k == "type") return Field::type;
    if (k == "max_attempts") return Field::max_attempts;
    if (k == "timeout_ms") return Field::timeout_ms;
    if (k == "created_at") return Field::created_at;
    if (k == "priority") return Field::priority;
    if (k == "delay_ms") return Field::delay_ms;
    if (k == "redundancy") return Field::redundancy;
    return Field::none;
  }
  // A top-level value the fast path does not read: fine for other keys, not for the spec's.
  bool other() {
    if (depth_ == 0) return false;  // a top-level scalar: no spec
    if (depth_ == 1) {
      if (field_ != Field::none) bad_ = true;
      field_ = Field::none;
    }
    return true;
  }

  SpecFields& r_;
  size_t depth_ = 0;
  bool seen_top_ = false, has_type_ = false, bad_ = false;
  Field field_ = Field::none;
};

// The fields of the spec the record needs, read from the signed job text: by SpecSax where it can,
// else (or with `dom`) by parsing the document; throws json::exception for a text without them.
void fill_spec_fields(JobRecord& r, bool dom = false) {
  if (!dom) {
    SpecFields fast;
    SpecSax sax(fast);
    if (json::sax_parse(r.envelope.job, &sax) && sax.complete()) {
      fast.redundancy = std::clamp(fast.redundancy, 1u, kRedundancyMax);
      fast.apply_to(r);
      return;
    }
  }
  json spec = json::parse(r.envelope.job);
  r.type = spec.at("type").get<std::string>();
  r.max_attempts = spec.value("max_attempts", kMaxAttemptsDefault);
  r.timeout_ms = spec.value("timeout_ms", kTimeoutMsDefault);
  r.created_at_ms = spec.value("created_at", uint64_t{0});
  r.priority = spec.value("priority", kPriorityDefault);
  r.delay_ms = spec.value("delay_ms", uint64_t{0});
  // Bounded here too: a peer's record is decoded before its envelope is checked.
  r.redundancy = std::clamp(spec.value("redundancy", kRedundancyDefault), 1u, kRedundancyMax);
}

JobRecord record_from_json_unchecked(const json& j) {
  if (j.at("v").get<int>() != kRecordVersion) throw json::other_error::create(501, "version", &j);
  JobRecord r;
  r.id = j.at("id").get<std::string>();
  const json& env = j.at("envelope");
  r.envelope.job = env.at("job").get<std::string>();
  r.envelope.public_key = from_base64(env.at("public_key").get<std::string>()).value_or("");
  r.envelope.signature = from_base64(env.at("signature").get<std::string>()).value_or("");
  proof_from_json(env, r.envelope.root, r.envelope.index, r.envelope.proof);
  const json& st = j.at("status");
  r.status = JobStatus{state_from_json(st.at("state")),   st.at("attempt").get<uint32_t>(),
                       st.at("node").get<std::string>(),  st.at("at").get<uint64_t>(),
                       st.at("error").get<std::string>(), st.at("retry_at").get<uint64_t>(),
                       st.value("round", uint32_t{0}),    st.value("base", uint32_t{0})};
  const json& cl = j.at("claim");
  r.claim = Claim{cl.at("attempt").get<uint32_t>(), cl.at("node").get<std::string>(),
                  cl.at("lease_until").get<uint64_t>()};
  // Before retry rounds only the boolean was written: a cancel of round 0.
  r.cancel_round = j.contains("cancel_round") ? j.at("cancel_round").get<uint32_t>()
                                              : (j.at("cancel_requested").get<bool>() ? 1 : 0);
  for (const auto& [node, res] : j.at("results").items()) {
    r.results[node] =
        NodeResult{res.at("attempt").get<uint32_t>(),   state_from_json(res.at("outcome")),
                   res.at("result").get<std::string>(), res.at("error").get<std::string>(),
                   res.at("at").get<uint64_t>(),        receipt_from_json(res.at("receipt"))};
  }
  for (const json& h : j.at("history"))
    r.history.push_back(HistoryEntry{state_from_json(h.at("state")),
                                     h.at("node").get<std::string>(),
                                     h.at("attempt").get<uint32_t>(), h.at("at").get<uint64_t>(),
                                     h.at("reason").get<std::string>()});
  r.updated_at_ms = j.at("updated_at").get<uint64_t>();
  fill_spec_fields(r);
  return r;
}

Status check_record(const JobRecord& r) {
  if (r.envelope.public_key.size() != kPublicKeyBytes ||
      r.envelope.signature.size() != kSignatureBytes)
    return {Code::corruption, "record " + r.id + " has a malformed envelope"};
  if (!is_blake2b_hex_of(r.id, r.envelope.job, r.envelope.public_key))  // r.envelope.id()
    return {Code::corruption, "record id does not match its envelope"};
  if (!proof_form_ok(r.envelope.root, r.envelope.index, r.envelope.proof))
    return {Code::corruption, "record " + r.id + " has a malformed batch-signed envelope"};
  if (r.history.size() > kHistoryMax || r.results.size() > kResultsMax)
    return {Code::corruption, "record " + r.id + " exceeds its bounds"};
  for (const auto& [node, res] : r.results)
    if (!proof_form_ok(res.receipt.root, res.receipt.index, res.receipt.proof))
      return {Code::corruption, "record " + r.id + " has a malformed batched receipt"};
  if (r.status.base > r.status.attempt || uint64_t{r.cancel_round} > uint64_t{r.status.round} + 1)
    return {Code::corruption, "record " + r.id + " has an impossible retry round"};
  if (!std::is_sorted(r.history.begin(), r.history.end(), [](const auto& a, const auto& b) {
        return std::tie(a.at_ms, a.attempt, a.state, a.node, a.reason) <
               std::tie(b.at_ms, b.attempt, b.state, b.node, b.reason);
      }))
    return {Code::corruption, "record " + r.id + " has unsorted history"};
  return Status::ok();
}

// Appends the binary form's primitives.
class Writer {
 public:
  explicit Writer(size_t reserve) { out_.reserve(reserve); }
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) { fixed(v, 4); }
  void u64(uint64_t v) { fixed(v, 8); }
  void raw(std::string_view s) { out_.append(s); }
  void str(std::string_view s) {
    assert(s.size() <= kRecordStringBytesMax);
    u32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  std::string take() { return std::move(out_); }

 private:
  void fixed(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string out_;
};

// Well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or code points past U+10FFFF).
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = 0;
    uint32_t cp = 0, min = 0;
    if ((c & 0xe0) == 0xc0) {
      n = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

// Reads the binary form's primitives from untrusted bytes. Any read past the end, or a string
// longer than its bound, sets failed() and returns a zero value; callers check failed() once.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  [[nodiscard]] bool failed() const { return failed_; }
  [[nodiscard]] bool at_end() const { return pos_ == in_.size(); }
  uint8_t u8() { return static_cast<uint8_t>(fixed(1)); }
  uint32_t u32() { return static_cast<uint32_t>(fixed(4)); }
  uint64_t u64() { return fixed(8); }
  // The next n bytes, viewed in the input.
  std::string_view view(size_t n) {
    if (failed_ || in_.size() - pos_ < n) {
      fail();
      return {};
    }
    const std::string_view s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string raw(size_t n) { return std::string(view(n)); }
  // Text: valid UTF-8, as the JSON form guarantees, so any record can be shown as JSON.
  std::string str(size_t bytes_max = kRecordStringBytesMax) {
    const uint32_t n = u32();
    if (n > bytes_max) {
      fail();
      return {};
    }
    std::string s = raw(n);
    if (!valid_utf8(s)) fail();
    return s;
  }
  std::optional<JobState> state() {
    const uint8_t v = u8();
    if (v > static_cast<uint8_t>(JobState::succeeded)) {
      fail();
      return std::nullopt;
    }
    return static_cast<JobState>(v);
  }
  void fail() { failed_ = true; }

 private:
  uint64_t fixed(size_t bytes) {
    if (failed_ || in_.size() - pos_ < bytes) {
      fail();
      return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; ++i)
      v |= uint64_t(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    pos_ += bytes;
    return v;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool failed_ = false;
};

// A receipt's or envelope's batch fields (proof_form_ok holds: a record is checked before it is
// encoded).
void write_batch(Writer& w, const std::string& root, uint32_t index,
                 const std::vector<std::string>& proof) {
  w.u8(root.empty() ? 0 : 1);
  if (root.empty()) return;
  const auto raw = [](const std::string& hex) {
    std::optional<std::string> bytes = from_hex(hex);
    dht::require(bytes && bytes->size() == kHashBytes, "a proof's hashes are 32 bytes of hex");
    return *bytes;
  };
  w.raw(raw(root));
  w.u32(index);
  dht::require(proof.size() <= kMerkleLevelsMax, "a proof is bounded");
  w.u8(static_cast<uint8_t>(proof.size()));
  for (const std::string& sibling : proof) w.raw(raw(sibling));
}

// The batch fields as write_batch wrote them; false when malformed.
bool read_batch(Reader& in, std::string& root, uint32_t& index, std::vector<std::string>& proof) {
  const uint8_t batched = in.u8();
  if (batched > 1) return false;
  if (batched == 0) return !in.failed();
  root = public_to_hex(in.view(kHashBytes));
  index = in.u32();
  const uint8_t n = in.u8();
  if (n > kMerkleLevelsMax) return false;
  proof.reserve(n);
  for (uint8_t i = 0; i < n && !in.failed(); ++i)
    proof.push_back(public_to_hex(in.view(kHashBytes)));
  return !in.failed();
}

size_t binary_size_hint(const JobRecord& r) {
  size_t n = 256 + r.id.size() + r.envelope.job.size() + r.status.error.size() +
             kHashBytes * r.envelope.proof.size();
  for (const auto& [node, res] : r.results)
    n += 256 + node.size() + res.result.size() + res.error.size();
  for (const auto& h : r.history) n += 32 + h.node.size() + h.reason.size();
  return n;
}

std::string encode_binary(const JobRecord& r) {
  Writer w(binary_size_hint(r));
  w.u8(kBinaryRecordVersion);
  w.str(r.id);
  w.str(r.envelope.job);
  assert(r.envelope.public_key.size() == kPublicKeyBytes);
  assert(r.envelope.signature.size() == kSignatureBytes);
  w.raw(r.envelope.public_key);
  w.raw(r.envelope.signature);
  write_batch(w, r.envelope.root, r.envelope.index, r.envelope.proof);
  w.u8(static_cast<uint8_t>(r.status.state));
  w.u32(r.status.attempt);
  w.str(r.status.node);
  w.u64(r.status.at_ms);
  w.str(r.status.error);
  w.u64(r.status.retry_at_ms);
  w.u32(r.status.round);
  w.u32(r.status.base);
  w.u32(r.claim.attempt);
  w.str(r.claim.node);
  w.u64(r.claim.lease_until_ms);
  w.u32(r.cancel_round);
  assert(r.results.size() <= kResultsMax && r.history.size() <= kHistoryMax);
  w.u8(static_cast<uint8_t>(r.results.size()));
  for (const auto& [node, res] : r.results) {
    w.str(node);
    w.u32(res.attempt);
    w.u8(static_cast<uint8_t>(res.outcome));
    w.str(res.result);
    w.str(res.error);
    w.u64(res.at_ms);
    const Receipt& rc = res.receipt;
    w.str(rc.job_id);
    w.str(rc.node);
    w.u32(rc.attempt);
    w.str(rc.result_hash);
    w.str(rc.public_key);
    w.str(rc.signature);
    write_batch(w, rc.root, rc.index, rc.proof);
  }
  w.u8(static_cast<uint8_t>(r.history.size()));
  for (const auto& h : r.history) {
    w.u8(static_cast<uint8_t>(h.state));
    w.str(h.node);
    w.u32(h.attempt);
    w.u64(h.at_ms);
    w.str(h.reason);
  }
  w.u64(r.updated_at_ms);
  return w.take();
}

bool read_results(Reader& in, JobRecord& r, bool batches) {
  const uint8_t n = in.u8();
  if (n > kResultsMax) return false;
  const std::string* previous = nullptr;
  for (uint8_t i = 0; i < n && !in.failed(); ++i) {
    std::string node = in.str();
    NodeResult res;
    res.attempt = in.u32();
    auto outcome = in.state();
    res.result = in.str();
    res.error = in.str();
    res.at_ms = in.u64();
    res.receipt.job_id = in.str();
    res.receipt.node = in.str();
    res.receipt.attempt = in.u32();
    res.receipt.result_hash = in.str();
    res.receipt.public_key = in.str();
    res.receipt.signature = in.str();
    if (batches && !read_batch(in, res.receipt.root, res.receipt.index, res.receipt.proof))
      return false;
    if (in.failed() || (previous && !(*previous < node))) return false;  // strictly ascending
    res.outcome = *outcome;
    auto it = r.results.emplace_hint(r.results.end(), std::move(node), std::move(res));
    previous = &it->first;
  }
  return !in.failed();
}

bool read_history(Reader& in, JobRecord& r) {
  const uint8_t n = in.u8();
  if (n > kHistoryMax) return false;
  r.history.reserve(n);
  for (uint8_t i = 0; i < n && !in.failed(); ++i) {
    HistoryEntry h;
    auto state = in.state();
    h.node = in.str();
    h.attempt = in.u32();
    h.at_ms = in.u64();
    h.reason = in.str();
    if (in.failed()) return false;
    h.state = *state;
    r.history.push_back(std::move(h));
  }
  return !in.failed();
}

// The binary form without the record checks; nullopt when the bytes do not parse.
std::optional<JobRecord> decode_binary_unchecked(std::string_view bytes) {
  Reader in(bytes);
  const uint8_t version = in.u8();
  if (version < kBinaryRecordVersionNoRounds || version > kBinaryRecordVersion) return std::nullopt;
  const bool rounds = version >= kBinaryRecordVersionNoBatches;
  const bool batches = version >= kBinaryRecordVersionNoJobBatches;
  JobRecord r;
  r.id = in.str(64);
  r.envelope.job = in.str(kJobTextBytesMax);
  r.envelope.public_key = in.raw(kPublicKeyBytes);
  r.envelope.signature = in.raw(kSignatureBytes);
  if (version == kBinaryRecordVersion &&
      !read_batch(in, r.envelope.root, r.envelope.index, r.envelope.proof))
    return std::nullopt;
  auto state = in.state();
  r.status.attempt = in.u32();
  r.status.node = in.str();
  r.status.at_ms = in.u64();
  r.status.error = in.str();
  r.status.retry_at_ms = in.u64();
  if (rounds) {
    r.status.round = in.u32();
    r.status.base = in.u32();
  }
  r.claim.attempt = in.u32();
  r.claim.node = in.str();
  r.claim.lease_until_ms = in.u64();
  if (rounds) {
    r.cancel_round = in.u32();
  } else {
    const uint8_t cancel = in.u8();
    if (cancel > 1) return std::nullopt;
    r.cancel_round = cancel;
  }
  if (in.failed()) return std::nullopt;
  r.status.state = *state;
  if (!read_results(in, r, batches) || !read_history(in, r)) return std::nullopt;
  r.updated_at_ms = in.u64();
  if (in.failed() || !in.at_end()) return std::nullopt;
  return r;
}

// The spec fields of recently decoded jobs, by id, per thread. A record's id is checked to be the
// BLAKE2b-256 of its envelope before the cache is consulted, so one id means one job text and one
// set of spec fields: the cache changes what a decode costs (a JSON parse of the job text, the
// largest part of decoding a record that travels three times per job), never what it returns.
// Cleared when full, so it stays bounded.
constexpr size_t kSpecCacheMax = 8'192;

void fill_spec_fields_cached(JobRecord& r) {
  thread_local std::unordered_map<std::string, SpecFields> cache;
  if (auto it = cache.find(r.id); it != cache.end()) {
    it->second.apply_to(r);
    return;
  }
  fill_spec_fields(r);  // throws on a bad spec: nothing is cached then
  if (cache.size() >= kSpecCacheMax) cache.clear();
  cache.emplace(r.id, SpecFields::of(r));
}

Result<JobRecord> decode_binary(std::string_view bytes) {
  std::optional<JobRecord> r = decode_binary_unchecked(bytes);
  if (!r) return Result<JobRecord>(Code::corruption, "malformed binary job record");
  if (Status s = check_record(*r); !s.is_ok()) return s;  // the id is its envelope's hash
  try {
    fill_spec_fields_cached(*r);
  } catch (const json::exception& e) {
    return Result<JobRecord>(Code::corruption, std::string("job record's spec: ") + e.what());
  }
  return std::move(*r);
}

}  // namespace

void detail::fill_spec_fields(JobRecord& r, bool dom) {
  meshwork::fill_spec_fields(r, dom);
}

json receipt_to_json(const Receipt& r) {
  json j = {{"job_id", r.job_id},         {"node", r.node},
            {"attempt", r.attempt},       {"result_hash", r.result_hash},
            {"public_key", r.public_key}, {"signature", r.signature}};
  if (!r.root.empty()) {
    j["root"] = r.root;
    j["index"] = r.index;
    j["proof"] = r.proof;
  }
  return j;
}

json record_to_json(const JobRecord& r) {
  json results = json::object();
  for (const auto& [node, res] : r.results)
    results[node] = {{"attempt", res.attempt}, {"outcome", state_name(res.outcome)},
                     {"result", res.result},   {"error", res.error},
                     {"at", res.at_ms},        {"receipt", receipt_to_json(res.receipt)}};
  json history = json::array();
  for (const auto& h : r.history)
    history.push_back({{"state", state_name(h.state)},
                       {"node", h.node},
                       {"attempt", h.attempt},
                       {"at", h.at_ms},
                       {"reason", h.reason}});
  return {{"v", kRecordVersion},
          {"id", r.id},
          {"envelope", r.envelope.to_json()},
          {"status",
           {{"state", state_name(r.status.state)},
            {"attempt", r.status.attempt},
            {"node", r.status.node},
            {"at", r.status.at_ms},
            {"error", r.status.error},
            {"retry_at", r.status.retry_at_ms},
            {"round", r.status.round},
            {"base", r.status.base}}},
          {"claim",
           {{"attempt", r.claim.attempt},
            {"node", r.claim.node},
            {"lease_until", r.claim.lease_until_ms}}},
          {"cancel_requested", r.cancel_requested()},
          {"cancel_round", r.cancel_round},
          {"results", std::move(results)},
          {"history", std::move(history)},
          {"updated_at", r.updated_at_ms}};
}

Result<JobRecord> record_from_json(const json& j) {
  try {
    JobRecord r = record_from_json_unchecked(j);
    if (Status s = check_record(r); !s.is_ok()) return s;
    return r;
  } catch (const json::exception& e) {
    return Result<JobRecord>(Code::corruption, std::string("malformed job record: ") + e.what());
  }
}

std::string encode_record(const JobRecord& r) {
  return encode_binary(r);
}

// encode_binary writes, field by field, what decode_binary_unchecked reads for version 5: the same
// fixed-width integers, length-prefixed strings and raw keys, a state as its byte, the batch fields
// as read_batch reads them (0, or 1 and the root, index and siblings that to_hex and from_hex carry
// back unchanged), results in the strictly ascending order the decoder demands and the map keeps,
// and history in its order; decode_binary derives the spec fields, which are not written, and
// changes nothing else. So version 5 bytes that decode re-encode to themselves.
bool is_encode_record_form(std::string_view decoded_bytes) {
  return !decoded_bytes.empty() &&
         static_cast<uint8_t>(decoded_bytes.front()) == kBinaryRecordVersion;
}

Result<JobRecord> decode_record(std::string_view bytes) {
  const uint8_t first = bytes.empty() ? 0 : static_cast<uint8_t>(bytes.front());
  if (first >= kBinaryRecordVersionNoRounds && first <= kBinaryRecordVersion)
    return decode_binary(bytes);
  json j = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Result<JobRecord>(Code::corruption, "job record is not JSON");
  return record_from_json(j);
}

}  // namespace meshwork
