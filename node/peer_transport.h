// PeerTransport: the replica core's messages between nodes, over persistent TCP connections that
// the node's loop drives (no thread of its own). The wire form is node/peer_frame.h.
//
// Each node listens on TCP at its gossip address (the same host and port number as the UDP
// socket, as memberlist does), so a member's gossip address is also where its peers connect.
// Between two nodes there are two connections, one per direction: the connecting side sends
// message frames, the accepting side answers with ack frames.
//
//   send(peer, message, failed)  queues it for the peer (bounded), connecting if need be
//   flush()                      starts a frame to every peer with messages queued and no write
//                                in flight; messages queued while a frame is written leave
//                                together in the next one, so frames grow with load
//   inbound frames               opened, every message decoded, then handed to `deliver` in one
//                                call per read; an ack frame follows
// A message counts as delivered once an ack covers its frame: the receiver's core has it. Until
// then the sender keeps its `failed` callback; when the connection breaks, the handshake fails, no
// ack comes within ack_timeout_ms, or the queue is full, each pending message's callback runs once
// (Code::unavailable or Code::overloaded). A peer that could not be reached is not dialled again
// for a back-off (retry_min_ms doubling to retry_max_ms); messages for it fail at once meanwhile.
// Delivery is therefore at most once per try, and the replica core tolerates loss, duplicates and
// reordering across connections.
//
// A connection whose peer sends anything that does not authenticate or decode (a bad handshake,
// an unknown member or key, a frame altered, replayed, reordered, truncated or oversized, a
// malformed message) is closed and counted; no part of that read reaches the core.
//
// Thread-safety: listen() before the loop delivers to it; stop() and stats_json() from any thread
// (they run on the loop and wait); everything else on the loop thread. `deliver` and `failed`
// run on the loop thread; `failed` may run inside send() and must not call back into the
// transport. The transport must outlive the loop's handlers: destroy it after stop() once the
// loop has stopped.
// Invariants: per peer, queued messages ≤ queue_items_max and their bytes ≤ queue_bytes_max; at
// most one outgoing connection per peer and one write in flight per connection; inbound
// connections ≤ inbound_max; a read buffer never exceeds kFrameBytesMax + read_chunk_bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "dht/messages.h"
#include "dht/result.h"
#include "node/crypto.h"
#include "node/peer_frame.h"

namespace meshwork {

namespace transport_detail {
struct Peer;
struct Outbound;
struct Inbound;
}  // namespace transport_detail

struct TransportOptions {
  // A frame stops taking messages past this many bytes (a larger message goes alone).
  size_t frame_bytes_max = 1 << 20;
  size_t frame_items_max = kFrameItemsMax;
  size_t queue_items_max = 200'000;     // pending messages per peer, then Code::overloaded
  size_t queue_bytes_max = 512u << 20;  // pending bytes per peer, likewise
  uint64_t connect_timeout_ms = 1'000;
  uint64_t handshake_timeout_ms = 5'000;  // from accept or connect to an open session
  uint64_t ack_timeout_ms = 5'000;        // a frame unacknowledged this long closes the connection
  uint64_t retry_min_ms = 100;            // back-off after a failed connection, doubling
  uint64_t retry_max_ms = 2'000;
  size_t inbound_max = 1'024;          // accepted connections at once (handshaking or open)
  size_t read_chunk_bytes = 16 << 10;  // per connection; grows to a whole frame, then shrinks back
};

class PeerTransport {
 public:
  using Failed = std::function<void(const Status&)>;
  using KeyOf = std::function<std::optional<std::string>(std::string_view name)>;
  using Deliver = std::function<void(const std::string& from, std::vector<Message>&& messages)>;

  // `key_of` gives the raw Ed25519 key membership lists for a member (nullopt: unknown).
  PeerTransport(asio::io_context& io, const Identity& key, std::string self,
                TransportOptions options, KeyOf key_of, Deliver deliver);
  ~PeerTransport();
  PeerTransport(const PeerTransport&) = delete;
  PeerTransport& operator=(const PeerTransport&) = delete;

  // Binds the listening socket on `host`:`port` (0: ephemeral) and starts accepting; the bound
  // port, or Code::io_error.
  [[nodiscard]] Result<uint16_t> listen(const std::string& host, uint16_t port);
  // Closes the listening socket (connections stay); listen() may be called again.
  void unlisten();

  // The known peers: name → "ip:port". A dropped peer's connection closes and its pending
  // messages fail; a changed address closes the connection to the old one.
  void set_peers(const std::map<std::string, std::string>& addresses);
  void send(const std::string& peer, std::string message, Failed failed);
  void flush();

  // Closes every connection and the listener; pending messages fail. Idempotent.
  void stop();

  // {"peers": {"<name>": {connected, frames, messages, messages_failed, rejected, queue_items,
  //  queue_bytes, unacked_frames, connects, connect_failures, mean_batch}}, "inbound",
  //  "frames_received", "messages_received", "bad_frames", "handshakes_refused"}
  [[nodiscard]] nlohmann::json stats_json();

 private:
  using Peer = transport_detail::Peer;
  using Outbound = transport_detail::Outbound;
  using Inbound = transport_detail::Inbound;

  template <typename F>
  auto on_loop(F f) -> decltype(f());
  void accept_next();
  void arm_sweep();
  void sweep();
  void connect(const std::shared_ptr<Peer>& p);
  void on_welcome(const std::shared_ptr<Outbound>& o);
  void write_next(const std::shared_ptr<Outbound>& o);
  void read_acks(const std::shared_ptr<Outbound>& o);
  void link_failed(std::shared_ptr<Outbound> o,
                   const Status& why);  // by value: it drops Peer::link
  void fail_queue(Peer& p, const Status& why);
  void on_hello(const std::shared_ptr<Inbound>& in);
  void read_frames(const std::shared_ptr<Inbound>& in);
  void write_ack(const std::shared_ptr<Inbound>& in);
  void close_inbound(const std::shared_ptr<Inbound>& in, const Status& why, bool bad);

  asio::io_context& io_;
  const Identity& key_;
  const std::string self_;
  const TransportOptions options_;
  const KeyOf key_of_;
  const Deliver deliver_;

  // Loop thread only.
  asio::ip::tcp::acceptor acceptor_;
  std::unique_ptr<asio::steady_timer> sweep_timer_;
  std::unique_ptr<asio::steady_timer> accept_retry_;
  bool stopped_ = false;
  bool sweep_armed_ = false;
  std::map<std::string, std::shared_ptr<Peer>, std::less<>> peers_;
  std::vector<std::shared_ptr<Peer>> dirty_;
  std::set<std::shared_ptr<Inbound>> inbound_;
  uint64_t frames_received_ = 0, messages_received_ = 0, bad_frames_ = 0, handshakes_refused_ = 0;
};

}  // namespace meshwork
