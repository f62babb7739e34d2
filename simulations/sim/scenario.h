// Scenarios: what happens to the cluster, scheduled up front from the seed.
//
//   mixed   (default) staggered bootstrap; then crashes (one restarts through a seed), a
//           partition of ~10% of the nodes that heals, and a swizzle-clog of ~5%; loss throughout
//   detect  bootstrap, 60 s of quiet (traffic is measured in its last 20 s), then one crash
//           every 20 s
//   calm    bootstrap without loss, then `loss` for the whole window and no faults (false-positive
//           rate against loss)
//   heal    one partition after another (1..N/10 nodes, 3..10 s each, 1..4 s apart); a node on
//           the main side crashes during every other one, up to max(1, min(50, N/20)) crashes
//   stall   no crash and no partition: a third into the window the core of the node running the
//           most handlers stops getting input for `stall_ms` (longer than a lease) while its
//           gossip goes on, so its replicas take its jobs over when the lease runs out
//   hints   max(1, min(50, N/20)) nodes crash as the window opens and restart halfway through;
//           jobs are submitted only while they are down, so their replicas' stand-ins keep hints
//           and replay them when they return
//
// Jobs (workload.h) are submitted over [jobs_from_ms, jobs_to_ms]: from the end of the bootstrap
// to the end of the fault window, except in `hints`.
//
// Every fault lies inside [faults_start_ms, faults_end_ms]; after it the cluster is left alone to
// reach quiescence. Nodes that were cut off or clogged at any time are "unreachable" for the whole
// run: invariant 2 (no false deaths) is not asked of them.
//
// Thread-safety: none. Invariants: a node is crashed at most once; the restarted node rejoins
// through a node that is up at that moment; the plan only schedules, it never runs the cluster.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "simulations/sim/cluster.h"

namespace meshwork::sim {

struct ScenarioOptions {
  std::string name = "mixed";
  uint64_t duration_ms = 60'000;  // the fault window
  uint32_t crashes = 0;           // 0: scale with N
  double loss = 0.01;
  bool deaf_node = false;  // break: node 1 never receives anything (invariants 2 and 3 must fail)
  uint64_t stall_ms = 30'000;  // stall: how long the core gets no input
};

std::optional<std::string> scenario_error(const ScenarioOptions& o);

struct CrashRecord {
  uint32_t node;
  uint64_t at_ms;
  uint64_t incarnation;  // of the instance that crashed: "dead" events about it count
  bool restarted = false;
};

// A node cut off from the others at `at_ms`: one side of a partition, or a clog.
struct CutRecord {
  const char* kind;  // "partition" | "clog"
  uint32_t node;
  uint64_t at_ms;
};

struct StallPlan {
  uint64_t at_ms;
  uint64_t length_ms;
};

struct Plan {
  uint64_t boot_end_ms = 0;
  uint64_t faults_start_ms = 0;
  uint64_t faults_end_ms = 0;
  uint64_t steady_from_ms = 0;  // a window with no faults, for traffic figures
  uint64_t steady_to_ms = 0;
  uint64_t jobs_from_ms = 0;  // client submissions
  uint64_t jobs_to_ms = 0;
  std::vector<StallPlan> stalls;  // run.cpp picks the node when each begins
  std::vector<uint8_t> unreachable;
  std::vector<CrashRecord> crashes;  // filled in as the crashes happen
  std::vector<CutRecord> cuts;       // every node partitioned or clogged, and when
  std::vector<std::string> lines;    // the schedule, for the report
};

// Schedules the scenario on `cluster`. `plan` and `rng` must outlive the run.
void schedule(Cluster& cluster, const ScenarioOptions& o, Random& rng, Plan& plan);

}  // namespace meshwork::sim
