// The job invariants 4-6, 12 and 13 and the duplicate counts; see job_checks.h.
#include "simulations/sim/job_checks.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "dht/verdict.h"

namespace meshwork::sim {
namespace {

struct Holding {
  std::optional<JobRecord> merged;  // of every up holder's copy
  uint32_t first_holder = UINT32_MAX;
};

// `leave_out_kept`: leave out a finished copy its holder keeps past the retention only because it
// still owes it to replicas that are down (hints; replica_retention.cpp) — by design, not a job
// that came back. A hint owed to an up member at the end is not an excuse.
Holding holding(const Cluster& c, const ReplicaSim& replicas, const std::string& id,
                const std::vector<uint32_t>& writers, bool leave_out_kept = false) {
  Holding h;
  for (const uint32_t i : writers) {
    const Replica* r = replicas.replica(i);
    if (!c.up(i) || r == nullptr) continue;
    std::optional<JobRecord> copy = r->current(id);
    if (!copy) continue;
    if (leave_out_kept && is_terminal(copy->status.state) && r->owes_hint(id)) {
      const std::vector<std::string> owed = r->hint_targets(id);
      if (std::none_of(owed.begin(), owed.end(),
                       [&](const std::string& m) { return c.up(node_index(m)); }))
        continue;
    }
    if (h.first_holder == UINT32_MAX) h.first_holder = i;
    h.merged = h.merged ? merge(*h.merged, *copy) : std::move(*copy);
  }
  return h;
}

// The first node that erased the job (a tombstone on its disk, or in its core), or UINT32_MAX.
// Only a node that held it can have erased it.
uint32_t eraser(const Cluster& c, const ReplicaSim& replicas, const std::string& id,
                const std::vector<uint32_t>& writers) {
  for (const uint32_t i : writers) {
    const Replica* r = replicas.replica(i);
    if (replicas.disk(i).tombstones().contains(id) ||
        (c.up(i) && r != nullptr && r->tombstoned(id)))
      return i;
  }
  return UINT32_MAX;
}

// Which merged parts of two copies differ (for the failure message).
std::string parts_differing(const JobRecord& a, const JobRecord& b) {
  std::string out;
  const auto add = [&](bool differs, const char* part) {
    if (differs) out += (out.empty() ? "" : ", ") + std::string(part);
  };
  add(a.status.state != b.status.state || a.status.attempt != b.status.attempt ||
          a.status.node != b.status.node || a.status.at_ms != b.status.at_ms ||
          a.status.error != b.status.error || a.status.retry_at_ms != b.status.retry_at_ms ||
          a.status.round != b.status.round || a.status.base != b.status.base,
      "status");
  add(a.claim.attempt != b.claim.attempt || a.claim.node != b.claim.node ||
          a.claim.lease_until_ms != b.claim.lease_until_ms,
      "claim");
  add(a.cancel_round != b.cancel_round, "cancel_round");
  add(a.results.size() != b.results.size(), "results");
  add(a.history.size() != b.history.size(), "history");
  add(a.updated_at_ms != b.updated_at_ms, "updated_at");
  return out.empty() ? "details" : out;
}

// Why one of `names` does not hold `merged`, or "".
std::string divergence_among(const Cluster& c, const ReplicaSim& replicas,
                             const std::vector<std::string>& names, const JobRecord& merged) {
  for (const std::string& name : names) {
    const uint32_t i = node_index(name);
    const Replica* r = i < c.size() ? replicas.replica(i) : nullptr;
    if (r == nullptr) return name + " (a replica) is down";
    const std::optional<JobRecord> copy = r->current(merged.id);
    if (!copy) return name + " (a replica) does not hold it";
    if (!same_state(*copy, merged))
      return name + " holds " + std::string(state_name(copy->status.state)) + " attempt " +
             std::to_string(copy->status.attempt) + ", the merge is " +
             std::string(state_name(merged.status.state)) + " attempt " +
             std::to_string(merged.status.attempt) + " (" + parts_differing(*copy, merged) +
             " differ)";
  }
  return "";
}

// Honest up nodes whose copy of the job is not `merged` (reported with --liars; see job_checks.h).
size_t stale_honest_copies(const Cluster& c, const ReplicaSim& replicas, const JobRecord& merged) {
  size_t n = 0;
  for (uint32_t i = 0; i < c.size(); ++i) {
    const Replica* r = c.up(i) ? replicas.replica(i) : nullptr;
    if (r == nullptr || replicas.liars().contains(i)) continue;
    const std::optional<JobRecord> copy = r->current(merged.id);
    n += copy && !same_state(*copy, merged) ? 1 : 0;
  }
  return n;
}

// Why the job's replicas (as `viewer` places it) do not all hold `merged`, or "".
std::string divergence(const Cluster& c, const ReplicaSim& replicas, uint32_t viewer,
                       const JobRecord& merged) {
  const std::vector<std::string> names = replicas.replica(viewer)->placement().replicas(merged.id);
  std::string list;
  for (const std::string& name : names) list += (list.empty() ? "" : ",") + name;
  const std::string why = divergence_among(c, replicas, names, merged);
  return why.empty() ? why : why + " (replicas " + list + ")";
}

void count_ledger(const ReplicaSim& replicas, JobFigures& f) {
  for (const auto& [id, l] : replicas.ledger()) {
    f.jobs_started += l.starts > 0 ? 1 : 0;
    f.starts += l.starts;
    if (l.redundancy > 1) continue;
    f.duplicate_starts += l.duplicate_starts;
    f.jobs_started_twice += l.duplicate_starts > 0 ? 1 : 0;
    f.same_attempt_starts += l.same_attempt_starts;
    // Per retry round: a retried job may succeed again in a later round, by design.
    std::map<uint32_t, uint32_t> succeeded;  // round -> succeeded outcomes
    for (const HandlerRun& r : l.runs) succeeded[r.round] += r.outcome == JobState::succeeded;
    bool twice = false;
    for (const auto& [round, n] : succeeded) {
      f.duplicate_completions += n > 1 ? n - 1 : 0;
      twice = twice || n > 1;
    }
    f.jobs_completed_twice += twice ? 1 : 0;
  }
}

// Invariant 13 for one terminal job `r`: counted in `f`.
void check_honest(const ReplicaSim& replicas, const JobRecord& r, JobFigures& f) {
  if (r.redundancy <= 1) return;
  ++f.redundant;
  if (r.status.state != JobState::succeeded) return;
  ++f.redundant_succeeded;
  size_t liars = 0;
  for (const auto& [node, res] : r.results)
    for (uint32_t liar : replicas.liars())
      liars += res.attempt == r.status.attempt && node == node_name(liar) ? 1 : 0;
  if (r.redundancy < 3 || liars >= result_majority(r.redundancy)) return;
  const NodeResult* fin = r.final_result();
  if (fin == nullptr) {  // the runners' results of that attempt were since replaced by later ones
    ++f.redundant_unshown;
    return;
  }
  // A takeover's later attempt, run in another view, replaced runners' results of the decided
  // attempt, and a majority of the later attempt's runners agree (final_verdict's fallback): the
  // result shown is then that attempt's honest one (handlers of k > 1 are deterministic by
  // contract, dht/verdict.h; the simulator's results name their attempt, so the texts differ).
  const uint32_t from = fin->attempt > r.status.attempt ? fin->attempt : r.status.attempt;
  if (fin->result == honest_result(from)) {
    f.redundant_later += from != r.status.attempt ? 1 : 0;
    return;
  }
  if (f.dishonest++ != 0) return;
  f.first_dishonest = "job " + r.id.substr(0, 12) + " succeeded attempt " +
                      std::to_string(r.status.attempt) + " by " + r.status.node + " with " +
                      (fin ? fin->result : std::string("no result")) + " (" +
                      std::to_string(liars) + " liars among its runners); results:";
  for (const auto& [node, res] : r.results)
    f.first_dishonest += " " + node + "=" + std::to_string(res.attempt) + "/" +
                         std::string(state_name(res.outcome)) + "/" + res.result;
}

}  // namespace

JobFigures job_figures(const Cluster& c, const ReplicaSim& replicas, const Workload& workload) {
  JobFigures f;
  std::map<std::string, Holding> held;
  std::set<std::string> expired;
  for (const auto& [id, writers] : replicas.writers()) {
    Holding h = holding(c, replicas, id, writers);
    if (const uint32_t e = eraser(c, replicas, id, writers); e != UINT32_MAX) {
      expired.insert(id);
      h = holding(c, replicas, id, writers, /*leave_out_kept=*/true);
      if (h.merged && !replicas.liars().empty()) {  // not checked with liars: see job_checks.h
        for (uint32_t i = 0; i < c.size(); ++i)
          f.stale_honest_copies += c.up(i) && !replicas.liars().contains(i) &&
                                   replicas.replica(i) && replicas.replica(i)->holds(id);
        continue;
      }
      if (h.merged && f.diverged++ == 0)
        f.first_diverged = "job " + id.substr(0, 12) + ": n" + std::to_string(e) + " erased it, n" +
                           std::to_string(h.first_holder) + " still holds it";
      continue;
    }
    if (!h.merged) continue;
    ++f.stored;
    if (!replicas.liars().empty()) {
      f.stale_honest_copies += stale_honest_copies(c, replicas, *h.merged);
      held.emplace(id, std::move(h));
      continue;
    }
    const std::string why = divergence(c, replicas, h.first_holder, *h.merged);
    if (!why.empty() && f.diverged++ == 0) f.first_diverged = "job " + id.substr(0, 12) + ": " + why;
    held.emplace(id, std::move(h));
  }
  for (const ClientJob& job : workload.jobs()) {
    if (!job.acknowledged) continue;
    ++f.acknowledged;
    if (expired.contains(job.id)) {
      ++f.expired;
      continue;
    }
    const auto it = held.find(job.id);
    if (it == held.end()) {
      if (f.lost++ == 0)
        f.first_lost = "job " + job.id.substr(0, 12) + " (acknowledged at " +
                       std::to_string(job.acknowledged_ms) + " ms) is held by no up node";
      continue;
    }
    const JobStatus& s = it->second.merged->status;
    // Invariant 12: a retry answered ok raised the round on W replicas; no merge may undo it.
    if (job.retry_ok && s.round == 0 && f.retry_undone++ == 0)
      f.first_retry_undone = "job " + job.id.substr(0, 12) + " was retried (answered ok) but is " +
                             std::string(state_name(s.state)) + " in round 0 attempt " +
                             std::to_string(s.attempt);
    if (!is_terminal(s.state)) {
      if (f.unfinished++ == 0)
        f.first_unfinished = "job " + job.id.substr(0, 12) + " is still " +
                             std::string(state_name(s.state)) + " attempt " +
                             std::to_string(s.attempt) + " by " + s.node;
      continue;
    }
    ++f.terminal;
    check_honest(replicas, *it->second.merged, f);
    f.succeeded += s.state == JobState::succeeded ? 1 : 0;
    f.failed += s.state == JobState::failed ? 1 : 0;
    f.cancelled += s.state == JobState::cancelled ? 1 : 0;
  }
  count_ledger(replicas, f);
  return f;
}

}  // namespace meshwork::sim
