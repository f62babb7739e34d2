// ElasticTaskQueue: threads start on demand up to the maximum, the ones above the floor exit when
// idle, every task runs once, and shutdown runs what is queued and joins.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "api/task_queue.h"

namespace meshwork::api {
namespace {

using namespace std::chrono_literals;

bool eventually(const std::function<bool()>& ok) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!ok()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

}  // namespace

TEST_CASE("threads grow with blocked tasks up to the maximum and shrink to the floor") {
  ElasticTaskQueue q(8, 2, 100);
  CHECK(q.live_threads() == 0);
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> running{0}, done{0};
  for (int i = 0; i < 12; ++i)
    q.enqueue([&] {
      running++;
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return release; });
      done++;
    });
  CHECK(eventually([&] { return running == 8; }));  // 8 threads busy, 4 tasks wait
  CHECK(q.live_threads() == 8);
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  CHECK(eventually([&] { return done == 12; }));
  CHECK(eventually([&] { return q.live_threads() == 2; }));  // idle ones above the floor exit
  std::this_thread::sleep_for(300ms);
  CHECK(q.live_threads() == 2);  // the floor stays
  std::atomic<int> later{0};
  for (int i = 0; i < 100; ++i) q.enqueue([&] { later++; });
  CHECK(eventually([&] { return later == 100; }));
  q.shutdown();
  CHECK(q.live_threads() == 0);
}

TEST_CASE("shutdown runs the queued tasks and refuses new ones") {
  std::atomic<int> ran{0};
  {
    ElasticTaskQueue q(1, 0, 50);
    for (int i = 0; i < 20; ++i)
      q.enqueue([&] {
        std::this_thread::sleep_for(1ms);
        ran++;
      });
    q.shutdown();
    CHECK(ran == 20);
    q.enqueue([&] { ran++; });
  }
  CHECK(ran == 20);
}

}  // namespace meshwork::api
