// EventHub: the node's job state changes and membership changes, fanned out to subscribers —
// the server-sent event streams of GET /v1/events and the long-polls of GET /v1/jobs/{id}?wait_s.
//
// Publishers: the replica driver on the loop (a record this node persisted whose state, attempt
// or status node changed; a member that gossip reports changed). Each event is rendered once, as
// the SSE frame `event: <kind>\ndata: <json>\n\n`, and queued to every subscriber whose filter it
// passes. Nothing is rendered while nobody listens (wanted() is one atomic load).
//
// Bounds: at most `streams_max` counted subscribers (the SSE streams; subscribe answers
// Code::overloaded beyond, which the API turns into 429); each subscriber queues at most
// `queue_max` events — a reader that falls that far behind is dropped (its next() says so) and
// never buffered without limit. Long-polls subscribe uncounted; the API bounds them itself.
//
// Thread-safety: every member from any thread. A Subscription's next() from one thread at a time.
// close() wakes every waiting next() (the node is stopping); later subscribes fail.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "dht/job_record.h"
#include "dht/result.h"

namespace meshwork {

struct EventFilter {
  std::string job;  // only this job's changes ("" = every job)
  bool jobs = true;
  bool members = true;
};

// The JSON of a job event (the `data:` line), shared with the API's followers of remote jobs.
// Its state is public_state(r, now_ms): a delayed job is announced as scheduled.
[[nodiscard]] std::string job_event_json(const JobRecord& r, uint64_t now_ms);

class EventHub {
 public:
  struct Options {
    size_t streams_max = 32;   // counted subscribers (SSE streams) at once
    size_t queue_max = 1'024;  // events queued per subscriber before it is dropped
  };
  enum class Wait : uint8_t { events, timeout, dropped, closed };

  class Subscription {
   public:
    ~Subscription();
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;
    // Waits up to `timeout` for events; appends their SSE frames to `out` (Wait::events).
    [[nodiscard]] Wait next(std::chrono::milliseconds timeout, std::vector<std::string>& out);
    [[nodiscard]] const EventFilter& filter() const { return filter_; }

   private:
    friend class EventHub;
    Subscription(EventHub& hub, EventFilter filter, bool counted)
        : hub_(hub), filter_(std::move(filter)), counted_(counted) {}
    void push(const std::string& frame);  // hub_.mu_ held
    void end(Wait why);

    EventHub& hub_;
    const EventFilter filter_;
    const bool counted_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::string> queue_;
    Wait end_ = Wait::events;  // dropped or closed once it ends
  };

  explicit EventHub(Options options) : options_(options) {}
  EventHub() : EventHub(Options{}) {}
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // `counted`: an SSE stream, bounded by streams_max (Code::overloaded beyond). Code::unavailable
  // once closed.
  [[nodiscard]] Result<std::unique_ptr<Subscription>> subscribe(EventFilter filter, bool counted);

  [[nodiscard]] bool wanted() const { return subscribers_.load(std::memory_order_relaxed) > 0; }
  // A record as persisted here: an event when its (state, attempt, status node) is new to the
  // hub. The hub remembers the last one of up to kSeenMax jobs (then starts over: at worst a
  // repeated event, never a lost one).
  void publish_job(const JobRecord& r);
  void publish_member(const std::string& name, std::string_view state, uint64_t incarnation,
                      const std::string& address);
  void close();

  [[nodiscard]] size_t streams() const;
  [[nodiscard]] uint64_t dropped() const { return dropped_.load(); }
  [[nodiscard]] uint64_t published() const { return published_.load(); }
  [[nodiscard]] const Options& options() const { return options_; }

  static constexpr size_t kSeenMax = 65'536;

 private:
  void publish(bool job_event, const std::string& job, std::string frame);
  void remove(Subscription* s);

  const Options options_;
  std::atomic<size_t> subscribers_{0};
  std::atomic<uint64_t> dropped_{0}, published_{0};
  mutable std::mutex mu_;
  std::vector<Subscription*> subs_;
  size_t streams_ = 0;
  bool closed_ = false;
  std::unordered_map<std::string, std::tuple<JobState, uint32_t, std::string>> seen_;
};

}  // namespace meshwork
