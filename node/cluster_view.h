// ClusterView: the read-only, cluster-wide answers that are not part of the replica protocol —
// listing jobs across every member (scatter-gather of ListRequest) and the ring view (with each
// member's count of held records: HeldRequest) — and this node's side of those two requests.
//
// The requests and their answers travel over the framed peer transport (dht/messages.h, kinds
// 6–9; docs/protocol.md) but never reach the replica core: the node hands them here (receive)
// instead of to ReplicaDriver::receive. They read only the store, the driver's snapshot and
// member directory, and other members' answers, and change nothing.
//
//   asking (an HTTP thread)  one request per usable peer, posted to the loop (PeerTransport::send
//                            is the loop's), then the thread waits until every peer answered, its
//                            message failed, or peer_timeout_ms passed; a member that does not
//                            answer is skipped (its copies may be missing from a page; the ring
//                            view shows its jobs_held as null)
//   answering (the loop)     HeldRequest from the snapshot at once; ListRequest queued to the
//                            view's one worker thread (mw-list: a listing reads LevelDB, which must
//                            not stall the loop), at most kListQueueMax waiting (more are dropped
//                            and counted: the asker skips this member); the answer is posted back
//                            to the loop and sent there
// A listing first waits for the store to write what the core had queued, so it never shows a job
// older than a read through the core just did.
//
// Thread-safety: list, ring_json and replicas_of from any thread; receive on the loop thread;
// stop() from the thread that owns the node, before the loop stops. Answers to requests this view
// no longer waits for (timed out) are dropped.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "dht/messages.h"
#include "node/peer_transport.h"
#include "node/replica_driver.h"
#include "node/store.h"

namespace meshwork {

inline constexpr size_t kListQueueMax = 64;  // peers' list requests waiting for the worker
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
  // Starts the worker thread.
  ClusterView(asio::io_context& io, Store& store, PeerTransport& transport,
              const ReplicaDriver& driver, std::string self_api, uint64_t peer_timeout_ms);
  ~ClusterView();  // stop()
  ClusterView(const ClusterView&) = delete;
  ClusterView& operator=(const ClusterView&) = delete;

  // This node's records only (local) or every usable member's, merged; newest first.
  [[nodiscard]] Result<Store::Page> list(const ListQuery& q, bool local_only);
  // GET /v1/cluster/ring.
  [[nodiscard]] nlohmann::json ring_json();
  // The replicas of a job in the current placement, its owner first (none before a placement).
  [[nodiscard]] std::vector<std::string> replicas_of(const std::string& id) const;

  // A message from an authenticated member that is not a replica message (loop thread).
  void receive(const std::string& from, Message&& m);
  // Ends the worker (list requests still queued are dropped). Idempotent.
  void stop();
  // List requests dropped because kListQueueMax were waiting; any thread.
  [[nodiscard]] uint64_t lists_dropped() const { return lists_dropped_.load(); }

 private:
  struct Gather;  // one scatter-gather's answers
  struct Asked {  // one request in flight
    std::shared_ptr<Gather> gather;
    size_t index;        // its peer's place in the gather
    std::string peer;    // who must answer
    size_t answer_kind;  // the Message index the answer must have
  };

  [[nodiscard]] Result<Store::Page> list_local(const ListQuery& q) const;
  // One request per peer (make(corr) builds it); each peer's answer, or nullopt.
  [[nodiscard]] std::vector<std::optional<Message>> call_each(
      const std::vector<std::string>& peers, size_t answer_kind,
      const std::function<Message(uint64_t corr)>& make);
  void settle(uint64_t corr, const std::string* from, std::optional<Message> answer);
  void answer_list(const std::string& to, const ListRequest& q) const;
  void send_on_loop(const std::string& to, const Message& m) const;
  void work();

  asio::io_context& io_;
  Store& store_;
  PeerTransport& transport_;
  const ReplicaDriver& driver_;
  const std::string self_api_;
  const uint64_t peer_timeout_ms_;

  std::mutex asked_mu_;  // guards the two fields below and every Gather
  std::condition_variable answered_;
  uint64_t next_corr_ = 1;
  std::map<uint64_t, Asked> asked_;

  std::mutex work_mu_;  // guards the two fields below
  std::condition_variable work_cv_;
  std::deque<std::pair<std::string, ListRequest>> work_;
  bool stopping_ = false;
  std::atomic<uint64_t> lists_dropped_{0};
  std::thread worker_;  // last: started once everything above exists
};

}  // namespace meshwork
