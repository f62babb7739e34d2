// The run queue (dht/run_queue.h): priority first, ageing bounds the wait, front goes first.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "dht/run_queue.h"

namespace meshwork {
namespace {

std::vector<std::string> drain(RunQueue& q) {
  std::vector<std::string> out;
  while (auto id = q.pop()) out.push_back(*id);
  return out;
}

}  // namespace

TEST_CASE("run queue: higher priority first, ties in the order put in") {
  RunQueue q;
  CHECK(q.push("a1", 1, 1'000, false));
  CHECK(q.push("b5", 5, 1'001, false));
  CHECK(q.push("c1", 1, 1'002, false));
  CHECK(q.push("d9", 9, 1'003, false));
  CHECK(q.push("e5", 5, 1'004, false));
  CHECK_FALSE(q.push("a1", 9, 1'005, false));  // already in: neither moved nor doubled
  CHECK(q.size() == 5);
  CHECK(q.contains("c1"));
  CHECK(drain(q) == std::vector<std::string>{"d9", "b5", "e5", "a1", "c1"});
  CHECK(q.empty());
  CHECK_FALSE(q.pop());
}

TEST_CASE("run queue: a waiting job gains one level per ageing step") {
  RunQueue q;
  const uint64_t t0 = 5'000'000;
  q.push("low", 0, t0, false);
  SUBCASE("a priority-9 job put in just under 9 steps later still goes first") {
    q.push("high", 9, t0 + 9 * kPriorityAgeingMs - 1, false);
    CHECK(drain(q) == std::vector<std::string>{"high", "low"});
  }
  SUBCASE("one put in 9 steps later or more waits behind it") {
    q.push("high", 9, t0 + 9 * kPriorityAgeingMs + 1, false);
    CHECK(drain(q) == std::vector<std::string>{"low", "high"});
  }
  SUBCASE("a priority-5 job is overtaken by a priority-6 one only within one step") {
    RunQueue r;
    r.push("five", 5, t0, false);
    r.push("six-soon", 6, t0 + kPriorityAgeingMs / 2, false);
    r.push("six-late", 6, t0 + 2 * kPriorityAgeingMs, false);
    CHECK(drain(r) == std::vector<std::string>{"six-soon", "five", "six-late"});
  }
}

TEST_CASE("run queue: front jobs go before every other, by priority among themselves") {
  RunQueue q;
  q.push("queued9", 9, 1'000, false);
  q.push("front0", 0, 2'000, true);
  q.push("front7", 7, 3'000, true);
  q.push("queued5", 5, 900, false);
  CHECK(drain(q) == std::vector<std::string>{"front7", "front0", "queued9", "queued5"});
}

TEST_CASE("run queue: a priority above 9 counts as 9, and early times do not wrap") {
  RunQueue q;
  q.push("big", 200, 0, false);
  q.push("nine", 9, 0, false);
  q.push("zero", 0, 0, false);
  CHECK(drain(q) == std::vector<std::string>{"big", "nine", "zero"});
}

}  // namespace meshwork
