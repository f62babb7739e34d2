// The job record's merge: the semilattice laws over random records and delivery orders, and the
// precedence rules of docs/guarantees.md (the job record is a CRDT).
#include <doctest/doctest.h>

#include <algorithm>
#include <random>

#include "dht/job_record.h"
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

// A random variation of `base`: each part drawn from a small domain so that ties are frequent.
JobRecord random_record(const JobRecord& base, std::mt19937_64& rng) {
  JobRecord r = base;
  r.status = JobStatus{JobState(small(rng, 5)), small(rng, 4),      pick(rng, kNodes),
                       small(rng, 3),           pick(rng, kErrors), small(rng, 2)};
  r.claim = Claim{small(rng, 4), pick(rng, kNodes), small(rng, 3)};
  r.cancel_requested = small(rng, 3) == 0;
  r.results.clear();
  for (uint32_t i = small(rng, 6); i > 0; --i) {
    NodeResult res;
    res.attempt = small(rng, 4);
    res.outcome = JobState(3 + small(rng, 2));
    res.result = small(rng, 1) ? "{\"v\":1}" : "{\"v\":2}";
    res.at_ms = small(rng, 3);
    res.receipt.signature = std::to_string(small(rng, 2));
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
    CHECK(static_cast<uint8_t>(bytes.front()) == 2);
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
        if (!m.empty()) m[0] = '\x02';
        break;
    }
    auto r = decode_record(m);
    if (r.is_ok()) CHECK(r.value().id == r.value().envelope.id());
  }
}

}  // namespace meshwork
