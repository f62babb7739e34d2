// The durable job store; see store.h.
#include "node/store.h"

#include <leveldb/cache.h>
#include <leveldb/db.h>
#include <leveldb/filter_policy.h>
#include <leveldb/write_batch.h>

#include <cassert>
#include <cstdio>
#include <unordered_map>

namespace meshwork {
namespace {

constexpr std::string_view kRecordPrefix = "j/";
constexpr std::string_view kCreatedPrefix = "c/";
constexpr std::string_view kHintPrefix = "h/";
constexpr size_t kCacheBytes = 32 << 20;
constexpr size_t kHotRecordsMax = 8'192;

std::string record_key(std::string_view id) {
  return std::string(kRecordPrefix) + std::string(id);
}

std::string created_suffix(const JobRecord& r) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(r.created_at_ms));
  return std::string(buf) + "/" + r.id;
}

Status from_leveldb(const leveldb::Status& s) {
  if (s.ok()) return Status::ok();
  return {s.IsCorruption() ? Code::corruption : Code::io_error, "leveldb: " + s.ToString()};
}

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const std::string& dir, StoreOptions options) {
  std::unique_ptr<Store> store(new Store());
  store->options_ = options;
  store->cache_.reset(leveldb::NewLRUCache(kCacheBytes));
  store->filter_.reset(leveldb::NewBloomFilterPolicy(10));
  leveldb::Options lo;
  lo.create_if_missing = true;
  lo.paranoid_checks = true;
  lo.block_cache = store->cache_.get();
  lo.filter_policy = store->filter_.get();
  lo.write_buffer_size = 16 << 20;
  leveldb::DB* db = nullptr;
  if (Status s = from_leveldb(leveldb::DB::Open(lo, dir, &db)); !s.is_ok()) return s;
  store->db_.reset(db);
  Status scanned = store->scan([&](JobRecord&& r) { store->counts_[size_t(r.status.state)]++; });
  if (!scanned.is_ok()) return scanned;
  store->batch_ = std::make_unique<leveldb::WriteBatch>();
  store->writer_ = std::thread([s = store.get()] { s->writer_loop(); });
  return store;
}

Store::~Store() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  db_.reset();  // before the cache and filter it points at
}

void Store::update(std::string id, UpdateFn fn, DoneFn done) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_ && queue_.size() < options_.queue_max) {
      queue_.push_back(Op{std::move(id), std::move(fn), std::move(done)});
      cv_.notify_one();
      return;
    }
  }
  done(Status(Code::overloaded, "the store's write queue is full"), Applied{});
}

Result<Applied> Store::update_sync(std::string id, UpdateFn fn) {
  std::promise<Result<Applied>> p;
  auto f = p.get_future();
  update(std::move(id), std::move(fn), [&p](Status s, Applied a) {
    p.set_value(s.is_ok() ? Result<Applied>(std::move(a)) : Result<Applied>(s));
  });
  return f.get();
}

void Store::flush() {
  // Updates apply in FIFO order, so a no-op queued now completes after everything before it.
  (void)update_sync("", [](const JobRecord*) { return std::optional<JobRecord>(); });
}

void Store::merge(JobRecord rec, DoneFn done) {
  std::string id = rec.id;
  update(
      std::move(id),
      [rec = std::move(rec)](const JobRecord* cur) -> std::optional<JobRecord> {
        if (cur == nullptr) return rec;
        JobRecord merged = meshwork::merge(*cur, rec);
        if (same_state(merged, *cur)) return std::nullopt;
        return merged;
      },
      std::move(done));
}

void Store::writer_loop() {
  std::vector<Op> ops;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      const size_t n = std::min(queue_.size(), options_.batch_max);
      ops.assign(std::make_move_iterator(queue_.begin()),
                 std::make_move_iterator(queue_.begin() + static_cast<long>(n)));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<long>(n));
    }
    apply_batch(ops);
    ops.clear();
  }
}

void Store::apply_batch(std::vector<Op>& ops) {
  leveldb::WriteBatch& batch = *batch_;
  batch.Clear();
  std::unordered_map<std::string, std::optional<JobRecord>> staged;
  std::vector<std::pair<Status, Applied>> outcomes;
  outcomes.reserve(ops.size());
  size_t changes = 0;
  std::vector<std::pair<size_t, std::string>> observed;  // (index into outcomes, stored bytes)
  for (Op& op : ops) {
    auto it = staged.find(op.id);
    if (it == staged.end()) {
      auto read = read_for_update(op.id);
      if (!read.is_ok()) {
        outcomes.emplace_back(read.status(), Applied{});
        continue;
      }
      it = staged.emplace(op.id, std::move(read.value())).first;
    }
    Applied applied;
    applied.before = it->second;
    std::optional<JobRecord> next = op.fn(it->second ? &*it->second : nullptr);
    if (!next) {
      applied.after = it->second;
    } else {
      assert(next->id == op.id);
      std::string encoded = encode_record(*next);
      batch.Put(record_key(op.id), encoded);
      if (!it->second) batch.Put(std::string(kCreatedPrefix) + created_suffix(*next), "");
      count(it->second, *next);
      remember(*next);
      it->second = next;
      applied.after = std::move(next);
      applied.changed = true;
      ++changes;
      if (observer_) observed.emplace_back(outcomes.size(), std::move(encoded));
    }
    outcomes.emplace_back(Status::ok(), std::move(applied));
  }
  Status written = Status::ok();
  if (changes > 0) {
    leveldb::WriteOptions wo;
    wo.sync = options_.sync;
    written = from_leveldb(db_->Write(wo, &batch));
    batches_++;
    updates_ += changes;
  }
  if (written.is_ok())
    for (const auto& [i, encoded] : observed) observer_(*outcomes[i].second.after, encoded);
  for (size_t i = 0; i < ops.size(); ++i) {
    Status s = written.is_ok() ? outcomes[i].first : written;
    ops[i].done(std::move(s), std::move(outcomes[i].second));
  }
}

Status Store::put_hint(const std::string& target, const std::string& id) {
  return from_leveldb(
      db_->Put(leveldb::WriteOptions(), std::string(kHintPrefix) + target + "/" + id, ""));
}

Status Store::drop_hint(const std::string& target, const std::string& id) {
  return from_leveldb(
      db_->Delete(leveldb::WriteOptions(), std::string(kHintPrefix) + target + "/" + id));
}

std::vector<std::string> Store::hints_for(const std::string& target, size_t max) const {
  std::vector<std::string> ids;
  const std::string prefix = std::string(kHintPrefix) + target + "/";
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix) && ids.size() < max;
       it->Next())
    ids.push_back(it->key().ToString().substr(prefix.size()));
  return ids;
}

std::vector<std::string> Store::hint_targets() const {
  std::vector<std::string> targets;
  const std::string prefix(kHintPrefix);
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);) {
    std::string rest = it->key().ToString().substr(prefix.size());
    std::string target = rest.substr(0, rest.find('/'));
    targets.push_back(target);
    it->Seek(prefix + target + "0");  // '0' sorts right after '/': skip to the next target
  }
  return targets;
}

Result<std::optional<JobRecord>> Store::read_for_update(const std::string& id) {
  if (auto it = hot_.find(id); it != hot_.end()) return std::optional<JobRecord>(it->second);
  return get(id);
}

void Store::remember(const JobRecord& r) {
  auto [it, inserted] = hot_.insert_or_assign(r.id, r);
  if (!inserted) return;
  hot_order_.push_back(r.id);
  if (hot_order_.size() > kHotRecordsMax) {
    hot_.erase(hot_order_.front());
    hot_order_.pop_front();
  }
}

void Store::count(const std::optional<JobRecord>& before, const JobRecord& after) {
  std::lock_guard lock(counts_mu_);
  if (before) counts_[size_t(before->status.state)]--;
  counts_[size_t(after.status.state)]++;
}

Result<std::optional<JobRecord>> Store::get(const std::string& id) const {
  std::string bytes;
  leveldb::Status s = db_->Get(leveldb::ReadOptions(), record_key(id), &bytes);
  if (s.IsNotFound()) return std::optional<JobRecord>();
  if (!s.ok()) return from_leveldb(s);
  auto rec = decode_record(bytes);
  if (!rec.is_ok()) {
    corrupt_++;
    return rec.status();
  }
  if (rec.value().id != id) return Status(Code::corruption, "record stored under the wrong key");
  return std::optional<JobRecord>(std::move(rec).value());
}

Result<Store::Page> Store::list(const Filter& filter, size_t limit, const std::string& cursor,
                                size_t scan_max) const {
  Page page;
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
  const std::string prefix(kCreatedPrefix);
  // A cursor means "continue strictly before this index entry".
  it->Seek(prefix + (cursor.empty() ? std::string("\xff") : cursor));
  if (it->Valid()) {
    it->Prev();
  } else {
    it->SeekToLast();
  }
  size_t scanned = 0;
  std::string last_scanned;
  for (; it->Valid() && it->key().starts_with(prefix); it->Prev()) {
    if (page.records.size() == limit || scanned == scan_max) {
      page.next_cursor = last_scanned;
      break;
    }
    last_scanned = it->key().ToString().substr(prefix.size());
    ++scanned;
    auto rec = get(last_scanned.substr(last_scanned.find('/') + 1));
    if (!rec.is_ok() || !rec.value()) continue;
    if (!filter || filter(*rec.value())) page.records.push_back(std::move(*rec.value()));
  }
  if (Status s = from_leveldb(it->status()); !s.is_ok()) return s;
  return page;
}

Status Store::scan(const std::function<void(JobRecord&&)>& fn) const {
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
  const std::string prefix(kRecordPrefix);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto rec = decode_record(std::string_view(it->value().data(), it->value().size()));
    if (!rec.is_ok()) {
      corrupt_++;
      continue;
    }
    fn(std::move(rec).value());
  }
  return from_leveldb(it->status());
}

Store::StateCounts Store::counts() const {
  std::lock_guard lock(counts_mu_);
  return counts_;
}

size_t Store::queue_depth() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

}  // namespace meshwork
