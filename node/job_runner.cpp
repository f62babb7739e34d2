// The running half of the job service: claim, execute with a timeout, record the outcome, retry,
// and recover after a restart. See jobs.h.
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "node/clock.h"
#include "node/jobs.h"
#include "node/log.h"

namespace meshwork {
namespace {

using spdlog::level::debug;
using spdlog::level::info;
using spdlog::level::warn;

constexpr const char* kUnconfirmedReason = " not confirmed by a majority of replicas";

// Attempts whose claim a majority refused never ran to an outcome that counted (the history
// says so), so they do not use up max_attempts.
uint32_t lost_claims(const JobRecord& r) {
  uint32_t n = 0;
  for (const HistoryEntry& h : r.history)
    if (h.state == JobState::retry_wait && h.reason.ends_with(kUnconfirmedReason)) ++n;
  return n;
}

bool may_retry(const JobRecord& r, uint32_t ended_attempt, bool interrupted) {
  const uint32_t limit =
      r.max_attempts + lost_claims(r) + (interrupted ? kInterruptedAttemptsExtraMax : 0);
  return ended_attempt < limit;
}

JobState outcome_state(HandlerOutcome::Kind k) {
  switch (k) {
    case HandlerOutcome::Kind::succeeded:
      return JobState::succeeded;
    case HandlerOutcome::Kind::cancelled:
      return JobState::cancelled;
    case HandlerOutcome::Kind::failed:
      break;
  }
  return JobState::failed;
}

}  // namespace

void Jobs::enqueue(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || !active_.insert(id).second) return;
    backlog_.push_back(id);
  }
  pump();
}

// Gives runnable jobs to free workers: at most one job per worker is past the backlog.
void Jobs::pump() {
  std::vector<std::string> to_run;
  {
    std::lock_guard lock(mu_);
    while (!stopping_ && in_pipeline_ < executor_.workers() && !backlog_.empty()) {
      to_run.push_back(std::move(backlog_.front()));
      backlog_.pop_front();
      ++in_pipeline_;
    }
  }
  for (std::string& id : to_run)
    if (!executor_.post([this, id] { run_slot(id); })) done_with(id);
}

// Frees the job's worker slot and fills it from the backlog.
void Jobs::done_with(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    active_.erase(id);
    --in_pipeline_;
  }
  pump();
}

// Whether `r` may start attempt r.status.attempt + 1 at `now`.
bool Jobs::claimable(const JobRecord& r, uint64_t now) {
  switch (r.status.state) {
    case JobState::queued:
      return true;
    case JobState::retry_wait:
      return r.status.retry_at_ms <= now;
    default:
      return false;
  }
}

// On a worker. The claim (running, attempt+1) is written while the handler already runs: handlers
// are pure, so nothing of the attempt is visible until its outcome is written, and the outcome is
// recorded only after the claim is settled (arrive). If the claim does not hold — the job was
// cancelled or changed meanwhile, or a majority of replicas did not confirm it — the handler is
// stopped and its outcome discarded.
void Jobs::run_slot(const std::string& id) {
  const uint64_t now = wall_ms();
  auto read = store_.get(id);
  if (!read.is_ok() || !read.value() || !claimable(*read.value(), now) ||
      (hooks_.owns && !hooks_.owns(*read.value())))
    return done_with(id);
  auto running = std::make_shared<Running>();
  running->claimed = std::move(*read.value());
  JobRecord& rec = running->claimed;
  const uint32_t attempt = rec.status.attempt + 1;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    running_[id] = running;
    stats_.attempts_started++;
  }
  if (rec.cancel_requested) running->token.cancel();
  rec.status = JobStatus{JobState::running, attempt, node_, now, rec.status.error, 0};
  claim(rec, attempt, now, running);
  running->outcome = execute(rec, running);
  {
    std::lock_guard lock(mu_);
    running_.erase(id);
    if (stopping_) return;  // the claim may be on disk: recovery runs the job again
  }
  done_with(id);
  arrive(running);
}

// The handler ended, or the claim settled: the second of the two records the outcome.
void Jobs::arrive(const std::shared_ptr<Running>& running) {
  if (running->arrivals.fetch_add(1) != 1) return;
  if (running->claim_confirmed) return finish(running->claimed, running->outcome);
  if (running->claim_unconfirmed) release_unconfirmed(running->claimed);
}

void Jobs::claim(const JobRecord& rec, uint32_t attempt, uint64_t now,
                 const std::shared_ptr<Running>& running) {
  const uint64_t lease = now + options_.lease_ms;
  auto fn = [this, attempt, now, lease](const JobRecord* cur) -> std::optional<JobRecord> {
    if (cur == nullptr || !claimable(*cur, now) || cur->status.attempt + 1 != attempt)
      return std::nullopt;
    JobRecord next = *cur;
    next.status = JobStatus{JobState::running, attempt, node_, now, cur->status.error, 0};
    next.claim = Claim{attempt, node_, lease};
    next.add_history(JobState::running, node_, attempt, now, "attempt " + std::to_string(attempt));
    next.updated_at_ms = now;
    return next;
  };
  store_.update(rec.id, fn, [this, running, id = rec.id](Status s, Applied a) {
    if (!s.is_ok() || !a.changed) {
      if (!s.is_ok()) log_event(warn, "claim_failed", id, s.message());
      running->claim_lost = true;
      running->token.cancel();
      return arrive(running);
    }
    if (!hooks_.confirm_claim) {
      running->claim_confirmed = true;
      return arrive(running);
    }
    hooks_.confirm_claim(*a.after, [this, running, id](bool confirmed) {
      if (confirmed) {
        running->claim_confirmed = true;
      } else {
        log_event(info, "claim_not_confirmed", id,
                  "attempt " + std::to_string(running->claimed.status.attempt));
        running->claim_lost = true;
        running->claim_unconfirmed = true;
        running->token.cancel();
      }
      arrive(running);
    });
  });
}

// A claim a majority did not confirm: unless the record has moved on meanwhile, the attempt is
// over without an outcome, and the job waits for its owner to try again after a backoff.
void Jobs::release_unconfirmed(const JobRecord& claimed) {
  const uint32_t attempt = claimed.status.attempt;
  const uint64_t now = wall_ms();
  // Backoff that grows with the attempt, so that two nodes whose views disagree about the owner
  // stop colliding; the cap bounds how long a job waits once the views agree again.
  const uint64_t retry_at = now + backoff_ms(attempt);
  auto fn = [this, attempt, now, retry_at](const JobRecord* cur) -> std::optional<JobRecord> {
    if (cur == nullptr || cur->status.state != JobState::running ||
        cur->status.attempt != attempt || cur->status.node != node_)
      return std::nullopt;
    const std::string why = "attempt " + std::to_string(attempt) + kUnconfirmedReason;
    // Never a terminal state: the job did not fail, this node only failed to win it. Writing
    // `failed` here would beat every other replica's running attempt in the merge and fail an
    // acknowledged job for a fault alone. So a lost claim does not count against max_attempts.
    JobRecord next = *cur;
    next.status = JobStatus{JobState::retry_wait, attempt, node_, now, why, retry_at};
    next.add_history(next.status.state, node_, attempt, now, why);
    next.updated_at_ms = now;
    return next;
  };
  store_.update(claimed.id, fn, [this, id = claimed.id](Status s, Applied a) {
    if (!s.is_ok() || !a.changed) return;
    if (hooks_.replicate) hooks_.replicate(*a.after);
    if (a.after->status.state == JobState::retry_wait) schedule(id, a.after->status.retry_at_ms);
  });
}

HandlerOutcome Jobs::execute(const JobRecord& rec, const std::shared_ptr<Running>& running) {
  const Handler* handler = find_handler(rec.type);
  if (handler == nullptr) return HandlerOutcome::failure("no handler for type " + rec.type);
  auto spec = nlohmann::json::parse(rec.envelope.job, nullptr, false);
  if (spec.is_discarded() || !spec.is_object())
    return HandlerOutcome::failure("the signed job text is not a JSON object");
  // The watchdog (Jobs::watch) cancels the token once the deadline passes.
  running->deadline_mono_ms = mono_ms() + rec.timeout_ms;
  log_event(debug, "job_started", rec.id, "attempt " + std::to_string(rec.status.attempt));
  const nlohmann::json payload = spec.value("payload", nlohmann::json::object());
  HandlerOutcome out;
  try {
    out = handler->run(JobContext{rec.id, payload, rec.status.attempt}, running->token);
  } catch (const std::exception& e) {
    out = HandlerOutcome::failure(std::string("handler threw: ") + e.what());
  }
  if (running->timed_out && out.kind != HandlerOutcome::Kind::succeeded)
    out = HandlerOutcome::failure("timed out after " + std::to_string(rec.timeout_ms) + " ms");
  return out;
}

NodeResult Jobs::sign_result(const JobRecord& rec, const HandlerOutcome& outcome) const {
  NodeResult r;
  r.attempt = rec.status.attempt;
  r.outcome = outcome_state(outcome.kind);
  r.result = outcome.kind == HandlerOutcome::Kind::succeeded ? outcome.result.dump() : "";
  r.error = outcome.error;
  r.at_ms = wall_ms();
  r.receipt.job_id = rec.id;
  r.receipt.node = node_;
  r.receipt.attempt = r.attempt;
  r.receipt.result_hash = blake2b_hex(r.outcome == JobState::succeeded ? r.result : r.error);
  r.receipt.public_key = key_.public_key_b64();
  r.receipt.signature = to_base64(key_.sign(r.receipt.message()));
  return r;
}

// Records the attempt's outcome: terminal, or retry_wait with backoff.
void Jobs::finish(const JobRecord& claimed, const HandlerOutcome& outcome) {
  const std::string& id = claimed.id;
  const uint32_t attempt = claimed.status.attempt;
  NodeResult result = sign_result(claimed, outcome);
  const uint64_t now = result.at_ms;
  JobStatus next_status{outcome_state(outcome.kind), attempt, node_, now, outcome.error, 0};
  if (next_status.state == JobState::failed && may_retry(claimed, attempt, false)) {
    next_status.state = JobState::retry_wait;
    next_status.retry_at_ms = now + backoff_ms(attempt);
  }
  std::string reason = next_status.state == JobState::succeeded ? "succeeded"
                       : next_status.state == JobState::retry_wait
                           ? "attempt failed, retry in " +
                                 std::to_string(next_status.retry_at_ms - now) +
                                 " ms: " + outcome.error
                           : outcome.error;
  auto fn = [this, next_status, result, reason, attempt,
             now](const JobRecord* cur) -> std::optional<JobRecord> {
    // Only the attempt that holds the claim may record an outcome.
    if (cur == nullptr || cur->status.state != JobState::running ||
        cur->status.attempt != attempt || cur->status.node != node_)
      return std::nullopt;
    JobRecord delta = *cur;
    delta.status = next_status;
    delta.results = {{node_, result}};
    delta.add_history(next_status.state, node_, attempt, now, reason);
    delta.updated_at_ms = now;
    return merge(*cur, delta);
  };
  store_.update(
      id, fn, [this, id, attempt, next_status, error = outcome.error](Status s, Applied a) {
        // Runs on the store's writer thread, after the slot was released.
        if (!s.is_ok() || !a.changed) {
          if (!s.is_ok()) log_event(warn, "finish_failed", id, s.message());
        } else {
          if (hooks_.replicate) hooks_.replicate(*a.after);
          {
            std::lock_guard lock(mu_);
            switch (next_status.state) {
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
          log_event(next_status.state == JobState::succeeded ? debug : warn,
                    "job_" + std::string(state_name(next_status.state)), id,
                    "attempt " + std::to_string(attempt) + (error.empty() ? "" : ": " + error));
          if (a.after && a.after->status.state == JobState::retry_wait)
            schedule(id, a.after->status.retry_at_ms);
        }
      });
}

// Every kWatchdogPeriodMs on the io thread: cancels attempts that ran past their timeout. One
// periodic timer instead of one timer per job keeps the io thread out of every job's path.
void Jobs::watch() {
  watchdog_.expires_after(std::chrono::milliseconds(kWatchdogPeriodMs));
  watchdog_.async_wait([this](std::error_code ec) {
    if (ec) return;
    const uint64_t now = mono_ms();
    {
      std::lock_guard lock(mu_);
      for (auto& [id, r] : running_) {
        if (r->deadline_mono_ms != 0 && now >= r->deadline_mono_ms && !r->timed_out) {
          r->timed_out = true;
          r->token.cancel();
        }
      }
    }
    if (hooks_.replicate && now >= last_renewal_mono_ms_ + options_.lease_ms / 3) {
      last_renewal_mono_ms_ = now;
      renew_leases();
    }
    watch();
  });
}

// On the io thread: extends the lease of every claim that holds, locally and on the replicas, so
// that nobody takes over a job that is still running here.
void Jobs::renew_leases() {
  std::vector<std::pair<std::string, uint32_t>> held;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, r] : running_)
      if (r->claim_confirmed && !r->claim_lost) held.emplace_back(id, r->claimed.status.attempt);
  }
  const uint64_t lease = wall_ms() + options_.lease_ms;
  for (const auto& [id, attempt] : held) {
    auto fn = [this, attempt, lease](const JobRecord* cur) -> std::optional<JobRecord> {
      if (cur == nullptr || cur->status.state != JobState::running ||
          cur->status.attempt != attempt || cur->status.node != node_ ||
          cur->claim.lease_until_ms >= lease)
        return std::nullopt;
      JobRecord next = *cur;
      next.claim = Claim{attempt, node_, lease};
      return next;
    };
    store_.update(id, fn, [this](Status s, Applied a) {
      if (s.is_ok() && a.changed) hooks_.replicate(*a.after);
    });
  }
}

void Jobs::schedule(const std::string& id, uint64_t at_wall_ms) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || !scheduled_.insert(id).second) return;
  }
  const uint64_t now = wall_ms();
  const auto delay = std::chrono::milliseconds(at_wall_ms > now ? at_wall_ms - now : 0);
  asio::post(io_, [this, id, delay] {
    auto timer = std::make_shared<asio::steady_timer>(io_, delay);
    timer->async_wait([this, id, timer](std::error_code ec) {
      {
        std::lock_guard lock(mu_);
        scheduled_.erase(id);
      }
      if (!ec) enqueue(id);
    });
  });
}

// Exponential backoff with "equal jitter": half fixed, half random, capped.
uint64_t Jobs::backoff_ms(uint32_t attempt) {
  const uint32_t shift = std::min<uint32_t>(attempt > 0 ? attempt - 1 : 0, 20);
  const uint64_t ceiling = std::min(options_.backoff_max_ms, options_.backoff_base_ms << shift);
  std::lock_guard lock(mu_);
  return ceiling / 2 + std::uniform_int_distribution<uint64_t>(0, ceiling / 2)(rng_);
}

// After a restart: attempts that were running when the process died are over; run them again.
Status Jobs::recover() {
  std::vector<std::string> interrupted, queued;
  std::vector<std::pair<std::string, uint64_t>> waiting;
  Status scanned = store_.scan([&](JobRecord&& r) {
    switch (r.status.state) {
      case JobState::running:
        if (r.status.node == node_) interrupted.push_back(r.id);
        break;
      case JobState::queued:
        queued.push_back(r.id);
        break;
      case JobState::retry_wait:
        waiting.emplace_back(r.id, r.status.retry_at_ms);
        break;
      default:
        break;
    }
  });
  if (!scanned.is_ok()) return scanned;
  const uint64_t now = wall_ms();
  for (const std::string& id : interrupted) {
    auto applied = store_.update_sync(id, [&](const JobRecord* cur) -> std::optional<JobRecord> {
      if (cur == nullptr || cur->status.state != JobState::running || cur->status.node != node_)
        return std::nullopt;
      const uint32_t n = cur->status.attempt;
      const std::string why = "attempt " + std::to_string(n) + " interrupted: node restarted";
      JobRecord next = *cur;
      const bool again = may_retry(*cur, n, true);
      next.status =
          JobStatus{again ? JobState::retry_wait : JobState::failed, n, node_, now, why, now};
      next.add_history(next.status.state, node_, n, now, why);
      next.updated_at_ms = now;
      return next;
    });
    if (!applied.is_ok()) return applied.status();
    if (applied.value().changed && applied.value().after->status.state == JobState::retry_wait)
      queued.push_back(id);
  }
  if (!hooks_.owns) {  // in a mesh, the mesh's sweeps start what this node owns
    for (const std::string& id : queued) enqueue(id);
    for (const auto& [id, at] : waiting) schedule(id, at);
  }
  log_event(info, "recovered", "",
            std::to_string(interrupted.size()) + " interrupted, " + std::to_string(queued.size()) +
                " runnable, " + std::to_string(waiting.size()) + " waiting to retry");
  return Status::ok();
}

}  // namespace meshwork
