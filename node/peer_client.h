// PeerClient: blocking, authenticated HTTP calls to other nodes' read-only scatter-gather
// endpoints (POST /internal/v1/{list,held}: node/cluster_view.h). The replica core's messages do
// not come here: they travel over the framed peer transport (node/peer_transport.h).
//
// A call takes an idle keep-alive connection to the peer's API address (at most kPeerCallIdleMax
// kept per peer) or makes one (TCP_NODELAY), and carries a MAC under the pair key when the peer's
// public key is known (peer_auth.h), else an Ed25519 signature.
//
// In a TLS mesh (PeerOptions::tls: the node serves HTTPS, so every member does — a mesh is all
// HTTPS or all HTTP) calls go over HTTPS and the peer's certificate must chain to the CA file (or
// the system's trust store without one) and name the host the peer advertises.
//
// Thread-safety: every public method may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "dht/result.h"
#include "node/crypto.h"
#include "node/peer_auth.h"

namespace meshwork {

namespace peer_detail {
struct Peer;  // one peer's address and idle connections
struct Conn;  // one keep-alive connection to a peer's address
}  // namespace peer_detail

inline constexpr size_t kPeerCallIdleMax = 4;  // idle keep-alive connections kept per peer

struct PeerOptions {
  uint64_t connect_timeout_ms = 1'000;
  bool tls = false;     // call peers' APIs over HTTPS
  std::string ca_file;  // PEM CA certificates that verify them; empty: the system's store
};

class PeerClient {
 public:
  // With `macs` and `key_of`, calls to a peer whose public key `key_of` knows carry a MAC
  // (peer_auth.h); others, and all without them, carry an Ed25519 signature.
  PeerClient(const Identity& key, std::string self, PeerOptions options,
             const PeerMacKeys* macs = nullptr, PeerKeyLookup key_of = {});
  ~PeerClient();  // stop()
  PeerClient(const PeerClient&) = delete;
  PeerClient& operator=(const PeerClient&) = delete;

  // Replaces the set of known peers: name -> "host:port" of its API. A changed address takes
  // effect for the next call. Ignored after stop().
  void set_peers(std::map<std::string, std::string> addresses);

  // An authenticated blocking POST of `body` (JSON) to `path` (plain, no query) on `peer`: the
  // response body for 200, else an error with the status and a short detail.
  [[nodiscard]] Result<std::string> call(const std::string& peer, const std::string& path,
                                         const std::string& body, uint64_t timeout_ms);

  // Later calls fail with Code::unavailable; calls in flight finish. Idempotent.
  void stop();

 private:
  using Peer = peer_detail::Peer;

  [[nodiscard]] Result<std::shared_ptr<Peer>> find_peer(const std::string& name) const;
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
};

}  // namespace meshwork
