// ClusterView: the read-only, cluster-wide answers that are not part of the replica protocol —
// listing jobs across every member (scatter-gather over /internal/v1/list) and the ring view (with
// each member's count of held records over /internal/v1/held) — and this node's side of those two
// peer endpoints.
//
// Everything here runs on the calling HTTP thread and reads only the store, the driver's snapshot
// and member directory, and other members' answers: it never touches the replica core and never
// changes anything. A member that does not answer is skipped (its copies may be missing from a
// page; the ring view shows its jobs_held as null). A listing first waits for the store to write
// what the core had queued, so it never shows a job older than a read through the core just did.
//
// Wire contract (signed like every peer request, node/peer_auth.h):
//   POST /internal/v1/list  {"state":"","type":"","limit":n,"cursor":""}
//     200 {"records":[<record object>,...],"next_cursor":"..."}
//   POST /internal/v1/held  {}
//     200 {"held":n,"unfinished":n}
// Thread-safety: every method may be called from any thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "node/peer_client.h"
#include "node/replica_driver.h"
#include "node/store.h"

namespace meshwork {

inline constexpr size_t kFanoutMax = 32;  // peers asked at once by a cluster-wide list or ring view
// Longest a listing waits for the store to write what the core had queued (Store::wait_written).
inline constexpr uint64_t kListWaitWrittenMs = 1'000;

struct ListQuery {
  // A public state name (is_public_state_name), or "" for any: queued matches retry_wait too, and
  // scheduled the queued jobs not yet due (public_state, by this node's wall clock).
  std::string state;
  std::string type;
  size_t limit = 100;
  std::string cursor;
};

class ClusterView {
 public:
  ClusterView(Store& store, PeerClient& peers, const ReplicaDriver& driver, std::string self_api,
              uint64_t peer_timeout_ms);

  // This node's records only (local) or every usable member's, merged; newest first.
  [[nodiscard]] Result<Store::Page> list(const ListQuery& q, bool local_only) const;
  // GET /v1/cluster/ring.
  [[nodiscard]] nlohmann::json ring_json() const;
  // {"owner", "replicas"} of a job in the current placement.
  [[nodiscard]] nlohmann::json placement_json(const std::string& id) const;

  // The peer endpoints' answers; Code::malformed/invalid for a bad body.
  [[nodiscard]] Result<std::string> answer_list(const std::string& body) const;
  [[nodiscard]] std::string answer_held() const;

 private:
  [[nodiscard]] Result<Store::Page> list_local(const ListQuery& q) const;
  [[nodiscard]] std::vector<Result<std::string>> call_each(const std::vector<std::string>& peers,
                                                           const std::string& path,
                                                           const std::string& body) const;

  Store& store_;
  PeerClient& peers_;
  const ReplicaDriver& driver_;
  const std::string self_api_;
  const uint64_t peer_timeout_ms_;
};

}  // namespace meshwork
