// The record index: what the replica core knows of every record this node holds, without reading
// the record — which jobs are unfinished (sweeps, takeover), and each record's fingerprint
// (anti-entropy digests).
//
// A record's fingerprint is the first 8 bytes of BLAKE2b-256 of its encoding. Equal records
// encode to equal bytes (the codec is deterministic and merge is a join), so two replicas agree on
// a record exactly when their fingerprints agree. A bucket digest is the XOR of the fingerprints of
// the records in one arc of the circle: the ids' leading `bits` bits.
//
// Thread-safety: none (the core's thread). Memory: about 170 bytes per record held.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dht/job_record.h"

namespace meshwork {

inline constexpr unsigned kDigestBitsMax = 12;

[[nodiscard]] uint64_t record_fingerprint(std::string_view encoded);
// The bucket of a job id: its leading `bits` bits (ids are lowercase hex).
[[nodiscard]] uint32_t bucket_of(std::string_view id, unsigned bits);

struct IndexEntry {
  uint64_t fingerprint = 0;
  JobState state = JobState::queued;
  uint32_t attempt = 0;
  std::string status_node;      // who wrote the status (the claimant while running)
  // The writer's wall clock, never compared with this node's: the replica core judges leases and
  // retry waits by when it saw these values change (Replica::sightings_).
  uint64_t lease_until_ms = 0;  // while running: the claimant's clock
  uint64_t retry_at_ms = 0;     // while retry_wait: the clock of the status's writer
  uint64_t run_after_ms = 0;    // wall clock: no attempt before (JobRecord::run_after_ms)
  uint64_t status_at_ms = 0;    // wall clock: when the status was written (retention's age)
  uint64_t created_at_ms = 0;   // from the signed spec (the store's listing key)
  uint32_t priority = 0;        // from the signed spec (the run queue's order)
  uint32_t redundancy = 1;      // from the signed spec (runners per attempt; dht/verdict.h)
  bool cancel_requested = false;
  // The record's replicas as the placement of `placed_version` lists them (0: never placed): the
  // replica core's hand-off compares them with the new list after a membership change, and
  // anti-entropy reads them instead of walking the ring for every record each round.
  mutable uint64_t placed_version = 0;
  mutable std::vector<std::string> replicas;
};

class RecordIndex {
 public:
  using Keep = std::function<bool(const std::string& id, const IndexEntry& e)>;

  RecordIndex() = default;
  // by_id_ points into entries_: moving keeps the nodes, copying would not.
  RecordIndex(const RecordIndex&) = delete;
  RecordIndex& operator=(const RecordIndex&) = delete;
  RecordIndex(RecordIndex&&) = default;
  RecordIndex& operator=(RecordIndex&&) = default;

  void put(const JobRecord& r, uint64_t fingerprint);
  void erase(std::string_view id);
  [[nodiscard]] const IndexEntry* find(std::string_view id) const;
  [[nodiscard]] bool contains(std::string_view id) const { return find(id) != nullptr; }
  [[nodiscard]] size_t size() const { return entries_.size(); }
  [[nodiscard]] const std::map<std::string, IndexEntry, std::less<>>& entries() const {
    return entries_;
  }
  [[nodiscard]] size_t unfinished_count() const { return unfinished_.size(); }
  // Unfinished record ids, in id order.
  [[nodiscard]] const std::set<std::string, std::less<>>& unfinished() const { return unfinished_; }
  // 2^bits bucket digests over the records `keep` accepts.
  [[nodiscard]] std::vector<uint64_t> digests(unsigned bits, const Keep& keep) const;
  // (id, fingerprint) of the kept records in the given buckets, at most `max` in all.
  [[nodiscard]] std::vector<std::pair<std::string, uint64_t>> entries_in(
      unsigned bits, const std::set<uint32_t>& buckets, const Keep& keep, size_t max) const;

 private:
  std::map<std::string, IndexEntry, std::less<>> entries_;  // by id = by ring position
  // The same entries hashed by id (views of entries_'s keys; map nodes do not move): a lookup
  // without walking the tree, which compared ids for a tenth of the replica loop at 20,000 jobs.
  std::unordered_map<std::string_view, IndexEntry*> by_id_;
  // Ids whose entry is not terminal (kept in step by put: inserted or erased only when that
  // changes).
  std::set<std::string, std::less<>> unfinished_;
};

}  // namespace meshwork
