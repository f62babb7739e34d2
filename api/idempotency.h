// Idempotency-Key on a plain submission (POST /v1/jobs without a signed envelope).
//
// A plain job is signed by the node that takes it, with a fresh nonce and created_at, so sending
// the same body twice makes two jobs. With `Idempotency-Key: K` the node remembers, for K, a hash
// of the body and the nonce and created_at it chose. A request with the same K and the same body
// within the window (the retention, --retain-s) is given the same nonce and created_at again;
// Ed25519 signatures are deterministic, so it is the same signed job with the same id, and the
// mesh answers it as it answers any resubmission: 200 with the job (or 202 if the first request
// never reached a quorum). The entry is written, synced, before the job is submitted, so a crash
// between the two cannot make a second job.
//
// Scope: the entry lives on the node that took the request. A client that retries through another
// node makes a second job; a client that needs mesh-wide idempotency signs its jobs (a signed
// job's id does not depend on the node it enters through). docs/api.md says so.
//
// The header: 1 to kIdempotencyKeyBytesMax visible ASCII characters (0x21–0x7e), optionally as a
// quoted string ("..." as the IETF idempotency-key draft writes it). Anything else → 400. A key
// reused with a different body → 422. A request while another with the same key is being
// submitted on this node → 409.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dht/result.h"

namespace meshwork::api {

inline constexpr const char* kIdempotencyKeyHeader = "Idempotency-Key";
inline constexpr size_t kIdempotencyKeyBytesMax = 255;

// nullopt: no header. Else the hex BLAKE2b-256 of the key (what the store is keyed by), or
// Code::malformed naming the problem. `count` is how many times the header came.
[[nodiscard]] Result<std::optional<std::string>> parse_idempotency_key(
    std::optional<std::string_view> value, size_t count);

struct IdempotencyEntry {
  std::string body_hash;  // hex BLAKE2b-256 of the request body as parsed and dumped (canonical)
  std::string nonce;      // what the job was given
  uint64_t created_at_ms = 0;
  uint64_t at_ms = 0;  // when the key was first used (the window counts from here)
};

[[nodiscard]] std::string encode_idempotency_entry(const IdempotencyEntry& e);
// Never throws; nullopt for anything that is not an entry this code wrote.
[[nodiscard]] std::optional<IdempotencyEntry> decode_idempotency_entry(std::string_view bytes);

}  // namespace meshwork::api
