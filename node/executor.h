// A fixed pool of worker threads that run job handlers.
//
// Tasks are closures; the pool runs at most `workers` of them at once, in FIFO order. The pool does
// not bound its queue: the job service admits work (its backlog limit and claim window, jobs.h),
// and only ever posts a task for a job it has already claimed, so at most window-many tasks wait.
// Thread-safety: every method may be called from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace meshwork {

class Executor {
 public:
  explicit Executor(size_t workers);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void start();
  // Stops taking tasks; waits for the running ones to return; queued ones are dropped.
  void stop();
  // Queues a task; returns false when the pool is stopping.
  bool post(std::function<void()> task);

  [[nodiscard]] size_t busy() const;
  [[nodiscard]] size_t workers() const { return workers_n_; }

 private:
  void worker_loop();

  const size_t workers_n_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  size_t busy_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace meshwork
