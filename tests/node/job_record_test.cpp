// The job record's merge: the semilattice laws over random records and delivery orders, and the
// precedence rules of docs/guarantees.md (the job record is a CRDT).
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <random>

#include "dht/job_record.h"
#include "dht/messages.h"
#include "tests/node/test_util.h"

namespace meshwork {
namespace {

const std::vector<std::string> kNodes = {"n1", "n2", "n3", "n4"};
const std::vector<std::string> kErrors = {"", "boom", "timed out"};

template <typename T>
const T& pick(std::mt19937_64& rng, const std::vector<T>& v) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
}

uint32_t small(std::mt19937_64& rng, uint32_t hi) {
  return std::uniform_int_distribution<uint32_t>(0, hi)(rng);
}

// `base`'s envelope in one of a few forms: as signed alone, or as if signed in one of two
// batches (any root and proof: replicas store envelopes without verifying them).
Envelope random_envelope(const Envelope& base, std::mt19937_64& rng) {
  Envelope e = base;
  if (small(rng, 2) == 0) return e;
  e.signature[0] = static_cast<char>(small(rng, 1));
  e.root = blake2b_hex(std::to_string(small(rng, 1)));
  e.index = small(rng, 1);
  for (uint32_t k = small(rng, 2); k > 0; --k)
    e.proof.push_back(blake2b_hex(std::to_string(small(rng, 2))));
  return e;
}

// A random variation of `base`: each part drawn from a small domain so that ties are frequent.
JobRecord random_record(const JobRecord& base, std::mt19937_64& rng) {
  JobRecord r = base;
  r.envelope = random_envelope(base.envelope, rng);
  r.status = JobStatus{JobState(small(rng, 5)), small(rng, 4),      pick(rng, kNodes),
                       small(rng, 3),           pick(rng, kErrors), small(rng, 2)};
  r.status.round = small(rng, 2);
  r.status.base = r.status.round == 0 ? 0 : small(rng, r.status.attempt);
  r.claim = Claim{small(rng, 4), pick(rng, kNodes), small(rng, 3)};
  r.cancel_round = small(rng, 3) == 0 ? small(rng, r.status.round + 1) : 0;
  r.results.clear();
  for (uint32_t i = small(rng, 6); i > 0; --i) {
    NodeResult res;
    res.attempt = small(rng, 4);
    res.outcome = JobState(3 + small(rng, 2));
    res.result = small(rng, 1) ? "{\"v\":1}" : "{\"v\":2}";
    res.at_ms = small(rng, 3);
    res.receipt.signature = std::to_string(small(rng, 2));
    if (small(rng, 1) == 1) {  // a receipt signed in a batch (dht/merkle.h)
      res.receipt.root = blake2b_hex(std::to_string(small(rng, 1)));
      res.receipt.index = small(rng, 3);
      for (uint32_t k = small(rng, 2); k > 0; --k)
        res.receipt.proof.push_back(blake2b_hex(std::to_string(small(rng, 2))));
    }
    r.results = merge(r,
                      [&] {
                        JobRecord d = base;
                        d.history.clear();
                        d.results = {{"m" + std::to_string(small(rng, 9)), res}};
                        return d;
                      }())
                    .results;
  }
  for (uint32_t i = small(rng, 40); i > 0; --i)
    r.add_history(JobState(small(rng, 5)), pick(rng, kNodes), small(rng, 4), small(rng, 50),
                  pick(rng, kErrors));
  r.updated_at_ms = small(rng, 100);
  return r;
}

std::string show(const JobRecord& r) {
  return record_to_json(r).dump();
}

}  // namespace

TEST_CASE("merge is commutative, associative and idempotent over random records") {
  const Identity key = Identity::generate();
  const JobRecord base = test::queued_record(key);
  std::mt19937_64 rng(20261127);
  for (int i = 0; i < 3000; ++i) {
    JobRecord a = random_record(base, rng), b = random_record(base, rng),
              c = random_record(base, rng);
    INFO("a=" << show(a) << "\nb=" << show(b) << "\nc=" << show(c));
    CHECK(same_state(merge(a, b), merge(b, a)));
    CHECK(same_state(merge(merge(a, b), c), merge(a, merge(b, c))));
    CHECK(same_state(merge(a, a), a));
    CHECK(same_state(merge(merge(a, b), b), merge(a, b)));
  }
}

TEST_CASE("replicas converge whatever the delivery order and duplication") {
  const Identity key = Identity::generate();
  const JobRecord base = test::queued_record(key);
  std::mt19937_64 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::vector<JobRecord> updates;
    for (int i = 0; i < 8; ++i) updates.push_back(random_record(base, rng));
    std::optional<JobRecord> first;
    for (int replica = 0; replica < 5; ++replica) {
      std::vector<JobRecord> delivery = updates;
      for (int d = 0; d < 4; ++d) delivery.push_back(pick(rng, updates));  // duplicates
      std::shuffle(delivery.begin(), delivery.end(), rng);
      JobRecord acc = base;
      for (const auto& u : delivery) acc = merge(acc, u);
      if (!first) {
        first = acc;
      } else {
        CHECK(same_state(*first, acc));
      }
    }
  }
}

TEST_CASE("precedence: terminal beats non-terminal, higher attempt beats lower") {
  const Identity key = Identity::generate();
  JobRecord base = test::queued_record(key);
  auto with = [&](JobState s, uint32_t attempt, std::string node) {
    JobRecord r = base;
    r.status = JobStatus{s, attempt, std::move(node), 5, "", 0};
    return r;
  };
  SUBCASE("a finished attempt 1 beats a takeover running attempt 2") {
    CHECK(
        merge(with(JobState::running, 2, "n2"), with(JobState::succeeded, 1, "n1")).status.state ==
        JobState::succeeded);
  }
  SUBCASE("a takeover's attempt beats the stale owner's running attempt") {
    auto m = merge(with(JobState::running, 1, "n1"), with(JobState::running, 2, "n2"));
    CHECK(m.status.attempt == 2);
    CHECK(m.status.node == "n2");
  }
  SUBCASE("retry_wait ends an attempt: it beats running of the same attempt") {
    CHECK(
        merge(with(JobState::running, 1, "n1"), with(JobState::retry_wait, 1, "n1")).status.state ==
        JobState::retry_wait);
  }
  SUBCASE("success anywhere beats a later failure") {
    CHECK(merge(with(JobState::failed, 3, "n2"), with(JobState::succeeded, 2, "n1")).status.state ==
          JobState::succeeded);
  }
  SUBCASE("cancellation of a queued job beats its claim") {
    CHECK(
        merge(with(JobState::running, 1, "n1"), with(JobState::cancelled, 0, "n2")).status.state ==
        JobState::cancelled);
  }
  SUBCASE("ties on state and attempt break on node id, the same everywhere") {
    auto m1 = merge(with(JobState::running, 1, "n1"), with(JobState::running, 1, "n2"));
    auto m2 = merge(with(JobState::running, 1, "n2"), with(JobState::running, 1, "n1"));
    CHECK(m1.status.node == "n2");
    CHECK(same_state(m1, m2));
  }
}

TEST_CASE("submitted_before tells a resubmission from a copy of the same submission") {
  const Identity key = Identity::generate();
  const JobRecord mine = test::queued_record(key);  // submitted through n1 at t = 1000
  // The same submission, come back first through the owner's claim: not a resubmission.
  JobRecord claimed = mine;
  claimed.status = JobStatus{JobState::running, 1, "n2", 1010, {}, 0};
  claimed.add_history(JobState::running, "n2", 1, 1010, "attempt 1");
  CHECK_FALSE(submitted_before(claimed, mine.history));
  CHECK_FALSE(submitted_before(mine, mine.history));
  // The same envelope submitted earlier through n3: a resubmission, even once merged with ours.
  JobRecord earlier = mine;
  earlier.history.clear();
  earlier.add_history(JobState::queued, "n3", 0, 900, kSubmittedReason);
  CHECK(submitted_before(earlier, mine.history));
  CHECK(submitted_before(merge(earlier, claimed), mine.history));
  // Entries that are not submissions never count.
  JobRecord other = mine;
  other.add_history(JobState::queued, "n4", 0, 950, "interrupted");
  CHECK_FALSE(submitted_before(other, mine.history));
}

TEST_CASE("history and results stay bounded and keep the newest") {
  const Identity key = Identity::generate();
  JobRecord r = test::queued_record(key);
  for (uint32_t i = 0; i < 100; ++i) r.add_history(JobState::running, "n1", i, 1000 + i, "x");
  CHECK(r.history.size() == kHistoryMax);
  CHECK(r.history.back().attempt == 99);
  JobRecord acc = r;
  for (uint32_t i = 0; i < 20; ++i) {
    JobRecord d = r;
    d.results = {{"node" + std::to_string(i), NodeResult{i, JobState::succeeded, "{}", "", i, {}}}};
    acc = merge(acc, d);
  }
  CHECK(acc.results.size() == kResultsMax);
  CHECK(acc.results.count("node19") == 1);
  CHECK(acc.results.count("node0") == 0);
}

TEST_CASE("records round-trip through the codec and bad bytes are refused") {
  const Identity key = Identity::generate();
  std::mt19937_64 rng(3);
  const JobRecord base = test::queued_record(key);
  for (int i = 0; i < 200; ++i) {
    JobRecord r = random_record(base, rng);
    auto back = decode_record(encode_record(r));
    REQUIRE(back.is_ok());
    CHECK(same_state(back.value(), r));
    CHECK(back.value().type == "echo");
  }
  CHECK(!decode_record("").is_ok());
  CHECK(!decode_record("{}").is_ok());
  CHECK(!decode_record("[1,2,3]").is_ok());
  std::string text = encode_record(base);
  auto pos = text.find(base.id.substr(0, 8));
  text[pos] = text[pos] == 'a' ? 'b' : 'a';  // the id no longer matches the envelope
  CHECK(decode_record(text).status().code() == Code::corruption);
  std::string bytes = encode_record(base);
  for (int i = 0; i < 2000; ++i) {  // random truncations and byte flips never crash
    std::string m = bytes.substr(0, small(rng, uint32_t(bytes.size())));
    if (!m.empty()) m[small(rng, uint32_t(m.size() - 1))] ^= char(1 + small(rng, 254));
    (void)decode_record(m);
  }
}

TEST_CASE("the binary form round-trips, and records stored as JSON still decode") {
  const Identity key = Identity::generate();
  std::mt19937_64 rng(11);
  const JobRecord base = test::queued_record(key);
  for (int i = 0; i < 300; ++i) {
    JobRecord r = random_record(base, rng);
    const std::string bytes = encode_record(r);
    REQUIRE(!bytes.empty());
    CHECK(static_cast<uint8_t>(bytes.front()) == 5);
    auto back = decode_record(bytes);
    REQUIRE(back.is_ok());
    CHECK(same_state(back.value(), r));
    CHECK(encode_record(back.value()) == bytes);  // canonical: one record, one encoding
    CHECK(back.value().type == "echo");
    CHECK(back.value().envelope.signature == r.envelope.signature);
    auto legacy = decode_record(record_to_json(r).dump());  // what older nodes stored and sent
    REQUIRE(legacy.is_ok());
    CHECK(same_state(legacy.value(), r));
    CHECK(encode_record(legacy.value()) == bytes);
  }
}

TEST_CASE("the binary decoder refuses hostile bytes without crashing or throwing") {
  const Identity key = Identity::generate();
  std::mt19937_64 rng(12);
  const JobRecord base = test::queued_record(key);
  std::vector<std::string> samples;
  for (int i = 0; i < 20; ++i) samples.push_back(encode_record(random_record(base, rng)));
  const std::string& good = samples.front();
  // Every strict prefix is refused; so is anything appended.
  for (size_t n = 0; n < good.size(); ++n) CHECK(!decode_record(good.substr(0, n)).is_ok());
  CHECK(!decode_record(good + '\0').is_ok());
  // Another id, a non-UTF-8 node name, an unknown state, a huge length: refused, not trusted.
  std::string other_id = good;
  other_id[5] = other_id[5] == 'a' ? 'b' : 'a';  // inside the hex id (after version and length)
  CHECK(decode_record(other_id).status().code() == Code::corruption);
  JobRecord bad_name = base;
  bad_name.status.node = "n\xff";
  CHECK(!decode_record(encode_record(bad_name)).is_ok());
  std::string huge = good;
  huge[1] = huge[2] = huge[3] = huge[4] = '\xff';  // the id's length: 4 GiB
  CHECK(!decode_record(huge).is_ok());
  // Mutations, truncations, splices and pure noise: each either refused or a valid record.
  for (int i = 0; i < 20'000; ++i) {
    std::string m = samples[small(rng, uint32_t(samples.size() - 1))];
    switch (small(rng, 3)) {
      case 0:
        for (uint32_t k = 1 + small(rng, 3); k > 0; --k)
          m[small(rng, uint32_t(m.size() - 1))] ^= char(1 + small(rng, 254));
        break;
      case 1:
        m = m.substr(0, small(rng, uint32_t(m.size())));
        break;
      case 2: {
        const std::string& tail = samples[small(rng, uint32_t(samples.size() - 1))];
        m = m.substr(0, small(rng, uint32_t(m.size()))) +
            tail.substr(std::min<size_t>(tail.size(), small(rng, 200)));
      } break;
      default:
        m.assign(small(rng, 300), '\0');
        for (char& c : m) c = char(small(rng, 255));
        if (!m.empty()) m[0] = char(2 + small(rng, 3));
        break;
    }
    auto r = decode_record(m);
    if (r.is_ok()) {
      CHECK(r.value().id == r.value().envelope.id());
      if (m[0] == '\x05') CHECK(encode_record(r.value()) == m);  // canonical, batch fields too
    }
  }
}

// ---- retry rounds (POST /v1/jobs/{id}/retry; job_record.h) ----

namespace {

// A record of `base` in round `round` with status `s` (attempt `attempt`, base `from`).
JobRecord in_round(const JobRecord& base, uint32_t round, uint32_t from, JobState s,
                   uint32_t attempt, const std::string& node, uint64_t at) {
  JobRecord r = base;
  r.status = JobStatus{s, attempt, node, at, "", 0, round, from};
  return r;
}

// `r` without batched receipts or envelope: what a record held before receipts were signed in
// batches.
JobRecord unbatched(JobRecord r) {
  r.envelope.root.clear();
  r.envelope.index = 0;
  r.envelope.proof.clear();
  for (auto& [node, res] : r.results) {
    res.receipt.root.clear();
    res.receipt.index = 0;
    res.receipt.proof.clear();
  }
  return r;
}

// `r` with its envelope as signed alone: what a record held before jobs were signed in batches.
JobRecord unbatched_envelope(JobRecord r) {
  r.envelope.root.clear();
  r.envelope.index = 0;
  r.envelope.proof.clear();
  return r;
}

// Where the envelope's batch fields begin in the binary form.
size_t envelope_batch_at(const JobRecord& r) {
  return 1 + 4 + r.id.size() + 4 + r.envelope.job.size() + 32 + 64;
}

// The version 4 binary form of a record whose envelope is unbatched: version 5 without the
// envelope's u8 batched (what nodes stored before jobs were signed in batches).
std::string as_version_4(const JobRecord& r) {
  REQUIRE(!r.envelope.batched());
  const std::string v5 = encode_record(r);
  const size_t at = envelope_batch_at(r);
  REQUIRE(v5[at] == '\0');  // not batched
  std::string v4 = v5.substr(0, at) + v5.substr(at + 1);
  v4[0] = '\x04';
  return v4;
}

// The version 3 binary form of a record whose receipts are unbatched: version 4 without each
// result's u8 batched (what nodes stored before batched receipts).
std::string as_version_3(const JobRecord& r) {
  const std::string v4 = as_version_4(r);
  size_t at = 1 + 4 + r.id.size() + 4 + r.envelope.job.size() + 32 + 64 + 1 + 4 + 4 +
              r.status.node.size() + 8 + 4 + r.status.error.size() + 8 + 4 + 4 + 4 + 4 +
              r.claim.node.size() + 8 + 4 + 1;
  std::string v3 = v4.substr(0, at);
  for (const auto& [node, res] : r.results) {
    const Receipt& rc = res.receipt;
    REQUIRE(rc.root.empty());
    const size_t n = 4 + node.size() + 4 + 1 + 4 + res.result.size() + 4 + res.error.size() + 8 +
                     4 + rc.job_id.size() + 4 + rc.node.size() + 4 + 4 + rc.result_hash.size() + 4 +
                     rc.public_key.size() + 4 + rc.signature.size();
    v3 += v4.substr(at, n);
    REQUIRE(v4[at + n] == '\0');  // not batched
    at += n + 1;
  }
  v3 += v4.substr(at);
  v3[0] = '\x03';
  return v3;
}

// The version 2 binary form of a round-0 record: version 3 without round and base, and with a
// one-byte cancel flag (what nodes stored before retry rounds).
std::string as_version_2(const JobRecord& r) {
  REQUIRE(r.status.round == 0);
  REQUIRE(r.cancel_round <= 1);
  std::string v3 = as_version_3(r);
  const size_t status_end = 1 + 4 + r.id.size() + 4 + r.envelope.job.size() + 32 + 64 + 1 + 4 + 4 +
                            r.status.node.size() + 8 + 4 + r.status.error.size() + 8;
  const size_t cancel_at = status_end + 8 + 4 + 4 + r.claim.node.size() + 8;
  std::string v2 = v3.substr(0, status_end) + v3.substr(status_end + 8, cancel_at - status_end - 8);
  v2 += static_cast<char>(r.cancel_round);
  v2 += v3.substr(cancel_at + 4);
  v2[0] = '\x02';
  return v2;
}

}  // namespace

TEST_CASE("retried() queues a failed or cancelled job again in the next round, nothing else") {
  const Identity key = Identity::generate();
  const JobRecord base = test::queued_record(key);
  for (JobState s :
       {JobState::queued, JobState::running, JobState::retry_wait, JobState::succeeded}) {
    CAPTURE(state_name(s));
    CHECK(!retried(in_round(base, 0, 0, s, 1, "n1", 10), "n2", 20));
  }
  for (JobState s : {JobState::failed, JobState::cancelled}) {
    CAPTURE(state_name(s));
    JobRecord dead = in_round(base, 0, 0, s, 3, "n1", 1500);
    dead.cancel_round = s == JobState::cancelled ? 1 : 0;
    auto r = retried(dead, "n2", 2000);  // after the submission (at 1000)
    REQUIRE(r);
    CHECK(r->status.state == JobState::queued);
    CHECK(r->status.round == 1);
    CHECK(r->status.base == 3);
    CHECK(r->status.attempt == 3);  // attempt numbers keep growing
    CHECK(r->attempt_limit() == 3 + r->max_attempts);
    CHECK(!r->cancel_requested());
    CHECK(r->history.back().reason == kRetriedReason);
    CHECK(r->history.back().node == "n2");
    CHECK(public_state(*r, 2000) == "queued");
    CHECK(!submitted_before(*r, base.history));  // a retry is not a second submission
  }
}

TEST_CASE("a retry wins over every state of the round it retried, whatever the order") {
  const Identity key = Identity::generate();
  const JobRecord base = test::queued_record(key);
  std::mt19937_64 rng(1130);
  for (int i = 0; i < 2000; ++i) {
    // Round r's copies: any state, any attempt, any cancel, as replicas may hold them.
    const uint32_t r = small(rng, 2);
    std::vector<JobRecord> old;
    for (int k = 0; k < 4; ++k) {
      JobRecord c = random_record(base, rng);
      c.status.round = r;
      c.status.base = r == 0 ? 0 : std::min(c.status.base, c.status.attempt);
      c.cancel_round = small(rng, 1) ? r + 1 : 0;
      old.push_back(std::move(c));
    }
    JobRecord dead = old.front();
    dead.status.state = small(rng, 1) ? JobState::failed : JobState::cancelled;
    auto again = retried(dead, pick(rng, kNodes), 100 + small(rng, 50));
    REQUIRE(again);
    std::vector<JobRecord> all = old;
    all.push_back(*again);
    std::shuffle(all.begin(), all.end(), rng);
    JobRecord acc = all.front();
    for (const JobRecord& c : all) acc = merge(acc, c);
    INFO("merged=" << show(acc));
    CHECK(acc.status.round == r + 1);
    CHECK(acc.status.state == JobState::queued);
    CHECK(!acc.cancel_requested());  // the cancel of round r is over
    // What happens next in round r + 1 wins over the retry: a claim, then an outcome.
    JobRecord claimed = acc;
    claimed.status = acc.status.next(JobState::running, acc.status.attempt + 1, "n3", 200, "", 0);
    JobRecord done = claimed;
    done.status =
        claimed.status.next(JobState::succeeded, claimed.status.attempt, "n3", 210, "", 0);
    CHECK(merge(acc, claimed).status.state == JobState::running);
    CHECK(merge(merge(claimed, acc), done).status.state == JobState::succeeded);
    // A late copy of round r (say, a stale replica's success) does not undo it.
    JobRecord late = old.back();
    late.status.state = JobState::succeeded;
    CHECK(merge(late, done).status.round == r + 1);
    CHECK(merge(done, late).status.state == JobState::succeeded);
    CHECK(merge(done, late).status.node == "n3");
  }
}

TEST_CASE("two replicas retrying the same dead letter converge on one retry") {
  const Identity key = Identity::generate();
  const JobRecord base = test::queued_record(key);
  JobRecord dead = in_round(base, 0, 0, JobState::failed, 3, "n1", 10);
  auto a = retried(dead, "n1", 50), b = retried(dead, "n2", 60);
  REQUIRE((a && b));
  CHECK(same_state(merge(*a, *b), merge(*b, *a)));
  CHECK(merge(*a, *b).status.round == 1);
  // A second retry after the first round failed again starts round 2.
  JobRecord failed_again = merge(*a, *b);
  failed_again.status = failed_again.status.next(JobState::failed, 6, "n3", 90, "boom", 0);
  auto c = retried(failed_again, "n3", 100);
  REQUIRE(c);
  CHECK(c->status.round == 2);
  CHECK(c->status.base == 6);
  CHECK(merge(*c, *a).status.round == 2);
}

TEST_CASE("a cancel belongs to its round: a retry ends it, a cancel after the retry holds") {
  const Identity key = Identity::generate();
  const JobRecord base = test::queued_record(key);
  JobRecord running = in_round(base, 0, 0, JobState::running, 1, "n1", 10);
  running.cancel_round = 1;  // cancel asked in round 0
  CHECK(running.cancel_requested());
  JobRecord cancelled = running;
  cancelled.status = running.status.next(JobState::cancelled, 1, "n1", 20, "cancelled", 0);
  auto again = retried(cancelled, "n2", 30);
  REQUIRE(again);
  CHECK(!again->cancel_requested());
  CHECK(!merge(running, *again).cancel_requested());  // a late copy of the old cancel
  JobRecord cancel_again = *again;
  cancel_again.cancel_round = again->status.round + 1;  // cancel asked in round 1
  CHECK(merge(*again, cancel_again).cancel_requested());
  CHECK(merge(cancel_again, running).cancel_requested());
}

TEST_CASE("records stored before retry rounds (version 2, JSON without rounds) still decode") {
  const Identity key = Identity::generate();
  std::mt19937_64 rng(1131);
  const JobRecord base = test::queued_record(key);
  for (int i = 0; i < 300; ++i) {
    JobRecord r = unbatched(random_record(base, rng));
    r.status.round = r.status.base = 0;
    r.cancel_round = std::min<uint32_t>(r.cancel_round, 1);
    const std::string v2 = as_version_2(r);
    auto back = decode_record(v2);
    REQUIRE(back.is_ok());
    CHECK(same_state(back.value(), r));
    CHECK(encode_record(back.value()) == encode_record(r));  // written back as version 4
    nlohmann::json j = record_to_json(r);
    j["status"].erase("round");
    j["status"].erase("base");
    j.erase("cancel_round");
    auto legacy = decode_record(j.dump());
    REQUIRE(legacy.is_ok());
    CHECK(same_state(legacy.value(), r));
  }
  // An impossible round is refused: a base past the attempts, a cancel from a future round.
  JobRecord bad = in_round(base, 1, 4, JobState::queued, 3, "n1", 10);
  CHECK(decode_record(encode_record(bad)).status().code() == Code::corruption);
  JobRecord future = in_round(base, 1, 0, JobState::queued, 3, "n1", 10);
  future.cancel_round = 3;
  CHECK(decode_record(encode_record(future)).status().code() == Code::corruption);
}

TEST_CASE("batched receipts round-trip; records from before batches (version 3) still decode") {
  const Identity key = Identity::generate();
  std::mt19937_64 rng(4004);
  const JobRecord base = test::queued_record(key);
  for (int i = 0; i < 300; ++i) {
    const JobRecord r = random_record(base, rng);
    auto back = decode_record(encode_record(r));
    REQUIRE(back.is_ok());
    CHECK(same_state(back.value(), r));
    for (const auto& [node, res] : r.results) {
      const Receipt& got = back.value().results.at(node).receipt;
      CHECK(got.root == res.receipt.root);
      CHECK(got.index == res.receipt.index);
      CHECK(got.proof == res.receipt.proof);
    }
    auto from_json = decode_record(record_to_json(r).dump());
    REQUIRE(from_json.is_ok());
    CHECK(same_state(from_json.value(), r));
    const JobRecord old = unbatched(r);
    auto v3 = decode_record(as_version_3(old));
    REQUIRE(v3.is_ok());
    CHECK(same_state(v3.value(), old));
    CHECK(encode_record(v3.value()) == encode_record(old));  // written back as version 5
  }
}

TEST_CASE("batch-signed envelopes round-trip; records from before them (version 4) still decode") {
  const Identity key = Identity::generate();
  std::mt19937_64 rng(5005);
  const JobRecord base = test::queued_record(key);
  size_t batched = 0;
  for (int i = 0; i < 300; ++i) {
    const JobRecord r = random_record(base, rng);
    batched += r.envelope.batched();
    const std::string bytes = encode_record(r);
    auto back = decode_record(bytes);
    REQUIRE(back.is_ok());
    CHECK(same_state(back.value(), r));
    CHECK(back.value().envelope.root == r.envelope.root);
    CHECK(back.value().envelope.index == r.envelope.index);
    CHECK(back.value().envelope.proof == r.envelope.proof);
    CHECK(bytes[envelope_batch_at(r)] == (r.envelope.batched() ? '\1' : '\0'));
    auto from_json = decode_record(record_to_json(r).dump());
    REQUIRE(from_json.is_ok());
    CHECK(same_state(from_json.value(), r));
    CHECK(record_to_json(r)["envelope"].contains("root") == r.envelope.batched());
    const JobRecord old = unbatched_envelope(r);
    auto v4 = decode_record(as_version_4(old));
    REQUIRE(v4.is_ok());
    CHECK(same_state(v4.value(), old));
    CHECK(encode_record(v4.value()) == encode_record(old));  // written back as version 5
  }
  CHECK(batched > 100);
}

TEST_CASE("a malformed batch-signed envelope is refused in either form") {
  const Identity key = Identity::generate();
  JobRecord r = test::queued_record(key);
  r.envelope.root = blake2b_hex("root");
  r.envelope.index = 1;
  r.envelope.proof = {blake2b_hex("a")};
  REQUIRE(decode_record(encode_record(r)).is_ok());
  using nlohmann::json;
  const auto refused = [&](auto&& change) {
    json j = record_to_json(r);
    change(j["envelope"]);
    return decode_record(j.dump()).status().code() == Code::corruption;
  };
  CHECK(refused([](json& e) { e["root"] = "zz"; }));
  CHECK(refused([](json& e) { e["proof"] = json::array({"00"}); }));
  CHECK(refused([](json& e) { e["proof"] = std::vector<std::string>(33, std::string(64, '0')); }));
  CHECK(refused([](json& e) { e["index"] = -1; }));
  CHECK(refused([](json& e) { e.erase("proof"); }));
  CHECK(refused([](json& e) { e.erase("root"); }));
  // Binary: a batched flag past 1, or a proof count past kMerkleLevelsMax, is refused.
  const size_t at = envelope_batch_at(r);
  std::string flag = encode_record(r);
  REQUIRE(flag[at] == '\1');
  flag[at] = '\2';
  CHECK(!decode_record(flag).is_ok());
  std::string count = encode_record(r);
  REQUIRE(count[at + 1 + 32 + 4] == '\1');
  count[at + 1 + 32 + 4] = '\x21';
  CHECK(!decode_record(count).is_ok());
}

TEST_CASE("one job in two envelopes: copies converge on the one signed alone, in any order") {
  const Identity key = Identity::generate();
  const JobRecord alone = test::queued_record(key);
  JobRecord in_batch = alone;
  const std::vector<Envelope> envs = sign_job_batch({"{}", alone.envelope.job, "[]"}, key);
  in_batch.envelope = envs[1];
  REQUIRE(in_batch.id == in_batch.envelope.id());
  in_batch.status.attempt = 1;  // the batched copy is ahead in state
  in_batch.status.state = JobState::running;
  JobRecord same = alone;
  same.envelope = envs[1];
  CHECK_FALSE(same_state(alone, same));  // a new envelope is a change: stored, fingerprinted
  for (const auto& [a, b] : {std::pair(alone, in_batch), std::pair(in_batch, alone)}) {
    const JobRecord m = merge(a, b);
    CHECK_FALSE(m.envelope.batched());
    CHECK(m.envelope.signature == alone.envelope.signature);
    CHECK(m.status.state == JobState::running);  // nothing else is lost
    CHECK(same_state(m, merge(m, in_batch)));
  }
  // Two batches: the lesser signature wins everywhere.
  JobRecord other = in_batch;
  other.envelope = sign_job_batch({alone.envelope.job}, key)[0];
  const JobRecord m1 = merge(in_batch, other), m2 = merge(other, in_batch);
  CHECK(same_state(m1, m2));
  CHECK(m1.envelope.signature == std::min(in_batch.envelope.signature, other.envelope.signature));
}

TEST_CASE("a malformed batched receipt is refused in either form") {
  const Identity key = Identity::generate();
  JobRecord r = test::queued_record(key);
  r.history.clear();
  NodeResult res;
  res.receipt.root = blake2b_hex("root");
  res.receipt.proof = {blake2b_hex("a")};
  r.results["n1"] = res;
  REQUIRE(decode_record(encode_record(r)).is_ok());
  const auto refused = [&](auto&& change) {
    nlohmann::json j = record_to_json(r);
    change(j["results"]["n1"]["receipt"]);
    return decode_record(j.dump()).status().code() == Code::corruption;
  };
  using nlohmann::json;
  CHECK(refused([](json& rc) { rc["root"] = "zz"; }));
  CHECK(refused([](json& rc) { rc["root"] = std::string(64, 'A'); }));  // not lowercase
  CHECK(refused([](json& rc) { rc["proof"] = json::array({"00"}); }));
  CHECK(
      refused([](json& rc) { rc["proof"] = std::vector<std::string>(33, std::string(64, '0')); }));
  CHECK(refused([](json& rc) { rc["index"] = -1; }));
  CHECK(refused([](json& rc) { rc.erase("proof"); }));
  CHECK(refused([](json& rc) {  // a proof without a root
    rc.erase("root");
    rc.erase("index");
  }));
  // Binary: a proof count past kMerkleLevelsMax is refused before it is read.
  std::string bytes = encode_record(r);
  const size_t count_at = bytes.size() - (8 + 1 + 32 + 1);  // updated_at, n history, 1 sibling
  REQUIRE(bytes[count_at] == '\x01');
  bytes[count_at] = '\xff';
  CHECK(!decode_record(bytes).is_ok());
}

// ---- one encoding per record: the message codec takes the current binary form only ----

namespace {

// Every form decode_record reads of (a variation of) `r`: the current binary form, the JSON form
// and versions 4, 3 and 2 (each of the record as it could have been stored then).
std::vector<std::string> every_form(const JobRecord& r) {
  JobRecord v2 = unbatched(r);
  v2.status.round = v2.status.base = 0;
  v2.cancel_round = std::min<uint32_t>(v2.cancel_round, 1);
  return {encode_record(r), record_to_json(r).dump(), as_version_4(unbatched_envelope(r)),
          as_version_3(unbatched(r)), as_version_2(v2)};
}

// `bytes` with one to three bytes changed, cut short, or spliced with another form's tail.
std::string mutated(std::string bytes, const std::vector<std::string>& others,
                    std::mt19937_64& rng) {
  switch (small(rng, 2)) {
    case 0:
      for (uint32_t k = 1 + small(rng, 2); k > 0 && !bytes.empty(); --k)
        bytes[small(rng, uint32_t(bytes.size() - 1))] ^= char(1 + small(rng, 254));
      return bytes;
    case 1:
      return bytes.substr(0, small(rng, uint32_t(bytes.size())));
    default: {
      const std::string& tail = others[small(rng, uint32_t(others.size() - 1))];
      return bytes.substr(0, small(rng, uint32_t(bytes.size()))) +
             tail.substr(std::min<size_t>(tail.size(), small(rng, 300)));
    }
  }
}

// How decode_message answered a replicate of one record with `bytes` when it encoded the decoded
// record again and compared (before is_encode_record_form): "" when accepted, else the status's
// code and message.
std::string answer_by_reencoding(std::string_view bytes) {
  Result<JobRecord> r = decode_record(bytes);
  if (!r.is_ok()) return "malformed: replicate: record 0: " + r.status().message();
  if (encode_record(r.value()) != bytes)
    return "malformed: replicate: record 0 is not in encode_record's binary form";
  return "";
}

std::string answer_now(const JobRecord& any, const std::string& bytes) {
  SharedRecord carried{std::make_shared<const JobRecord>(any),
                       std::make_shared<const std::string>(bytes)};
  Result<Message> m = decode_message(encode_message(Replicate{1, {carried}, {}}));
  if (m.is_ok()) return "";
  return (m.status().code() == Code::malformed ? "malformed: " : "other: ") + m.status().message();
}

}  // namespace

TEST_CASE("is_encode_record_form: exactly the decoded bytes that re-encode to themselves") {
  const Identity key = Identity::generate();
  std::mt19937_64 rng(1212);
  const JobRecord base = test::queued_record(key);
  size_t current = 0, older = 0, mutants = 0;
  for (int i = 0; i < 300; ++i) {
    const std::vector<std::string> forms = every_form(random_record(base, rng));
    for (size_t f = 0; f < forms.size(); ++f) {
      Result<JobRecord> r = decode_record(forms[f]);
      REQUIRE(r.is_ok());
      const bool reencodes = encode_record(r.value()) == forms[f];
      CHECK(reencodes == (f == 0));  // only the current binary form is encode_record's
      CHECK(is_encode_record_form(forms[f]) == reencodes);
      (f == 0 ? current : older)++;
    }
    for (int k = 0; k < 40; ++k) {  // non-canonical variations: refused, or accepted as written
      const std::string m = mutated(forms[small(rng, uint32_t(forms.size() - 1))], forms, rng);
      Result<JobRecord> r = decode_record(m);
      if (!r.is_ok()) continue;
      ++mutants;
      CHECK(is_encode_record_form(m) == (encode_record(r.value()) == m));
    }
  }
  MESSAGE(current, " current and ", older, " older forms, ", mutants, " mutants decoded");
  CHECK(mutants > 0);
}

TEST_CASE("a record inside a message is refused or taken exactly as when it was re-encoded") {
  const Identity key = Identity::generate();
  std::mt19937_64 rng(1313);
  const JobRecord base = test::queued_record(key);
  size_t accepted = 0, refused_form = 0, refused_decode = 0;
  const auto same_answer = [&](const std::string& bytes) {
    const std::string before = answer_by_reencoding(bytes);
    CHECK(answer_now(base, bytes) == before);
    if (before.empty())
      ++accepted;
    else if (before.find("binary form") != std::string::npos)
      ++refused_form;
    else
      ++refused_decode;
  };
  for (int i = 0; i < 150; ++i) {
    const std::vector<std::string> forms = every_form(random_record(base, rng));
    for (const std::string& form : forms) same_answer(form);
    for (int k = 0; k < 40; ++k)
      same_answer(mutated(forms[small(rng, uint32_t(forms.size() - 1))], forms, rng));
  }
  // The older binary forms and JSON, which decode_record still reads from the store, travel as
  // the current form only: refused by name, as before.
  const JobRecord r = unbatched(random_record(base, rng));
  for (const std::string& form : every_form(r))
    if (form != encode_record(r))
      CHECK(answer_now(base, form) ==
            "malformed: replicate: record 0 is not in encode_record's binary form");
  MESSAGE(accepted, " accepted, ", refused_form, " refused as another form, ", refused_decode,
          " refused by decode_record");
  CHECK(accepted > 0);
  CHECK(refused_form > 0);
  CHECK(refused_decode > 0);
}

namespace {

// A job text for the spec reader: mostly spec-like objects, with every kind of value, duplicates,
// nesting, escapes and damage, so that both readers meet each case.
std::string spec_text(std::mt19937_64& rng) {
  const auto pick = [&](uint32_t n) { return static_cast<uint32_t>(rng() % n); };
  static const std::vector<std::string> keys = {
      "type",       "max_attempts", "timeout_ms", "created_at", "priority",  "delay_ms",
      "redundancy", "payload",      "nonce",      "ty\\u0070e", "priority ", "TYPE"};
  std::function<std::string(int)> value = [&](int depth) -> std::string {
    switch (pick(depth > 2 ? 12 : 14)) {
      case 0:
        return "null";
      case 1:
        return pick(2) ? "true" : "false";
      case 2:
        return std::to_string(rng() % 20);
      case 3:
        return std::to_string(rng());  // any u64
      case 4:
        return "18446744073709551616";  // past u64: a float
      case 5:
        return "-" + std::to_string(1 + rng() % 1000);  // negative
      case 6:
        return std::to_string(rng() % 100) + ".5";  // fractional
      case 7:
        return pick(2) ? "1e3" : "0.0";
      case 8:
        return "\"echo\"";
      case 9:
        return "\"e\\u0063ho \\\"x\\\"\"";
      case 10:
        return "\"\"";
      case 11:
        return std::to_string(1 + rng() % 9);
      case 12: {
        std::string o = "{";
        for (uint32_t i = 0, n = pick(4); i < n; ++i)
          o += (i ? "," : "") + ("\"" + keys[pick(uint32_t(keys.size()))] + "\":") +
               value(depth + 1);
        return o + "}";
      }
      default: {
        std::string a = "[";
        for (uint32_t i = 0, n = pick(4); i < n; ++i) a += (i ? "," : "") + value(depth + 1);
        return a + "]";
      }
    }
  };
  std::string t;
  if (pick(20) == 0) {
    t = value(0);  // any top-level value
  } else {
    t = "{";
    const uint32_t n = 1 + pick(9);
    for (uint32_t i = 0; i < n; ++i) {
      // Mostly a well-formed spec: "type" first as a string, the numbers small and unsigned.
      std::string k = i == 0 && pick(8) ? "type" : keys[pick(uint32_t(keys.size()))];
      std::string v = k == "type" && pick(4) ? "\"echo\""
                      : pick(3)              ? std::to_string(rng() % 50)
                                             : value(1);
      t += (i ? "," : "") + (pick(10) ? "" : std::string(" \n")) + "\"" + k + "\":" + v;
    }
    t += "}";
  }
  switch (pick(12)) {  // damage, now and then
    case 0:
      t = t.substr(0, pick(uint32_t(t.size()) + 1));
      break;
    case 1:
      t += pick(2) ? " " : " x";
      break;
    case 2:
      if (!t.empty()) t[pick(uint32_t(t.size()))] = "{}[]\",:0-"[pick(9)];
      break;
    default:
      break;
  }
  return t;
}

struct SpecAnswer {
  bool threw = false;
  std::string what, type;
  uint32_t max_attempts = 0, priority = 0, redundancy = 0;
  uint64_t timeout_ms = 0, created_at_ms = 0, delay_ms = 0;
  bool operator==(const SpecAnswer&) const = default;
};

SpecAnswer spec_answer(const std::string& text, bool dom) {
  JobRecord r;
  r.envelope.job = text;
  SpecAnswer a;
  try {
    detail::fill_spec_fields(r, dom);
  } catch (const nlohmann::json::exception& e) {
    a.threw = true;
    a.what = e.what();
    return a;
  }
  a.type = r.type;
  a.max_attempts = r.max_attempts;
  a.priority = r.priority;
  a.redundancy = r.redundancy;
  a.timeout_ms = r.timeout_ms;
  a.created_at_ms = r.created_at_ms;
  a.delay_ms = r.delay_ms;
  return a;
}

}  // namespace

TEST_CASE("the SAX spec reader gives what parsing the job text gives, fields or exception") {
  std::mt19937_64 rng(20261130);
  size_t read = 0, threw = 0;
  for (int i = 0; i < 30'000; ++i) {
    const std::string text = spec_text(rng);
    const SpecAnswer fast = spec_answer(text, false), dom = spec_answer(text, true);
    if (!(fast == dom)) {
      FAIL_CHECK("differ on " << text << ": fast " << (fast.threw ? fast.what : fast.type)
                              << " / dom " << (dom.threw ? dom.what : dom.type));
    }
    (dom.threw ? threw : read)++;
  }
  // Both kinds of answer are well represented.
  CHECK(read > 5'000);
  CHECK(threw > 5'000);
  // The cases the SAX pass answers itself, and one it leaves to the document (a later duplicate
  // "type" wins).
  CHECK(
      spec_answer(R"({"type":"echo","priority":9,"redundancy":12,"payload":{"type":1}})", false) ==
      spec_answer(R"({"type":"echo","priority":9,"redundancy":12,"payload":{"type":1}})", true));
  CHECK(spec_answer(R"({"type":1,"type":"echo"})", false).type == "echo");
  CHECK(spec_answer(R"({"type":"echo","priority":-1})", false).priority == uint32_t(-1));
  MESSAGE("texts read: " << read << ", refused: " << threw);
}

}  // namespace meshwork
