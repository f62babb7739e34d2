// Failover time: how much a fault delayed the jobs it caught running.
//
// For every fault — a crash, a stall, a node cut off by a partition or a clog — at time T on node
// X, and every job whose handler was running on X at T (a run started on X and not ended before
// T) that later succeeds on another node:
//
//   failover_ms = (first commit of a succeeded record, anywhere) − T − (run time of the handler
//                 whose outcome that was)
//
// the delay the failover added beyond the job's own run time. Each sample carries a reason read
// off the job's ledger (replica_sim.h): the first takeover after T and its logged reason (death
// or lease expiry), how long its takeover read waited, the runs in between that did not succeed
// (the taker crashed in turn, a claim was refused, a retry failed), and the phases:
//
//   detect   T → the first takeover log (a dead or suspect claimant, or an expired lease)
//   read     the taker's first takeover fetch → its takeover (part of detect)
//   restart  the takeover (or T) → the start of the run that succeeded
//   record   that run's end → the succeeded record
//
// Thread-safety: none; read-only over a finished run. Everything is sorted on values, so the
// figures are a function of the run (they stay out of the trace digest: they add no decision).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "simulations/sim/replica_sim.h"

namespace meshwork::sim {

struct Fault {
  const char* kind;  // crash | stall | partition | clog
  uint32_t node;
  uint64_t at_ms;
};

struct FailoverSample {
  uint64_t seed = 0;
  std::string id;
  const char* kind = "";
  uint32_t node = 0;
  uint64_t at_ms = 0;
  int64_t failover_ms = 0;  // negative when another run had started before the fault
  std::string reason;
};

// One sample per (fault, job) pair as above, slowest first.
std::vector<FailoverSample> failover_samples(const ReplicaSim& replicas,
                                             const std::vector<Fault>& faults, uint64_t seed);

// "failover: N jobs, p50 …, p99 …, max …" and the `slowest` slowest samples, one line each
// (with the seed when `with_seed`). `samples` must be sorted slowest first.
void print_failover(std::ostream& out, const std::string& label,
                    const std::vector<FailoverSample>& samples, size_t slowest, bool with_seed);

// Sorts slowest first: failover time, then seed, fault time, node and job id.
void sort_slowest_first(std::vector<FailoverSample>& samples);

}  // namespace meshwork::sim
