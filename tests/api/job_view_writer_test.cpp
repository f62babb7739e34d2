// The direct writers of the request path (api/json_text.h, api/views.h) write the very bytes of the
// nlohmann path they replace: a job's view with its placement, and a batch's answer, for many
// varied records — every state, claims, results and receipts (batch-signed ones with root, index
// and proof), errors, delays, retries, cancels, redundancy 3, job texts canonical or not, unicode,
// control characters, invalid UTF-8 and big integers.
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "api/json_text.h"
#include "api/views.h"

namespace meshwork::api {
namespace jvw {

using nlohmann::json;
using Rng = std::mt19937_64;

size_t below(Rng& rng, size_t n) {
  return std::uniform_int_distribution<size_t>(0, n - 1)(rng);
}

bool coin(Rng& rng) {
  return below(rng, 2) == 0;
}

// Pieces of strings: plain, quotes and backslashes, control characters and DEL, UTF-8 of 2 to 4
// bytes, and bytes that are not UTF-8 (a lone lead byte, an overlong form, a surrogate, 0xff).
const std::vector<std::string>& pieces(bool valid_utf8) {
  static const std::vector<std::string> valid = {"a",
                                                 "node-1",
                                                 " ",
                                                 "\"",
                                                 "\\",
                                                 "/",
                                                 std::string(1, '\0'),
                                                 "\x01",
                                                 "\b",
                                                 "\t",
                                                 "\n",
                                                 "\f",
                                                 "\r",
                                                 "\x1f",
                                                 "\x7f",
                                                 "\xc3\xa9",
                                                 "\xe2\x82\xac",
                                                 "\xf0\x9f\x98\x80",
                                                 "\xe4\xb8\xad",
                                                 "{}",
                                                 "\\u0041"};
  static const std::vector<std::string> any = [] {
    std::vector<std::string> v = valid;
    for (const char* bad : {"\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xff", "\xf4\x90\x80\x80", "\x80"})
      v.push_back(bad);
    return v;
  }();
  return valid_utf8 ? valid : any;
}

std::string text(Rng& rng, bool valid_utf8, size_t pieces_max = 6) {
  std::string s;
  const auto& p = pieces(valid_utf8);
  for (size_t n = below(rng, pieces_max + 1); n > 0; --n) s += p[below(rng, p.size())];
  return s;
}

// Mostly plain identifiers (the common case), sometimes anything.
std::string name(Rng& rng) {
  if (below(rng, 4) > 0) return "n" + std::to_string(below(rng, 5));
  return text(rng, /*valid_utf8=*/false);
}

json number(Rng& rng) {
  switch (below(rng, 9)) {
    case 0:
      return 0;
    case 1:
      return static_cast<int64_t>(below(rng, 1000)) - 500;
    case 2:
      return std::numeric_limits<int64_t>::min();
    case 3:
      return std::numeric_limits<uint64_t>::max();
    case 4:
      return std::numeric_limits<int64_t>::max();
    case 5:
      return 0.5;
    case 6:
      return 1e300;
    case 7:
      return -0.0;
    default:
      return static_cast<uint64_t>(rng());
  }
}

json value(Rng& rng, int depth) {
  switch (below(rng, depth > 3 ? 5 : 7)) {
    case 0:
      return nullptr;
    case 1:
      return coin(rng);
    case 2:
    case 3:
      return number(rng);
    case 4:
      return text(rng, /*valid_utf8=*/true);
    case 5: {
      json a = json::array();
      for (size_t n = below(rng, 4); n > 0; --n) a.push_back(value(rng, depth + 1));
      return a;
    }
    default: {
      json o = json::object();
      for (size_t n = below(rng, 4); n > 0; --n) o[text(rng, true, 2)] = value(rng, depth + 1);
      return o;
    }
  }
}

// Texts nlohmann does not write itself: whitespace, key order, escapes, number forms, duplicate
// keys, not an object, not JSON at all.
const std::vector<std::string>& odd_texts() {
  static const std::vector<std::string> texts = {
      R"({"type": "echo", "payload": {"b": 1, "a": 2}})",
      R"({"payload":{"x":"\u00e9\/"},"type":"echo"})",
      R"({"payload":"\u0008\u000A","type":"echo"})",
      R"({"payload":"\u00E9","type":"echo"})",
      R"({"payload":"\ud83d\ude00","type":"echo"})",
      R"({"payload":1.0,"type":"echo"})",
      R"({"payload":1e2,"type":"echo"})",
      R"({"payload":-0,"type":"echo"})",
      R"({"payload":007,"type":"echo"})",
      R"({"payload":18446744073709551615,"type":"echo"})",
      R"({"payload":18446744073709551616,"type":"echo"})",
      R"({"payload":-9223372036854775808,"type":"echo"})",
      R"({"payload":-9223372036854775809,"type":"echo"})",
      R"({"payload":1,"payload":2,"type":"echo"})",
      R"({"type":"echo","payload":[1,{"z":null,"a":true}]})",
      R"({"a\u0062":1,"payload":{"k\n":"v"},"type":"echo"})",
      R"({"payload":{"":{"":[]}},"type":"echo"})",
      R"({"type":"echo"})",
      R"({})",
      R"([1,2])",
      R"("payload")",
      "not json",
      "",
      "{\"payload\":\"\x7f\xc3\xa9\",\"type\":\"echo\"}",
      "{\"payload\":\"\xff\",\"type\":\"echo\"}",
      "{\"payload\":\"\x01\",\"type\":\"echo\"}",
      R"({"payload":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"type":"echo"})",
      R"({"payload":true ,"type":"echo"})",
      R"({"payload":nul,"type":"echo"})",
  };
  return texts;
}

// A job text: nlohmann's dump of a spec (a plain job's), or one of odd_texts, or a dump with one
// byte changed.
std::string job_text(Rng& rng) {
  json spec = {{"type", "echo"}, {"nonce", "00ff"}, {"created_at", rng() >> 20}};
  if (below(rng, 5) > 0) spec["payload"] = value(rng, 0);
  switch (below(rng, 6)) {
    case 0:
      return odd_texts()[below(rng, odd_texts().size())];
    case 1: {
      std::string t = spec.dump();
      t[below(rng, t.size())] = " \\\"{}[]:,0e.-"[below(rng, 13)];
      return t;
    }
    case 2:
      return spec.dump(1);
    default:
      return spec.dump();
  }
}

// A result text: what a handler writes, or anything a peer may have sent.
std::string result_text(Rng& rng) {
  if (coin(rng)) return value(rng, 0).dump();
  return job_text(rng);
}

JobState state(Rng& rng) {
  return static_cast<JobState>(below(rng, 6));
}

Receipt receipt(Rng& rng, const std::string& id, const std::string& node, uint32_t attempt,
                const std::string& result_hash) {
  Receipt r{id, node, attempt, result_hash, "cHVibGlj", "c2lnbmF0dXJl"};
  if (coin(rng)) {
    r.root = std::string(64, 'a');
    r.index = static_cast<uint32_t>(below(rng, 64));
    for (size_t n = below(rng, 4); n > 0; --n) r.proof.push_back(std::string(64, 'b'));
  }
  if (below(rng, 8) == 0) r.signature = text(rng, false);
  return r;
}

NodeResult node_result(Rng& rng, const std::string& id, const std::string& node, uint32_t attempt,
                       bool agree) {
  NodeResult res;
  res.attempt = agree ? attempt : static_cast<uint32_t>(below(rng, 4));
  res.outcome = agree ? JobState::succeeded : static_cast<JobState>(3 + below(rng, 3));
  res.result = agree ? "{\"v\":1}" : below(rng, 3) == 0 ? "" : result_text(rng);
  if (!agree && coin(rng)) res.error = text(rng, false);
  res.at_ms = rng() >> 1;
  res.receipt = receipt(rng, id, node, res.attempt, agree ? "h" : text(rng, true, 2));
  return res;
}

JobRecord record(Rng& rng) {
  JobRecord r;
  r.id = std::string(64, "0123456789abcdef"[below(rng, 16)]);
  r.envelope.job = job_text(rng);
  r.envelope.public_key = text(rng, false, 32);
  r.type = coin(rng) ? "echo" : text(rng, false);
  r.max_attempts = static_cast<uint32_t>(below(rng, 21));
  r.timeout_ms = rng() >> below(rng, 64);
  r.created_at_ms = rng() >> 24;
  r.priority = static_cast<uint32_t>(below(rng, 10));
  r.delay_ms = coin(rng) ? 0 : rng() >> 40;
  r.redundancy = coin(rng) ? 1 : 3;
  r.status.state = state(rng);
  r.status.attempt = static_cast<uint32_t>(below(rng, 5));
  r.status.error = coin(rng) ? "" : text(rng, false);
  r.status.retry_at_ms = rng() >> 20;
  r.status.round = static_cast<uint32_t>(below(rng, 3));
  r.cancel_round = static_cast<uint32_t>(below(rng, 4));
  r.claim = {static_cast<uint32_t>(below(rng, 5)), name(rng), rng() >> 20};
  const size_t agreeing = r.redundancy > 1 ? below(rng, 4) : 0;
  for (size_t n = below(rng, 5); n > 0; --n) {
    const std::string node = name(rng);
    r.results[node] = node_result(rng, r.id, node, r.status.attempt, n <= agreeing);
  }
  r.status.node = r.results.empty() || coin(rng) ? name(rng) : r.results.begin()->first;
  for (size_t n = below(rng, 6); n > 0; --n)
    r.history.push_back({state(rng), name(rng), static_cast<uint32_t>(below(rng, 5)), rng() >> 20,
                         coin(rng) ? std::string(kSubmittedReason) : text(rng, false)});
  r.updated_at_ms = rng();
  return r;
}

std::vector<std::string> replicas(Rng& rng) {
  std::vector<std::string> list;
  for (size_t n = below(rng, 4); n > 0; --n) list.push_back(name(rng));
  return list;
}

// The path the routes took before: nlohmann documents, dumped as send_json dumps them.
std::string job_view_by_nlohmann(const JobRecord& r, uint64_t now_ms,
                                 const std::vector<std::string>& replicas) {
  json view = job_view(r, now_ms);
  view.update(placement_view(replicas));
  return dump_json(view);
}

ItemResult item(Rng& rng) {
  ItemResult it;
  switch (below(rng, 4)) {
    case 0:
      it.status = Status(static_cast<Code>(1 + below(rng, 11)), text(rng, false));
      break;
    case 1:
      break;  // ok but without a record
    default:
      it.created = coin(rng);
      it.record = record(rng);
  }
  return it;
}

}  // namespace jvw

TEST_CASE("a job's view written directly is nlohmann's dump, byte for byte") {
  jvw::Rng rng(20261130);
  size_t canonical_payloads = 0;
  for (int i = 0; i < 5'000; ++i) {
    const JobRecord r = jvw::record(rng);
    const auto replicas = jvw::replicas(rng);
    // now before, at or after the run_after of a delayed job: queued or scheduled
    const uint64_t now = r.created_at_ms + (jvw::coin(rng) ? 0 : r.delay_ms + jvw::below(rng, 2));
    std::string written;
    append_job_view(written, r, now, replicas);
    CAPTURE(r.envelope.job);
    REQUIRE(written == jvw::job_view_by_nlohmann(r, now, replicas));
    if (canonical_member(r.envelope.job, "payload")) canonical_payloads++;
  }
  MESSAGE(canonical_payloads, " of 5000 payloads copied from a canonical job text");
  CHECK(canonical_payloads > 1'000);  // the fast path is taken for nlohmann's own texts
}

TEST_CASE("a batch's answer written directly is nlohmann's dump, byte for byte") {
  jvw::Rng rng(7);
  for (int i = 0; i < 500; ++i) {
    std::vector<ItemResult> items;
    std::vector<uint64_t> retry_after_s;
    std::vector<std::vector<std::string>> replicas;
    for (size_t n = jvw::below(rng, 8); n > 0; --n) {
      items.push_back(jvw::item(rng));
      retry_after_s.push_back(jvw::coin(rng) ? 0 : jvw::below(rng, 100));
      replicas.push_back(jvw::replicas(rng));
    }
    const uint64_t now = rng() >> 20;
    std::string written;
    append_batch_answer(written, items, retry_after_s, replicas, now);
    REQUIRE(written == dump_json(batch_answer_view(items, retry_after_s, replicas, now)));
  }
}

TEST_CASE("is_canonical_json holds only for texts nlohmann writes back unchanged") {
  jvw::Rng rng(99);
  size_t canonical = 0;
  for (int i = 0; i < 20'000; ++i) {
    const std::string t = i % 2 == 0 ? jvw::value(rng, 0).dump() : jvw::job_text(rng);
    if (!is_canonical_json(t)) continue;
    canonical++;
    CAPTURE(t);
    REQUIRE(dump_json(nlohmann::json::parse(t, nullptr, false)) == t);
  }
  CHECK(canonical > 5'000);
  MESSAGE(canonical, " of 20000 texts proven canonical");
  for (const std::string& t : jvw::odd_texts()) {
    std::string written;
    append_json_text(written, t);
    CAPTURE(t);
    CHECK(written == dump_json(nlohmann::json::parse(t, nullptr, false)));
  }
  CHECK(is_canonical_json(R"({"a":[1,-2,"\u001f\n"],"b":{"":null},"c":true})"));
  CHECK(is_canonical_json("\"\xf0\x9f\x98\x80\x7f\""));
  CHECK_FALSE(is_canonical_json(R"({"b":1,"a":2})"));
  CHECK_FALSE(is_canonical_json(R"({"a":1,"a":1})"));
  CHECK_FALSE(is_canonical_json(R"("\u0008")"));
  CHECK_FALSE(is_canonical_json("-0"));
  CHECK_FALSE(is_canonical_json("18446744073709551616"));
  CHECK_FALSE(is_canonical_json("\"\xed\xa0\x80\""));
  CHECK_FALSE(is_canonical_json("1 "));
}

}  // namespace meshwork::api
