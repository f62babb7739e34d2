// Signed job envelopes and job specs.
//
// An envelope is {"job": "<JSON text of the job spec>", "public_key": "<b64>", "signature": "<b64>"}.
// The Ed25519 signature covers the exact bytes of `job`; the job id is the hex BLAKE2b-256 of those
// bytes followed by the 32 raw public-key bytes, so the same signed job always has the same id and a
// second submission of it is recognised (idempotent submission).
//
// A job spec is {"type", "payload", "nonce", "created_at", "max_attempts"?, "timeout_ms"?}. Its
// `type` must name a registered handler whose validator accepts `payload`.
// Thread-safety: value types and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "node/crypto.h"
#include "node/result.h"

namespace meshwork {

inline constexpr size_t kJobTextBytesMax = 300 * 1024;    // the signed `job` text
inline constexpr size_t kNonceBytesMax = 128;
inline constexpr uint32_t kMaxAttemptsDefault = 3;
inline constexpr uint32_t kMaxAttemptsMax = 20;
inline constexpr uint64_t kTimeoutMsDefault = 300'000;
inline constexpr uint64_t kTimeoutMsMax = 24ull * 3600 * 1000;

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
};

struct Envelope {
  std::string job;         // the signed JSON text of the spec
  std::string public_key;  // 32 raw bytes
  std::string signature;   // 64 raw bytes

  [[nodiscard]] std::string id() const { return blake2b_hex(job, public_key); }
  [[nodiscard]] nlohmann::json to_json() const;
};

// Parses the envelope's shape (400 on malformed, 422 on wrong field types); does not verify.
[[nodiscard]] Result<Envelope> parse_envelope(const nlohmann::json& body);

// Verifies the signature (401) and parses and validates the spec inside (400/413/422).
[[nodiscard]] Result<JobSpec> open_envelope(const Envelope& env, const Limits& limits);

// Parses and validates a spec object: known type, payload accepted by its handler, bounded fields.
[[nodiscard]] Result<JobSpec> parse_spec(const nlohmann::json& spec, const Limits& limits);

// Builds a signed envelope from a plain job body {"type","payload",...}, filling in `nonce` and
// `created_at` when they are absent. When `spec_out` is given it receives the parsed spec of the
// signed text, so the caller need not parse it again.
[[nodiscard]] Result<Envelope> sign_plain_job(const nlohmann::json& body, const Identity& key,
                                              uint64_t now_ms, const Limits& limits,
                                              JobSpec* spec_out = nullptr);

// True when `s` looks like a job id: 64 lowercase hex characters.
[[nodiscard]] bool is_job_id(std::string_view s);

}  // namespace meshwork
