// The binary codec of the replica protocol's peer messages (the wire form is in messages.h).
//
// Layout per kind, after the header (u8 kMessageVersion, u8 kind, u64 corr); "str" is a u32 byte
// length then the bytes, "list<T>" a u32 count then the items, "bool" one byte 0 or 1, "state" one
// byte holding a JobState, "record" a str holding encode_record's binary form, "opt<T>" a bool
// then T when it is 1:
//
//   0 replicate      list<record>, list<if_claimed>; if_claimed: u32 index (strictly increasing,
//                    < the records), u32 attempt, str node (<= kNodeNameBytesMax), u64 at_ms,
//                    str error, u64 retry_at_ms, u32 round, u32 base (a running status)
//   1 replicate_ack  list<ack>; ack: bool ok, bool existed, state, u32 attempt,
//                    str node (<= kNodeNameBytesMax), bool cancel_requested, opt<record> copy,
//                    bool deleted
//   2 fetch          list<str id>                       each id a job id (64 lowercase hex)
//   3 fetch_reply    list<opt<record>>
//   4 digest         list<u64>                          exactly kDigestBuckets
//   5 digest_reply   list<u32 bucket>, list<str id, u64 fingerprint>
//   6 list_request   str state ("" or a public state name), str type (<= kListTypeBytesMax),
//                    u32 limit (1..kListLimitMax), str cursor (<= kListCursorBytesMax)
//   7 list_reply     list<record> (<= kListLimitMax), str next_cursor (<= kListCursorBytesMax)
//   8 held_request   nothing
//   9 held_reply     u64 held, u64 unfinished
//
// Decoding trusts nothing: every count is checked against kMessageItemsMax and against the bytes
// left (count × the smallest valid item) before anything is reserved, every length against the
// bytes left before a string is built, and every record goes through decode_record. A record must
// also be in encode_record's binary form exactly (decode_record would accept the JSON form and the
// older binary forms too, and the received bytes must equal encode_record of what they decode to,
// which is_encode_record_form tells without encoding): a decoded SharedRecord's bytes are then
// both what came in and encode_record(*record), and a message has exactly one encoding, so
// decode(encode(m)) == m and encode(decode(b)) == b.
//
// Encoding checks the same shape (a caller that builds a message the decoder would refuse has a
// bug, and the process stops) except the total size: the sender splits batches by bytes, and a
// message past kMessageBytesMax is refused whole by the receiver with Code::too_large.
//
// Thread-safety: pure functions.
#include <array>

#include "dht/envelope.h"
#include "dht/messages.h"
#include "dht/require.h"

namespace meshwork {
namespace {

constexpr std::array<std::string_view, 10> kKindNames = {
    "replicate",    "replicate_ack", "fetch",      "fetch_reply",  "digest",
    "digest_reply", "list_request",  "list_reply", "held_request", "held_reply"};
constexpr size_t kReplicaKinds = 6;  // the replica core's; the rest are the cluster view's
static_assert(std::variant_size_v<Message> == kKindNames.size());

constexpr size_t kHeaderBytes = 1 + 1 + 8;  // version, kind, corr
constexpr size_t kLengthBytes = 4;          // a str's length, a list's count
constexpr size_t kJobIdBytes = 2 * kHashBytes;
// The smallest encoding of one valid item of each list, to refuse a count the bytes cannot hold.
constexpr size_t kRecordItemBytesMin = kLengthBytes + 1;
constexpr size_t kAckItemBytesMin = 1 + 1 + 1 + 4 + kLengthBytes + 1 + 1 + 1;
constexpr size_t kIfClaimedItemBytes = 4 + 4 + kLengthBytes + 8 + kLengthBytes + 8 + 4 + 4;
constexpr size_t kOptionalRecordBytesMin = 1;
constexpr size_t kIdItemBytesMin = kLengthBytes + kJobIdBytes;
constexpr size_t kBucketItemBytes = 8;
constexpr size_t kDifferItemBytes = 4;
constexpr size_t kEntryItemBytesMin = kIdItemBytesMin + 8;
static_assert(std::variant_size_v<Message> - kReplicaKinds == 4);
static_assert(kMessageBytesMax <= UINT32_MAX);  // so any length inside fits a u32
static_assert(kDigestBuckets - 1 <= UINT32_MAX);
static_assert(static_cast<uint8_t>(JobState::succeeded) == 5);  // the last enumerator

// A broken precondition is a bug in the caller: stop before sending something the peer refuses.
using dht::require;

// ---- encoding -----------------------------------------------------------------------------------

class Writer {
 public:
  explicit Writer(size_t reserve) { out_.reserve(reserve); }
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) { fixed(v, 4); }
  void u64(uint64_t v) { fixed(v, 8); }
  void boolean(bool v) { u8(v ? 1 : 0); }
  void str(std::string_view s) {
    require(s.size() <= kMessageBytesMax, "string longer than a message");
    u32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  void count(size_t n) {
    require(n <= kMessageItemsMax, "more than kMessageItemsMax items in a list");
    u32(static_cast<uint32_t>(n));
  }
  void record(const SharedRecord& r) {
    require(r.record && r.bytes, "SharedRecord without its record or bytes");
    str(*r.bytes);
  }
  void optional_record(const std::optional<SharedRecord>& r) {
    boolean(r.has_value());
    if (r) record(*r);
  }
  void id(std::string_view id) {
    require(is_job_id(id), "an id that is not a job id");
    str(id);
  }
  void list_query(const ListRequest& m) {
    require(m.state.empty() || is_public_state_name(m.state), "a list state that is not public");
    require(m.type.size() <= kListTypeBytesMax, "a list type longer than kListTypeBytesMax");
    require(m.limit >= 1 && m.limit <= kListLimitMax, "a list limit outside 1..kListLimitMax");
    require(m.cursor.size() <= kListCursorBytesMax, "a cursor longer than kListCursorBytesMax");
    str(m.state);
    str(m.type);
    u32(m.limit);
    str(m.cursor);
  }
  std::string take() { return std::move(out_); }

 private:
  void fixed(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string out_;
};

size_t record_bytes(const std::optional<SharedRecord>& r) {
  return r && r->bytes ? r->bytes->size() : 0;
}

// Writes a message's body (after the header).
struct BodyWriter {
  Writer& w;

  void operator()(const Replicate& m) {
    w.count(m.records.size());
    for (const SharedRecord& r : m.records) w.record(r);
    w.count(m.if_claimed.size());
    for (size_t i = 0; i < m.if_claimed.size(); ++i) {
      const IfClaimed& c = m.if_claimed[i];
      require(c.index < m.records.size() && (i == 0 || c.index > m.if_claimed[i - 1].index),
              "if_claimed indexes not increasing within the records");
      require(c.claim.state == JobState::running, "an if_claimed status that is not running");
      require(c.claim.node.size() <= kNodeNameBytesMax,
              "if_claimed node name longer than kNodeNameBytesMax");
      w.u32(c.index);
      w.u32(c.claim.attempt);
      w.str(c.claim.node);
      w.u64(c.claim.at_ms);
      w.str(c.claim.error);
      w.u64(c.claim.retry_at_ms);
      w.u32(c.claim.round);
      w.u32(c.claim.base);
    }
  }
  void operator()(const ReplicateAck& m) {
    w.count(m.items.size());
    for (const ItemAck& a : m.items) {
      require(a.node.size() <= kNodeNameBytesMax, "ack node name longer than kNodeNameBytesMax");
      w.boolean(a.ok);
      w.boolean(a.existed);
      w.u8(static_cast<uint8_t>(a.state));
      w.u32(a.attempt);
      w.str(a.node);
      w.boolean(a.cancel_requested);
      w.optional_record(a.copy);
      w.boolean(a.deleted);
    }
  }
  void operator()(const Fetch& m) {
    w.count(m.ids.size());
    for (const std::string& id : m.ids) w.id(id);
  }
  void operator()(const FetchReply& m) {
    w.count(m.records.size());
    for (const auto& r : m.records) w.optional_record(r);
  }
  void operator()(const Digest& m) {
    require(m.buckets.size() == kDigestBuckets, "digest without exactly kDigestBuckets buckets");
    w.count(m.buckets.size());
    for (uint64_t b : m.buckets) w.u64(b);
  }
  void operator()(const DigestReply& m) {
    w.count(m.differ.size());
    for (uint32_t b : m.differ) {
      require(b < kDigestBuckets, "digest reply bucket out of range");
      w.u32(b);
    }
    w.count(m.entries.size());
    for (const auto& [id, fingerprint] : m.entries) {
      w.id(id);
      w.u64(fingerprint);
    }
  }
  void operator()(const ListRequest& m) { w.list_query(m); }
  void operator()(const ListReply& m) {
    require(m.records.size() <= kListLimitMax, "a list reply of more than kListLimitMax records");
    require(m.next_cursor.size() <= kListCursorBytesMax,
            "a cursor longer than kListCursorBytesMax");
    w.count(m.records.size());
    for (const SharedRecord& r : m.records) w.record(r);
    w.str(m.next_cursor);
  }
  void operator()(const HeldRequest&) {}
  void operator()(const HeldReply& m) {
    w.u64(m.held);
    w.u64(m.unfinished);
  }
};

// Enough to hold the message without growing (records dominate; the rest is an estimate).
size_t size_hint(const Message& m) {
  size_t n = kHeaderBytes + 2 * kLengthBytes;
  if (const auto* r = std::get_if<Replicate>(&m)) {
    for (const SharedRecord& s : r->records) n += kLengthBytes + record_bytes(s);
    for (const IfClaimed& c : r->if_claimed)
      n += kIfClaimedItemBytes + c.claim.node.size() + c.claim.error.size();
  } else if (const auto* a = std::get_if<ReplicateAck>(&m)) {
    for (const ItemAck& i : a->items)
      n += kAckItemBytesMin + i.node.size() + kLengthBytes + record_bytes(i.copy);
  } else if (const auto* f = std::get_if<Fetch>(&m)) {
    n += f->ids.size() * kIdItemBytesMin;
  } else if (const auto* fr = std::get_if<FetchReply>(&m)) {
    for (const auto& s : fr->records) n += 1 + kLengthBytes + record_bytes(s);
  } else if (const auto* d = std::get_if<Digest>(&m)) {
    n += d->buckets.size() * kBucketItemBytes;
  } else if (const auto* dr = std::get_if<DigestReply>(&m)) {
    n += dr->differ.size() * kDifferItemBytes + dr->entries.size() * kEntryItemBytesMin;
  } else if (const auto* lr = std::get_if<ListRequest>(&m)) {
    n += kLengthBytes + 4 + lr->state.size() + lr->type.size() + lr->cursor.size();
  } else if (const auto* lp = std::get_if<ListReply>(&m)) {
    for (const SharedRecord& s : lp->records) n += kLengthBytes + record_bytes(s);
    n += lp->next_cursor.size();
  } else if (std::holds_alternative<HeldReply>(m)) {
    n += 16;
  }
  return n;
}

// ---- decoding -----------------------------------------------------------------------------------

// Reads untrusted bytes. The first failure is kept (its code and what was wrong); after it every
// read returns a zero value, so a decoder checks ok() once per item rather than after every read.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  [[nodiscard]] bool ok() const { return status_.is_ok(); }
  [[nodiscard]] size_t left() const { return in_.size() - pos_; }
  [[nodiscard]] const Status& status() const { return status_; }

  void fail(Code code, std::string detail) {
    if (ok()) status_ = Status(code, std::move(detail));
  }
  uint8_t u8(const char* what) { return static_cast<uint8_t>(fixed(1, what)); }
  uint32_t u32(const char* what) { return static_cast<uint32_t>(fixed(4, what)); }
  uint64_t u64(const char* what) { return fixed(8, what); }
  bool boolean(const char* what) {
    const uint8_t v = u8(what);
    if (v > 1) fail(Code::malformed, std::string(what) + " is " + std::to_string(v) + ", not 0/1");
    return v == 1;
  }
  JobState state(const char* what) {
    const uint8_t v = u8(what);
    if (v > static_cast<uint8_t>(JobState::succeeded)) {
      fail(Code::malformed, std::string(what) + " " + std::to_string(v) + " is not a job state");
      return JobState::queued;
    }
    return static_cast<JobState>(v);
  }
  // A u32 length, then that many bytes (a view into the input), at most bytes_max of them.
  std::string_view str(size_t bytes_max, const char* what) {
    const uint32_t n = u32(what);
    if (ok() && n > bytes_max) {
      fail(Code::malformed, std::string(what) + " of " + std::to_string(n) +
                                " bytes exceeds its limit of " + std::to_string(bytes_max));
    } else if (ok() && n > left()) {
      fail(Code::malformed, std::string(what) + " of " + std::to_string(n) + " bytes, but only " +
                                std::to_string(left()) + " left");
    }
    if (!ok()) return {};
    const std::string_view s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  // A list's u32 count, checked against kMessageItemsMax and the bytes left.
  size_t count(size_t item_bytes_min, const char* what) {
    const uint32_t n = u32(what);
    if (ok() && n > kMessageItemsMax) {
      fail(Code::too_large, std::to_string(n) + " " + what + " exceed kMessageItemsMax (" +
                                std::to_string(kMessageItemsMax) + ")");
    } else if (ok() && n > left() / item_bytes_min) {
      fail(Code::malformed, std::to_string(n) + " " + what + " cannot fit in the " +
                                std::to_string(left()) + " bytes left");
    }
    return ok() ? n : 0;
  }

 private:
  uint64_t fixed(size_t bytes, const char* what) {
    if (!ok()) return 0;
    if (left() < bytes) {
      fail(Code::malformed, std::string("the message ends inside ") + what);
      return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; ++i)
      v |= uint64_t{static_cast<uint8_t>(in_[pos_ + i])} << (8 * i);
    pos_ += bytes;
    return v;
  }

  std::string_view in_;
  size_t pos_ = 0;
  Status status_;
};

// Names the i-th item of a list in a failure's detail; built only when something failed.
struct Label {
  const char* what;
  size_t i;
  [[nodiscard]] std::string str() const { return std::string(what) + " " + std::to_string(i); }
};

// A record in encode_record's binary form, checked by decode_record.
std::optional<SharedRecord> read_record(Reader& in, Label label) {
  const std::string_view bytes = in.str(kMessageBytesMax, label.what);
  if (!in.ok()) return std::nullopt;
  Result<JobRecord> r = decode_record(bytes);
  if (!r.is_ok()) {
    in.fail(Code::malformed, label.str() + ": " + r.status().message());
    return std::nullopt;
  }
  if (!is_encode_record_form(bytes)) {  // what encode_record would write, without writing it
    in.fail(Code::malformed, label.str() + " is not in encode_record's binary form");
    return std::nullopt;
  }
  return SharedRecord{std::make_shared<const JobRecord>(std::move(r).value()),
                      std::make_shared<const std::string>(bytes)};
}

std::optional<SharedRecord> read_optional_record(Reader& in, Label label) {
  if (!in.boolean("record presence byte")) return std::nullopt;
  return read_record(in, label);
}

std::string read_id(Reader& in, Label label) {
  const std::string_view id = in.str(kJobIdBytes, label.what);
  if (in.ok() && !is_job_id(id)) in.fail(Code::malformed, label.str() + " is not a job id");
  return std::string(id);
}

Replicate read_replicate(Reader& in) {
  Replicate m;
  const size_t n = in.count(kRecordItemBytesMin, "records");
  m.records.reserve(n);
  for (size_t i = 0; i < n && in.ok(); ++i) {
    std::optional<SharedRecord> r = read_record(in, {"record", i});
    if (r) m.records.push_back(std::move(*r));
  }
  const size_t conditions = in.count(kIfClaimedItemBytes, "if_claimed conditions");
  m.if_claimed.reserve(conditions);
  for (size_t i = 0; i < conditions && in.ok(); ++i) {
    IfClaimed c;
    c.index = in.u32("if_claimed index");
    c.claim.state = JobState::running;
    c.claim.attempt = in.u32("if_claimed attempt");
    c.claim.node = in.str(kNodeNameBytesMax, "if_claimed node name");
    c.claim.at_ms = in.u64("if_claimed at_ms");
    c.claim.error = in.str(kMessageBytesMax, "if_claimed error");
    c.claim.retry_at_ms = in.u64("if_claimed retry_at_ms");
    c.claim.round = in.u32("if_claimed round");
    c.claim.base = in.u32("if_claimed base");
    if (in.ok() && (c.index >= m.records.size() ||
                    (!m.if_claimed.empty() && c.index <= m.if_claimed.back().index)))
      in.fail(Code::malformed, "if_claimed index " + std::to_string(c.index) +
                                   " is not increasing within the " +
                                   std::to_string(m.records.size()) + " records");
    if (in.ok()) m.if_claimed.push_back(std::move(c));
  }
  return m;
}

ReplicateAck read_replicate_ack(Reader& in) {
  ReplicateAck m;
  const size_t n = in.count(kAckItemBytesMin, "acks");
  m.items.reserve(n);
  for (size_t i = 0; i < n && in.ok(); ++i) {
    ItemAck a;
    a.ok = in.boolean("ack's ok");
    a.existed = in.boolean("ack's existed");
    a.state = in.state("ack's state");
    a.attempt = in.u32("ack's attempt");
    a.node = in.str(kNodeNameBytesMax, "ack's node name");
    a.cancel_requested = in.boolean("ack's cancel_requested");
    a.copy = read_optional_record(in, {"copy in ack", i});
    a.deleted = in.boolean("ack's deleted");
    m.items.push_back(std::move(a));
  }
  return m;
}

Fetch read_fetch(Reader& in) {
  Fetch m;
  const size_t n = in.count(kIdItemBytesMin, "ids");
  m.ids.reserve(n);
  for (size_t i = 0; i < n && in.ok(); ++i) m.ids.push_back(read_id(in, {"id", i}));
  return m;
}

FetchReply read_fetch_reply(Reader& in) {
  FetchReply m;
  const size_t n = in.count(kOptionalRecordBytesMin, "records");
  m.records.reserve(n);
  for (size_t i = 0; i < n && in.ok(); ++i)
    m.records.push_back(read_optional_record(in, {"record", i}));
  return m;
}

Digest read_digest(Reader& in) {
  Digest m;
  const size_t n = in.count(kBucketItemBytes, "buckets");
  if (in.ok() && n != kDigestBuckets) {
    in.fail(Code::malformed,
            std::to_string(n) + " buckets, not exactly " + std::to_string(kDigestBuckets));
  }
  if (!in.ok()) return m;
  m.buckets.reserve(n);
  for (size_t i = 0; i < n; ++i) m.buckets.push_back(in.u64("bucket digest"));
  return m;
}

DigestReply read_digest_reply(Reader& in) {
  DigestReply m;
  const size_t n_differ = in.count(kDifferItemBytes, "differing buckets");
  m.differ.reserve(n_differ);
  for (size_t i = 0; i < n_differ && in.ok(); ++i) {
    const uint32_t b = in.u32("differing bucket");
    if (in.ok() && b >= kDigestBuckets)
      in.fail(Code::malformed, "differing bucket " + std::to_string(b) + " is out of range");
    m.differ.push_back(b);
  }
  const size_t n_entries = in.count(kEntryItemBytesMin, "entries");
  m.entries.reserve(n_entries);
  for (size_t i = 0; i < n_entries && in.ok(); ++i) {
    std::string id = read_id(in, {"entry id", i});
    const uint64_t fingerprint = in.u64("entry's fingerprint");
    m.entries.emplace_back(std::move(id), fingerprint);
  }
  return m;
}

ListRequest read_list_request(Reader& in) {
  ListRequest m;
  m.state = in.str(kListStateBytesMax, "list state");
  if (in.ok() && !m.state.empty() && !is_public_state_name(m.state))
    in.fail(Code::malformed, "list state is not a public state name");
  m.type = in.str(kListTypeBytesMax, "list type");
  m.limit = in.u32("list limit");
  if (in.ok() && (m.limit == 0 || m.limit > kListLimitMax)) {
    in.fail(Code::malformed, "list limit " + std::to_string(m.limit) + " is not in 1.." +
                                 std::to_string(kListLimitMax));
  }
  m.cursor = in.str(kListCursorBytesMax, "list cursor");
  return m;
}

ListReply read_list_reply(Reader& in) {
  ListReply m;
  const size_t n = in.count(kRecordItemBytesMin, "listed records");
  if (in.ok() && n > kListLimitMax) {
    in.fail(Code::too_large, std::to_string(n) + " listed records exceed kListLimitMax (" +
                                 std::to_string(kListLimitMax) + ")");
  }
  if (!in.ok()) return m;
  m.records.reserve(n);
  for (size_t i = 0; i < n && in.ok(); ++i) {
    std::optional<SharedRecord> r = read_record(in, {"listed record", i});
    if (r) m.records.push_back(std::move(*r));
  }
  m.next_cursor = in.str(kListCursorBytesMax, "next cursor");
  return m;
}

HeldReply read_held_reply(Reader& in) {
  HeldReply m;
  m.held = in.u64("held count");
  m.unfinished = in.u64("unfinished count");
  return m;
}

Message read_body(Reader& in, uint8_t kind) {
  switch (kind) {
    case 0:
      return read_replicate(in);
    case 1:
      return read_replicate_ack(in);
    case 2:
      return read_fetch(in);
    case 3:
      return read_fetch_reply(in);
    case 4:
      return read_digest(in);
    case 5:
      return read_digest_reply(in);
    case 6:
      return read_list_request(in);
    case 7:
      return read_list_reply(in);
    case 8:
      return HeldRequest{};
    default:
      return read_held_reply(in);
  }
}

}  // namespace

SharedRecord SharedRecord::of(JobRecord r) {
  auto bytes = std::make_shared<const std::string>(encode_record(r));
  return SharedRecord{std::make_shared<const JobRecord>(std::move(r)), std::move(bytes)};
}

bool is_replica_message(const Message& m) {
  return m.index() < kReplicaKinds;
}

uint64_t corr_of(const Message& m) {
  return std::visit([](const auto& x) { return x.corr; }, m);
}

std::string_view message_name(const Message& m) {
  return kKindNames[m.index()];
}

std::string encode_message(const Message& m) {
  require(corr_of(m) != 0, "a message with corr 0");
  Writer w(size_hint(m));
  w.u8(kMessageVersion);
  w.u8(static_cast<uint8_t>(m.index()));
  w.u64(corr_of(m));
  std::visit(BodyWriter{w}, m);
  return w.take();
}

Result<Message> decode_message(std::string_view bytes) {
  if (bytes.size() > kMessageBytesMax) {
    return Result<Message>(Code::too_large, "message of " + std::to_string(bytes.size()) +
                                                " bytes exceeds kMessageBytesMax (" +
                                                std::to_string(kMessageBytesMax) + ")");
  }
  Reader in(bytes);
  const uint8_t version = in.u8("message version");
  if (in.ok() && version != kMessageVersion) {
    return Result<Message>(Code::malformed, "message version " + std::to_string(version) +
                                                " is not " + std::to_string(kMessageVersion));
  }
  const uint8_t kind = in.u8("message kind");
  if (in.ok() && kind >= kKindNames.size())
    return Result<Message>(Code::malformed, "unknown message kind " + std::to_string(kind));
  const uint64_t corr = in.u64("correlation id");
  if (!in.ok()) return in.status();
  const std::string name(kKindNames[kind]);
  if (corr == 0) return Result<Message>(Code::malformed, name + " with correlation id 0");
  Message m = read_body(in, kind);
  if (in.ok() && in.left() != 0)
    in.fail(Code::malformed, std::to_string(in.left()) + " trailing bytes");
  if (!in.ok()) return Status(in.status().code(), name + ": " + in.status().message());
  std::visit([corr](auto& x) { x.corr = corr; }, m);
  return m;
}

}  // namespace meshwork
