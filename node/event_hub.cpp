// Job and membership events fanned out to bounded subscribers; see event_hub.h.
#include "node/event_hub.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "node/clock.h"

namespace meshwork {
namespace {

constexpr size_t kTakeoverLookback = 4;  // history entries searched for a takeover

std::string frame(std::string_view kind, const std::string& data) {
  std::string f;
  f.reserve(data.size() + kind.size() + 16);
  f.append("event: ").append(kind).append("\ndata: ").append(data).append("\n\n");
  return f;
}

}  // namespace

std::string job_event_json(const JobRecord& r, uint64_t now_ms) {
  nlohmann::json j = {{"id", r.id},
                      {"state", public_state(r, now_ms)},
                      {"type", r.type},
                      {"node", r.status.node},
                      {"attempt", r.status.attempt},
                      {"at_ms", r.status.at_ms}};
  // Why it changed, when the newest history entry tells (a takeover: "owner n2 dead; n3 takes
  // over"; a failure: the error).
  if (!r.history.empty() && !r.history.back().reason.empty()) j["reason"] = r.history.back().reason;
  // The takeover that led to this attempt, while it is recent: a node may see the takeover and
  // the new attempt's claim merged into one change, and the takeover would be lost to its readers.
  for (size_t i = r.history.size(), seen = 0; i-- > 0 && seen < kTakeoverLookback; ++seen) {
    const HistoryEntry& h = r.history[i];
    if (h.attempt + 1 < r.status.attempt) break;
    if (h.reason.find(" takes over") != std::string::npos) {
      j["takeover"] = h.reason;
      break;
    }
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

EventHub::Subscription::~Subscription() {
  hub_.remove(this);
}

void EventHub::Subscription::push(const std::string& f) {
  std::lock_guard lock(mu_);
  if (end_ != Wait::events) return;
  if (queue_.size() >= hub_.options_.queue_max) {
    queue_.clear();
    end_ = Wait::dropped;
    hub_.dropped_++;
  } else {
    queue_.push_back(f);
  }
  cv_.notify_one();
}

void EventHub::Subscription::end(Wait why) {
  std::lock_guard lock(mu_);
  if (end_ == Wait::events) end_ = why;
  cv_.notify_one();
}

EventHub::Wait EventHub::Subscription::next(std::chrono::milliseconds timeout,
                                            std::vector<std::string>& out) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [this] { return !queue_.empty() || end_ != Wait::events; });
  if (end_ != Wait::events) return end_;
  if (queue_.empty()) return Wait::timeout;
  for (auto& f : queue_) out.push_back(std::move(f));
  queue_.clear();
  return Wait::events;
}

Result<std::unique_ptr<EventHub::Subscription>> EventHub::subscribe(EventFilter filter,
                                                                    bool counted) {
  std::lock_guard lock(mu_);
  if (closed_) return Status(Code::unavailable, "the node is stopping");
  if (counted && streams_ >= options_.streams_max)
    return Status(Code::overloaded, "this node already serves " +
                                        std::to_string(options_.streams_max) +
                                        " event streams; retry later or use another node");
  std::unique_ptr<Subscription> s(new Subscription(*this, std::move(filter), counted));
  subs_.push_back(s.get());
  if (counted) streams_++;
  subscribers_.store(subs_.size(), std::memory_order_relaxed);
  return s;
}

void EventHub::remove(Subscription* s) {
  std::lock_guard lock(mu_);
  auto it = std::find(subs_.begin(), subs_.end(), s);
  if (it == subs_.end()) return;
  subs_.erase(it);
  if (s->counted_) streams_--;
  subscribers_.store(subs_.size(), std::memory_order_relaxed);
  if (subs_.empty()) seen_.clear();
}

void EventHub::publish(bool job_event, const std::string& job, std::string f) {
  published_++;
  for (Subscription* s : subs_) {
    const EventFilter& want = s->filter_;
    if (job_event ? !want.jobs || (!want.job.empty() && want.job != job)
                  : !want.members || !want.job.empty())
      continue;
    s->push(f);
  }
}

void EventHub::publish_job(const JobRecord& r) {
  if (!wanted()) return;
  std::lock_guard lock(mu_);
  auto key = std::make_tuple(r.status.state, r.status.attempt, r.status.node);
  auto it = seen_.find(r.id);
  if (it != seen_.end() && it->second == key) return;
  if (it != seen_.end()) {
    it->second = std::move(key);
  } else {
    if (seen_.size() >= kSeenMax) seen_.clear();
    seen_.emplace(r.id, std::move(key));
  }
  publish(true, r.id, frame("job", job_event_json(r, wall_ms())));
}

void EventHub::publish_member(const std::string& name, std::string_view state, uint64_t incarnation,
                              const std::string& address) {
  if (!wanted()) return;
  nlohmann::json j = {
      {"name", name}, {"state", state}, {"incarnation", incarnation}, {"address", address}};
  std::lock_guard lock(mu_);
  publish(false, "",
          frame("member", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
}

void EventHub::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  for (Subscription* s : subs_) s->end(Wait::closed);
}

size_t EventHub::streams() const {
  std::lock_guard lock(mu_);
  return streams_;
}

}  // namespace meshwork
