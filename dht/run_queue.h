// The run queue: the jobs this node owns and may start now, best first — the replica core's
// backlog (dht/replica.h). Pure and bounded by what the core puts in it.
//
// Order. A job of priority p (0–9, higher first) put in at monotonic time t waits as if it had
// been put in p·kPriorityAgeingMs earlier: the queue serves the least virtual time
// t − p·kPriorityAgeingMs first, ties in the order put in. That is ageing: a waiting job's
// effective priority rises by one level per kPriorityAgeingMs waited, so it is served before any
// job put in more than (9 − p)·kPriorityAgeingMs after it, whatever that job's priority. Nothing
// starves: a job's wait is bounded by the time to drain what arrived up to 9 ageing steps
// (4.5 minutes) after it. Within one step priority alone decides: a late priority-9 job runs
// before every priority-1 job queued less than 8 steps (4 minutes) before it.
//
// Front. A job put in with `front` (an attempt interrupted by a dead or stalled owner, or by a
// restart) goes before every job put in without it; among themselves front jobs keep the order
// above. Such a job already waited for its turn once and was running when its owner died: it is
// not made to wait again behind newer work, whatever their priorities.
//
// Invariants: 1. an id is in the queue at most once; 2. size() counts the ids in it.
// Thread-safety: none (the replica core's thread).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>

namespace meshwork {

// One priority level per 30 s waited. Long against a typical job (milliseconds to seconds), so
// that a backlog drained within minutes runs by priority; short enough that the lowest priority
// is overtaken only by jobs arriving within 4.5 minutes of it (9 steps).
inline constexpr uint64_t kPriorityAgeingMs = 30'000;
inline constexpr uint32_t kRunQueuePriorityMax = 9;

class RunQueue {
 public:
  // Puts `id` in (false when it is there already). `priority` above 9 counts as 9.
  bool push(const std::string& id, uint32_t priority, uint64_t now_ms, bool front);
  // Takes out the best job; nullopt when empty.
  [[nodiscard]] std::optional<std::string> pop();
  [[nodiscard]] bool contains(std::string_view id) const { return by_id_.contains(id); }
  [[nodiscard]] size_t size() const { return by_id_.size(); }
  [[nodiscard]] bool empty() const { return by_id_.empty(); }

 private:
  // (0 for front else 1, virtual time, order put in, id): std::set keeps them best first.
  using Key = std::tuple<uint8_t, int64_t, uint64_t, std::string>;
  std::set<Key> order_;
  struct IdHash {  // lookups by string_view without building a string
    using is_transparent = void;
    size_t operator()(std::string_view id) const { return std::hash<std::string_view>{}(id); }
  };
  std::unordered_map<std::string, std::set<Key>::iterator, IdHash, std::equal_to<>> by_id_;
  uint64_t next_ = 0;
};

}  // namespace meshwork
