// One simulated run from a seed: schedule the scenario and the clients' jobs, run the faults (and
// the stalls), wait for quiescence, check the invariants and report figures. Everything printed
// depends only on the options (the seed among them), never on wall-clock time or addresses.
//
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "gossip/config.h"
#include "simulations/sim/failover.h"
#include "simulations/sim/network.h"
#include "simulations/sim/replica_sim.h"
#include "simulations/sim/scenario.h"
#include "simulations/sim/workload.h"

namespace meshwork::sim {

struct RunOptions {
  uint32_t nodes = 1'000;
  uint64_t seed = 5;
  gossip::Config gossip;
  NetworkParams net;
  ScenarioOptions scenario;
  ReplicaOptions replicas;
  WorkloadOptions workload;
  // Invariant 2 is asserted only while loss <= this; above it false deaths are counted, not failed.
  double loss_bound = 0.05;
  uint64_t settle_max_ms = 300'000;  // how long quiescence may take after the last fault
  bool verbose = false;              // print every member event and every core log line
  bool quiet = false;                // print one line
  std::string trace_job;             // print every action on jobs whose id starts with this
};

struct RunReport {
  bool ok = true;
  std::string invariant;  // the first that failed (every failure is printed)
  std::string detail;
  uint64_t digest = 0;
  std::vector<FailoverSample> failover;  // slowest first (failover.h)
};

RunReport run(const RunOptions& o, std::ostream& out);

}  // namespace meshwork::sim
