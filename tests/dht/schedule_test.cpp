// Scheduling in the replica core (dht/replica.h, dht/run_queue.h) on the deterministic stage:
// priorities and ageing on a one-worker node, interrupted attempts ahead of priority, and delayed
// jobs — not started early, woken by the core's own deadline, honoured by a replica that takes
// over and by a node that restarts.
#include <doctest/doctest.h>

#include "tests/dht/replica_harness.h"

namespace meshwork {
namespace {

using stage::Stage;

ReplicaConfig one_worker() {
  ReplicaConfig c = stage::quiet();
  c.workers = 1;
  return c;
}

// Job number `n` or the first after it whose owner over the stage's members is `owner` (and,
// when `order` is given, whose whole preference list is `order`).
JobRecord job_on(Stage& s, int& n, const std::string& owner, uint32_t priority,
                 uint64_t delay_ms = 0, const std::vector<std::string>& order = {}) {
  for (; n < 100'000; ++n) {
    JobRecord r = stage::job(n, s.now().wall_ms, "n1", 600'000, priority, delay_ms);
    const auto list = s.core(0).placement().replicas(r.id);
    if (list.front() == owner && (order.empty() || list == order)) {
      ++n;
      return r;
    }
  }
  FAIL("no job id lands on that owner");
  return {};
}

// The ids node i started, in order.
std::vector<std::string> started(Stage& s, size_t i) {
  std::vector<std::string> ids;
  for (const Start& st : s.node(i).starts) ids.push_back(st.id);
  return ids;
}

uint64_t first_running_at(const JobRecord& r) {
  for (const HistoryEntry& h : r.history)
    if (h.state == JobState::running) return h.at_ms;
  return 0;
}

// On a busy one-worker node: a priority-0 job, then `wait_ms` later two priority-9 jobs. Returns
// the order the three start in once the worker is free.
std::vector<std::string> low_then_high(uint64_t wait_ms, std::vector<std::string>& ids) {
  Stage s(3, one_worker());
  int n = 0;
  const JobRecord busy = job_on(s, n, "n1", 5);
  s.submit(0, busy);
  s.settle();
  const JobRecord low = job_on(s, n, "n1", 0);
  s.submit(0, low);
  s.settle();
  s.run(wait_ms, 1'000);
  const JobRecord high_a = job_on(s, n, "n1", 9);
  const JobRecord high_b = job_on(s, n, "n1", 9);
  s.submit(0, high_a);
  s.submit(0, high_b);
  s.settle();
  REQUIRE(started(s, 0) == std::vector<std::string>{busy.id});  // the worker was busy throughout
  ids = {low.id, high_a.id, high_b.id};
  for (int k = 0; k < 3; ++k) {
    s.finish(0, started(s, 0).back());
    s.settle();
  }
  std::vector<std::string> order = started(s, 0);
  order.erase(order.begin());
  return order;
}

}  // namespace

TEST_CASE("one worker: a late priority-9 job starts before the priority-1 jobs queued earlier") {
  Stage s(3, one_worker());
  int n = 0;
  const JobRecord busy = job_on(s, n, "n1", 5);
  s.submit(0, busy);
  s.settle();
  REQUIRE(s.node(0).running.contains(busy.id));
  std::vector<std::string> low;
  for (int k = 0; k < 3; ++k) {
    const JobRecord r = job_on(s, n, "n1", 1);
    low.push_back(r.id);
    s.submit(0, r);
    s.run(100);
  }
  const JobRecord urgent = job_on(s, n, "n1", 9);
  s.submit(1, urgent);  // through another entry node: the owner orders it all the same
  s.run(100);
  CHECK(s.core(0).backlog() == 4);
  std::vector<std::string> order{busy.id};
  for (const std::string& id : {urgent.id, low[0], low[1], low[2]}) {
    s.finish(0, order.back());
    s.settle();
    order.push_back(id);
    CHECK(started(s, 0) == order);
  }
}

TEST_CASE("ageing: a low-priority job queued long enough runs before newer high-priority ones") {
  std::vector<std::string> ids;  // low, high_a, high_b
  // 9 ageing steps and a second: priority 0 now counts for more than 9 to anything newer.
  auto order = low_then_high(9 * kPriorityAgeingMs + 1'000, ids);
  CHECK(order == std::vector<std::string>{ids[0], ids[1], ids[2]});
  // Under 9 steps: not yet, priority decides.
  order = low_then_high(9 * kPriorityAgeingMs - 1'000, ids);
  CHECK(order == std::vector<std::string>{ids[1], ids[2], ids[0]});
}

TEST_CASE("an interrupted attempt taken over goes before queued jobs of higher priority") {
  Stage s(3, one_worker());
  int n = 0;
  const JobRecord orphan = job_on(s, n, "n1", 0, 0, {"n1", "n2", "n3"});
  s.submit(0, orphan);
  s.settle();
  REQUIRE(s.node(0).running.contains(orphan.id));
  const JobRecord busy = job_on(s, n, "n2", 5);
  s.submit(1, busy);
  s.settle();
  REQUIRE(s.node(1).running.contains(busy.id));
  const JobRecord high = job_on(s, n, "n2", 9);
  s.submit(1, high);
  s.settle();
  s.crash(0);
  s.tell_all(0, MemberState::dead);
  s.run(3'000);
  REQUIRE(s.core(1).stats().takeovers == 1);
  s.finish(1, busy.id);
  s.settle();
  CHECK(started(s, 1).back() == orphan.id);
  CHECK(s.node(1).starts.back().attempt == 2);
  s.finish(1, orphan.id);
  s.settle();
  CHECK(started(s, 1).back() == high.id);
}

TEST_CASE("a delayed job is scheduled until due, then runs; the core wakes for it by itself") {
  ReplicaConfig c = one_worker();
  c.sweep_interval_ms = 3'600'000;  // no periodic pass could start it: only its own wake-up
  Stage s(3, c);
  s.run(10);  // the first sweep after start: from here on nothing periodic is due for an hour
  int n = 0;
  const uint64_t delay = 10'000;
  const JobRecord r = job_on(s, n, "n1", 5, delay);
  const uint64_t due_mono = s.now().mono_ms + delay;
  const uint64_t due_wall = r.created_at_ms + delay;
  CHECK(r.run_after_ms() == due_wall);
  CHECK(public_state(r, s.now().wall_ms) == "scheduled");
  CHECK(public_state(r, due_wall) == "queued");
  s.submit(0, r);
  s.settle();
  CHECK(s.starts_of(r.id) == 0);
  CHECK(s.core(0).backlog() == 0);  // not due: not in the run queue, not against backlog_max
  CHECK(s.core(0).next_deadline_ms() == due_mono);
  for (size_t i = 0; i < 3; ++i) CHECK(s.copy(i, r.id)->run_after_ms() == due_wall);
  s.run(delay - 10);
  CHECK(s.starts_of(r.id) == 0);
  s.run(10);
  REQUIRE(s.node(0).running.contains(r.id));
  const JobRecord held = *s.copy(0, r.id);
  CHECK(first_running_at(held) >= due_wall);
  CHECK(public_state(held, s.now().wall_ms) == "running");
}

TEST_CASE("a delayed job survives its owner: the replica that takes over runs it when due") {
  Stage s(3, one_worker());
  int n = 0;
  const uint64_t delay = 20'000;
  const JobRecord r = job_on(s, n, "n1", 5, delay, {"n1", "n2", "n3"});
  s.submit(2, r);
  s.settle();
  s.run(5'000);
  CHECK(s.starts_of(r.id) == 0);
  s.crash(0);
  s.tell_all(0, MemberState::dead);
  s.run(delay - 5'000 - 100);
  CHECK(s.starts_of(r.id) == 0);  // the new owner honours the delay too
  s.run(1'100);
  REQUIRE(s.node(1).running.contains(r.id));
  CHECK(s.node(1).starts.back().attempt == 1);
  CHECK(first_running_at(*s.copy(1, r.id)) >= r.run_after_ms());
}

TEST_CASE("a delayed job survives a restart of its owner") {
  Stage s(3, one_worker());
  int n = 0;
  const uint64_t delay = 8'000;
  const JobRecord r = job_on(s, n, "n1", 5, delay, {"n1", "n2", "n3"});
  s.submit(0, r);
  s.settle();
  s.run(2'000);
  s.crash(0);
  s.restart(0);
  s.run(delay - 2'000 - 100);
  CHECK(s.starts_of(r.id) == 0);
  s.run(2'100);
  REQUIRE(s.node(0).running.contains(r.id));
  CHECK(first_running_at(*s.copy(0, r.id)) >= r.run_after_ms());
}

TEST_CASE("priority and delay come from the signed spec: every copy and the codec agree") {
  const JobRecord r = stage::job(7, 1'700'000'000'000ull, "n1", 60'000, 8, 1'234);
  CHECK(r.priority == 8);
  CHECK(r.delay_ms == 1'234);
  auto back = decode_record(encode_record(r));
  REQUIRE(back.is_ok());
  CHECK(back.value().priority == 8);
  CHECK(back.value().delay_ms == 1'234);
  CHECK(back.value().run_after_ms() == r.created_at_ms + 1'234);
  auto from_json = record_from_json(record_to_json(r));
  REQUIRE(from_json.is_ok());
  CHECK(from_json.value().priority == 8);
  const JobRecord plain = stage::job(8, 1'700'000'000'000ull);
  CHECK(plain.priority == kPriorityDefault);
  CHECK(plain.run_after_ms() == 0);
  CHECK(public_state(plain, 0) == "queued");
  CHECK(is_public_state_name("scheduled"));
  CHECK(is_public_state_name("queued"));
  CHECK_FALSE(is_public_state_name("retry_wait"));
  CHECK_FALSE(is_public_state_name("later"));
}

}  // namespace meshwork
