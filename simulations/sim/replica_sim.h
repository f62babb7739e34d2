// The real replica core in the simulator: one meshwork::Replica (dht/replica.h) per simulated
// node, driven the way the node drives it, over the cluster's virtual time and network.
//
//   membership  every member event of a node's gossip (Cluster observer) → set_member
//   network     Send → encode_message → the same lossy, duplicating, reordering network as the
//               gossip → decode_message → receive. A message to a node that is down or cut off
//               (at send time, or by the time it arrives) comes back to its sender as
//               undeliverable a few ms later: what a real transport's connect error tells it.
//   disk        Persist → the node's Disk; an fsync 1–3 ms later (group commit: one in flight at
//               a time, in order) makes it durable → durable(seq). A crash loses the unsynced
//               persists; a restart builds a new Replica, loads every durable record and hint,
//               then start().
//   executor    Start → a handler that ends after a seeded run time (some longer than a lease)
//               with succeeded or failed → handler_ended at once, handler_done 0–5 ms later (its
//               receipt signed, as the node's driver lingers); Stop → it ends a few ms later,
//               cancelled
//               (timed out: failed). A crash kills the node's handlers. A redundant job's handler
//               (redundancy > 1) is deterministic, as real ones must be: its outcome follows from
//               the job and attempt, its result text is honest_result(attempt). A liar
//               (ReplicaOptions::liars, chosen by the seed) answers every run it finishes with a
//               wrong result under a valid sim receipt.
//   timers      tick at next_deadline_ms(), one live wake-up per node.
//   stalls      a stalled node's core gets no input (its inputs queue up, gossip goes on) until
//               the stall ends; then they are handed over in order: a paused event loop.
// Output is drained after every input.
//
// Besides driving, it keeps a ledger per job of what the executors did (starts, outcomes, each
// handler run) and of the core actions that explain a failover (takeovers, refused claims, fetches
// and when they were answered) for the checks (job_checks.h) and the failover figures
// (failover.h), checks at every Start that the node's own copy says the attempt is running and
// claimed by it (invariant 7), and folds every action into a digest.
//
// Thread-safety: none. Invariants: at most one Replica per up node, none per down node; every
// scheduled event carries the instance it was scheduled for and is dropped if the node has
// restarted or crashed since; a stalled core receives nothing.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "dht/replica.h"
#include "simulations/sim/cluster.h"
#include "simulations/sim/disk.h"

namespace meshwork::sim {

// Virtual time 0 on the nodes' wall clocks: 2026-01-01, so that records carry plausible dates.
inline constexpr uint64_t wall_base_ms = 1'767'225'600'000;

struct ReplicaOptions {
  uint32_t workers = 2;
  size_t record_cache = 32'768;  // each core's durable-record cache (never changes a decision)
  uint32_t vnodes = 16;  // the node's default is 512; see docs/simulation.md for why not here
  uint64_t lease_ms = 15'000;
  bool take_over = true;  // false: the deliberately broken build (lost/terminal must fail)
  uint64_t run_ms_min = 50;
  uint64_t run_ms_max = 2'000;
  double long_fraction = 0.05;  // handlers that run 1.1..2.5 leases
  // Handlers that end within 0..quick_ms_max, most of them inside the core's claim hold (25 ms),
  // so that outcomes shipped with their claim (ship_outcome) are as common as claims sent alone.
  double quick_fraction = 0.4;
  uint64_t quick_ms_max = 20;
  double fail_fraction = 0.1;   // handlers that end failed
  uint64_t clock_skew_ms_max = 250;  // each node's wall clock is this much ahead, at most
  uint64_t reap_after_ms = 86'400'000;  // a member dead this long gives up its ring tokens
  // The first node's wall clock runs this much further ahead, the second's this much behind.
  int64_t clock_offset_ms = 0;
  uint64_t retain_ms = 0;            // finished jobs erased after this long; 0: the core's default
  // false: the deliberately broken build whose peers decode every record without its retry round
  // (round and base 0), so a retry reaches no other core (retry-kept must fail with --retries)
  bool keep_round = true;
  uint32_t liars = 0;  // nodes whose handlers return wrong results, validly signed
};

// The result an honest handler of the simulator returns for a job's attempt.
[[nodiscard]] std::string honest_result(uint32_t attempt);

// One handler run: where and when it started and how it ended (never_ms: still running).
struct HandlerRun {
  uint32_t node = 0;
  uint32_t attempt = 0;
  uint64_t start_ms = 0;
  uint32_t round = 0;  // the retry round of the record it started from (JobStatus::round)
  uint64_t end_ms = never_ms;
  JobState outcome = JobState::running;  // succeeded | failed | cancelled once it ended
  bool crashed = false;                  // ended by its node's crash
};

// A core action on one job worth explaining a failover with: a `takeover` log (its reason), a
// `claim_not_confirmed` log, a `fetch` sent to a replica (a takeover read, a read or a pull), or
// a `fetch_answered` by the core that got it (a stalled core answers when the stall ends).
struct JobNote {
  uint64_t at_ms = 0;
  uint32_t node = 0;
  std::string event;   // takeover | claim_not_confirmed | fetch | fetch_answered
  std::string detail;  // the log's detail, the fetch's target, or the asker
};

// What the executors did with one job, mesh-wide.
struct JobLedger {
  uint32_t starts = 0;
  uint32_t failed = 0;             // failed outcomes handed to a core
  uint32_t succeeded = 0;          // succeeded outcomes handed to a core
  uint32_t duplicate_starts = 0;   // starts while an earlier start of the round had not ended failed
  uint32_t same_attempt_starts = 0;  // starts of an attempt number already started somewhere
  std::vector<uint32_t> attempts;    // every attempt started, in order
  std::vector<HandlerRun> runs;      // every handler run, in start order
  std::vector<JobNote> notes;        // in the order the cores produced them
  uint32_t redundancy = 1;           // the job's (its co-runs are not duplicates)
  uint64_t succeeded_ms = never_ms;  // first commit of a succeeded record, on any node
  uint32_t succeeded_node = 0;       // ...the node whose handler succeeded, and its attempt
  uint32_t succeeded_attempt = 0;
};

class ReplicaSim {
 public:
  using ReplyFn = std::function<void(uint32_t node, const Reply& reply)>;
  using LogFn = std::function<void(uint32_t node, const LogLine& line)>;

  ReplicaSim(Cluster& cluster, ReplicaOptions o, Random rng);

  // A member event of `viewer`'s gossip.
  void on_member(uint32_t viewer, const gossip::MemberEvent& e);

  // Client requests to node i (which must be up); answers come to the reply callback.
  void submit(uint32_t i, uint64_t request, JobRecord r);
  void cancel(uint32_t i, uint64_t request, const std::string& id);
  void retry(uint32_t i, uint64_t request, const std::string& id);
  void read(uint32_t i, uint64_t request, const std::string& id);
  void on_reply(ReplyFn f) { reply_ = std::move(f); }
  void on_log(LogFn f) { log_ = std::move(f); }
  // Prints every action that touches a job whose id starts with `prefix` (debugging a seed).
  void trace_job(std::string prefix, std::ostream* out) {
    trace_prefix_ = std::move(prefix);
    trace_out_ = out;
  }

  // Node i's core gets no input until `until_ms` (gossip and disks go on).
  void stall(uint32_t i, uint64_t until_ms);
  bool stalled(uint32_t i) const { return nodes_[i].stalled; }

  // The node's clock: monotonic virtual time, and a wall clock skewed per node.
  Now now_of(uint32_t i) const;
  const ReplicaOptions& options() const { return o_; }
  const Replica* replica(uint32_t i) const { return nodes_[i].replica.get(); }
  const Disk& disk(uint32_t i) const { return nodes_[i].disk; }
  size_t handlers_running(uint32_t i) const { return nodes_[i].handlers.size(); }
  // The jobs whose handlers run on node i.
  std::vector<std::string> running_jobs(uint32_t i) const;

  // Every instance's stats, summed (crashed instances included).
  ReplicaStats stats() const;
  const std::map<std::string, JobLedger>& ledger() const { return ledger_; }
  // Nodes whose disk ever received a record of the job (by id).
  const std::map<std::string, std::vector<uint32_t>>& writers() const { return writers_; }
  uint64_t messages() const { return messages_; }
  // Member events handed to the cores (each rebuilds that core's placement).
  uint64_t member_events() const { return member_events_; }
  uint64_t decode_failures() const { return decode_failures_; }
  uint64_t undeliverable() const { return undeliverable_; }
  uint64_t executor_overflows() const { return executor_overflows_; }
  // Invariant 7: Starts whose attempt the node's own copy does not hold as running by itself.
  uint64_t superseded_starts() const { return superseded_starts_; }
  const std::string& first_superseded_start() const { return first_superseded_start_; }
  // Starts of a delayed job before its run_after by the starting node's wall clock.
  uint64_t early_starts() const { return early_starts_; }
  const std::string& first_early_start() const { return first_early_start_; }
  // Retention: records a node stored again after it had erased them (with its tombstone still on
  // its disk), and erasures of a job before it was terminal for retain_ms (by the erasing node's
  // clock, give or take the clocks' skew).
  uint64_t resurrections() const { return resurrections_; }
  const std::string& first_resurrection() const { return first_resurrection_; }
  uint64_t early_erasures() const { return early_erasures_; }
  const std::string& first_early_erasure() const { return first_early_erasure_; }
  const std::map<std::string, uint64_t>& log_events() const { return log_events_; }
  uint64_t digest() const { return digest_; }
  // The lying nodes (ReplicaOptions::liars), chosen by the seed.
  const std::set<uint32_t>& liars() const { return liars_; }

 private:
  using Input = std::function<void(Replica&, Now)>;
  struct Handler {
    uint64_t serial = 0;
    bool stopping = false;
    size_t run = 0;  // index in the job's JobLedger::runs
  };
  struct Node {
    std::unique_ptr<Replica> replica;
    Disk disk;
    uint32_t instance = 0;  // bumped on every start and crash: older events go stale
    uint64_t skew_ms = 0;
    int64_t offset_ms = 0;  // ReplicaOptions::clock_offset_ms
    uint64_t wake_ms = never_ms;
    uint64_t sync_at_ms = 0;  // when the last scheduled fsync completes
    std::map<std::pair<std::string, uint32_t>, Handler> handlers;  // (id, attempt)
    bool stalled = false;
    std::deque<Input> queued;  // inputs that arrived while stalled
    std::set<std::string> erased;  // jobs this node erased (its tombstones, synced or not)
  };

  void boot(uint32_t i);
  void crash(uint32_t i);
  void input(uint32_t i, Input f);
  void drain(uint32_t i);
  void persist(uint32_t i, std::vector<Persist>& persists);
  void check_retention(uint32_t i, const Persist& p);
  void send(uint32_t i, Send& s);
  void bounce(uint32_t from, uint32_t instance, const std::string& to, Message m);
  void start_handler(uint32_t i, const Start& s);
  void stop_handler(uint32_t i, const Stop& s);
  void end_handler(uint32_t i, uint32_t instance, const std::string& id, uint32_t attempt,
                   uint64_t serial, JobState outcome, std::string error);
  void wake(uint32_t i, bool after_tick);
  void unstall(uint32_t i);
  void on_app(uint32_t to, uint32_t from, const std::string& bytes);
  void on_undelivered(uint32_t to, uint32_t from, const std::string& bytes);
  void trace(uint32_t i, const Output& out);
  void note(uint32_t i, const std::string& id, std::string event, std::string detail);
  void mix(uint64_t v);
  void mix(std::string_view s);

  Cluster& c_;
  ReplicaOptions o_;
  Random rng_;
  std::vector<Node> nodes_;
  ReplyFn reply_;
  LogFn log_;
  std::string trace_prefix_;
  std::ostream* trace_out_ = nullptr;
  ReplicaStats dead_stats_;  // of instances that crashed
  std::map<std::string, JobLedger> ledger_;
  std::map<std::string, std::vector<uint32_t>> writers_;
  std::map<std::string, uint64_t> log_events_;
  uint64_t serial_ = 0;
  uint64_t member_events_ = 0;
  uint64_t messages_ = 0, decode_failures_ = 0, undeliverable_ = 0, executor_overflows_ = 0;
  uint64_t superseded_starts_ = 0, early_starts_ = 0;
  std::map<std::string, uint64_t> terminal_at_;  // the earliest terminal status.at_ms persisted
  uint64_t resurrections_ = 0, early_erasures_ = 0;
  std::string first_resurrection_, first_early_erasure_;
  std::string first_early_start_;
  std::string first_superseded_start_;
  uint64_t digest_ = 0xcbf29ce484222325ull;
  std::set<uint32_t> liars_;
};

}  // namespace meshwork::sim
