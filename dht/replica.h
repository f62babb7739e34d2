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
//   submit / cancel / retry / read (client)   replies     answers to client requests
//   receive / undeliverable (peer transport)  starts      handlers to start (id, attempt, record)
//   durable (the store synced up to a seq)    stops       handlers to stop (cancel, superseded,
//   handler_ended / handler_done (a handler               timed out)
//     returned; its signed outcome)
//   tick (time passes)                        logs        events worth a log line
//
// The node (node/replica_driver.h) runs it on its one io_context thread: sockets, LevelDB, the
// executor.
// The simulator (simulations/sim/) runs thousands of them on virtual time and a lossy virtual
// network, so a failover bug found there replays from its seed.
//
// Time: every input carries Now: `mono_ms` drives timers (monotonic), `wall_ms` is written into
// records (claims, leases, retry times, history). No decision compares a time another node wrote
// with this node's wall clock: a lease counts as expired, and a retry_wait as due, by this node's
// monotonic clock from when it first saw that lease or status (sightings_), so one node's wall
// clock far off neither stalls a job nor lets it be taken over early. (A delayed job's run_after
// is the exception, by definition: the entry node's created_at plus the delay, read on the owner's
// wall clock; docs/guarantees.md.) Randomness (backoff jitter, anti-entropy peer order) comes from
// the seeded Rng in the config. Nothing else varies.
//
// Durability: a record this core changes goes out as a Persist with a sequence number; the store
// writes persists in sequence order and calls durable(seq) once every persist up to seq is on
// disk. Until then the core keeps the record in memory (the overlay) and reads through it; after,
// up to config.record_cache_max durable records stay in a cache (cache_put: the records wanted
// soonest) and the rest are read through the RecordReader (the store). Nothing is acknowledged —
// to a client (202) or to a peer (ReplicateAck) — before the persists it depends on are durable.
//
// Thread-safety: none; one thread owns a Replica. Invariants (checked, counted on violation):
//   1. A client is told `ok` for a write only after W replicas (this node's disk counting as one)
//      said the record is durable.
//   2. A handler is started only for a job this node owns, whose claim it has just persisted (or
//      for a co-run of a redundant job: invariant 6), and at most config.workers at once; an
//      outcome is recorded only for the attempt whose claim a majority of the replicas confirmed
//      and that still holds the status (running, attempt, self). An outcome that ends a claim
//      still held here (config.claim_hold_ms) leaves with it instead, merged by each replica only
//      where that claim would hold (IfClaimed), and is recorded here once a majority took it.
//   3. A record is only ever replaced by its merge with something (never overwritten), so every
//      copy converges whatever the order of delivery.
//   4. A handler whose claim this node learns is superseded (another attempt, a terminal state,
//      a cancel) is stopped.
//   5. Peer input is untrusted: a record whose envelope fails the check, an answer nobody asked
//      for or from the wrong peer, an impossible transition — each is refused and counted, never
//      asserted.
//   6. Redundant jobs (redundancy k > 1, verdict.h): an attempt is claimed as in 2 and run by its
//      runners — the claimant and the first k − 1 other members of replicas(id) in this node's
//      view. A runner that is not the claimant starts a co-run (no claim; through the run queue,
//      counting against config.workers) while its copy is (running, attempt n) and holds no result
//      of its own for n; the co-run's result is merged as results[self] only while the record is
//      still (running, n), and the co-run is stopped when it leaves that. The claimant commits its
//      own result, keeps the claim (renewing its lease) and ends the attempt once the verdict is
//      decided or can no longer be (or the job's timeout and config.peer_timeout_ms passed):
//      decided succeeded → succeeded; decided failed → as a failed attempt; otherwise failed with
//      kResultsDisagree (retry_wait while attempts remain).
//   7. Reputation (reputation.h): when a k > 1 record turns terminal here (succeeded or failed with
//      a decided verdict), once per job and round, its agreeing runners are scored `agreed` and
//      its dissenting ones `disagreed`; a host whose trust changes is distrusted (or trusted
//      again) in placement_ (Placement::set_distrusted), which moves its ranges and takes over its
//      claims as a dead member's.
//   8. A submission writes nothing before it is admitted (replica_admit.cpp): one that waits for a
//      lagging replica is written, or refused, only when it leaves the wait, and submissions leave
//      it in the order they arrived.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <list>
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
#include "dht/receipt.h"
#include "dht/reputation.h"
#include "dht/result.h"
#include "dht/run_queue.h"

namespace meshwork {

// A crash or a lost owner interrupts an attempt through no fault of the job; such attempts may run
// past max_attempts by at most this many, so that a job that kills its node cannot loop forever.
inline constexpr uint32_t kInterruptedAttemptsExtraMax = 3;
inline constexpr size_t kBatchJobsMax = 1'000;     // records in one client submit
inline constexpr size_t kHintsPerReplayMax = 512;  // records replayed to one target per round
inline constexpr size_t kAntiEntropyEntriesMax = 4'096;
// A replicate message's records stop growing past this many bytes; a fetch asks for at most this
// many ids, so that its reply (records of up to kJobTextBytesMax and more each) stays bounded too.
inline constexpr size_t kReplicateBytesMax = 16u << 20;
inline constexpr size_t kFetchIdsMax = 64;
static_assert(kAntiEntropyEntriesMax <= kMessageItemsMax);
static_assert(2 * kReplicateBytesMax < kMessageBytesMax, "an ack carrying copies back still fits");
static_assert(kFetchIdsMax * 2 * kJobTextBytesMax < kMessageBytesMax, "a full fetch reply fits");
static_assert(kBatchJobsMax <= kMessageItemsMax);
static_assert(kResultsMax * kResultBytesMax + 2 * kJobTextBytesMax < kReplicateBytesMax,
              "a record with kResultsMax results of the largest size fits one replicate message");

inline constexpr uint64_t kClaimHoldMsDefault = 25;  // ReplicaConfig::claim_hold_ms
inline constexpr uint64_t kClaimHoldMsMax = 1'000;

// Admission waiting (replica_admit.cpp; ReplicaConfig::admission_wait_ms, parked_items_max). The
// default wait is as long as the lag that refuses a submission (peer_timeout_ms / 5 by default): a
// replica that still answers clears such a lag within about that, and one that went silent runs
// into the peer timeout however long a submission waits. At most 2.5 s: a node's HTTP thread waits
// peer timeout + this + 1 s for a submission's reply (node/replica_driver.h), 8.5 s at most, well
// inside a client's read timeout (the CLI's 30 s). The queue holds 8,192 items: twice the ~4,000
// jobs in flight of issue 12, so that all of them may wait at one entry node.
inline constexpr uint64_t kAdmissionWaitMsDefault = 1'000;
inline constexpr uint64_t kAdmissionWaitMsMax = 2'500;
inline constexpr size_t kParkedItemsMaxDefault = 8'192;
static_assert(kAdmissionWaitMsDefault <= kAdmissionWaitMsMax);
static_assert(kParkedItemsMaxDefault >= kBatchJobsMax, "a full batch can wait");

struct Now {
  uint64_t mono_ms = 0;  // timers
  uint64_t wall_ms = 0;  // records
};

struct ReplicaConfig {
  PlacementOptions placement;
  uint32_t workers = 2;               // handlers running at once on this node
  size_t backlog_max = 10'000;        // runnable jobs waiting here before submissions get 429
  uint64_t peer_timeout_ms = 5'000;   // longest a quorum, read or fetch waits for answers
  uint64_t takeover_read_ms = 1'000;  // longest a takeover waits for the other replicas' copies
  uint64_t sweep_interval_ms = 1'000;
  uint64_t anti_entropy_interval_ms = 2'000;       // between rounds while replicas differ
  uint64_t anti_entropy_interval_ms_max = 30'000;  // backed off to while they agree
  uint64_t hint_replay_interval_ms = 1'000;
  uint64_t settle_ms = 1'500;        // after joining, before this node starts jobs it owns
  uint64_t alone_after_ms = 10'000;  // seeds never answered: run as a mesh of one
  bool joining = false;              // started with seeds: not ready until another member is seen
  // A claim's lease, renewed every lease_ms / 3; the same on every node (not a node flag). Other
  // nodes count it as expired lease_ms + lease_skew_ms after they last saw it renewed, on their
  // own monotonic clocks.
  uint64_t lease_ms = 15'000;
  uint64_t lease_skew_ms = 2'000;  // slack for renewals delayed in transit or by a busy loop
  // A claim of a job of redundancy 1 stays here (persisted, its handler running) for up to this
  // long before it is sent; a handler whose outcome comes within it ships that outcome together
  // with the claim, one record instead of two (ship_outcome in replica_run.cpp). 0: never held.
  uint64_t claim_hold_ms = kClaimHoldMsDefault;
  // A submission that would be refused (429) only because a replica's acks lag waits here instead,
  // in arrival order behind every submission already waiting, for up to admission_wait_ms: it is
  // written once the lag clears, else decided as it would have been at once (429). At most
  // parked_items_max items wait; a submission past that is decided at once. 0: never wait. A
  // node's driver waits this much longer for a submission's reply (node/replica_driver.cpp).
  uint64_t admission_wait_ms = kAdmissionWaitMsDefault;
  size_t parked_items_max = kParkedItemsMaxDefault;
  uint64_t backoff_base_ms = 500;
  uint64_t backoff_max_ms = 30'000;
  size_t record_cache_max = 32'768;  // durable records kept in memory (unfinished ones first)
  uint64_t seed = 1;                // jitter and peer order
  bool take_over = true;            // false only in the deliberately broken build of the chaos test
  // A member dead this long in this node's view gives up its ring tokens (Placement::reap); after
  // as long again it is forgotten, as if it had left.
  uint64_t reap_after_ms = 86'400'000;
  // Retention (replica_retention.cpp): a finished job whose status is older than retain_ms is
  // erased here, leaving a tombstone that refuses its copies for tombstone_ms. 0: keep for ever.
  uint64_t retain_ms = 7 * 24 * 3'600'000ull;
  uint64_t tombstone_ms = 10 * 24 * 3'600'000ull;
  // Receipts and reputation (docs/protocol.md, trust model). Every result in a record a peer sends
  // that this node does not already hold identically must pass receipt_check, or the whole record
  // is refused (receipts_pass in replica_write.cpp); empty: every receipt is accepted. A host
  // whose score (dht/reputation.h) falls below score_threshold_percent is distrusted (invariants
  // 6 and 7).
  ReceiptChecker receipt_check;
  uint32_t score_threshold_percent = Reputation::kThresholdPercentDefault;
};

// The error (and reason) of an attempt of a redundant job whose runners' results found no
// majority (verdict.h).
inline constexpr const char* kResultsDisagree = "results disagree";

// Retention's rule (replica_retention.cpp): a finished job whose status was written more than
// retain_ms (> 0) before now_ms is due for removal; reads and listings treat it as gone.
[[nodiscard]] inline bool past_retention(JobState state, uint64_t status_at_ms, uint64_t retain_ms,
                                         uint64_t now_ms) {
  return retain_ms > 0 && is_terminal(state) && status_at_ms + retain_ms < now_ms;
}

// The durable records, read synchronously by the core (the node: LevelDB; the simulator: a map).
class RecordReader {
 public:
  virtual ~RecordReader() = default;
  [[nodiscard]] virtual std::optional<JobRecord> read(const std::string& id) const = 0;
};

// ---- actions ----

struct Persist {
  uint64_t seq = 0;
  // erase: the record goes and a tombstone (id → at_ms) stays; drop: the record goes (a stand-in
  // copy the home replicas hold); tombstone_drop: the tombstone goes.
  enum class Kind : uint8_t {
    record,
    hint_put,
    hint_drop,
    erase,
    drop,
    tombstone_drop
  } kind = Kind::record;
  SharedRecord record;  // kind == record
  std::string target;   // hints: the member the record is owed to
  std::string id;       // the job
  uint64_t at_ms = 0;   // erase: when (wall), the tombstone's value
  uint64_t created_at_ms = 0;  // erase, drop: the record's created_at (its listing key)
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
  uint64_t submitted = 0, duplicates = 0, rejected = 0, retries_requested = 0;
  uint64_t attempts_started = 0, succeeded = 0, failed = 0, retried = 0, cancelled = 0;
  uint64_t replicate_sent = 0, replicate_failed = 0, replicate_received = 0;
  uint64_t quorum_failures = 0, takeovers = 0, hints_stored = 0, hints_replayed = 0;
  uint64_t anti_entropy_rounds = 0, anti_entropy_pushed = 0, anti_entropy_pulled = 0;
  uint64_t read_repairs = 0, claims_confirmed = 0, claims_refused = 0;
  // Outcomes that left together with their claim (claim_hold_ms), and of those the ones a
  // majority took; copies a replica kept because the claim shipped with an outcome no longer held
  // there.
  uint64_t outcomes_with_claim = 0, outcomes_with_claim_taken = 0, outcomes_refused_here = 0;
  uint64_t backpressure_refusals = 0;  // submissions refused with 429: replication lagging
  // Submissions that waited for admission (config.admission_wait_ms), and items of theirs refused
  // with 429 when the wait ran out before the lag cleared (counted in backpressure_refusals too).
  uint64_t submissions_parked = 0, parked_refusals = 0;
  uint64_t superseded_stops = 0;       // handlers stopped because another claim or state won
  uint64_t refused_records = 0;        // peer copies that are not of the job asked for
  uint64_t refused_messages = 0;       // answers nobody asked for, from the wrong peer, etc.
  uint64_t handed_off = 0;             // records sent to members new in their replica lists
  uint64_t forwarded = 0;              // changes passed on by a holder that is not a replica
  uint64_t expired = 0;                // finished jobs erased here by retention
  uint64_t tombstone_refusals = 0;     // copies of erased jobs refused
  uint64_t stand_ins_dropped = 0;      // copies dropped once their home replicas held them
  // Redundant execution: co-runs started here; attempts this node ended on a decided verdict, or
  // on runners that disagree (or did not all answer by the deadline).
  uint64_t co_runs_started = 0, verdicts_decided = 0, verdicts_disagreed = 0;
  // Peer records refused for a receipt (config.receipt_check), and why: a forged receipt (its
  // sender scored `forged`), a node the mesh knows no key for, a result over kResultBytesMax.
  uint64_t receipts_refused = 0;
  uint64_t receipts_forged = 0, receipts_unknown_node = 0, receipts_too_large = 0;
  // Receipts of nodes the mesh knows no key for, accepted in a finished record relayed by another
  // member (the producer may have left the mesh since).
  uint64_t receipts_unchecked = 0;
};

class Replica {
 public:
  Replica(std::string self, ReplicaConfig config, const RecordReader& reader);
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  // Boot: every stored record (with its encoding) and hint, then start(). start() ends the
  // attempts this node was running when it stopped (they run again as the next attempt).
  void load(const JobRecord& r, std::string_view encoded);
  void load_hint(const std::string& target, const std::string& id);
  void load_tombstone(const std::string& id, uint64_t deleted_at_ms);
  void start(Now now);

  // Membership: `name`'s state changed (this node's own entry is ignored).
  void set_member(Now now, const std::string& name, MemberState state);

  // Client requests; each is answered by one Reply with the same `request`.
  // `admitted`: fresh queued records (make_record) whose envelopes the caller verified.
  void submit(Now now, uint64_t request, std::vector<JobRecord> admitted);
  void cancel(Now now, uint64_t request, const std::string& id);
  // A failed or cancelled job queued again with a fresh set of attempts (job_record.h retried());
  // conflict for a job in any other state, not_found for an unknown one.
  void retry(Now now, uint64_t request, const std::string& id);
  void read(Now now, uint64_t request, const std::string& id);

  // Peer transport.
  void receive(Now now, const std::string& from, Message message);
  void undeliverable(Now now, const std::string& to, const Message& message);

  // Store: every persist with seq ≤ `seq` is durable (ok) or failed (not ok: the node stops
  // acknowledging anything that depended on them).
  void durable(Now now, uint64_t seq, const Status& status);

  // Executor: a handler this core started has ended.
  void handler_done(Now now, Outcome outcome);
  // Executor, optional: the handler of (id, attempt) returned and its outcome follows in
  // handler_done once signed. Its worker counts as free from now on, so the next handler starts
  // while the node gathers outcomes to sign together (node/replica_driver.h); nothing else about
  // the attempt changes until handler_done.
  void handler_ended(Now now, const std::string& id, uint32_t attempt);

  // Timers: sweeps, hint replay, anti-entropy, lease renewal, handler deadlines, and reaping
  // members dead for config.reap_after_ms.
  void tick(Now now);
  // The earliest mono_ms at which tick() has something to do.
  [[nodiscard]] uint64_t next_deadline_ms() const;

  [[nodiscard]] Output& output() { return out_; }

  // Read-only views for the node's API and the simulator's checks.
  [[nodiscard]] const std::string& self() const { return self_; }
  [[nodiscard]] const Placement& placement() const { return placement_; }
  [[nodiscard]] const ReplicaConfig& config() const { return config_; }
  [[nodiscard]] const ReplicaStats& stats() const { return stats_; }
  // What this node has seen of every host's work (invariant 7, dht/reputation.h).
  [[nodiscard]] const Reputation& reputation() const { return reputation_; }
  [[nodiscard]] const RecordIndex& index() const { return index_; }
  [[nodiscard]] bool ready(Now now) const;
  [[nodiscard]] bool holds(const std::string& id) const { return index_.contains(id); }
  // This node owes the record to some replica it could not reach (a hint, replayed or not); it
  // keeps a finished record past its retention until the hint is delivered.
  [[nodiscard]] bool owes_hint(const std::string& id) const;
  // The members this node owes the record to (its hints for it).
  [[nodiscard]] std::vector<std::string> hint_targets(const std::string& id) const;
  [[nodiscard]] size_t backlog() const { return run_queue_.size(); }
  [[nodiscard]] size_t running() const { return handlers_running_; }
  [[nodiscard]] size_t hints() const;
  [[nodiscard]] bool tombstoned(const std::string& id) const { return tombstones_.contains(id); }
  [[nodiscard]] size_t tombstones() const { return tombstones_.size(); }
  // This node's current copy (overlay, else the cache of durable records, else the reader);
  // nullopt when it holds none.
  [[nodiscard]] std::optional<JobRecord> current(const std::string& id) const;

 private:
  // The durable-record cache (cache_): keep `rec` if it is among the records wanted soonest;
  // forget `id`.
  void cache_put(const SharedRecord& rec);
  void cache_drop(const std::string& id);
  // A record written to replicas and decided once `need` of them hold it (replica_write.cpp).
  struct Write {
    // outcome: an attempt's outcome shipped with its claim (ship_outcome): `record` is the outcome,
    // sent on condition that the claim holds at each replica, and committed here once it is decided.
    enum class Kind : uint8_t {
      submit,
      cancel,
      claim,
      plain,
      hint,
      retry,
      outcome
    } kind = Kind::plain;
    std::string id;
    uint64_t request = 0;  // submit/cancel: the client request; item: its index there
    size_t item = 0;
    uint32_t attempt = 0;  // claim: the attempt claimed
    std::string target;    // hint: the member the record is owed to
    size_t need = 0;       // acks that decide it (this node's durable copy counts as one)
    size_t asked = 0, acks = 0, answered = 0;
    bool existed = false, decided = false, refused = false;
    bool deleted = false;  // a replica answered that it erased the job (retention)
    std::shared_ptr<const JobRecord> record;  // what is written
    std::optional<JobRecord> copy;  // submit: merged copies of replicas that held it before
    uint64_t deadline_ms = 0;       // mono
  };
  // A request sent to a peer, waiting for its answer (corr → this).
  struct Outstanding {
    enum class Kind : uint8_t { replicate, fetch, digest } kind = Kind::replicate;
    enum class Why : uint8_t { none, read, takeover, pull } why = Why::none;  // fetch only
    std::string peer;
    uint64_t sent_ms = 0;               // mono
    std::vector<uint64_t> writes;       // replicate: write id per record (0: none)
    std::vector<std::string> ids;       // the records' or fetched ids
    std::vector<SharedRecord> records;  // replicate: the records sent
    std::vector<bool> conditional;      // replicate: sent with an if_claimed condition
    uint64_t request = 0;               // fetch for a read: the client request
  };
  // A client read, cancel or retry gathering every replica's copy.
  struct ReadOp {
    enum class Then : uint8_t { read, cancel, retry } then = Then::read;
    std::string id;
    size_t waiting = 0;
    bool any_answer = false;
    std::vector<std::pair<std::string, std::optional<JobRecord>>> copies;  // by replica
    uint64_t deadline_ms = 0;
  };
  struct SubmitOp {
    std::vector<ItemResult> items;
    size_t left = 0;
  };
  // A submission before it is written: the answers of the items already decided (refused), and
  // the records still open with the replica lists they had when it arrived.
  struct Admission {
    uint64_t request = 0;
    uint64_t until_ms = 0;  // mono: when waiting, decided as it would have been at once by then
    uint64_t placed_version = 0;  // the placement that listed the open items' replicas
    std::vector<ItemResult> items;
    struct Open {
      size_t item = 0;
      JobRecord record;
      std::vector<std::string> replicas;
    };
    std::vector<Open> open;
  };
  // Why an item cannot be written now (refusal), in the order it is checked.
  struct Refusal {
    enum class Why : uint8_t { backlog, lagging, replicas } why = Why::backlog;
    Status status;
  };
  // An attempt this node claimed (replica_run.cpp).
  struct Attempt {
    uint32_t attempt = 0;
    bool handler_running = true;
    bool worker_freed = false;  // handler_ended came: the worker no longer counts as busy
    bool confirmed = false, refused = false, stopped = false;
    std::optional<NodeResult> result;  // the handler's outcome, held until the claim is settled
    uint64_t deadline_ms = 0;          // mono: the job's timeout
    // Redundancy k > 1: the handler ended and its result is committed; the claim holds (renewed)
    // until the verdict ends the attempt (settle_verdict).
    bool awaiting = false;
    // The claim is persisted here but not sent yet (config.claim_hold_ms): until hold_until_ms
    // (mono), an outcome leaves with it (ship_outcome); after, the claim goes alone (send_claim).
    bool held = false;
    uint64_t hold_until_ms = 0;
    bool shipping = false;  // the outcome left with the claim: its write decides the attempt
  };
  // A co-run of a redundant job's attempt claimed by another runner (invariant 6).
  struct CoRun {
    uint32_t attempt = 0;
    bool stopped = false;
    uint64_t deadline_ms = 0;  // mono: the job's timeout
    bool worker_freed = false;  // as Attempt's
  };
  struct TakeoverRead {
    size_t left = 0;
    uint64_t started_ms = 0;  // mono
  };
  struct Overlay {
    SharedRecord record;
    uint64_t seq = 0;
  };
  struct Merged {
    std::shared_ptr<const JobRecord> before;  // null when there was no record
    std::shared_ptr<const JobRecord> after;  // null when there is no record
    bool changed = false;
  };

  // replica.cpp: records, reactions, timers
  bool owns(Now now, const std::string& id) const;
  bool owns(Now now, std::string_view id, const IndexEntry* e) const;
  uint64_t commit(Now now, JobRecord next);
  uint64_t commit(Now now, SharedRecord rec);  // `rec` is already encoded: no second encoding
  void forward(const IndexEntry& e, const SharedRecord& rec);
  Merged merge_in(Now now, const JobRecord& incoming);
  // The same for a record that arrived encoded: when it is the merge's result (the usual case: a
  // newer version of what this node holds), its encoding is kept instead of made again.
  Merged merge_in(Now now, const SharedRecord& incoming);
  Merged merge_into(Now now, const JobRecord& incoming, const SharedRecord* encoded);
  // This node's record without copying it (overlay, cache, else read from the store).
  [[nodiscard]] std::shared_ptr<const JobRecord> current_shared(const std::string& id) const;
  // ... with its encoding, to ship it (encoded again only when read from the store).
  [[nodiscard]] std::optional<SharedRecord> current_encoded(const std::string& id) const;
  void react(Now now, const JobRecord& r);
  uint64_t pending_seq(const std::string& id) const;
  void reap_dead(Now now);
  uint64_t reap_due_ms(uint64_t since_ms, bool reaped) const;
  void log(LogLine::Level level, std::string event, std::string id, std::string detail);
  uint64_t random_below(uint64_t n);
  uint64_t backoff_ms(uint32_t attempt);
  // replica_write.cpp: quorum writes, client operations, acks
  uint64_t start_write(Now now, Write w, const SharedRecord& rec,
                       const std::vector<std::string>& replicas);
  // `if_claimed`: the record is merged there only while that claim status would hold (IfClaimed).
  void queue_replicate(const std::string& peer, const SharedRecord& rec, uint64_t write,
                       const JobStatus* if_claimed = nullptr);
  void flush(Now now);
  void answer(Now now, uint64_t write, int verdict, const ItemAck* ack);
  void decide(Now now, uint64_t write_id, Write& w);
  void finish_submit_item(Now now, const Write& w, bool ok);
  // replica_admit.cpp: which submissions are written at once, refused, or wait (admission waiting)
  std::optional<Status> lagging(Now now, const std::vector<std::string>& replicas) const;
  std::optional<Refusal> refusal(Now now, const std::vector<std::string>& replicas) const;
  void refuse(ItemResult& item, Refusal no, bool waited);
  [[nodiscard]] bool must_wait(Now now, const Admission& a) const;
  void admit(Now now, Admission a, bool waited);
  void admit_parked(Now now);
  void on_replicate(Now now, const std::string& from, Replicate& m);
  void on_replicate_ack(Now now, const std::string& from, ReplicateAck& m);
  void fail_outstanding(Now now, uint64_t corr);
  void replicate_to_others(Now now, const SharedRecord& rec);
  void start_read(Now now, uint64_t request, const std::string& id, ReadOp::Then then);
  void on_read_copy(Now now, uint64_t request, const std::string& from,
                    std::optional<JobRecord> copy, bool answered);
  void finish_read(Now now, uint64_t request);
  void finish_cancel(Now now, uint64_t request, const JobRecord& cur);
  void finish_retry(Now now, uint64_t request, const JobRecord& cur);
  // Writes a client's change of `next` (cancel or retry) to a quorum of its replicas.
  void write_change(Now now, uint64_t request, Write::Kind kind, JobRecord next);
  void expire(Now now);
  // replica_run.cpp: running jobs, claims, outcomes, leases, takeover
  void enqueue(Now now, const std::string& id, bool front = false);
  void schedule_wake(Now now, const std::string& id, uint64_t wall_ms);
  void pump(Now now);
  void claim(Now now, const JobRecord& r);
  void claim_settled(Now now, const std::string& id, uint32_t attempt, bool confirmed);
  // The held claim of `id` leaves alone (its hold ran out), or with the outcome (the handler ended).
  void send_claim(Now now, const std::string& id);
  void ship_outcome(Now now, const std::string& id);
  void outcome_settled(Now now, const Write& w, bool taken);
  void release_holds(Now now);
  void finish_attempt(Now now, const std::string& id);
  void release_unconfirmed(Now now, const std::string& id, uint32_t attempt);
  void renew_leases(Now now);
  // Sightings (sightings_): note the lease or retry time `r` holds; whether the lease of running
  // job `id` (held as `e`) ran out; the mono_ms at which retry_wait job `id` is due here.
  void sight(uint64_t mono_ms, const JobRecord& r);
  bool lease_expired(Now now, const std::string& id, const IndexEntry& e);
  uint64_t retry_due_ms(Now now, const std::string& id, const IndexEntry& e);
  void prune_sightings();
  void wake_at(const std::string& id, uint64_t mono_ms);
  void watch_deadlines(Now now);
  void sweep(Now now);
  bool taker(Now now, const std::string& id, const std::string& claimant) const;
  void take_over_after_read(Now now, const std::string& id, const std::string& claimant,
                            const std::string& reason);
  void takeover_answered(Now now, const std::string& id);
  void take_over(Now now, const std::string& id, const std::string& reason);
  void recover(Now now);
  // Ends attempt `attempt` of `cur`, which this node claimed: `outcome` (failed becomes retry_wait
  // while attempts remain) with `error`, `own` recorded as this node's result when not null.
  void end_attempt(Now now, const JobRecord& cur, uint32_t attempt, JobState outcome,
                   const std::string& error, const std::string& success_reason,
                   const NodeResult* own);
  // The record end_attempt commits (the merge of `cur` with the attempt's end), and committing it
  // (stats and the log line; sent to the other replicas when `send`).
  JobRecord attempt_end(Now now, const JobRecord& cur, uint32_t attempt, JobState outcome,
                        const std::string& error, const std::string& success_reason,
                        const NodeResult* own);
  void commit_end(Now now, JobRecord ended, uint32_t attempt, bool send);
  void count_end(JobState state);  // the stats of an attempt's end
  // Redundant execution (invariants 6 and 7).
  [[nodiscard]] std::vector<std::string> runners(const std::string& id, const std::string& claimant,
                                                 uint32_t k) const;
  [[nodiscard]] bool co_run_due(const JobRecord& r) const;
  void react_co_run(Now now, const JobRecord& r);
  bool start_co_run(Now now, const std::string& id);
  void co_run_done(Now now, Outcome outcome);
  void await_verdict(Now now, const std::string& id, const JobRecord& cur,
                     const NodeResult& result);
  void settle_verdict(Now now, const std::string& id);
  void note_verdict(Now now, const JobRecord& r);
  // `host`'s trust in reputation_ is now what placement_ should show: distrust or trust it there.
  void note_trust(Now now, const std::string& host);
  // replica_repair.cpp: fetches, hints, anti-entropy
  void fetch_from(Now now, const std::string& peer, const std::vector<std::string>& ids,
                  Outstanding::Why why, uint64_t request);
  void on_fetch(Now now, const std::string& from, Fetch& m);
  void on_fetch_reply(Now now, const std::string& from, FetchReply& m);
  void remember_hint(const std::string& peer, const std::string& id);
  void drop_hint(const std::string& peer, const std::string& id);
  void replay_hints(Now now);
  RecordIndex::Keep shared_with(const std::string& peer) const;
  std::vector<uint64_t> digests_with(const std::string& peer) const;
  void hand_off(Now now);
  void anti_entropy_round(Now now);
  void on_digest(Now now, const std::string& from, Digest& m);
  void on_digest_reply(Now now, const std::string& from, DigestReply& m);
  // replica_write.cpp: receipts. Whether `incoming`, sent by `from`, may be merged: each of its
  // results this node does not hold identically passes config.receipt_check (counted, the sender
  // scored when forged); an unknown node's receipt passes only in a finished record relayed by
  // another member.
  [[nodiscard]] bool receipts_pass(Now now, const std::string& from, const JobRecord& incoming);
  // replica_retention.cpp: expiry, tombstones, stand-in copies
  void schedule_expiry(const JobRecord& r);
  void retain(Now now);
  bool erase_record(Now now, const std::string& id, Persist::Kind kind);
  void track_stand_in(const std::string& id, const IndexEntry& e);
  void stand_in_acked(Now now, const std::string& peer, const SharedRecord& sent,
                      const ItemAck& ack);
  void check_stand_ins(Now now);
  [[nodiscard]] Status removed(const std::string& id) const;
  // Past its retention by this node's clock, though not erased yet (the next round does): reads
  // and fetches treat it as gone already, so that no node serves a job another has erased.
  [[nodiscard]] bool expired_here(Now now, const std::string& id) const;

  const std::string self_;
  const ReplicaConfig config_;
  const RecordReader& reader_;
  Placement placement_;
  Reputation reputation_;
  RecordIndex index_;
  ReplicaStats stats_;
  Output out_;
  uint64_t rng_state_;

  bool started_ = false;
  uint64_t started_ms_ = 0;  // mono
  bool seen_peer_ = false;

  // Records written but not yet durable, newest per id, and the order they became so.
  std::unordered_map<std::string, Overlay> overlay_;
  std::deque<std::pair<uint64_t, std::string>> overlay_order_;
  // Records that left the overlay durable, kept so that the next change of a job does not read
  // and decode it from the store (and, with LevelDB, does not charge the files it searched towards
  // a compaction). Unfinished records come first, because a claim, an outcome or a co-run's result
  // will merge into each of them: they are kept in the order they came (cache_unfinished_) and a
  // new one is admitted only while there is room or a finished record to evict — with a backlog
  // larger than the cache, the oldest jobs, which run first, stay cached rather than the newest.
  // Finished records fill the room left, newest first (cache_finished_), and are evicted oldest
  // first. A record that a commit changes keeps its place; the overlay serves it meanwhile.
  struct Cached {
    SharedRecord rec;
    bool finished = false;
    std::list<std::string>::iterator at;  // into cache_finished_ or cache_unfinished_
  };
  std::list<std::string> cache_unfinished_, cache_finished_;
  std::unordered_map<std::string, Cached> cache_;
  uint64_t next_seq_ = 1;
  uint64_t durable_seq_ = 0;
  std::multimap<uint64_t, uint64_t> local_waits_;  // seq → write waiting for this node's copy
  struct AckWait {
    uint64_t seq = 0;
    std::string to;
    ReplicateAck ack;
  };
  std::deque<AckWait> ack_waits_;  // acks to peers, sent once their seq is durable

  uint64_t next_id_ = 1;  // write ids and correlation ids
  std::map<uint64_t, Write> writes_;
  std::map<uint64_t, Outstanding> outstanding_;                // by corr; corr grows with time
  std::map<std::string, std::set<uint64_t>> open_replicates_;  // peer → corrs (back-pressure)
  std::map<std::string, std::pair<Replicate, std::vector<uint64_t>>> outbox_;
  std::map<uint64_t, SubmitOp> submits_;
  // Submissions waiting for admission, in arrival order, and their open items (≤
  // config.parked_items_max).
  std::deque<Admission> parked_;
  size_t parked_items_ = 0;
  bool admit_soon_ = false;  // one was admitted and the next may be too: tick at once
  std::map<uint64_t, ReadOp> reads_;

  RunQueue run_queue_;  // owned jobs due now, by priority with ageing (run_queue.h)
  // Owned jobs not due yet (retry_wait before retry_at, delayed before run_after): mono due → id.
  std::multimap<uint64_t, std::string> wake_timers_;
  std::set<std::string, std::less<>> wake_scheduled_;
  std::map<std::string, Attempt, std::less<>> running_;  // attempts claimed here, until settled
  std::map<std::string, CoRun> co_runs_;    // co-runs whose handlers run here (invariant 6)
  std::set<std::string> co_queued_;         // ids in run_queue_ waiting to start a co-run
  size_t handlers_running_ = 0;
  std::map<std::string, TakeoverRead> takeover_reads_;
  // The lease (running) or retry time (retry_wait) of every such record held here, as this node
  // first saw it: leases and retries are judged by this node's monotonic clock from seen_ms, not
  // by comparing the writer's wall clock with this node's. A renewal is a new lease_until: seen
  // again. At boot, and after a stall longer than a lease (sweep), every sighting is dated now: a
  // node that was not watching waits a whole lease before it takes over from a claimant that is
  // still a member. Bounded by the records held; an entry goes when its record leaves running and
  // retry_wait (sight, or the sweep's pruning).
  struct Sighting {
    JobState state = JobState::running;
    uint32_t attempt = 0;
    std::string node;       // the status's writer (the claimant while running)
    uint64_t stamp_ms = 0;  // running: claim.lease_until_ms; retry_wait: status.retry_at_ms
    uint64_t wait_ms = 0;   // retry_wait: retry_at - at (the writer's own backoff), capped
    uint64_t seen_ms = 0;   // mono
  };
  std::unordered_map<std::string, Sighting> sightings_;
  std::set<std::string, std::less<>> adopted_;  // taken over from a live claimant: this node runs them
  // Outcomes shipped with their claim that a majority did not take, by job (outcome_settled): one
  // that a replica took anyway comes back by the merge and is counted then (react). Bounded.
  static constexpr size_t kUnsettledMax = 4'096;
  std::map<std::string, JobStatus> unsettled_;

  std::map<std::string, std::set<std::string>> hints_;  // target → ids
  std::set<std::pair<std::string, std::string>> hints_inflight_;
  std::set<std::string> ae_soon_;
  // Dead members → when (mono) this node saw them die: reaped once config.reap_after_ms has
  // passed, forgotten after as long again. Each node reaps on its own timer (docs/guarantees.md).
  std::map<std::string, uint64_t> dead_since_ms_;
  std::vector<std::string> co_replicas_;  // members sharing a record with this node (hand_off)
  uint64_t handed_version_ = 0;           // the placement version hand_off last ran for
  uint64_t next_hand_off_ms_ = 0;
  size_t ae_next_ = 0;
  uint64_t ae_interval_ms_ = 0;

  uint64_t next_sweep_ms_ = 0, next_hints_ms_ = 0, next_ae_ms_ = 0, next_renewal_ms_ = 0;
  uint64_t last_sweep_ms_ = 0;  // mono

  // Retention (replica_retention.cpp). Finished records by when they expire (wall ms; an entry is
  // checked against the record when due, so a stale one is skipped); ids to erase as soon as no
  // attempt runs here (a replica said it erased them); tombstones and when they expire.
  std::multimap<uint64_t, std::string> expiries_;
  std::set<std::string> erase_soon_;
  std::unordered_map<std::string, uint64_t> tombstones_;  // id → deleted at (wall ms)
  std::multimap<uint64_t, std::string> tombstone_expiries_;
  // Copies this node holds outside their replica list, with the home replicas that acknowledged
  // holding the copy's current fingerprint (or newer): dropped once all R did.
  struct StandIn {
    uint64_t fingerprint = 0;
    std::set<std::string> held_by;
    uint64_t next_push_ms = 0;  // mono
  };
  std::map<std::string, StandIn> stand_ins_;
  std::string stand_in_cursor_;  // the last one checked
};

}  // namespace meshwork
