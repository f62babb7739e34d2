// The record index; see index.h.
#include "dht/index.h"

#include <algorithm>

#include "dht/hash.h"

namespace meshwork {
namespace {

bool hex_led(std::string_view id) {
  if (id.size() < 3) return false;
  for (size_t i = 0; i < 3; ++i)
    if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) return false;
  return true;
}

// The smallest 3-digit id prefix of 12-bit value v (v < 4096).
std::string hex3(uint32_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  return {kDigits[(v >> 8) & 0xf], kDigits[(v >> 4) & 0xf], kDigits[v & 0xf]};
}

}  // namespace

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
  std::string_view key;
  if (auto it = by_id_.find(r.id); it != by_id_.end()) {
    key = it->first;
    found = it->second;
  }
  const bool was_unfinished = found != nullptr && !is_terminal(found->state);
  if (found == nullptr) {
    auto slot = entries_.try_emplace(IdKey(r.id)).first;
    found = &slot->second;
    key = slot->first.id;
    found->id = key;
    by_id_.emplace(key, found);
    placed_[0]++;
    if (!hex_led(r.id)) odd_ids_++;
  }
  IndexEntry& e = *found;  // keeps the placement cache of a record already here
  if (e.fingerprint != fingerprint) share(r.id, e, e.fingerprint ^ fingerprint, 0);
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
  if (unfinished && !was_unfinished) link_unfinished(e);
  if (!unfinished && was_unfinished) unlink_unfinished(e);
}

void RecordIndex::link_unfinished(IndexEntry& e) {
  e.unfinished_prev = unfinished_.tail;
  e.unfinished_next = nullptr;
  (unfinished_.tail != nullptr ? unfinished_.tail->unfinished_next : unfinished_.head) = &e;
  unfinished_.tail = &e;
  unfinished_.size++;
}

void RecordIndex::unlink_unfinished(IndexEntry& e) {
  (e.unfinished_prev != nullptr ? e.unfinished_prev->unfinished_next : unfinished_.head) =
      e.unfinished_next;
  (e.unfinished_next != nullptr ? e.unfinished_next->unfinished_prev : unfinished_.tail) =
      e.unfinished_prev;
  e.unfinished_prev = e.unfinished_next = nullptr;
  unfinished_.size--;
}

void RecordIndex::erase(std::string_view id) {
  auto at = by_id_.find(id);
  if (at == by_id_.end()) return;
  IndexEntry& e = *at->second;
  share(id, e, e.fingerprint, -1);
  if (auto p = placed_.find(e.placed_version); p != placed_.end() && --p->second == 0)
    placed_.erase(p);
  if (!hex_led(id)) odd_ids_--;
  if (!is_terminal(e.state)) unlink_unfinished(e);
  by_id_.erase(at);
  if (auto it = entries_.find(id); it != entries_.end()) entries_.erase(it);  // the keys' storage
}

void RecordIndex::place(std::string_view id, std::vector<std::string> replicas, uint64_t version) {
  auto at = by_id_.find(id);
  if (at == by_id_.end()) return;
  IndexEntry& e = *at->second;
  share(id, e, e.fingerprint, -1);
  if (auto p = placed_.find(e.placed_version); p != placed_.end() && --p->second == 0)
    placed_.erase(p);
  e.replicas = std::move(replicas);
  e.placed_version = version;
  placed_[version]++;
  share(id, e, e.fingerprint, +1);
}

void RecordIndex::share_as(std::string self, unsigned bits) {
  self_ = std::move(self);
  share_bits_ = std::min(bits, kDigestBitsMax);
}

void RecordIndex::share(std::string_view id, const IndexEntry& e, uint64_t fp, int sign) {
  if (self_.empty() || std::find(e.replicas.begin(), e.replicas.end(), self_) == e.replicas.end())
    return;
  const uint32_t bucket = bucket_of(id, share_bits_);
  for (auto m = e.replicas.begin(); m != e.replicas.end(); ++m) {
    if (*m == self_ || std::find(e.replicas.begin(), m, *m) != m) continue;  // each peer once
    auto it = shared_.find(*m);
    if (it == shared_.end()) {
      if (sign <= 0) continue;  // not counted there (cannot happen while in step)
      it = shared_.emplace(*m, Shared{std::vector<uint64_t>(size_t(1) << share_bits_, 0), 0}).first;
    }
    it->second.digests[bucket] ^= fp;
    if (sign > 0) it->second.records++;
    if (sign < 0 && --it->second.records == 0) shared_.erase(it);
  }
}

bool RecordIndex::all_placed_at(uint64_t version) const {
  return entries_.empty() || (placed_.size() == 1 && placed_.begin()->first == version);
}

std::vector<uint64_t> RecordIndex::shared_digests(const std::string& peer) const {
  auto it = shared_.find(peer);
  return it == shared_.end() ? std::vector<uint64_t>(size_t(1) << share_bits_, 0)
                             : it->second.digests;
}

const IndexEntry* RecordIndex::find(std::string_view id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

std::vector<uint64_t> RecordIndex::digests(unsigned bits, const Keep& keep) const {
  std::vector<uint64_t> d(size_t(1) << bits, 0);
  for (const auto& [key, e] : entries_)
    if (keep(key.id, e)) d[bucket_of(key.id, bits)] ^= e.fingerprint;
  return d;
}

std::vector<std::pair<std::string, uint64_t>> RecordIndex::entries_in(
    unsigned bits, const std::set<uint32_t>& buckets, const Keep& keep, size_t max) const {
  std::vector<std::pair<std::string, uint64_t>> out;
  if (bits > kDigestBitsMax) bits = kDigestBitsMax;
  if (odd_ids_ > 0) {  // an id outside the arcs' order: walk everything
    for (const auto& [key, e] : entries_) {
      if (out.size() == max) break;
      if (buckets.contains(bucket_of(key.id, bits)) && keep(key.id, e))
        out.emplace_back(key.id, e.fingerprint);
    }
    return out;
  }
  // Every id is led by 3 lowercase hex digits, so bucket b holds exactly the ids from
  // hex3(b << (12 - bits)) up to the next bucket's first prefix, in the map's order.
  const unsigned shift = kDigestBitsMax - bits;
  for (uint32_t b : buckets) {
    if (b >= (uint32_t{1} << bits)) continue;
    auto it = entries_.lower_bound(hex3(b << shift));
    const uint32_t next = (b + 1) << shift;
    auto end = next >= (uint32_t{1} << kDigestBitsMax) ? entries_.end()
                                                        : entries_.lower_bound(hex3(next));
    for (; it != end; ++it) {
      if (out.size() == max) return out;
      if (keep(it->first.id, it->second)) out.emplace_back(it->first.id, it->second.fingerprint);
    }
  }
  return out;
}

}  // namespace meshwork
