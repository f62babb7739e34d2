// ElasticTaskQueue: cpp-httplib's worker pool, grown on demand and shrunk when idle.
//
// cpp-httplib hands every accepted connection to its TaskQueue, and a keep-alive connection holds
// its worker for as long as it lives. The stock ThreadPool starts all its threads at once and
// keeps them forever (64 threads per idle node). This queue starts a thread only when a task
// waits and no thread is free, up to threads_max; threads above threads_min exit after idle_ms
// without a task. So an idle node keeps at most threads_min HTTP threads, and a busy one serves up
// to threads_max connections at once (beyond that, connections wait in the queue, as before).
//
// Thread-safety: enqueue() and shutdown() from any thread (cpp-httplib calls them from its
// listening thread). Invariants: threads_min <= live threads <= threads_max once threads_min
// tasks have arrived; after shutdown() no task is taken, queued tasks are still run, every thread
// is joined.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <httplib.h>

namespace meshwork::api {

class ElasticTaskQueue final : public httplib::TaskQueue {
 public:
  ElasticTaskQueue(size_t threads_max, size_t threads_min, uint64_t idle_ms);
  ~ElasticTaskQueue() override;  // shutdown()
  ElasticTaskQueue(const ElasticTaskQueue&) = delete;
  ElasticTaskQueue& operator=(const ElasticTaskQueue&) = delete;

  void enqueue(std::function<void()> fn) override;
  void shutdown() override;

  [[nodiscard]] size_t live_threads() const;

 private:
  void worker(size_t slot);

  const size_t threads_max_;
  const size_t threads_min_;
  const uint64_t idle_ms_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;  // one slot per thread; an exited one waits to be joined
  std::vector<bool> live_;
  size_t live_count_ = 0, idle_count_ = 0;
  bool shutdown_ = false;
};

}  // namespace meshwork::api
