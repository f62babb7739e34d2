// Peer request authentication, and PeerClient's calls against a fake peer over loopback HTTP.
#include <doctest/doctest.h>

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "node/clock.h"
#include "node/peer_auth.h"
#include "node/peer_client.h"

#include <nlohmann/json.hpp>

namespace meshwork {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr auto kWaitMax = 10s;  // generous: nothing here should take more than a second

// A fake peer on 127.0.0.1 serving an echo for call(), accepting only requests signed by `sender`
// as "n1", or MAC'd under the pair key when it has `self`.
struct FakePeer {
  // With `self`, it also takes requests MAC'd for "n2" under the pair key of `self` and `sender`.
  explicit FakePeer(const Identity& sender, const Identity* self = nullptr)
      : sender_key(sender.public_key()),
        macs(self ? std::make_unique<PeerMacKeys>(*self) : nullptr) {
    server.set_tcp_nodelay(true);
    server.set_keep_alive_max_count(10'000);
    server.Post("/internal/v1/echo", [this](const auto& req, auto& res) {
      if (authenticated(req, res)) res.set_content(req.body, "application/json");
    });
    port = server.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    thread = std::thread([this] { server.listen_after_bind(); });
  }
  ~FakePeer() {
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

  std::string sender_key;
  std::unique_ptr<PeerMacKeys> macs;
  std::atomic<size_t> maced{0}, signed_{0};  // requests taken, by proof
  httplib::Server server;
  int port = 0;
  std::thread thread;
};

// A PeerClient signing as "n1" with `key`, knowing "n2" at `address`.
std::unique_ptr<PeerClient> client_for(const Identity& key, const std::string& address,
                                       PeerOptions o = {}) {
  auto c = std::make_unique<PeerClient>(key, "n1", o);
  c->set_peers({{"n2", address}});
  return c;
}

httplib::Request signed_request(const Identity& key, const std::string& node, uint64_t time_ms,
                                const std::string& body) {
  httplib::Request req;
  req.method = "POST";
  req.path = "/internal/v1/held";
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
    req.path = "/internal/v1/held";
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

TEST_CASE("a client with pair keys MACs its calls once it knows the peer's key") {
  Identity key = Identity::generate(), peer = Identity::generate();
  FakePeer fake(key, &peer);
  PeerMacKeys macs(key);
  std::atomic<bool> known{false};
  PeerClient client(key, "n1", PeerOptions{}, &macs,
                    [&](std::string_view name) -> std::optional<std::string> {
                      if (name == "n2" && known) return peer.public_key();
                      return std::nullopt;
                    });
  client.set_peers({{"n2", fake.address()}});
  REQUIRE(client.call("n2", "/internal/v1/echo", "{}", 2'000).is_ok());
  CHECK(fake.maced == 0);  // key unknown: signed
  CHECK(fake.signed_ == 1);
  known = true;
  REQUIRE(client.call("n2", "/internal/v1/echo", "{}", 2'000).is_ok());
  CHECK(fake.maced == 1);
  CHECK(fake.signed_ == 1);
  client.stop();
  CHECK(client.call("n2", "/internal/v1/echo", "{}", 2'000).status().code() == Code::unavailable);
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

}  // namespace meshwork
