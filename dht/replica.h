// The replica core: the replica protocol of the mesh as one pure, deterministic state machine.
//
// It decides everything that makes many nodes one job system — placement (placement.h), quorum
// writes, claims and leases, which handler runs where, takeover (dead, left, lease expired),
// hinted handoff, anti-entropy, merged reads with repair, back-pressure — and does none of the
// I/O. Events go in; actions come out in output():
//
//   in                                        out (Output)
//   start / load / load_hint (boot)           persists    records (and hints) to write, in order
//   set_member (membership view)              sends       messages to peers (messages.h)
//   submit / cancel / read (client)           replies     answers to client requests
//   receive / undeliverable (peer transport)  starts      handlers to start (id, attempt, record)
//   durable (the store synced up to a seq)    stops       handlers to stop (cancel, superseded,
//   handler_done (a handler's outcome)                    timed out)
//   tick (time passes)                        logs        events worth a log line
//
// The node (node/mesh.h) runs it on its one io_context thread: sockets, LevelDB, the executor.
// The simulator (simulations/sim/) runs thousands of them on virtual time and a lossy virtual
// network, so a failover bug found there replays from its seed.
//
// Time: every input carries Now: `mono_ms` drives timers (monotonic), `wall_ms` is written into
// records (claims, leases, history) and compared with leases. Randomness (backoff jitter, anti-
// entropy peer order) comes from the seeded Rng in the config. Nothing else varies.
//
// Durability: a record this core changes goes out as a Persist with a sequence number; the store
// writes persists in sequence order and calls durable(seq) once every persist up to seq is on
// disk. Until then the core keeps the record in memory (the overlay) and reads through it; after,
// it reads through the RecordReader (the store). Nothing is acknowledged — to a client (202) or to
// a peer (ReplicateAck) — before the persists it depends on are durable.
//
// Thread-safety: none; one thread owns a Replica. Invariants (checked, counted on violation):
//   1. A client is told `ok` for a write only after W replicas (this node's disk counting as one)
//      said the record is durable.
//   2. A handler is started only for a job this node owns, whose claim it has just persisted, and
//      at most config.workers at once; an outcome is recorded only for the attempt whose claim a
//      majority of the replicas confirmed and that still holds the status (running, attempt,
//      self).
//   3. A record is only ever replaced by its merge with something (never overwritten), so every
//      copy converges whatever the order of delivery.
//   4. A handler whose claim this node learns is superseded (another attempt, a terminal state,
//      a cancel) is stopped.
//   5. Peer input is untrusted: a record whose envelope fails the check, an answer nobody asked
//      for or from the wrong peer, an impossible transition — each is refused and counted, never
//      asserted.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "dht/index.h"
#include "dht/job_record.h"
#include "dht/messages.h"
#include "dht/placement.h"
#include "dht/result.h"

namespace meshwork {

// A crash or a lost owner interrupts an attempt through no fault of the job; such attempts may run
// past max_attempts by at most this many, so that a job that kills its node cannot loop forever.
inline constexpr uint32_t kInterruptedAttemptsExtraMax = 3;
inline constexpr size_t kBatchJobsMax = 1'000;        // records in one client submit
inline constexpr size_t kHintsPerReplayMax = 512;     // records replayed to one target per round
inline constexpr size_t kAntiEntropyEntriesMax = 4'096;
static_assert(kAntiEntropyEntriesMax <= kMessageItemsMax);
static_assert(kBatchJobsMax <= kMessageItemsMax);

struct Now {
  uint64_t mono_ms = 0;  // timers
  uint64_t wall_ms = 0;  // records
};

struct ReplicaConfig {
  PlacementOptions placement;
  uint32_t workers = 2;            // handlers running at once on this node
  size_t backlog_max = 10'000;     // runnable jobs waiting here before submissions get 429
  uint64_t peer_timeout_ms = 5'000;  // longest a quorum, read or fetch waits for answers
  uint64_t sweep_interval_ms = 1'000;
  uint64_t anti_entropy_interval_ms = 2'000;      // between rounds while replicas differ
  uint64_t anti_entropy_interval_ms_max = 30'000;  // backed off to while they agree
  uint64_t hint_replay_interval_ms = 1'000;
  uint64_t settle_ms = 1'500;         // after joining, before this node starts jobs it owns
  uint64_t alone_after_ms = 10'000;   // seeds never answered: run as a mesh of one
  bool joining = false;               // started with seeds: not ready until another member is seen
  uint64_t lease_ms = 15'000;         // a claim's lease, renewed every lease_ms / 3
  uint64_t lease_skew_ms = 2'000;     // a lease counts as expired this long after its end
  uint64_t backoff_base_ms = 500;
  uint64_t backoff_max_ms = 30'000;
  uint64_t seed = 1;                  // jitter and peer order
  bool take_over = true;  // false only in the deliberately broken build of the chaos test
};

// Checks a record's envelope (its signature) before a copy new to this node is stored. The node
// verifies Ed25519; the simulator's records carry a check of its own.
using EnvelopeCheck = std::function<bool(const JobRecord&)>;

// The durable records, read synchronously by the core (the node: LevelDB; the simulator: a map).
class RecordReader {
 public:
  virtual ~RecordReader() = default;
  [[nodiscard]] virtual std::optional<JobRecord> read(const std::string& id) const = 0;
};

// ---- actions ----

struct Persist {
  uint64_t seq = 0;
  enum class Kind : uint8_t { record, hint_put, hint_drop } kind = Kind::record;
  SharedRecord record;  // kind == record
  std::string target;   // hints: the member the record is owed to
  std::string id;       // the job
};

struct Send {
  std::string to;
  Message message;
};

struct ItemResult {
  Status status;         // ok, or why this item was refused
  bool created = false;  // false: the same signed job was already stored
  std::optional<JobRecord> record;
};

struct Reply {
  uint64_t request = 0;
  std::vector<ItemResult> items;  // submit: one per record; cancel and read: one
};

struct Start {
  std::string id;
  uint32_t attempt = 0;
  std::shared_ptr<const JobRecord> record;  // as claimed
};

struct Stop {
  enum class Why : uint8_t { cancelled, superseded, timed_out, shutdown } why = Why::cancelled;
  std::string id;
  uint32_t attempt = 0;
};

struct LogLine {
  enum class Level : uint8_t { debug, info, warn } level = Level::info;
  std::string event;  // job_accepted, takeover, claim_refused, ...
  std::string id;     // job id, or ""
  std::string detail;
};

struct Output {
  std::vector<Persist> persists;
  std::vector<Send> sends;
  std::vector<Reply> replies;
  std::vector<Start> starts;
  std::vector<Stop> stops;
  std::vector<LogLine> logs;
  void clear();
  [[nodiscard]] bool empty() const;
};

// A handler's outcome, with the result signed by the node that ran it.
struct Outcome {
  std::string id;
  uint32_t attempt = 0;
  NodeResult result;  // result.outcome: succeeded | failed | cancelled
};

struct ReplicaStats {
  uint64_t submitted = 0, duplicates = 0, rejected = 0;
  uint64_t attempts_started = 0, succeeded = 0, failed = 0, retried = 0, cancelled = 0;
  uint64_t replicate_sent = 0, replicate_failed = 0, replicate_received = 0;
  uint64_t quorum_failures = 0, takeovers = 0, hints_stored = 0, hints_replayed = 0;
  uint64_t anti_entropy_rounds = 0, anti_entropy_pushed = 0, anti_entropy_pulled = 0;
  uint64_t read_repairs = 0, claims_confirmed = 0, claims_refused = 0;
  uint64_t backpressure_refusals = 0;  // submissions refused with 429: replication lagging
  uint64_t superseded_stops = 0;       // handlers stopped because another claim or state won
  uint64_t refused_records = 0;        // peer records that failed their check
  uint64_t refused_messages = 0;       // answers nobody asked for, from the wrong peer, etc.
};

class Replica {
 public:
  Replica(std::string self, ReplicaConfig config, const RecordReader& reader, EnvelopeCheck check);
  ~Replica();
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  // Boot: every stored record (with its encoding) and hint, then start(). start() ends the
  // attempts this node was running when it stopped (they run again as the next attempt).
  void load(const JobRecord& r, std::string_view encoded);
  void load_hint(const std::string& target, const std::string& id);
  void start(Now now);

  // Membership: `name`'s state changed (this node's own entry is ignored).
  void set_member(Now now, const std::string& name, MemberState state);

  // Client requests; each is answered by one Reply with the same `request`.
  // `admitted`: fresh queued records (make_record) whose envelopes the caller verified.
  void submit(Now now, uint64_t request, std::vector<JobRecord> admitted);
  void cancel(Now now, uint64_t request, const std::string& id);
  void read(Now now, uint64_t request, const std::string& id);

  // Peer transport.
  void receive(Now now, const std::string& from, Message message);
  void undeliverable(Now now, const std::string& to, const Message& message);

  // Store: every persist with seq ≤ `seq` is durable (ok) or failed (not ok: the node stops
  // acknowledging anything that depended on them).
  void durable(Now now, uint64_t seq, const Status& status);

  // Executor: a handler this core started has ended.
  void handler_done(Now now, Outcome outcome);

  void tick(Now now);
  // The earliest mono_ms at which tick() has something to do.
  [[nodiscard]] uint64_t next_deadline_ms() const;

  [[nodiscard]] Output& output() { return out_; }

  // Read-only views for the node's API and the simulator's checks.
  [[nodiscard]] const std::string& self() const { return self_; }
  [[nodiscard]] const Placement& placement() const { return *placement_; }
  [[nodiscard]] const ReplicaConfig& config() const { return config_; }
  [[nodiscard]] const ReplicaStats& stats() const { return stats_; }
  [[nodiscard]] const RecordIndex& index() const { return index_; }
  [[nodiscard]] bool ready(Now now) const;
  [[nodiscard]] size_t backlog() const { return run_queue_.size(); }
  [[nodiscard]] size_t running() const { return running_.size(); }
  [[nodiscard]] size_t hints() const;
  // This node's current copy (overlay, else the reader); nullopt when it holds none.
  [[nodiscard]] std::optional<JobRecord> current(const std::string& id) const;

 private:
  struct Write;
  struct Pending;
  struct Running;
  struct Impl;
  std::unique_ptr<Impl> impl_;  // protocol state; replica.cpp and its parts

  std::string self_;
  ReplicaConfig config_;
  const RecordReader& reader_;
  EnvelopeCheck check_;
  std::shared_ptr<const Placement> placement_;
  RecordIndex index_;
  ReplicaStats stats_;
  Output out_;
  std::deque<std::string> run_queue_;
  std::map<std::string, uint32_t> running_;  // id -> attempt whose handler runs here
  friend struct Impl;
};

}  // namespace meshwork
