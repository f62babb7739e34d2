// The durable job store: LevelDB in the node's data dir, with group commit.
//
// Every change is an update function applied by one writer thread: it reads the current record
// (or none), returns the next one (or nullopt for "no change"), and the writer puts all changes of
// the updates it drained into one WriteBatch written with sync=true — one fsync for many callers.
// Because a single thread applies every update, read-modify-write is atomic per record and merging
// a replica's copy is just `update(id, merge-with)`. Completion callbacks run on the writer thread
// after the batch is on disk; they must be short and must not call back into the store
// synchronously.
//
// Layout: "j/<id>" → encoded JobRecord; "c/<created_at 16 hex>/<id>" → "" (newest-first listing);
// "h/<target node>/<id>" → "" (a hint: the record is owed to that node; see put_hint).
// Readers (get, list, scan) read LevelDB directly from any thread.
// Invariants: a record is checked (decode_record) on every read; a record that fails its checks is
// reported as Code::corruption, never returned; the update queue holds at most
// StoreOptions::queue_max pending updates, beyond which updates fail fast with Code::overloaded.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "dht/job_record.h"
#include "dht/result.h"

namespace leveldb {
class DB;
class Cache;
class FilterPolicy;
class WriteBatch;
}  // namespace leveldb

namespace meshwork {

struct StoreOptions {
  size_t queue_max = 100'000;  // pending updates
  size_t batch_max = 2'048;    // updates per fsync'd batch
  bool sync = true;            // fsync every batch (tests of recovery need it on)
};

struct Applied {
  std::optional<JobRecord> before;  // what was stored before this update
  std::optional<JobRecord> after;   // what is stored now (== before when unchanged)
  bool changed = false;
};

class Store {
 public:
  using UpdateFn = std::function<std::optional<JobRecord>(const JobRecord* current)>;
  using DoneFn = std::function<void(Status, Applied)>;

  struct Page {
    std::vector<JobRecord> records;
    std::string next_cursor;  // empty when there is nothing more
  };
  using Filter = std::function<bool(const JobRecord&)>;
  using StateCounts = std::array<uint64_t, 6>;  // indexed by JobState
  // Told of every record a batch changed, on the writer thread, once the batch is durable and
  // before the batch's callbacks run; `encoded` is the stored bytes.
  using Observer = std::function<void(const JobRecord& after, std::string_view encoded)>;

  // Opens (creating if needed) the store in `dir`, then scans it once to count records by state.
  static Result<std::unique_ptr<Store>> open(const std::string& dir, StoreOptions options);
  ~Store();  // drains queued updates, then closes
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Queues an update; `done` runs on the writer thread once its batch is durable (or failed).
  void update(std::string id, UpdateFn fn, DoneFn done);
  // Blocking form of update.
  [[nodiscard]] Result<Applied> update_sync(std::string id, UpdateFn fn);
  // Returns once every update queued before the call has been applied and its callback has run.
  void flush();
  // Merges `rec` into the stored copy (inserting it when absent).
  void merge(JobRecord rec, DoneFn done);

  // Set before the first update; not thread-safe against concurrent updates.
  void set_observer(Observer observer) { observer_ = std::move(observer); }

  // Hints: "this node owes record `id` to `target`", kept until dropped. put_hint and drop_hint
  // write from any thread without an fsync of their own: a hint lost in a crash costs only time,
  // since anti-entropy finds the difference too. hints_for lists at most `max` ids.
  [[nodiscard]] Status put_hint(const std::string& target, const std::string& id);
  [[nodiscard]] Status drop_hint(const std::string& target, const std::string& id);
  [[nodiscard]] std::vector<std::string> hints_for(const std::string& target, size_t max) const;
  // Targets that have at least one hint.
  [[nodiscard]] std::vector<std::string> hint_targets() const;

  [[nodiscard]] Result<std::optional<JobRecord>> get(const std::string& id) const;
  // Newest first by created_at. Scans at most `scan_max` records per call; a filtered page may
  // therefore come back short with a cursor to continue from.
  [[nodiscard]] Result<Page> list(const Filter& filter, size_t limit, const std::string& cursor,
                                  size_t scan_max = 10'000) const;
  // Calls fn for every record in id order; corrupt records are counted and skipped.
  [[nodiscard]] Status scan(const std::function<void(JobRecord&&)>& fn) const;

  [[nodiscard]] StateCounts counts() const;
  [[nodiscard]] size_t queue_depth() const;
  [[nodiscard]] uint64_t corrupt_records() const { return corrupt_.load(); }
  [[nodiscard]] uint64_t batches_written() const { return batches_.load(); }
  [[nodiscard]] uint64_t updates_written() const { return updates_.load(); }

 private:
  struct Op {
    std::string id;
    UpdateFn fn;
    DoneFn done;
  };
  Store() = default;
  void writer_loop();
  void apply_batch(std::vector<Op>& ops);
  void count(const std::optional<JobRecord>& before, const JobRecord& after);
  Result<std::optional<JobRecord>> read_for_update(const std::string& id);
  void remember(const JobRecord& r);

  std::unique_ptr<leveldb::DB> db_;
  std::unique_ptr<leveldb::Cache> cache_;
  std::unique_ptr<const leveldb::FilterPolicy> filter_;
  StoreOptions options_;
  Observer observer_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Op> queue_;
  bool stopping_ = false;
  std::thread writer_;
  // Writer thread only: the batch being built, cleared and reused so that its buffer keeps its
  // capacity instead of growing (and faulting in fresh pages) again for every batch.
  std::unique_ptr<leveldb::WriteBatch> batch_;
  // Writer thread only: the records it wrote last, so that the claim and outcome updates that
  // follow a submission do not decode the record from LevelDB again. FIFO-evicted at
  // kHotRecordsMax.
  std::unordered_map<std::string, JobRecord> hot_;
  std::deque<std::string> hot_order_;

  mutable std::mutex counts_mu_;
  StateCounts counts_{};
  mutable std::atomic<uint64_t> corrupt_{0};
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> updates_{0};
};

}  // namespace meshwork
