// Redundant execution in the replica core (replica.h invariants 6 and 7): the verdict over the
// runners' results (dht/verdict.h), co-runs, the claimant deciding, final_result taking the
// majority's answer, and reputation moving a liar out of placement. Staged on replica_harness.h.
#include <doctest/doctest.h>

#include <algorithm>

#include "dht/verdict.h"
#include "tests/dht/replica_harness.h"

namespace meshwork {
namespace {

using stage::Stage;

constexpr const char* kHonest = R"({"v":1})";
constexpr const char* kWrong = R"({"v":666})";

NodeResult result_of(uint32_t attempt, JobState outcome, const std::string& hash) {
  NodeResult r;
  r.attempt = attempt;
  r.outcome = outcome;
  r.receipt.result_hash = hash;
  return r;
}

JobRecord with_results(uint32_t k, const std::vector<std::pair<std::string, NodeResult>>& rs) {
  JobRecord r = stage::redundant_job(1, 1'000, k);
  for (const auto& [node, res] : rs) r.results[node] = res;
  return r;
}

ReplicaConfig quick() {
  ReplicaConfig c = stage::quiet();
  c.backoff_base_ms = 100;
  c.backoff_max_ms = 200;
  return c;
}

// A job of redundancy k whose replicas (in node `viewer`'s view) are exactly `order`.
JobRecord placed(Stage& s, const std::vector<std::string>& order, uint32_t k, int from = 0,
                 size_t viewer = 0) {
  for (int n = from; n < from + 100'000; ++n) {
    JobRecord r = stage::redundant_job(n, s.now().wall_ms, k);
    if (s.core(viewer).placement().replicas(r.id) == order) return r;
  }
  FAIL("no job id lands on that preference list");
  return {};
}

bool has_reason(const JobRecord& r, const std::string& reason) {
  return std::any_of(r.history.begin(), r.history.end(),
                     [&](const HistoryEntry& h) { return h.reason == reason; });
}

bool stopped(const stage::Node& n, const std::string& id, uint32_t attempt, Stop::Why why) {
  return std::any_of(n.stops.begin(), n.stops.end(), [&](const Stop& s) {
    return s.id == id && s.attempt == attempt && s.why == why;
  });
}

// Submits `r` through node 0 and lets the claim and the co-runs start.
std::string submit(Stage& s, const JobRecord& r) {
  s.submit(0, r);
  s.settle();
  s.run(100);
  return r.id;
}

}  // namespace

TEST_CASE("verdict: a majority of k decides; the rest dissent") {
  const auto ok = [](const std::string& h) { return result_of(1, JobState::succeeded, h); };
  Verdict v = result_verdict(with_results(3, {{"a", ok("x")}, {"b", ok("y")}, {"c", ok("x")}}), 1);
  CHECK(v.kind == Verdict::Kind::decided);
  CHECK(v.outcome == JobState::succeeded);
  CHECK(v.result_hash == "x");
  CHECK(v.agreeing == std::vector<std::string>{"a", "c"});
  CHECK(v.dissenting == std::vector<std::string>{"b"});
  CHECK(v.majority == 2);
  // Two of three agreeing decide before the third is in.
  v = result_verdict(with_results(3, {{"a", ok("x")}, {"b", ok("x")}}), 1);
  CHECK(v.kind == Verdict::Kind::decided);
  CHECK(v.dissenting.empty());
  // One in, or two that differ with one to come: pending.
  CHECK(result_verdict(with_results(3, {{"a", ok("x")}}), 1).kind == Verdict::Kind::pending);
  CHECK(result_verdict(with_results(3, {{"a", ok("x")}, {"b", ok("y")}}), 1).kind ==
        Verdict::Kind::pending);
  // All in, no majority: disagree.
  CHECK(result_verdict(with_results(3, {{"a", ok("x")}, {"b", ok("y")}, {"c", ok("z")}}), 1).kind ==
        Verdict::Kind::disagree);
  // k = 5: three different results of five can no longer make three agree... with two to come
  // they still can (x, x, x): pending; a fourth different one settles it.
  CHECK(result_verdict(with_results(5, {{"a", ok("x")}, {"b", ok("y")}, {"c", ok("z")}}), 1).kind ==
        Verdict::Kind::pending);
  CHECK(result_verdict(
            with_results(5, {{"a", ok("x")}, {"b", ok("y")}, {"c", ok("z")}, {"d", ok("w")}}), 1)
            .kind == Verdict::Kind::disagree);
}

TEST_CASE("verdict: only the attempt's succeeded and failed results count, by outcome and hash") {
  const JobRecord r = with_results(3, {{"a", result_of(1, JobState::failed, "e")},
                                       {"b", result_of(1, JobState::failed, "e")},
                                       {"c", result_of(1, JobState::succeeded, "e")},
                                       {"d", result_of(2, JobState::succeeded, "x")},
                                       {"f", result_of(1, JobState::cancelled, "")}});
  const Verdict v = result_verdict(r, 1);
  CHECK(v.kind == Verdict::Kind::decided);
  CHECK(v.outcome == JobState::failed);
  CHECK(v.agreeing == std::vector<std::string>{"a", "b"});
  CHECK(v.dissenting == std::vector<std::string>{"c"});
  CHECK(v.results == 3);
  // k = 1: the one result decides.
  CHECK(result_verdict(with_results(1, {{"a", result_of(1, JobState::succeeded, "x")}}), 1).kind ==
        Verdict::Kind::decided);
  // An even split of more results than k (a stand-in ran too) decides nothing.
  const auto ok = [](const std::string& h) { return result_of(1, JobState::succeeded, h); };
  CHECK(result_verdict(
            with_results(3, {{"a", ok("x")}, {"b", ok("x")}, {"c", ok("y")}, {"d", ok("y")}}), 1)
            .kind == Verdict::Kind::disagree);
}

TEST_CASE("final_result of a redundant job is the majority's, not the claimant's") {
  JobRecord r = with_results(3, {{"a", result_of(1, JobState::succeeded, "x")},
                                 {"b", result_of(1, JobState::succeeded, "y")},
                                 {"c", result_of(1, JobState::succeeded, "y")}});
  r.results["b"].result = kHonest;
  r.status = JobStatus{JobState::succeeded, 1, "a", 2'000, {}, 0};
  REQUIRE(r.final_result() != nullptr);
  CHECK(r.final_result()->result == kHonest);
  r.results.erase("c");  // no majority: no result
  CHECK(r.final_result() == nullptr);
}

TEST_CASE("final_result survives a later attempt replacing some of the deciding results") {
  // Seen in test_redundancy: the liar e claimed attempt 1 in its own view and decided it with the
  // honest a and b; meanwhile b took the job over (attempt 2, a co-run on c), and the later
  // results of b and c replaced b's of attempt 1. Attempt 1 alone now splits 1 : 1.
  JobRecord r = with_results(3, {{"a", result_of(1, JobState::succeeded, "x")},
                                 {"e", result_of(1, JobState::succeeded, "y")},
                                 {"b", result_of(2, JobState::succeeded, "x")},
                                 {"c", result_of(2, JobState::succeeded, "x")}});
  r.results["a"].result = kHonest;
  r.results["e"].result = kWrong;
  r.status = JobStatus{JobState::succeeded, 1, "e", 2'000, {}, 0};
  CHECK(result_verdict(r, 1).kind != Verdict::Kind::decided);
  const Verdict v = final_verdict(r);
  CHECK(v.kind == Verdict::Kind::decided);
  CHECK(v.result_hash == "x");
  CHECK(v.agreeing == std::vector<std::string>{"a", "b", "c"});
  CHECK(v.dissenting == std::vector<std::string>{"e"});
  REQUIRE(r.final_result() != nullptr);
  CHECK(r.final_result()->result == kHonest);
  // Distinct nodes still count once each: the liar alone, or one honest node per hash, decides
  // nothing; neither does a failure of another attempt.
  r.results.erase("b");
  r.results.erase("c");
  r.results["f"] = result_of(2, JobState::failed, "x");
  CHECK(final_verdict(r).kind != Verdict::Kind::decided);
  CHECK(r.final_result() == nullptr);
  // A job that did not succeed keeps its final attempt's verdict.
  r.status.state = JobState::failed;
  CHECK(final_verdict(r).kind == result_verdict(r, 1).kind);
}

TEST_CASE("the redundancy spec field is decoded from the signed text, bounded") {
  const JobRecord r = stage::redundant_job(1, 1'000, 3);
  auto back = decode_record(encode_record(r));
  REQUIRE(back.is_ok());
  CHECK(back.value().redundancy == 3);
  auto plain = decode_record(encode_record(stage::job(2, 1'000)));
  REQUIRE(plain.is_ok());
  CHECK(plain.value().redundancy == 1);
  auto json_form = record_from_json(record_to_json(r));
  REQUIRE(json_form.is_ok());
  CHECK(json_form.value().redundancy == 3);
  // A peer's record is decoded before its envelope is checked: out of range is clamped.
  const JobRecord big = stage::redundant_job(3, 1'000, 99);
  auto clamped = decode_record(encode_record(big));
  REQUIRE(clamped.is_ok());
  CHECK(clamped.value().redundancy == kRedundancyMax);
}

TEST_CASE("redundancy 3: every replica runs the attempt; all agree → succeeded, all scored") {
  Stage s(3, quick());
  const std::string id = submit(s, placed(s, {"n1", "n2", "n3"}, 3));
  for (size_t i = 0; i < 3; ++i) REQUIRE(s.node(i).running.contains(id));
  CHECK(s.core(1).stats().co_runs_started == 1);
  CHECK(s.core(0).stats().attempts_started == 1);
  s.finish_with(1, id, kHonest);
  s.finish_with(2, id, kHonest);
  s.settle();
  // The claimant's verdict waits for its own handler to end.
  CHECK(s.copy(0, id)->status.state == JobState::running);
  CHECK(s.copy(0, id)->results.size() == 2);
  s.finish_with(0, id, kHonest);
  s.settle();
  for (size_t i = 0; i < 3; ++i) {
    const JobRecord r = *s.copy(i, id);
    CHECK(r.status.state == JobState::succeeded);
    REQUIRE(r.final_result() != nullptr);
    CHECK(r.final_result()->result == kHonest);
    CHECK(r.results.size() == 3);
    CHECK(has_reason(r, "succeeded: 3 of 3 results agree"));
    for (const char* host : {"n1", "n2", "n3"})
      CHECK(s.core(i).reputation().counts(host).agreed == 1);
  }
  CHECK(s.core(0).stats().verdicts_decided == 1);
  CHECK(s.starts_of(id) == 3);
}

TEST_CASE("one liar among three: the honest result wins and only the liar is scored down") {
  Stage s(3, quick());
  const std::string id = submit(s, placed(s, {"n1", "n2", "n3"}, 3));
  s.finish_with(2, id, kWrong);  // n3 lies, first
  s.finish_with(1, id, kHonest);
  s.settle();
  CHECK(s.copy(0, id)->status.state == JobState::running);  // 1 to 1: pending
  s.finish_with(0, id, kHonest);
  s.settle();
  for (size_t i = 0; i < 3; ++i) {
    const JobRecord r = *s.copy(i, id);
    CHECK(r.status.state == JobState::succeeded);
    CHECK(r.final_result()->result == kHonest);
    CHECK(r.results.at("n3").result == kWrong);  // the evidence stays
    const Reputation& rep = s.core(i).reputation();
    CHECK(rep.counts("n3").disagreed == 1);
    CHECK(rep.counts("n3").agreed == 0);
    CHECK(rep.counts("n1").agreed == 1);
    CHECK(rep.counts("n2").agreed == 1);
  }
}

TEST_CASE("the claimant lies: the majority's result is the job's") {
  Stage s(3, quick());
  const std::string id = submit(s, placed(s, {"n1", "n2", "n3"}, 3));
  s.finish_with(0, id, kWrong);  // n1 claimed it, and lies
  s.finish_with(1, id, kHonest);
  s.settle();
  s.finish_with(2, id, kHonest);
  s.settle();
  const JobRecord r = *s.copy(1, id);
  CHECK(r.status.state == JobState::succeeded);
  CHECK(r.status.node == "n1");
  CHECK(r.final_result()->result == kHonest);
  CHECK(s.core(1).reputation().counts("n1").disagreed == 1);
}

TEST_CASE("three different results: retried, then failed with \"results disagree\"") {
  Stage s(3, quick());
  const std::string id = submit(s, placed(s, {"n1", "n2", "n3"}, 3));
  for (uint32_t attempt = 1; attempt <= kMaxAttemptsDefault; ++attempt) {
    for (size_t i = 0; i < 3; ++i) {
      REQUIRE(s.node(i).running.contains(id));
      s.finish_with(i, id, "{\"v\":" + std::to_string(10 * attempt + i) + "}");
    }
    s.settle();
    const JobRecord r = *s.copy(0, id);
    CHECK(r.status.attempt == attempt);
    if (attempt < kMaxAttemptsDefault) {
      CHECK(r.status.state == JobState::retry_wait);
      CHECK(r.status.error == kResultsDisagree);
      s.run(500);
    } else {
      CHECK(r.status.state == JobState::failed);
      CHECK(r.status.error == kResultsDisagree);
      CHECK(has_reason(r, kResultsDisagree));
      CHECK(r.final_result() == nullptr);
    }
  }
  CHECK(s.core(0).stats().verdicts_disagreed == kMaxAttemptsDefault);
  CHECK(s.core(1).reputation().counts("n1").disagreed == 0);  // no majority: no evidence
}

TEST_CASE("a runner that dies mid-run: its stand-in runs the attempt and the job succeeds") {
  Stage s(4, quick());
  const std::string id = submit(s, placed(s, {"n1", "n2", "n3"}, 3));
  REQUIRE(s.node(2).running.contains(id));
  s.crash(2);
  s.tell_all(2, MemberState::dead);
  s.run(1'500);  // hand-off brings n4 the record; its sweep starts the co-run
  REQUIRE(s.node(3).running.contains(id));
  s.finish_with(3, id, kHonest);
  s.finish_with(1, id, kHonest);
  s.finish_with(0, id, kHonest);
  s.settle();
  const JobRecord r = *s.copy(0, id);
  CHECK(r.status.state == JobState::succeeded);
  CHECK(r.status.attempt == 1);
  CHECK(r.final_result()->result == kHonest);
  CHECK(r.results.contains("n4"));
}

TEST_CASE("the claimant dies: co-runs of its attempt stop, every runner runs the next") {
  Stage s(4, quick());
  const std::string id = submit(s, placed(s, {"n1", "n2", "n3"}, 3));
  s.crash(0);
  s.tell_all(0, MemberState::dead);
  s.run(3'000);
  CHECK(stopped(s.node(1), id, 1, Stop::Why::superseded));
  CHECK(stopped(s.node(2), id, 1, Stop::Why::superseded));
  // Their handlers end; the co-run of the next attempt starts once n3's has.
  s.finish_with(1, id, "", JobState::cancelled, "", "", 1);
  s.finish_with(2, id, "", JobState::cancelled, "", "", 1);
  s.settle();
  const JobRecord r = *s.copy(1, id);
  REQUIRE(r.status.state == JobState::running);
  CHECK(r.status.attempt == 2);
  CHECK(r.status.node == "n2");
  for (size_t i = 1; i < 4; ++i) {
    REQUIRE(s.node(i).running.contains(id));
    CHECK(s.node(i).starts.back().attempt == 2);
  }
  for (size_t i = 1; i < 4; ++i) s.finish_with(i, id, kHonest);
  s.settle();
  CHECK(s.copy(1, id)->status.state == JobState::succeeded);
  CHECK(s.copy(1, id)->final_result()->result == kHonest);
}

TEST_CASE("a cancel stops the co-runs too") {
  Stage s(3, quick());
  const std::string id = submit(s, placed(s, {"n1", "n2", "n3"}, 3));
  s.cancel(1, id);
  s.settle();
  for (size_t i = 1; i < 3; ++i) CHECK(stopped(s.node(i), id, 1, Stop::Why::cancelled));
  s.finish(0, id, JobState::cancelled);
  s.settle();
  CHECK(s.copy(2, id)->status.state == JobState::cancelled);
}

TEST_CASE("a cancel while the claimant waits for the verdict ends the attempt cancelled") {
  Stage s(3, quick());
  const std::string id = submit(s, placed(s, {"n1", "n2", "n3"}, 3));
  s.finish_with(0, id, kHonest);  // the claimant is done and waits for n2 and n3
  s.settle();
  REQUIRE(s.copy(0, id)->status.state == JobState::running);
  s.cancel(2, id);
  s.settle();
  for (size_t i = 0; i < 3; ++i) CHECK(s.copy(i, id)->status.state == JobState::cancelled);
}

TEST_CASE("runners that never answer: past the timeout the attempt fails, results disagree") {
  Stage s(3, quick());
  const std::string id = submit(s, placed(s, {"n1", "n2", "n3"}, 3));
  s.finish_with(0, id, kHonest);
  s.run(50'000, 100);
  CHECK(s.copy(0, id)->status.state == JobState::running);  // the lease is renewed meanwhile
  s.run(20'000, 100);  // the job's timeout (60 s) and a peer timeout have passed
  const JobRecord r = *s.copy(0, id);
  CHECK(r.status.attempt == 2);  // retried at once (a short backoff here)
  const bool disagreed = std::any_of(r.history.begin(), r.history.end(), [](const HistoryEntry& h) {
    return h.state == JobState::retry_wait && h.attempt == 1 &&
           h.reason.ends_with(kResultsDisagree);
  });
  CHECK(disagreed);
  CHECK(s.core(0).stats().verdicts_disagreed == 1);
  CHECK(s.core(1).stats().takeovers == 0);
}

TEST_CASE("a co-run of a delayed job waits until it is due by the co-runner's own clock") {
  Stage s(3, quick());
  s.skew(2, -3'000);  // n3's wall clock runs 3 s behind
  JobRecord r;
  for (int n = 0;; ++n) {
    r = stage::redundant_job(n, s.now().wall_ms, 3, 1'000);
    if (s.core(0).placement().replicas(r.id) == std::vector<std::string>{"n1", "n2", "n3"}) break;
  }
  const std::string id = submit(s, r);
  s.run(1'500);
  REQUIRE(s.node(0).running.contains(id));
  CHECK(s.node(1).running.contains(id));
  CHECK_FALSE(s.node(2).running.contains(id));  // 1.4 s before its run_after on n3's clock
  s.run(3'000);
  REQUIRE(s.node(2).running.contains(id));
  CHECK(s.now(2).wall_ms >= r.run_after_ms());
}

TEST_CASE("a liar scored below the threshold is distrusted: it neither owns nor runs jobs") {
  Stage s(4, quick());
  // n3 lies to n1 and n2 twice. Once they distrust it, the two jobs' records move to its stand-in
  // n4 (hand-off), which finds the same evidence in them and distrusts n3 too.
  for (int round = 0; round < 2; ++round) {
    const std::string id = submit(s, placed(s, {"n1", "n2", "n3"}, 3, round * 100'000));
    s.finish_with(2, id, kWrong);
    s.finish_with(1, id, kHonest);
    s.settle();
    s.finish_with(0, id, kHonest);
    s.settle();
    REQUIRE(s.copy(1, id)->status.state == JobState::succeeded);
  }
  s.run(1'500);
  for (size_t i : {0, 1, 3}) {
    CHECK_FALSE(s.core(i).reputation().trusted("n3"));
    CHECK(s.core(i).placement().distrusted("n3"));
    CHECK_FALSE(s.core(i).placement().usable("n3"));
  }
  CHECK(s.core(2).placement().usable("n3"));  // never distrusted by itself
  // A job n3 would own goes to another; a redundant one runs on the three others.
  JobRecord next;
  for (int n = 500'000;; ++n) {
    next = stage::redundant_job(n, s.now().wall_ms, 3);
    if (s.core(2).placement().owner(next.id) == "n3") break;
  }
  CHECK(s.core(0).placement().owner(next.id) != "n3");
  const std::string id = submit(s, next);
  CHECK_FALSE(s.node(2).running.contains(id));
  size_t runners = 0;
  for (size_t i : {0, 1, 3}) runners += s.node(i).running.contains(id);
  CHECK(runners == 3);
}

}  // namespace meshwork
