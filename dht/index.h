// The record index: what the replica core knows of every record this node holds, without reading
// the record — which jobs are unfinished (sweeps, takeover), and each record's fingerprint
// (anti-entropy digests).
//
// A record's fingerprint is the first 8 bytes of BLAKE2b-256 of its encoding. Equal records
// encode to equal bytes (the codec is deterministic and merge is a join), so two replicas agree on
// a record exactly when their fingerprints agree. A bucket digest is the XOR of the fingerprints of
// the records in one arc of the circle: the ids' leading `bits` bits.
//
// Once told who it belongs to (share_as), the index also keeps, for every peer, the digests of
// the records whose placed replica list names both this node and that peer, updated as records
// change (as Riak's active anti-entropy keeps its hash trees): an anti-entropy round then costs
// the arcs, not a walk of every record held — which, at ~40,000 records, was 12 % of the replica
// loop's CPU under load.
//
// Thread-safety: none (the core's thread). Memory: about 210 bytes per record held, plus
// 8 × 2^bits bytes per peer that shares a record with this node.
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

// An id as an ordered-map key: its first 8 bytes read big-endian (zero past a shorter id) ahead
// of the id itself. Keys order exactly as their ids do, since the lead order is the ids' order on
// those bytes; but a comparison of random ids is decided by the leads, in the tree node, without
// a read of the id's bytes on the heap (2–3 % of the replica loop under load, measured; the
// misses of the tree walk itself remain).
[[nodiscard]] inline uint64_t id_lead(std::string_view id) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | (i < id.size() ? uint8_t(id[i]) : 0);
  return v;
}
struct IdKey {
  uint64_t lead = 0;
  std::string id;
  explicit IdKey(std::string_view s) : lead(id_lead(s)), id(s) {}
};
// Compares keys with keys, and keys with plain ids (lookups), in the ids' order.
struct IdKeyLess {
  using is_transparent = void;
  bool operator()(const IdKey& a, const IdKey& b) const {
    return a.lead != b.lead ? a.lead < b.lead : a.id < b.id;
  }
  bool operator()(const IdKey& a, std::string_view b) const {
    const uint64_t lb = id_lead(b);
    return a.lead != lb ? a.lead < lb : std::string_view(a.id) < b;
  }
  bool operator()(std::string_view a, const IdKey& b) const {
    const uint64_t la = id_lead(a);
    return la != b.lead ? la < b.lead : a < std::string_view(b.id);
  }
};

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
  // anti-entropy reads them instead of walking the ring for every record each round. Set only
  // through RecordIndex::place, which keeps the shared digests in step.
  uint64_t placed_version = 0;
  std::vector<std::string> replicas;
  // Kept by RecordIndex: the id (a view of the index's key) and, while unfinished, the entry's
  // neighbours in the unfinished list.
  std::string_view id;
  IndexEntry* unfinished_prev = nullptr;
  IndexEntry* unfinished_next = nullptr;
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
  // Sets the replica list of the entry of `id` (if held) as the placement of `version` lists it.
  void place(std::string_view id, std::vector<std::string> replicas, uint64_t version);
  // From now on, keep 2^bits digests per peer over the records whose placed list names both
  // `self` and that peer (call once, before the first put; bits at most kDigestBitsMax).
  void share_as(std::string self, unsigned bits);
  // True when every entry was placed by the placement of `version` (or none is held): then
  // shared_digests(peer) is exactly digests(bits, <placed list names self and peer>).
  [[nodiscard]] bool all_placed_at(uint64_t version) const;
  // The kept digests for `peer`, another member (all zero when it shares nothing with this node).
  [[nodiscard]] std::vector<uint64_t> shared_digests(const std::string& peer) const;
  [[nodiscard]] const IndexEntry* find(std::string_view id) const;
  [[nodiscard]] bool contains(std::string_view id) const { return find(id) != nullptr; }
  [[nodiscard]] size_t size() const { return entries_.size(); }
  // Every entry, in id order (key.id).
  using Entries = std::map<IdKey, IndexEntry, IdKeyLess>;
  [[nodiscard]] const Entries& entries() const { return entries_; }
  [[nodiscard]] size_t unfinished_count() const { return unfinished_.size; }
  // The unfinished records as (id, entry), in the order they became unfinished (oldest first): a
  // list threaded through the entries, so a record that starts or finishes walks no tree. (An
  // ordered map of them took ~5 % of the replica loop under load, in cache misses.)
  class Unfinished {
   public:
    class iterator {
     public:
      using value_type = std::pair<std::string_view, const IndexEntry*>;
      explicit iterator(const IndexEntry* at) : at_(at) {}
      value_type operator*() const { return {at_->id, at_}; }
      iterator& operator++() {
        at_ = at_->unfinished_next;
        return *this;
      }
      bool operator==(const iterator&) const = default;

     private:
      const IndexEntry* at_;
    };
    [[nodiscard]] iterator begin() const { return iterator(head); }
    [[nodiscard]] iterator end() const { return iterator(nullptr); }

   private:
    friend class RecordIndex;
    IndexEntry* head = nullptr;
    IndexEntry* tail = nullptr;
    size_t size = 0;
  };
  [[nodiscard]] const Unfinished& unfinished() const { return unfinished_; }
  // 2^bits bucket digests over the records `keep` accepts.
  [[nodiscard]] std::vector<uint64_t> digests(unsigned bits, const Keep& keep) const;
  // (id, fingerprint) of the kept records in the given buckets, at most `max` in all, in id order.
  // Walks only those buckets' arcs of the map.
  [[nodiscard]] std::vector<std::pair<std::string, uint64_t>> entries_in(
      unsigned bits, const std::set<uint32_t>& buckets, const Keep& keep, size_t max) const;

 private:
  Entries entries_;  // by id = by ring position
  // The same entries hashed by id (views of entries_'s keys; map nodes do not move): a lookup
  // without walking the tree, which compared ids for a tenth of the replica loop at 20,000 jobs.
  std::unordered_map<std::string_view, IndexEntry*> by_id_;
  // The entries that are not terminal (kept in step by put: linked or unlinked only when that
  // changes).
  Unfinished unfinished_;
  void link_unfinished(IndexEntry& e);
  void unlink_unfinished(IndexEntry& e);

  // XORs `fp` into the shared digests of every peer that e's placed list names with self_;
  // `sign` is +1 when e starts counting there, -1 when it stops, 0 for a change of fingerprint.
  void share(std::string_view id, const IndexEntry& e, uint64_t fp, int sign);
  struct Shared {
    std::vector<uint64_t> digests;  // 2^share_bits_
    size_t records = 0;             // entries counted in them (dropped at 0)
  };
  std::string self_;  // empty: shared digests not kept
  unsigned share_bits_ = 0;
  std::unordered_map<std::string, Shared> shared_;
  std::map<uint64_t, size_t> placed_;  // placed_version → entries
  size_t odd_ids_ = 0;  // ids not led by 3 lowercase hex digits (entries_in then walks all)
};

}  // namespace meshwork
