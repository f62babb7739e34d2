// The framed peer transport on the loop; see peer_transport.h.
#include "node/peer_transport.h"

#include <asio/connect.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <future>

#include "node/check.h"
#include "node/clock.h"
#include "node/log.h"
#include "node/peer_frame.h"

namespace meshwork {

using asio::ip::tcp;

namespace transport_detail {

struct Item {
  std::string message;
  PeerTransport::Failed failed;
};

// A message frame written and not yet acknowledged: the callbacks of its messages.
struct Sent {
  uint64_t frame = 0;
  uint64_t at_ms = 0;
  std::vector<PeerTransport::Failed> failed;
};

enum class LinkState { connecting, handshaking, open, closed };

struct Outbound {
  Outbound(asio::io_context& io, std::shared_ptr<Peer> p)
      : peer(std::move(p)), socket(io), timer(io) {}
  std::shared_ptr<Peer> peer;
  tcp::socket socket;
  asio::steady_timer timer;  // connect, then handshake deadline
  LinkState state = LinkState::connecting;
  KxKeyPair kx;
  std::string hello;  // with its length
  std::string rbuf;
  size_t rlen = 0;
  std::optional<FrameSealer> sealer;
  std::optional<FrameOpener> opener;
  std::string wbuf;  // the frame being written, reused
  bool writing = false;
  std::deque<Sent> unacked;
};

struct Peer {
  explicit Peer(std::string n) : name(std::move(n)) {}
  const std::string name;
  std::string address;
  std::deque<Item> queue;
  size_t queue_bytes = 0;
  std::shared_ptr<Outbound> link;
  uint64_t retry_at_ms = 0, backoff_ms = 0;
  bool dirty = false, removed = false;
  uint64_t frames = 0, messages = 0, messages_failed = 0, rejected = 0, connects = 0,
           connect_failures = 0;
};

struct Inbound {
  Inbound(tcp::socket s, asio::io_context& io) : socket(std::move(s)), timer(io) {}
  tcp::socket socket;
  asio::steady_timer timer;  // handshake deadline
  LinkState state = LinkState::handshaking;
  std::string peer;
  std::string rbuf;
  size_t rlen = 0;
  std::optional<FrameSealer> sealer;
  std::optional<FrameOpener> opener;
  std::string wbuf;
  bool writing = false;
  uint64_t acked = 0;  // message frames covered by the last ack sent
};

}  // namespace transport_detail

namespace {

using transport_detail::Inbound;
using transport_detail::Item;
using transport_detail::LinkState;
using transport_detail::Outbound;
using transport_detail::Peer;
using transport_detail::Sent;

constexpr uint64_t kSweepIntervalMs = 500;
constexpr uint64_t kAcceptRetryMs = 100;

std::chrono::milliseconds ms(uint64_t v) {
  return std::chrono::milliseconds(v);
}

std::optional<tcp::endpoint> parse_endpoint(std::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == address.size()) return {};
  std::error_code ec;
  const auto ip = asio::ip::make_address(std::string(address.substr(0, colon)), ec);
  if (ec) return {};
  unsigned port = 0;
  for (char c : address.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) return {};
    port = port * 10 + unsigned(c - '0');
  }
  if (port == 0 || port > 65535) return {};
  return tcp::endpoint(ip, static_cast<uint16_t>(port));
}

// Opens every complete frame at the front of buf[0, len) and hands each to `on_frame`; stops at
// the first bad one. Then moves what is left to the front and makes room for the next read (the
// next frame whole, or a chunk), shrinking a buffer that an earlier large frame grew.
template <typename OnFrame>
Status open_frames(FrameOpener& opener, std::string& buf, size_t& len, size_t chunk,
                   OnFrame&& on_frame) {
  size_t at = 0;
  size_t need = 0;
  for (;;) {
    auto n = FrameOpener::frame_bytes(std::string_view(buf.data() + at, len - at));
    if (!n.is_ok()) return n.status();
    need = n.value();
    if (need == 0 || len - at < need) break;
    auto frame = opener.open(buf.data() + at, need);
    if (!frame.is_ok()) return frame.status();
    if (Status s = on_frame(frame.value()); !s.is_ok()) return s;
    at += need;
  }
  if (at > 0) {
    std::memmove(buf.data(), buf.data() + at, len - at);
    len -= at;
  }
  const size_t target = std::max(chunk, need);
  if (buf.size() < target) buf.resize(target);
  if (buf.size() > 2 * target && len <= target) {
    buf.resize(target);
    buf.shrink_to_fit();
  }
  if (buf.size() == len) buf.resize(len + chunk);  // never happens for a whole frame; defensive
  return Status::ok();
}

// Reads one handshake message — its u16 length, then that many bytes — into buf (the body at
// kHandshakeLengthBytes, its size in len), then calls done(status, bad): bad when the peer sent a
// length no handshake has, not ok without bad when the socket failed. `done` must keep the
// connection that owns socket, buf and len alive.
template <typename Done>
void read_handshake(tcp::socket& socket, std::string& buf, size_t& len, Done done) {
  buf.assign(kHandshakeLengthBytes + kHandshakeBytesMax, '\0');
  asio::async_read(
      socket, asio::buffer(buf.data(), kHandshakeLengthBytes),
      [&socket, &buf, &len, done = std::move(done)](std::error_code ec, size_t) mutable {
        if (ec) return done(Status(Code::unavailable, "peer handshake: " + ec.message()), false);
        auto n = handshake_body_bytes(std::string_view(buf.data(), kHandshakeLengthBytes));
        if (!n.is_ok()) return done(n.status(), true);
        len = n.value();
        asio::async_read(
            socket, asio::buffer(buf.data() + kHandshakeLengthBytes, len),
            [done = std::move(done)](std::error_code e, size_t) mutable {
              if (e)
                return done(Status(Code::unavailable, "peer handshake: " + e.message()), false);
              done(Status::ok(), false);
            });
      });
}

}  // namespace

PeerTransport::PeerTransport(asio::io_context& io, const Identity& key, std::string self,
                             TransportOptions options, KeyOf key_of, Deliver deliver)
    : io_(io),
      key_(key),
      self_(std::move(self)),
      options_(options),
      key_of_(std::move(key_of)),
      deliver_(std::move(deliver)),
      acceptor_(io),
      sweep_timer_(std::make_unique<asio::steady_timer>(io)),
      accept_retry_(std::make_unique<asio::steady_timer>(io)) {}

// The loop is gone (or never ran this transport's handlers): close what is open, no callbacks.
PeerTransport::~PeerTransport() {
  std::error_code ignored;
  acceptor_.close(ignored);
  for (auto& [name, p] : peers_)
    if (p->link) p->link->socket.close(ignored);
  for (const auto& in : inbound_) in->socket.close(ignored);
}

template <typename F>
auto PeerTransport::on_loop(F f) -> decltype(f()) {
  if (io_.get_executor().running_in_this_thread()) return f();
  std::packaged_task<decltype(f())()> task(std::move(f));
  auto result = task.get_future();
  asio::post(io_, [&task] { task(); });
  return result.get();
}

Result<uint16_t> PeerTransport::listen(const std::string& host, uint16_t port) {
  std::error_code ec;
  const auto ip = asio::ip::make_address(host, ec);
  if (ec) return Status(Code::invalid, "peer listener: '" + host + "' is not an IP address");
  const tcp::endpoint at(ip, port);
  acceptor_.open(at.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(at, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::error_code ignored;
    acceptor_.close(ignored);
    return Status(Code::io_error, "cannot listen for peers on tcp " + host + ":" +
                                      std::to_string(port) + ": " + ec.message());
  }
  const uint16_t bound = acceptor_.local_endpoint(ec).port();
  asio::post(io_, [this] {
    accept_next();
    if (!sweep_armed_) arm_sweep();
  });
  return bound;
}

void PeerTransport::unlisten() {
  on_loop([this] {
    std::error_code ignored;
    acceptor_.close(ignored);
  });
}

// ---- outgoing ----

void PeerTransport::set_peers(const std::map<std::string, std::string>& addresses) {
  if (stopped_) return;
  for (auto it = peers_.begin(); it != peers_.end();) {
    if (addresses.contains(it->first)) {
      ++it;
      continue;
    }
    std::shared_ptr<Peer> p = it->second;
    it = peers_.erase(it);
    p->removed = true;
    const Status why(Code::unavailable, "peer " + p->name + " was removed");
    if (p->link) link_failed(p->link, why);
    fail_queue(*p, why);
  }
  for (const auto& [name, address] : addresses) {
    auto& p = peers_[name];
    if (!p) p = std::make_shared<Peer>(name);
    if (p->address == address) continue;
    if (p->link)
      link_failed(p->link, Status(Code::unavailable, "peer " + name + " changed its address"));
    p->address = address;
    p->retry_at_ms = 0;
    p->backoff_ms = 0;
  }
}

void PeerTransport::send(const std::string& peer, std::string message, Failed failed) {
  if (stopped_) return failed(Status(Code::unavailable, "the peer transport is stopped"));
  auto it = peers_.find(peer);
  if (it == peers_.end()) return failed(Status(Code::unavailable, "unknown peer '" + peer + "'"));
  Peer& p = *it->second;
  if (message.size() > kMessageBytesMax) {
    p.messages_failed++;
    return failed(Status(Code::too_large, "a message of " + std::to_string(message.size()) +
                                              " bytes exceeds the peer limit"));
  }
  const uint64_t now = mono_ms();
  if (!p.link && now < p.retry_at_ms) {
    p.messages_failed++;
    return failed(Status(Code::unavailable, "peer " + p.name + " is unreachable; retrying in " +
                                                std::to_string(p.retry_at_ms - now) + " ms"));
  }
  const size_t bytes = message.size() + kFrameItemHeaderBytes;
  if (p.queue.size() >= options_.queue_items_max ||
      p.queue_bytes + bytes > options_.queue_bytes_max) {
    p.rejected++;
    return failed(Status(Code::overloaded, "the queue to peer " + p.name + " is full (" +
                                               std::to_string(p.queue.size()) + " messages)"));
  }
  p.queue.push_back(Item{std::move(message), std::move(failed)});
  p.queue_bytes += bytes;
  if (!p.dirty) {
    p.dirty = true;
    dirty_.push_back(it->second);
  }
}

void PeerTransport::flush() {
  std::vector<std::shared_ptr<Peer>> dirty;
  dirty.swap(dirty_);
  for (const auto& p : dirty) {
    p->dirty = false;
    if (p->removed || stopped_ || p->queue.empty()) continue;
    if (!p->link) {
      connect(p);
    } else {
      write_next(p->link);
    }
  }
}

void PeerTransport::connect(const std::shared_ptr<Peer>& p) {
  const auto at = parse_endpoint(p->address);
  if (!at) {
    p->connect_failures++;
    p->backoff_ms = options_.retry_max_ms;
    p->retry_at_ms = mono_ms() + p->backoff_ms;
    return fail_queue(*p,
                      Status(Code::unavailable, "peer " + p->name + " has an unusable address '" +
                                                    p->address.substr(0, 64) + "'"));
  }
  auto o = std::make_shared<Outbound>(io_, p);
  p->link = o;
  p->connects++;
  o->timer.expires_after(ms(options_.connect_timeout_ms));
  o->timer.async_wait([this, o](std::error_code ec) {
    if (ec || o->state != LinkState::connecting) return;
    link_failed(o, Status(Code::unavailable, "connecting to peer " + o->peer->name + " (" +
                                                 o->peer->address + ") timed out"));
  });
  o->socket.async_connect(*at, [this, o](std::error_code ec) {
    if (o->state == LinkState::closed) return;
    if (ec)
      return link_failed(
          o, Status(Code::unavailable, "cannot connect to peer " + o->peer->name + " (" +
                                           o->peer->address + "): " + ec.message()));
    std::error_code ignored;
    o->socket.set_option(tcp::no_delay(true), ignored);
    o->state = LinkState::handshaking;
    o->timer.expires_after(ms(options_.handshake_timeout_ms));
    o->timer.async_wait([this, o](std::error_code e) {
      if (e || o->state != LinkState::handshaking) return;
      link_failed(
          o, Status(Code::unavailable, "the handshake with peer " + o->peer->name + " timed out"));
    });
    o->kx = KxKeyPair::generate();
    o->hello = make_hello(key_, self_, o->peer->name, o->kx);
    asio::async_write(o->socket, asio::buffer(o->hello), [this, o](std::error_code e, size_t) {
      if (o->state == LinkState::closed) return;
      if (e) return link_failed(o, Status(Code::unavailable, "peer handshake: " + e.message()));
      read_handshake(o->socket, o->rbuf, o->rlen, [this, o](const Status& s2, bool bad) {
        if (o->state == LinkState::closed) return;
        if (!s2.is_ok()) {
          if (bad) handshakes_refused_++;
          return link_failed(o, s2);
        }
        on_welcome(o);
      });
    });
  });
}

void PeerTransport::on_welcome(const std::shared_ptr<Outbound>& o) {
  Peer& p = *o->peer;
  auto w = open_welcome(std::string_view(o->rbuf.data() + kHandshakeLengthBytes, o->rlen),
                        std::string_view(o->hello).substr(kHandshakeLengthBytes));
  std::optional<SessionKeys> keys;
  Status refused = Status::ok();
  if (!w.is_ok()) {
    refused = w.status();
  } else if (auto known = key_of_(p.name);
             w.value().name != p.name || !known || *known != w.value().public_key) {
    refused = Status(Code::unauthorized, "the node at " + p.address + " is not member " + p.name +
                                             " with the key membership lists");
  } else if (keys = client_session(o->kx, w.value().kx_public); !keys) {
    refused = Status(Code::unauthorized, "peer " + p.name + " sent an unusable session key");
  }
  if (!refused.is_ok()) {
    handshakes_refused_++;
    log_event(spdlog::level::warn, "peer_handshake_refused", "", p.name + ": " + refused.message());
    return link_failed(o, refused);
  }
  o->kx.wipe();
  o->sealer.emplace(keys->tx);
  o->opener.emplace(keys->rx);
  o->state = LinkState::open;
  o->timer.cancel();
  o->rbuf.assign(options_.read_chunk_bytes, '\0');
  o->rlen = 0;
  p.backoff_ms = 0;
  p.retry_at_ms = 0;
  read_acks(o);
  write_next(o);
}

void PeerTransport::write_next(const std::shared_ptr<Outbound>& o) {
  Peer& p = *o->peer;
  if (o->state != LinkState::open || o->writing || p.queue.empty()) return;
  o->wbuf.clear();
  if (o->wbuf.capacity() > 4 * options_.frame_bytes_max) o->wbuf.shrink_to_fit();
  const size_t at = o->sealer->begin(o->wbuf, FrameKind::messages);
  Sent sent;
  sent.frame = o->sealer->sealed();
  sent.at_ms = mono_ms();
  size_t bytes = 0;
  while (!p.queue.empty() && sent.failed.size() < options_.frame_items_max) {
    Item& item = p.queue.front();
    const size_t n = item.message.size() + kFrameItemHeaderBytes;
    if (!sent.failed.empty() && bytes + n > options_.frame_bytes_max) break;
    append_item(o->wbuf, item.message);
    bytes += n;
    p.queue_bytes -= n;
    sent.failed.push_back(std::move(item.failed));
    p.queue.pop_front();
  }
  o->sealer->seal(o->wbuf, at);
  p.frames++;
  p.messages += sent.failed.size();
  o->unacked.push_back(std::move(sent));
  o->writing = true;
  asio::async_write(o->socket, asio::buffer(o->wbuf), [this, o](std::error_code ec, size_t) {
    if (o->state == LinkState::closed) return;
    o->writing = false;
    if (ec)
      return link_failed(
          o, Status(Code::unavailable, "writing to peer " + o->peer->name + ": " + ec.message()));
    write_next(o);
  });
}

void PeerTransport::read_acks(const std::shared_ptr<Outbound>& o) {
  o->socket.async_read_some(
      asio::buffer(o->rbuf.data() + o->rlen, o->rbuf.size() - o->rlen),
      [this, o](std::error_code ec, size_t n) {
        if (o->state == LinkState::closed) return;
        if (ec)
          return link_failed(
              o, Status(Code::unavailable,
                        "peer " + o->peer->name + " closed the connection: " + ec.message()));
        o->rlen += n;
        Status s = open_frames(
            *o->opener, o->rbuf, o->rlen, options_.read_chunk_bytes, [&](const Frame& f) {
              if (f.kind != FrameKind::ack)
                return Status(Code::malformed, "a message frame on an outgoing connection");
              auto acked = parse_ack(f.payload);
              if (!acked.is_ok()) return acked.status();
              if (acked.value() > o->sealer->sealed())
                return Status(Code::malformed, "an ack for frames never sent");
              while (!o->unacked.empty() && o->unacked.front().frame < acked.value())
                o->unacked.pop_front();
              return Status::ok();
            });
        if (!s.is_ok()) {
          bad_frames_++;
          log_event(spdlog::level::warn, "bad_peer_frame", "", o->peer->name + ": " + s.message());
          return link_failed(o, s);
        }
        read_acks(o);
      });
}

void PeerTransport::link_failed(std::shared_ptr<Outbound> o, const Status& why) {
  if (o->state == LinkState::closed) return;
  const bool was_open = o->state == LinkState::open;
  o->state = LinkState::closed;
  std::error_code ignored;
  o->socket.close(ignored);
  o->timer.cancel();
  Peer& p = *o->peer;
  if (p.link == o) p.link.reset();
  if (!was_open) p.connect_failures++;
  p.backoff_ms = was_open
                     ? options_.retry_min_ms
                     : std::clamp(p.backoff_ms * 2, options_.retry_min_ms, options_.retry_max_ms);
  p.retry_at_ms = mono_ms() + p.backoff_ms;
  std::vector<Failed> failed;
  for (Sent& s : o->unacked)
    for (Failed& f : s.failed) failed.push_back(std::move(f));
  o->unacked.clear();
  p.messages_failed += failed.size();
  log_event(spdlog::level::debug, "peer_link_closed", "",
            p.name + ": " + why.message() + " (" + std::to_string(failed.size()) +
                " messages unacknowledged)");
  for (Failed& f : failed) f(why);
  fail_queue(p, why);
}

void PeerTransport::fail_queue(Peer& p, const Status& why) {
  std::deque<Item> items;
  items.swap(p.queue);
  p.queue_bytes = 0;
  p.messages_failed += items.size();
  for (Item& i : items) i.failed(why);
}

// ---- incoming ----

void PeerTransport::accept_next() {
  if (stopped_) return;
  acceptor_.async_accept([this](std::error_code ec, tcp::socket s) {
    if (ec == asio::error::operation_aborted || stopped_ || !acceptor_.is_open()) return;
    if (ec) {  // out of descriptors, say: try again shortly instead of spinning
      accept_retry_->expires_after(ms(kAcceptRetryMs));
      accept_retry_->async_wait([this](std::error_code e) {
        if (!e) accept_next();
      });
      return;
    }
    if (inbound_.size() >= options_.inbound_max) {
      handshakes_refused_++;
      std::error_code ignored;
      s.close(ignored);
    } else {
      auto in = std::make_shared<Inbound>(std::move(s), io_);
      inbound_.insert(in);
      std::error_code ignored;
      in->socket.set_option(tcp::no_delay(true), ignored);
      in->timer.expires_after(ms(options_.handshake_timeout_ms));
      in->timer.async_wait([this, in](std::error_code e) {
        if (e || in->state != LinkState::handshaking) return;
        close_inbound(in, Status(Code::unavailable, "the peer handshake timed out"), true);
      });
      read_handshake(in->socket, in->rbuf, in->rlen, [this, in](const Status& s2, bool bad) {
        if (in->state == LinkState::closed) return;
        if (!s2.is_ok()) return close_inbound(in, s2, bad);
        on_hello(in);
      });
    }
    accept_next();
  });
}

void PeerTransport::on_hello(const std::shared_ptr<Inbound>& in) {
  auto h = open_hello(std::string_view(in->rbuf.data() + kHandshakeLengthBytes, in->rlen));
  if (!h.is_ok()) return close_inbound(in, h.status(), true);
  const HandshakeMessage& hello = h.value();
  if (hello.target != self_)
    return close_inbound(in, Status(Code::unauthorized, "a hello for " + hello.target), true);
  const auto known = key_of_(hello.name);
  if (hello.name == self_ || !known || *known != hello.public_key)
    return close_inbound(
        in, Status(Code::unauthorized, "'" + hello.name + "' is not a member with that key"), true);
  const KxKeyPair kx = KxKeyPair::generate();
  const auto keys = server_session(kx, hello.kx_public);
  if (!keys) return close_inbound(in, Status(Code::unauthorized, "an unusable session key"), true);
  in->peer = hello.name;
  in->sealer.emplace(keys->tx);
  in->opener.emplace(keys->rx);
  in->wbuf = make_welcome(key_, self_, kx, hello.body);
  in->writing = true;
  asio::async_write(in->socket, asio::buffer(in->wbuf), [this, in](std::error_code ec, size_t) {
    if (in->state == LinkState::closed) return;
    in->writing = false;
    if (ec) return close_inbound(in, Status(Code::unavailable, ec.message()), false);
    in->state = LinkState::open;
    in->timer.cancel();
    in->rbuf.assign(options_.read_chunk_bytes, '\0');
    in->rlen = 0;
    read_frames(in);
  });
}

void PeerTransport::read_frames(const std::shared_ptr<Inbound>& in) {
  in->socket.async_read_some(
      asio::buffer(in->rbuf.data() + in->rlen, in->rbuf.size() - in->rlen),
      [this, in](std::error_code ec, size_t n) {
        if (in->state == LinkState::closed) return;
        if (ec) return close_inbound(in, Status(Code::unavailable, ec.message()), false);
        in->rlen += n;
        const uint64_t before = in->opener->opened();
        std::vector<Message> batch;
        Status s = open_frames(
            *in->opener, in->rbuf, in->rlen, options_.read_chunk_bytes, [&](const Frame& f) {
              if (f.kind != FrameKind::messages)
                return Status(Code::malformed, "an ack frame on an incoming connection");
              auto items = parse_items(f.payload, options_.frame_items_max);
              if (!items.is_ok()) return items.status();
              for (std::string_view bytes : items.value()) {
                auto m = decode_message(bytes);
                if (!m.is_ok()) return m.status();
                batch.push_back(std::move(m).value());
              }
              return Status::ok();
            });
        if (!s.is_ok()) return close_inbound(in, s, true);
        frames_received_ += in->opener->opened() - before;
        messages_received_ += batch.size();
        if (!batch.empty()) deliver_(in->peer, std::move(batch));
        if (in->state == LinkState::closed) return;
        write_ack(in);
        read_frames(in);
      });
}

void PeerTransport::write_ack(const std::shared_ptr<Inbound>& in) {
  if (in->state != LinkState::open || in->writing || in->acked == in->opener->opened()) return;
  in->acked = in->opener->opened();
  in->wbuf.clear();
  const size_t at = in->sealer->begin(in->wbuf, FrameKind::ack);
  append_ack(in->wbuf, in->acked);
  in->sealer->seal(in->wbuf, at);
  in->writing = true;
  asio::async_write(in->socket, asio::buffer(in->wbuf), [this, in](std::error_code ec, size_t) {
    if (in->state == LinkState::closed) return;
    in->writing = false;
    if (ec) return close_inbound(in, Status(Code::unavailable, ec.message()), false);
    write_ack(in);
  });
}

void PeerTransport::close_inbound(const std::shared_ptr<Inbound>& in, const Status& why, bool bad) {
  if (in->state == LinkState::closed) return;
  const bool handshaking = in->state == LinkState::handshaking;
  in->state = LinkState::closed;
  std::error_code ignored;
  in->socket.close(ignored);
  in->timer.cancel();
  inbound_.erase(in);
  if (!bad) return;
  if (handshaking) {
    handshakes_refused_++;
    log_event(spdlog::level::warn, "peer_handshake_refused", "", why.message());
  } else {
    bad_frames_++;
    log_event(spdlog::level::warn, "bad_peer_frame", "", in->peer + ": " + why.message());
  }
}

// ---- timers, stop, stats ----

void PeerTransport::arm_sweep() {
  if (stopped_) return;
  sweep_armed_ = true;
  sweep_timer_->expires_after(ms(kSweepIntervalMs));
  sweep_timer_->async_wait([this](std::error_code ec) {
    if (ec || stopped_) return;
    sweep();
    arm_sweep();
  });
}

// Closes connections whose oldest frame has waited for its ack too long: the peer is gone or
// stuck, and its messages should fail now rather than never.
void PeerTransport::sweep() {
  const uint64_t now = mono_ms();
  std::vector<std::shared_ptr<Outbound>> stale;
  for (const auto& [name, p] : peers_)
    if (p->link && !p->link->unacked.empty() &&
        now - p->link->unacked.front().at_ms > options_.ack_timeout_ms)
      stale.push_back(p->link);
  for (const auto& o : stale)
    link_failed(o, Status(Code::unavailable, "peer " + o->peer->name + " acknowledged nothing in " +
                                                 std::to_string(options_.ack_timeout_ms) + " ms"));
}

void PeerTransport::stop() {
  on_loop([this] {
    if (stopped_) return;
    stopped_ = true;
    std::error_code ignored;
    acceptor_.close(ignored);
    sweep_timer_->cancel();
    accept_retry_->cancel();
    const Status why(Code::unavailable, "the node is stopping");
    auto peers = std::move(peers_);
    peers_.clear();
    dirty_.clear();
    for (auto& [name, p] : peers) {
      p->removed = true;
      if (p->link) link_failed(p->link, why);
      fail_queue(*p, why);
    }
    auto inbound = std::move(inbound_);
    inbound_.clear();
    for (const auto& in : inbound) close_inbound(in, why, false);
  });
}

nlohmann::json PeerTransport::stats_json() {
  return on_loop([this] {
    nlohmann::json peers = nlohmann::json::object();
    for (const auto& [name, p] : peers_)
      peers[name] = {{"connected", p->link && p->link->state == LinkState::open},
                     {"frames", p->frames},
                     {"messages", p->messages},
                     {"messages_failed", p->messages_failed},
                     {"rejected", p->rejected},
                     {"queue_items", p->queue.size()},
                     {"queue_bytes", p->queue_bytes},
                     {"unacked_frames", p->link ? p->link->unacked.size() : 0},
                     {"connects", p->connects},
                     {"connect_failures", p->connect_failures},
                     {"mean_batch", p->frames ? double(p->messages) / double(p->frames) : 0.0}};
    return nlohmann::json{
        {"peers", std::move(peers)},           {"inbound", inbound_.size()},
        {"frames_received", frames_received_}, {"messages_received", messages_received_},
        {"bad_frames", bad_frames_},           {"handshakes_refused", handshakes_refused_}};
  });
}

}  // namespace meshwork
