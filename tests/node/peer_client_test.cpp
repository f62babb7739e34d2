// The peer transport: request signing, and PeerClient against a fake peer over loopback HTTP.
#include <doctest/doctest.h>

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <set>
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
  void add(
      size_t k = 1) {  // notifies under the lock: a waiter may destroy the Counter once it wakes
    std::lock_guard lk(mu_);
    n_ += k;
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

// A fake peer on 127.0.0.1 serving POST /internal/v1/msg (and an echo for call()), accepting only
// requests signed by `sender` as "n1". It records every message it takes.
struct FakePeer {
  // With `self`, it also takes requests MAC'd for "n2" under the pair key of `self` and `sender`.
  explicit FakePeer(const Identity& sender, const Identity* self = nullptr)
      : sender_key(sender.public_key()),
        macs(self ? std::make_unique<PeerMacKeys>(*self) : nullptr) {
    server.set_tcp_nodelay(true);
    server.set_keep_alive_max_count(10'000);
    server.Post(kMessagePath, [this](const auto& req, auto& res) { messages(req, res); });
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
    auto who = verify_peer_request(req, key_of, wall_ms(), macs.get(), "n2");
    if (who.is_ok()) {
      (req.has_header(kPeerMacHeader) ? maced : signed_)++;
      return true;
    }
    res.status = 401;
    res.set_content(who.status().message(), "text/plain");
    return false;
  }

  void messages(const httplib::Request& req, httplib::Response& res) {
    if (!authenticated(req, res)) return;
    auto items = parse_message_body(req.body, kMessageBodyItemsMax);
    if (!items.is_ok() || req.get_header_value("Content-Type") != "application/octet-stream") {
      res.status = 400;
      return;
    }
    arrived.add();
    gate.pass();
    if (refuse_with != 0) {
      res.status = refuse_with;
      return res.set_content("not now", "text/plain");
    }
    {
      std::lock_guard lk(mu);
      requests++;
      batch_max = std::max(batch_max, items.value().size());
      for (std::string_view m : items.value()) got[std::string(m)]++;
    }
    taken.add(items.value().size());
    res.status = 204;
  }

  std::string sender_key;
  std::unique_ptr<PeerMacKeys> macs;
  std::atomic<size_t> maced{0}, signed_{0};  // requests taken, by proof
  httplib::Server server;
  int port = 0;
  std::thread thread;
  Gate gate;
  Counter arrived;  // requests that reached the handler
  Counter taken;    // messages taken
  std::atomic<int> refuse_with{0};
  std::mutex mu;
  std::map<std::string, int> got;  // message -> times taken
  size_t requests = 0, batch_max = 0;
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

std::string message(size_t k) {
  return "message " + std::to_string(k);
}

// Sends messages first..last-1 to "n2", recording every failure by message number.
struct Failures {
  void send(PeerClient& c, size_t first, size_t last) {
    for (size_t k = first; k < last; ++k)
      c.send("n2", message(k), [this, k](const Status& s) {
        {
          std::lock_guard lk(mu);
          calls[k]++;
          codes[k] = s.code();
        }
        done.add();
      });
  }
  std::mutex mu;
  std::map<size_t, int> calls;
  std::map<size_t, Code> codes;
  Counter done;
};

httplib::Request signed_request(const Identity& key, const std::string& node, uint64_t time_ms,
                                const std::string& body) {
  httplib::Request req;
  req.method = "POST";
  req.path = kMessagePath;
  req.body = body;
  req.headers = peer_auth_headers(key, node, req.method, req.path, body, time_ms);
  return req;
}

size_t lanes_of(const PeerClient& c) {
  auto stats = c.stats_json();
  return stats.contains("n2") ? stats["n2"]["lanes"].get<size_t>() : 0;
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
  req.path = "/internal/v1/list";
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

TEST_CASE("peer auth accepts a MAC under the pair key and refuses everything else") {
  Identity key = Identity::generate(), self = Identity::generate(), other = Identity::generate();
  PeerMacKeys sender_macs(key), self_macs(self), other_macs(other);
  auto key_of = [&](std::string_view name) -> std::optional<std::string> {
    if (name == "n1") return key.public_key();
    if (name == "n3") return other.public_key();
    return std::nullopt;
  };
  const uint64_t now = 1'700'000'000'000;
  auto verdict = [&](const httplib::Request& req, const PeerMacKeys* macs = nullptr) {
    return verify_peer_request(req, key_of, now, macs ? macs : &self_macs, "n2");
  };
  // Both ends derive the same key; a third party's key with either end differs.
  auto pair = sender_macs.key_for(self.public_key());
  REQUIRE(pair);
  CHECK(pair->size() == kHashBytes);
  CHECK(self_macs.key_for(key.public_key()) == pair);
  CHECK(other_macs.key_for(self.public_key()) != pair);
  CHECK(other_macs.key_for(key.public_key()) != pair);
  CHECK_FALSE(sender_macs.key_for(std::string(kPublicKeyBytes, '\0')));  // low order
  CHECK_FALSE(sender_macs.key_for("short"));

  auto maced = [&](const std::string& pair_key, const std::string& from, const std::string& to,
                   uint64_t t, const std::string& body) {
    httplib::Request req;
    req.method = "POST";
    req.path = kMessagePath;
    req.body = body;
    req.headers = peer_mac_headers(pair_key, from, to, req.method, req.path, body, t);
    return req;
  };
  auto good = verdict(maced(*pair, "n1", "n2", now, "abc"));
  REQUIRE(good.is_ok());
  CHECK(good.value() == "n1");

  std::vector<std::pair<std::string, httplib::Request>> bad;
  auto req = maced(*pair, "n1", "n2", now, "abc");
  req.body = "abd";
  bad.emplace_back("tampered body", req);
  bad.emplace_back("meant for another node", maced(*pair, "n1", "n4", now, "abc"));
  bad.emplace_back("claims another sender", maced(*pair, "n3", "n2", now, "abc"));
  bad.emplace_back("key of another pair",
                   maced(*other_macs.key_for(self.public_key()), "n1", "n2", now, "abc"));
  bad.emplace_back("stale", maced(*pair, "n1", "n2", now - kPeerClockSkewMsMax - 1, "abc"));
  bad.emplace_back("unknown node", maced(*pair, "n9", "n2", now, "abc"));
  req = maced(*pair, "n1", "n2", now, "abc");
  req.headers.emplace(kPeerSignatureHeader, to_base64(key.sign("x")));
  bad.emplace_back("both proofs", req);
  req = maced(*pair, "n1", "n2", now, "abc");
  req.headers.find(kPeerMacHeader)->second = to_base64("short");
  bad.emplace_back("short MAC", req);
  req = maced(*pair, "n1", "n2", now, "abc");
  req.headers.find(kPeerMacHeader)->second += "A";
  bad.emplace_back("oversized MAC header", req);
  for (const auto& [what, r] : bad) {
    CAPTURE(what);
    auto v = verdict(r);
    REQUIRE_FALSE(v.is_ok());
    CHECK(v.status().code() == Code::unauthorized);
  }
  // An endpoint without pair keys takes only signatures.
  auto no_macs = verify_peer_request(maced(*pair, "n1", "n2", now, "abc"), key_of, now);
  CHECK(no_macs.status().code() == Code::unauthorized);
}

TEST_CASE("a client with pair keys MACs its requests once it knows the peer's key") {
  Identity key = Identity::generate(), peer = Identity::generate();
  FakePeer fake(key, &peer);
  PeerMacKeys macs(key);
  std::atomic<bool> known{false};
  Failures f;  // outlives the client: stop() may fail messages
  PeerClient client(key, "n1", PeerOptions{}, &macs,
                    [&](std::string_view name) -> std::optional<std::string> {
                      if (name == "n2" && known) return peer.public_key();
                      return std::nullopt;
                    });
  client.set_peers({{"n2", fake.address()}});
  f.send(client, 0, 5);
  REQUIRE(fake.taken.wait_for(5));
  CHECK(fake.maced == 0);  // key unknown: signed
  CHECK(fake.signed_ >= 1);
  known = true;
  f.send(client, 5, 10);
  REQUIRE(fake.taken.wait_for(10));
  CHECK(fake.maced >= 1);
  CHECK(f.done.count() == 0);
  client.stop();
}

TEST_CASE("messages from several threads arrive once each, coalesced while a request is out") {
  Identity key = Identity::generate();
  FakePeer fake(key);
  Failures f;  // outlives the client: stop() may fail messages
  auto client = client_for(key, fake.address());
  fake.gate.set_open(false);
  f.send(*client, 0, 1);
  REQUIRE(fake.arrived.wait_for(1));  // a request is in flight (both lanes may be)
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 4; ++t)
    threads.emplace_back([&, t] { f.send(*client, 1 + t * 100, 1 + (t + 1) * 100); });
  for (auto& t : threads) t.join();
  fake.gate.set_open(true);
  REQUIRE(fake.taken.wait_for(401));
  std::lock_guard lk(fake.mu);
  CHECK(fake.got.size() == 401);
  for (const auto& [m, n] : fake.got) CHECK(n == 1);
  CHECK(fake.requests < 401);  // coalesced
  CHECK(fake.batch_max > 1);
  CHECK(f.done.count() == 0);  // nothing failed
}

TEST_CASE("an unreachable or refusing peer fails each of its messages once") {
  Identity key = Identity::generate();
  SUBCASE("nothing listens") {
    Failures f;  // outlives the client: stop() may fail messages
    auto client = client_for(key, "127.0.0.1:" + std::to_string(closed_port()));
    f.send(*client, 0, 50);
    REQUIRE(f.done.wait_for(50));
    std::lock_guard lk(f.mu);
    for (size_t k = 0; k < 50; ++k) {
      CHECK(f.calls[k] == 1);
      CHECK(f.codes[k] == Code::unavailable);
    }
  }
  SUBCASE("the peer answers 503") {
    FakePeer fake(key);
    fake.refuse_with = 503;
    Failures f;  // outlives the client: stop() may fail messages
    auto client = client_for(key, fake.address());
    f.send(*client, 0, 20);
    REQUIRE(f.done.wait_for(20));
    std::lock_guard lk(f.mu);
    for (size_t k = 0; k < 20; ++k) CHECK(f.codes[k] == Code::unavailable);
  }
  SUBCASE("the peer refuses our signature") {
    Identity stranger = Identity::generate();
    FakePeer fake(stranger);  // expects n1 to sign with another key
    Failures f;               // outlives the client: stop() may fail messages
    auto client = client_for(key, fake.address());
    f.send(*client, 0, 5);
    REQUIRE(f.done.wait_for(5));
    std::lock_guard lk(f.mu);
    for (size_t k = 0; k < 5; ++k) CHECK(f.codes[k] == Code::io_error);
  }
  SUBCASE("an unknown peer fails inline") {
    auto client = client_for(key, "127.0.0.1:1");
    Code code = Code::ok;
    client->send("n9", "x", [&](const Status& s) { code = s.code(); });
    CHECK(code == Code::unavailable);
  }
}

TEST_CASE("removing a peer fails its queued messages; stop fails the rest and joins") {
  Identity key = Identity::generate();
  FakePeer fake(key);
  PeerOptions o;
  o.lanes = 1;
  o.batch_items_max = 1;
  Failures f, g;  // outlive the client: stop() may fail messages
  auto client = client_for(key, fake.address(), o);
  fake.gate.set_open(false);
  f.send(*client, 0, 10);
  REQUIRE(fake.arrived.wait_for(1));  // message 0 is in flight, 1..9 queued
  client->set_peers({});
  REQUIRE(f.done.wait_for(9));
  {
    std::lock_guard lk(f.mu);
    CHECK(f.calls.count(0) == 0);
    for (size_t k = 1; k < 10; ++k) CHECK(f.codes[k] == Code::unavailable);
  }
  fake.gate.set_open(true);
  REQUIRE(fake.taken.wait_for(1));  // the request in flight completed

  client->set_peers({{"n2", fake.address()}});
  fake.gate.set_open(false);
  g.send(*client, 100, 105);
  REQUIRE(fake.arrived.wait_for(2));
  client->stop();  // interrupts the request in flight: all five fail
  REQUIRE(g.done.wait_for(5));
  std::lock_guard lk(g.mu);
  for (size_t k = 100; k < 105; ++k) CHECK(g.calls[k] == 1);
}

TEST_CASE("a full queue refuses at once with overloaded") {
  Identity key = Identity::generate();
  FakePeer fake(key);
  PeerOptions o;
  o.lanes = 1;
  o.batch_items_max = 1;
  o.queue_items_max = 3;
  Failures f;  // outlives the client: stop() may fail messages
  auto client = client_for(key, fake.address(), o);
  fake.gate.set_open(false);
  f.send(*client, 0, 1);
  REQUIRE(fake.arrived.wait_for(1));
  f.send(*client, 1, 5);  // 1..3 queue, 4 is refused
  REQUIRE(f.done.wait_for(1));
  {
    std::lock_guard lk(f.mu);
    CHECK(f.codes[4] == Code::overloaded);
    CHECK(f.calls.size() == 1);
  }
  CHECK(client->stats_json()["n2"]["rejected"] == 1);
  fake.gate.set_open(true);
  REQUIRE(fake.taken.wait_for(4));
}

TEST_CASE("lanes start on demand and exit when idle") {
  Identity key = Identity::generate();
  FakePeer fake(key);
  PeerOptions o;
  o.lane_idle_ms = 100;
  Failures f;  // outlives the client: stop() may fail messages
  auto client = client_for(key, fake.address(), o);
  CHECK(lanes_of(*client) == 0);
  f.send(*client, 0, 10);
  REQUIRE(fake.taken.wait_for(10));
  CHECK(lanes_of(*client) >= 1);
  const auto deadline = std::chrono::steady_clock::now() + kWaitMax;
  while (lanes_of(*client) != 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  CHECK(lanes_of(*client) == 0);
  f.send(*client, 10, 20);  // a new lane takes over
  REQUIRE(fake.taken.wait_for(20));
  CHECK(f.done.count() == 0);
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

TEST_CASE("the message body round-trips and refuses hostile bytes") {
  const std::vector<std::string> messages = {"abc", "", std::string(300, '\x01')};
  const std::string body =
      message_body(std::vector<std::string_view>(messages.begin(), messages.end()));
  auto back = parse_message_body(body, 10);
  REQUIRE(back.is_ok());
  REQUIRE(back.value().size() == messages.size());
  for (size_t i = 0; i < messages.size(); ++i) CHECK(back.value()[i] == messages[i]);
  CHECK(parse_message_body(body, 2).status().code() == Code::too_large);
  CHECK(parse_message_body("", 10).status().code() == Code::malformed);
  CHECK(!parse_message_body(body + "x", 10).is_ok());
  for (size_t n = 1; n < body.size(); ++n) {
    auto cut = parse_message_body(body.substr(0, n), 10);
    // A cut exactly between items is a shorter valid body; anywhere else it is malformed.
    if (cut.is_ok()) CHECK(cut.value().size() < messages.size());
  }
  std::mt19937_64 rng(5);
  for (int i = 0; i < 5'000; ++i) {
    std::string m = body;
    m[rng() % m.size()] = char(rng());
    auto r = parse_message_body(m.substr(0, rng() % (m.size() + 1)), 100'000);
    if (r.is_ok())
      for (std::string_view v : r.value()) CHECK(v.size() <= m.size());
  }
}

}  // namespace meshwork
