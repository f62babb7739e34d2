// Admission: turns a client's job body into a fresh, verified record before the replica core sees
// it — on the HTTP thread, because verifying an Ed25519 signature or signing a plain job is CPU
// work that must not sit on the node's loop.
//
//   signed envelope  parse → verify the signature and validate the spec (open_envelope) → the
//                    signing key must be allowed (--allowed-keys) → make_record
//   plain job        refused on --require-signed / --allowed-keys nodes (401); else signed with
//                    the node's key (sign_plain_job) → make_record
//
// Every refusal is counted (rejected()). Back-pressure (a full backlog, lagging replication) is
// the core's: it answers 429 per item.
// Thread-safety: every method may be called from any thread.
// Invariants: submissions through this node get strictly increasing times, so that (node, time)
// names one submission (submitted_before in dht/job_record.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "dht/envelope.h"
#include "dht/job_record.h"
#include "dht/result.h"
#include "node/crypto.h"

namespace meshwork {

struct AdmissionOptions {
  Limits limits;
  bool require_signed = false;
  std::optional<std::set<std::string>> allowed_keys;  // raw 32-byte public keys
  // R: a job's redundancy may not exceed the replicas that store it (422 beyond).
  uint32_t redundancy_max = kRedundancyMax;
};

// Does `body` have the shape of a signed envelope ({"job", "signature", ...}) rather than a plain
// job? (Whether it verifies is admit()'s question.)
[[nodiscard]] bool is_signed_envelope(const nlohmann::json& body);

class Admission {
 public:
  Admission(const Identity& key, std::string node_name, AdmissionOptions options);

  // body: a signed envelope or a plain job spec → a fresh queued record, verified (or signed).
  [[nodiscard]] Result<JobRecord> admit(const nlohmann::json& body);
  // Does a peer's record carry an envelope that verifies and a spec this node accepts? (The
  // replica core's EnvelopeCheck, for copies new to this node.)
  [[nodiscard]] bool check(const JobRecord& r) const;

  [[nodiscard]] uint64_t rejected() const { return rejected_.load(); }
  [[nodiscard]] const AdmissionOptions& options() const { return options_; }

 private:
  Result<Envelope> envelope_for(const nlohmann::json& body, JobSpec& spec) const;

  const Identity& key_;
  const std::string node_;
  const AdmissionOptions options_;
  std::atomic<uint64_t> rejected_{0};
  std::mutex mu_;
  uint64_t last_submission_ms_ = 0;  // guarded by mu_
};

}  // namespace meshwork
