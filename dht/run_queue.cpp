// The run queue; see run_queue.h.
#include "dht/run_queue.h"

#include <algorithm>

#include "dht/require.h"

namespace meshwork {

bool RunQueue::push(const std::string& id, uint32_t priority, uint64_t now_ms, bool front) {
  if (by_id_.contains(id)) return false;
  const uint32_t p = std::min(priority, kRunQueuePriorityMax);
  const int64_t virtual_ms =
      static_cast<int64_t>(now_ms) - static_cast<int64_t>(p * kPriorityAgeingMs);
  auto [it, inserted] = order_.emplace(front ? 0 : 1, virtual_ms, next_++, id);
  dht::require(inserted, "run queue: a new id has a new key");
  by_id_.emplace(id, it);
  return true;
}

std::optional<std::string> RunQueue::pop() {
  if (order_.empty()) return std::nullopt;
  auto node = order_.extract(order_.begin());
  std::string id = std::move(std::get<3>(node.value()));
  by_id_.erase(id);
  dht::require(by_id_.size() == order_.size(), "run queue: one key per id");
  return id;
}

}  // namespace meshwork
