// Signed client requests on a job (cancel, retry): who sent it, and may they?
//
// A client proves that a request comes from the holder of an Ed25519 key with three headers:
//   Meshwork-Key        base64 of the raw 32-byte public key
//   Meshwork-Time       the client's wall clock, ms since the epoch, decimal
//   Meshwork-Signature  base64 of a detached Ed25519 signature over client_request_message():
//                       "meshwork-request-v1\n" + action + "\n" + job id + "\n" + time
// The message names the action and the job, so a signature cancels (or retries) that one job and
// nothing else;
// it is good within kClientRequestSkewMsMax of the node's clock, and a node accepts it once
// (ReplayGuard). A request on a job is authorised (authorize_job_request) when the job is open —
// a plain job, signed by a node, on a node that takes plain jobs — or when it is signed by the
// job's own key or by an admin key (--admin-keys).
//
// Errors, in the order they are checked: a header missing while another is there, repeated, empty,
// too long, not base64 of the right length, or a time that is not a decimal number → malformed
// (400); a time too far from the node's or a signature that does not verify → unauthorized (401);
// a valid signature seen before → unauthorized (401); no signature, or one by a key that is
// neither the job's nor an admin's, on a job that is not open → forbidden (403).
//
// Thread-safety: free functions are pure (the time is an argument); a ReplayGuard is not
// thread-safe (its owner serialises calls).
// Invariants: a ReplayGuard holds at most entries_max requests, none past its expiry after a call.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "dht/result.h"
#include "node/crypto.h"

namespace meshwork {

inline constexpr const char* kClientKeyHeader = "Meshwork-Key";
inline constexpr const char* kClientTimeHeader = "Meshwork-Time";
inline constexpr const char* kClientSignatureHeader = "Meshwork-Signature";

inline constexpr uint64_t kClientRequestSkewMsMax = 5 * 60'000;  // ±5 min from the node's clock
inline constexpr size_t kClientKeyHeaderBytesMax = 44;           // base64 of 32 bytes, padded
inline constexpr size_t kClientSignatureHeaderBytesMax = 88;     // base64 of 64 bytes, padded
inline constexpr size_t kClientTimeHeaderBytesMax = 20;          // digits of a uint64_t
inline constexpr size_t kReplayEntriesMax = 65'536;              // requests a ReplayGuard keeps

inline constexpr std::string_view kCancelAction = "cancel";
inline constexpr std::string_view kRetryAction = "retry";

// The text a client signs: "meshwork-request-v1\n" + action + "\n" + job_id + "\n" + time_ms.
[[nodiscard]] std::string client_request_message(std::string_view action, std::string_view job_id,
                                                 uint64_t time_ms);

// The three headers for `action` on `job_id`, signed with `key` at `now_ms` (the CLI's side).
[[nodiscard]] httplib::Headers client_request_headers(const Identity& key, std::string_view action,
                                                      std::string_view job_id, uint64_t now_ms);

// What a request said in the three headers, as found.
struct ClientAuthHeaders {
  std::optional<std::string> key, time, signature;  // nullopt: absent
  bool repeated = false;                            // one of them came more than once
};
[[nodiscard]] ClientAuthHeaders client_auth_headers(const httplib::Request& req);

struct ClientSignature {
  std::string public_key;  // 32 raw bytes
  std::string signature;   // 64 raw bytes
  uint64_t time_ms = 0;
};

// nullopt when none of the headers is there (an unsigned request); the decoded signature when all
// three are well formed; else Code::malformed naming the header and what is wrong with it.
[[nodiscard]] Result<std::optional<ClientSignature>> parse_client_signature(
    const ClientAuthHeaders& h);

// Code::unauthorized when s.time_ms is more than kClientRequestSkewMsMax from now_ms (wall
// clock), or when the signature does not verify over client_request_message(action, job_id, time).
[[nodiscard]] Status verify_client_signature(const ClientSignature& s, std::string_view action,
                                             std::string_view job_id, uint64_t now_ms);

// Ok when `job_open`, or when `s` (already verified) is by `job_key` or by one of `admin_keys`
// (raw 32-byte keys); else Code::forbidden saying who may.
[[nodiscard]] Status authorize_job_request(const std::optional<ClientSignature>& s,
                                           std::string_view job_key, bool job_open,
                                           const std::set<std::string>& admin_keys);

// The signed requests a node has accepted, kept until their time is too old to pass
// verify_client_signature, so that each is accepted once. A request is known by its key and the
// message it signs (not the signature's bytes). When full, the entry that expires first is dropped.
class ReplayGuard {
 public:
  explicit ReplayGuard(size_t entries_max = kReplayEntriesMax);  // entries_max >= 1

  // True the first time this (key, action, job, time) is offered at or before its expiry; false
  // for a replay. now_ms: wall clock.
  [[nodiscard]] bool first_use(const ClientSignature& s, std::string_view action,
                               std::string_view job_id, uint64_t now_ms);
  [[nodiscard]] size_t size() const { return seen_.size(); }

 private:
  const size_t entries_max_;
  std::map<std::string, uint64_t> seen_;               // digest -> expiry (wall ms)
  std::set<std::pair<uint64_t, std::string>> expiry_;  // (expiry, digest), soonest first
};

}  // namespace meshwork
