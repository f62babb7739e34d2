// A simulated node's disk; see disk.h.
#include "simulations/sim/disk.h"

#include <cassert>

namespace meshwork::sim {

std::optional<JobRecord> Disk::read(const std::string& id) const {
  const auto it = records_.find(id);
  if (it == records_.end()) return std::nullopt;
  return *it->second;
}

void Disk::write(Persist p) {
  assert(pending_.empty() || pending_.back().seq < p.seq);
  pending_.push_back(std::move(p));
}

void Disk::sync(uint64_t seq) {
  while (!pending_.empty() && pending_.front().seq <= seq) {
    Persist& p = pending_.front();
    switch (p.kind) {
      case Persist::Kind::record:
        records_[p.id] = std::move(p.record);
        break;
      case Persist::Kind::hint_put:
        hints_.emplace(p.target, p.id);
        break;
      case Persist::Kind::hint_drop:
        hints_.erase({p.target, p.id});
        break;
      case Persist::Kind::erase:
        tombstones_[p.id] = p.at_ms;
        records_.erase(p.id);
        break;
      case Persist::Kind::drop:
        records_.erase(p.id);
        break;
      case Persist::Kind::tombstone_drop:
        tombstones_.erase(p.id);
        break;
    }
    pending_.pop_front();
  }
}

}  // namespace meshwork::sim
