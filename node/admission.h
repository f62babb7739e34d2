// Admission: turns a client's job body into a fresh, verified record before the replica core sees
// it — on the HTTP thread, because verifying an Ed25519 signature or signing a plain job is CPU
// work that must not sit on the node's loop.
//
//   signed envelope  parse → verify the signature and validate the spec (open_envelope) → the
//                    signing key must be allowed (--allowed-keys) → make_record
//   plain job        refused on --require-signed / --allowed-keys nodes (401); else signed with
//                    the node's key (sign_plain_job) → make_record
//   a batch body     (POST /v1/jobs/batch) each item as above, except that the plain jobs of a
//                    batch are signed together: one signature over their Merkle root
//                    (sign_job_batch); admit_batch
//   a signed batch   {"jobs": [{"job": text}, ...], "public_key", "signature"}: one client
//                    signature over the root of its jobs; verified once for the whole batch (401
//                    for all), then each job gets its envelope with root, index and proof and is
//                    admitted as a signed envelope; admit_signed_batch
//
// A batch's signature is verified once per node: the (key, root, signature) triples that verified
// are remembered (VerifiedSignatures, shared by admission and the worker's check), so the other
// jobs of a batch cost a leaf hash and a proof fold (root_verifications() counts the Ed25519 ones).
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
#include <vector>

#include <nlohmann/json.hpp>

#include "dht/envelope.h"
#include "dht/job_record.h"
#include "dht/result.h"
#include "node/crypto.h"
#include "node/receipt_check.h"

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
  // The items of a batch body, one result per item: envelopes as admit() takes them, and the
  // plain jobs signed together (two or more: one signature over their root; one alone as admit()
  // signs it). An item that is not an object is 400.
  [[nodiscard]] std::vector<Result<JobRecord>> admit_batch(const nlohmann::json& items);
  // A batch body signed once (`body` has "signature"): 400 (not {"jobs": [...], "public_key",
  // "signature"}), 422 (an item that is not {"job": "<text>"}, or more than kJobBatchMax) or 401
  // (the signature does not cover the root of these jobs under this key) for the whole batch;
  // else one result per item, each admitted as its own batch-signed envelope.
  [[nodiscard]] Result<std::vector<Result<JobRecord>>> admit_signed_batch(
      const nlohmann::json& body);
  // Does a record carry an envelope that verifies and a spec this node accepts? (The worker's
  // EnvelopeCheck before it runs a job; a batch's signature is verified once.)
  [[nodiscard]] bool check(const JobRecord& r) const;

  [[nodiscard]] uint64_t rejected() const { return rejected_.load(); }
  // Ed25519 verifications of batch roots actually run (not remembered), admission and check.
  [[nodiscard]] uint64_t root_verifications() const { return verified_.verifications(); }
  // ... and of jobs signed alone.
  [[nodiscard]] uint64_t job_verifications() const { return verified_jobs_.verifications(); }
  [[nodiscard]] const AdmissionOptions& options() const { return options_; }

 private:
  Result<Envelope> envelope_for(const nlohmann::json& body, JobSpec& spec) const;
  Result<JobSpec> open_signed(const Envelope& env) const;
  void remember_signed(const Envelope& env) const;
  // A record for a verified (or freshly signed) envelope and its spec: its submission time, the
  // delay and redundancy bounds.
  Result<JobRecord> record_for(Envelope env, const JobSpec& spec);
  Result<JobRecord> counted(Result<JobRecord> r);

  const Identity& key_;
  const std::string node_;
  const AdmissionOptions options_;
  std::atomic<uint64_t> rejected_{0};
  mutable VerifiedSignatures verified_;  // batch roots
  // Jobs signed alone: verified at admission, or signed here (remembered), so that the worker's
  // check of a job that entered through this node costs no second Ed25519 verification.
  mutable VerifiedSignatures verified_jobs_;
  std::mutex mu_;
  uint64_t last_submission_ms_ = 0;  // guarded by mu_
};

}  // namespace meshwork
