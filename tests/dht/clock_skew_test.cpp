// Leases and retry waits with one node's wall clock an hour off (dht/replica.h, "Time"), on the
// deterministic stage: a claim stamped an hour ahead is still taken over soon after its claimant
// stalls; one stamped an hour behind is left alone while it is renewed; a retry_wait written an
// hour ahead waits its backoff on the node that runs it next, not the hour; a restarted replica
// waits a whole lease before it takes a job from a claimant that is still a member.
#include <doctest/doctest.h>

#include "tests/dht/replica_harness.h"

namespace meshwork {
namespace {

using stage::Stage;

constexpr int64_t kHourMs = 3'600'000;

// Short leases and backoffs, quiet background repair.
ReplicaConfig short_leases() {
  ReplicaConfig c = stage::quiet();
  c.lease_ms = 3'000;
  c.lease_skew_ms = 500;
  c.backoff_base_ms = 500;
  c.backoff_max_ms = 2'000;
  return c;
}

// A job whose preference list over the stage's members is n1, n2, n3.
JobRecord job_on_n1(Stage& s) {
  for (int n = 0; n < 100'000; ++n) {
    JobRecord r = stage::job(n, s.now().wall_ms);
    if (s.core(0).placement().replicas(r.id) == std::vector<std::string>{"n1", "n2", "n3"})
      return r;
  }
  FAIL("no job id lands on n1, n2, n3");
  return {};
}

// With n1's wall clock `offset_ms` off: a job on n1, n2, n3, submitted through n2, running on n1.
JobRecord running_on_n1(Stage& s, int64_t offset_ms) {
  s.skew(0, offset_ms);
  const JobRecord r = job_on_n1(s);
  s.submit(1, r);
  s.settle();
  REQUIRE(s.node(0).running.contains(r.id));
  return r;
}

uint64_t takeovers(Stage& s) {
  uint64_t n = 0;
  for (size_t i = 0; i < s.size(); ++i)
    if (s.node(i).up) n += s.core(i).stats().takeovers;
  return n;
}

}  // namespace

TEST_CASE("a claim stamped an hour ahead is taken over a lease after its claimant stalls") {
  Stage s(3, short_leases());
  const JobRecord r = running_on_n1(s, kHourMs);
  REQUIRE(s.copy(1, r.id)->claim.lease_until_ms > s.now(1).wall_ms + kHourMs);
  s.run(10'000);  // renewed throughout: nobody takes it
  CHECK(takeovers(s) == 0);
  CHECK(s.starts_of(r.id) == 1);
  s.node(0).frozen = true;  // gossip still says alive: only the lease can tell
  s.run(2'000);             // less than lease + skew - the renewal period since n2 saw one
  CHECK(takeovers(s) == 0);
  s.run(4'000);  // its lease ran out on n2's clock, though its lease_until is an hour away
  CHECK(s.core(1).stats().takeovers == 1);
  REQUIRE(s.node(1).running.contains(r.id));
  CHECK(s.node(1).starts.back().attempt == 2);
  s.finish(1, r.id);
  s.settle();
  CHECK(s.copy(2, r.id)->status.state == JobState::succeeded);
}

TEST_CASE("a claim stamped an hour behind is not taken over while its claimant renews it") {
  Stage s(3, short_leases());
  const JobRecord r = running_on_n1(s, -kHourMs);
  // By n2's wall clock this lease ended an hour ago.
  REQUIRE(s.copy(1, r.id)->claim.lease_until_ms + kHourMs / 2 < s.now(1).wall_ms);
  s.run(20'000);
  CHECK(takeovers(s) == 0);
  CHECK(s.starts_of(r.id) == 1);
  CHECK(s.node(0).running.contains(r.id));
  s.finish(0, r.id);
  s.settle();
  const JobRecord done = *s.copy(2, r.id);
  CHECK(done.status.state == JobState::succeeded);
  CHECK(done.status.attempt == 1);
}

TEST_CASE("a retry_wait written an hour ahead waits its backoff on the next owner, not the hour") {
  Stage s(3, short_leases());
  const JobRecord r = running_on_n1(s, kHourMs);
  s.finish(0, r.id, JobState::failed, "boom");
  s.settle();
  const JobRecord waiting = *s.copy(1, r.id);
  REQUIRE(waiting.status.state == JobState::retry_wait);
  REQUIRE(waiting.status.retry_at_ms > s.now(1).wall_ms + kHourMs);
  s.crash(0);
  s.tell_all(0, MemberState::dead);
  s.run(3'000);  // the backoff (at most backoff_max_ms) and a sweep
  REQUIRE(s.node(1).running.contains(r.id));
  CHECK(s.node(1).starts.back().attempt == 2);
}

TEST_CASE("a restarted replica waits a whole lease before taking a job from a stalled claimant") {
  Stage s(3, short_leases());
  const JobRecord r = running_on_n1(s, 0);
  s.run(2'000);
  s.crash(1);
  s.node(0).frozen = true;  // n1 stops renewing just as n2 restarts
  s.restart(1);
  s.run(3'000);  // n2 last saw the lease renewed before it stopped, but dates it from its start
  CHECK(takeovers(s) == 0);
  s.run(3'000);
  CHECK(s.core(1).stats().takeovers == 1);
  CHECK(s.node(1).running.contains(r.id));
}

}  // namespace meshwork
