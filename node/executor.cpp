// A fixed pool of worker threads that run job handlers; see executor.h.
#include "node/executor.h"

#include "node/thread_name.h"

namespace meshwork {

Executor::Executor(size_t workers) : workers_n_(workers) {}

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
    queue_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

bool Executor::post(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

size_t Executor::busy() const {
  std::lock_guard lock(mu_);
  return busy_;
}

void Executor::worker_loop() {
  name_this_thread("mw-exec");
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    ++busy_;
    lock.unlock();
    task();
    lock.lock();
    --busy_;
  }
}

}  // namespace meshwork
