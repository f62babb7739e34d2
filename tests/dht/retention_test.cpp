// Scenario tests of retention in the replica core (dht/replica_retention.cpp) on the stage of
// replica_harness.h: finished jobs erased on every replica once older than retain_ms, tombstones
// that keep stale copies from coming back and expire, unfinished jobs never erased, and stand-in
// copies dropped only once the home replicas hold them.
#include <doctest/doctest.h>

#include "tests/dht/replica_harness.h"

namespace meshwork {
namespace {

using stage::Stage;

constexpr uint64_t kRetainMs = 60'000;
constexpr uint64_t kTombstoneMs = 300'000;

ReplicaConfig retaining() {
  ReplicaConfig c;
  c.retain_ms = kRetainMs;
  c.tombstone_ms = kTombstoneMs;
  c.anti_entropy_interval_ms = 3'600'000;
  c.anti_entropy_interval_ms_max = 3'600'000;
  c.hint_replay_interval_ms = 3'600'000;
  return c;
}

// Submits `r` through node `entry`, runs it on its owner to success, and settles.
void run_to_success(Stage& s, size_t entry, const JobRecord& r) {
  const uint64_t req = s.submit(entry, r);
  s.settle();
  REQUIRE(reply(s, entry, req).items[0].status.is_ok());
  const size_t owner = s.index(*s.core(0).placement().owner(r.id));
  REQUIRE(s.node(owner).running.contains(r.id));
  s.finish(owner, r.id);
  s.settle();
}

}  // namespace

TEST_CASE("a finished job is erased on every replica once older than retain_ms, then reads 404") {
  Stage s(3, retaining());
  const JobRecord r = stage::job(1, s.now().wall_ms);
  run_to_success(s, 0, r);
  s.run(kRetainMs - 5'000, 500);
  for (size_t i = 0; i < 3; ++i) CHECK(s.core(i).holds(r.id));  // not yet
  s.run(10'000, 500);
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK_FALSE(s.core(i).holds(r.id));
    CHECK_FALSE(s.copy(i, r.id));
    CHECK(s.core(i).tombstoned(r.id));
    CHECK_FALSE(s.node(i).disk.records.contains(r.id));
    CHECK(s.node(i).disk.tombstones.contains(r.id));
    CHECK(s.core(i).stats().expired == 1);
  }
  const uint64_t read = s.read(1, r.id);
  s.settle();
  CHECK(reply(s, 1, read).items[0].status.code() == Code::not_found);

  SUBCASE("the same signed job submitted again is refused with 409 and stores nothing") {
    const uint64_t again = s.submit(2, stage::again(r, "n3", s.now().wall_ms));
    s.settle();
    CHECK(reply(s, 2, again).items[0].status.code() == Code::conflict);
    for (size_t i = 0; i < 3; ++i) CHECK_FALSE(s.core(i).holds(r.id));
    CHECK(s.starts_of(r.id) == 1);
  }
  SUBCASE("a restart keeps the tombstone") {
    s.crash(1);
    s.restart(1);
    s.settle();
    CHECK(s.core(1).tombstoned(r.id));
    CHECK_FALSE(s.core(1).holds(r.id));
  }
  SUBCASE("tombstones expire after tombstone_ms") {
    s.run(kTombstoneMs + 2'000, 1'000);
    for (size_t i = 0; i < 3; ++i) {
      CHECK_FALSE(s.core(i).tombstoned(r.id));
      CHECK_FALSE(s.node(i).disk.tombstones.contains(r.id));
    }
  }
}

TEST_CASE(
    "a replica back with a stale copy of an erased job erases it instead of bringing it back") {
  // n3 is down while the job runs and finishes; n1 and n2 erase it after retain_ms. n3 comes back
  // holding its unfinished copy: anti-entropy pushes it to n1 and n2, whose tombstones refuse it
  // and say so, and n3 erases its copy too. Nobody runs the job again or stores it again.
  ReplicaConfig c = retaining();
  c.anti_entropy_interval_ms = 1'000;
  c.anti_entropy_interval_ms_max = 1'000;
  Stage s(3, c);
  const JobRecord r = job_placed(s, {"n1", "n2", "n3"}, s.now().wall_ms);
  const uint64_t req = s.submit(0, r);
  s.settle();
  REQUIRE(reply(s, 0, req).items[0].status.is_ok());
  REQUIRE(s.copy(2, r.id));
  s.crash(2);
  s.tell_all(2, MemberState::dead);
  s.finish(0, r.id);
  s.settle();
  s.run(kRetainMs + 3'000, 500);
  REQUIRE_FALSE(s.core(0).holds(r.id));
  REQUIRE_FALSE(s.core(1).holds(r.id));
  s.restart(2);
  REQUIRE(s.copy(2, r.id));
  CHECK_FALSE(is_terminal(s.copy(2, r.id)->status.state));
  s.tell_all(2, MemberState::alive);
  s.run(10'000, 100);
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK_FALSE(s.core(i).holds(r.id));
    CHECK_FALSE(s.node(i).disk.records.contains(r.id));
    CHECK(s.core(i).tombstoned(r.id));
  }
  CHECK(s.core(0).stats().tombstone_refusals + s.core(1).stats().tombstone_refusals >= 1);
  CHECK(s.starts_of(r.id) == 1);
}

TEST_CASE("an unfinished job is never erased, however old") {
  Stage s(3, retaining());
  const JobRecord r = stage::job(2, s.now().wall_ms);
  const uint64_t req = s.submit(0, r);
  s.settle();
  REQUIRE(reply(s, 0, req).items[0].status.is_ok());
  s.run(3 * kRetainMs, 1'000);  // its handler never ends: the lease is renewed throughout
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    REQUIRE(s.copy(i, r.id));
    CHECK(s.copy(i, r.id)->status.state == JobState::running);
    CHECK_FALSE(s.core(i).tombstoned(r.id));
  }
}

TEST_CASE("a stand-in copy is dropped once every home replica holds it, and not before") {
  // n3 is dead when the job is written: n4 stands in for it. n3 comes back and n4 is no replica
  // any more; while n4 cannot reach n3 it keeps its copy (and a hint for n3), once n3
  // acknowledged it n4 drops it.
  ReplicaConfig c = retaining();
  c.hint_replay_interval_ms = 1'000;
  Stage s(4, c);
  const JobRecord r = job_placed(s, {"n1", "n2", "n3"}, s.now().wall_ms);
  s.crash(2);
  s.tell_all(2, MemberState::dead);
  const uint64_t req = s.submit(3, r);
  s.settle();
  REQUIRE(reply(s, 3, req).items[0].status.is_ok());
  REQUIRE(s.copy(3, r.id));
  s.run(3'000, 100);
  CHECK(s.copy(3, r.id));  // a home replica while n3 is dead
  s.cut(3, 2);
  s.restart(2);
  s.tell_all(2, MemberState::alive);
  s.run(5'000, 100);
  CHECK(s.copy(3, r.id));  // n3 never acknowledged n4's copy
  CHECK(s.core(3).stats().stand_ins_dropped == 0);
  s.heal();
  s.run(15'000, 100);
  CHECK_FALSE(s.copy(3, r.id));
  CHECK_FALSE(s.node(3).disk.records.contains(r.id));
  CHECK_FALSE(s.core(3).tombstoned(r.id));  // a drop leaves no tombstone
  CHECK(s.core(3).stats().stand_ins_dropped == 1);
  for (size_t i = 0; i < 3; ++i) CHECK(s.copy(i, r.id));
}

}  // namespace meshwork
