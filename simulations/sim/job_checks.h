// The job invariants, checked after the faults end and the mesh settles (the numbering of
// docs/simulation.md):
//   4 no-lost-jobs       every acknowledged job is held by at least one up node, unless a node
//                        erased it by retention (then it is expired, and no up node may hold it:
//                        a copy still held counts as diverged)
//   5 jobs-terminal      every acknowledged job is succeeded, failed or cancelled in the merge of
//                        the copies its up holders hold
//   6 jobs-converge      for every stored job, each of its replicas (the first R usable members,
//                        as the up nodes now agree) holds exactly that merge (same_state). Not
//                        checked with --liars: who is distrusted is each node's own view, and those
//                        views need not agree, nor then the replica lists (docs/guarantees.md); the
//                        honest copies that differ from the merge, or that remain of a job another
//                        node erased, are reported instead
//   7 no-superseded-start  counted by ReplicaSim at every Start
//  12 retry-kept         every acknowledged job whose retry was answered ok (Workload, --retries)
//                        is terminal in a retry round >= 1 in the merge: the retry was not undone
//  13 honest-result      every acknowledged job of redundancy k >= 3 that succeeded, and whose
//                        final attempt's results count fewer liars than a majority of k, shows the
//                        honest result as its final_result(), or none (--redundancy, --liars;
//                        none: the majority's results were replaced by a later attempt's, which
//                        ran concurrently in another view — counted and reported; or that later
//                        attempt's honest result, when a majority of its runners agree on it —
//                        counted and reported too)
// and what is reported, not failed: duplicate starts and duplicate completions, each counted
// within one retry round (a retried job legitimately runs again), of jobs of redundancy 1 (a
// redundant job's co-runs are not duplicates).
//
// Thread-safety: none; read-only over the simulation.
#pragma once

#include <cstdint>
#include <string>

#include "simulations/sim/cluster.h"
#include "simulations/sim/replica_sim.h"
#include "simulations/sim/workload.h"

namespace meshwork::sim {

struct JobFigures {
  size_t stored = 0;        // jobs some up node holds
  size_t acknowledged = 0;
  size_t lost = 0;          // acknowledged, held by no up node, erased by none
  size_t expired = 0;       // acknowledged and erased by retention
  size_t terminal = 0;      // acknowledged and terminal in the merged view
  size_t unfinished = 0;    // acknowledged, held, not terminal
  size_t diverged = 0;      // stored jobs whose replicas do not all hold the merge
  size_t succeeded = 0, failed = 0, cancelled = 0;  // acknowledged, by final state
  size_t retry_undone = 0;  // retried (answered ok), terminal, but in round 0 in the merge
  size_t redundant = 0, redundant_succeeded = 0;  // acknowledged with k > 1; of them, succeeded
  size_t redundant_unshown = 0;  // succeeded, k >= 3, but no majority left in the record
  size_t redundant_later = 0;    // succeeded, k >= 3, showing a later attempt's honest majority
  size_t dishonest = 0;          // invariant 13: succeeded with a result not the honest one
  size_t stale_honest_copies = 0;  // with --liars: honest copies not the merge (or erased there)
  std::string first_lost, first_unfinished, first_diverged, first_retry_undone, first_dishonest;
  // From the executors' ledger:
  size_t jobs_started = 0, starts = 0;
  size_t duplicate_starts = 0, jobs_started_twice = 0;  // starts while an earlier of the round
                                                        // had not failed
  size_t same_attempt_starts = 0;
  size_t duplicate_completions = 0, jobs_completed_twice = 0;  // succeeded beyond one a round
};

JobFigures job_figures(const Cluster& c, const ReplicaSim& replicas, const Workload& workload);

// True once nothing would fail invariants 4-6 and 12 (the settle loop asks every virtual second).
inline bool jobs_settled(const JobFigures& f) {
  return f.lost == 0 && f.unfinished == 0 && f.diverged == 0 && f.retry_undone == 0;
}

}  // namespace meshwork::sim
