// A simulated node's disk: what the store (LevelDB in the node) holds for the replica core — the
// durable job records, which the core reads back through RecordReader, its hints and tombstones —
// and the persists written but not yet synced.
//
// The core's persists are written in sequence order and become durable together when the driver
// syncs (replica_sim.cpp models the fsync delay of a group commit). A crash loses what was not
// synced and keeps the rest: disks survive crashes; a restarted node boots from records() and
// hints().
//
// Thread-safety: none. Invariants: persists are queued in strictly increasing seq; sync(seq)
// applies exactly the queued persists with seq <= `seq`, in order; read() sees durable records
// only (the core serves newer ones from its own overlay).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "dht/replica.h"

namespace meshwork::sim {

class Disk final : public RecordReader {
 public:
  [[nodiscard]] std::optional<JobRecord> read(const std::string& id) const override;

  // Queues a persist until sync().
  void write(Persist p);
  // Makes every queued persist with seq <= `seq` durable, in order.
  void sync(uint64_t seq);
  // A crash: what was not synced is gone.
  void lose_unsynced() { pending_.clear(); }

  [[nodiscard]] const std::map<std::string, SharedRecord>& records() const { return records_; }
  // (target, job id) pairs.
  [[nodiscard]] const std::set<std::pair<std::string, std::string>>& hints() const {
    return hints_;
  }
  // Erased jobs: id → when (wall ms).
  [[nodiscard]] const std::map<std::string, uint64_t>& tombstones() const { return tombstones_; }

 private:
  std::map<std::string, SharedRecord> records_;
  std::map<std::string, uint64_t> tombstones_;
  std::set<std::pair<std::string, std::string>> hints_;
  std::deque<Persist> pending_;
};

}  // namespace meshwork::sim
