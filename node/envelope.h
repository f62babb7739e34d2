// Parsing, verifying and signing job envelopes (the types are in dht/envelope.h).
//
// A job spec is {"type", "payload", "nonce", "created_at", "max_attempts"?, "timeout_ms"?,
// "priority"? (0–9), "delay_ms"? (0–30 days)}. Its `type` must name a registered handler whose
// validator accepts `payload`.
// A job may be signed alone (the signature over its text) or in a batch (over the Merkle root of
// its batch, dht/envelope.h); open_envelope verifies either, a batch's signature once through a
// VerifiedSignatures cache.
// Thread-safety: value types and pure functions (a VerifiedSignatures cache locks itself).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "dht/envelope.h"
#include "node/crypto.h"

namespace meshwork {

class VerifiedSignatures;  // node/receipt_check.h

// Parses the envelope's shape (400 on malformed, 422 on wrong field types, or on batch fields
// that cannot be a proof: a root or sibling not 64 lowercase hex characters, more than
// kMerkleLevelsMax siblings, an index past its proof, an index or proof without a root); does not
// verify.
[[nodiscard]] Result<Envelope> parse_envelope(const nlohmann::json& body);

// Verifies the envelope (401: the signature over the job text; or, signed in a batch, the proof
// from the job's leaf to its root and the signature over the root — through `verified` when given,
// so that the jobs of one batch cost one Ed25519 verification; a job signed alone through
// `verified_jobs` when given) and parses and validates the spec inside (400/413/422).
[[nodiscard]] Result<JobSpec> open_envelope(const Envelope& env, const Limits& limits,
                                            VerifiedSignatures* verified = nullptr,
                                            VerifiedSignatures* verified_jobs = nullptr);

// Parses and validates a spec object: known type, payload accepted by its handler, bounded fields.
[[nodiscard]] Result<JobSpec> parse_spec(const nlohmann::json& spec, const Limits& limits);

// Builds a signed envelope from a plain job body {"type","payload",...}, filling in `nonce` and
// `created_at` when they are absent. When `spec_out` is given it receives the parsed spec of the
// signed text, so the caller need not parse it again.
[[nodiscard]] Result<Envelope> sign_plain_job(const nlohmann::json& body, const Identity& key,
                                              uint64_t now_ms, const Limits& limits,
                                              JobSpec* spec_out = nullptr);
// The job text sign_plain_job signs: `body` validated (400/413/422), nonce and created_at filled
// in when absent; its parsed spec into `spec_out` when given.
[[nodiscard]] Result<std::string> plain_job_text(const nlohmann::json& body, uint64_t now_ms,
                                                 const Limits& limits, JobSpec* spec_out = nullptr);
// The envelopes of `texts` (1 to kJobBatchMax, asserted) signed by `key` with one signature over
// the root of their batch (batch_envelopes, jobs_root_message).
[[nodiscard]] std::vector<Envelope> sign_job_batch(const std::vector<std::string>& texts,
                                                   const Identity& key);

}  // namespace meshwork
