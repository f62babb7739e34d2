// The catalog: an in-memory index of every job record this node holds, kept in step with the
// store (Store::Observer). It answers the mesh's frequent questions without touching LevelDB:
// which jobs are unfinished (for ownership sweeps and takeover), and what each record's version
// is (for anti-entropy digests).
//
// A record's fingerprint is the first 8 bytes of BLAKE2b-256 of its stored encoding. Equal
// records encode to equal bytes (the codec is deterministic and merge is a join), so two
// replicas agree on a record exactly when their fingerprints agree. A bucket digest is the XOR
// of the fingerprints of the records in one arc of the circle: the ids' leading `bits` bits.
//
// Thread-safety: every method takes the catalog's mutex; callbacks passed in run under it and
// must not call back into the catalog.
// Memory: about 150 bytes per record held (id, fingerprint and the fields sweeps need).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dht/job_record.h"

namespace meshwork {

inline constexpr unsigned kDigestBitsMax = 12;

[[nodiscard]] uint64_t record_fingerprint(std::string_view encoded);

struct CatalogEntry {
  uint64_t fingerprint = 0;
  JobState state = JobState::queued;
  uint32_t attempt = 0;
  std::string claim_node;       // who holds the status (the claimant while running)
  uint64_t lease_until_ms = 0;  // while running
  uint64_t retry_at_ms = 0;     // while retry_wait
  bool cancel_requested = false;
};

class Catalog {
 public:
  using Keep = std::function<bool(const std::string& id)>;

  void put(const JobRecord& r, uint64_t fingerprint);
  [[nodiscard]] std::optional<CatalogEntry> find(const std::string& id) const;
  [[nodiscard]] bool contains(const std::string& id) const;
  [[nodiscard]] size_t size() const;
  [[nodiscard]] size_t unfinished_count() const;
  // Every unfinished record with its entry, in id order.
  [[nodiscard]] std::vector<std::pair<std::string, CatalogEntry>> unfinished() const;
  // 2^bits bucket digests over the records `keep` accepts.
  [[nodiscard]] std::vector<uint64_t> digests(unsigned bits, const Keep& keep) const;
  // (id, fingerprint) of the kept records in the given buckets, at most `max` in all.
  [[nodiscard]] std::vector<std::pair<std::string, uint64_t>> entries_in(
      unsigned bits, const std::set<uint32_t>& buckets, const Keep& keep, size_t max) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, CatalogEntry, std::less<>> entries_;  // by id = by ring position
  std::set<std::string, std::less<>> unfinished_;
};

// The bucket of a job id: its leading `bits` bits (ids are lowercase hex).
[[nodiscard]] uint32_t bucket_of(std::string_view id, unsigned bits);

}  // namespace meshwork
