// The in-memory catalog of held records; see catalog.h.
#include "node/catalog.h"

#include <cassert>

#include "node/crypto.h"

namespace meshwork {

uint64_t record_fingerprint(std::string_view encoded) {
  const std::string h = blake2b(encoded);
  uint64_t fp = 0;
  for (size_t i = 0; i < 8; ++i) fp = (fp << 8) | static_cast<uint8_t>(h[i]);
  return fp;
}

uint32_t bucket_of(std::string_view id, unsigned bits) {
  assert(bits <= kDigestBitsMax);
  uint32_t v = 0;
  for (size_t i = 0; i < 3 && i < id.size(); ++i) {
    const char c = id[i];
    const uint32_t nibble = c >= 'a' ? uint32_t(c - 'a' + 10) : uint32_t(c - '0');
    v = (v << 4) | (nibble & 0xf);
  }
  return v >> (12 - bits);
}

void Catalog::put(const JobRecord& r, uint64_t fingerprint) {
  CatalogEntry e{fingerprint,       r.status.state,         r.status.attempt,
                 r.status.node,     r.claim.lease_until_ms, r.status.retry_at_ms,
                 r.cancel_requested};
  std::lock_guard lock(mu_);
  if (is_terminal(e.state)) {
    unfinished_.erase(r.id);
  } else {
    unfinished_.insert(r.id);
  }
  entries_.insert_or_assign(r.id, std::move(e));
}

std::optional<CatalogEntry> Catalog::find(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

bool Catalog::contains(const std::string& id) const {
  std::lock_guard lock(mu_);
  return entries_.contains(id);
}

size_t Catalog::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

size_t Catalog::unfinished_count() const {
  std::lock_guard lock(mu_);
  return unfinished_.size();
}

std::vector<std::pair<std::string, CatalogEntry>> Catalog::unfinished() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, CatalogEntry>> out;
  out.reserve(unfinished_.size());
  for (const std::string& id : unfinished_) out.emplace_back(id, entries_.find(id)->second);
  return out;
}

std::vector<uint64_t> Catalog::digests(unsigned bits, const Keep& keep) const {
  std::vector<uint64_t> d(size_t(1) << bits, 0);
  std::lock_guard lock(mu_);
  for (const auto& [id, e] : entries_)
    if (keep(id)) d[bucket_of(id, bits)] ^= e.fingerprint;
  return d;
}

std::vector<std::pair<std::string, uint64_t>> Catalog::entries_in(unsigned bits,
                                                                  const std::set<uint32_t>& buckets,
                                                                  const Keep& keep,
                                                                  size_t max) const {
  std::vector<std::pair<std::string, uint64_t>> out;
  std::lock_guard lock(mu_);
  for (const auto& [id, e] : entries_) {
    if (out.size() == max) break;
    if (buckets.contains(bucket_of(id, bits)) && keep(id)) out.emplace_back(id, e.fingerprint);
  }
  return out;
}

}  // namespace meshwork
