// Authenticating node-to-node ("peer") HTTP requests with the sending node's Ed25519 key.
//
// A peer request carries three headers: X-Meshwork-Node (the sender's member name),
// X-Meshwork-Time (the sender's wall clock in ms, decimal) and one proof, either
//   X-Meshwork-Mac: base64 of a BLAKE2b-256 MAC over peer_mac_message() keyed with the pair key
//                   the two nodes share (PeerMacKeys: X25519 of their Ed25519 identities), or
//   X-Meshwork-Signature: base64 of a detached Ed25519 signature over peer_auth_message().
// The MAC is what the message lanes send on every request once the receiver's public key is
// known (about 1 µs against 20 µs to sign and 63 µs to verify on this machine's CPU); a signature
// is used when it is not. Both prove the request comes from the holder of the sender's secret key:
// only the two ends of a pair can compute its key, and the MAC binds sender and receiver names, so
// a request cannot be passed off as coming from the receiver itself or from anyone else. The
// receiver looks the sender's public key up in its membership view (what that node advertises in
// gossip) and checks the proof and the time. The authenticated message binds method, path and a
// hash of the body, so a captured request can only be replayed as itself, to the same node, and
// only within kPeerClockSkewMsMax; peer endpoints are idempotent merges and reads, for which such
// a replay changes nothing.
//
// Paths are signed as sent: plain ASCII without a query string or percent-escapes, which is what
// the receiver sees in httplib::Request::path.
// Thread-safety: pure functions (key_of is called on the caller's thread); PeerMacKeys is safe
// from any thread.
// Invariants: verify_peer_request reads each header at most its named byte limit and accepts a
// request only when every check passes; every refusal is Code::unauthorized with the reason. A
// request carrying both proofs, or neither, is refused.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "dht/result.h"
#include "node/crypto.h"

namespace meshwork {

inline constexpr uint64_t kPeerClockSkewMsMax = 60'000;
inline constexpr size_t kPeerNodeNameBytesMax = 64;         // a member name (gossip's limit)
inline constexpr size_t kPeerTimeHeaderBytesMax = 20;       // digits of a uint64_t
inline constexpr size_t kPeerSignatureHeaderBytesMax = 88;  // base64 of 64 bytes, padded
inline constexpr size_t kPeerMacBytes = 32;
inline constexpr size_t kPeerMacHeaderBytesMax = 44;  // base64 of 32 bytes, padded
inline constexpr size_t kPeerMacKeysMax = 4'096;      // pair keys cached before the cache restarts

inline constexpr const char* kPeerNodeHeader = "X-Meshwork-Node";
inline constexpr const char* kPeerTimeHeader = "X-Meshwork-Time";
inline constexpr const char* kPeerSignatureHeader = "X-Meshwork-Signature";
inline constexpr const char* kPeerMacHeader = "X-Meshwork-Mac";

// "meshwork-peer-v1\n" + method + "\n" + path + "\n" + time + "\n" + blake2b_hex(body).
[[nodiscard]] std::string peer_auth_message(std::string_view method, std::string_view path,
                                            uint64_t time_ms, std::string_view body);

// peer_auth_message() + "\n" + from + "\n" + to: what the MAC covers.
[[nodiscard]] std::string peer_mac_message(std::string_view method, std::string_view path,
                                           uint64_t time_ms, std::string_view body,
                                           std::string_view from, std::string_view to);

// The keys this node shares with each peer: BLAKE2b-256("meshwork-peer-mac-v1" || X25519 ||
// the two Ed25519 public keys in byte order), derived once per peer key (one X25519, ~43 µs)
// and cached.
class PeerMacKeys {
 public:
  explicit PeerMacKeys(const Identity& key);
  // The pair key shared with the holder of `peer_public_key` (raw, 32 bytes), or nullopt for a
  // key that is not usable (see Identity::shared_secret).
  [[nodiscard]] std::optional<std::string> key_for(const std::string& peer_public_key) const;

 private:
  const Identity key_;
  const std::string public_key_;
  mutable std::mutex mu_;
  mutable std::unordered_map<std::string, std::string> cache_;  // peer public key -> pair key
};

// The three auth headers for a request from `self` to `to`, authenticated with `pair_key` (from
// PeerMacKeys::key_for) at `now_ms`.
[[nodiscard]] httplib::Headers peer_mac_headers(const std::string& pair_key,
                                                const std::string& self, std::string_view to,
                                                std::string_view method, std::string_view path,
                                                std::string_view body, uint64_t now_ms);

// The three auth headers for a request from `self`, signed with `key` at `now_ms`.
[[nodiscard]] httplib::Headers peer_auth_headers(const Identity& key, const std::string& self,
                                                 std::string_view method, std::string_view path,
                                                 std::string_view body, uint64_t now_ms);

// Looks up the raw 32-byte public key of a known member, or nullopt.
using PeerKeyLookup = std::function<std::optional<std::string>(std::string_view)>;

// The authenticated sender's name, or Code::unauthorized saying why: a missing, repeated or
// oversized header, an unknown node, a time further than kPeerClockSkewMsMax from now_ms, a
// signature that does not verify over (req.method, req.path, time, req.body), or a MAC that does
// not match (then also sender and `self`); a MAC when `macs` is null.
[[nodiscard]] Result<std::string> verify_peer_request(const httplib::Request& req,
                                                      const PeerKeyLookup& key_of, uint64_t now_ms,
                                                      const PeerMacKeys* macs = nullptr,
                                                      std::string_view self = {});

}  // namespace meshwork
