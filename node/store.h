// The durable job store: LevelDB in the node's data dir, written by the replica core's Persist
// actions (dht/replica.h) in pipelined, fsync'd groups.
//
// Writing: the node's loop hands every Persist to write() in sequence order. One writer thread
// takes everything queued (up to StoreOptions::batch_max persists), puts it into one WriteBatch,
// writes it with sync=true, then reports durable(last seq, status) through the callback given to
// start_writer(). While one group syncs, the next one fills in the queue: one fsync for many
// persists, and never more than one group in flight.
//
// Periodic sync (StoreOptions::sync_interval_ms > 0, the node's --sync-interval-ms): each group is
// written without sync=true — into the OS's page cache — and reported at once; the writer then
// syncs LevelDB's log (an empty synced write) at most once per interval, and only when something
// was written since the last sync, and once more when it stops. That is NATS JetStream's
// sync_interval and Cassandra's periodic commit log: a reported write survives the process's
// crash (kill -9), but may be lost with the machine (power, kernel) until the next sync, or, for
// a write in a log LevelDB has since retired, until that log's memtable is flushed (a synced
// table file). The default, 0, syncs every group before reporting it (docs/operations.md).
//
// Layout:
//   "j/<id>"                          the record, in encode_record's binary form
//   "c/<created_at 16 hex>/<id>"      "" (newest-first listing; written with a record's first copy)
//   "h/<target node>/<id>"            "" (a hint: the record is owed to that node)
//   "i/<key hash>"                    an Idempotency-Key's entry (api/idempotency.h), written
//                                     synced by the HTTP thread that takes the submission
//   "I/<at 16 hex>/<key hash>"        "" (the entries by when they were written, for expiry)
//   "t/<id>"                          u64 little-endian: when the job was erased (a tombstone)
//
// Removal: an erase persist deletes the record and its listing key and writes the tombstone in one
// batch; a drop deletes them without a tombstone; a tombstone_drop deletes the tombstone. Deleted
// keys free their space only when LevelDB compacts the files that hold them: once the deletions
// since the last compaction reach the number of records held (at least kCompactDeletionsMin), or
// kCompactIntervalMs after the first of them, a background thread (never the writer, never the
// loop) compacts the whole key space. Each compaction then rewrites no more live data than it
// frees, so the work stays proportional to the deletions.
//
// Reading: read() (the core's RecordReader), get(), list() and the boot scans read LevelDB
// directly, from any thread. A write is visible to readers before its durable() is reported, so the
// core may drop its in-memory copy once durable() arrives.
//
// Thread-safety: write() from one thread (the loop); everything else from any thread.
// Invariants:
//   1. Persists are written in the order of their seq, which increases strictly; durable(seq) is
//      reported in increasing seq order, once per group, after the group's fsync (periodic sync:
//      after its write, and a sync follows within sync_interval_ms).
//   2. A record is checked (decode_record, id matches its key) on every read; one that fails is
//      counted in corrupt_records() and never returned.
//   3. counts() are this node's records by state as handed to write() (so they agree at once with
//      what the core answers, which reads through its not-yet-durable copies).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "dht/job_record.h"
#include "dht/replica.h"
#include "dht/result.h"

namespace leveldb {
class DB;
class Cache;
class FilterPolicy;
}  // namespace leveldb

namespace meshwork {

inline constexpr uint64_t kCompactDeletionsMin = 10'000;
inline constexpr uint64_t kCompactIntervalMs = 10 * 60'000;
// --sync-interval-ms at most: JetStream's default sync_interval (2.10 on; 2.9 syncs every minute).
inline constexpr uint64_t kSyncIntervalMsMax = 120'000;

struct StoreOptions {
  size_t batch_max = 2'048;  // persists per fsync'd group
  bool sync = true;          // fsync every group (recovery tests need it on)
  // With sync: 0 syncs every group before it is reported; N > 0 reports groups once written and
  // syncs at most every N ms (see Periodic sync above).
  uint64_t sync_interval_ms = 0;
  // With sync: called on the writer thread with the seconds each group's synced write took
  // (LevelDB's Write with sync=true: the fsync latency the node's metrics report).
  std::function<void(double seconds)> observe_sync;
};

class Store final : public RecordReader {
 public:
  struct Page {
    std::vector<JobRecord> records;
    std::string next_cursor;  // empty when there is nothing more
  };
  using Filter = std::function<bool(const JobRecord&)>;
  using StateCounts = std::array<uint64_t, 6>;  // indexed by JobState
  // Runs on the writer thread after each group: every persist with seq <= `seq` is durable (ok),
  // or the group failed (not ok).
  using Durable = std::function<void(uint64_t seq, const Status& status)>;

  // Opens (creating if needed) the store in `dir` and scans it once to count records by state.
  static Result<std::unique_ptr<Store>> open(const std::string& dir, StoreOptions options);
  ~Store() override;  // stop()
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Boot: every stored record with its binary encoding, in id order (corrupt ones skipped; open()
  // counted them), and every hint.
  [[nodiscard]] Status scan(
      const std::function<void(JobRecord&&, std::string_view encoded)>& fn) const;
  [[nodiscard]] Status scan_hints(
      const std::function<void(const std::string& target, const std::string& id)>& fn) const;
  [[nodiscard]] Status scan_tombstones(
      const std::function<void(const std::string& id, uint64_t deleted_at_ms)>& fn) const;

  // Starts the writer thread. Call once, before the first write().
  void start_writer(Durable durable);
  // Queues persists (seq order) for the writer and counts their records. Never blocks on the disk.
  void write(std::vector<Persist> persists);
  // Writes what is queued, reports it, and joins the writer. Idempotent.
  void stop();
  // Waits (at most `timeout_ms`) until everything queued before the call has been written, so that
  // a reader sees every change the core had made when the call began — what the core answered a
  // client is never newer than what a listing then shows. Any thread but the writer's.
  void wait_written(uint64_t timeout_ms) const;

  // RecordReader: the stored copy, or nullopt (absent, unreadable or corrupt).
  [[nodiscard]] std::optional<JobRecord> read(const std::string& id) const override;
  [[nodiscard]] Result<std::optional<JobRecord>> get(const std::string& id) const;
  // Newest first by created_at. Scans at most `scan_max` records per call; a filtered page may
  // therefore come back short with a cursor to continue from.
  [[nodiscard]] Result<Page> list(const Filter& filter, size_t limit, const std::string& cursor,
                                  size_t scan_max = 10'000) const;

  [[nodiscard]] StateCounts counts() const;
  [[nodiscard]] size_t queue_depth() const;
  [[nodiscard]] uint64_t corrupt_records() const { return corrupt_.load(); }
  [[nodiscard]] uint64_t batches_written() const { return batches_.load(); }
  [[nodiscard]] uint64_t persists_written() const { return persists_.load(); }
  [[nodiscard]] uint64_t compactions() const { return compactions_.load(); }
  // Synced writes: one per group by default; periodic sync: the interval's syncs.
  [[nodiscard]] uint64_t syncs() const { return syncs_.load(); }

  // Idempotency-Key entries (api/idempotency.h), outside the persist pipeline: any thread.
  // `at_ms`: when the entry was written (its expiry order).
  [[nodiscard]] Status put_idempotency(std::string_view key_hash, std::string_view value,
                                       uint64_t at_ms);
  [[nodiscard]] Result<std::optional<std::string>> get_idempotency(std::string_view key_hash) const;
  // Deletes the entries written before `before_ms`, oldest first, reading only those (the "I/"
  // order): an entry written again since (the same key, a later window) is kept when `expired`
  // refuses its current value. How many entries it deleted.
  size_t expire_idempotency(uint64_t before_ms,
                            const std::function<bool(std::string_view value)>& expired);

 private:
  Store() = default;
  [[nodiscard]] Status scan_records(const std::function<void(JobRecord&&, std::string_view)>& fn,
                                    bool count_corrupt) const;
  void writer_loop();
  // A persist and whether it holds the first copy of its record here (its listing key is due).
  struct Queued {
    Persist persist;
    bool first = false;
  };
  Status write_group(const std::vector<Queued>& group);
  Status sync_now();  // periodic sync: one synced empty write; writer thread
  // Periodic sync: when the next sync is due (steady ms); 0 before the first, which is due at once.
  [[nodiscard]] uint64_t sync_due_ms() const {
    return last_sync_ms_ == 0 ? 0 : last_sync_ms_ + options_.sync_interval_ms;
  }
  bool count(const JobRecord& r);
  void uncount(const std::string& id);
  void maybe_compact(uint64_t deleted);  // writer thread, after a group
  void compactor_loop();

  std::unique_ptr<leveldb::DB> db_;
  std::unique_ptr<leveldb::Cache> cache_;
  std::unique_ptr<const leveldb::FilterPolicy> filter_;
  StoreOptions options_;
  Durable durable_;

  mutable std::mutex mu_;  // guards the queue, the seqs and the flags
  std::condition_variable cv_;
  mutable std::condition_variable written_cv_;
  std::deque<Queued> queue_;
  uint64_t last_queued_seq_ = 0;
  uint64_t last_written_seq_ = 0;  // written (or failed): nothing up to it is still queued
  bool stopping_ = false;
  std::thread writer_;

  mutable std::mutex counts_mu_;  // guards states_ and counts_
  // The state of every record written (or queued), for counts() and to know which record is new.
  std::unordered_map<std::string, JobState> states_;
  StateCounts counts_{};
  mutable std::atomic<uint64_t> corrupt_{0};
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> persists_{0};
  std::atomic<uint64_t> syncs_{0};
  // Periodic sync, writer thread only: written since the last sync, and when that sync was.
  bool unsynced_ = false;
  uint64_t last_sync_ms_ = 0;

  // Compaction (see Removal above). deletions_ and first_deletion_ms_: writer thread only.
  uint64_t deletions_ = 0;
  uint64_t first_deletion_ms_ = 0;
  std::mutex compact_mu_;
  std::condition_variable compact_cv_;
  bool compact_due_ = false, compact_stop_ = false;
  std::thread compactor_;
  std::atomic<uint64_t> compactions_{0};
};

}  // namespace meshwork
