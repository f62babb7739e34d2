// The invariants checked after quiescence (the numbering of docs/simulation.md):
//   1 dead-detected  every crashed, not restarted node is dead or left in every live node's view
//   3 agreement      every live node sees exactly the live nodes as alive, and so builds the same
//                    ring (compared by a digest of preference lists)
// Invariant 2 (no false deaths) is counted while the run goes (run.cpp); the job invariants 4-8
// are in job_checks.h and replica_sim.h.
//
// Thread-safety: none; read-only over the cluster.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "simulations/sim/cluster.h"
#include "simulations/sim/scenario.h"

namespace meshwork::sim {

// Above this many nodes invariant 3's authoritative pass reads only a sample of member lists.
inline constexpr uint32_t full_member_lists_max = 2'000;
inline constexpr uint32_t member_list_sample = 500;

// True when every live node's event-tracked view matches which nodes are up.
bool views_converged(const Cluster& c);

std::optional<std::string> check_dead_detected(const Cluster& c, const Plan& plan);

// Reads real member lists (all of them, or a sample drawn from `rng`) and compares the sets of
// live names and the rings built from them. Sets `ring_digest` to the digest of the common ring.
std::optional<std::string> check_agreement(const Cluster& c, Random& rng, uint64_t& ring_digest);

}  // namespace meshwork::sim
