// A bounded worker pool that runs jobs by id.
//
// The backlog holds job ids (not records: the store is the source of truth and a worker reads the
// record when it starts). An id is never queued twice at once. Admission control happens before a
// job is stored: callers check backlog() against their limit, so the pool itself never refuses an
// id that is already durable (recovery after a restart may queue more than the limit).
// Thread-safety: every method may be called from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace meshwork {

class Executor {
 public:
  using RunFn = std::function<void(const std::string& job_id)>;

  Executor(size_t workers, RunFn run);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void start();
  // Stops taking work and joins the workers once the jobs they are running return.
  void stop();
  // Queues `job_id` unless it is already queued; returns false when it was.
  bool enqueue(std::string job_id);

  [[nodiscard]] size_t backlog() const;
  [[nodiscard]] size_t busy() const;
  [[nodiscard]] size_t workers() const { return workers_n_; }

 private:
  void worker_loop();

  const size_t workers_n_;
  RunFn run_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::unordered_set<std::string> queued_;
  size_t busy_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace meshwork
