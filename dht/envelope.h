// Signed job envelopes and job specs: the types and their pure parts.
//
// An envelope is {"job": "<JSON text of the job spec>", "public_key": "<b64>", "signature":
// "<b64>"}. The Ed25519 signature covers the exact bytes of `job`; the job id is the hex
// BLAKE2b-256 of those bytes followed by the 32 raw public-key bytes, so the same signed job always
// has the same id and a second submission of it is recognised (idempotent submission).
//
// A job spec is {"type", "payload", "nonce", "created_at", "max_attempts"?, "timeout_ms"?,
// "priority"?, "delay_ms"?, "redundancy"?}. Every field is signed, so every copy of a job carries
// the same values.
// Parsing, validating (against the handler registry) and signing are the node's: node/envelope.h.
// Thread-safety: value types and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "dht/hash.h"
#include "dht/result.h"

namespace meshwork {

inline constexpr size_t kJobTextBytesMax = 300 * 1024;  // the signed `job` text
inline constexpr size_t kNonceBytesMax = 128;
inline constexpr uint32_t kMaxAttemptsDefault = 3;
inline constexpr uint32_t kMaxAttemptsMax = 20;
inline constexpr uint64_t kTimeoutMsDefault = 300'000;
inline constexpr uint64_t kTimeoutMsMax = 24ull * 3600 * 1000;
// Higher runs first (the run queue, dht/run_queue.h).
inline constexpr uint32_t kPriorityDefault = 5;
inline constexpr uint32_t kPriorityMax = 9;
// A delayed job runs no earlier than delay_ms after its created_at (JobRecord::run_after_ms).
inline constexpr uint64_t kDelayMsMax = 30ull * 24 * 3600 * 1000;
// A job of redundancy k runs on k replicas at once; its result is the one a majority of their
// signed receipts agree on (dht/verdict.h). At most R (the entry node refuses more) and this.
inline constexpr uint32_t kRedundancyDefault = 1;
inline constexpr uint32_t kRedundancyMax = 7;

struct Limits {
  size_t payload_bytes_max = 256 * 1024;  // the serialised `payload`
};

struct JobSpec {
  std::string type;
  nlohmann::json payload;
  std::string nonce;
  uint64_t created_at_ms = 0;
  uint32_t max_attempts = kMaxAttemptsDefault;
  uint64_t timeout_ms = kTimeoutMsDefault;
  uint32_t priority = kPriorityDefault;
  uint64_t delay_ms = 0;
  uint32_t redundancy = kRedundancyDefault;
};

struct Envelope {
  std::string job;         // the signed JSON text of the spec
  std::string public_key;  // 32 raw bytes
  std::string signature;   // 64 raw bytes

  [[nodiscard]] std::string id() const { return blake2b_hex(job, public_key); }
  [[nodiscard]] nlohmann::json to_json() const;
};

// True when `s` looks like a job id: 64 lowercase hex characters.
[[nodiscard]] bool is_job_id(std::string_view s);

}  // namespace meshwork
