// ReplicaDriver: the replica core on a real loop, store and executor, as a mesh of one — a submit
// is answered once durable, the handler runs and its outcome is recorded, a timeout reaches the
// handler as a timed-out stop, a restart recovers everything, waiting requests are answered
// when the node stops, and a member's record with a forged receipt is refused and counted.
#include <doctest/doctest.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <future>
#include <set>
#include <thread>

#include "dht/receipt.h"
#include "node/admission.h"
#include "node/job_runner.h"
#include "node/receipt_check.h"
#include "node/replica_driver.h"
#include "tests/node/test_util.h"

namespace meshwork {
namespace {

// One node: loop thread, store, peer transport (no peers) and driver, booted from
// `dir`.
struct OneNode {
  explicit OneNode(test::TempDir& dir, const Identity& node_key, ReceiptChecker check = {},
                   size_t workers = 2, uint64_t receipt_linger_ms = kReceiptLingerMsDefault)
      : key(node_key), admission(node_key, "n1", {}) {
    store = std::move(Store::open(dir.str(), {}).value());
    loop = std::thread([this] { io.run(); });
    transport = std::make_unique<PeerTransport>(
        io, key, "n1", TransportOptions{},
        [](std::string_view) -> std::optional<std::string> { return std::nullopt; },
        [](const std::string&, std::vector<Message>&&) {});
    ReplicaConfig rc;
    rc.workers = static_cast<uint32_t>(workers);
    rc.backoff_base_ms = 10;
    rc.backoff_max_ms = 40;
    rc.receipt_check = std::move(check);
    driver =
        std::make_unique<ReplicaDriver>(io, "n1", rc, *store, *transport, key,
                                        [this](const JobRecord& r) { return admission.check(r); });
    driver->set_receipt_linger_ms(receipt_linger_ms);
    REQUIRE(driver->boot().is_ok());
  }
  ~OneNode() {
    driver->stop();
    transport->stop();
    work.reset();
    io.stop();
    loop.join();
    store->stop();
  }

  ItemResult submit(const nlohmann::json& body) {
    auto rec = admission.admit(body);
    REQUIRE(rec.is_ok());
    std::vector<JobRecord> one;
    one.push_back(std::move(rec).value());
    auto items = driver->submit(std::move(one));
    REQUIRE(items.is_ok());
    REQUIRE(items.value().size() == 1);
    return std::move(items.value().front());
  }
  // Reads through the core until the job reaches `state` or 20 s pass.
  JobRecord wait_for(const std::string& id, JobState state) {
    std::optional<JobRecord> last;
    for (int i = 0; i < 2000; ++i) {
      auto r = driver->read(id);
      if (r.is_ok() && r.value().status.is_ok() && r.value().record) {
        last = r.value().record;
        if (last->status.state == state) return *last;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL("job " << id << " never reached " << state_name(state) << "; it is "
                << (last ? state_name(last->status.state) : "unknown"));
    return {};
  }

  const Identity& key;
  Admission admission;
  std::unique_ptr<Store> store;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread loop;
  std::unique_ptr<PeerTransport> transport;
  std::unique_ptr<ReplicaDriver> driver;
};

// Admits a plain job per payload, of `type`, signed by the node's key.
std::vector<JobRecord> admit_all(OneNode& n, const std::string& type,
                                 const std::vector<nlohmann::json>& payloads) {
  std::vector<JobRecord> jobs;
  for (const nlohmann::json& p : payloads) {
    auto rec = n.admission.admit(
        sign_plain_job({{"type", type}, {"payload", p}}, n.key, 5, Limits{}).value().to_json());
    REQUIRE(rec.is_ok());
    jobs.push_back(std::move(rec).value());
  }
  return jobs;
}

// Waits until every job succeeded with a valid receipt; the distinct roots and signatures.
std::pair<std::set<std::string>, std::set<std::string>> receipts_of(
    OneNode& n, const std::vector<JobRecord>& jobs) {
  std::set<std::string> roots, signatures;
  for (const JobRecord& j : jobs) {
    const JobRecord done = n.wait_for(j.id, JobState::succeeded);
    const NodeResult* fin = done.final_result();
    REQUIRE(fin != nullptr);
    CHECK(check_result(j.id, *fin, n.key.public_key_b64()).check == ReceiptCheck::valid);
    roots.insert(fin->receipt.root);
    signatures.insert(fin->receipt.signature);
  }
  return {roots, signatures};
}

}  // namespace

TEST_CASE("outcomes that reach the loop together are signed together: one signature") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  OneNode n(dir, key);
  // As many jobs as the node has workers, so both start at once; long enough that the loop is
  // held (below) well before either ends, even on a loaded machine or under ASan.
  const std::vector<JobRecord> jobs = admit_all(n, "sleep", {{{"ms", 2'000}}, {{"ms", 2'001}}});
  auto items = n.driver->submit(jobs);  // durable, then started on the workers
  REQUIRE(items.is_ok());
  for (const JobRecord& j : jobs) (void)n.wait_for(j.id, JobState::running);
  // Hold the loop from now until both workers have finished (at ~2 s): their outcomes queue up
  // for one signing post, which runs once the loop is free.
  asio::post(n.io, [] { std::this_thread::sleep_for(std::chrono::milliseconds(5'000)); });
  const auto [roots, signatures] = receipts_of(n, jobs);
  CHECK(roots.size() == 1);
  CHECK(signatures.size() == 1);
  CHECK(n.driver->signed_batches() == 1);
}

TEST_CASE("outcomes within one receipt linger share a signature while the worker goes on") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  // One worker and the longest linger: the first outcome is signed at once; the other four jobs
  // run on the freed worker during the linger that follows and share the next signature. Were
  // the worker held until its outcome is signed, each job would wait a linger: five signatures.
  OneNode n(dir, key, {}, /*workers=*/1, kReceiptLingerMsMax);
  const std::vector<JobRecord> jobs =
      admit_all(n, "echo", {{{"n", 0}}, {{"n", 1}}, {{"n", 2}}, {{"n", 3}}, {{"n", 4}}});
  auto items = n.driver->submit(jobs);
  REQUIRE(items.is_ok());
  const auto [roots, signatures] = receipts_of(n, jobs);
  // 2 unless the machine stalled the loop for a whole second between two jobs.
  CHECK(n.driver->signed_batches() <= 3);
  CHECK(roots.size() == n.driver->signed_batches());
}

TEST_CASE("a submitted job is stored, run and recorded with a receipt") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  OneNode n(dir, key);
  auto env = sign_plain_job({{"type", "echo"}, {"payload", {{"hello", "mesh"}}}}, key, 5, Limits{});
  ItemResult first = n.submit(env.value().to_json());
  REQUIRE(first.status.is_ok());
  CHECK(first.created);
  REQUIRE(first.record);
  const std::string id = first.record->id;
  CHECK(n.store->read(id).has_value());  // acknowledged means durable
  JobRecord done = n.wait_for(id, JobState::succeeded);
  const NodeResult* fin = done.final_result();
  REQUIRE(fin != nullptr);
  CHECK(nlohmann::json::parse(fin->result)["echo"]["hello"] == "mesh");
  CHECK(check_result(id, *fin, key.public_key_b64()).check == ReceiptCheck::valid);
  CHECK_FALSE(fin->receipt.root.empty());  // signed in a batch, here a batch of one or more
  ItemResult again = n.submit(env.value().to_json());
  REQUIRE(again.status.is_ok());
  CHECK_FALSE(again.created);
  const ReplicaSnapshot s = n.driver->snapshot();
  CHECK(s.ready);
  CHECK(s.stats.submitted == 1);
  CHECK(s.stats.duplicates == 1);
  CHECK(s.stats.succeeded == 1);
  REQUIRE(s.placement);
  CHECK(s.placement->owner(id) == "n1");
}

TEST_CASE("a handler past its timeout is stopped and the attempt fails as timed out") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  OneNode n(dir, key);
  ItemResult r = n.submit(
      {{"type", "sleep"}, {"payload", {{"ms", 60000}}}, {"timeout_ms", 50}, {"max_attempts", 1}});
  REQUIRE(r.status.is_ok());
  JobRecord failed = n.wait_for(r.record->id, JobState::failed);
  CHECK(failed.status.error.find("timed out after 50 ms") != std::string::npos);
}

TEST_CASE("cancel reaches a running handler; unknown jobs are not found") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  OneNode n(dir, key);
  ItemResult r = n.submit({{"type", "sleep"}, {"payload", {{"ms", 60000}}}});
  REQUIRE(r.status.is_ok());
  n.wait_for(r.record->id, JobState::running);
  auto c = n.driver->cancel(r.record->id);
  REQUIRE(c.is_ok());
  CHECK(c.value().status.is_ok());
  n.wait_for(r.record->id, JobState::cancelled);
  auto unknown = n.driver->read(std::string(64, 'a'));
  REQUIRE(unknown.is_ok());
  CHECK((unknown.value().status.code() == Code::not_found || !unknown.value().record));
}

TEST_CASE("a restart on the same data dir recovers every job and runs what was left") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  std::string done_id, left_id;
  {
    OneNode n(dir, key);
    done_id = n.submit({{"type", "echo"}, {"payload", 1}}).record->id;
    n.wait_for(done_id, JobState::succeeded);
    left_id = n.submit({{"type", "sleep"}, {"payload", {{"ms", 300}}}}).record->id;
    n.wait_for(left_id, JobState::running);
  }  // stopped mid-run: the attempt stays running on disk
  OneNode n(dir, key);
  CHECK(n.wait_for(done_id, JobState::succeeded).status.attempt == 1);
  JobRecord rerun = n.wait_for(left_id, JobState::succeeded);
  CHECK(rerun.status.attempt == 2);
}

TEST_CASE("a member's record with a forged receipt is refused and counted; the node goes on") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  const Identity n2 = Identity::generate();
  OneNode n(dir, key, receipt_checker([&](const std::string& node) -> std::optional<std::string> {
              if (node == "n1") return key.public_key();
              if (node == "n2") return n2.public_key();
              return std::nullopt;
            }));
  ItemResult first = n.submit({{"type", "echo"}, {"payload", {{"n", 1}}}});
  REQUIRE(first.status.is_ok());
  JobRecord done = n.wait_for(first.record->id, JobState::succeeded);

  // n2 sends the job back with a result of its own whose receipt vouches for another result.
  JobRecord forged = done;
  forged.results["n2"] = JobRunner::sign_result(n2, "n2", done.id, 1,
                                                HandlerOutcome::success({{"echo", {{"n", 1}}}}), 1);
  forged.results["n2"].result = R"({"echo":{"n":2}})";
  Replicate m;
  m.corr = 9;
  m.records.push_back(SharedRecord::of(forged));
  std::vector<Message> messages;
  messages.emplace_back(std::move(m));
  std::promise<void> received;
  asio::post(n.io, [&] {
    n.driver->receive("n2", std::move(messages));
    received.set_value();
  });
  received.get_future().wait();

  CHECK_FALSE(n.wait_for(done.id, JobState::succeeded).results.contains("n2"));
  ReplicaSnapshot s = n.driver->snapshot();
  CHECK(s.stats.receipts_refused == 1);
  CHECK(s.stats.receipts_forged == 1);
  REQUIRE(s.reputation);
  CHECK(s.reputation->counts("n2").forged == 1);
  CHECK_FALSE(s.reputation->trusted("n2"));
  // The node goes on: its own results pass its own check.
  ItemResult second = n.submit({{"type", "echo"}, {"payload", {{"n", 2}}}});
  REQUIRE(second.status.is_ok());
  n.wait_for(second.record->id, JobState::succeeded);
  CHECK(n.driver->snapshot().stats.receipts_refused == 1);
}

}  // namespace meshwork
