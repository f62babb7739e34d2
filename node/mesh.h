// The mesh: placement, quorum replication, owner execution, failover and repair — the part that
// makes many nodes one job system (DESIGN.md §2, §5; docs/architecture.md).
//
//   write    POST on any node → admit (verify or sign) → replicas(id) → the record goes to all R
//            in parallel (this node's store and PeerClient) → acknowledged once W hold it durably;
//            fewer than W → Code::unavailable (503 + Retry-After), never a false acknowledgement
//   run      the owner (first usable replica) runs it: Jobs claims locally, confirm_claim ships
//            the claim and waits for a majority; outcome and lease renewals are shipped too
//   failover a sweep (every sweep_interval_ms and at once on every membership change) looks at the
//            unfinished jobs this node holds: it starts those it now owns, and takes over a running
//            job whose claimant is dead or left, or whose lease ran out (history: "owner n3 dead"),
//            after merging the other replicas' copies (the claimant may have told one it finished)
//   repair   a replica that missed a write gets a hint replayed when it is reachable again; anti-
//            entropy compares per-arc digests with each peer in turn and ships what differs both
//            ways (merge, never overwrite); reads merge all replicas and repair stale ones
//   read     GET merges the copies of every usable replica (and this node's) and repairs stale ones
//
// Threads: HTTP threads call submit/get/list/cancel and the peer handlers, and block until their
// quorum answers (bounded by peer_timeout_ms). Membership events arrive on the io thread and only
// swap the topology snapshot and wake the maintenance thread, which runs sweeps, hint replay and
// anti-entropy. Store callbacks (the writer thread) and PeerClient lanes only count acks and
// notify. The topology is an immutable snapshot behind a mutex-protected shared_ptr.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "gossip/membership.h"
#include "node/catalog.h"
#include "node/jobs.h"
#include "node/peer_client.h"
#include "node/store.h"
#include "node/topology.h"

namespace meshwork {

inline constexpr size_t kBatchJobsMax = 1'000;
inline constexpr unsigned kDigestBits = 8;               // 256 arcs per anti-entropy digest
inline constexpr size_t kAntiEntropyEntriesMax = 4'096;  // (id, fingerprint) pairs per exchange
inline constexpr size_t kHintsPerReplayMax = 512;
inline constexpr size_t kFanoutMax = 32;  // peers asked at once by a cluster-wide list or ring view

struct MeshOptions {
  PlacementOptions placement;
  PeerOptions peer;
  uint64_t peer_timeout_ms = 5'000;  // longest a request waits for its quorum
  uint64_t sweep_interval_ms = 1'000;
  uint64_t anti_entropy_interval_ms = 2'000;  // one peer per round, in turn
  uint64_t hint_replay_interval_ms = 1'000;
  uint64_t settle_ms = 1'500;       // after joining, before this node starts jobs it owns
  bool joining = false;             // started with seeds: not ready until another member is seen
  uint64_t lease_skew_ms = 2'000;   // a lease counts as expired this long after its end
  bool test_skip_takeover = false;  // tests only (--test-break skip-takeover): a broken build
};

struct MeshStats {
  uint64_t replicate_sent = 0, replicate_failed = 0, replicate_received = 0;
  uint64_t quorum_failures = 0, takeovers = 0, hints_stored = 0, hints_replayed = 0;
  uint64_t anti_entropy_rounds = 0, anti_entropy_pushed = 0, anti_entropy_pulled = 0;
  uint64_t read_repairs = 0, claims_confirmed = 0, claims_refused = 0;
  uint64_t backpressure_refusals = 0;  // submissions refused with 429: replication lagging
};

class Mesh {
 public:
  Mesh(Store& store, Jobs& jobs, const Identity& key, std::string self, std::string self_api,
       MeshOptions options);
  ~Mesh();
  Mesh(const Mesh&) = delete;
  Mesh& operator=(const Mesh&) = delete;

  // Wires the store observer and the job hooks, and builds the catalog from the store. Call
  // before Jobs::start(); then start() once the API is bound.
  [[nodiscard]] Status attach();
  void start();
  void stop();  // idempotent

  // Membership (io thread): a member changed; the topology is rebuilt.
  void on_member(const gossip::MemberInfo& m);

  // The public API's operations.
  struct ItemResult {
    Status status;         // ok, or why this item was refused
    bool created = false;  // false: the same signed job was already stored
    std::optional<JobRecord> record;
  };
  [[nodiscard]] ItemResult submit(const nlohmann::json& body);
  [[nodiscard]] std::vector<ItemResult> submit_batch(const std::vector<nlohmann::json>& bodies);
  [[nodiscard]] Result<JobRecord> get(const std::string& id, bool local_only);
  [[nodiscard]] Result<JobRecord> cancel(const std::string& id);
  [[nodiscard]] Result<Store::Page> list(const Jobs::ListQuery& q, bool local_only);
  [[nodiscard]] nlohmann::json placement_json(const std::string& id) const;  // owner, replicas
  [[nodiscard]] nlohmann::json ring_json();
  [[nodiscard]] nlohmann::json stats_json() const;
  [[nodiscard]] bool ready() const;

  // Peer-only endpoints (/internal/v1/<name>); `sender` is already authenticated. Returns the
  // response body, or an error for a bad request.
  [[nodiscard]] Result<std::string> handle_peer(const std::string& name, const std::string& sender,
                                                const std::string& body);
  // The raw public key of a member, for authenticating peer requests.
  [[nodiscard]] std::optional<std::string> public_key_of(std::string_view name) const;

 private:
  struct Quorum;
  std::shared_ptr<const Topology> topology() const;
  void rebuild_topology();
  bool owns(const JobRecord& r) const;
  void consider(const JobRecord& r);
  void on_stored(const JobRecord& r, std::string_view encoded);

  // Replication (mesh_write.cpp)
  void write_all(std::vector<std::shared_ptr<Quorum>>& items, const Topology& topo);
  Status replication_backlog(const std::vector<std::string>& replicas);
  void confirm_claim(const JobRecord& claimed, std::function<void(bool)> done);
  void replicate_async(const JobRecord& r);
  void send_to(const std::string& peer, const JobRecord& r, std::string encoded,
               std::function<void(const ReplicateAck&)> done);
  void remember_hint(const std::string& peer, const std::string& id);

  // Reads (mesh_read.cpp)
  Result<std::optional<JobRecord>> read_merged(const std::string& id, const Topology& topo);
  std::vector<Result<std::string>> call_each(const std::vector<std::string>& peers,
                                             const std::string& path, const std::string& body);

  // Maintenance thread (mesh_repair.cpp)
  void maintenance_loop();
  void sweep();
  void take_over(const std::string& id, const std::string& reason);
  // Takes over once the other usable replicas' copies are merged here (a later sweep decides).
  void take_over_after_read(const std::string& id, const std::string& reason,
                            const Topology& topo);
  void replay_hints();
  // `done` (optional) runs once the copy is merged here, or the fetch or merge failed.
  void pull_from(const std::string& peer, const std::string& id,
                 std::function<void()> done = {});
  void anti_entropy_round();
  void anti_entropy_with(const std::string& peer, const Topology& topo);
  Catalog::Keep shared_with(const std::string& peer, const Topology& topo) const;

  // Peer handlers (mesh_peer.cpp)
  bool verified(const JobRecord& r) const;
  // `done` also says whether this node held an earlier submission of the job (submitted_before).
  using PeerMergeFn = std::function<void(Status, Applied, bool submitted_before)>;
  Status merge_from_peer(Result<JobRecord> rec, PeerMergeFn done);
  Result<std::string> on_replicate(const std::string& body);
  Result<std::string> on_fetch(const std::string& body);
  Result<std::string> on_digest(const std::string& sender, const std::string& body);
  Result<std::string> on_list(const std::string& body);
  Result<std::string> on_held();

  Store& store_;
  Jobs& jobs_;
  const Identity& key_;
  const std::string self_;
  const std::string self_api_;
  const MeshOptions options_;
  Catalog catalog_;
  PeerClient peers_;
  uint64_t started_mono_ms_ = 0;

  mutable std::mutex topo_mu_;
  std::shared_ptr<const Topology> topology_;
  std::map<std::string, Peer> members_;  // guarded by topo_mu_: what gossip told us
  uint64_t topology_version_ = 0;
  std::atomic<bool> seen_peer_{false};

  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  bool wake_ = false;
  bool stopping_ = false;
  std::set<std::string> ae_soon_;  // peers to reconcile with first (joined or back)
  struct TakeoverRead {
    size_t left = 0;  // fetches not yet merged
    uint64_t started_ms = 0;
  };
  std::map<std::string, TakeoverRead> takeover_reads_;  // guarded by wake_mu_
  std::thread maintenance_;
  size_t ae_next_ = 0;

  mutable std::mutex stats_mu_;
  MeshStats stats_;
};

}  // namespace meshwork
