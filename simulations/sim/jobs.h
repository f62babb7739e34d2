// Job records over the simulated network: a few hundred records, each held by its R-node
// preference list (dht::Ring over all node names), changed at random replicas (claims, lease
// renewals, results, failures, cancel requests), shipped as encoded records over the same lossy,
// duplicating, reordering network as the gossip, and repaired by anti-entropy (each replica pushes
// its copy to a random co-replica every interval; a receiver that holds more answers with the
// merge). The real node/job_record merge and codec do all the work.
//
// Stores survive crashes (they model LevelDB on disk); a down node neither changes nor receives.
//
// Thread-safety: none. Invariants: every stored copy is the merge of copies that were produced by
// some replica; a change is made only by an up replica that holds the record.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dht/job_record.h"
#include "simulations/sim/cluster.h"

namespace meshwork::sim {

inline constexpr uint32_t jobs_max = 100'000;
inline constexpr uint32_t job_replicas = 3;

struct JobOptions {
  uint32_t jobs = 300;
  uint32_t changes_per_job = 4;
  uint64_t anti_entropy_ms = 1'000;
  bool anti_entropy = true;  // false is a break: lost copies are never repaired
};

class JobSim {
 public:
  JobSim(Cluster& cluster, JobOptions o, Random rng);

  // Creates and changes the records in [from_ms, to_ms]; anti-entropy runs from from_ms on.
  void schedule(uint64_t from_ms, uint64_t to_ms);
  // The first way the up replicas disagree, or nullopt when every job has converged.
  std::optional<std::string> divergence() const;
  // Folds every copy ever produced, per job, in three random orders; a complaint if the results
  // differ or differ from what the replicas hold when all of them are up.
  std::optional<std::string> order_independence(Random& rng) const;
  uint64_t messages() const { return messages_; }

 private:
  struct Job {
    std::string id;
    std::vector<uint32_t> replicas;
    std::vector<JobRecord> versions;  // every copy a change produced
    bool created = false;             // false while every replica was down at its birth
  };

  void create(uint32_t job);
  void change(uint32_t job);
  void anti_entropy();
  void ship(uint32_t from, uint32_t to, const JobRecord& r, bool want_reply);
  void on_message(uint32_t to, uint32_t from, const std::string& bytes);
  JobRecord* held(uint32_t node, uint32_t job);

  Cluster& cluster_;
  JobOptions o_;
  Random rng_;
  std::vector<Job> jobs_;
  std::map<std::string, uint32_t> job_by_id_;
  std::vector<std::map<uint32_t, JobRecord>> stores_;  // per node: job index -> record
  uint64_t messages_ = 0;
  uint64_t decode_errors_ = 0;
};

}  // namespace meshwork::sim
