// The durable job store; see store.h.
#include "node/store.h"

#include <leveldb/cache.h>
#include <leveldb/db.h>
#include <leveldb/filter_policy.h>
#include <leveldb/write_batch.h>

#include <chrono>
#include <cstdio>

#include "node/check.h"
#include "node/thread_name.h"

namespace meshwork {
namespace {

constexpr std::string_view kRecordPrefix = "j/";
constexpr std::string_view kCreatedPrefix = "c/";
constexpr std::string_view kHintPrefix = "h/";
constexpr std::string_view kIdempotencyPrefix = "i/";
constexpr std::string_view kIdempotencyOrderPrefix = "I/";

std::string idempotency_order_key(uint64_t at_ms, std::string_view key_hash) {
  char at[17];
  std::snprintf(at, sizeof at, "%016llx", static_cast<unsigned long long>(at_ms));
  return std::string(kIdempotencyOrderPrefix) + at + "/" + std::string(key_hash);
}
constexpr std::string_view kTombstonePrefix = "t/";
constexpr size_t kCacheBytes = 32 << 20;
// encode_record's first byte; records in older forms are re-encoded when loaded.
constexpr uint8_t kBinaryRecordVersion = 3;

std::string record_key(std::string_view id) {
  return std::string(kRecordPrefix) + std::string(id);
}

std::string created_key(uint64_t created_at_ms, std::string_view id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(created_at_ms));
  return std::string(kCreatedPrefix) + buf + "/" + std::string(id);
}

std::string tombstone_key(std::string_view id) {
  return std::string(kTombstonePrefix) + std::string(id);
}

std::string u64_bytes(uint64_t v) {
  std::string out(8, '\0');
  for (size_t i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

uint64_t steady_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

std::string hint_key(std::string_view target, std::string_view id) {
  return std::string(kHintPrefix) + std::string(target) + "/" + std::string(id);
}

Status from_leveldb(const leveldb::Status& s) {
  if (s.ok()) return Status::ok();
  return {s.IsCorruption() ? Code::corruption : Code::io_error, "leveldb: " + s.ToString()};
}

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const std::string& dir, StoreOptions options) {
  std::unique_ptr<Store> store(new Store());
  store->options_ = options;
  store->options_.batch_max = std::max<size_t>(store->options_.batch_max, 1);
  store->cache_.reset(leveldb::NewLRUCache(kCacheBytes));
  store->filter_.reset(leveldb::NewBloomFilterPolicy(10));
  leveldb::Options lo;
  lo.create_if_missing = true;
  lo.paranoid_checks = true;
  lo.block_cache = store->cache_.get();
  lo.filter_policy = store->filter_.get();
  lo.write_buffer_size = 16 << 20;
  // Records are mostly hex and base64 that snappy shrinks by ~17 %, at ~20 % of the store thread's
  // CPU under load (compacting and reading back): not worth it (docs/benchmarks.md).
  lo.compression = leveldb::kNoCompression;
  leveldb::DB* db = nullptr;
  if (Status s = from_leveldb(leveldb::DB::Open(lo, dir, &db)); !s.is_ok()) return s;
  store->db_.reset(db);
  Status scanned = store->scan_records(
      [&](JobRecord&& r, std::string_view) { (void)store->count(r); }, /*count_corrupt=*/true);
  if (!scanned.is_ok()) return scanned;
  store->compactor_ = std::thread([s = store.get()] { s->compactor_loop(); });
  return store;
}

Store::~Store() {
  stop();
  db_.reset();  // before the cache and filter it points at
}

void Store::start_writer(Durable durable) {
  MESHWORK_CHECK(!writer_.joinable());
  durable_ = std::move(durable);
  writer_ = std::thread([this] { writer_loop(); });
}

void Store::write(std::vector<Persist> persists) {
  if (persists.empty()) return;
  std::vector<Queued> queued;
  queued.reserve(persists.size());
  for (Persist& p : persists) {
    bool first = false;
    if (p.kind == Persist::Kind::record) {
      MESHWORK_CHECK(p.record.record && p.record.bytes && p.record->id == p.id);
      first = count(*p.record);
    }
    if (p.kind == Persist::Kind::erase || p.kind == Persist::Kind::drop) uncount(p.id);
    queued.push_back(Queued{std::move(p), first});
  }
  {
    std::lock_guard lock(mu_);
    for (Queued& q : queued) {
      MESHWORK_CHECK(q.persist.seq > last_queued_seq_);
      last_queued_seq_ = q.persist.seq;
      queue_.push_back(std::move(q));
    }
  }
  cv_.notify_one();
}

void Store::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard lock(compact_mu_);
    compact_stop_ = true;
  }
  compact_cv_.notify_all();
  if (compactor_.joinable()) compactor_.join();
}

void Store::wait_written(uint64_t timeout_ms) const {
  std::unique_lock lock(mu_);
  const uint64_t target = last_queued_seq_;
  written_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                       [&] { return last_written_seq_ >= target; });
}

// Takes everything queued (up to batch_max), writes it as one group, reports it; the queue fills
// with the next group meanwhile. Periodic sync: also syncs once the interval since the last sync
// has passed with something unsynced, whether or not more is queued, and before it returns.
void Store::writer_loop() {
  name_this_thread("mw-store");
  const bool periodic = options_.sync && options_.sync_interval_ms > 0;
  std::vector<Queued> group;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      const auto ready = [&] { return stopping_ || !queue_.empty(); };
      if (periodic && unsynced_) {
        cv_.wait_until(
            lock, std::chrono::steady_clock::time_point(std::chrono::milliseconds(sync_due_ms())),
            ready);
      } else {
        cv_.wait(lock, ready);
      }
      if (queue_.empty()) {
        const bool stopping = stopping_;
        lock.unlock();
        if (periodic && unsynced_) (void)sync_now();  // the interval ran out, or the last one
        if (stopping) return;                         // stopping and drained
        continue;
      }
      const size_t n = std::min(queue_.size(), options_.batch_max);
      group.assign(std::make_move_iterator(queue_.begin()),
                   std::make_move_iterator(queue_.begin() + static_cast<long>(n)));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<long>(n));
    }
    const Status written = write_group(group);
    {
      std::lock_guard lock(mu_);
      last_written_seq_ = group.back().persist.seq;
    }
    written_cv_.notify_all();
    if (durable_) durable_(group.back().persist.seq, written);
    group.clear();
    if (periodic && unsynced_ && steady_ms() >= sync_due_ms()) (void)sync_now();
  }
}

// An empty synced write: LevelDB appends an empty batch to its log and syncs the log, and with it
// every write before it in that log.
Status Store::sync_now() {
  leveldb::WriteBatch empty;
  leveldb::WriteOptions wo;
  wo.sync = true;
  const auto began = std::chrono::steady_clock::now();
  Status s = from_leveldb(db_->Write(wo, &empty));
  if (options_.observe_sync)
    options_.observe_sync(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count());
  syncs_++;
  unsynced_ = false;
  last_sync_ms_ = steady_ms();
  return s;
}

Status Store::write_group(const std::vector<Queued>& group) {
  leveldb::WriteBatch batch;
  uint64_t deleted = 0;
  for (const Queued& q : group) {
    const Persist& p = q.persist;
    switch (p.kind) {
      case Persist::Kind::record:
        batch.Put(record_key(p.id), *p.record.bytes);
        if (q.first) batch.Put(created_key(p.record->created_at_ms, p.id), "");
        break;
      case Persist::Kind::hint_put:
        batch.Put(hint_key(p.target, p.id), "");
        break;
      case Persist::Kind::hint_drop:
        batch.Delete(hint_key(p.target, p.id));
        break;
      case Persist::Kind::erase:
        batch.Put(tombstone_key(p.id), u64_bytes(p.at_ms));
        [[fallthrough]];
      case Persist::Kind::drop:
        batch.Delete(record_key(p.id));
        batch.Delete(created_key(p.created_at_ms, p.id));
        deleted++;
        break;
      case Persist::Kind::tombstone_drop:
        batch.Delete(tombstone_key(p.id));
        deleted++;
        break;
    }
  }
  leveldb::WriteOptions wo;
  wo.sync = options_.sync && options_.sync_interval_ms == 0;
  const auto began = std::chrono::steady_clock::now();
  Status s = from_leveldb(db_->Write(wo, &batch));
  if (wo.sync && options_.observe_sync)
    options_.observe_sync(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count());
  if (wo.sync) syncs_++;
  if (!wo.sync && options_.sync) unsynced_ = true;
  batches_++;
  if (s.is_ok()) persists_ += group.size();
  if (s.is_ok()) maybe_compact(deleted);
  return s;
}

void Store::maybe_compact(uint64_t deleted) {
  if (deleted == 0 && deletions_ == 0) return;
  const uint64_t now = steady_ms();
  if (deletions_ == 0) first_deletion_ms_ = now;
  deletions_ += deleted;
  size_t held = 0;
  {
    std::lock_guard lock(counts_mu_);
    held = states_.size();
  }
  if (deletions_ < std::max<uint64_t>(kCompactDeletionsMin, held) &&
      now < first_deletion_ms_ + kCompactIntervalMs)
    return;
  deletions_ = 0;
  {
    std::lock_guard lock(compact_mu_);
    compact_due_ = true;
  }
  compact_cv_.notify_one();
}

// LevelDB runs a manual compaction on the calling thread while writes go on: this one.
void Store::compactor_loop() {
  name_this_thread("mw-compact");
  for (;;) {
    {
      std::unique_lock lock(compact_mu_);
      compact_cv_.wait(lock, [&] { return compact_stop_ || compact_due_; });
      if (compact_stop_) return;
      compact_due_ = false;
    }
    db_->CompactRange(nullptr, nullptr);
    compactions_++;
  }
}

void Store::uncount(const std::string& id) {
  std::lock_guard lock(counts_mu_);
  auto it = states_.find(id);
  if (it == states_.end()) return;
  counts_[size_t(it->second)]--;
  states_.erase(it);
}

// `r` is now this node's copy; true when it is the first one.
bool Store::count(const JobRecord& r) {
  std::lock_guard lock(counts_mu_);
  auto [it, inserted] = states_.try_emplace(r.id, r.status.state);
  if (!inserted) {
    counts_[size_t(it->second)]--;
    it->second = r.status.state;
  }
  counts_[size_t(r.status.state)]++;
  return inserted;
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
  if (rec.value().id != id) {
    corrupt_++;
    return Status(Code::corruption, "record stored under the wrong key");
  }
  return std::optional<JobRecord>(std::move(rec).value());
}

std::optional<JobRecord> Store::read(const std::string& id) const {
  auto r = get(id);
  if (!r.is_ok()) return std::nullopt;
  return std::move(r).value();
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

Status Store::scan(const std::function<void(JobRecord&&, std::string_view)>& fn) const {
  return scan_records(fn, /*count_corrupt=*/false);  // open() counted them already
}

Status Store::scan_records(const std::function<void(JobRecord&&, std::string_view)>& fn,
                           bool count_corrupt) const {
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
  const std::string prefix(kRecordPrefix);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    const std::string_view bytes(it->value().data(), it->value().size());
    auto rec = decode_record(bytes);
    if (!rec.is_ok() || it->key().ToString().substr(prefix.size()) != rec.value().id) {
      if (count_corrupt) corrupt_++;
      continue;
    }
    // Records stored before the binary form are handed on in it, so that their fingerprints
    // agree with the other replicas' copies.
    if (!bytes.empty() && static_cast<uint8_t>(bytes.front()) == kBinaryRecordVersion) {
      fn(std::move(rec).value(), bytes);
    } else {
      const std::string encoded = encode_record(rec.value());
      fn(std::move(rec).value(), encoded);
    }
  }
  return from_leveldb(it->status());
}

Status Store::scan_hints(
    const std::function<void(const std::string&, const std::string&)>& fn) const {
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
  const std::string prefix(kHintPrefix);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    const std::string rest = it->key().ToString().substr(prefix.size());
    const size_t slash = rest.rfind('/');
    if (slash == std::string::npos || slash == 0) continue;
    fn(rest.substr(0, slash), rest.substr(slash + 1));
  }
  return from_leveldb(it->status());
}

Status Store::scan_tombstones(const std::function<void(const std::string&, uint64_t)>& fn) const {
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
  const std::string prefix(kTombstonePrefix);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    const std::string id = it->key().ToString().substr(prefix.size());
    if (!is_job_id(id) || it->value().size() != 8) {
      corrupt_++;
      continue;
    }
    uint64_t at = 0;
    for (size_t i = 0; i < 8; ++i) at |= uint64_t{static_cast<uint8_t>(it->value()[i])} << (8 * i);
    fn(id, at);
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

Status Store::put_idempotency(std::string_view key_hash, std::string_view value, uint64_t at_ms) {
  leveldb::WriteBatch batch;
  batch.Put(std::string(kIdempotencyPrefix) + std::string(key_hash),
            leveldb::Slice(value.data(), value.size()));
  batch.Put(idempotency_order_key(at_ms, key_hash), "");
  leveldb::WriteOptions w;
  w.sync = options_.sync;
  return from_leveldb(db_->Write(w, &batch));
}

Result<std::optional<std::string>> Store::get_idempotency(std::string_view key_hash) const {
  std::string value;
  leveldb::Status s = db_->Get(leveldb::ReadOptions(),
                               std::string(kIdempotencyPrefix) + std::string(key_hash), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return from_leveldb(s);
  return std::optional<std::string>(std::move(value));
}

size_t Store::expire_idempotency(uint64_t before_ms,
                                 const std::function<bool(std::string_view value)>& expired) {
  leveldb::WriteBatch batch;
  size_t n = 0;
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
  const std::string prefix(kIdempotencyOrderPrefix);
  const std::string end = idempotency_order_key(before_ms, "");
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix) && it->key().ToString() < end;
       it->Next()) {
    const std::string order_key = it->key().ToString();
    const std::string key =
        std::string(kIdempotencyPrefix) + order_key.substr(order_key.rfind('/') + 1);
    batch.Delete(order_key);
    std::string value;
    if (db_->Get(leveldb::ReadOptions(), key, &value).ok() && expired(value)) {
      batch.Delete(key);
      ++n;
    }
  }
  if (it->status().ok()) (void)db_->Write(leveldb::WriteOptions(), &batch);
  return n;
}

}  // namespace meshwork
