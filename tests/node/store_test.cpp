// The store: group commit of the core's persists, durable reports in order, hints, listing,
// counts, corruption, and data dirs from before the binary record form.
#include <doctest/doctest.h>

#include <leveldb/db.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "node/store.h"
#include "tests/node/test_util.h"

namespace meshwork {
namespace {

// A store with its writer started, recording every durable() report; put() and hint() play the
// loop thread, numbering persists from 1.
struct Written {
  explicit Written(test::TempDir& dir, StoreOptions o = {})
      : store(std::move(Store::open(dir.str(), o).value())) {
    store->start_writer([this](uint64_t up_to, const Status& s) {
      std::lock_guard lock(mu);
      CHECK(s.is_ok());
      CHECK(up_to > durable);  // increasing, one report per group
      durable = up_to;
      reports++;
      cv.notify_all();
    });
  }
  ~Written() { store->stop(); }

  Persist record(const JobRecord& r) {
    Persist p;
    p.seq = ++seq;
    p.kind = Persist::Kind::record;
    p.record = SharedRecord::of(r);
    p.id = r.id;
    return p;
  }
  void put(const JobRecord& r) {
    std::vector<Persist> v;
    v.push_back(record(r));
    store->write(std::move(v));
  }
  void hint(Persist::Kind kind, const std::string& target, const std::string& id) {
    Persist p;
    p.seq = ++seq;
    p.kind = kind;
    p.target = target;
    p.id = id;
    std::vector<Persist> v;
    v.push_back(std::move(p));
    store->write(std::move(v));
  }
  void wait_durable() {
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return durable == seq; }));
  }

  std::unique_ptr<Store> store;
  uint64_t seq = 0;
  std::mutex mu;
  std::condition_variable cv;
  uint64_t durable = 0, reports = 0;
};

}  // namespace

TEST_CASE("persists are written in fsync'd groups, reported in order, and survive a reopen") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  std::vector<JobRecord> records;
  {
    Written w(dir);
    // Many persists queued at once: they share groups.
    std::vector<Persist> burst;
    for (int i = 0; i < 600; ++i) {
      records.push_back(test::queued_record(key, "echo", {{"i", i}}, 1000 + uint64_t(i)));
      burst.push_back(w.record(records.back()));
    }
    w.store->write(std::move(burst));
    // A later version of the first record replaces it, and is counted once.
    JobRecord running = records.front();
    running.status.state = JobState::running;
    running.status.attempt = 1;
    w.put(running);
    CHECK(w.store->counts()[size_t(JobState::running)] == 1);  // counted when queued
    w.wait_durable();
    CHECK(w.store->persists_written() == 601);
    CHECK(w.store->batches_written() < 601);
    CHECK(w.reports == w.store->batches_written());
    CHECK(w.store->syncs() == w.store->batches_written());  // one fsync per group
    MESSAGE("groups: " << w.store->batches_written() << " for 601 persists");
    auto got = w.store->read(running.id);
    REQUIRE(got.has_value());
    CHECK(got->status.state == JobState::running);
  }
  auto reopened = std::move(Store::open(dir.str(), {}).value());
  CHECK(reopened->counts()[size_t(JobState::queued)] == 599);
  CHECK(reopened->counts()[size_t(JobState::running)] == 1);
  size_t scanned = 0;
  REQUIRE(reopened
              ->scan([&](JobRecord&& r, std::string_view encoded) {
                ++scanned;
                CHECK(encoded == encode_record(r));
              })
              .is_ok());
  CHECK(scanned == 600);
  auto listed = reopened->list(nullptr, 1'000, "");
  CHECK(listed.value().records.size() == 600);  // one listing key per record
}

TEST_CASE(
    "with a sync interval, groups are reported once written and synced at most per interval") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  const JobRecord a = test::queued_record(key, "echo", {{"p", 1}});
  const JobRecord b = test::queued_record(key, "echo", {{"p", 2}});
  const JobRecord c = test::queued_record(key, "echo", {{"p", 3}});
  std::atomic<uint64_t> observed{0};
  const auto poll = [](const std::function<bool()>& done) {
    for (int i = 0; i < 400 && !done(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return done();
  };
  {
    // Long enough that the next steps run well inside one interval on a loaded machine.
    Written w(dir,
              StoreOptions{.sync_interval_ms = 4'000, .observe_sync = [&](double) { observed++; }});
    w.put(a);
    w.wait_durable();
    // The first group after a quiet spell is synced at once: its interval has long run out.
    REQUIRE(poll([&] { return w.store->syncs() == 1; }));
    w.put(b);
    w.wait_durable();
    // Reported, and readable, before any sync covers it.
    CHECK(w.store->syncs() == 1);
    CHECK(w.store->read(b.id).has_value());
    // With nothing more written, the interval's sync still comes.
    CHECK(poll([&] { return w.store->syncs() == 2; }));
    CHECK(w.store->batches_written() == 2);
    w.put(c);
    w.wait_durable();
    CHECK(w.store->syncs() == 2);
  }  // stop(): the last group is synced before the writer returns
  CHECK(observed.load() == 3);
  auto reopened = std::move(Store::open(dir.str(), {}).value());
  for (const JobRecord* r : {&a, &b, &c}) CHECK(reopened->read(r->id).has_value());
}

TEST_CASE("wait_written returns once everything queued before it is readable") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  Written w(dir);
  std::vector<JobRecord> records;
  std::vector<Persist> burst;
  for (int i = 0; i < 300; ++i) {
    records.push_back(test::queued_record(key, "echo", {{"w", i}}));
    burst.push_back(w.record(records.back()));
  }
  w.store->write(std::move(burst));
  w.store->wait_written(10'000);
  for (const JobRecord& r : records) CHECK(w.store->read(r.id).has_value());
}

TEST_CASE("hints are put and dropped with the records, and listed at boot") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  JobRecord a = test::queued_record(key, "echo", {{"a", 1}}), b = test::queued_record(key);
  {
    Written w(dir);
    w.put(a);
    w.hint(Persist::Kind::hint_put, "n2", a.id);
    w.hint(Persist::Kind::hint_put, "n3", a.id);
    w.hint(Persist::Kind::hint_put, "n3", b.id);
    w.hint(Persist::Kind::hint_drop, "n3", a.id);
    w.wait_durable();
  }
  auto store = std::move(Store::open(dir.str(), {}).value());
  std::set<std::pair<std::string, std::string>> hints;
  REQUIRE(store
              ->scan_hints([&](const std::string& target, const std::string& id) {
                hints.emplace(target, id);
              })
              .is_ok());
  CHECK(hints == std::set<std::pair<std::string, std::string>>{{"n2", a.id}, {"n3", b.id}});
}

TEST_CASE("an erase removes the record and its listing, keeps a tombstone across a reopen") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  JobRecord a = test::queued_record(key, "echo", {{"a", 1}}, 1'000);
  JobRecord b = test::queued_record(key, "echo", {{"b", 2}}, 2'000);
  JobRecord c = test::queued_record(key, "echo", {{"c", 3}}, 3'000);
  const auto removal = [](Written& w, Persist::Kind kind, const JobRecord& r, uint64_t at_ms) {
    Persist p;
    p.seq = ++w.seq;
    p.kind = kind;
    p.id = r.id;
    p.at_ms = at_ms;
    p.created_at_ms = r.created_at_ms;
    std::vector<Persist> v;
    v.push_back(std::move(p));
    w.store->write(std::move(v));
  };
  {
    Written w(dir);
    w.put(a);
    w.put(b);
    w.put(c);
    w.hint(Persist::Kind::hint_put, "n2", a.id);
    w.hint(Persist::Kind::hint_drop, "n2", a.id);  // the core drops a removed job's hints first
    removal(w, Persist::Kind::erase, a, 42);
    removal(w, Persist::Kind::drop, b, 0);  // a stand-in copy: no tombstone
    removal(w, Persist::Kind::erase, c, 43);
    removal(w, Persist::Kind::tombstone_drop, c, 0);  // its tombstone expired
    CHECK(w.store->counts()[size_t(JobState::queued)] == 0);
    w.wait_durable();
    CHECK_FALSE(w.store->read(a.id));
  }
  auto store = std::move(Store::open(dir.str(), {}).value());
  CHECK_FALSE(store->read(a.id));
  CHECK_FALSE(store->read(b.id));
  CHECK(store->counts()[size_t(JobState::queued)] == 0);
  CHECK(store->list(nullptr, 100, "").value().records.empty());
  size_t records = 0;
  REQUIRE(store->scan([&](JobRecord&&, std::string_view) { ++records; }).is_ok());
  CHECK(records == 0);
  std::map<std::string, uint64_t> tombstones;
  REQUIRE(store->scan_tombstones([&](const std::string& id, uint64_t at) { tombstones[id] = at; })
              .is_ok());
  CHECK(tombstones == std::map<std::string, uint64_t>{{a.id, 42}});
}

TEST_CASE("list pages newest first and filters") {
  test::TempDir dir;
  const Identity key = Identity::generate();
  Written w(dir);
  auto& store = w.store;
  for (int i = 0; i < 25; ++i)
    w.put(test::queued_record(key, i % 2 ? "echo" : "sleep",
                              i % 2 ? nlohmann::json{{"i", i}} : nlohmann::json{{"ms", i}},
                              1000 + uint64_t(i)));
  w.wait_durable();
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
    Written w(dir);
    w.put(good);
    w.wait_durable();
  }
  {
    leveldb::DB* raw = nullptr;
    leveldb::Options o;
    REQUIRE(leveldb::DB::Open(o, dir.str(), &raw).ok());
    REQUIRE(
        raw->Put(leveldb::WriteOptions(), "j/" + std::string(64, 'a'), "{\"v\":1,\"id\":").ok());
    delete raw;
  }
  auto store = std::move(Store::open(dir.str(), {}).value());
  CHECK(store->corrupt_records() == 1);
  CHECK(store->get(std::string(64, 'a')).status().code() == Code::corruption);
  CHECK(store->get(good.id).value().has_value());
  CHECK_FALSE(store->read(std::string(64, 'a')).has_value());
  const uint64_t counted = store->corrupt_records();
  size_t scanned = 0;
  REQUIRE(store->scan([&](JobRecord&&, std::string_view) { ++scanned; }).is_ok());
  CHECK(scanned == 1);
  CHECK(store->corrupt_records() == counted);  // the boot scan does not count it again
}

TEST_CASE("a data dir written with JSON records still loads, in the binary form") {
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
    Written w(dir);
    CHECK(w.store->corrupt_records() == 0);
    CHECK(w.store->counts()[size_t(JobState::queued)] == 1);
    auto got = w.store->get(old.id);
    REQUIRE(got.is_ok());
    REQUIRE(got.value().has_value());
    CHECK(same_state(*got.value(), old));
    REQUIRE(w.store
                ->scan([&](JobRecord&& r, std::string_view encoded) {
                  CHECK(encoded == encode_record(r));  // handed on in the binary form
                })
                .is_ok());
    JobRecord running = old;
    running.status.state = JobState::running;
    running.status.attempt = 1;
    w.put(running);
    w.wait_durable();
  }
  leveldb::DB* raw = nullptr;
  REQUIRE(leveldb::DB::Open(leveldb::Options(), dir.str(), &raw).ok());
  std::string bytes;
  REQUIRE(raw->Get(leveldb::ReadOptions(), "j/" + old.id, &bytes).ok());
  delete raw;
  CHECK(static_cast<uint8_t>(bytes.front()) == 5);
  auto back = decode_record(bytes);
  REQUIRE(back.is_ok());
  CHECK(back.value().status.state == JobState::running);
}

TEST_CASE("idempotency entries expire oldest first, and one written again is kept") {
  test::TempDir dir;
  auto store = std::move(Store::open(dir.str(), {}).value());
  REQUIRE(store->put_idempotency("aa", "old-a", 1'000).is_ok());
  REQUIRE(store->put_idempotency("bb", "old-b", 2'000).is_ok());
  REQUIRE(store->put_idempotency("cc", "new-c", 9'000).is_ok());
  REQUIRE(store->put_idempotency("aa", "new-a", 8'000).is_ok());  // the same key, a later window
  std::vector<std::string> asked;
  const size_t gone = store->expire_idempotency(5'000, [&](std::string_view v) {
    asked.emplace_back(v);
    return v.starts_with("old");
  });
  CHECK(gone == 1);  // bb; aa's current entry is new and stays
  CHECK(asked == std::vector<std::string>{"new-a", "old-b"});  // only entries written before 5 s
  CHECK(store->get_idempotency("aa").value() == std::optional<std::string>("new-a"));
  CHECK(!store->get_idempotency("bb").value());
  CHECK(store->get_idempotency("cc").value() == std::optional<std::string>("new-c"));
  // The stale order key of aa's first entry went with the sweep: a later one asks about it once.
  asked.clear();
  CHECK(store->expire_idempotency(8'500, [&](std::string_view v) {
    asked.emplace_back(v);
    return true;
  }) == 1);
  CHECK(asked == std::vector<std::string>{"new-a"});
  CHECK(!store->get_idempotency("aa").value());
  CHECK(store->get_idempotency("cc").value() == std::optional<std::string>("new-c"));
}

}  // namespace meshwork
