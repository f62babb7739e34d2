// The simulated clients: jobs submitted over the run to random up nodes, some cancelled, some
// read back; what the mesh acknowledged is remembered for the checks (job_checks.h).
//
// A job is a signed-looking envelope: the spec's JSON text, a client key and a "signature" that
// is BLAKE2b of the job id under a simulator key — checked by sim_signature_ok, which the
// simulated executor runs before a handler, as the node's JobRunner verifies Ed25519. It is
// deterministic and costs one small hash, where Ed25519 would cost the simulator far more at
// thousands of nodes; the record codec still checks that each id is the hash of its envelope.
//
// A submission answered `ok` is ACKNOWLEDGED. One refused (503, 429) or unanswered for
// reply_timeout_ms is sent again, the same signed job, to another random up node, up to
// submit_tries_max times; a late `ok` to an earlier try still counts.
//
// With retry_fraction > 0, a cancel answered `ok` (the job is, or will be, a dead letter) is
// followed, with that probability, by a retry of the job 0..3 s later at a random up node; a retry
// answered `ok` must not be undone (job_checks.h). At 0 no draw is made for it, so runs without
// retries replay as before.
//
// With redundancy_fraction > 0, that share of jobs carries "redundancy": 3 (runs on three replicas,
// the majority's result wins; dht/verdict.h). At 0 no draw is made for it either.
//
// Thread-safety: none. Invariants: every request id is used once; a job's envelope never changes
// between tries, so its id does not either.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "dht/job_record.h"
#include "dht/receipt.h"
#include "simulations/sim/cluster.h"
#include "simulations/sim/replica_sim.h"

namespace meshwork::sim {

inline constexpr uint32_t jobs_max = 100'000;

// The envelope check of the simulated executor.
bool sim_signature_ok(const JobRecord& r);
// The replica core's receipt check (ReplicaConfig::receipt_check): a "sim" receipt (key and
// signature "sim", as the simulated executor signs) passes the rule of dht/receipt.h but for the
// signature; any other is forged.
ReceiptCheck sim_receipt_check(const std::string& job_id, const NodeResult& r);

struct WorkloadOptions {
  uint32_t jobs = 300;
  double cancel_fraction = 0.05;  // of acknowledged jobs, cancelled 0..3 s after the ack
  double read_fraction = 0.1;     // of acknowledged jobs, read back 0..10 s after the ack
  uint32_t submit_tries_max = 5;
  uint64_t reply_timeout_ms = 15'000;
  uint64_t retry_ms_min = 1'000, retry_ms_max = 3'000;
  bool priorities = false;      // each job a random priority 0..9 (else the default)
  double delayed_fraction = 0;  // of jobs, given a delay_ms of 1..delay_ms_max
  uint64_t delay_ms_max = 20'000;
  double retry_fraction = 0;  // of cancels answered ok, retried 0..3 s after the answer
  double redundancy_fraction = 0;  // of jobs, given redundancy kSimRedundancy
};

inline constexpr uint32_t kSimRedundancy = 3;

struct ClientJob {
  std::string id;
  Envelope envelope;
  JobSpec spec;
  uint32_t tries = 0;
  bool acknowledged = false;
  uint64_t acknowledged_ms = 0;
  bool cancel_sent = false;
  bool retry_ok = false;  // a retry of it was answered ok
};

struct WorkloadCounts {
  uint64_t submits = 0, refused = 0, unanswered_retries = 0;
  uint64_t cancels = 0, cancels_ok = 0;
  uint64_t reads = 0, reads_ok = 0, reads_not_found = 0;  // not_found for an acknowledged job
  uint64_t retries = 0, retries_ok = 0, retries_conflict = 0;  // conflict: not a dead letter (yet)
};

class Workload {
 public:
  Workload(Cluster& cluster, ReplicaSim& replicas, WorkloadOptions o, Random rng);

  // Submits the jobs at random instants in [from_ms, to_ms].
  void schedule(uint64_t from_ms, uint64_t to_ms);
  const std::vector<ClientJob>& jobs() const { return jobs_; }
  const WorkloadCounts& counts() const { return counts_; }
  const WorkloadOptions& options() const { return o_; }
  size_t acknowledged() const;

 private:
  enum class Kind : uint8_t { submit, cancel, read, retry };
  struct Request {
    Kind kind;
    uint32_t job;
    bool answered = false;
  };

  void submit(uint32_t job);
  void on_reply(uint32_t node, const Reply& reply);
  void on_timeout(uint64_t request);
  void retry(uint32_t job);
  void follow_up(uint32_t job);
  // After a cancel answered ok: maybe a retry of the dead letter.
  void maybe_retry(uint32_t job);
  // Sends a cancel, read or retry of the job to a random up node `after_ms` from now.
  void later(Kind kind, uint32_t job, uint64_t after_ms);
  // A random up node (stalled or not: a client cannot tell).
  uint32_t random_up_node();

  Cluster& c_;
  ReplicaSim& replicas_;
  WorkloadOptions o_;
  Random rng_;
  std::vector<ClientJob> jobs_;
  std::map<uint64_t, Request> requests_;
  uint64_t next_request_ = 1;
  WorkloadCounts counts_;
};

}  // namespace meshwork::sim
