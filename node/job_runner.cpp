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

bool may_retry(const JobRecord& r, uint32_t ended_attempt, bool interrupted) {
  const uint32_t limit = r.max_attempts + (interrupted ? kInterruptedAttemptsExtraMax : 0);
  return ended_attempt < limit;
}

JobState outcome_state(HandlerOutcome::Kind k) {
  switch (k) {
    case HandlerOutcome::Kind::succeeded: return JobState::succeeded;
    case HandlerOutcome::Kind::cancelled: return JobState::cancelled;
    case HandlerOutcome::Kind::failed: break;
  }
  return JobState::failed;
}

}  // namespace

void Jobs::run(const std::string& id) {
  std::optional<JobRecord> claimed = claim(id);
  if (!claimed) return;
  auto running = std::make_shared<Running>();
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    running_[id] = running;
    stats_.attempts_started++;
    if (claimed->cancel_requested) running->token.cancel();
  }
  HandlerOutcome outcome = execute(*claimed, running);
  {
    std::lock_guard lock(mu_);
    running_.erase(id);
    if (stopping_) return;  // shutting down: the record stays running and recovery re-runs it
  }
  finish(*claimed, outcome);
}

// Marks the job running with attempt+1 on disk; nullopt when it is not ours to run now.
std::optional<JobRecord> Jobs::claim(const std::string& id) {
  const uint64_t now = wall_ms();
  auto applied = store_.update_sync(id, [&](const JobRecord* cur) -> std::optional<JobRecord> {
    if (cur == nullptr || is_terminal(cur->status.state)) return std::nullopt;
    if (cur->status.state == JobState::running) return std::nullopt;
    if (cur->status.state == JobState::retry_wait && cur->status.retry_at_ms > now) return std::nullopt;
    JobRecord next = *cur;
    const uint32_t attempt = cur->status.attempt + 1;
    next.status = JobStatus{JobState::running, attempt, node_, now, cur->status.error, 0};
    next.claim = Claim{attempt, node_, now + cur->timeout_ms + options_.lease_grace_ms};
    next.add_history(JobState::running, node_, attempt, now, "attempt " + std::to_string(attempt));
    next.updated_at_ms = now;
    return next;
  });
  if (!applied.is_ok()) {
    log_event(warn, "claim_failed", id, applied.status().message());
    return std::nullopt;
  }
  if (!applied.value().changed) return std::nullopt;
  return std::move(applied.value().after);
}

HandlerOutcome Jobs::execute(const JobRecord& rec, const std::shared_ptr<Running>& running) {
  const Handler* handler = find_handler(rec.type);
  if (handler == nullptr) return HandlerOutcome::failure("no handler for type " + rec.type);
  auto spec = nlohmann::json::parse(rec.envelope.job, nullptr, false);
  if (spec.is_discarded() || !spec.is_object())
    return HandlerOutcome::failure("the signed job text is not a JSON object");
  // Timers belong to the io thread; the handler below may outlive or be outlived by the timer.
  auto timer = std::make_shared<asio::steady_timer>(io_);
  asio::post(io_, [timer, running, ms = rec.timeout_ms] {
    timer->expires_after(std::chrono::milliseconds(ms));
    timer->async_wait([running](std::error_code ec) {
      if (ec) return;
      running->timed_out = true;
      running->token.cancel();
    });
  });
  log_event(debug, "job_started", rec.id, "attempt " + std::to_string(rec.status.attempt));
  const nlohmann::json payload = spec.value("payload", nlohmann::json::object());
  HandlerOutcome out;
  try {
    out = handler->run(JobContext{rec.id, payload, rec.status.attempt}, running->token);
  } catch (const std::exception& e) {
    out = HandlerOutcome::failure(std::string("handler threw: ") + e.what());
  }
  asio::post(io_, [timer] { timer->cancel(); });
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
                                 std::to_string(next_status.retry_at_ms - now) + " ms: " +
                                 outcome.error
                           : outcome.error;
  auto applied = store_.update_sync(id, [&](const JobRecord* cur) -> std::optional<JobRecord> {
    if (cur == nullptr) return std::nullopt;
    JobRecord delta = *cur;
    delta.status = next_status;
    delta.results = {{node_, result}};
    delta.add_history(next_status.state, node_, attempt, now, reason);
    delta.updated_at_ms = now;
    return merge(*cur, delta);
  });
  if (!applied.is_ok()) {
    log_event(warn, "finish_failed", id, applied.status().message());
    return;
  }
  const JobState state = applied.value().after->status.state;
  {
    std::lock_guard lock(mu_);
    switch (next_status.state) {
      case JobState::succeeded: stats_.succeeded++; break;
      case JobState::failed: stats_.failed++; break;
      case JobState::cancelled: stats_.cancelled++; break;
      default: stats_.retried++; break;
    }
  }
  log_event(next_status.state == JobState::succeeded ? info : warn,
            std::string("job_") + std::string(state_name(next_status.state)), id,
            "attempt " + std::to_string(attempt) + (outcome.error.empty() ? "" : ": " + outcome.error));
  if (state == JobState::retry_wait) schedule(id, applied.value().after->status.retry_at_ms);
}

void Jobs::schedule(const std::string& id, uint64_t at_wall_ms) {
  const uint64_t now = wall_ms();
  const auto delay = std::chrono::milliseconds(at_wall_ms > now ? at_wall_ms - now : 0);
  asio::post(io_, [this, id, delay] {
    auto timer = std::make_shared<asio::steady_timer>(io_, delay);
    timer->async_wait([this, id, timer](std::error_code ec) {
      if (!ec) executor_.enqueue(id);
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
      case JobState::running: interrupted.push_back(r.id); break;
      case JobState::queued: queued.push_back(r.id); break;
      case JobState::retry_wait: waiting.emplace_back(r.id, r.status.retry_at_ms); break;
      default: break;
    }
  });
  if (!scanned.is_ok()) return scanned;
  const uint64_t now = wall_ms();
  for (const std::string& id : interrupted) {
    auto applied = store_.update_sync(id, [&](const JobRecord* cur) -> std::optional<JobRecord> {
      if (cur == nullptr || cur->status.state != JobState::running) return std::nullopt;
      const uint32_t n = cur->status.attempt;
      const std::string why = "attempt " + std::to_string(n) + " interrupted: node restarted";
      JobRecord next = *cur;
      const bool again = may_retry(*cur, n, true);
      next.status = JobStatus{again ? JobState::retry_wait : JobState::failed, n, node_, now, why, now};
      next.add_history(next.status.state, node_, n, now, why);
      next.updated_at_ms = now;
      return next;
    });
    if (!applied.is_ok()) return applied.status();
    if (applied.value().changed && applied.value().after->status.state == JobState::retry_wait)
      queued.push_back(id);
  }
  for (const std::string& id : queued) executor_.enqueue(id);
  for (const auto& [id, at] : waiting) schedule(id, at);
  log_event(info, "recovered", "",
            std::to_string(interrupted.size()) + " interrupted, " + std::to_string(queued.size()) +
                " runnable, " + std::to_string(waiting.size()) + " waiting to retry");
  return Status::ok();
}

}  // namespace meshwork
