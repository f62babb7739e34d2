// JobRunner: a Start runs the handler on a worker and reports a signed outcome (unless the job's
// envelope does not verify: then the attempt fails unrun); a Stop cancels it, and a timed-out stop
// turns into "timed out after N ms"; after shutdown nothing is reported.
#include <doctest/doctest.h>

#include <condition_variable>
#include <mutex>
#include <optional>

#include "dht/receipt.h"
#include "node/admission.h"
#include "node/job_runner.h"
#include "node/receipt_check.h"
#include "tests/node/test_util.h"

namespace meshwork {
namespace {

struct Outcomes {
  void add(Outcome o) {
    std::lock_guard lock(mu);
    got.push_back(std::move(o));
    cv.notify_all();
  }
  std::optional<Outcome> wait(size_t n) {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return got.size() >= n; }))
      return std::nullopt;
    return got[n - 1];
  }
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Outcome> got;
};

Start start_of(const JobRecord& r, uint32_t attempt) {
  JobRecord claimed = r;
  claimed.status.state = JobState::running;
  claimed.status.attempt = attempt;
  return Start{r.id, attempt, std::make_shared<const JobRecord>(std::move(claimed))};
}

}  // namespace

TEST_CASE("a started echo job reports a success with a receipt that verifies") {
  const Identity key = Identity::generate();
  Outcomes outcomes;
  JobRunner runner("n1", 2, [&](Outcome o) { outcomes.add(std::move(o)); });
  JobRecord r = test::queued_record(key, "echo", {{"hello", "mesh"}});
  runner.start(start_of(r, 1));
  auto o = outcomes.wait(1);
  REQUIRE(o);
  CHECK(o->id == r.id);
  CHECK(o->attempt == 1);
  const NodeResult& res = o->result;
  CHECK(res.outcome == JobState::succeeded);
  CHECK(nlohmann::json::parse(res.result)["echo"]["hello"] == "mesh");
  CHECK(res.receipt.node == "n1");
  CHECK(res.receipt.attempt == 1);
  CHECK(res.receipt.result_hash == blake2b_hex(res.result));
  CHECK(res.receipt.signature.empty());  // the loop signs outcomes in batches (sign_batch)
  std::vector<Outcome> batch{*o};
  JobRunner::sign_batch(key, batch);
  const Receipt& rc = batch.front().result.receipt;
  CHECK(check_receipt(rc, r.id, 1, batch.front().result.result, key.public_key_b64()).check ==
        ReceiptCheck::valid);
}

TEST_CASE("a batch of outcomes gets one signature, and each receipt verifies on its own") {
  const Identity key = Identity::generate();
  std::vector<Outcome> batch;
  for (uint32_t i = 0; i < 5; ++i) {
    const std::string id = blake2b_hex("job " + std::to_string(i));
    const auto out = i % 2 == 0 ? HandlerOutcome::success({{"i", i}})
                                : HandlerOutcome::failure("boom " + std::to_string(i));
    batch.push_back(Outcome{id, 1, JobRunner::result_of("n1", id, 1, out, 7)});
  }
  JobRunner::sign_batch(key, batch);
  for (uint32_t i = 0; i < batch.size(); ++i) {
    const Receipt& rc = batch[i].result.receipt;
    CAPTURE(i);
    CHECK(rc.index == i);
    CHECK(rc.proof.size() == 3);
    CHECK(rc.root == batch.front().result.receipt.root);
    CHECK(rc.signature == batch.front().result.receipt.signature);
    CHECK(check_result(batch[i].id, batch[i].result, key.public_key_b64()).check ==
          ReceiptCheck::valid);
  }
  VerifiedSignatures verified;
  const SignatureCheck verify = [&](std::string_view m, std::string_view s, std::string_view k) {
    return verified.verify(m, s, k);
  };
  for (const Outcome& o : batch)
    CHECK(check_result(o.id, o.result, key.public_key_b64(), verify).check == ReceiptCheck::valid);
  CHECK(verified.verifications() == 1);  // one Ed25519 verification for the whole batch
}

TEST_CASE("a job whose envelope does not verify here fails its attempt without running") {
  const Identity key = Identity::generate();
  const Admission admission(key, "n1", {});
  Outcomes outcomes;
  JobRunner runner(
      "n1", 1, [&](Outcome o) { outcomes.add(std::move(o)); },
      [&](const JobRecord& r) { return admission.check(r); });
  JobRecord good = test::queued_record(key, "echo", {{"n", 1}});
  JobRecord forged = test::queued_record(key, "echo", {{"n", 2}});
  forged.envelope.signature[0] = static_cast<char>(forged.envelope.signature[0] ^ 1);
  runner.start(start_of(forged, 1));
  runner.start(start_of(good, 1));
  auto first = outcomes.wait(1), second = outcomes.wait(2);
  REQUIRE(first);
  REQUIRE(second);
  const Outcome& f = first->id == forged.id ? *first : *second;
  const Outcome& g = first->id == forged.id ? *second : *first;
  CHECK(f.result.outcome == JobState::failed);
  CHECK(f.result.error == "the job's envelope does not verify on n1");
  CHECK(f.result.result.empty());
  CHECK(g.result.outcome == JobState::succeeded);
}

TEST_CASE("workers verify a batch's signature about once, not once per job") {
  const Identity client = Identity::generate();
  const Admission admission(Identity::generate(), "n1", {});
  constexpr size_t kWorkers = 4, kJobs = 60;
  Outcomes outcomes;
  JobRunner runner(
      "n1", kWorkers, [&](Outcome o) { outcomes.add(std::move(o)); },
      [&](const JobRecord& r) { return admission.check(r); });
  std::vector<std::string> texts;
  for (size_t i = 0; i < kJobs; ++i)
    texts.push_back(nlohmann::json{
        {"type", "echo"}, {"payload", i}, {"nonce", std::to_string(i)}, {"created_at", 1}}
                        .dump());
  std::vector<Envelope> envs = sign_job_batch(texts, client);
  envs[7].proof[0][0] = envs[7].proof[0][0] == '0' ? '1' : '0';  // one job's proof broken
  for (const Envelope& env : envs) {
    JobSpec spec;
    spec.type = "echo";
    runner.start(start_of(make_record(env, spec, "n1", 1), 1));
  }
  REQUIRE(outcomes.wait(kJobs));
  std::lock_guard lock(outcomes.mu);
  for (const Outcome& o : outcomes.got) {
    const bool broken = o.id == envs[7].id();
    CHECK(o.result.outcome == (broken ? JobState::failed : JobState::succeeded));
  }
  // Workers that start jobs of the new batch at once may each verify it; no more.
  CHECK(admission.root_verifications() >= 1);
  CHECK(admission.root_verifications() <= kWorkers);
}

TEST_CASE("the attempt number reaches the handler") {
  const Identity key = Identity::generate();
  Outcomes outcomes;
  JobRunner runner("n1", 1, [&](Outcome o) { outcomes.add(std::move(o)); });
  JobRecord r = test::queued_record(key, "flaky", {{"fail_times", 2}});
  runner.start(start_of(r, 2));
  auto failed = outcomes.wait(1);
  REQUIRE(failed);
  CHECK(failed->result.outcome == JobState::failed);
  runner.start(start_of(r, 3));
  auto ok = outcomes.wait(2);
  REQUIRE(ok);
  CHECK(ok->result.outcome == JobState::succeeded);
}

TEST_CASE("stops: a cancel ends the handler cancelled, a timeout as a timed-out failure") {
  const Identity key = Identity::generate();
  Outcomes outcomes;
  JobRunner runner("n1", 2, [&](Outcome o) { outcomes.add(std::move(o)); });
  JobRecord slow = test::queued_record(key, "sleep", {{"ms", 60000}});
  runner.start(start_of(slow, 1));
  runner.stop(Stop{Stop::Why::cancelled, slow.id, 2});  // another attempt: ignored
  runner.stop(Stop{Stop::Why::cancelled, slow.id, 1});
  auto cancelled = outcomes.wait(1);
  REQUIRE(cancelled);
  CHECK(cancelled->result.outcome == JobState::cancelled);

  JobRecord slower = test::queued_record(key, "sleep", {{"ms", 60001}});
  runner.start(start_of(slower, 1));
  runner.stop(Stop{Stop::Why::timed_out, slower.id, 1});
  auto timed_out = outcomes.wait(2);
  REQUIRE(timed_out);
  CHECK(timed_out->result.outcome == JobState::failed);
  CHECK(timed_out->result.error == "timed out after " + std::to_string(slower.timeout_ms) + " ms");
  CHECK(timed_out->result.receipt.result_hash == blake2b_hex(timed_out->result.error));
}

TEST_CASE("after shutdown no outcome is reported") {
  const Identity key = Identity::generate();
  Outcomes outcomes;
  JobRunner runner("n1", 1, [&](Outcome o) { outcomes.add(std::move(o)); });
  JobRecord slow = test::queued_record(key, "sleep", {{"ms", 60000}});
  runner.start(start_of(slow, 1));
  runner.shutdown();
  runner.start(start_of(test::queued_record(key), 1));  // refused after shutdown
  std::lock_guard lock(outcomes.mu);
  CHECK(outcomes.got.empty());
}

}  // namespace meshwork
