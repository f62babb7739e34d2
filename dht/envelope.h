// Signed job envelopes and job specs: the types and their pure parts.
//
// An envelope is {"job": "<JSON text of the job spec>", "public_key": "<b64>", "signature":
// "<b64>"}. The Ed25519 signature covers the exact bytes of `job`; the job id is the hex
// BLAKE2b-256 of those bytes followed by the 32 raw public-key bytes, so the same signed job always
// has the same id and a second submission of it is recognised (idempotent submission).
//
// A job signed in a batch (docs/protocol.md, "Jobs signed per batch") carries instead "root" (hex),
// "index" and "proof" (hex siblings from the bottom) of a Merkle tree (dht/merkle.h) over the jobs
// of its batch, and its signature covers jobs_root_message(root):
//   leaf_i    = merkle_leaf(i, "meshwork-job-v1|" + id_i)       (the id binds the text and key)
//   signature = Ed25519 over "meshwork-jobs-v1|<root hex>"
// The id is unchanged (BLAKE2b-256(job || public key)): one job signed alone or in a batch is one
// job. Two copies of a job may so differ in their envelope; merge keeps the lesser by
// envelope_before (dht/job_record.h), so copies converge on one envelope.
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
#include <vector>

#include <nlohmann/json.hpp>

#include "dht/hash.h"
#include "dht/merkle.h"
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

// A client or node signs at most this many jobs under one root (a batch body holds fewer).
inline constexpr size_t kJobBatchMax = kReceiptBatchMax;

struct Envelope {
  std::string job;         // the signed JSON text of the spec
  std::string public_key;  // 32 raw bytes
  std::string signature;   // 64 raw bytes
  // Signed in a batch: the root (64 lowercase hex), this job's leaf index and its proof (hex
  // siblings from the bottom). An empty root: the signature is over `job` itself.
  std::string root{};
  uint32_t index = 0;
  std::vector<std::string> proof{};

  [[nodiscard]] std::string id() const { return blake2b_hex(job, public_key); }
  [[nodiscard]] bool batched() const { return !root.empty(); }
  // What the signature covers: `job`, or jobs_root_message(root) when batched.
  [[nodiscard]] std::string signed_message() const;
  // Whether a batched envelope's proof leads from its leaf to its root (true when not batched);
  // false for a malformed root, sibling, index or proof length (dht/merkle.h, invariant 2).
  [[nodiscard]] bool proof_holds() const;
  // {"job", "public_key", "signature"}, plus "root", "index" and "proof" when batched.
  [[nodiscard]] nlohmann::json to_json() const;
};

// What leaf `index` of a job batch holds: "meshwork-job-v1|<job id>".
[[nodiscard]] std::string job_leaf_message(const std::string& job_id);
// What one signature covers for a batch of jobs: "meshwork-jobs-v1|<root hex>".
[[nodiscard]] std::string jobs_root_message(const std::string& root_hex);

// The envelopes of `texts` (1 to kJobBatchMax job texts, asserted), in order, signed together by
// the holder of `public_key`: each carries the batch's root, its index and its proof; the
// signature is left for the caller to set (over jobs_root_message of the root).
[[nodiscard]] std::vector<Envelope> batch_envelopes(const std::vector<std::string>& texts,
                                                    const std::string& public_key);

// True when `s` looks like a job id: 64 lowercase hex characters.
[[nodiscard]] bool is_job_id(std::string_view s);

}  // namespace meshwork
