// Dead letters and retry in the replica core (dht/replica.h retry(), job_record.h retried()): a
// failed or cancelled job runs again with a fresh set of attempts; anything else is a conflict.
// Staged on replica_harness.h.
#include <doctest/doctest.h>

#include "tests/dht/replica_harness.h"

namespace meshwork {
namespace {

using stage::Stage;

using stage::reply;

// Quick retries between the attempts of a round.
ReplicaConfig quiet_retry() {
  ReplicaConfig c = stage::quiet();
  c.backoff_base_ms = 100;
  c.backoff_max_ms = 200;
  return c;
}

uint64_t retry(Stage& s, size_t i, const std::string& id) {
  const uint64_t request = s.retry(i, id);
  s.settle();
  return request;
}

// Submits job `n` through node `via`, lets it settle, and names its owner.
size_t submitted(Stage& s, int n, size_t via, std::string& id) {
  JobRecord r = stage::job(n, s.now().wall_ms);
  id = r.id;
  s.submit(via, r);
  s.settle();
  return s.index(*s.core(0).placement().owner(id));
}

// Fails every attempt the owner starts until the job is failed (max_attempts attempts).
void fail_until_dead(Stage& s, size_t owner, const std::string& id) {
  for (int guard = 0; guard < 20; ++guard) {
    s.run(500);
    auto held = s.copy(owner, id);
    REQUIRE(held);
    if (held->status.state == JobState::failed) return;
    if (s.node(owner).running.contains(id)) s.finish(owner, id, JobState::failed, "boom");
  }
  FAIL("the job never failed");
}

}  // namespace

TEST_CASE("retry: a dead letter runs again with a fresh set of attempts, on every replica") {
  Stage s(3, quiet_retry());
  std::string id;
  const size_t owner = submitted(s, 1, 0, id);
  fail_until_dead(s, owner, id);
  CHECK(s.copy(owner, id)->status.attempt == kMaxAttemptsDefault);
  CHECK(s.starts_of(id) == kMaxAttemptsDefault);

  const size_t other = (owner + 1) % 3;  // any node takes the retry
  const uint64_t req = retry(s, other, id);
  REQUIRE(reply(s, other, req).items[0].status.is_ok());
  CHECK(reply(s, other, req).items[0].record->status.round == 1);
  CHECK(s.core(other).stats().retries_requested == 1);
  s.run(100);
  // The owner starts the next attempt; it is the 4th, the first of round 1.
  REQUIRE(s.node(owner).running.contains(id));
  CHECK(s.node(owner).starts.back().attempt == kMaxAttemptsDefault + 1);
  s.finish(owner, id, JobState::succeeded);
  s.settle();
  for (size_t i = 0; i < 3; ++i) {
    auto held = s.copy(i, id);
    REQUIRE(held);
    CHECK(held->status.state == JobState::succeeded);
    CHECK(held->status.round == 1);
    bool retried_entry = false;
    for (const HistoryEntry& h : held->history) retried_entry |= h.reason == kRetriedReason;
    CHECK(retried_entry);
  }
  // A succeeded job is not a dead letter.
  const uint64_t again = retry(s, owner, id);
  CHECK(reply(s, owner, again).items[0].status.code() == Code::conflict);
}

TEST_CASE("retry: the new round gets max_attempts attempts of its own, then fails again") {
  Stage s(3, quiet_retry());
  std::string id;
  const size_t owner = submitted(s, 2, 1, id);
  fail_until_dead(s, owner, id);
  REQUIRE(reply(s, 2, retry(s, 2, id)).items[0].status.is_ok());
  fail_until_dead(s, owner, id);
  auto held = s.copy(owner, id);
  CHECK(held->status.attempt == 2 * kMaxAttemptsDefault);
  CHECK(held->status.round == 1);
  CHECK(s.starts_of(id) == 2 * kMaxAttemptsDefault);
  REQUIRE(reply(s, 0, retry(s, 0, id)).items[0].status.is_ok());  // and again: round 2
  s.run(100);
  CHECK(s.copy(owner, id)->status.round == 2);
  CHECK(s.node(owner).running.contains(id));
}

TEST_CASE("retry: a cancelled job runs again, and its old cancel no longer stops it") {
  Stage s(3, quiet_retry());
  std::string id;
  const size_t owner = submitted(s, 3, 0, id);
  REQUIRE(s.node(owner).running.contains(id));
  const uint64_t cancel = s.cancel(1, id);
  s.settle();
  REQUIRE(reply(s, 1, cancel).items[0].status.is_ok());
  REQUIRE_FALSE(s.node(owner).stops.empty());
  CHECK(s.node(owner).stops.back().why == Stop::Why::cancelled);
  s.finish(owner, id, JobState::cancelled, "cancelled");
  s.settle();
  REQUIRE(s.copy(owner, id)->status.state == JobState::cancelled);
  const size_t stops_before = s.node(owner).stops.size();
  REQUIRE(reply(s, 2, retry(s, 2, id)).items[0].status.is_ok());
  s.run(100);
  REQUIRE(s.node(owner).running.contains(id));
  CHECK_FALSE(s.copy(owner, id)->cancel_requested());
  s.run(1'000);
  CHECK(s.node(owner).stops.size() == stops_before);  // nothing stops the new attempt
  s.finish(owner, id, JobState::succeeded);
  s.settle();
  CHECK(s.copy((owner + 2) % 3, id)->status.state == JobState::succeeded);
}

TEST_CASE("retry: conflict for a job that is not a dead letter, not found for an unknown one") {
  Stage s(3, quiet_retry());
  std::string id;
  const size_t owner = submitted(s, 4, 0, id);
  REQUIRE(s.node(owner).running.contains(id));
  const uint64_t running = retry(s, 1, id);
  CHECK(reply(s, 1, running).items[0].status.code() == Code::conflict);
  CHECK(reply(s, 1, running).items[0].status.message().find("running") != std::string::npos);
  CHECK(s.copy(owner, id)->status.round == 0);  // nothing written
  const uint64_t unknown = retry(s, 1, std::string(64, 'a'));
  CHECK(reply(s, 1, unknown).items[0].status.code() == Code::not_found);
}

}  // namespace meshwork
