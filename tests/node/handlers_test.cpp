// Tests for the built-in job handlers (node/handlers.h): the registry, each type's validation, and
// each type's results checked against independent computations (hashes recomputed with libsodium,
// signatures made here, Merkle roots rebuilt here) rather than against the implementation.
#include <doctest/doctest.h>
#include <sodium.h>

#include <array>
#include <chrono>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "node/handlers.h"

namespace {

using meshwork::CancelToken;
using meshwork::find_handler;
using meshwork::HandlerOutcome;
using meshwork::JobContext;
using nlohmann::json;
using Kind = HandlerOutcome::Kind;
using Clock = std::chrono::steady_clock;

const meshwork::Handler& handler(std::string_view type) {
  const meshwork::Handler* h = find_handler(type);
  REQUIRE(h != nullptr);
  return *h;
}

std::string validate(std::string_view type, const json& payload) {
  return handler(type).validate(payload);
}

HandlerOutcome run(std::string_view type, const json& payload, uint32_t attempt = 1) {
  CancelToken cancel;
  const JobContext ctx{"job-1", payload, attempt};
  return handler(type).run(ctx, cancel);
}

bool contains(const std::string& hay, std::string_view needle) {
  return hay.find(needle) != std::string::npos;
}

using Hash = std::array<uint8_t, 32>;

Hash blake2b(const std::vector<uint8_t>& bytes) {
  Hash h{};
  crypto_generichash(h.data(), h.size(), bytes.data(), bytes.size(), nullptr, 0);
  return h;
}

std::string hex(const uint8_t* p, size_t n) {
  std::string out(n * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), p, n);
  out.pop_back();
  return out;
}

std::string b64(const uint8_t* p, size_t n) {
  std::string out(sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), p, n, sodium_base64_VARIANT_ORIGINAL);
  out.pop_back();
  return out;
}

// Runs `type` on another thread, cancels it after `delay`, returns the outcome and how long the
// handler took after the cancel.
std::pair<HandlerOutcome, std::chrono::milliseconds> run_and_cancel(
    std::string_view type, const json& payload, std::chrono::milliseconds delay) {
  CancelToken cancel;
  HandlerOutcome outcome;
  Clock::time_point done;
  std::thread worker([&] {
    const JobContext ctx{"job-c", payload, 1};
    outcome = handler(type).run(ctx, cancel);
    done = Clock::now();
  });
  std::this_thread::sleep_for(delay);
  const auto cancelled_at = Clock::now();
  cancel.cancel();
  worker.join();
  return {outcome, std::chrono::duration_cast<std::chrono::milliseconds>(done - cancelled_at)};
}

}  // namespace

TEST_CASE("registry lists every built-in type in a stable order") {
  std::vector<std::string> types;
  for (const auto& h : meshwork::all_handlers()) {
    types.emplace_back(h.type);
    CHECK_FALSE(h.summary.empty());
    CHECK(find_handler(h.type) == &h);
  }
  CHECK(types == std::vector<std::string>{"echo", "sleep", "flaky", "pow", "tx-verify", "enrich"});
  CHECK(find_handler("nope") == nullptr);
  CHECK(find_handler("") == nullptr);
}

TEST_CASE("echo returns its payload") {
  const json payload = {{"a", {1, 2, {{"b", nullptr}}}}, {"s", "ü"}};
  CHECK(validate("echo", payload).empty());
  CHECK(validate("echo", json(42)).empty());
  const auto out = run("echo", payload);
  REQUIRE(out.kind == Kind::succeeded);
  CHECK(out.result == json{{"echo", payload}});
}

TEST_CASE("sleep validation") {
  CHECK(validate("sleep", {{"ms", 0}}).empty());
  CHECK(validate("sleep", {{"ms", 3'600'000}}).empty());
  const std::string range = "payload.ms must be an integer 0..3600000";
  CHECK(validate("sleep", {{"ms", 3'600'001}}) == range);
  CHECK(validate("sleep", {{"ms", -1}}) == range);
  CHECK(validate("sleep", {{"ms", 1.5}}) == range);
  CHECK(validate("sleep", {{"ms", "10"}}) == range);
  CHECK(contains(validate("sleep", json::object()), "payload.ms is missing"));
  CHECK(contains(validate("sleep", {{"ms", 1}, {"extra", 1}}), "unknown field \"extra\""));
  CHECK(validate("sleep", json::array()) == "payload must be an object");
}

TEST_CASE("sleep waits and reports the time") {
  const auto start = Clock::now();
  const auto out = run("sleep", {{"ms", 30}});
  CHECK(Clock::now() - start >= std::chrono::milliseconds(30));
  REQUIRE(out.kind == Kind::succeeded);
  CHECK(out.result == json{{"slept_ms", 30}});
}

TEST_CASE("sleep stops promptly when cancelled from another thread") {
  const auto [out, after_cancel] =
      run_and_cancel("sleep", {{"ms", 60'000}}, std::chrono::milliseconds(50));
  CHECK(out.kind == Kind::cancelled);
  CHECK_FALSE(out.error.empty());
  CHECK(after_cancel < std::chrono::milliseconds(2'000));
}

TEST_CASE("flaky fails on attempts 1..k and succeeds on k+1") {
  const json payload = {{"fail_times", 2}};
  CHECK(validate("flaky", payload).empty());
  for (uint32_t attempt = 1; attempt <= 2; ++attempt) {
    const auto out = run("flaky", payload, attempt);
    CHECK(out.kind == Kind::failed);
    CHECK(contains(out.error, "attempt " + std::to_string(attempt)));
  }
  const auto ok = run("flaky", payload, 3);
  REQUIRE(ok.kind == Kind::succeeded);
  CHECK(ok.result["succeeded_on_attempt"] == 3);
  CHECK(run("flaky", {{"fail_times", 0}}, 1).kind == Kind::succeeded);
  CHECK(run("flaky", {{"fail_times", 1}, {"ms", 5}}, 2).kind == Kind::succeeded);
}

TEST_CASE("flaky validation") {
  CHECK(contains(validate("flaky", json::object()), "payload.fail_times is missing"));
  CHECK(validate("flaky", {{"fail_times", 101}}) == "payload.fail_times must be an integer 0..100");
  CHECK(validate("flaky", {{"fail_times", 1}, {"ms", 10'001}}) ==
        "payload.ms must be an integer 0..10000");
  CHECK(validate("flaky", {{"fail_times", 1}, {"ms", 10}}).empty());
}

// ---- pow ----

namespace {

Hash pow_hash(const std::string& data, uint64_t nonce) {
  std::vector<uint8_t> bytes(data.begin(), data.end());
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(nonce >> (8 * i)));
  return blake2b(bytes);
}

unsigned leading_zeros(const Hash& h) {
  unsigned n = 0;
  for (uint8_t b : h) {
    for (int bit = 7; bit >= 0; --bit) {
      if ((b >> bit) & 1) return n;
      ++n;
    }
  }
  return n;
}

}  // namespace

TEST_CASE("pow validation") {
  CHECK(validate("pow", {{"data", "hi"}, {"difficulty_bits", 18}}).empty());
  CHECK(validate("pow", {{"data", ""}, {"difficulty_bits", 0}}).empty());
  CHECK(validate("pow", {{"data", "hi"}, {"difficulty_bits", 33}}) ==
        "payload.difficulty_bits must be an integer 0..32");
  CHECK(validate("pow", {{"data", "hi"}, {"difficulty_bits", -1}}) ==
        "payload.difficulty_bits must be an integer 0..32");
  CHECK(contains(validate("pow", {{"data", "hi"}}), "difficulty_bits is missing"));
  const std::string data_reason = "payload.data must be a string of at most 65536 bytes";
  CHECK(validate("pow", {{"data", 5}, {"difficulty_bits", 1}}) == data_reason);
  CHECK(validate("pow", {{"difficulty_bits", 1}}) == data_reason);
  CHECK(validate("pow", {{"data", std::string(65'536, 'x')}, {"difficulty_bits", 1}}).empty());
  CHECK(validate("pow", {{"data", std::string(65'537, 'x')}, {"difficulty_bits", 1}}) ==
        data_reason);
}

TEST_CASE("pow finds the smallest nonce and its hash checks out") {
  REQUIRE(sodium_init() >= 0);
  for (unsigned bits : {0u, 1u, 8u, 12u}) {
    CAPTURE(bits);
    const std::string data = "meshwork pow test";
    const auto out = run("pow", {{"data", data}, {"difficulty_bits", bits}});
    REQUIRE(out.kind == Kind::succeeded);
    const uint64_t nonce = out.result["nonce"].get<uint64_t>();
    const Hash h = pow_hash(data, nonce);
    CHECK(out.result["hash"] == hex(h.data(), h.size()));
    CHECK(leading_zeros(h) >= bits);
    CHECK(out.result["hashes"] == nonce + 1);
    for (uint64_t n = 0; n < nonce; ++n) REQUIRE(leading_zeros(pow_hash(data, n)) < bits);
  }
  CHECK(run("pow", {{"data", "x"}, {"difficulty_bits", 0}}).result["nonce"] == 0);
}

TEST_CASE("pow stops promptly when cancelled") {
  const auto [out, after_cancel] = run_and_cancel(
      "pow", {{"data", "cancel me"}, {"difficulty_bits", 32}}, std::chrono::milliseconds(50));
  CHECK(out.kind == Kind::cancelled);
  CHECK(after_cancel < std::chrono::milliseconds(2'000));
}

// ---- tx-verify ----

namespace {

struct Wallet {
  std::array<uint8_t, crypto_sign_PUBLICKEYBYTES> pk{};
  std::array<uint8_t, crypto_sign_SECRETKEYBYTES> sk{};
  std::string name;
};

Wallet wallet(uint8_t tag) {
  REQUIRE(sodium_init() >= 0);
  Wallet w;
  std::array<uint8_t, crypto_sign_SEEDBYTES> seed{};
  seed.fill(tag);
  crypto_sign_seed_keypair(w.pk.data(), w.sk.data(), seed.data());
  w.name = b64(w.pk.data(), w.pk.size());
  return w;
}

std::string canonical(const Wallet& from, const Wallet& to, uint64_t amount, uint64_t nonce) {
  return "meshwork-tx-v1|" + from.name + "|" + to.name + "|" + std::to_string(amount) + "|" +
         std::to_string(nonce);
}

std::array<uint8_t, crypto_sign_BYTES> sign(const Wallet& from, const std::string& msg) {
  std::array<uint8_t, crypto_sign_BYTES> sig{};
  crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const uint8_t*>(msg.data()),
                       msg.size(), from.sk.data());
  return sig;
}

json tx(const Wallet& from, const Wallet& to, uint64_t amount, uint64_t nonce) {
  const auto sig = sign(from, canonical(from, to, amount, nonce));
  return {{"from", from.name},
          {"to", to.name},
          {"amount", amount},
          {"nonce", nonce},
          {"signature", b64(sig.data(), sig.size())}};
}

Hash tx_leaf(const Wallet& from, const Wallet& to, uint64_t amount, uint64_t nonce) {
  const std::string msg = canonical(from, to, amount, nonce);
  const auto sig = sign(from, msg);
  std::vector<uint8_t> bytes(msg.begin(), msg.end());
  bytes.insert(bytes.end(), sig.begin(), sig.end());
  return blake2b(bytes);
}

Hash parent(const Hash& l, const Hash& r) {
  std::vector<uint8_t> bytes(l.begin(), l.end());
  bytes.insert(bytes.end(), r.begin(), r.end());
  return blake2b(bytes);
}

json reason_of(const HandlerOutcome& out, size_t i) {
  for (const auto& v : out.result["verdicts"]) {
    if (v["i"] == i) return v.value("reason", json(nullptr));
  }
  return "missing";
}

}  // namespace

TEST_CASE("tx-verify accepts a hand-built valid transfer and applies it") {
  const Wallet a = wallet(1), b = wallet(2);
  const json payload = {{"accounts", {{a.name, 100}, {b.name, 0}}}, {"txs", {tx(a, b, 30, 0)}}};
  REQUIRE(validate("tx-verify", payload).empty());
  const auto out = run("tx-verify", payload);
  REQUIRE(out.kind == Kind::succeeded);
  CHECK(out.result["valid"] == 1);
  CHECK(out.result["invalid"] == 0);
  CHECK(out.result["verdicts"] == json::array({{{"i", 0}, {"ok", true}}}));
  CHECK(out.result["balances"][a.name] == 70);
  CHECK(out.result["balances"][b.name] == 30);
  const Hash leaf = tx_leaf(a, b, 30, 0);
  CHECK(out.result["merkle_root"] == hex(leaf.data(), leaf.size()));  // one leaf is the root
}

TEST_CASE("tx-verify rejects bad signatures, replays, gaps and overdrafts with the right reason") {
  const Wallet a = wallet(1), b = wallet(2), stranger = wallet(9);
  json tampered_sig = tx(a, b, 10, 0);
  std::string sig = tampered_sig["signature"];
  sig[3] = sig[3] == 'A' ? 'B' : 'A';
  tampered_sig["signature"] = sig;
  json tampered_amount = tx(a, b, 10, 0);
  tampered_amount["amount"] = 11;
  const json txs = {tampered_sig,    tampered_amount,   tx(a, b, 10, 0),       tx(a, b, 10, 0),
                    tx(a, b, 10, 5), tx(a, b, 1000, 1), tx(stranger, a, 0, 0), tx(b, a, 5, 0)};
  const auto out = run("tx-verify", {{"accounts", {{a.name, 100}, {b.name, 0}}}, {"txs", txs}});
  REQUIRE(out.kind == Kind::succeeded);
  CHECK(reason_of(out, 0) == "bad_signature");
  CHECK(reason_of(out, 1) == "bad_signature");
  CHECK(reason_of(out, 2) == nullptr);
  CHECK(reason_of(out, 3) == "replayed_nonce");
  CHECK(reason_of(out, 4) == "nonce_gap");
  CHECK(reason_of(out, 5) == "overdraft");
  CHECK(reason_of(out, 6) == "unknown_sender");
  CHECK(reason_of(out, 7) == nullptr);  // b spends what it just received
  CHECK(out.result["valid"] == 2);
  CHECK(out.result["invalid"] == 6);
  CHECK(out.result["reasons"]["bad_signature"] == 2);
  CHECK(out.result["balances"][a.name] == 95);
  CHECK(out.result["balances"][b.name] == 5);
}

TEST_CASE("tx-verify merkle root matches an independent computation") {
  const Wallet a = wallet(1), b = wallet(2);
  const json payload = {
      {"accounts", {{a.name, 100}}},
      {"txs", {tx(a, b, 1, 0), tx(a, b, 2, 1), tx(a, b, 1000, 2), tx(a, b, 3, 2)}}};
  const auto out = run("tx-verify", payload);
  REQUIRE(out.kind == Kind::succeeded);
  REQUIRE(out.result["valid"] == 3);  // the overdraft is left out of the tree
  const Hash l0 = tx_leaf(a, b, 1, 0), l1 = tx_leaf(a, b, 2, 1), l2 = tx_leaf(a, b, 3, 2);
  const Hash root = parent(parent(l0, l1), parent(l2, l2));
  CHECK(out.result["merkle_root"] == hex(root.data(), root.size()));
  CHECK(out.result["balances"][b.name] == 6);  // recipient created on first credit

  const auto empty = run("tx-verify", {{"accounts", json::object()}, {"txs", json::array()}});
  REQUIRE(empty.kind == Kind::succeeded);
  CHECK(empty.result["merkle_root"] == std::string(64, '0'));
}

TEST_CASE("tx-verify generator is deterministic and its planned faults are what gets rejected") {
  const json payload = {
      {"generate", {{"accounts", 20}, {"txs", 300}, {"seed", 7}, {"invalid_ratio", 0.2}}}};
  REQUIRE(validate("tx-verify", payload).empty());
  const auto first = run("tx-verify", payload);
  const auto second = run("tx-verify", payload);
  REQUIRE(first.kind == Kind::succeeded);
  CHECK(first.result == second.result);
  const json& r = first.result;
  CHECK(r["valid"].get<int>() + r["invalid"].get<int>() == 300);
  CHECK(r["invalid"] == r["generated"]["bad_planned"]);
  CHECK(r["reasons"] == r["generated"]["planned"]);
  CHECK(r["invalid"].get<int>() > 30);
  CHECK(r["invalid"].get<int>() < 100);
  CHECK(r["accounts"] == 20);
  uint64_t total = 0;
  for (const auto& [name, balance] : r["balances"].items()) total += balance.get<uint64_t>();
  CHECK(total == 20 * 1'000'000);  // transfers conserve money

  json other = payload;
  other["generate"]["seed"] = "another seed";
  CHECK(run("tx-verify", other).result["merkle_root"] != r["merkle_root"]);
  other["generate"]["invalid_ratio"] = 0;
  CHECK(run("tx-verify", other).result["invalid"] == 0);
}

TEST_CASE("tx-verify caps verdicts to the invalid ones on large batches") {
  const json payload = {
      {"generate", {{"accounts", 50}, {"txs", 1500}, {"seed", "big"}, {"invalid_ratio", 0.1}}}};
  const auto out = run("tx-verify", payload);
  REQUIRE(out.kind == Kind::succeeded);
  CHECK(out.result["verdicts"].size() == out.result["invalid"].get<size_t>());
  for (const auto& v : out.result["verdicts"]) CHECK(v["ok"] == false);
  CHECK(out.result["verdicts_truncated"] == false);
}

TEST_CASE("tx-verify validation") {
  const Wallet a = wallet(1), b = wallet(2);
  const json gen = {{"accounts", 5}, {"txs", 10}, {"seed", 1}};
  CHECK(validate("tx-verify", {{"generate", gen}}).empty());
  CHECK(contains(validate("tx-verify", {{"generate", gen}, {"txs", json::array()}}), "not both"));
  CHECK(contains(validate("tx-verify", json::object()), "either \"generate\""));
  json g = gen;
  g["accounts"] = 1;
  CHECK(validate("tx-verify", {{"generate", g}}) ==
        "payload.generate.accounts must be an integer 2..10000");
  g = gen;
  g["txs"] = 10'001;
  CHECK(validate("tx-verify", {{"generate", g}}) ==
        "payload.generate.txs must be an integer 0..10000");
  g = gen;
  g["invalid_ratio"] = 1.5;
  CHECK(validate("tx-verify", {{"generate", g}}) ==
        "payload.generate.invalid_ratio must be a number 0..1");
  g = gen;
  g.erase("seed");
  CHECK(contains(validate("tx-verify", {{"generate", g}}), "payload.generate.seed must be"));

  json bad_key = {{"accounts", {{"not-base64!", 1}}}, {"txs", json::array()}};
  CHECK(contains(validate("tx-verify", bad_key), "base64 Ed25519 public key"));
  json t = tx(a, b, 1, 0);
  t["signature"] = b64(a.pk.data(), a.pk.size());  // 32 bytes, not 64
  CHECK(validate("tx-verify", {{"accounts", json::object()}, {"txs", {t}}}) ==
        "payload.txs[0].signature must be a base64 Ed25519 signature (64 bytes)");
  t = tx(a, b, 1, 0);
  t["amount"] = -5;
  CHECK(contains(validate("tx-verify", {{"accounts", json::object()}, {"txs", {t}}}),
                 "payload.txs[0].amount must be an integer"));
  const json too_many = {{"accounts", json::object()}, {"txs", json(std::vector<int>(10'001, 0))}};
  CHECK(validate("tx-verify", too_many) ==
        "payload.txs must be an array of at most 10000 transactions");
}

// ---- enrich ----

namespace {

json record(const std::string& ip, const std::string& ua = "", const std::string& url = "/",
            json ts = "2024-05-01T12:34:56Z") {
  return {{"ts", std::move(ts)}, {"ip", ip},      {"ua", ua},
          {"url", url},          {"status", 200}, {"bytes", 100}};
}

json enrich_one(const json& rec) {
  const auto out = run("enrich", {{"records", {rec}}});
  REQUIRE(out.kind == Kind::succeeded);
  return out.result["records"][0];
}

}  // namespace

TEST_CASE("enrich classifies IPv4 and IPv6 addresses") {
  const std::vector<std::tuple<std::string, int, std::string>> cases = {
      {"127.0.0.1", 4, "loopback"},
      {"10.1.2.3", 4, "private"},
      {"172.16.5.4", 4, "private"},
      {"172.32.0.1", 4, "public"},
      {"192.168.1.1", 4, "private"},
      {"100.64.0.1", 4, "cgnat"},
      {"100.128.0.1", 4, "public"},
      {"169.254.1.1", 4, "link-local"},
      {"8.8.8.8", 4, "public"},
      {"224.0.0.1", 4, "multicast"},
      {"192.0.2.1", 4, "documentation"},
      {"203.0.113.9", 4, "documentation"},
      {"0.0.0.0", 4, "unspecified"},
      {"255.255.255.255", 4, "broadcast"},
      {"::1", 6, "loopback"},
      {"fe80::1", 6, "link-local"},
      {"fe80::1%eth0", 6, "link-local"},
      {"2001:db8::1", 6, "documentation"},
      {"fd00::1", 6, "private"},
      {"ff02::1", 6, "multicast"},
      {"2606:4700::1111", 6, "public"},
      {"::ffff:10.0.0.1", 6, "private"},
      {"[2a00:1450::1]", 6, "public"},
      {"::", 6, "unspecified"},
  };
  for (const auto& [ip, version, cls] : cases) {
    CAPTURE(ip);
    const json r = enrich_one(record(ip));
    REQUIRE_FALSE(r.contains("error"));
    CHECK(r["ip_version"] == version);
    CHECK(r["ip_class"] == cls);
  }
  CHECK(contains(enrich_one(record("999.1.1.1"))["error"], "ip must be"));
  CHECK(contains(enrich_one(record("example.com"))["error"], "ip must be"));
}

TEST_CASE("enrich classifies user agents") {
  const std::vector<std::tuple<std::string, std::string, std::string, std::string>> cases = {
      {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
       "Chrome/124.0.0.0 Safari/537.36",
       "chrome", "desktop", "windows"},
      {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
       "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
       "edge", "desktop", "windows"},
      {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
       "Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
       "safari", "mobile", "ios"},
      {"Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
       "Version/17.4 Mobile/15E148 Safari/604.1",
       "safari", "tablet", "ios"},
      {"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
       "Chrome/124.0.0.0 Mobile Safari/537.36",
       "chrome", "mobile", "android"},
      {"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", "firefox",
       "desktop", "linux"},
      {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
       "Version/17.4 Safari/605.1.15",
       "safari", "desktop", "macos"},
      {"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "googlebot",
       "bot", "other"},
      {"Mozilla/5.0 (compatible; SomeCrawler/1.0)", "other-bot", "bot", "other"},
      {"curl/8.4.0", "curl", "cli", "other"},
      {"python-requests/2.31.0", "python-requests", "cli", "other"},
      {"Go-http-client/1.1", "go-http-client", "cli", "other"},
      {"", "unknown", "unknown", "other"},
  };
  for (const auto& [ua, family, device, os] : cases) {
    CAPTURE(ua);
    const json r = enrich_one(record("8.8.8.8", ua));
    CHECK(r["ua_family"] == family);
    CHECK(r["device_class"] == device);
    CHECK(r["os"] == os);
  }
}

TEST_CASE("enrich splits URLs and classifies content") {
  json r =
      enrich_one(record("8.8.8.8", "", "https://Cdn.Example.com:8443/img/logo.PNG?a=1&b=2#top"));
  CHECK(r["url_scheme"] == "https");
  CHECK(r["url_host"] == "cdn.example.com");
  CHECK(r["url_port"] == 8443);
  CHECK(r["url_path"] == "/img/logo.PNG");
  CHECK(r["url_query_params"] == 2);
  CHECK(r["url_ext"] == "png");
  CHECK(r["content_class"] == "image");
  r = enrich_one(record("8.8.8.8", "", "/api/v1/users?id=3&&x="));
  CHECK(r["url_scheme"] == nullptr);
  CHECK(r["url_host"] == nullptr);
  CHECK(r["url_query_params"] == 2);
  CHECK(r["content_class"] == "api");
  CHECK(enrich_one(record("8.8.8.8", "", "/"))["content_class"] == "page");
  CHECK(enrich_one(record("8.8.8.8", "", "/v/seg-1.m4s"))["content_class"] == "video");
  CHECK(enrich_one(record("8.8.8.8", "", "/app.min.js"))["content_class"] == "script");
  CHECK(enrich_one(record("8.8.8.8", "", "http://[::1]:8080"))["url_host"] == "::1");
  CHECK(enrich_one(record("8.8.8.8", "", "/go?to=http://x/y.png"))["url_ext"] == nullptr);
  CHECK(contains(enrich_one(record("8.8.8.8", "", "example.com/x"))["error"], "url must be"));
  CHECK(contains(enrich_one(record("8.8.8.8", "", "http://:80/"))["error"], "empty host"));
  CHECK(contains(enrich_one(record("8.8.8.8", "", "http://h:99999/"))["error"], "port"));
}

TEST_CASE("enrich normalises timestamps into UTC hour buckets") {
  json r = enrich_one(record("8.8.8.8", "", "/", "2024-05-01T12:34:56.789+02:00"));
  CHECK(r["ts_utc"] == "2024-05-01T10:34:56Z");
  CHECK(r["hour_bucket"] == "2024-05-01T10:00:00Z");
  CHECK(enrich_one(record("8.8.8.8", "", "/", 1714566896))["ts_utc"] == "2024-05-01T12:34:56Z");
  CHECK(enrich_one(record("8.8.8.8", "", "/", 1714566896123))["ts_utc"] == "2024-05-01T12:34:56Z");
  CHECK(enrich_one(record("8.8.8.8", "", "/", 1714566896.9))["ts_utc"] == "2024-05-01T12:34:56Z");
  for (const json& bad : {json("2024-02-30T00:00:00Z"), json("2024-05-01 12:34"), json(-1),
                          json("2024-05-01T12:34:56"), json(true)}) {
    CAPTURE(bad);
    CHECK(contains(enrich_one(record("8.8.8.8", "", "/", bad))["error"], "ts must be"));
  }
}

TEST_CASE("enrich marks bad records and summarises the good ones") {
  json bad_status = record("8.8.8.8");
  bad_status["status"] = 99;
  json no_ts = record("8.8.8.8");
  no_ts.erase("ts");
  const json records = {record("8.8.8.8", "curl/8", "/a.png"),
                        record("10.0.0.1", "", "/a.png"),
                        record("::1", "", "/b.css"),
                        42,
                        bad_status,
                        no_ts,
                        record("8.8.4.4", "", "/a.png")};
  const auto out = run("enrich", {{"records", records}});
  REQUIRE(out.kind == Kind::succeeded);
  const json& recs = out.result["records"];
  REQUIRE(recs.size() == records.size());
  CHECK(recs[3] == json{{"error", "record must be an object"}});
  CHECK(recs[4]["error"] == "status must be an integer 100..599");
  CHECK(recs[5]["error"] == "ts is missing");
  CHECK(recs[0]["status_class"] == "2xx");
  const json& s = out.result["summary"];
  CHECK(s["records"] == 7);
  CHECK(s["valid"] == 4);
  CHECK(s["invalid"] == 3);
  CHECK(s["bytes_total"] == 400);
  CHECK(s["by_ip_class"] == json{{"loopback", 1}, {"private", 1}, {"public", 2}});
  CHECK(s["bytes_by_content_class"] == json{{"image", 300}, {"style", 100}});
  CHECK(s["by_device_class"]["cli"] == 1);
  CHECK(s["top_paths"][0] == json{{"path", "/a.png"}, {"hits", 3}, {"bytes", 300}});
  CHECK(s["top_paths"][1]["path"] == "/b.css");
  CHECK(s["time_range"]["first"] == "2024-05-01T12:34:56Z");

  const auto brief = run("enrich", {{"records", records}, {"summary_only", true}});
  CHECK_FALSE(brief.result.contains("records"));
  CHECK(brief.result["summary"] == s);
}

TEST_CASE("enrich validation") {
  CHECK(validate("enrich", {{"records", json::array()}}).empty());
  const std::string reason = "payload.records must be an array of at most 10000 records";
  CHECK(validate("enrich", json::object()) == reason);
  CHECK(validate("enrich", {{"records", 3}}) == reason);
  CHECK(validate("enrich", {{"records", json(std::vector<int>(10'001, 0))}}) == reason);
  CHECK(validate("enrich", {{"records", json::array()}, {"summary_only", 1}}) ==
        "payload.summary_only must be a boolean");
  CHECK(contains(validate("enrich", {{"records", json::array()}, {"x", 1}}), "unknown field"));
}
