// The verdict of a redundant job's attempt: which result, if any, a majority of its runners agree
// on. A job of redundancy k (JobRecord::redundancy) runs each attempt on k replicas (the claimant
// and k − 1 co-runners, replica.h); each signs a receipt for its result, and the results are kept
// per producing node in the record. This module reads them; it decides nothing else.
//
// Over the results of `attempt` whose outcome is succeeded or failed (a cancelled run says nothing
// about the answer), grouped by (outcome, receipt.result_hash), with majority m = k/2 + 1:
//   decided    one group has at least m members and more than any other group: its outcome and
//              hash are the attempt's; its nodes agree, every other node with a result dissents
//   disagree   not decided, and no group can still get there: every group plus the results still
//              missing (k minus those in) stays below m, or k or more results are in
//   pending    otherwise: results are still to come
// For k = 1 the one result decides. Handlers of a job with k > 1 must be deterministic (the same
// payload gives the same result text on every node), or honest runners disagree.
//
// Thread-safety: pure functions over a value. Invariant: a decided verdict's agreeing nodes number
// at least m, so two different results can never both be decided for one attempt of k runners.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dht/job_record.h"

namespace meshwork {

struct Verdict {
  enum class Kind : uint8_t { pending, decided, disagree } kind = Kind::pending;
  JobState outcome = JobState::failed;  // decided: succeeded or failed
  std::string result_hash;              // decided: the majority's receipt hash
  std::vector<std::string> agreeing;    // decided: in name order
  std::vector<std::string> dissenting;  // decided: the other nodes with a result, in name order
  size_t results = 0;                   // results of the attempt that count (succeeded, failed)
  size_t majority = 0;                  // k/2 + 1
};

[[nodiscard]] Verdict result_verdict(const JobRecord& r, uint32_t attempt);

// The verdict a finished redundant job's result stands on: its final attempt's when decided. Each
// node keeps only its latest result, so a later attempt started in another view (a takeover racing
// the claimant's verdict) can replace some of the results a succeeded attempt was decided on; then
// the verdict is over every node's latest succeeded result, whatever its attempt: decided only when
// at least k/2 + 1 distinct nodes agree, and more than on any other hash, as ever. Otherwise, and
// for any other state: result_verdict(r, r.status.attempt).
[[nodiscard]] Verdict final_verdict(const JobRecord& r);

// Majority of k runners.
[[nodiscard]] inline size_t result_majority(uint32_t k) {
  return k / 2 + 1;
}

}  // namespace meshwork
