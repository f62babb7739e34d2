// The job service on one node: run, retry with backoff, time out, cancel, recover after a crash.
#include <doctest/doctest.h>

#include <asio/executor_work_guard.hpp>

#include <atomic>
#include <thread>

#include "node/jobs.h"
#include "tests/node/test_util.h"

namespace meshwork {
namespace {

// A Jobs service over a real store in a temp dir, with its io thread.
struct Harness {
  explicit Harness(JobsOptions o = fast(), std::string dir_path = "", JobHooks hooks = {})
      : path(dir_path.empty() ? dir.str() : dir_path) {
    store = std::move(Store::open(path, {}).value());
    io_thread = std::thread([this] { io.run(); });
    jobs = std::make_unique<Jobs>(io, *store, key, "n1", o);
    jobs->set_hooks(std::move(hooks));
    REQUIRE(jobs->start().is_ok());
  }
  ~Harness() {
    jobs->stop();
    jobs.reset();
    work.reset();
    io.stop();
    io_thread.join();
  }
  static JobsOptions fast() {
    JobsOptions o;
    o.workers = 2;
    o.backoff_base_ms = 10;
    o.backoff_max_ms = 40;
    return o;
  }
  std::string submit(nlohmann::json body) {
    auto s = jobs->submit(body);
    REQUIRE(s.is_ok());
    return s.value().record.id;
  }
  // Polls until the job reaches `state` or 20 s pass.
  JobRecord wait_for(const std::string& id, JobState state) {
    for (int i = 0; i < 2000; ++i) {
      auto r = jobs->get(id);
      if (r.is_ok() && r.value().status.state == state) return r.value();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL("job " << id << " never reached " << state_name(state) << "; it is "
                << state_name(jobs->get(id).value().status.state));
    return {};
  }

  test::TempDir dir;
  std::string path;
  Identity key = Identity::generate();
  std::unique_ptr<Store> store;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread io_thread;
  std::unique_ptr<Jobs> jobs;
};

}  // namespace

TEST_CASE("an echo job succeeds with a receipt that verifies") {
  Harness h;
  std::string id = h.submit({{"type", "echo"}, {"payload", {{"hello", "mesh"}}}});
  JobRecord r = h.wait_for(id, JobState::succeeded);
  const NodeResult* fin = r.final_result();
  REQUIRE(fin != nullptr);
  CHECK(nlohmann::json::parse(fin->result)["echo"]["hello"] == "mesh");
  CHECK(fin->receipt.result_hash == blake2b_hex(fin->result));
  CHECK(verify_signature(fin->receipt.message(), from_base64(fin->receipt.signature).value(),
                         h.key.public_key()));
  CHECK(r.status.attempt == 1);
  CHECK(r.history.size() >= 3);  // submitted, attempt 1, succeeded
}

TEST_CASE("the same envelope twice is one job") {
  Harness h;
  auto env = sign_plain_job({{"type", "echo"}, {"payload", 1}}, h.key, 5, Limits{});
  auto first = h.jobs->submit(env.value().to_json());
  auto second = h.jobs->submit(env.value().to_json());
  REQUIRE(first.is_ok());
  REQUIRE(second.is_ok());
  CHECK(first.value().created);
  CHECK_FALSE(second.value().created);
  CHECK(first.value().record.id == second.value().record.id);
}

TEST_CASE("a flaky job is retried with backoff until it succeeds") {
  Harness h;
  std::string id = h.submit({{"type", "flaky"}, {"payload", {{"fail_times", 2}}}});
  JobRecord r = h.wait_for(id, JobState::succeeded);
  CHECK(r.status.attempt == 3);
  CHECK(h.jobs->stats().retried == 2);
}

TEST_CASE("a job that keeps failing ends failed with the last error after max_attempts") {
  Harness h;
  std::string id =
      h.submit({{"type", "flaky"}, {"payload", {{"fail_times", 9}}}, {"max_attempts", 2}});
  JobRecord r = h.wait_for(id, JobState::failed);
  CHECK(r.status.attempt == 2);
  CHECK_FALSE(r.status.error.empty());
}

TEST_CASE("an attempt that exceeds timeout_ms fails and is retried") {
  Harness h;
  std::string id = h.submit(
      {{"type", "sleep"}, {"payload", {{"ms", 60000}}}, {"timeout_ms", 50}, {"max_attempts", 2}});
  JobRecord r = h.wait_for(id, JobState::failed);
  CHECK(r.status.attempt == 2);
  CHECK(r.status.error.find("timed out") != std::string::npos);
}

TEST_CASE("cancel: queued at once, running cooperatively, finished refused") {
  JobsOptions o = Harness::fast();
  o.workers = 1;
  Harness h(o);
  std::string running = h.submit({{"type", "sleep"}, {"payload", {{"ms", 60000}}}});
  h.wait_for(running, JobState::running);
  std::string queued = h.submit({{"type", "echo"}, {"payload", 1}});
  auto c1 = h.jobs->cancel(queued);
  REQUIRE(c1.is_ok());
  CHECK(c1.value().status.state == JobState::cancelled);
  auto c2 = h.jobs->cancel(running);
  REQUIRE(c2.is_ok());
  JobRecord r = h.wait_for(running, JobState::cancelled);
  CHECK(r.cancel_requested);
  CHECK(h.jobs->cancel(running).status().code() == Code::conflict);
  CHECK(h.jobs->cancel(std::string(64, 'f')).status().code() == Code::not_found);
}

TEST_CASE("a job left running by a crash runs again with attempt+1; finished jobs stay finished") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  JobRecord crashed = test::queued_record(key, "echo", {{"k", 1}});
  crashed.status = JobStatus{JobState::running, 1, "n1", 2000, "", 0};
  JobRecord done = test::queued_record(key, "echo", {{"k", 2}});
  done.status = JobStatus{JobState::succeeded, 1, "n1", 2000, "", 0};
  {
    auto store = std::move(Store::open(dir.str(), {}).value());
    for (const auto& r : {crashed, done})
      REQUIRE(store->update_sync(r.id, [r](const JobRecord*) { return r; }).is_ok());
  }
  Harness h(Harness::fast(), dir.str());
  JobRecord r = h.wait_for(crashed.id, JobState::succeeded);
  CHECK(r.status.attempt == 2);
  bool noted = false;
  for (const auto& e : r.history) noted |= e.reason.find("interrupted") != std::string::npos;
  CHECK(noted);
  CHECK(h.jobs->get(done.id).value().status.attempt == 1);
}

TEST_CASE("claims a majority refuses never fail the job nor use up its attempts") {
  // The mesh refuses the first four claims (another node won them), then confirms the fifth.
  std::atomic<int> asked{0};
  JobHooks hooks;
  hooks.owns = [](const JobRecord&) { return true; };
  hooks.replicate = [](const JobRecord&) {};
  hooks.confirm_claim = [&](const JobRecord&, std::function<void(bool)> done) {
    done(++asked > 4);
  };
  Harness h(Harness::fast(), "", std::move(hooks));
  std::string id = h.submit({{"type", "echo"}, {"payload", 1}, {"max_attempts", 1}});
  JobRecord r = h.wait_for(id, JobState::succeeded);
  CHECK(r.status.attempt == 5);
  CHECK(asked.load() == 5);
  int lost = 0;
  for (const HistoryEntry& e : r.history) {
    CHECK(e.state != JobState::failed);
    if (e.reason.find("not confirmed by a majority") != std::string::npos) ++lost;
  }
  CHECK(lost == 4);
}

TEST_CASE("a handler failure after lost claims still gets its max_attempts") {
  std::atomic<int> asked{0};
  JobHooks hooks;
  hooks.owns = [](const JobRecord&) { return true; };
  hooks.replicate = [](const JobRecord&) {};
  hooks.confirm_claim = [&](const JobRecord&, std::function<void(bool)> done) {
    done(++asked > 2);
  };
  Harness h(Harness::fast(), "", std::move(hooks));
  // flaky fails on attempt numbers 1..3: attempts 1 and 2 are lost claims, 3 runs and fails,
  // 4 succeeds. With max_attempts 2 that needs both counted attempts (3 and 4).
  std::string id =
      h.submit({{"type", "flaky"}, {"payload", {{"fail_times", 3}}}, {"max_attempts", 2}});
  JobRecord r = h.wait_for(id, JobState::succeeded);
  CHECK(r.status.attempt == 4);
}

TEST_CASE("signed-only nodes refuse plain jobs; allowed keys restrict signers") {
  JobsOptions o = Harness::fast();
  const Identity allowed = Identity::generate(), stranger = Identity::generate();
  o.allowed_keys = std::set<std::string>{allowed.public_key()};
  Harness h(o);
  CHECK(h.jobs->submit({{"type", "echo"}}).status().code() == Code::unauthorized);
  auto ok = sign_plain_job({{"type", "echo"}}, allowed, 1, Limits{});
  CHECK(h.jobs->submit(ok.value().to_json()).is_ok());
  auto bad = sign_plain_job({{"type", "echo"}}, stranger, 1, Limits{});
  CHECK(h.jobs->submit(bad.value().to_json()).status().code() == Code::forbidden);
}

TEST_CASE("a full backlog answers overloaded and stores nothing") {
  JobsOptions o = Harness::fast();
  o.workers = 1;
  o.backlog_max = 2;
  Harness h(o);
  std::string blocker = h.submit({{"type", "sleep"}, {"payload", {{"ms", 60000}}}});
  h.wait_for(blocker, JobState::running);
  h.submit({{"type", "echo"}, {"payload", 1}});
  h.submit({{"type", "echo"}, {"payload", 2}});
  auto refused = h.jobs->submit({{"type", "echo"}, {"payload", 3}});
  CHECK(refused.status().code() == Code::overloaded);
  CHECK(h.store->counts()[size_t(JobState::queued)] == 2);
}

}  // namespace meshwork
