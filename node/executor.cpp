// A bounded worker pool that runs jobs by id; see executor.h.
#include "node/executor.h"

namespace meshwork {

Executor::Executor(size_t workers, RunFn run) : workers_n_(workers), run_(std::move(run)) {}

Executor::~Executor() { stop(); }

void Executor::start() {
  std::lock_guard lock(mu_);
  for (size_t i = threads_.size(); i < workers_n_; ++i)
    threads_.emplace_back([this] { worker_loop(); });
}

void Executor::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

bool Executor::enqueue(std::string job_id) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || !queued_.insert(job_id).second) return false;
    queue_.push_back(std::move(job_id));
  }
  cv_.notify_one();
  return true;
}

size_t Executor::backlog() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

size_t Executor::busy() const {
  std::lock_guard lock(mu_);
  return busy_;
}

void Executor::worker_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    std::string id = std::move(queue_.front());
    queue_.pop_front();
    queued_.erase(id);
    ++busy_;
    lock.unlock();
    run_(id);
    lock.lock();
    --busy_;
  }
}

}  // namespace meshwork
