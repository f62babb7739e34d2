// The record index; see index.h.
#include "dht/index.h"

#include "dht/hash.h"

namespace meshwork {

uint64_t record_fingerprint(std::string_view encoded) {
  const std::string h = blake2b(encoded);
  uint64_t fp = 0;
  for (size_t i = 0; i < 8; ++i) fp = (fp << 8) | static_cast<uint8_t>(h[i]);
  return fp;
}

uint32_t bucket_of(std::string_view id, unsigned bits) {
  if (bits > kDigestBitsMax) bits = kDigestBitsMax;
  uint32_t v = 0;
  for (size_t i = 0; i < 3 && i < id.size(); ++i) {
    const char c = id[i];
    const uint32_t nibble = c >= 'a' ? uint32_t(c - 'a' + 10) : uint32_t(c - '0');
    v = (v << 4) | (nibble & 0xf);
  }
  return v >> (12 - bits);
}

void RecordIndex::put(const JobRecord& r, uint64_t fingerprint) {
  IndexEntry* found = nullptr;
  if (auto it = by_id_.find(r.id); it != by_id_.end()) found = it->second;
  const bool was_unfinished = found != nullptr && !is_terminal(found->state);
  if (found == nullptr) {
    auto [slot, added] = entries_.try_emplace(r.id);
    found = &slot->second;
    by_id_.emplace(std::string_view(slot->first), found);
  }
  IndexEntry& e = *found;  // keeps the placement cache of a record already here
  e.fingerprint = fingerprint;
  e.state = r.status.state;
  e.attempt = r.status.attempt;
  e.status_node = r.status.node;
  e.lease_until_ms = r.claim.lease_until_ms;
  e.retry_at_ms = r.status.retry_at_ms;
  e.run_after_ms = r.run_after_ms();
  e.status_at_ms = r.status.at_ms;
  e.created_at_ms = r.created_at_ms;
  e.priority = r.priority;
  e.redundancy = r.redundancy;
  e.cancel_requested = r.cancel_requested();
  const bool unfinished = !is_terminal(e.state);
  if (unfinished && !was_unfinished) unfinished_.insert(r.id);
  if (!unfinished && was_unfinished) unfinished_.erase(r.id);
}

void RecordIndex::erase(std::string_view id) {
  if (by_id_.erase(id) == 0) return;
  if (auto it = entries_.find(id); it != entries_.end()) entries_.erase(it);
  if (auto it = unfinished_.find(id); it != unfinished_.end()) unfinished_.erase(it);
}

const IndexEntry* RecordIndex::find(std::string_view id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

std::vector<uint64_t> RecordIndex::digests(unsigned bits, const Keep& keep) const {
  std::vector<uint64_t> d(size_t(1) << bits, 0);
  for (const auto& [id, e] : entries_)
    if (keep(id, e)) d[bucket_of(id, bits)] ^= e.fingerprint;
  return d;
}

std::vector<std::pair<std::string, uint64_t>> RecordIndex::entries_in(
    unsigned bits, const std::set<uint32_t>& buckets, const Keep& keep, size_t max) const {
  std::vector<std::pair<std::string, uint64_t>> out;
  for (const auto& [id, e] : entries_) {
    if (out.size() == max) break;
    if (buckets.contains(bucket_of(id, bits)) && keep(id, e)) out.emplace_back(id, e.fingerprint);
  }
  return out;
}

}  // namespace meshwork
