// PeerClient: the node's outgoing peer transport — one-way messages of the replica core
// (dht/messages.h), coalesced per peer, plus blocking calls for the read-only scatter-gather
// endpoints (list, held).
//
// Messages: send() queues one encoded message for a peer. Each peer has up to `lanes` sender
// threads, each with its own keep-alive connection (TCP_NODELAY). A lane takes everything queued
// (up to batch_items_max messages and batch_bytes_max bytes), sends ONE signed request, and on
// failure runs each message's `failed` callback. While a request is in flight new messages pile up
// and leave together in the next request, so the request rate adapts to the peer's speed. Lanes
// start when messages wait and no lane is free, and exit after lane_idle_ms without work: an idle
// node keeps no sender threads.
//
// Wire contract (served by api/, see docs/protocol.md):
//   POST /internal/v1/msg  application/octet-stream: one or more items, each a u32 little-endian
//                          length then that many bytes of encode_message; signed (peer_auth.h)
//     204                  taken: every message was decoded and handed to the receiver's core
//     4xx/5xx              refused whole: every message of the request failed
// Delivery is at most once and unordered across lanes; the core's protocol tolerates loss,
// duplication and reordering. A 204 says nothing about what the core did with a message.
//
// Thread-safety: every public method may be called from any thread, except that stop() and the
// destructor must not be called from a callback. `failed` callbacks run at most once, without any
// lock of PeerClient held, on a lane thread or inline in send() (unknown peer, full queue, stopped
// client); they must not throw and must not block.
// Invariants: lane threads ≤ lanes × peers with messages waiting or sent in the last lane_idle_ms;
// pending messages per peer ≤ queue_items_max and their bytes ≤ queue_bytes_max.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "dht/result.h"
#include "node/crypto.h"
#include "node/peer_auth.h"

namespace meshwork {

namespace peer_detail {
struct Peer;  // one peer's queue, lanes, connections and counters
struct Conn;  // one keep-alive connection to a peer's address
}  // namespace peer_detail

inline constexpr const char* kMessagePath = "/internal/v1/msg";
inline constexpr size_t kPeerCallIdleMax = 4;  // idle keep-alive connections kept for call()
inline constexpr size_t kMessageBodyItemsMax = 4'096;  // messages in one request body

// A request body holding `messages` (each as encode_message makes it).
[[nodiscard]] std::string message_body(const std::vector<std::string_view>& messages);
// The messages of a request body, viewing into `body`; Code::malformed when the body is not
// exactly a sequence of length-prefixed items (or holds none), Code::too_large past `items_max`.
// Never throws; reads nothing past the body.
[[nodiscard]] Result<std::vector<std::string_view>> parse_message_body(std::string_view body,
                                                                       size_t items_max);

struct PeerOptions {
  size_t lanes = 1;                     // concurrent connections (sender threads) per peer
  size_t batch_items_max = 512;         // messages per request
  size_t batch_bytes_max = 4 << 20;     // body bytes per request (a larger message goes alone)
  size_t queue_items_max = 200'000;     // pending messages per peer, then Code::overloaded
  size_t queue_bytes_max = 512u << 20;  // pending bytes per peer, likewise
  uint64_t connect_timeout_ms = 1'000;
  uint64_t io_timeout_ms = 5'000;  // read and write timeout of lane requests
  uint64_t lane_idle_ms = 3'000;   // a lane without work this long exits
};

class PeerClient {
 public:
  using Failed = std::function<void(const Status&)>;

  // With `macs` and `key_of`, requests to a peer whose public key `key_of` knows carry a MAC
  // (peer_auth.h); others, and all without them, carry an Ed25519 signature.
  PeerClient(const Identity& key, std::string self, PeerOptions options,
             const PeerMacKeys* macs = nullptr, PeerKeyLookup key_of = {});
  ~PeerClient();  // stop()
  PeerClient(const PeerClient&) = delete;
  PeerClient& operator=(const PeerClient&) = delete;

  // Replaces the set of known peers: name -> "host:port" of its API. Peers not in the map are
  // dropped: their queued messages fail with Code::unavailable (a request in flight still
  // completes). A changed address takes effect for the next request. Ignored after stop().
  void set_peers(std::map<std::string, std::string> addresses);

  // Queues one encoded message for `peer`. `failed` runs once if it cannot be delivered (unknown
  // peer, full queue, request refused or failed); never when the peer took it.
  void send(const std::string& peer, std::string message, Failed failed);

  // A signed blocking POST of `body` (JSON) to `path` (plain, no query) on `peer`: the response
  // body for 200, else an error with the status and a short detail. Uses a small pool of
  // keep-alive connections per peer, separate from the lanes; stop() does not interrupt it.
  [[nodiscard]] Result<std::string> call(const std::string& peer, const std::string& path,
                                         const std::string& body, uint64_t timeout_ms);

  // Fails everything queued with Code::unavailable, interrupts requests in flight (their messages
  // fail too), joins every thread. Idempotent.
  void stop();

  // {"<peer>": {"requests", "requests_failed", "messages", "messages_failed", "rejected",
  //             "queue_items", "queue_bytes", "lanes", "mean_batch"}, ...} for the current peers.
  [[nodiscard]] nlohmann::json stats_json() const;

 private:
  using Peer = peer_detail::Peer;

  [[nodiscard]] Result<std::shared_ptr<Peer>> find_peer(const std::string& name) const;
  void lane_main(const std::shared_ptr<Peer>& p, size_t lane);
  [[nodiscard]] std::shared_ptr<peer_detail::Conn> make_conn(const Peer& p,
                                                             uint64_t io_timeout_ms) const;
  [[nodiscard]] Result<std::string> post(peer_detail::Conn& conn, const std::string& peer,
                                         const std::string& path, std::string body,
                                         const char* content_type) const;

  const Identity key_;
  const std::string self_;
  const PeerOptions options_;
  const PeerMacKeys* const macs_;
  const PeerKeyLookup key_of_;

  mutable std::mutex mu_;  // guards the fields below; taken before any Peer::mu
  bool stopped_ = false;
  std::map<std::string, std::shared_ptr<Peer>> peers_;
  std::vector<std::shared_ptr<Peer>> retired_;  // removed, their lanes finishing
};

}  // namespace meshwork
