// cpp-httplib's elastic worker pool; see task_queue.h.
#include "api/task_queue.h"

#include <algorithm>
#include <chrono>

#include "node/thread_name.h"

namespace meshwork::api {

ElasticTaskQueue::ElasticTaskQueue(size_t threads_max, size_t threads_min, uint64_t idle_ms)
    : threads_max_(std::max<size_t>(threads_max, 1)),
      threads_min_(std::min(threads_min, threads_max_)),
      idle_ms_(idle_ms),
      threads_(threads_max_),
      live_(threads_max_, false) {}

ElasticTaskQueue::~ElasticTaskQueue() {
  shutdown();
}

void ElasticTaskQueue::enqueue(std::function<void()> fn) {
  std::thread stale;  // an exited thread in the slot about to be reused, joined outside the lock
  {
    std::lock_guard lock(mu_);
    if (shutdown_) return;
    queue_.push_back(std::move(fn));
    if (idle_count_ < queue_.size() && live_count_ < threads_max_) {
      size_t slot = 0;
      while (live_[slot]) ++slot;
      stale = std::move(threads_[slot]);
      live_[slot] = true;
      ++live_count_;
      threads_[slot] = std::thread([this, slot] { worker(slot); });
    }
  }
  cv_.notify_one();
  if (stale.joinable()) stale.join();
}

void ElasticTaskQueue::shutdown() {
  std::vector<std::thread> all;
  {
    std::lock_guard lock(mu_);
    shutdown_ = true;
    for (auto& t : threads_)
      if (t.joinable()) all.push_back(std::move(t));
  }
  cv_.notify_all();
  for (auto& t : all) t.join();
}

size_t ElasticTaskQueue::live_threads() const {
  std::lock_guard lock(mu_);
  return live_count_;
}

void ElasticTaskQueue::worker(size_t slot) {
  name_this_thread("mw-http");
  const auto idle = std::chrono::milliseconds(idle_ms_);
  std::unique_lock lock(mu_);
  for (;;) {
    ++idle_count_;
    const auto has_work = [&] { return shutdown_ || !queue_.empty(); };
    bool work = true;
    if (live_count_ > threads_min_) {
      work = cv_.wait_for(lock, idle, has_work);
    } else {
      cv_.wait(lock, has_work);
    }
    --idle_count_;
    if (queue_.empty()) {
      if (shutdown_ || (!work && live_count_ > threads_min_)) break;
      continue;  // timed out, but the floor needs this thread
    }
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
  live_[slot] = false;
  --live_count_;
}

}  // namespace meshwork::api
