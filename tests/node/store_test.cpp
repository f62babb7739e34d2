// The store: group commit, atomic read-modify-write, listing, recovery of counts, corruption.
#include <doctest/doctest.h>

#include <leveldb/db.h>

#include <thread>

#include "node/store.h"
#include "tests/node/test_util.h"

namespace meshwork {

TEST_CASE("concurrent writers share fsync'd batches, and everything survives a reopen") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  constexpr int kThreads = 16, kPerThread = 40;
  std::vector<std::string> ids(kThreads * kPerThread);
  {
    auto store = Store::open(dir.str(), {});
    REQUIRE(store.is_ok());
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          JobRecord r = test::queued_record(key, "echo", {{"t", t}, {"i", i}}, 1000 + uint64_t(i));
          ids[size_t(t * kPerThread + i)] = r.id;
          std::string id = r.id;
          auto a = store.value()->update_sync(id, [r](const JobRecord*) { return r; });
          REQUIRE(a.is_ok());
        }
      });
    for (auto& th : threads) th.join();
    CHECK(store.value()->updates_written() == kThreads * kPerThread);
    // Group commit: fewer fsync'd batches than updates.
    CHECK(store.value()->batches_written() < store.value()->updates_written());
    MESSAGE("batches: " << store.value()->batches_written() << " for "
                        << store.value()->updates_written() << " updates");
  }
  auto reopened = Store::open(dir.str(), {});
  REQUIRE(reopened.is_ok());
  for (const auto& id : ids) {
    auto r = reopened.value()->get(id);
    REQUIRE(r.is_ok());
    CHECK(r.value().has_value());
  }
  CHECK(reopened.value()->counts()[size_t(JobState::queued)] == ids.size());
}

TEST_CASE("updates are atomic per record; merge keeps the greater state") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  auto store = std::move(Store::open(dir.str(), {}).value());
  JobRecord r = test::queued_record(key);
  REQUIRE(store->update_sync(r.id, [&](const JobRecord*) { return r; }).is_ok());
  // 8 threads each increment a counter held in the status attempt 25 times.
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i)
        REQUIRE(store->update_sync(r.id, [](const JobRecord* cur) {
                       JobRecord n = *cur;
                       n.status.attempt++;
                       return std::optional<JobRecord>(n);
                     }).is_ok());
    });
  for (auto& th : threads) th.join();
  CHECK(store->get(r.id).value()->status.attempt == 200);

  JobRecord older = r;  // attempt 0: merging it changes nothing
  std::promise<Applied> p;
  store->merge(older, [&](Status s, Applied a) {
    CHECK(s.is_ok());
    p.set_value(std::move(a));
  });
  Applied a = p.get_future().get();
  CHECK_FALSE(a.changed);
  CHECK(a.after->status.attempt == 200);
}

TEST_CASE("list pages newest first and filters") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  auto store = std::move(Store::open(dir.str(), {}).value());
  for (int i = 0; i < 25; ++i) {
    JobRecord r = test::queued_record(key, i % 2 ? "echo" : "sleep",
                                      i % 2 ? nlohmann::json{{"i", i}} : nlohmann::json{{"ms", i}},
                                      1000 + uint64_t(i));
    REQUIRE(store->update_sync(r.id, [r](const JobRecord*) { return r; }).is_ok());
  }
  std::vector<uint64_t> seen;
  std::string cursor;
  do {
    auto page = store->list(nullptr, 10, cursor);
    REQUIRE(page.is_ok());
    for (const auto& r : page.value().records) seen.push_back(r.created_at_ms);
    cursor = page.value().next_cursor;
  } while (!cursor.empty());
  REQUIRE(seen.size() == 25);
  CHECK(std::is_sorted(seen.rbegin(), seen.rend()));
  CHECK(seen.front() == 1024);
  auto echoes = store->list([](const JobRecord& r) { return r.type == "echo"; }, 100, "");
  CHECK(echoes.value().records.size() == 12);
  auto bounded = store->list([](const JobRecord&) { return false; }, 100, "", 5);
  CHECK(bounded.value().records.empty());
  CHECK_FALSE(bounded.value().next_cursor.empty());  // scan budget spent: continue from here
}

TEST_CASE("a corrupt record on disk is reported, counted and skipped, never returned") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  JobRecord good = test::queued_record(key);
  {
    auto store = std::move(Store::open(dir.str(), {}).value());
    REQUIRE(store->update_sync(good.id, [&](const JobRecord*) { return good; }).is_ok());
  }
  {
    leveldb::DB* raw = nullptr;
    leveldb::Options o;
    REQUIRE(leveldb::DB::Open(o, dir.str(), &raw).ok());
    REQUIRE(raw->Put(leveldb::WriteOptions(), "j/" + std::string(64, 'a'), "{\"v\":1,\"id\":").ok());
    delete raw;
  }
  auto store = std::move(Store::open(dir.str(), {}).value());
  CHECK(store->corrupt_records() == 1);
  CHECK(store->get(std::string(64, 'a')).status().code() == Code::corruption);
  CHECK(store->get(good.id).value().has_value());
}

TEST_CASE("a data dir written with JSON records still loads, and updates rewrite them in binary") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  JobRecord old = test::queued_record(key);
  {
    leveldb::DB* raw = nullptr;
    leveldb::Options o;
    o.create_if_missing = true;
    REQUIRE(leveldb::DB::Open(o, dir.str(), &raw).ok());
    REQUIRE(raw->Put(leveldb::WriteOptions(), "j/" + old.id, record_to_json(old).dump()).ok());
    delete raw;
  }
  {
    auto store = std::move(Store::open(dir.str(), {}).value());
    CHECK(store->corrupt_records() == 0);
    CHECK(store->counts()[size_t(JobState::queued)] == 1);
    auto got = store->get(old.id);
    REQUIRE(got.is_ok());
    REQUIRE(got.value().has_value());
    CHECK(same_state(*got.value(), old));
    JobRecord running = old;
    running.status.state = JobState::running;
    running.status.attempt = 1;
    REQUIRE(store->update_sync(old.id, [&](const JobRecord*) { return running; }).is_ok());
  }
  leveldb::DB* raw = nullptr;
  REQUIRE(leveldb::DB::Open(leveldb::Options(), dir.str(), &raw).ok());
  std::string bytes;
  REQUIRE(raw->Get(leveldb::ReadOptions(), "j/" + old.id, &bytes).ok());
  delete raw;
  CHECK(static_cast<uint8_t>(bytes.front()) == 2);
  auto back = decode_record(bytes);
  REQUIRE(back.is_ok());
  CHECK(back.value().status.state == JobState::running);
}

}  // namespace meshwork
