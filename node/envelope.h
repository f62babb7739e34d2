// Parsing, verifying and signing job envelopes (the types are in dht/envelope.h).
//
// A job spec is {"type", "payload", "nonce", "created_at", "max_attempts"?, "timeout_ms"?,
// "priority"? (0–9), "delay_ms"? (0–30 days)}. Its `type` must name a registered handler whose
// validator accepts `payload`.
// Thread-safety: value types and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "dht/envelope.h"
#include "node/crypto.h"

namespace meshwork {

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

}  // namespace meshwork
