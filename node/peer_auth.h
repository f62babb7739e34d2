// Authenticating node-to-node ("peer") HTTP requests with the sending node's Ed25519 key.
//
// A peer request carries three headers: X-Meshwork-Node (the sender's member name),
// X-Meshwork-Time (the sender's wall clock in ms, decimal) and X-Meshwork-Signature (base64 of a
// detached Ed25519 signature over peer_auth_message()). The receiver looks the sender's public key
// up in its membership view (what that node advertises in gossip) and checks the signature and the
// time. The signed message binds method, path and a hash of the body, so a captured request can
// only be replayed as itself, and only within kPeerClockSkewMsMax; peer endpoints are idempotent
// merges and reads, for which such a replay changes nothing.
//
// Paths are signed as sent: plain ASCII without a query string or percent-escapes, which is what
// the receiver sees in httplib::Request::path.
// Thread-safety: pure functions (key_of is called on the caller's thread).
// Invariants: verify_peer_request reads each header at most its named byte limit and accepts a
// request only when every check passes; every refusal is Code::unauthorized with the reason.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "node/crypto.h"
#include "dht/result.h"

namespace meshwork {

inline constexpr uint64_t kPeerClockSkewMsMax = 60'000;
inline constexpr size_t kPeerNodeNameBytesMax = 64;         // a member name (gossip's limit)
inline constexpr size_t kPeerTimeHeaderBytesMax = 20;       // digits of a uint64_t
inline constexpr size_t kPeerSignatureHeaderBytesMax = 88;  // base64 of 64 bytes, padded

inline constexpr const char* kPeerNodeHeader = "X-Meshwork-Node";
inline constexpr const char* kPeerTimeHeader = "X-Meshwork-Time";
inline constexpr const char* kPeerSignatureHeader = "X-Meshwork-Signature";

// "meshwork-peer-v1\n" + method + "\n" + path + "\n" + time + "\n" + blake2b_hex(body).
[[nodiscard]] std::string peer_auth_message(std::string_view method, std::string_view path,
                                            uint64_t time_ms, std::string_view body);

// The three auth headers for a request from `self`, signed with `key` at `now_ms`.
[[nodiscard]] httplib::Headers peer_auth_headers(const Identity& key, const std::string& self,
                                                 std::string_view method, std::string_view path,
                                                 std::string_view body, uint64_t now_ms);

// Looks up the raw 32-byte public key of a known member, or nullopt.
using PeerKeyLookup = std::function<std::optional<std::string>(std::string_view)>;

// The authenticated sender's name, or Code::unauthorized saying why: a missing, repeated or
// oversized header, an unknown node, a time further than kPeerClockSkewMsMax from now_ms, or a
// signature that does not verify over (req.method, req.path, time, req.body).
[[nodiscard]] Result<std::string> verify_peer_request(const httplib::Request& req,
                                                      const PeerKeyLookup& key_of, uint64_t now_ms);

}  // namespace meshwork
