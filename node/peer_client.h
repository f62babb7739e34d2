// PeerClient: the node's outgoing calls to other nodes (replicate, fetch, and one-off calls).
//
// Replication and fetches are coalesced. Each peer has one queue per kind and `lanes` sender
// threads, each with its own keep-alive connection. A lane waits for work, takes up to
// batch_items_max items (and batch_bytes_max body bytes) of one kind, sends ONE signed request,
// reads the per-item answers and runs each item's callback. While a request is in flight new items
// pile up and leave together in the next request, so the request rate adapts to the peer's speed.
//
// Wire contract (served by api/):
//   POST /internal/v1/replicate  binary (application/octet-stream): u8 kReplicateBodyVersion,
//                                u32 count, then count × (u32 length, encoded record), integers
//                                little-endian; records in encode_record's binary form. (The
//                                receiver also takes the older {"records":[<record object>,...]}.)
//     200 {"results":[{"ok":true,"existed":b,"state":"<internal name>","attempt":n,"node":"..",
//                      "cancel":b} | {"ok":false,"error":".."}, ...]}   (same order and count)
//   POST /internal/v1/fetch      {"ids":["<64 hex>",...]}
//     200 {"records":[<record object> | null, ...]}                     (same order and count)
// Every request is signed (node/peer_auth.h). Responses are untrusted: a response that is not
// exactly this shape, or larger than response_bytes_max, fails its batch with Code::io_error; an
// item the replica refused ({"ok":false}) or answered wrongly fails alone, also with io_error.
// A request that cannot be completed (refused, timed out, interrupted by stop) fails its batch
// with Code::unavailable; a non-200 answer fails it with a code for that status (429 overloaded,
// 5xx unavailable, else io_error). Nothing is retried here: callers decide (hinted handoff etc.).
//
// Thread-safety: every public method may be called from any thread, except that stop() and the
// destructor must not be called from a callback. Callbacks run exactly once, without any lock of
// PeerClient held, on a lane thread or inline in the calling thread (unknown peer, full queue,
// removed peer, stopped client); they may call replicate(), fetch(), call() and set_peers(). They
// must not throw.
// Invariants: threads = lanes × peers that ever had an item (started on the first item; a removed
// peer's lanes exit after their request in flight and are joined by a later set_peers or stop);
// pending items per peer ≤ queue_items_max and their bytes ≤ queue_bytes_max.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "node/crypto.h"
#include "dht/job_record.h"
#include "dht/result.h"

namespace meshwork {

namespace peer_detail {
struct Peer;   // one peer's queues, lanes, connections and counters
struct Conn;   // one keep-alive connection to a peer's address
struct Batch;  // the items of one request
}  // namespace peer_detail

inline constexpr const char* kReplicatePath = "/internal/v1/replicate";
inline constexpr const char* kFetchPath = "/internal/v1/fetch";
inline constexpr size_t kPeerCallIdleMax = 4;  // idle keep-alive connections kept for call()
inline constexpr uint8_t kReplicateBodyVersion = 2;  // first byte of a binary replicate body

// The binary replicate body holding `records` (each as encode_record makes it).
[[nodiscard]] std::string replicate_body(const std::vector<std::string_view>& records);
// The records of a binary replicate body, viewing into `body`; Code::malformed when the body is
// not exactly that shape, Code::too_large when it holds more than `items_max` records. Never
// throws; reads nothing past the body.
[[nodiscard]] Result<std::vector<std::string_view>> parse_replicate_body(std::string_view body,
                                                                         size_t items_max);

// What a replica says after merging a record into its store (durably).
struct ReplicateAck {
  Status status;         // not ok: the replica did not take it (unreachable, refused, timed out)
  bool existed = false;  // it already held a copy before this merge
  JobState state = JobState::queued;  // status after the merge
  uint32_t attempt = 0;
  std::string node;
  bool cancel_requested = false;
};

struct PeerOptions {
  size_t lanes = 2;                        // concurrent connections (sender threads) per peer
  size_t batch_items_max = 512;            // items per request
  size_t batch_bytes_max = 4 << 20;        // body bytes per request (a larger item goes alone)
  size_t queue_items_max = 200'000;        // pending items per peer, then Code::overloaded
  size_t queue_bytes_max = 512u << 20;     // pending payload bytes per peer, likewise
  size_t response_bytes_max = 256u << 20;  // a larger response fails its batch
  uint64_t connect_timeout_ms = 1'000;
  uint64_t io_timeout_ms = 5'000;  // read and write timeout of lane requests
};

class PeerClient {
 public:
  using ReplicateDone = std::function<void(ReplicateAck)>;
  using FetchDone = std::function<void(Result<std::optional<std::string>>)>;

  PeerClient(const Identity& key, std::string self, PeerOptions options);
  ~PeerClient();  // stop()
  PeerClient(const PeerClient&) = delete;
  PeerClient& operator=(const PeerClient&) = delete;

  // Replaces the set of known peers: name -> "host:port" of its API. Peers not in the map are
  // dropped: their queued items fail with Code::unavailable (a request already in flight still
  // completes and reports its answers). A changed address takes effect for the next request.
  // Ignored after stop().
  void set_peers(std::map<std::string, std::string> addresses);

  // Queues a record (as encode_record makes it: binary, starting with its version byte) for
  // `peer`. `done` runs exactly once. Bytes that do not start so fail inline with Code::invalid.
  void replicate(const std::string& peer, std::string record, ReplicateDone done);

  // Queues a fetch of job `id` (64 hex) from `peer`; `done` gets the record's JSON text, nullopt
  // when the peer has no copy, or an error. A fetched record's "id" must equal the one asked for.
  void fetch(const std::string& peer, std::string id, FetchDone done);

  // A signed blocking POST of `body` (JSON) to `path` (plain, no query) on `peer`: the response
  // body for 200, else an error with the status and a short detail. Uses a small pool of
  // keep-alive connections per peer, separate from the lanes; stop() does not interrupt it.
  [[nodiscard]] Result<std::string> call(const std::string& peer, const std::string& path,
                                         const std::string& body, uint64_t timeout_ms);

  // How long the oldest record queued for `peer` has waited (0: none waiting, or unknown peer):
  // the replication lag, which the mesh uses to refuse new work before it would time out.
  [[nodiscard]] uint64_t replicate_lag_ms(const std::string& peer) const;

  // Fails everything queued with Code::unavailable, interrupts requests in flight (their items
  // fail too), joins every thread. Idempotent.
  void stop();

  // {"<peer>": {"requests", "requests_failed", "items", "items_failed", "rejected",
  //             "queue_items", "queue_bytes", "replicate_lag_ms", "mean_batch"}, ...} for the
  //             current peers.
  [[nodiscard]] nlohmann::json stats_json() const;

 private:
  using Peer = peer_detail::Peer;

  [[nodiscard]] Result<std::shared_ptr<Peer>> find_peer(const std::string& name) const;
  template <typename Item>
  [[nodiscard]] Status push(const std::shared_ptr<Peer>& p, Item& item);
  void start_lanes_locked(const std::shared_ptr<Peer>& p);
  void lane_main(const std::shared_ptr<Peer>& p, size_t lane);
  void run_batch(Peer& p, peer_detail::Conn& conn, peer_detail::Batch& batch) const;
  [[nodiscard]] std::shared_ptr<peer_detail::Conn> make_conn(const Peer& p,
                                                             uint64_t io_timeout_ms) const;
  [[nodiscard]] Result<std::string> post(peer_detail::Conn& conn, const std::string& peer,
                                         const std::string& path, std::string body) const;
  void reap_retired();

  const Identity key_;
  const std::string self_;
  const PeerOptions options_;

  mutable std::mutex mu_;  // guards the fields below; taken before any Peer::mu
  bool stopped_ = false;
  std::map<std::string, std::shared_ptr<Peer>> peers_;
  std::vector<std::shared_ptr<Peer>> retired_;  // removed, their lanes finishing
};

}  // namespace meshwork
