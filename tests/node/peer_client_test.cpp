// The peer transport: request signing, and PeerClient against a fake peer over loopback HTTP.
#include <doctest/doctest.h>

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "node/clock.h"
#include "node/peer_auth.h"
#include "node/peer_client.h"

namespace meshwork {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr auto kWaitMax = 10s;  // generous: nothing here should take more than a second

// Counts events; wait_for(n) blocks until n have happened or kWaitMax passes.
class Counter {
 public:
  void add() {  // notifies under the lock: a waiter may destroy the Counter once it wakes
    std::lock_guard lk(mu_);
    ++n_;
    cv_.notify_all();
  }
  bool wait_for(size_t n) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, kWaitMax, [&] { return n_ >= n; });
  }
  size_t count() {
    std::lock_guard lk(mu_);
    return n_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t n_ = 0;
};

// Handlers pass() through it while it is open; while closed they wait (at most kWaitMax).
class Gate {
 public:
  void set_open(bool open) {
    std::lock_guard lk(mu_);
    open_ = open;
    cv_.notify_all();
  }
  void pass() {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, kWaitMax, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
};

std::string job_id(size_t k) {
  return blake2b_hex("job " + std::to_string(k));
}
// A stand-in for an encoded record: the binary form's version byte, then JSON the fake peer reads.
std::string record_text(size_t k) {
  return "\x02" + json{{"id", job_id(k)}, {"n", k}}.dump();
}

// What the fake peer answers for record k: refusals, states and flags vary with k.
json expected_answer(size_t k) {
  if (k % 7 == 0) return {{"ok", false}, {"error", "refused " + std::to_string(k)}};
  return {{"ok", true},   {"existed", k % 2 == 1}, {"state", k % 3 ? "running" : "retry_wait"},
          {"attempt", k}, {"node", "n2"},          {"cancel", k % 5 == 0}};
}

void check_ack(const ReplicateAck& ack, size_t k) {
  json want = expected_answer(k);
  if (!want["ok"].get<bool>()) {
    CHECK(ack.status.code() == Code::io_error);
    CHECK(ack.status.message().find("refused " + std::to_string(k)) != std::string::npos);
    return;
  }
  REQUIRE(ack.status.is_ok());
  CHECK(ack.existed == want["existed"].get<bool>());
  CHECK(state_name(ack.state) == want["state"].get<std::string>());
  CHECK(ack.attempt == k);
  CHECK(ack.node == "n2");
  CHECK(ack.cancel_requested == want["cancel"].get<bool>());
}

// A fake peer on 127.0.0.1 serving the replicate and fetch contract, accepting only requests
// signed by `sender` as "n1". `mode` makes it answer wrongly in various ways.
struct FakePeer {
  enum class Mode { normal, not_json, wrong_count, wrong_types, bad_item, wrong_id, status_503 };

  explicit FakePeer(const Identity& sender) : sender_key(sender.public_key()) {
    server.set_tcp_nodelay(true);
    server.set_keep_alive_max_count(10'000);
    server.Post(kReplicatePath, [this](const auto& req, auto& res) { replicate(req, res); });
    server.Post(kFetchPath, [this](const auto& req, auto& res) { fetch(req, res); });
    server.Post("/internal/v1/echo", [this](const auto& req, auto& res) {
      if (authenticated(req, res)) res.set_content(req.body, "application/json");
    });
    port = server.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    thread = std::thread([this] { server.listen_after_bind(); });
  }
  ~FakePeer() {
    gate.set_open(true);
    server.stop();
    thread.join();
  }
  [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port); }

  bool authenticated(const httplib::Request& req, httplib::Response& res) {
    auto key_of = [&](std::string_view name) -> std::optional<std::string> {
      if (name == "n1") return sender_key;
      return std::nullopt;
    };
    auto who = verify_peer_request(req, key_of, wall_ms());
    if (who.is_ok()) return true;
    res.status = 401;
    res.set_content(who.status().message(), "text/plain");
    return false;
  }

  // The request's `field` array, counted; nullopt (and a 400) when the body is not that shape.
  std::optional<json> items_of(const httplib::Request& req, httplib::Response& res,
                               const char* field) {
    if (!authenticated(req, res)) return std::nullopt;
    json body = json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body[field].is_array()) {
      res.status = 400;
      return std::nullopt;
    }
    requests++;
    items += body[field].size();
    batch_max = std::max<size_t>(batch_max, body[field].size());
    arrived.add();
    gate.pass();
    if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms.load()));
    return body[field];
  }

  // Answers per the contract, or breaks it as `mode` says.
  void answer(httplib::Response& res, const char* field, json list) {
    switch (mode.load()) {
      case Mode::normal:
        break;
      case Mode::not_json:
        return res.set_content("{\"results\": [", "application/json");
      case Mode::wrong_count:
        list.push_back(nullptr);
        break;
      case Mode::wrong_types:
        for (auto& e : list) e = "yes";
        break;
      case Mode::bad_item:
        for (auto& e : list) e = {{"ok", true}, {"state", "sideways"}, {"attempt", -1}};
        break;
      case Mode::wrong_id:
        for (auto& e : list) e = {{"id", job_id(999'999)}};
        break;
      case Mode::status_503:
        res.status = 503;
        return res.set_content("not now", "text/plain");
    }
    res.set_content(json{{field, std::move(list)}}.dump(), "application/json");
  }

  // The records of a binary replicate body, counted like items_of's.
  std::optional<json> records_of(const httplib::Request& req, httplib::Response& res) {
    if (!authenticated(req, res)) return std::nullopt;
    auto views = parse_replicate_body(req.body, 100'000);
    if (!views.is_ok() || req.get_header_value("Content-Type") != "application/octet-stream") {
      res.status = 400;
      return std::nullopt;
    }
    json records = json::array();
    for (std::string_view v : views.value()) {
      json r = v.empty() || v.front() != '\x02' ? json() : json::parse(v.substr(1), nullptr, false);
      if (!r.is_object()) {
        res.status = 400;
        return std::nullopt;
      }
      records.push_back(std::move(r));
    }
    requests++;
    items += records.size();
    batch_max = std::max<size_t>(batch_max, records.size());
    arrived.add();
    gate.pass();
    if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms.load()));
    return records;
  }

  void replicate(const httplib::Request& req, httplib::Response& res) {
    auto records = records_of(req, res);
    if (!records) return;
    json results = json::array();
    for (const auto& r : *records) results.push_back(expected_answer(r["n"].get<size_t>()));
    answer(res, "results", std::move(results));
  }

  void fetch(const httplib::Request& req, httplib::Response& res) {
    auto ids = items_of(req, res, "ids");
    if (!ids) return;
    json records = json::array();
    for (const auto& id : *ids) {
      bool have = id == job_id(1) || id == job_id(3);
      records.push_back(have ? json{{"id", id}, {"stored", true}} : json(nullptr));
    }
    answer(res, "records", std::move(records));
  }

  std::string sender_key;
  httplib::Server server;
  int port = 0;
  std::thread thread;
  Gate gate;
  Counter arrived;  // requests that reached a handler
  std::atomic<size_t> requests{0}, items{0}, batch_max{0};
  std::atomic<int> delay_ms{0};
  std::atomic<Mode> mode{Mode::normal};
};

// A loopback port with nothing listening on it.
int closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A PeerClient signing as "n1" with `key`, knowing "n2" at `address`.
std::unique_ptr<PeerClient> client_for(const Identity& key, const std::string& address,
                                       PeerOptions o = {}) {
  auto c = std::make_unique<PeerClient>(key, "n1", o);
  c->set_peers({{"n2", address}});
  return c;
}

// Replicates records first..last-1 to "n2", collecting every ack by record number.
struct Acks {
  void send(PeerClient& c, size_t first, size_t last) {
    for (size_t k = first; k < last; ++k)
      c.replicate("n2", record_text(k), [this, k](ReplicateAck a) {
        {
          std::lock_guard lk(mu);
          calls[k]++;
          acks[k] = std::move(a);
        }
        done.add();
      });
  }
  std::mutex mu;
  std::map<size_t, int> calls;
  std::map<size_t, ReplicateAck> acks;
  Counter done;
};

httplib::Request signed_request(const Identity& key, const std::string& node, uint64_t time_ms,
                                const std::string& body) {
  httplib::Request req;
  req.method = "POST";
  req.path = kReplicatePath;
  req.body = body;
  req.headers = peer_auth_headers(key, node, req.method, req.path, body, time_ms);
  return req;
}

}  // namespace

TEST_CASE("peer auth accepts a good signature and refuses everything else") {
  Identity key = Identity::generate(), other = Identity::generate();
  auto key_of = [&](std::string_view name) -> std::optional<std::string> {
    if (name == "n1") return key.public_key();
    return std::nullopt;
  };
  const uint64_t now = 1'700'000'000'000;
  auto verdict = [&](const httplib::Request& req) { return verify_peer_request(req, key_of, now); };

  CHECK(peer_auth_message("POST", "/p", 5, "b") ==
        "meshwork-peer-v1\nPOST\n/p\n5\n" + blake2b_hex("b"));
  auto good = verdict(signed_request(key, "n1", now, R"({"records":[]})"));
  REQUIRE(good.is_ok());
  CHECK(good.value() == "n1");
  CHECK(verdict(signed_request(key, "n1", now - kPeerClockSkewMsMax, "{}")).is_ok());

  std::vector<std::pair<std::string, httplib::Request>> bad;
  auto req = signed_request(key, "n1", now, "{}");
  req.body = "{ }";
  bad.emplace_back("tampered body", req);
  req = signed_request(key, "n1", now, "{}");
  req.path = kFetchPath;
  bad.emplace_back("other path", req);
  bad.emplace_back("wrong key", signed_request(other, "n1", now, "{}"));
  bad.emplace_back("unknown node", signed_request(key, "n9", now, "{}"));
  bad.emplace_back("stale", signed_request(key, "n1", now - kPeerClockSkewMsMax - 1, "{}"));
  bad.emplace_back("future", signed_request(key, "n1", now + kPeerClockSkewMsMax + 1, "{}"));
  req = signed_request(key, "n1", now, "{}");
  req.headers.erase(kPeerSignatureHeader);
  bad.emplace_back("no signature", req);
  req = signed_request(key, "n1", now, "{}");
  req.headers.emplace(kPeerNodeHeader, "n1");
  bad.emplace_back("repeated node header", req);
  req = signed_request(key, "n1", now, "{}");
  req.headers.find(kPeerTimeHeader)->second = std::string(kPeerTimeHeaderBytesMax + 1, '1');
  bad.emplace_back("oversized time", req);
  req = signed_request(key, "n1", now, "{}");
  req.headers.find(kPeerTimeHeader)->second = "+" + std::to_string(now);
  bad.emplace_back("signed time", req);
  for (const auto& [what, r] : bad) {
    CAPTURE(what);
    auto v = verdict(r);
    REQUIRE_FALSE(v.is_ok());
    CHECK(v.status().code() == Code::unauthorized);
  }
  CHECK(verdict(bad[3].second).status().message().find("unknown node 'n9'") != std::string::npos);
}

TEST_CASE("replicate from several threads runs every callback once with its own answer") {
  Identity key = Identity::generate();
  FakePeer fake(key);
  auto client = client_for(key, fake.address());
  Acks acks;
  constexpr size_t kThreads = 4, kPerThread = 300;
  std::vector<std::thread> senders;
  for (size_t t = 0; t < kThreads; ++t)
    senders.emplace_back([&, t] { acks.send(*client, t * kPerThread, (t + 1) * kPerThread); });
  for (auto& t : senders) t.join();
  REQUIRE(acks.done.wait_for(kThreads * kPerThread));
  std::lock_guard lk(acks.mu);
  REQUIRE(acks.calls.size() == kThreads * kPerThread);
  for (const auto& [k, n] : acks.calls) {
    CAPTURE(k);
    CHECK(n == 1);
    check_ack(acks.acks[k], k);
  }
  CHECK(fake.items == kThreads * kPerThread);
  json stats = client->stats_json();
  CHECK(stats["n2"]["items"] == kThreads * kPerThread);
  CHECK(stats["n2"]["requests"] == fake.requests.load());
  CHECK(stats["n2"]["items_failed"] > 0);  // the refused ones, every 7th
}

TEST_CASE("replication coalesces items while a request is in flight") {
  Identity key = Identity::generate();
  FakePeer fake(key);
  fake.delay_ms = 50;
  auto client = client_for(key, fake.address());
  constexpr size_t kItems = 500;
  Acks acks;
  for (size_t k = 1; k <= kItems; ++k) {  // a trickle over ≥ 100 ms: most arrive mid-request
    acks.send(*client, k, k + 1);
    std::this_thread::sleep_for(200us);
  }
  REQUIRE(acks.done.wait_for(kItems));
  CHECK(fake.requests.load() < kItems / 4);
  CHECK(fake.batch_max.load() > 1);
  std::lock_guard lk(acks.mu);
  for (size_t k = 1; k <= kItems; ++k) check_ack(acks.acks[k], k);
}

TEST_CASE("fetch answers records the peer holds and nullopt for the others") {
  Identity key = Identity::generate();
  FakePeer fake(key);
  auto client = client_for(key, fake.address());
  std::mutex mu;
  std::map<size_t, Result<std::optional<std::string>>> got;
  Counter done;
  for (size_t k = 1; k <= 4; ++k)
    client->fetch("n2", job_id(k), [&, k](Result<std::optional<std::string>> r) {
      {
        std::lock_guard lk(mu);
        got.emplace(k, std::move(r));
      }
      done.add();
    });
  REQUIRE(done.wait_for(4));
  std::lock_guard lk(mu);
  for (size_t k = 1; k <= 4; ++k) {
    CAPTURE(k);
    REQUIRE(got.at(k).is_ok());
    const auto& text = got.at(k).value();
    REQUIRE(text.has_value() == (k % 2 == 1));
    if (text) CHECK(json::parse(*text)["id"] == job_id(k));
  }
}

TEST_CASE("an unreachable peer fails every item with unavailable") {
  Identity key = Identity::generate();
  auto client = client_for(key, "127.0.0.1:" + std::to_string(closed_port()));
  Acks acks;
  acks.send(*client, 1, 51);
  Counter fetched;
  Status fetch_status;
  client->fetch("n2", job_id(1), [&](Result<std::optional<std::string>> r) {
    fetch_status = r.status();
    fetched.add();
  });
  REQUIRE(acks.done.wait_for(50));
  REQUIRE(fetched.wait_for(1));
  CHECK(fetch_status.code() == Code::unavailable);
  std::lock_guard lk(acks.mu);
  for (const auto& [k, ack] : acks.acks) CHECK(ack.status.code() == Code::unavailable);
  CHECK(client->stats_json()["n2"]["requests_failed"] > 0);
}

TEST_CASE("malformed or failed answers fail their items without crashing") {
  using Mode = FakePeer::Mode;
  Identity key = Identity::generate();
  FakePeer fake(key);
  auto client = client_for(key, fake.address());
  for (Mode mode : {Mode::not_json, Mode::wrong_count, Mode::wrong_types, Mode::bad_item,
                    Mode::wrong_id, Mode::status_503}) {
    CAPTURE(int(mode));
    fake.mode = mode;
    Acks acks;
    acks.send(*client, 1, 21);
    Counter fetched;
    std::mutex fetch_mu;
    std::vector<Status> fetch_status;
    for (size_t k = 1; k <= 4; ++k)
      client->fetch("n2", job_id(k), [&](Result<std::optional<std::string>> r) {
        {
          std::lock_guard lk(fetch_mu);
          fetch_status.push_back(r.status());
        }
        fetched.add();
      });
    REQUIRE(acks.done.wait_for(20));
    REQUIRE(fetched.wait_for(4));
    const Code want = mode == Mode::status_503 ? Code::unavailable : Code::io_error;
    std::lock_guard lk(acks.mu), fetch_lk(fetch_mu);
    for (const auto& [k, ack] : acks.acks) CHECK(ack.status.code() == want);
    for (const auto& s : fetch_status) CHECK(s.code() == want);
  }
}

TEST_CASE("a peer that refuses our signature fails the items") {
  Identity key = Identity::generate(), stranger = Identity::generate();
  FakePeer fake(key);
  auto client = client_for(stranger, fake.address());
  Acks acks;
  acks.send(*client, 1, 3);
  REQUIRE(acks.done.wait_for(2));
  std::lock_guard lk(acks.mu);
  CHECK(acks.acks[1].status.code() == Code::io_error);
  CHECK(acks.acks[1].status.message().find("401") != std::string::npos);
}

TEST_CASE("removing a peer fails its queued items; the request in flight completes") {
  Identity key = Identity::generate();
  FakePeer fake(key);
  fake.gate.set_open(false);
  PeerOptions o;
  o.lanes = 1;
  auto client = client_for(key, fake.address(), o);
  Acks acks;
  acks.send(*client, 1, 2);
  REQUIRE(fake.arrived.wait_for(1));  // record 1 is in flight, held at the gate
  acks.send(*client, 2, 12);
  client->set_peers({});
  CHECK(acks.done.count() == 10);  // failed inline by set_peers
  fake.gate.set_open(true);
  REQUIRE(acks.done.wait_for(11));
  std::lock_guard lk(acks.mu);
  check_ack(acks.acks[1], 1);
  for (size_t k = 2; k < 12; ++k) CHECK(acks.acks[k].status.code() == Code::unavailable);
  CHECK(client->stats_json().empty());
}

TEST_CASE("a changed address takes effect for the next request") {
  Identity key = Identity::generate();
  FakePeer first(key), second(key);
  auto client = client_for(key, first.address());
  Acks acks;
  acks.send(*client, 1, 2);
  REQUIRE(acks.done.wait_for(1));
  client->set_peers({{"n2", second.address()}});
  acks.send(*client, 2, 3);
  REQUIRE(acks.done.wait_for(2));
  CHECK(first.items == 1);
  CHECK(second.items == 1);
}

TEST_CASE("stop fails queued items and interrupts the request in flight") {
  Identity key = Identity::generate();
  FakePeer fake(key);
  fake.gate.set_open(false);
  PeerOptions o;
  o.lanes = 1;
  auto client = client_for(key, fake.address(), o);
  Acks acks;
  acks.send(*client, 1, 2);
  REQUIRE(fake.arrived.wait_for(1));
  acks.send(*client, 2, 12);
  const uint64_t start_ms = mono_ms();
  client->stop();
  CHECK(mono_ms() - start_ms < 2'500);  // not the 5 s read timeout
  CHECK(acks.done.count() == 11);
  client->stop();              // idempotent
  acks.send(*client, 12, 13);  // fails inline
  std::lock_guard lk(acks.mu);
  REQUIRE(acks.acks.size() == 12);
  for (const auto& [k, ack] : acks.acks) CHECK(ack.status.code() == Code::unavailable);
}

TEST_CASE("a full queue fails fast with overloaded; bad input fails inline") {
  Identity key = Identity::generate();
  FakePeer fake(key);
  fake.gate.set_open(false);
  PeerOptions o;
  o.lanes = 1;
  o.queue_items_max = 5;
  auto client = client_for(key, fake.address(), o);
  Acks acks;
  acks.send(*client, 1, 2);
  REQUIRE(fake.arrived.wait_for(1));
  acks.send(*client, 2, 8);  // 5 fit, the 6th (record 7) does not
  CHECK(acks.done.count() == 1);
  fake.gate.set_open(true);
  REQUIRE(acks.done.wait_for(7));
  std::lock_guard lk(acks.mu);
  CHECK(acks.acks[7].status.code() == Code::overloaded);
  for (size_t k = 1; k < 7; ++k) check_ack(acks.acks[k], k);

  Status s;
  client->replicate("n2", "not json", [&](ReplicateAck a) { s = a.status; });
  CHECK(s.code() == Code::invalid);
  client->replicate("n7", record_text(1), [&](ReplicateAck a) { s = a.status; });
  CHECK(s.code() == Code::unavailable);
  client->fetch("n2", "../etc", [&](Result<std::optional<std::string>> r) { s = r.status(); });
  CHECK(s.code() == Code::invalid);
}

TEST_CASE("the replication lag is the age of the oldest record still queued") {
  Identity key = Identity::generate();
  FakePeer fake(key);
  fake.gate.set_open(false);
  PeerOptions o;
  o.lanes = 1;
  auto client = client_for(key, fake.address(), o);
  CHECK(client->replicate_lag_ms("n2") == 0);  // nothing queued
  CHECK(client->replicate_lag_ms("n7") == 0);  // unknown peer
  Acks acks;
  acks.send(*client, 1, 2);
  REQUIRE(fake.arrived.wait_for(1));  // record 1 is in flight, held at the gate
  acks.send(*client, 2, 3);           // record 2 waits in the queue
  std::this_thread::sleep_for(120ms);
  CHECK(client->replicate_lag_ms("n2") >= 100);
  CHECK(client->stats_json()["n2"]["replicate_lag_ms"].get<uint64_t>() >= 100);
  fake.gate.set_open(true);
  REQUIRE(acks.done.wait_for(2));
  CHECK(client->replicate_lag_ms("n2") == 0);
}

TEST_CASE("callbacks may queue more work") {
  Identity key = Identity::generate();
  FakePeer fake(key);
  auto client = client_for(key, fake.address());
  constexpr size_t kChain = 40;
  Counter done;
  std::function<void(size_t)> step = [&](size_t k) {
    client->replicate("n2", record_text(k), [&, k](ReplicateAck a) {
      CHECK(a.status.is_ok() == (k % 7 != 0));
      done.add();
      if (k < kChain) step(k + 1);
    });
  };
  step(1);
  REQUIRE(done.wait_for(kChain));
  CHECK(fake.requests == kChain);
}

TEST_CASE("call posts a signed body and reports other answers as errors") {
  Identity key = Identity::generate();
  FakePeer fake(key);
  auto client = client_for(key, fake.address());
  for (int i = 0; i < 3; ++i) {  // reuses its pooled connection
    auto r = client->call("n2", "/internal/v1/echo", R"({"i":)" + std::to_string(i) + "}", 2'000);
    REQUIRE(r.is_ok());
    CHECK(json::parse(r.value())["i"] == i);
  }
  auto missing = client->call("n2", "/internal/v1/nothing", "{}", 2'000);
  REQUIRE_FALSE(missing.is_ok());
  CHECK(missing.status().code() == Code::io_error);
  CHECK(missing.status().message().find("404") != std::string::npos);
  CHECK(client->call("n9", "/internal/v1/echo", "{}", 2'000).status().code() == Code::unavailable);
  CHECK(client->call("n2", "/internal/v1/echo?x=1", "{}", 2'000).status().code() == Code::invalid);
}

TEST_CASE("the binary replicate body round-trips and refuses hostile bytes") {
  const std::vector<std::string> records = {
      "\x02"
      "abc",
      "\x02", std::string(300, '\x02')};
  const std::string body =
      replicate_body(std::vector<std::string_view>(records.begin(), records.end()));
  auto back = parse_replicate_body(body, 10);
  REQUIRE(back.is_ok());
  REQUIRE(back.value().size() == records.size());
  for (size_t i = 0; i < records.size(); ++i) CHECK(back.value()[i] == records[i]);
  CHECK(parse_replicate_body(body, 2).status().code() == Code::too_large);
  CHECK(parse_replicate_body("", 10).status().code() == Code::malformed);
  CHECK(parse_replicate_body(R"({"records":[]})", 10).status().code() == Code::malformed);
  CHECK(!parse_replicate_body(body + "x", 10).is_ok());
  for (size_t n = 0; n < body.size(); ++n)
    CHECK(!parse_replicate_body(body.substr(0, n), 10).is_ok());
  std::mt19937_64 rng(5);
  for (int i = 0; i < 5'000; ++i) {
    std::string m = body;
    m[rng() % m.size()] = char(rng());
    auto r = parse_replicate_body(m.substr(0, rng() % (m.size() + 1)), 100'000);
    if (r.is_ok())
      for (std::string_view v : r.value()) CHECK(v.size() <= m.size());
  }
}

}  // namespace meshwork
