// ReplicaDriver: runs the replica core (dht/replica.h) on the node's one io_context thread — the
// loop — and carries out its actions. It is the only code that touches the core.
//
//   input (who posts it to the loop)          action (what the driver does with it)
//   boot: stored records, hints (Node::open)  persists → Store::write (pipelined group commit)
//   set_member: gossip events (on the loop)   sends    → encode_message → PeerTransport::send,
//   submit/cancel/read: HTTP threads                     then one PeerTransport::flush
//   receive: PeerTransport (on the loop)      replies  → wake the HTTP thread that waits
//   undeliverable: PeerTransport (posted)     starts   → JobRunner::start (a worker)
//                                             stops    → JobRunner::stop (cancel token)
//   durable: the store's writer thread        logs     → log_event
//   handler_done: executor workers (queued)
//   tick: a steady_timer at next_deadline_ms()
// Outcomes are signed on the loop, not on the workers: a worker queues its outcome, and the first
// one queued posts take_outcomes, which tells the core each handler has ended (handler_ended: its
// worker is free for the next job) and keeps the outcomes. They are signed together — one Merkle
// root and one Ed25519 signature per kReceiptBatchMax (JobRunner::sign_batch) — and handed to the
// core (handler_done) at most once per receipt linger (set_receipt_linger_ms, default
// kReceiptLingerMsDefault): at once when the last signature is older than that, else when it
// will be. A lightly loaded node signs each outcome as it comes; a busy one signs the outcomes of
// a few milliseconds at a time, and its replicas verify one signature for them all.
// After every input the driver drains output(), re-arms the timer when the deadline moved, and
// publishes a Snapshot (counters, readiness, backlog, placement) that HTTP threads read without
// touching the core. Time comes from node/clock.h as Now{mono_ms, wall_ms}; a test may set the
// core's wall clock off by wall_offset_ms (meshwork node --test-clock-offset-ms) to stage a node
// whose clock is wrong: it then writes shifted times into claims, leases, retries and history.
//
// The driver also keeps what the transport and the views need to know of each member —
// its gossip address (where PeerTransport connects), API address (the ring view shows it) and
// public key, from gossip — in a directory other threads may read.
//
// Thread-safety: submit/cancel/read/snapshot/public_key_of/members from any thread (they post to
// the loop or read mutex-guarded copies); receive, on_member and everything private on the loop;
// boot() and stop() from the thread that owns the node.
// Invariants:
//   1. Only the loop thread calls the Replica; no lock is held while it runs.
//   2. Every client request gets exactly one answer: the core's Reply, or Code::unavailable when
//      none came within peer_timeout_ms + kReplyMarginMs (or the node is stopping); a submission
//      also waits the core's admission_wait_ms, which it may spend waiting to be admitted before
//      its quorum write starts (dht/replica_admit.cpp).
//   3. An action is carried out in the order the core emitted it within its kind; persists reach
//      the store in seq order.
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "dht/replica.h"
#include "gossip/membership.h"
#include "node/event_hub.h"
#include "node/job_runner.h"
#include "node/peer_transport.h"
#include "node/store.h"

namespace meshwork {

// How much longer than the core's own peer timeout an HTTP thread waits for a reply.
inline constexpr uint64_t kReplyMarginMs = 1'000;
// The loop wakes at least this often to refresh the snapshot (readiness changes with time alone).
inline constexpr uint64_t kSnapshotRefreshMs = 1'000;
// Outcomes are signed at most once per this many ms (0: each batch as it reaches the loop).
inline constexpr uint64_t kReceiptLingerMsDefault = 5;
inline constexpr uint64_t kReceiptLingerMsMax = 1'000;

// What HTTP threads may know of the core, as of the last drain.
struct ReplicaSnapshot {
  bool ready = false;
  size_t backlog = 0, running = 0, hints = 0, held = 0, unfinished = 0, tombstones = 0;
  ReplicaStats stats;
  std::shared_ptr<const Placement> placement;
  std::shared_ptr<const Reputation> reputation;  // copied again only when it took evidence
};

// A member as gossip describes it.
struct MemberView {
  std::string api;         // host:port of its API
  std::string peer;        // ip:port of its gossip socket, where its peer transport listens
  std::string public_key;  // raw Ed25519 key, 32 bytes ("" when unusable)
  MemberState state = MemberState::alive;
};

[[nodiscard]] MemberState member_state_of(gossip::MemberState s);

class ReplicaDriver {
 public:
  // `check` verifies a job's envelope on the worker that runs it (JobRunner); the core stores
  // what authenticated members send without it (docs/protocol.md, trust model). `sign` signs the
  // runner's results in batches on the loop (a broken one only under --test-break lie|forge).
  ReplicaDriver(asio::io_context& io, std::string self, ReplicaConfig config, Store& store,
                PeerTransport& transport, const Identity& key, EnvelopeCheck check,
                int64_t wall_offset_ms = 0, JobRunner::Signer sign = &JobRunner::sign_batch);
  ~ReplicaDriver();
  ReplicaDriver(const ReplicaDriver&) = delete;
  ReplicaDriver& operator=(const ReplicaDriver&) = delete;

  // Loads every stored record and hint into the core, starts the store's writer and the core.
  // Blocks until done on the loop (which must be running).
  [[nodiscard]] Status boot();
  // Where job state changes (records persisted here) and member changes are published; set
  // before boot(), outlives the driver.
  void set_events(EventHub* events) { events_ = events; }
  // How long outcomes may wait to be signed together (≤ kReceiptLingerMsMax); before boot().
  void set_receipt_linger_ms(uint64_t ms) { receipt_linger_ms_ = std::min(ms, kReceiptLingerMsMax); }
  // Stops handlers (their outcomes are dropped), stops taking inputs and answers waiting requests
  // with Code::unavailable. The loop must still be running. Idempotent.
  void stop();

  // Client requests: block until the core answers (see invariant 2).
  [[nodiscard]] Result<std::vector<ItemResult>> submit(std::vector<JobRecord> admitted);
  [[nodiscard]] Result<ItemResult> cancel(const std::string& id);
  [[nodiscard]] Result<ItemResult> retry(const std::string& id);
  [[nodiscard]] Result<ItemResult> read(const std::string& id);
  // Peer messages, decoded and from an authenticated sender (loop thread).
  void receive(const std::string& from, std::vector<Message>&& messages);
  // Gossip: a member changed (loop thread).
  void on_member(const gossip::MemberInfo& m);

  [[nodiscard]] ReplicaSnapshot snapshot() const;
  [[nodiscard]] std::optional<std::string> public_key_of(std::string_view name) const;
  [[nodiscard]] std::map<std::string, MemberView> members() const;
  [[nodiscard]] const ReplicaConfig& config() const { return config_; }
  [[nodiscard]] size_t workers() const { return runner_.workers(); }
  // Batches of outcomes signed so far (one signature each); any thread.
  [[nodiscard]] uint64_t signed_batches() const { return signed_batches_; }

 private:
  using Input = std::function<void(Replica&, Now, uint64_t request)>;
  // Waits peer_timeout_ms + `extra_ms` + kReplyMarginMs for the reply.
  [[nodiscard]] Result<Reply> request(Input input, uint64_t extra_ms = 0);
  void drain();
  void send(Send& s);
  void publish();
  void arm_timer();
  void on_timer();
  [[nodiscard]] Now now() const;
  void report(Outcome&& o);
  void take_outcomes();
  void sign_outcomes();

  asio::io_context& io_;
  const std::string self_;
  const ReplicaConfig config_;
  const int64_t wall_offset_ms_;  // tests only: this node's wall clock set off (signed)
  Store& store_;
  PeerTransport& transport_;
  const Identity& key_;
  const JobRunner::Signer sign_;
  JobRunner runner_;
  std::unique_ptr<Replica> replica_;  // loop thread only
  EventHub* events_ = nullptr;

  // Loop thread only.
  asio::steady_timer timer_;
  bool timer_armed_ = false;
  uint64_t timer_at_ms_ = 0;
  bool stopped_ = false;
  std::unordered_map<uint64_t, std::shared_ptr<std::promise<Reply>>> waiters_;

  // Outcomes workers reported that the loop has not taken yet, and whether a post will.
  std::mutex outcomes_mu_;
  std::vector<Outcome> outcomes_;  // guarded by outcomes_mu_
  bool outcomes_posted_ = false;   // guarded by outcomes_mu_
  std::atomic<uint64_t> signed_batches_{0};
  // Loop thread only: outcomes taken (their handlers ended in the core) and not signed yet.
  uint64_t receipt_linger_ms_ = kReceiptLingerMsDefault;
  std::vector<Outcome> unsigned_;
  uint64_t last_signed_ms_ = 0;  // mono
  asio::steady_timer sign_timer_;
  bool sign_timer_armed_ = false;

  std::atomic<uint64_t> next_request_{1};
  std::atomic<bool> stopping_{false};

  mutable std::mutex snapshot_mu_;
  ReplicaSnapshot snapshot_;

  mutable std::mutex members_mu_;
  std::map<std::string, MemberView> members_;
};

}  // namespace meshwork
