// Tests for dht/message_codec: every message kind round-trips exactly; hostile bytes (a wrong
// version or kind, corr 0, every truncation, a trailing byte, counts past the limits, bad bool and
// state bytes, a bad record, a non-hex id, a digest of the wrong size) are refused with a reason;
// and fuzzed bytes (mutations, splices, noise) never crash the decoder, while whatever decodes
// re-encodes to the very bytes it came from. Every random input comes from a fixed seed.
// MESHWORK_FUZZ_SCALE (default 1) multiplies the fuzz iteration counts.
#include "dht/messages.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "dht/envelope.h"
#include "dht/job_record.h"

namespace meshwork {
namespace {

constexpr size_t kHeaderBytes = 10;  // u8 version, u8 kind, u64 corr

size_t scaled(size_t n) {
  const char* s = std::getenv("MESHWORK_FUZZ_SCALE");
  const double f = s ? std::atof(s) : 1.0;
  return static_cast<size_t>(static_cast<double>(n) * (f > 0 ? f : 1.0));
}

// A queued record for job `n`, as the entry node builds it. The envelope is not really signed:
// decode_record checks the envelope's shape and that the id is its hash, not the signature (the
// node verifies that before it stores a copy), so a fixed key and signature do.
JobRecord job(uint32_t n) {
  JobSpec spec;
  spec.type = "echo";
  spec.payload = {{"n", n}, {"text", "hello"}};
  spec.nonce = "nonce-" + std::to_string(n);
  spec.created_at_ms = 1'700'000'000'000 + n;
  spec.max_attempts = 4;
  spec.timeout_ms = 60'000;
  const nlohmann::json text{{"type", spec.type},
                            {"payload", spec.payload},
                            {"nonce", spec.nonce},
                            {"created_at", spec.created_at_ms},
                            {"max_attempts", spec.max_attempts},
                            {"timeout_ms", spec.timeout_ms}};
  Envelope env{text.dump(), std::string(kPublicKeyBytes, static_cast<char>('k' + n % 8)),
               std::string(kSignatureBytes, 's')};
  if (n % 3 == 1) {  // signed in a batch: the envelope carries its root, index and proof
    env.root = blake2b_hex("root", std::to_string(n / 3));
    env.index = n % 4;
    env.proof = {blake2b_hex("left"), blake2b_hex("right", std::to_string(n))};
  }
  return make_record(std::move(env), spec, "n1", spec.created_at_ms);
}

// Job `n` further along: claimed and running (1), waiting to retry (2), succeeded (3), with a
// cancel requested too late (4).
JobRecord progressed(uint32_t n, uint32_t step) {
  JobRecord r = job(n);
  const uint64_t t = r.updated_at_ms;
  if (step >= 1) {
    r.claim = Claim{1, "n2", t + 15'000};
    r.status = JobStatus{JobState::running, 1, "n2", t + 10, {}, 0};
    r.add_history(JobState::running, "n2", 1, t + 10, "claimed");
  }
  if (step >= 2) {
    r.status = JobStatus{JobState::retry_wait, 1, "n2", t + 20, "boom", t + 520};
    r.add_history(JobState::retry_wait, "n2", 1, t + 20, "boom");
  }
  if (step >= 3) {
    r.claim = Claim{2, "n3", t + 15'600};
    const Receipt receipt{r.id, "n3", 2, std::string(64, 'a'), "cHVibGlj", "c2lnbmF0dXJl"};
    r.results["n3"] =
        NodeResult{2, JobState::succeeded, R"({"echo":"hello"})", "", t + 40, receipt};
    r.status = JobStatus{JobState::succeeded, 2, "n3", t + 40, {}, 0};
    r.add_history(JobState::succeeded, "n3", 2, t + 40, "done");
  }
  if (step >= 4) r.cancel_round = 1;
  r.updated_at_ms = t + 10 * step;
  return r;
}

// ---- equality after a round trip ----

bool same_record(const SharedRecord& a, const SharedRecord& b) {
  return a.record && b.record && a.bytes && b.bytes && *a.bytes == *b.bytes && same_state(*a, *b) &&
         a->envelope.job == b->envelope.job && a->envelope.public_key == b->envelope.public_key &&
         a->envelope.signature == b->envelope.signature && a->type == b->type &&
         a->max_attempts == b->max_attempts && a->timeout_ms == b->timeout_ms &&
         a->created_at_ms == b->created_at_ms;
}

bool same_optional(const std::optional<SharedRecord>& a, const std::optional<SharedRecord>& b) {
  return a.has_value() == b.has_value() && (!a || same_record(*a, *b));
}

template <typename T, typename Eq>
bool same_list(const std::vector<T>& a, const std::vector<T>& b, Eq eq) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!eq(a[i], b[i])) return false;
  return true;
}

bool same_ack(const ItemAck& a, const ItemAck& b) {
  return a.ok == b.ok && a.existed == b.existed && a.state == b.state && a.attempt == b.attempt &&
         a.node == b.node && a.cancel_requested == b.cancel_requested &&
         same_optional(a.copy, b.copy) && a.deleted == b.deleted;
}

bool same_if_claimed(const IfClaimed& a, const IfClaimed& b) {
  const JobStatus &x = a.claim, &y = b.claim;
  return a.index == b.index && x.state == y.state && x.attempt == y.attempt && x.node == y.node &&
         x.at_ms == y.at_ms && x.error == y.error && x.retry_at_ms == y.retry_at_ms &&
         x.round == y.round && x.base == y.base;
}

bool same_body(const Replicate& a, const Replicate& b) {
  return same_list(a.records, b.records, same_record) &&
         same_list(a.if_claimed, b.if_claimed, same_if_claimed);
}
bool same_body(const ReplicateAck& a, const ReplicateAck& b) {
  return same_list(a.items, b.items, same_ack);
}
bool same_body(const Fetch& a, const Fetch& b) {
  return a.ids == b.ids;
}
bool same_body(const FetchReply& a, const FetchReply& b) {
  return same_list(a.records, b.records, same_optional);
}
bool same_body(const Digest& a, const Digest& b) {
  return a.buckets == b.buckets;
}
bool same_body(const DigestReply& a, const DigestReply& b) {
  return a.differ == b.differ && a.entries == b.entries;
}
bool same_body(const ListRequest& a, const ListRequest& b) {
  return a.state == b.state && a.type == b.type && a.limit == b.limit && a.cursor == b.cursor;
}
bool same_body(const ListReply& a, const ListReply& b) {
  return same_list(a.records, b.records, same_record) && a.next_cursor == b.next_cursor;
}
bool same_body(const HeldRequest&, const HeldRequest&) {
  return true;
}
bool same_body(const HeldReply& a, const HeldReply& b) {
  return a.held == b.held && a.unfinished == b.unfinished;
}

bool same(const Message& a, const Message& b) {
  if (a.index() != b.index() || corr_of(a) != corr_of(b)) return false;
  return std::visit(
      [&](const auto& x) { return same_body(x, std::get<std::decay_t<decltype(x)>>(b)); }, a);
}

// Every record in a decoded message carries its own encoding.
bool records_carry_their_bytes(const Message& m) {
  auto fits = [](const std::optional<SharedRecord>& r) {
    return !r || (r->record && r->bytes && *r->bytes == encode_record(**r));
  };
  if (const auto* x = std::get_if<Replicate>(&m))
    for (const SharedRecord& r : x->records)
      if (!fits(r)) return false;
  if (const auto* x = std::get_if<ReplicateAck>(&m))
    for (const ItemAck& a : x->items)
      if (!fits(a.copy)) return false;
  if (const auto* x = std::get_if<FetchReply>(&m))
    for (const auto& r : x->records)
      if (!fits(r)) return false;
  if (const auto* x = std::get_if<ListReply>(&m))
    for (const SharedRecord& r : x->records)
      if (!fits(r)) return false;
  return true;
}

// ---- samples ----

std::vector<uint64_t> digest_buckets(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> b(kDigestBuckets);
  for (uint64_t& x : b) x = rng();
  return b;
}

// One realistic message of each kind, in variant order, then each kind with empty lists.
std::vector<Message> samples() {
  const SharedRecord queued = SharedRecord::of(job(0));
  const SharedRecord running = SharedRecord::of(progressed(1, 1));
  const SharedRecord retrying = SharedRecord::of(progressed(2, 2));
  const SharedRecord done = SharedRecord::of(progressed(3, 4));
  return {
      Replicate{7, {queued, running, retrying, done}, {}},
      ReplicateAck{8,
                   {ItemAck{true, false, JobState::queued, 0, "n2", false, std::nullopt},
                    ItemAck{true, true, JobState::succeeded, 2, "n3", true, done},
                    ItemAck{false, false, JobState::running, 1, "", false, std::nullopt},
                    ItemAck{true, false, JobState::queued, 0, "", false, std::nullopt, true}}},
      Fetch{9, {queued->id, done->id, std::string(64, 'f')}},
      FetchReply{10, {running, std::nullopt, done}},
      Digest{11, digest_buckets(11)},
      DigestReply{
          UINT64_MAX, {0, 17, kDigestBuckets - 1}, {{queued->id, 1}, {done->id, 1ull << 63}}},
      ListRequest{12, "scheduled", "echo", 1'000, std::string(81, 'c')},
      ListReply{13, {done, retrying, queued}, "0000018bcfe9d400/" + queued->id},
      HeldRequest{14},
      HeldReply{15, 30, UINT64_MAX},
      Replicate{1, {}, {}},
      ReplicateAck{1, {}},
      Fetch{1, {}},
      FetchReply{1, {}},
      DigestReply{1, {}, {}},
      ListRequest{1, "", "", 1, ""},
      ListReply{1, {}, ""},
      // An outcome shipped with its claim (the last record's condition), beside a plain record.
      Replicate{16,
                {running, done},
                {IfClaimed{1, JobStatus{JobState::running, 4, "n3", 1'700'000'000'123, "boom",
                                        0, 2, 3}}}},
  };
}

// Builds bytes by hand, for what the encoder will not produce.
struct Bytes {
  std::string s;
  Bytes& u8(uint8_t v) {
    s.push_back(static_cast<char>(v));
    return *this;
  }
  Bytes& le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return *this;
  }
  Bytes& u32(uint32_t v) { return le(v, 4); }
  Bytes& u64(uint64_t v) { return le(v, 8); }
  Bytes& str(std::string_view v) {
    u32(static_cast<uint32_t>(v.size()));
    s.append(v);
    return *this;
  }
};

Bytes header(uint8_t kind, uint64_t corr = 5) {
  Bytes b;
  b.u8(kMessageVersion).u8(kind).u64(corr);
  return b;
}

// The refusal's code; its detail must say something.
Code refusal(std::string_view bytes) {
  Result<Message> r = decode_message(bytes);
  if (r.is_ok()) return Code::ok;
  CHECK(!r.status().message().empty());
  return r.status().code();
}

bool detail_says(std::string_view bytes, std::string_view what) {
  const Status s = decode_message(bytes).status();
  const bool says = s.message().find(what) != std::string::npos;
  if (!says) MESSAGE("the detail \"", s.message(), "\" does not say \"", what, "\"");
  return says;
}

std::string patched(std::string bytes, size_t at, uint8_t v) {
  bytes.at(at) = static_cast<char>(v);
  return bytes;
}

}  // namespace

TEST_CASE("SharedRecord::of encodes the record once and shares both") {
  const JobRecord r = progressed(5, 3);
  const SharedRecord s = SharedRecord::of(r);
  REQUIRE(s.record);
  REQUIRE(s.bytes);
  CHECK(*s.bytes == encode_record(r));
  CHECK(same_state(*s, r));
  CHECK(s->id == r.id);
  const SharedRecord copy = s;  // a copy shares, it does not re-encode
  CHECK(copy.bytes.get() == s.bytes.get());
  CHECK(copy.record.get() == s.record.get());
}

TEST_CASE("message names and correlation ids") {
  const std::vector<Message> m = samples();
  const std::vector<std::string_view> names = {
      "replicate",    "replicate_ack", "fetch",      "fetch_reply",  "digest",
      "digest_reply", "list_request",  "list_reply", "held_request", "held_reply"};
  for (size_t i = 0; i < names.size(); ++i) {
    CHECK(m[i].index() == i);
    CHECK(message_name(m[i]) == names[i]);
  }
  CHECK(corr_of(m[0]) == 7);
  CHECK(corr_of(m[4]) == 11);
  CHECK(corr_of(m[5]) == UINT64_MAX);
  CHECK(corr_of(m[8]) == 14);
  for (size_t i = 0; i < names.size(); ++i) CHECK(is_replica_message(m[i]) == (i < 6));
}

TEST_CASE("every message kind round-trips with its fields") {
  for (const Message& m : samples()) {
    INFO(message_name(m), " corr ", corr_of(m));
    const std::string bytes = encode_message(m);
    REQUIRE(bytes.size() >= kHeaderBytes);
    CHECK(static_cast<uint8_t>(bytes[0]) == kMessageVersion);
    CHECK(static_cast<uint8_t>(bytes[1]) == m.index());
    Result<Message> back = decode_message(bytes);
    REQUIRE(back.is_ok());
    CHECK(same(back.value(), m));
    CHECK(records_carry_their_bytes(back.value()));
    CHECK(encode_message(back.value()) == bytes);  // one message, one encoding
  }
}

TEST_CASE("decoded fields, one by one") {
  const std::vector<Message> m = samples();
  auto decoded = [&](size_t i) { return decode_message(encode_message(m[i])).value(); };

  const auto rep = std::get<Replicate>(decoded(0));
  REQUIRE(rep.records.size() == 4);
  CHECK(rep.records[0]->status.state == JobState::queued);
  CHECK(rep.records[1]->claim.node == "n2");
  CHECK(rep.records[2]->status.error == "boom");
  CHECK(rep.records[3]->final_result()->result == R"({"echo":"hello"})");
  CHECK(rep.records[3]->cancel_requested());
  CHECK(rep.records[3]->type == "echo");
  CHECK(rep.records[3]->max_attempts == 4);
  CHECK(rep.records[3]->id == rep.records[3]->envelope.id());

  const auto ack = std::get<ReplicateAck>(decoded(1));
  REQUIRE(ack.items.size() == 4);
  CHECK((ack.items[0].ok && !ack.items[0].existed && !ack.items[0].copy && !ack.items[0].deleted));
  CHECK((ack.items[1].existed && ack.items[1].cancel_requested && ack.items[1].attempt == 2));
  CHECK(ack.items[1].state == JobState::succeeded);
  CHECK(ack.items[1].node == "n3");
  REQUIRE(ack.items[1].copy);
  CHECK(ack.items[1].copy->record->status.state == JobState::succeeded);
  CHECK((!ack.items[2].ok && ack.items[2].node.empty()));
  CHECK((ack.items[3].ok && ack.items[3].deleted));

  CHECK(std::get<Fetch>(decoded(2)).ids == std::get<Fetch>(m[2]).ids);
  const auto reply = std::get<FetchReply>(decoded(3));
  REQUIRE(reply.records.size() == 3);
  CHECK((reply.records[0] && !reply.records[1] && reply.records[2]));
  CHECK(std::get<Digest>(decoded(4)).buckets == digest_buckets(11));
  const auto dr = std::get<DigestReply>(decoded(5));
  CHECK(dr.differ == std::vector<uint32_t>{0, 17, kDigestBuckets - 1});
  REQUIRE(dr.entries.size() == 2);
  CHECK(dr.entries[1].second == 1ull << 63);

  const auto lr = std::get<ListRequest>(decoded(6));
  CHECK((lr.state == "scheduled" && lr.type == "echo" && lr.limit == 1'000));
  CHECK(lr.cursor == std::string(81, 'c'));
  const auto page = std::get<ListReply>(decoded(7));
  REQUIRE(page.records.size() == 3);
  CHECK(page.records[0]->status.state == JobState::succeeded);
  CHECK(page.records[2]->id == std::get<ListReply>(m[7]).records[2]->id);
  CHECK(page.next_cursor == std::get<ListReply>(m[7]).next_cursor);
  CHECK(std::holds_alternative<HeldRequest>(decoded(8)));
  const auto held = std::get<HeldReply>(decoded(9));
  CHECK((held.held == 30 && held.unfinished == UINT64_MAX));

  CHECK(std::get<Replicate>(decoded(0)).if_claimed.empty());
  const auto shipped = std::get<Replicate>(decoded(m.size() - 1));
  REQUIRE(shipped.if_claimed.size() == 1);
  const IfClaimed& c = shipped.if_claimed[0];
  CHECK(c.index == 1);
  CHECK((c.claim.state == JobState::running && c.claim.attempt == 4 && c.claim.node == "n3"));
  CHECK((c.claim.at_ms == 1'700'000'000'123 && c.claim.error == "boom"));
  CHECK((c.claim.round == 2 && c.claim.base == 3 && c.claim.retry_at_ms == 0));
}

TEST_CASE("a replicate's conditions must point at its records, in increasing order") {
  const SharedRecord rec = SharedRecord::of(job(0));
  // A replicate of `records` copies of rec, then conditions on the given indexes.
  auto replicate = [&](size_t records, std::vector<uint32_t> indexes) {
    Bytes b = header(0);
    b.u32(static_cast<uint32_t>(records));
    for (size_t i = 0; i < records; ++i) b.str(*rec.bytes);
    b.u32(static_cast<uint32_t>(indexes.size()));
    for (uint32_t i : indexes) b.u32(i).u32(1).str("n1").u64(5).str("").u64(0).u32(0).u32(0);
    return b.s;
  };
  CHECK(refusal(replicate(2, {})) == Code::ok);
  CHECK(refusal(replicate(2, {0, 1})) == Code::ok);
  CHECK(refusal(replicate(2, {1})) == Code::ok);
  for (const auto& bad : {std::vector<uint32_t>{2}, {1, 1}, {1, 0}, {UINT32_MAX}}) {
    CHECK(refusal(replicate(2, bad)) == Code::malformed);
    CHECK(detail_says(replicate(2, bad), "if_claimed index"));
  }
  CHECK(refusal(replicate(0, {0})) == Code::malformed);
  // A node name past kNodeNameBytesMax.
  Bytes long_name = header(0);
  long_name.u32(1).str(*rec.bytes).u32(1).u32(0).u32(1).str(std::string(kNodeNameBytesMax + 1, 'n'));
  CHECK(refusal(long_name.s) == Code::malformed);
  CHECK(detail_says(long_name.s, "if_claimed node name"));
}

TEST_CASE("lists of exactly kMessageItemsMax items are accepted") {
  Fetch f{3, {}};
  for (size_t i = 0; i < kMessageItemsMax; ++i) {
    std::string id = std::to_string(i);
    f.ids.push_back(std::string(64 - id.size(), '0') + id);
  }
  Result<Message> back = decode_message(encode_message(f));
  REQUIRE(back.is_ok());
  CHECK(same(back.value(), f));
}

TEST_CASE("a wrong version, an unknown kind or a zero correlation id is refused") {
  for (const Message& m : samples()) {
    INFO(message_name(m));
    const std::string bytes = encode_message(m);
    CHECK(refusal(patched(bytes, 0, kMessageVersion + 1)) == Code::malformed);
    CHECK(refusal(patched(bytes, 0, 0)) == Code::malformed);
    CHECK(detail_says(patched(bytes, 0, 9), "version 9"));
    CHECK(refusal(patched(bytes, 1, std::variant_size_v<Message>)) == Code::malformed);
    CHECK(refusal(patched(bytes, 1, 0xff)) == Code::malformed);
    CHECK(detail_says(patched(bytes, 1, 200), "unknown message kind 200"));
    std::string zero = bytes;
    for (size_t i = 2; i < kHeaderBytes; ++i) zero[i] = '\0';
    CHECK(refusal(zero) == Code::malformed);
    CHECK(detail_says(zero, "correlation id 0"));
  }
  CHECK(refusal("") == Code::malformed);
  CHECK(detail_says("", "ends inside message version"));
}

TEST_CASE("every strict prefix is refused, and so is a trailing byte") {
  for (const Message& m : samples()) {
    INFO(message_name(m));
    const std::string bytes = encode_message(m);
    for (size_t n = 0; n < bytes.size(); ++n) {
      INFO("prefix of ", n, " bytes of ", bytes.size());
      REQUIRE(refusal(bytes.substr(0, n)) == Code::malformed);
    }
    CHECK(refusal(bytes + '\0') == Code::malformed);
    CHECK(detail_says(bytes + "xy", "2 trailing bytes"));
  }
}

TEST_CASE("sizes past the limits are refused as too large, before anything is allocated") {
  // A count past kMessageItemsMax, whatever follows it.
  for (uint8_t kind : {0, 1, 2, 3, 4}) {
    Bytes b = header(kind);
    b.u32(kMessageItemsMax + 1);
    CHECK(refusal(b.s) == Code::too_large);
    CHECK(detail_says(b.s, "exceed kMessageItemsMax"));
  }
  Bytes differ = header(5);
  differ.u32(UINT32_MAX);
  CHECK(refusal(differ.s) == Code::too_large);
  Bytes entries = header(5);
  entries.u32(0).u32(kMessageItemsMax + 1);
  CHECK(refusal(entries.s) == Code::too_large);
  // kMessageItemsMax + 1 genuine ids.
  Bytes fetch = header(2);
  fetch.u32(kMessageItemsMax + 1);
  for (size_t i = 0; i <= kMessageItemsMax; ++i) fetch.str(std::string(64, 'a'));
  CHECK(refusal(fetch.s) == Code::too_large);
  // A count the bytes left cannot hold, and lengths past the end: malformed, nothing reserved.
  Bytes many = header(2);
  many.u32(kMessageItemsMax).str(std::string(64, 'a'));
  CHECK(refusal(many.s) == Code::malformed);
  CHECK(detail_says(many.s, "cannot fit"));
  Bytes huge_record = header(0);
  huge_record.u32(1).u32(UINT32_MAX).u8(2);
  CHECK(refusal(huge_record.s) == Code::malformed);
  Bytes huge_node = header(1);
  huge_node.u32(1).u8(1).u8(0).u8(0).u32(0).u32(UINT32_MAX).u8(0).u8(0).u8(0);
  CHECK(refusal(huge_node.s) == Code::malformed);
  CHECK(detail_says(huge_node.s, "node name"));
  Bytes long_node = header(1);
  long_node.u32(1).u8(1).u8(0).u8(0).u32(0).str(std::string(kNodeNameBytesMax + 1, 'n'));
  long_node.u8(0).u8(0).u8(0);
  CHECK(refusal(long_node.s) == Code::malformed);
  // The whole message past kMessageBytesMax.
  std::string big = encode_message(Fetch{1, {}});
  big.resize(kMessageBytesMax + 1, '\0');
  CHECK(refusal(big) == Code::too_large);
}

TEST_CASE("bool and state bytes must hold a valid value") {
  const std::vector<Message> m = samples();
  const std::string ack = encode_message(m[1]);
  // The first item starts after the header and the count: ok, existed, state.
  const size_t item = kHeaderBytes + 4;
  CHECK(refusal(patched(ack, item, 2)) == Code::malformed);
  CHECK(detail_says(patched(ack, item, 2), "ok is 2, not 0/1"));
  CHECK(refusal(patched(ack, item + 1, 0xff)) == Code::malformed);
  CHECK(refusal(patched(ack, item + 2, 6)) == Code::malformed);
  CHECK(detail_says(patched(ack, item + 2, 6), "6 is not a job state"));
  CHECK(refusal(patched(ack, item + 2, 5)) == Code::ok);  // succeeded, the last state
  // After attempt (4), the node's length (4) and "n2": cancel_requested, then the copy's presence.
  const size_t cancel = item + 3 + 4 + 4 + 2;
  CHECK(refusal(patched(ack, cancel, 1)) == Code::ok);
  CHECK(refusal(patched(ack, cancel, 3)) == Code::malformed);
  CHECK(refusal(patched(ack, cancel + 1, 2)) == Code::malformed);
  // A fetch reply's presence byte.
  const std::string reply = encode_message(FetchReply{4, {std::nullopt}});
  CHECK(refusal(reply) == Code::ok);
  CHECK(refusal(patched(reply, kHeaderBytes + 4, 2)) == Code::malformed);
}

TEST_CASE("a bad record inside refuses the whole message") {
  const SharedRecord good = SharedRecord::of(progressed(6, 3));
  auto replicate_with = [&](std::string bytes) {
    SharedRecord bad{good.record, std::make_shared<const std::string>(std::move(bytes))};
    return encode_message(Replicate{3, {good, bad}, {}});
  };
  std::string other_id = *good.bytes;
  other_id[5] = other_id[5] == 'a' ? 'b' : 'a';  // inside the hex id: it no longer matches
  CHECK(refusal(replicate_with(other_id)) == Code::malformed);
  CHECK(detail_says(replicate_with(other_id), "record 1"));
  CHECK(refusal(replicate_with(good.bytes->substr(0, good.bytes->size() - 1))) == Code::malformed);
  CHECK(refusal(replicate_with(*good.bytes + '\0')) == Code::malformed);
  CHECK(refusal(replicate_with("")) == Code::malformed);
  // decode_record accepts the JSON form, the message codec does not: records travel binary.
  const std::string json = record_to_json(*good).dump();
  REQUIRE(decode_record(json).is_ok());
  CHECK(refusal(replicate_with(json)) == Code::malformed);
  CHECK(detail_says(replicate_with(json), "binary form"));
  // The same inside an ack's copy and a fetch reply.
  SharedRecord bad{good.record, std::make_shared<const std::string>(other_id)};
  ItemAck a{true, true, JobState::succeeded, 2, "n3", false, bad};
  CHECK(refusal(encode_message(ReplicateAck{3, {a}})) == Code::malformed);
  CHECK(refusal(encode_message(FetchReply{3, {good, bad}})) == Code::malformed);
}

TEST_CASE("ids must be job ids, and a digest must have exactly kDigestBuckets buckets") {
  const std::string id = job(0).id;
  for (const std::string& bad : {std::string(64, 'g'), std::string(64, 'A'), id.substr(1), id + "0",
                                 std::string(), std::string(64, '\0')}) {
    Bytes fetch = header(2);
    fetch.u32(2).str(id).str(bad);
    CHECK(refusal(fetch.s) == Code::malformed);
    Bytes reply = header(5);
    reply.u32(0).u32(1).str(bad).u64(9);
    CHECK(refusal(reply.s) == Code::malformed);
  }
  Bytes hex = header(2);
  hex.u32(1).str(std::string(64, 'G'));
  CHECK(detail_says(hex.s, "id 0 is not a job id"));
  for (size_t n : {size_t{0}, kDigestBuckets - 1, kDigestBuckets + 1}) {
    Bytes digest = header(4);
    digest.u32(static_cast<uint32_t>(n));
    for (size_t i = 0; i < n; ++i) digest.u64(i);
    CHECK(refusal(digest.s) == Code::malformed);
    CHECK(detail_says(digest.s, "not exactly 256"));
  }
  Bytes out_of_range = header(5);
  out_of_range.u32(1).u32(kDigestBuckets).u32(0);
  CHECK(refusal(out_of_range.s) == Code::malformed);
  CHECK(detail_says(out_of_range.s, "out of range"));
}

TEST_CASE("list requests and replies: every field is checked against its bounds") {
  auto request = [](std::string_view state, std::string_view type, uint32_t limit,
                    std::string_view cursor) {
    Bytes b = header(6);
    b.str(state).str(type).u32(limit).str(cursor);
    return b.s;
  };
  CHECK(refusal(request("", "", 1, "")) == Code::ok);
  CHECK(refusal(request("failed", std::string(kListTypeBytesMax, 't'), kListLimitMax,
                        std::string(kListCursorBytesMax, 'c'))) == Code::ok);
  for (const std::string_view state : {"retry_wait", "QUEUED", "bogus", "queued "}) {
    INFO(state);
    CHECK(refusal(request(state, "", 1, "")) == Code::malformed);
  }
  CHECK(detail_says(request("bogus", "", 1, ""), "not a public state name"));
  CHECK(detail_says(request(std::string(kListStateBytesMax + 1, 'q'), "", 1, ""), "list state"));
  CHECK(refusal(request("", std::string(kListTypeBytesMax + 1, 't'), 1, "")) == Code::malformed);
  CHECK(detail_says(request("", "", 0, ""), "list limit 0"));
  CHECK(detail_says(request("", "", kListLimitMax + 1, ""), "list limit 1001"));
  CHECK(refusal(request("", "", UINT32_MAX, "")) == Code::malformed);
  CHECK(refusal(request("", "", 1, std::string(kListCursorBytesMax + 1, 'c'))) == Code::malformed);

  Bytes cursor = header(7);
  cursor.u32(0).str(std::string(kListCursorBytesMax + 1, 'c'));
  CHECK(detail_says(cursor.s, "next cursor"));
  // A page of more than kListLimitMax records is too large, whatever the bytes hold.
  Bytes many = header(7);
  many.u32(kListLimitMax + 1);
  const SharedRecord r = SharedRecord::of(job(0));
  for (size_t i = 0; i <= kListLimitMax; ++i) many.str(*r.bytes);
  many.str("");
  CHECK(refusal(many.s) == Code::too_large);
  CHECK(detail_says(many.s, "exceed kListLimitMax"));
  // One of exactly kListLimitMax is fine.
  ListReply full{3, std::vector<SharedRecord>(kListLimitMax, r),
                 std::string(kListCursorBytesMax, 'c')};
  Result<Message> back = decode_message(encode_message(full));
  REQUIRE(back.is_ok());
  CHECK(same(back.value(), full));
  // A listed record in the JSON form is refused, as in every other kind.
  Bytes json = header(7);
  json.u32(1).str(record_to_json(*r).dump()).str("");
  CHECK(refusal(json.s) == Code::malformed);
  // Held: no body at all in a request, exactly two u64 in a reply.
  CHECK(detail_says(header(8).s + "x", "1 trailing bytes"));
  Bytes short_reply = header(9);
  short_reply.u64(1);
  CHECK(refusal(short_reply.s) == Code::malformed);
}

namespace {

// Random valid messages from a pool of records, and their mutations.
struct Gen {
  std::mt19937_64 rng;
  std::vector<SharedRecord> pool;

  explicit Gen(uint64_t seed) : rng(seed) {
    for (uint32_t n = 0; n < 6; ++n)
      for (uint32_t step = 0; step <= 4; ++step)
        pool.push_back(SharedRecord::of(progressed(n, step)));
  }
  uint64_t below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng); }
  const SharedRecord& record() { return pool[below(pool.size())]; }
  std::optional<SharedRecord> maybe_record() {
    if (below(2) == 0) return std::nullopt;
    return record();
  }
  std::string id() {
    if (below(2) == 0) return record()->id;
    std::string s(64, '0');
    for (char& c : s) c = "0123456789abcdef"[below(16)];
    return s;
  }
  uint64_t corr() { return below(4) == 0 ? UINT64_MAX - below(3) : 1 + below(1000); }
  ItemAck ack() {
    return ItemAck{below(2) == 1,
                   below(2) == 1,
                   static_cast<JobState>(below(6)),
                   static_cast<uint32_t>(below(5)),
                   "n" + std::to_string(below(12)),
                   below(2) == 1,
                   maybe_record(),
                   below(2) == 1};
  }
  std::string text(size_t bytes_max) {
    std::string s(below(bytes_max + 1), '\0');
    for (char& c : s) c = static_cast<char>(rng());
    return s;
  }
  Message message() {
    const size_t n = below(5);
    switch (below(10)) {
      case 0: {
        Replicate m{corr(), {}, {}};
        for (size_t i = 0; i < n; ++i) {
          m.records.push_back(record());
          if (below(2) == 1)
            m.if_claimed.push_back(IfClaimed{
                static_cast<uint32_t>(i),
                JobStatus{JobState::running, static_cast<uint32_t>(below(5)),
                          "n" + std::to_string(below(12)), rng(), text(16), rng(),
                          static_cast<uint32_t>(below(3)), static_cast<uint32_t>(below(3))}});
        }
        return m;
      }
      case 1: {
        ReplicateAck m{corr(), {}};
        for (size_t i = 0; i < n; ++i) m.items.push_back(ack());
        return m;
      }
      case 2: {
        Fetch m{corr(), {}};
        for (size_t i = 0; i < 2 * n; ++i) m.ids.push_back(id());
        return m;
      }
      case 3: {
        FetchReply m{corr(), {}};
        for (size_t i = 0; i < n; ++i) m.records.push_back(maybe_record());
        return m;
      }
      case 4:
        return Digest{corr(), digest_buckets(rng())};
      case 5: {
        DigestReply m{corr(), {}, {}};
        for (size_t i = 0; i < 2 * n; ++i) m.differ.push_back(static_cast<uint32_t>(below(256)));
        for (size_t i = 0; i < 2 * n; ++i) m.entries.emplace_back(id(), rng());
        return m;
      }
      case 6: {
        static constexpr const char* kStates[] = {"",          "queued", "scheduled", "running",
                                                  "succeeded", "failed", "cancelled"};
        return ListRequest{corr(), kStates[below(std::size(kStates))], text(kListTypeBytesMax),
                           static_cast<uint32_t>(1 + below(kListLimitMax)),
                           text(kListCursorBytesMax)};
      }
      case 7: {
        ListReply m{corr(), {}, text(kListCursorBytesMax)};
        for (size_t i = 0; i < n; ++i) m.records.push_back(record());
        return m;
      }
      case 8:
        return HeldRequest{corr()};
      default:
        return HeldReply{corr(), rng(), rng()};
    }
  }
  // Where to hit: often the header and the first fields, where the codec's own checks are.
  size_t position(size_t size) {
    return below(2) == 0 ? below(std::min<size_t>(size, 40)) : below(size);
  }
  void mutate(std::string& b) {
    static constexpr uint32_t kInteresting[] = {0, 1, 2, 5, 6, 255, 256, 4096, 4097, UINT32_MAX};
    for (uint64_t n = 1 + below(4); n > 0; --n) {
      const uint64_t op = below(6);
      if (b.empty() || op == 0) {
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(below(b.size() + 1)),
                 static_cast<char>(rng()));
      } else if (op == 1) {
        b[position(b.size())] ^= static_cast<char>(1u << below(8));
      } else if (op == 2) {
        b[position(b.size())] = static_cast<char>(below(2) ? 0xff : below(8));
      } else if (op == 3) {
        b.erase(b.begin() + static_cast<std::ptrdiff_t>(position(b.size())));
      } else if (op == 4) {
        b.resize(below(b.size() + 1));
      } else if (b.size() >= 4) {  // a u32 (a count or a length) set to an interesting value
        const size_t at = position(b.size() - 3);
        const uint32_t v = kInteresting[below(std::size(kInteresting))];
        for (size_t i = 0; i < 4; ++i) b[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
      }
    }
  }
  std::string noise() {
    std::string b(below(200), '\0');
    for (char& c : b) c = static_cast<char>(rng());
    if (b.size() >= 2 && below(2) == 0) {
      b[0] = static_cast<char>(kMessageVersion);
      b[1] = static_cast<char>(below(std::variant_size_v<Message> + 1));
    }
    return b;
  }
  std::string input() {
    switch (below(8)) {
      case 0:
        return noise();
      case 1: {  // a splice: the start of one message, the end of another
        const std::string a = encode_message(message()), b = encode_message(message());
        return a.substr(0, below(a.size() + 1)) + b.substr(below(b.size() + 1));
      }
      default: {
        std::string b = encode_message(message());
        mutate(b);
        return b;
      }
    }
  }
};

}  // namespace

TEST_CASE("fuzz: random valid messages round-trip exactly") {
  Gen g(1);
  for (size_t i = 0; i < scaled(4'000); ++i) {
    const Message m = g.message();
    const std::string bytes = encode_message(m);
    Result<Message> back = decode_message(bytes);
    REQUIRE(back.is_ok());
    REQUIRE(same(back.value(), m));
    REQUIRE(encode_message(back.value()) == bytes);
  }
}

TEST_CASE("fuzz: mutated, spliced and random bytes never crash decode; what decodes re-encodes") {
  Gen g(2);
  size_t ok = 0;
  const size_t rounds = scaled(60'000);
  for (size_t i = 0; i < rounds; ++i) {
    const std::string bytes = g.input();
    Result<Message> m = decode_message(bytes);
    if (!m.is_ok()) {
      const Code code = m.status().code();
      REQUIRE((code == Code::malformed || code == Code::too_large));
      REQUIRE(!m.status().message().empty());
      continue;
    }
    ++ok;
    REQUIRE(corr_of(m.value()) != 0);
    REQUIRE(records_carry_their_bytes(m.value()));
    const std::string again = encode_message(m.value());
    REQUIRE(again == bytes);  // canonical: whatever decodes came in its one encoding
    Result<Message> back = decode_message(again);
    REQUIRE(back.is_ok());
    REQUIRE(same(back.value(), m.value()));
  }
  MESSAGE(ok, " of ", rounds, " fuzzed messages decoded");
  CHECK(ok > 0);
  CHECK(ok < rounds);
}

}  // namespace meshwork
