// The job service; see jobs.h for the life of a job.
#include "node/jobs.h"

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "node/clock.h"
#include "node/log.h"

namespace meshwork {
namespace {

using spdlog::level::debug;
using spdlog::level::info;
using spdlog::level::warn;

bool is_envelope(const nlohmann::json& body) {
  return body.is_object() && body.contains("job") && body.contains("signature");
}

}  // namespace

Jobs::Jobs(asio::io_context& io, Store& store, const Identity& key, std::string node_name,
           JobsOptions options)
    : io_(io),
      store_(store),
      key_(key),
      node_(std::move(node_name)),
      options_(std::move(options)),
      executor_(options_.workers),
      watchdog_(io),
      rng_(std::random_device{}()) {}

Jobs::~Jobs() {
  stop();
}

Status Jobs::start() {
  executor_.start();
  asio::post(io_, [this] { watch(); });
  return recover();
}

void Jobs::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& [id, r] : running_) r->token.cancel();
  }
  executor_.stop();
  store_.flush();              // no store callback into this object is left pending
  std::promise<void> stopped;  // the watchdog belongs to the io thread: cancel it there
  asio::post(io_, [this, &stopped] {
    watchdog_.cancel();
    stopped.set_value();
  });
  stopped.get_future().wait();
}

// The verified (or freshly signed) envelope of `body`, and its parsed spec in `spec`.
Result<Envelope> Jobs::envelope_for(const nlohmann::json& body, JobSpec& spec) const {
  if (!is_envelope(body)) {
    if (options_.require_signed || options_.allowed_keys)
      return Result<Envelope>(Code::unauthorized,
                              "this node accepts only signed jobs: send a signed envelope");
    return sign_plain_job(body, key_, wall_ms(), options_.limits, &spec);
  }
  auto env = parse_envelope(body);
  if (!env.is_ok()) return env;
  auto opened = open_envelope(env.value(), options_.limits);
  if (!opened.is_ok()) return opened.status();
  if (options_.allowed_keys && !options_.allowed_keys->contains(env.value().public_key))
    return Result<Envelope>(Code::forbidden, "the signing key is not allowed to submit jobs here");
  spec = std::move(opened).value();
  return env;
}

Result<JobRecord> Jobs::admit(const nlohmann::json& body) {
  JobSpec spec;
  auto env = envelope_for(body, spec);
  auto count_reject = [&] {
    std::lock_guard lock(mu_);
    stats_.rejected++;
  };
  if (!env.is_ok()) {
    count_reject();
    return env.status();
  }
  if (backlog() >= options_.backlog_max) {
    count_reject();
    return Result<JobRecord>(Code::overloaded, "the node's backlog is full; retry later");
  }
  uint64_t at;
  {
    std::lock_guard lock(mu_);
    at = last_submission_ms_ = std::max(wall_ms(), last_submission_ms_ + 1);
  }
  return make_record(std::move(env).value(), spec, node_, at);
}

Result<Jobs::Submitted> Jobs::submit(const nlohmann::json& body) {
  auto admitted = admit(body);
  if (!admitted.is_ok()) return admitted.status();
  JobRecord rec = std::move(admitted).value();
  const std::string id = rec.id;
  auto applied = store_.update_sync(id, [rec = std::move(rec)](const JobRecord* cur) {
    return cur ? std::nullopt : std::optional<JobRecord>(rec);
  });
  if (!applied.is_ok()) return applied.status();
  Applied& a = applied.value();
  {
    std::lock_guard lock(mu_);
    (a.changed ? stats_.submitted : stats_.duplicates)++;
  }
  if (a.changed) {
    log_event(debug, "job_accepted", id, a.after->type);
    enqueue(id);
  }
  return Submitted{std::move(*a.after), a.changed};
}

Result<JobRecord> Jobs::get(const std::string& id) const {
  auto rec = store_.get(id);
  if (!rec.is_ok()) return rec.status();
  if (!rec.value()) return Result<JobRecord>(Code::not_found, "no job with id " + id);
  return std::move(*rec.value());
}

Result<Store::Page> Jobs::list(const ListQuery& q) const {
  Store::Filter filter = [&q](const JobRecord& r) {
    if (!q.type.empty() && r.type != q.type) return false;
    if (q.state && public_state_name(r.status.state) != public_state_name(*q.state)) return false;
    return true;
  };
  return store_.list(filter, q.limit, q.cursor);
}

std::optional<JobRecord> cancel_record(const JobRecord* cur, const std::string& id,
                                       const std::string& node, uint64_t now, Status& refusal) {
  if (cur == nullptr) {
    refusal = Status(Code::not_found, "no job with id " + id);
    return std::nullopt;
  }
  if (is_terminal(cur->status.state)) {
    refusal =
        Status(Code::conflict, "the job already " + std::string(state_name(cur->status.state)));
    return std::nullopt;
  }
  if (cur->cancel_requested) return std::nullopt;
  JobRecord next = *cur;
  next.cancel_requested = true;
  next.updated_at_ms = now;
  if (cur->status.state == JobState::running) {
    next.add_history(JobState::running, node, cur->status.attempt, now, "cancel requested");
  } else {
    next.status =
        JobStatus{JobState::cancelled, cur->status.attempt, node, now, "cancelled by request", 0};
    next.add_history(JobState::cancelled, node, cur->status.attempt, now,
                     "cancelled by request before it ran");
  }
  return next;
}

Result<JobRecord> Jobs::cancel(const std::string& id) {
  const uint64_t now = wall_ms();
  Status refusal = Status::ok();
  auto applied = store_.update_sync(
      id, [&](const JobRecord* cur) { return cancel_record(cur, id, node_, now, refusal); });
  if (!applied.is_ok()) return applied.status();
  if (!refusal.is_ok()) return refusal;
  cancel_running(id);
  note_cancel(applied.value());
  log_event(info, "job_cancel", id);
  return std::move(*applied.value().after);
}

void Jobs::note_cancel(const Applied& a) {
  std::lock_guard lock(mu_);
  if (a.changed && a.after->status.state == JobState::cancelled) stats_.cancelled++;
}

void Jobs::note_submitted(bool created) {
  std::lock_guard lock(mu_);
  (created ? stats_.submitted : stats_.duplicates)++;
}

void Jobs::cancel_running(const std::string& id) {
  std::lock_guard lock(mu_);
  if (auto it = running_.find(id); it != running_.end()) it->second->token.cancel();
}

bool Jobs::is_active(const std::string& id) const {
  std::lock_guard lock(mu_);
  return active_.contains(id) || scheduled_.contains(id);
}

size_t Jobs::backlog() const {
  std::lock_guard lock(mu_);
  return backlog_.size();
}

JobsStats Jobs::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace meshwork
