// The replica core's running side: the run queue, claims confirmed by a majority, outcomes,
// leases, timeouts, sweeps and takeover; see replica.h.
#include <algorithm>

#include "dht/replica.h"
#include "dht/verdict.h"

namespace meshwork {
namespace {

constexpr const char* kUnconfirmedReason = " not confirmed by a majority of replicas";
constexpr const char* kCancelledAwaiting = "cancelled while awaiting the other runners' results";

// Attempts of this round whose claim a majority refused never ran to an outcome that counted (the
// history says so), so they do not use up max_attempts.
uint32_t lost_claims(const JobRecord& r) {
  uint32_t n = 0;
  for (const HistoryEntry& h : r.history)
    if (h.state == JobState::retry_wait && h.attempt > r.status.base &&
        h.reason.ends_with(kUnconfirmedReason))
      ++n;
  return n;
}

bool may_retry(const JobRecord& r, uint32_t ended_attempt, bool interrupted) {
  const uint32_t limit =
      r.attempt_limit() + lost_claims(r) + (interrupted ? kInterruptedAttemptsExtraMax : 0);
  return ended_attempt < limit;
}

bool holds_claim(const JobRecord& r, uint32_t attempt, const std::string& self) {
  return r.status.state == JobState::running && r.status.attempt == attempt &&
         r.status.node == self;
}

}  // namespace

// Puts an owned job in the run queue, or, while it is not due (a delayed job before its
// run_after), sets a wake-up for when it is: only jobs that may start now wait in the queue and
// count against backlog_max.
void Replica::enqueue(Now now, const std::string& id, bool front) {
  if (running_.contains(id) || run_queue_.contains(id)) return;
  const IndexEntry* e = index_.find(id);
  if (e == nullptr) return;
  if (e->run_after_ms > now.wall_ms) return schedule_wake(now, id, e->run_after_ms);
  run_queue_.push(id, e->priority, now.mono_ms, front);
}

// A wake-up at wall time `wall_ms`, kept as a monotonic timer (next_deadline_ms wakes the core
// for it; no polling): then the job is enqueued again, which checks the wall clock once more.
void Replica::schedule_wake(Now now, const std::string& id, uint64_t wall_ms) {
  wake_at(id, now.mono_ms + (wall_ms > now.wall_ms ? wall_ms - now.wall_ms : 0));
}

// A wake-up at monotonic time `mono_ms` (one per job at a time; pump checks again when it fires).
void Replica::wake_at(const std::string& id, uint64_t mono_ms) {
  if (!wake_scheduled_.insert(id).second) return;
  wake_timers_.emplace(mono_ms, id);
}

// Notes the lease (running) or retry time (retry_wait) that `r` holds, dated `mono_ms` when it is
// not the one already noted; forgets the job once it is in neither state.
void Replica::sight(uint64_t mono_ms, const JobRecord& r) {
  const JobState state = r.status.state;
  if (state != JobState::running && state != JobState::retry_wait) {
    sightings_.erase(r.id);
    return;
  }
  const bool running = state == JobState::running;
  const uint64_t stamp = running ? r.claim.lease_until_ms : r.status.retry_at_ms;
  auto [it, fresh] = sightings_.try_emplace(r.id);
  Sighting& s = it->second;
  if (!fresh && s.state == state && s.attempt == r.status.attempt && s.node == r.status.node &&
      s.stamp_ms == stamp)
    return;
  // The backoff its writer chose: retry_at and at are both on the writer's clock, so their
  // difference is a duration whatever that clock reads. Capped: a peer's record is untrusted.
  const uint64_t asked = running || stamp <= r.status.at_ms ? 0 : stamp - r.status.at_ms;
  const uint64_t wait = std::min(asked, config_.backoff_max_ms);
  s = Sighting{state, r.status.attempt, r.status.node, stamp, wait, mono_ms};
}

// Whether the claim on running job `id` has gone unrenewed for a lease and the skew allowance,
// by this node's monotonic clock since it first saw the current lease_until.
bool Replica::lease_expired(Now now, const std::string& id, const IndexEntry& e) {
  auto [it, fresh] = sightings_.try_emplace(id);
  // sight() notes every running record as it is indexed; one indexed otherwise waits from now.
  if (fresh)
    it->second = Sighting{e.state, e.attempt, e.status_node, e.lease_until_ms, 0, now.mono_ms};
  return now.mono_ms > it->second.seen_ms + config_.lease_ms + config_.lease_skew_ms;
}

// When retry_wait job `id` (held as `e`) may run here: its writer's backoff after this node first
// saw the status, on this node's monotonic clock. A retry_wait written by a node whose wall clock
// is an hour ahead waits its backoff, not the hour.
uint64_t Replica::retry_due_ms(Now now, const std::string& id, const IndexEntry& e) {
  auto [it, fresh] = sightings_.try_emplace(id);
  if (fresh)  // not noted by sight(): the longest backoff, from now
    it->second = Sighting{
        e.state, e.attempt, e.status_node, e.retry_at_ms, config_.backoff_max_ms, now.mono_ms};
  return it->second.seen_ms + it->second.wait_ms;
}

// Forgets sightings of jobs this node no longer holds running or in retry_wait.
void Replica::prune_sightings() {
  std::erase_if(sightings_, [&](const auto& kv) {
    const IndexEntry* e = index_.find(kv.first);
    return e == nullptr || (e->state != JobState::running && e->state != JobState::retry_wait);
  });
}

// Gives runnable jobs to free workers: at most config.workers handlers run at once.
void Replica::pump(Now now) {
  while (handlers_running_ < config_.workers && !run_queue_.empty()) {
    std::string id = *run_queue_.pop();
    if (co_queued_.erase(id) > 0 && start_co_run(now, id)) continue;
    if (running_.contains(id) || !owns(now, id)) continue;
    auto rec = current(id);
    if (!rec) continue;
    if (rec->run_after_ms() > now.wall_ms) {  // the wall clock went back since it was queued
      schedule_wake(now, id, rec->run_after_ms());
      continue;
    }
    if (rec->status.state == JobState::retry_wait) {
      const IndexEntry* e = index_.find(id);
      const uint64_t due = e == nullptr ? now.mono_ms : retry_due_ms(now, id, *e);
      if (due > now.mono_ms) {
        wake_at(id, due);
        continue;
      }
    }
    if (rec->status.state != JobState::queued && rec->status.state != JobState::retry_wait)
      continue;
    claim(now, *rec);
  }
}

// The claim (running, attempt+1, lease) is persisted and sent to the other replicas while the
// handler already runs: handlers are pure, so nothing of the attempt is visible until its outcome
// is recorded, and that waits until a majority confirmed the claim (claim_settled). The claim of a
// job of redundancy 1 is held here up to config.claim_hold_ms first: an outcome that comes within
// the hold leaves with it (ship_outcome), else it leaves alone (send_claim, from release_holds).
void Replica::claim(Now now, const JobRecord& r) {
  const uint32_t attempt = r.status.attempt + 1;
  adopted_.erase(r.id);
  JobRecord next = r;
  next.status = r.status.next(JobState::running, attempt, self_, now.wall_ms, r.status.error, 0);
  next.claim = Claim{attempt, self_, now.wall_ms + config_.lease_ms};
  next.add_history(JobState::running, self_, attempt, now.wall_ms,
                   "attempt " + std::to_string(attempt));
  next.updated_at_ms = std::max(next.updated_at_ms, now.wall_ms);  // a max register: never back
  commit(now, std::move(next));
  Attempt a;
  a.attempt = attempt;
  a.deadline_ms = now.mono_ms + r.timeout_ms;
  a.stopped = r.cancel_requested();
  running_[r.id] = a;
  handlers_running_++;
  stats_.attempts_started++;
  const SharedRecord claimed = overlay_.at(r.id).record;
  out_.starts.push_back(Start{r.id, attempt, claimed.record});
  if (r.cancel_requested()) out_.stops.push_back(Stop{Stop::Why::cancelled, r.id, attempt});
  // A handler that ends within the hold ships its outcome together with the claim. Not for a
  // redundant job (its co-runners start on seeing the claim), one being cancelled, nor a job
  // coming out of retry_wait: after a takeover that record has already gone out, and a claim held
  // behind it would leave the old claimant (alive, in a view that disagrees) a window to claim
  // the same attempt again and win — a duel that burns an attempt per round (docs/chaos.md).
  if (config_.claim_hold_ms > 0 && r.redundancy <= 1 && !r.cancel_requested() &&
      r.status.state == JobState::queued) {
    Attempt& held = running_.at(r.id);
    held.held = true;
    held.hold_until_ms = now.mono_ms + config_.claim_hold_ms;
    return;
  }
  send_claim(now, r.id);
}

// The claim leaves alone, as a write a majority must confirm before the outcome counts
// (claim_settled); the handler may still run.
void Replica::send_claim(Now now, const std::string& id) {
  Attempt& a = running_.at(id);
  a.held = false;
  auto rec = current_encoded(id);
  if (!rec || !holds_claim(**rec, a.attempt, self_)) {  // superseded while held
    claim_settled(now, id, a.attempt, false);
    return;
  }
  const auto replicas = placement_.replicas(id);
  Write w;
  w.kind = Write::Kind::claim;
  w.attempt = a.attempt;
  w.need = Placement::majority(replicas.size());
  start_write(now, std::move(w), *rec, replicas);
}

// The handler ended while its claim was held: claim and outcome leave as one record, the outcome,
// which each replica merges only where the claim, merged first, would still hold (IfClaimed). A
// majority that took it (this node's persisted claim counting as one) decides the attempt as a
// confirmed claim would; then the outcome is committed here too (outcome_settled). A replica that
// holds something newer (a cancel of the still queued job, a later attempt) refuses it, exactly as
// it would have refused the claim alone, so the outcome counts under the same condition as before:
// a majority held this attempt's claim. One record crosses instead of two.
void Replica::ship_outcome(Now now, const std::string& id) {
  Attempt& a = running_.at(id);
  a.held = false;
  auto cur = current(id);
  if (!cur || !a.result || !holds_claim(*cur, a.attempt, self_)) {
    claim_settled(now, id, a.attempt, false);
    return;
  }
  a.shipping = true;
  const NodeResult result = *a.result;
  JobRecord ended =
      attempt_end(now, *cur, a.attempt, result.outcome, result.error, "succeeded", &result);
  const auto replicas = placement_.replicas(id);
  Write w;
  w.kind = Write::Kind::outcome;
  w.attempt = a.attempt;
  w.need = Placement::majority(replicas.size());
  const uint64_t wid = next_id_++;
  w.deadline_ms = now.mono_ms + config_.peer_timeout_ms;
  w.id = id;
  const SharedRecord rec = SharedRecord::of(std::move(ended));
  w.record = rec.record;
  writes_.emplace(wid, std::move(w));
  stats_.outcomes_with_claim++;
  bool local = false;
  for (const std::string& m : replicas) {
    writes_.at(wid).asked++;
    if (m == self_) {
      local = true;
    } else {
      queue_replicate(m, rec, wid, &cur->status);
    }
  }
  // This node's vote: its copy holds the claim (checked above) once that is on disk.
  if (local) {
    if (const uint64_t seq = pending_seq(id); seq == 0) {
      answer(now, wid, 1, nullptr);
    } else {
      local_waits_.emplace(seq, wid);
    }
  }
}

void Replica::outcome_settled(Now now, const Write& w, bool taken) {
  auto it = running_.find(w.id);
  if (it == running_.end() || it->second.attempt != w.attempt || !it->second.shipping) return;
  running_.erase(it);
  auto cur = current(w.id);
  // The outcome may be back here already, merged from a replica that took it (anti-entropy, a
  // read) before the acks decided: it counts as taken.
  const bool back = cur && cur->status.state == w.record->status.state &&
                    cur->status.attempt == w.attempt && cur->status.node == self_;
  if (cur && (back || (taken && holds_claim(*cur, w.attempt, self_)))) {
    stats_.outcomes_with_claim_taken++;
    commit_end(now, merge(*cur, *w.record), w.attempt, false);
    return;
  }
  stats_.claims_refused++;
  log(LogLine::Level::info, "claim_not_confirmed", w.id,
      "attempt " + std::to_string(w.attempt) + " (shipped with its outcome)");
  release_unconfirmed(now, w.id, w.attempt);
  // A replica that took it while a majority did not (or did not answer in time) holds the
  // outcome, which then wins everywhere by the merge: counted here when it comes back (react).
  if (unsettled_.size() >= kUnsettledMax) unsettled_.erase(unsettled_.begin());
  unsettled_[w.id] = w.record->status;
}

// Claims whose hold ran out leave alone.
void Replica::release_holds(Now now) {
  std::vector<std::string> due;
  for (const auto& [id, a] : running_)
    if (a.held && now.mono_ms >= a.hold_until_ms) due.push_back(id);
  for (const std::string& id : due) send_claim(now, id);
}

void Replica::claim_settled(Now now, const std::string& id, uint32_t attempt, bool confirmed) {
  auto it = running_.find(id);
  if (it == running_.end() || it->second.attempt != attempt) return;
  Attempt& a = it->second;
  if (confirmed) {
    stats_.claims_confirmed++;
    a.confirmed = true;
    if (!a.handler_running) finish_attempt(now, id);
    return;
  }
  stats_.claims_refused++;
  a.refused = true;
  log(LogLine::Level::info, "claim_not_confirmed", id, "attempt " + std::to_string(attempt));
  if (a.handler_running && !a.stopped) {
    a.stopped = true;
    out_.stops.push_back(Stop{Stop::Why::superseded, id, attempt});
  }
  const bool over = !a.handler_running;
  release_unconfirmed(now, id, attempt);
  if (over) running_.erase(id);
}

void Replica::handler_done(Now now, Outcome outcome) {
  if (auto c = co_runs_.find(outcome.id);
      c != co_runs_.end() && c->second.attempt == outcome.attempt) {
    co_run_done(now, std::move(outcome));
    pump(now);
    flush(now);
    return;
  }
  auto it = running_.find(outcome.id);
  if (it == running_.end() || it->second.attempt != outcome.attempt ||
      !it->second.handler_running) {
    stats_.refused_messages++;
    return;
  }
  Attempt& a = it->second;
  a.handler_running = false;
  if (!a.worker_freed) handlers_running_--;
  a.result = std::move(outcome.result);
  if (a.refused) {
    running_.erase(it);
  } else if (a.held) {
    ship_outcome(now, outcome.id);
  } else if (a.confirmed) {
    finish_attempt(now, outcome.id);
  }
  pump(now);
  flush(now);
}

void Replica::handler_ended(Now now, const std::string& id, uint32_t attempt) {
  bool* freed = nullptr;
  if (auto c = co_runs_.find(id); c != co_runs_.end() && c->second.attempt == attempt)
    freed = &c->second.worker_freed;
  else if (auto it = running_.find(id);
           it != running_.end() && it->second.attempt == attempt && it->second.handler_running)
    freed = &it->second.worker_freed;
  if (freed == nullptr || *freed) return;
  *freed = true;
  handlers_running_--;
  pump(now);
  flush(now);
}

// Records the attempt's outcome (the claim holds and the handler ended): terminal, or retry_wait
// with backoff. A record that moved on meanwhile (superseded, cancelled elsewhere) keeps its state.
// A redundant job's result waits for the verdict instead (invariant 6), unless it was cancelled.
void Replica::finish_attempt(Now now, const std::string& id) {
  auto it = running_.find(id);
  if (it == running_.end()) return;
  const uint32_t attempt = it->second.attempt;
  const std::optional<NodeResult> result = std::move(it->second.result);
  auto cur = current(id);
  if (!cur || !result || !holds_claim(*cur, attempt, self_)) {
    running_.erase(it);
    return;
  }
  if (cur->redundancy > 1 && result->outcome != JobState::cancelled)
    return await_verdict(now, id, *cur, *result);
  running_.erase(it);
  end_attempt(now, *cur, attempt, result->outcome, result->error, "succeeded", &*result);
}

void Replica::end_attempt(Now now, const JobRecord& cur, uint32_t attempt, JobState outcome,
                          const std::string& error, const std::string& success_reason,
                          const NodeResult* own) {
  commit_end(now, attempt_end(now, cur, attempt, outcome, error, success_reason, own), attempt,
             true);
}

JobRecord Replica::attempt_end(Now now, const JobRecord& cur, uint32_t attempt, JobState outcome,
                               const std::string& error, const std::string& success_reason,
                               const NodeResult* own) {
  JobStatus next = cur.status.next(outcome, attempt, self_, now.wall_ms, error, 0);
  if (next.state == JobState::failed && may_retry(cur, attempt, false)) {
    next.state = JobState::retry_wait;
    next.retry_at_ms = now.wall_ms + backoff_ms(attempt);
  }
  const std::string reason = next.state == JobState::succeeded ? success_reason
                             : next.state == JobState::retry_wait
                                 ? "attempt failed, retry in " +
                                       std::to_string(next.retry_at_ms - now.wall_ms) +
                                       " ms: " + error
                                 : error;
  JobRecord delta = cur;
  delta.status = next;
  if (own != nullptr) delta.results = {{self_, *own}};
  delta.add_history(next.state, self_, attempt, now.wall_ms, reason);
  delta.updated_at_ms = std::max(delta.updated_at_ms, now.wall_ms);
  return merge(cur, delta);
}

void Replica::count_end(JobState state) {
  switch (state) {
    case JobState::succeeded:
      stats_.succeeded++;
      break;
    case JobState::failed:
      stats_.failed++;
      break;
    case JobState::cancelled:
      stats_.cancelled++;
      break;
    default:
      stats_.retried++;
      break;
  }
}

void Replica::commit_end(Now now, JobRecord ended, uint32_t attempt, bool send) {
  const std::string id = ended.id;
  const JobStatus next = ended.status;
  const std::string& error = next.error;
  commit(now, std::move(ended));
  if (send) replicate_to_others(now, overlay_.at(id).record);
  count_end(next.state);
  log(next.state == JobState::succeeded ? LogLine::Level::debug : LogLine::Level::warn,
      "job_" + std::string(state_name(next.state)), id,
      "attempt " + std::to_string(attempt) + (error.empty() ? "" : ": " + error));
}

// A claim a majority did not confirm: unless the record has moved on meanwhile, the attempt is
// over without an outcome, and the job waits for its owner to try again after a backoff. Never a
// terminal state: the job did not fail, this node only failed to win it (a `failed` would beat
// every other replica's running attempt in the merge). So a lost claim does not count against
// max_attempts.
void Replica::release_unconfirmed(Now now, const std::string& id, uint32_t attempt) {
  auto cur = current(id);
  if (!cur || !holds_claim(*cur, attempt, self_)) return;
  const std::string why = "attempt " + std::to_string(attempt) + kUnconfirmedReason;
  JobRecord next = *cur;
  next.status = cur->status.next(JobState::retry_wait, attempt, self_, now.wall_ms, why,
                                 now.wall_ms + backoff_ms(attempt));
  next.add_history(JobState::retry_wait, self_, attempt, now.wall_ms, why);
  next.updated_at_ms = std::max(next.updated_at_ms, now.wall_ms);  // a max register: never back
  commit(now, std::move(next));
  replicate_to_others(now, overlay_.at(id).record);
}

// Extends the lease of every claim that holds here, so that nobody takes over a job that runs.
void Replica::renew_leases(Now now) {
  std::vector<std::string> held;
  for (const auto& [id, a] : running_)
    if (a.confirmed && (a.awaiting || (a.handler_running && !a.stopped))) held.push_back(id);
  for (const std::string& id : held) {
    const uint32_t attempt = running_.at(id).attempt;
    auto cur = current(id);
    if (!cur || !holds_claim(*cur, attempt, self_)) continue;
    // Always a later lease_until than the last, even if this node's wall clock stepped back: the
    // other replicas judge the lease by when they last saw it change.
    const uint64_t lease = std::max(now.wall_ms + config_.lease_ms, cur->claim.lease_until_ms + 1);
    JobRecord next = *cur;
    next.claim = Claim{attempt, self_, lease};
    commit(now, std::move(next));
    replicate_to_others(now, overlay_.at(id).record);
  }
}

// Stops handlers (co-runs too) that ran past their job's timeout (the node turns the outcome into a
// failure), and ends the attempts whose verdict is still out a peer timeout after theirs.
void Replica::watch_deadlines(Now now) {
  std::vector<std::string> late;
  for (auto& [id, a] : running_) {
    if (a.awaiting && now.mono_ms >= a.deadline_ms + config_.peer_timeout_ms) late.push_back(id);
    if (!a.handler_running || a.worker_freed || a.stopped || now.mono_ms < a.deadline_ms)
      continue;
    a.stopped = true;
    out_.stops.push_back(Stop{Stop::Why::timed_out, id, a.attempt});
  }
  for (auto& [id, c] : co_runs_) {
    if (c.stopped || c.worker_freed || now.mono_ms < c.deadline_ms) continue;
    c.stopped = true;
    out_.stops.push_back(Stop{Stop::Why::timed_out, id, c.attempt});
  }
  for (const std::string& id : late) settle_verdict(now, id);
}

// Starts what this node owns and takes over what a dead, departed or stalled claimant left (a
// stalled one: its lease went unrenewed for lease_ms + lease_skew_ms on this node's clock). The
// taker of a running job is the first of its replicas other than the claimant: with the claimant
// dead that is the new owner; with the claimant alive but its lease run out (a stalled process,
// or a claim from another view) it is the next replica, which then runs the job itself (adopted_)
// rather than leave it to a claimant that has stopped renewing.
void Replica::sweep(Now now) {
  // A core that got no tick for longer than a lease (a stalled loop) may not have taken in the
  // renewals sent meanwhile: it dates what it holds from now, as at start().
  if (now.mono_ms > last_sweep_ms_ + config_.lease_ms)
    for (auto& [id, seen] : sightings_) seen.seen_ms = now.mono_ms;
  last_sweep_ms_ = now.mono_ms;
  if (!ready(now)) return;
  hand_off(now);
  // A deep backlog is mostly queued jobs that wait in this node's run queue or belong to another
  // owner: those are passed over here, before their ids are copied (the loop below commits, which
  // changes the unfinished set), by the same test the loop applies, with the owner read from the
  // index entry's placed list while that is current.
  std::vector<std::string> ids;
  for (const auto& [id, e] : index_.unfinished()) {
    if ((e->state == JobState::queued || e->state == JobState::retry_wait) &&
        (!owns(now, id, e) || run_queue_.contains(id) || running_.contains(id) ||
         wake_scheduled_.contains(id)))
      continue;
    ids.emplace_back(id);
  }
  std::set<std::string> taking_over;
  for (const std::string& id : ids) {
    const IndexEntry* e = index_.find(id);
    if (e == nullptr) continue;
    if (e->state == JobState::queued || e->state == JobState::retry_wait) {
      // The cheap checks first: with a deep backlog most of these are already queued here, and
      // owns() walks the ring.
      if (run_queue_.contains(id) || running_.contains(id) || wake_scheduled_.contains(id) ||
          !owns(now, id))
        continue;
      if (e->state == JobState::queued) {
        enqueue(now, id);
      } else {
        wake_at(id, retry_due_ms(now, id, *e));
      }
      continue;
    }
    // A runner of a redundant job (a stand-in after a membership change, or a node that booted):
    // start the co-run it owes, if any.
    if (e->state == JobState::running && e->redundancy > 1 && e->status_node != self_ &&
        !co_runs_.contains(id) && !run_queue_.contains(id))
      if (auto held = current_shared(id)) react_co_run(now, *held);
    if (e->state != JobState::running || running_.contains(id)) continue;
    const bool expired = lease_expired(now, id, *e);
    const bool gone = e->status_node != self_ && !placement_.usable(e->status_node);
    if (!gone && !expired) continue;
    if (e->status_node == self_) {  // a claim of this node's that nothing here runs any more
      take_over(now, id, "own lease expired on " + self_);
      continue;
    }
    if (!taker(now, id, e->status_node)) continue;
    const auto& members = placement_.members();
    const auto m = members.find(e->status_node);
    const std::string what = !gone                ? "lease expired"
                             : m == members.end() ? "gone"
                                                  : std::string(member_state_name(m->second));
    taking_over.insert(id);
    take_over_after_read(now, id, e->status_node,
                         "owner " + e->status_node + " " + what + "; " + self_ + " takes over");
  }
  prune_sightings();
  // Forget reads for jobs that no longer need a takeover here, and reads that never came back.
  std::erase_if(takeover_reads_, [&](const auto& kv) {
    return !taking_over.contains(kv.first) ||
           now.mono_ms > kv.second.started_ms + 2 * config_.peer_timeout_ms;
  });
}

// Whether this node takes over job `id` from `claimant`: it is the first usable replica other
// than the claimant (and ready to run jobs).
bool Replica::taker(Now now, const std::string& id, const std::string& claimant) const {
  if (!started_ || !ready(now)) return false;
  if (config_.joining && now.mono_ms < started_ms_ + config_.settle_ms) return false;
  for (const std::string& m : placement_.replicas(id))
    if (m != claimant) return m == self_;
  return claimant == self_;
}

// Before a takeover the other usable replicas are asked for their copies: the claimant may have
// finished and told one of them before it died, and a takeover on this node's stale `running`
// copy would start the handler again for nothing. When the last copy is merged the next sweep
// decides on the merged record. A replica that does not answer within takeover_read_ms (1 s, not
// the 5 s peer timeout: a lost fetch must not add 5 s to every failover) does not hold the
// takeover up for longer; a copy that comes later is still merged, so a stale decision costs at
// most a duplicate run, which the merge settles.
void Replica::take_over_after_read(Now now, const std::string& id, const std::string& claimant,
                                   const std::string& reason) {
  // Not the claimant: it is dead, gone, or (its lease ran out) the one replica known not to answer.
  std::vector<std::string> others;
  for (const std::string& m : placement_.replicas(id))
    if (m != self_ && m != claimant && placement_.usable(m)) others.push_back(m);
  if (auto it = takeover_reads_.find(id); it != takeover_reads_.end()) {
    const bool waited_out = now.mono_ms >= it->second.started_ms + config_.takeover_read_ms;
    if (it->second.left > 0 && !waited_out) return;  // still reading
    takeover_reads_.erase(it);
    others.clear();  // read (or waited out): decide now
  } else if (!others.empty()) {
    takeover_reads_[id] = TakeoverRead{others.size(), now.mono_ms};
    next_sweep_ms_ = std::min(next_sweep_ms_, now.mono_ms + config_.takeover_read_ms);
  }
  if (others.empty()) return take_over(now, id, reason);
  for (const std::string& peer : others) fetch_from(now, peer, {id}, Outstanding::Why::takeover, 0);
}

void Replica::takeover_answered(Now now, const std::string& id) {
  auto it = takeover_reads_.find(id);
  if (it == takeover_reads_.end() || it->second.left == 0) return;
  if (--it->second.left == 0) next_sweep_ms_ = now.mono_ms;  // the last copy is in: decide
}

// The running attempt is over: the job goes back to retry_wait (due now) with the reason in its
// history, and runs again as the next attempt on its owner.
void Replica::take_over(Now now, const std::string& id, const std::string& reason) {
  if (!config_.take_over) return;  // the deliberately broken build of the chaos test
  auto cur = current(id);
  if (!cur || cur->status.state != JobState::running) return;
  const uint32_t n = cur->status.attempt;
  const bool again = n < cur->attempt_limit() + kInterruptedAttemptsExtraMax;
  JobRecord next = *cur;
  next.status = cur->status.next(again ? JobState::retry_wait : JobState::failed, n, self_,
                                 now.wall_ms,
                                 "attempt " + std::to_string(n) + " interrupted: " + reason,
                                 again ? now.wall_ms : 0);
  next.add_history(next.status.state, self_, n, now.wall_ms, reason);
  next.updated_at_ms = std::max(next.updated_at_ms, now.wall_ms);  // a max register: never back
  // The claimant may still be a member (its lease ran out): this node runs the job then.
  if (cur->status.node != self_ && placement_.usable(cur->status.node)) adopted_.insert(id);
  commit(now, std::move(next));
  stats_.takeovers++;
  log(LogLine::Level::info, "takeover", id, reason);
  replicate_to_others(now, overlay_.at(id).record);
  // An interrupted attempt has waited long enough: it runs before the jobs queued behind it,
  // whatever their priorities (run_queue.h).
  if (again && owns(now, id)) enqueue(now, id, true);
}

// After a restart: attempts that were running here when the process died are over; they run
// again (as the next attempt) once this node owns them, or fail past the interrupted allowance.
void Replica::recover(Now now) {
  std::vector<std::string> interrupted;
  for (const auto& [id, e] : index_.unfinished())
    if (e->state == JobState::running && e->status_node == self_) interrupted.emplace_back(id);
  for (const std::string& id : interrupted) {
    auto cur = current(id);
    if (!cur || cur->status.state != JobState::running || cur->status.node != self_) continue;
    const uint32_t n = cur->status.attempt;
    const std::string why = "attempt " + std::to_string(n) + " interrupted: node restarted";
    const bool again = may_retry(*cur, n, true);
    JobRecord next = *cur;
    next.status = cur->status.next(again ? JobState::retry_wait : JobState::failed, n, self_,
                                   now.wall_ms, why, now.wall_ms);
    next.add_history(next.status.state, self_, n, now.wall_ms, why);
    next.updated_at_ms = std::max(next.updated_at_ms, now.wall_ms);  // a max register: never back
    commit(now, std::move(next));
  }
  log(LogLine::Level::info, "recovered", "",
      std::to_string(interrupted.size()) + " interrupted, " +
          std::to_string(index_.unfinished_count()) + " unfinished");
}

// ---- redundant execution (invariants 6 and 7 in replica.h) ----

// The runners of an attempt claimed by `claimant`: it, then the first k − 1 other members of the
// job's replicas in this node's view (usable ones: not dead, not distrusted).
std::vector<std::string> Replica::runners(const std::string& id, const std::string& claimant,
                                          uint32_t k) const {
  std::vector<std::string> out{claimant};
  for (const std::string& m : placement_.replicas(id)) {
    if (out.size() >= k) break;
    if (m != claimant) out.push_back(m);
  }
  return out;
}

// Whether this node owes `r`'s running attempt a co-run it has not started: it is a runner other
// than the claimant, holds no result of its own for the attempt, and runs no handler of the job
// (a co-run, or its own claim of the same attempt that lost to another's: the sweep asks again
// once that one has ended).
bool Replica::co_run_due(const JobRecord& r) const {
  if (r.redundancy <= 1 || r.status.state != JobState::running || r.status.node == self_ ||
      r.cancel_requested() || !started_ || co_runs_.contains(r.id) || running_.contains(r.id))
    return false;
  if (auto own = r.results.find(self_);
      own != r.results.end() && own->second.attempt >= r.status.attempt)
    return false;
  const auto list = runners(r.id, r.status.node, r.redundancy);
  return std::find(list.begin(), list.end(), self_) != list.end();
}

// Stops a co-run whose attempt `r` no longer holds running (or whose job was cancelled); queues
// the co-run `r` asks of this node, if any and if due by this node's wall clock.
void Replica::react_co_run(Now now, const JobRecord& r) {
  if (auto it = co_runs_.find(r.id); it != co_runs_.end() && !it->second.stopped) {
    CoRun& c = it->second;
    const bool holds = r.status.state == JobState::running && r.status.attempt == c.attempt;
    if (!holds || r.cancel_requested()) {
      c.stopped = true;
      if (!holds) stats_.superseded_stops++;
      out_.stops.push_back(
          Stop{holds ? Stop::Why::cancelled : Stop::Why::superseded, r.id, c.attempt});
    }
  }
  // A delayed job's claimant started it by its wall clock; this node waits for its own to agree
  // (the sweep asks again).
  if (!co_run_due(r) || r.run_after_ms() > now.wall_ms) return;
  co_queued_.insert(r.id);
  if (!run_queue_.contains(r.id)) run_queue_.push(r.id, r.priority, now.mono_ms, false);
}

// Starts the co-run queued for `id` if it is still due (pump, with a free worker).
bool Replica::start_co_run(Now now, const std::string& id) {
  auto rec = current_shared(id);
  if (!rec || !ready(now) || !co_run_due(*rec) || rec->run_after_ms() > now.wall_ms) return false;
  const uint32_t attempt = rec->status.attempt;
  co_runs_[id] = CoRun{attempt, false, now.mono_ms + rec->timeout_ms};
  handlers_running_++;
  stats_.co_runs_started++;
  out_.starts.push_back(Start{id, attempt, rec});
  log(LogLine::Level::debug, "co_run", id,
      "attempt " + std::to_string(attempt) + " claimed by " + rec->status.node);
  return true;
}

// A co-run ended: its result joins the record while the attempt still runs (the claimant decides
// on it), and goes to the other replicas. A cancelled one says nothing about the answer.
void Replica::co_run_done(Now now, Outcome outcome) {
  auto it = co_runs_.find(outcome.id);
  const uint32_t attempt = it->second.attempt;
  if (!it->second.worker_freed) handlers_running_--;
  co_runs_.erase(it);
  auto cur = current_shared(outcome.id);
  if (!cur) return;
  const bool holds = cur->status.state == JobState::running && cur->status.attempt == attempt;
  if (!holds || outcome.result.outcome == JobState::cancelled) return react_co_run(now, *cur);
  JobRecord delta = *cur;
  delta.results = {{self_, std::move(outcome.result)}};
  commit(now, merge(*cur, delta));
  replicate_to_others(now, overlay_.at(outcome.id).record);
}

// The claimant's handler of a redundant job ended: its result joins the record, the claim stays
// (renewed) and the verdict decides when the attempt ends (settle_verdict, from react).
void Replica::await_verdict(Now now, const std::string& id, const JobRecord& cur,
                            const NodeResult& result) {
  running_.at(id).awaiting = true;
  JobRecord delta = cur;
  delta.results = {{self_, result}};
  commit(now, merge(cur, delta));  // reacts: the verdict may be in already
  if (running_.contains(id)) replicate_to_others(now, overlay_.at(id).record);
}

// Ends the awaited attempt of `id` when its verdict is in, or can no longer be (the runners
// disagree, or the job's timeout and a peer timeout have passed), or when the job was cancelled:
// see invariant 6.
void Replica::settle_verdict(Now now, const std::string& id) {
  auto it = running_.find(id);
  if (it == running_.end() || !it->second.awaiting) return;
  const uint32_t attempt = it->second.attempt;
  const bool late = now.mono_ms >= it->second.deadline_ms + config_.peer_timeout_ms;
  auto cur = current(id);
  if (!cur || !holds_claim(*cur, attempt, self_)) {
    running_.erase(it);
    return;
  }
  if (cur->cancel_requested()) {  // the other runners' co-runs stop too: no verdict will come
    running_.erase(it);
    return end_attempt(now, *cur, attempt, JobState::cancelled, kCancelledAwaiting, "", nullptr);
  }
  const Verdict v = result_verdict(*cur, attempt);
  if (v.kind == Verdict::Kind::pending && !late) return;
  running_.erase(it);
  if (v.kind != Verdict::Kind::decided) {
    stats_.verdicts_disagreed++;
    return end_attempt(now, *cur, attempt, JobState::failed, kResultsDisagree, "", nullptr);
  }
  stats_.verdicts_decided++;
  const NodeResult& agreed = cur->results.at(v.agreeing.front());
  const std::string why = "succeeded: " + std::to_string(v.agreeing.size()) + " of " +
                          std::to_string(cur->redundancy) + " results agree";
  end_attempt(now, *cur, attempt, v.outcome, agreed.error, why, nullptr);
}

// A redundant job turned terminal here: its decided verdict is evidence on every runner.
void Replica::note_verdict(Now now, const JobRecord& r) {
  if (r.status.state != JobState::succeeded && r.status.state != JobState::failed) return;
  const Verdict v = result_verdict(r, r.status.attempt);
  if (v.kind != Verdict::Kind::decided) return;
  for (const std::string& host : v.agreeing)
    if (reputation_.agreed(host)) note_trust(now, host);
  for (const std::string& host : v.dissenting)
    if (reputation_.disagreed(host)) note_trust(now, host);
}

void Replica::note_trust(Now now, const std::string& host) {
  const bool trusted = reputation_.trusted(host);
  const uint64_t version = placement_.version();
  if (!placement_.set_distrusted(host, !trusted)) return;
  log(trusted ? LogLine::Level::info : LogLine::Level::warn,
      trusted ? "host_trusted" : "host_distrusted", "",
      host + " scores " + std::to_string(reputation_.score(host)));
  if (placement_.version() == version) return;
  ae_interval_ms_ = config_.anti_entropy_interval_ms;
  next_sweep_ms_ = now.mono_ms;  // its ranges and claims move: hand off and sweep at once
}

}  // namespace meshwork
