// The peer wire protocol (handshake, session keys, sealed frames, items) as pure functions, fuzzed;
// and PeerTransport over real loopback sockets: messages arrive once each and are acknowledged, an
// unreachable peer fails each message once, and a connection that sends a replayed, reordered,
// truncated, oversized or foreign frame — or a bad handshake — is closed and counted without
// anything reaching the receiver.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/time.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "node/peer_frame.h"
#include "node/peer_transport.h"

namespace meshwork {
namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;

constexpr auto kTransportWaitMax = 20s;  // generous: nothing here should take more than a second

// A small valid message: a digest whose first bucket carries `n`.
std::string message(uint64_t n) {
  Digest d;
  d.corr = n + 1;
  d.buckets.assign(kDigestBuckets, 0);
  d.buckets[0] = n;
  return encode_message(d);
}

// A digest's first bucket; any other kind's correlation id.
uint64_t number_of(const Message& m) {
  if (const auto* d = std::get_if<Digest>(&m)) return d->buckets[0];
  return corr_of(m);
}

std::string frame_of(FrameSealer& sealer, const std::vector<std::string>& messages,
                     FrameKind kind = FrameKind::messages) {
  std::string out;
  const size_t at = sealer.begin(out, kind);
  for (const auto& m : messages) append_item(out, m);
  sealer.seal(out, at);
  return out;
}

// Both ends of a handshake, done in memory.
struct Session {
  Identity client_key = Identity::generate(), server_key = Identity::generate();
  KxKeyPair client_kx = KxKeyPair::generate(), server_kx = KxKeyPair::generate();
  SessionKeys client, server;
  Session() {
    const std::string hello = make_hello(client_key, "n1", "n2", client_kx);
    auto h = open_hello(std::string_view(hello).substr(kHandshakeLengthBytes));
    REQUIRE(h.is_ok());
    const std::string welcome = make_welcome(server_key, "n2", server_kx, h.value().body);
    auto w = open_welcome(std::string_view(welcome).substr(kHandshakeLengthBytes),
                          std::string_view(hello).substr(kHandshakeLengthBytes));
    REQUIRE(w.is_ok());
    client = client_session(client_kx, w.value().kx_public).value();
    server = server_session(server_kx, h.value().kx_public).value();
  }
};

}  // namespace

TEST_CASE("a hello and its welcome open, carry names and keys, and bind to each other") {
  const Identity a = Identity::generate(), b = Identity::generate();
  const KxKeyPair ka = KxKeyPair::generate(), kb = KxKeyPair::generate();
  const std::string hello = make_hello(a, "n1", "n2", ka);
  auto len = handshake_body_bytes(hello);
  REQUIRE(len.is_ok());
  CHECK(len.value() + kHandshakeLengthBytes == hello.size());
  const std::string_view hello_body = std::string_view(hello).substr(kHandshakeLengthBytes);
  auto h = open_hello(hello_body);
  REQUIRE(h.is_ok());
  CHECK(h.value().name == "n1");
  CHECK(h.value().target == "n2");
  CHECK(h.value().public_key == a.public_key());
  CHECK(h.value().kx_public == ka.public_view());

  const std::string welcome = make_welcome(b, "n2", kb, hello_body);
  const std::string_view welcome_body = std::string_view(welcome).substr(kHandshakeLengthBytes);
  auto w = open_welcome(welcome_body, hello_body);
  REQUIRE(w.is_ok());
  CHECK(w.value().name == "n2");
  CHECK(w.value().public_key == b.public_key());

  // A welcome answers one hello: replayed to another, it does not verify.
  const std::string other = make_hello(a, "n1", "n2", KxKeyPair::generate());
  CHECK(open_welcome(welcome_body, std::string_view(other).substr(2)).status().code() ==
        Code::unauthorized);
  // Neither opens as the other kind.
  CHECK_FALSE(open_hello(welcome_body).is_ok());
  CHECK_FALSE(open_welcome(hello_body, hello_body).is_ok());
  // Every single-byte change is refused.
  for (size_t i = 0; i < hello_body.size(); ++i) {
    std::string t(hello_body);
    t[i] = static_cast<char>(t[i] ^ 0x01);
    CHECK_FALSE(open_hello(t).is_ok());
  }
  CHECK(handshake_body_bytes(std::string("\x00\x00", 2)).status().code() == Code::malformed);
  CHECK(handshake_body_bytes("\xff\xff").status().code() == Code::malformed);
  CHECK(handshake_body_bytes("\x01").status().code() == Code::malformed);
}

TEST_CASE("session keys pair up across the two ends and differ per direction and connection") {
  Session s;
  CHECK(s.client.tx == s.server.rx);
  CHECK(s.client.rx == s.server.tx);
  CHECK(s.client.tx != s.client.rx);
  Session t;
  CHECK(t.client.tx != s.client.tx);
}

TEST_CASE("frames open in order once; replayed, reordered, altered or foreign ones do not") {
  Session s;
  FrameSealer sealer(s.client.tx);
  std::vector<std::string> frames;
  for (uint64_t i = 0; i < 3; ++i) frames.push_back(frame_of(sealer, {message(i), message(i + 10)}));
  CHECK(sealer.sealed() == 3);

  SUBCASE("in order") {
    FrameOpener opener(s.server.rx);
    for (uint64_t i = 0; i < 3; ++i) {
      std::string f = frames[i];
      auto need = FrameOpener::frame_bytes(f);
      REQUIRE(need.is_ok());
      CHECK(need.value() == f.size());
      auto opened = opener.open(f.data(), f.size());
      REQUIRE(opened.is_ok());
      CHECK(opened.value().kind == FrameKind::messages);
      auto items = parse_items(opened.value().payload, kFrameItemsMax);
      REQUIRE(items.is_ok());
      REQUIRE(items.value().size() == 2);
      CHECK(number_of(decode_message(items.value()[0]).value()) == i);
      CHECK(number_of(decode_message(items.value()[1]).value()) == i + 10);
    }
    CHECK(opener.opened() == 3);
    std::string again = frames[2];  // replayed
    CHECK(opener.open(again.data(), again.size()).status().code() == Code::unauthorized);
  }
  SUBCASE("reordered") {
    FrameOpener opener(s.server.rx);
    std::string f = frames[1];
    CHECK(opener.open(f.data(), f.size()).status().code() == Code::unauthorized);
  }
  SUBCASE("in the wrong direction or on another connection") {
    FrameOpener back(s.client.rx);
    std::string f = frames[0];
    CHECK_FALSE(back.open(f.data(), f.size()).is_ok());
    Session other;
    FrameOpener foreign(other.server.rx);
    f = frames[0];
    CHECK_FALSE(foreign.open(f.data(), f.size()).is_ok());
  }
  SUBCASE("any byte altered") {
    for (size_t i = 0; i < frames[0].size(); ++i) {
      FrameOpener opener(s.server.rx);
      std::string f = frames[0];
      f[i] = static_cast<char>(f[i] ^ 0x20);
      auto need = FrameOpener::frame_bytes(f);
      if (!need.is_ok() || need.value() != f.size()) continue;  // a length byte: caught there
      CHECK_FALSE(opener.open(f.data(), f.size()).is_ok());
    }
  }
  SUBCASE("bad lengths") {
    CHECK(FrameOpener::frame_bytes("ab").value() == 0);  // not enough to tell yet
    CHECK(FrameOpener::frame_bytes(std::string("\x05\x00\x00\x00", 4)).status().code() ==
          Code::malformed);
    CHECK(FrameOpener::frame_bytes("\xff\xff\xff\xff").status().code() == Code::too_large);
  }
}

TEST_CASE("items and acks round-trip and refuse hostile bytes") {
  std::string payload;
  const std::vector<std::string> messages = {"abc", "", std::string(300, '\x01')};
  for (const auto& m : messages) append_item(payload, m);
  auto back = parse_items(payload, 10);
  REQUIRE(back.is_ok());
  REQUIRE(back.value().size() == messages.size());
  for (size_t i = 0; i < messages.size(); ++i) CHECK(back.value()[i] == messages[i]);
  CHECK(parse_items(payload, 2).status().code() == Code::too_large);
  CHECK(parse_items("", 10).status().code() == Code::malformed);
  CHECK_FALSE(parse_items(payload + "x", 10).is_ok());
  std::string ack;
  append_ack(ack, 0x0102030405060708ull);
  CHECK(parse_ack(ack).value() == 0x0102030405060708ull);
  CHECK_FALSE(parse_ack(ack + "x").is_ok());
  CHECK_FALSE(parse_ack("1234567").is_ok());
}

TEST_CASE("fuzz: the handshake, frame and item decoders never crash or read past their input") {
  Session s;
  FrameSealer sealer(s.client.tx);
  const std::string hello = make_hello(s.client_key, "n1", "n2", s.client_kx);
  const std::string frame = frame_of(sealer, {message(1), message(2)});
  std::string items;
  append_item(items, message(3));
  append_item(items, encode_message(ListRequest{4, "queued", "echo", 50, ""}));
  append_item(items, encode_message(HeldReply{5, 7, 2}));
  append_item(items, "x");
  std::mt19937_64 rng(11);
  size_t opened = 0;
  for (int i = 0; i < 20'000; ++i) {
    const std::string& seed = i % 3 == 0 ? hello : i % 3 == 1 ? frame : items;
    std::string m = seed;
    for (int k = 1 + int(rng() % 4); k > 0; --k) m[rng() % m.size()] = static_cast<char>(rng());
    m.resize(rng() % (m.size() + 8));  // cut, or grown with zeros
    (void)handshake_body_bytes(m);
    if (m.size() > 2) {
      (void)open_hello(std::string_view(m).substr(2));
      (void)open_welcome(std::string_view(m).substr(2), "x");
    }
    auto need = FrameOpener::frame_bytes(m);
    if (need.is_ok() && need.value() != 0 && need.value() <= m.size()) {
      FrameOpener opener(s.server.rx);
      opened += opener.open(m.data(), need.value()).is_ok();
    }
    auto parsed = parse_items(m, kFrameItemsMax);
    if (parsed.is_ok())
      for (std::string_view v : parsed.value()) {
        CHECK(v.size() <= m.size());
        (void)decode_message(v);
      }
  }
  CHECK(opened == 0);  // nothing altered ever authenticates
}

// ---- PeerTransport over real sockets ----

namespace {

// Nodes "n1".."nK" on one loop thread, each a PeerTransport listening on 127.0.0.1.
struct Mesh {
  explicit Mesh(size_t n, TransportOptions options = {}) {
    for (size_t i = 0; i < n; ++i) keys.push_back(Identity::generate());
    for (size_t i = 0; i < n; ++i) {
      const std::string name = "n" + std::to_string(i + 1);
      transports.push_back(std::make_unique<PeerTransport>(
          io, keys[i], name, options,
          [this](std::string_view who) -> std::optional<std::string> { return key_of(who); },
          [this, name](const std::string& from, std::vector<Message>&& ms) {
            std::lock_guard lk(mu);
            for (const Message& m : ms) got[name].push_back({from, number_of(m)});
            cv.notify_all();
          }));
      auto port = transports.back()->listen("127.0.0.1", 0);
      REQUIRE(port.is_ok());
      ports.push_back(port.value());
    }
    loop = std::thread([this] { io.run(); });
  }
  ~Mesh() {
    for (auto& t : transports) t->stop();
    work.reset();
    io.stop();
    loop.join();
  }
  std::optional<std::string> key_of(std::string_view who) {
    for (size_t i = 0; i < keys.size(); ++i)
      if (who == "n" + std::to_string(i + 1)) return keys[i].public_key();
    return std::nullopt;
  }
  std::string address(size_t i) const { return "127.0.0.1:" + std::to_string(ports[i]); }
  // Runs `f` on the loop and waits.
  template <typename F>
  void on_loop(F f) {
    std::promise<void> done;
    asio::post(io, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }
  size_t received(const std::string& name) {
    std::lock_guard lk(mu);
    return got[name].size();
  }
  bool wait_received(const std::string& name, size_t n) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, kTransportWaitMax, [&] { return got[name].size() >= n; });
  }

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::vector<Identity> keys;
  std::vector<std::unique_ptr<PeerTransport>> transports;
  std::vector<uint16_t> ports;
  std::thread loop;
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, std::vector<std::pair<std::string, uint64_t>>> got;
};

// Failure callbacks by message number (they run on the loop).
struct Failures {
  PeerTransport::Failed for_message(uint64_t n) {
    return [this, n](const Status& s) {
      std::lock_guard lk(mu);
      calls[n]++;
      codes[n] = s.code();
      cv.notify_all();
    };
  }
  bool wait(size_t n) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, kTransportWaitMax, [&] { return calls.size() >= n; });
  }
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, int> calls;
  std::map<uint64_t, Code> codes;
};

// A hand-driven connection to a transport, speaking the protocol (or not) byte by byte.
struct RawPeer {
  RawPeer(uint16_t port) : socket(io) {
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    timeval tv{20, 0};  // a read that would hang fails instead
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  // Completes the handshake as `name` with `key` towards `target`; the session keys.
  SessionKeys handshake(const Identity& key, const std::string& name, const std::string& target) {
    const KxKeyPair kx = KxKeyPair::generate();
    const std::string hello = make_hello(key, name, target, kx);
    asio::write(socket, asio::buffer(hello));
    std::string len(2, '\0');
    asio::read(socket, asio::buffer(len));
    std::string body(handshake_body_bytes(len).value(), '\0');
    asio::read(socket, asio::buffer(body));
    auto w = open_welcome(body, std::string_view(hello).substr(2));
    REQUIRE(w.is_ok());
    return client_session(kx, w.value().kx_public).value();
  }
  void write(const std::string& bytes) { asio::write(socket, asio::buffer(bytes)); }
  // Reads until the other end closes; true when it did (false: the read timed out).
  bool closed_by_peer() {
    char buf[4096];
    for (;;) {
      std::error_code ec;
      socket.read_some(asio::buffer(buf), ec);
      if (ec) return ec == asio::error::eof || ec == asio::error::connection_reset;
    }
  }
  asio::io_context io;
  tcp::socket socket;
};

uint64_t stat(Mesh& m, size_t i, const char* name) {
  return m.transports[i]->stats_json()[name].get<uint64_t>();
}

}  // namespace

TEST_CASE("messages reach the peer once each, in frames, and are acknowledged") {
  Mesh m(2);
  Failures f;
  constexpr uint64_t kMessages = 5'000;
  m.on_loop([&] {
    m.transports[0]->set_peers({{"n2", m.address(1)}});
    m.transports[1]->set_peers({{"n1", m.address(0)}});
  });
  // Sent from the loop in bursts, flushed after each, as the replica driver does.
  for (uint64_t first = 0; first < kMessages; first += 500)
    m.on_loop([&] {
      for (uint64_t k = first; k < first + 500; ++k)
        m.transports[0]->send("n2", message(k), f.for_message(k));
      m.transports[0]->flush();
    });
  REQUIRE(m.wait_received("n2", kMessages));
  std::this_thread::sleep_for(200ms);
  {
    std::lock_guard lk(m.mu);
    std::map<uint64_t, int> seen;
    for (const auto& [from, n] : m.got["n2"]) {
      CHECK(from == "n1");
      seen[n]++;
    }
    CHECK(seen.size() == kMessages);
    for (const auto& [n, times] : seen) CHECK(times == 1);
  }
  const auto stats = m.transports[0]->stats_json()["peers"]["n2"];
  CHECK(stats["connected"] == true);
  CHECK(stats["messages"] == kMessages);
  CHECK(stats["frames"].get<uint64_t>() <= kMessages / 2);  // coalesced
  CHECK(stats["unacked_frames"] == 0);
  CHECK(f.calls.empty());
  CHECK(stat(m, 1, "messages_received") == kMessages);
  CHECK(stat(m, 1, "bad_frames") == 0);
}

TEST_CASE("the cluster view's kinds travel in the same frames as the core's") {
  Mesh m(2);
  Failures f;
  m.on_loop([&] {
    m.transports[0]->set_peers({{"n2", m.address(1)}});
    m.transports[1]->set_peers({{"n1", m.address(0)}});
  });
  const std::vector<std::string> sent = {
      message(1),
      encode_message(ListRequest{101, "", "", kListLimitMax, ""}),
      encode_message(HeldRequest{102}),
      encode_message(ListReply{103, {}, "c"}),
      encode_message(HeldReply{104, 5, 1}),
      message(2)};
  m.on_loop([&] {
    for (size_t k = 0; k < sent.size(); ++k) m.transports[0]->send("n2", sent[k], f.for_message(k));
    m.transports[0]->flush();
  });
  REQUIRE(m.wait_received("n2", sent.size()));
  {
    std::lock_guard lk(m.mu);
    std::vector<uint64_t> numbers;
    for (const auto& [from, n] : m.got["n2"]) numbers.push_back(n);
    CHECK(numbers == std::vector<uint64_t>{1, 101, 102, 103, 104, 2});
  }
  CHECK(f.calls.empty());
  CHECK(stat(m, 1, "bad_frames") == 0);
}

TEST_CASE("an unreachable or removed peer fails each of its messages once") {
  TransportOptions o;
  o.retry_min_ms = 50;
  Mesh m(1, o);
  Failures f;
  // A port with nothing listening: bound, then closed.
  uint16_t dead_port = 0;
  {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    dead_port = a.local_endpoint().port();
  }
  m.on_loop([&] {
    m.transports[0]->set_peers({{"n2", "127.0.0.1:" + std::to_string(dead_port)}});
    for (uint64_t k = 0; k < 10; ++k) m.transports[0]->send("n2", message(k), f.for_message(k));
    m.transports[0]->flush();
  });
  REQUIRE(f.wait(10));
  m.on_loop([&] {  // backing off now: fails at once
    m.transports[0]->send("n2", message(10), f.for_message(10));
    m.transports[0]->send("n9", message(11), f.for_message(11));  // unknown peer
    m.transports[0]->flush();  // past the back-off already (a slow machine): dialled, fails again
  });
  REQUIRE(f.wait(12));
  m.on_loop([&] {
    m.transports[0]->set_peers({{"n3", "127.0.0.1:1"}});
    m.transports[0]->send("n3", message(12), f.for_message(12));
    m.transports[0]->set_peers({});  // removed with a message queued
  });
  REQUIRE(f.wait(13));
  std::this_thread::sleep_for(100ms);
  std::lock_guard lk(f.mu);
  for (const auto& [n, times] : f.calls) {
    CHECK(times == 1);
    CHECK(f.codes[n] == Code::unavailable);
  }
  CHECK(f.calls.size() == 13);
}

TEST_CASE("a full queue refuses with overloaded, and stop fails what is pending") {
  TransportOptions o;
  o.queue_items_max = 3;
  o.handshake_timeout_ms = 60'000;
  Mesh m(1, o);
  Failures f;
  // A listener that never answers the handshake: messages stay queued.
  asio::io_context io;
  tcp::acceptor silent(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  m.on_loop([&] {
    m.transports[0]->set_peers({{"n2", "127.0.0.1:" + std::to_string(silent.local_endpoint().port())}});
    for (uint64_t k = 0; k < 5; ++k) m.transports[0]->send("n2", message(k), f.for_message(k));
    m.transports[0]->flush();
  });
  REQUIRE(f.wait(2));
  {
    std::lock_guard lk(f.mu);
    CHECK(f.codes[3] == Code::overloaded);
    CHECK(f.codes[4] == Code::overloaded);
  }
  m.transports[0]->stop();
  REQUIRE(f.wait(5));
  std::lock_guard lk(f.mu);
  for (uint64_t k = 0; k < 3; ++k) CHECK(f.codes[k] == Code::unavailable);
  for (const auto& [n, times] : f.calls) CHECK(times == 1);
}

TEST_CASE("bad handshakes are refused and counted") {
  Mesh m(2);
  const Identity stranger = Identity::generate();
  auto refused = [&](auto&& send) {
    RawPeer p(m.ports[1]);
    send(p);
    return p.closed_by_peer();
  };
  const uint64_t before = stat(m, 1, "handshakes_refused");
  CHECK(refused([](RawPeer& p) { p.write("GET / HTTP/1.1\r\n\r\n"); }));
  CHECK(refused([](RawPeer& p) { p.write(std::string("\x00\x00", 2)); }));
  CHECK(refused([&](RawPeer& p) {  // a stranger's key under a member's name
    p.write(make_hello(stranger, "n1", "n2", KxKeyPair::generate()));
  }));
  CHECK(refused([&](RawPeer& p) {  // not a member
    p.write(make_hello(stranger, "mallory", "n2", KxKeyPair::generate()));
  }));
  CHECK(refused([&](RawPeer& p) {  // meant for another node
    p.write(make_hello(m.keys[0], "n1", "n3", KxKeyPair::generate()));
  }));
  CHECK(refused([&](RawPeer& p) {  // truncated, then closed by us: the node must not wait forever
    const std::string h = make_hello(m.keys[0], "n1", "n2", KxKeyPair::generate());
    p.write(h.substr(0, h.size() / 2));
    p.socket.shutdown(tcp::socket::shutdown_send);
  }));
  CHECK(stat(m, 1, "handshakes_refused") == before + 5);  // the cut one is a plain close
  CHECK(m.received("n2") == 0);
}

TEST_CASE("replayed, reordered, oversized, truncated or foreign frames close the connection") {
  Mesh m(2);
  // A good connection first: the frame is taken and acknowledged.
  RawPeer good(m.ports[1]);
  const SessionKeys keys = good.handshake(m.keys[0], "n1", "n2");
  FrameSealer sealer(keys.tx);
  const std::string f0 = frame_of(sealer, {message(1)});
  good.write(f0);
  REQUIRE(m.wait_received("n2", 1));
  {
    std::string head(kFrameHeaderBytes, '\0');
    asio::read(good.socket, asio::buffer(head));
    std::string rest(FrameOpener::frame_bytes(head).value() - kFrameHeaderBytes, '\0');
    asio::read(good.socket, asio::buffer(rest));
    std::string whole = head + rest;
    FrameOpener opener(keys.rx);
    auto ack = opener.open(whole.data(), whole.size());
    REQUIRE(ack.is_ok());
    CHECK(ack.value().kind == FrameKind::ack);
    CHECK(parse_ack(ack.value().payload).value() == 1);
  }
  const uint64_t bad_before = stat(m, 1, "bad_frames");
  uint64_t bad_expected = 1;

  SUBCASE("replayed on the same connection") {
    good.write(f0);
    CHECK(good.closed_by_peer());
  }
  SUBCASE("replayed on a new connection") {
    RawPeer again(m.ports[1]);
    (void)again.handshake(m.keys[0], "n1", "n2");
    again.write(f0);
    CHECK(again.closed_by_peer());
  }
  SUBCASE("reordered") {
    FrameSealer ahead(keys.tx);
    (void)frame_of(ahead, {message(3)});
    (void)frame_of(ahead, {message(4)});
    good.write(frame_of(ahead, {message(5)}));  // frame 2 where frame 1 is due
    CHECK(good.closed_by_peer());
  }
  SUBCASE("an oversized length") {
    good.write("\xff\xff\xff\x7f");
    CHECK(good.closed_by_peer());
  }
  SUBCASE("a valid frame holding a malformed message") {
    good.write(frame_of(sealer, {"not a message"}));
    CHECK(good.closed_by_peer());
  }
  SUBCASE("an ack where messages are due") {
    std::string ack;
    const size_t at = sealer.begin(ack, FrameKind::ack);
    append_ack(ack, 1);
    sealer.seal(ack, at);
    good.write(ack);
    CHECK(good.closed_by_peer());
  }
  SUBCASE("truncated, then the sender goes away") {
    const std::string f1 = frame_of(sealer, {message(2)});
    good.write(f1.substr(0, f1.size() - 3));
    good.socket.close();
    std::this_thread::sleep_for(200ms);
    bad_expected = 0;  // a plain close: nothing was opened
  }
  std::this_thread::sleep_for(100ms);
  CHECK(m.received("n2") == 1);  // nothing after the good frame reached the receiver
  CHECK(stat(m, 1, "bad_frames") == bad_before + bad_expected);
}

}  // namespace meshwork
