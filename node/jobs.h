// The job service: accepts signed jobs, stores them durably, runs them, answers for them.
//
// Life of a job on this node:
//   submit  → verify or sign → admission check → store (fsync'd) → 202 → executor backlog
//   run     → claim (running, attempt+1, lease; durable before the handler starts) → handler with
//             a per-job timeout → result + signed receipt merged into the record (durable)
//   failure → retry_wait with exponential backoff and jitter until max_attempts, then failed
//   cancel  → queued: cancelled at once; running: cancel requested, the handler stops cooperatively
//   restart → recover(): a record left running by a crash becomes retry_wait and runs again with
//             attempt+1; finished records stay as they are
// Every state change goes through Store::update, so it is atomic per record and durable before it
// is acted on or acknowledged.
//
// Threads: public methods are called from HTTP worker threads and block until the store has the
// change on disk. Running never blocks a worker on the disk: runnable ids wait in the backlog; a
// free worker takes one, writes its claim and runs its handler at the same time (speculatively; see
// run_slot), then queues its outcome write and takes the next. The store applies claim and outcome
// in order, often in the same fsync'd batch. At most one job per worker is past the backlog, so
// `running` means a worker really has the job, and a queued job can always be cancelled at once.
// Timers (retries, lease renewals, and one watchdog for the timeouts of every running attempt) run
// on the io_context passed in, which the caller runs on its own thread until after stop().
//
// In a mesh (JobHooks set), the job service runs only the jobs the mesh says this node owns; a
// claim counts once the mesh confirms it on a majority of the job's replicas (until then the
// handler runs speculatively and its outcome waits); every claim, lease renewal and outcome is
// handed to the mesh to replicate; and recovery leaves starting jobs to the mesh's sweeps.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_set>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "node/crypto.h"
#include "node/envelope.h"
#include "node/executor.h"
#include "node/handlers.h"
#include "dht/job_record.h"
#include "node/store.h"

namespace meshwork {

// A crash or a lost owner interrupts an attempt through no fault of the job; such attempts may run
// past max_attempts by at most this many, so that a job that kills its node cannot loop forever.
inline constexpr uint32_t kInterruptedAttemptsExtraMax = 3;
// How often running attempts are checked against their timeout: a timeout fires within this much.
inline constexpr uint64_t kWatchdogPeriodMs = 20;

struct JobsOptions {
  size_t workers = 2;
  size_t backlog_max = 10'000;  // queued jobs accepted before submissions get 429
  Limits limits;
  bool require_signed = false;
  std::optional<std::set<std::string>> allowed_keys;  // raw 32-byte public keys
  uint64_t backoff_base_ms = 500;
  uint64_t backoff_max_ms = 30'000;
  uint64_t lease_ms = 15'000;  // a claim's lease, renewed every lease_ms / 3 while running
};

// What the job service asks of the mesh (node/mesh.h). All empty: a single node that owns every
// job.
struct JobHooks {
  // May this node start the job now? (It owns the job in the current view.)
  std::function<bool(const JobRecord&)> owns;
  // Replicates a durable claim; `done(true)` once a majority of replicas holds it, `done(false)`
  // when that cannot happen (another claim or a terminal state won, or too few replicas answered).
  std::function<void(const JobRecord& claimed, std::function<void(bool)> done)> confirm_claim;
  // Ships a record this node changed (lease renewal, outcome) to the job's other replicas.
  std::function<void(const JobRecord&)> replicate;
};

struct JobsStats {
  uint64_t submitted = 0;   // accepted and new
  uint64_t duplicates = 0;  // the same envelope again
  uint64_t rejected = 0;
  uint64_t attempts_started = 0;
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t retried = 0;
  uint64_t cancelled = 0;
};

// The cancel transition as an update function: cancelled at once when not running, else a
// cancel request the running handler obeys. `refusal` is set when the job is unknown or finished.
[[nodiscard]] std::optional<JobRecord> cancel_record(const JobRecord* cur, const std::string& id,
                                                     const std::string& node, uint64_t now,
                                                     Status& refusal);

class Jobs {
 public:
  Jobs(asio::io_context& io, Store& store, const Identity& key, std::string node_name,
       JobsOptions options);
  ~Jobs();
  Jobs(const Jobs&) = delete;
  Jobs& operator=(const Jobs&) = delete;

  // Set before start().
  void set_hooks(JobHooks hooks) { hooks_ = std::move(hooks); }
  // Recovers unfinished jobs from the store and starts the workers.
  [[nodiscard]] Status start();
  // Stops the workers; running handlers are cancelled and their jobs stay unfinished on disk.
  // Idempotent; the io_context must still be running on its thread the first time.
  void stop();

  struct Submitted {
    JobRecord record;
    bool created = false;  // false: the same signed job was already here
  };
  // body: a signed envelope or a plain job spec → a fresh queued record, verified (or signed) and
  // admitted (the backlog has room), not yet stored.
  [[nodiscard]] Result<JobRecord> admit(const nlohmann::json& body);
  // admit, then store on this node alone. Blocks until the record is durable.
  [[nodiscard]] Result<Submitted> submit(const nlohmann::json& body);
  // Considers a stored job for running now (no-op unless it is claimable and not already here).
  void enqueue(const std::string& id);
  // Runs `id` once its retry time comes (no-op if it is already waiting here).
  void schedule(const std::string& id, uint64_t at_wall_ms);
  // Stops the job's running handler, if any, because a cancel arrived.
  void cancel_running(const std::string& id);
  [[nodiscard]] bool is_active(const std::string& id) const;
  // Counters for changes the mesh made on this service's behalf.
  void note_submitted(bool created);
  void note_cancel(const Applied& applied);
  [[nodiscard]] Result<JobRecord> get(const std::string& id) const;
  [[nodiscard]] Result<JobRecord> cancel(const std::string& id);

  struct ListQuery {
    std::optional<JobState> state;  // matched on the public state: queued also matches retry_wait
    std::string type;
    size_t limit = 100;
    std::string cursor;
  };
  [[nodiscard]] Result<Store::Page> list(const ListQuery& q) const;

  [[nodiscard]] JobsStats stats() const;
  [[nodiscard]] size_t backlog() const;
  [[nodiscard]] size_t running() const { return executor_.busy(); }
  [[nodiscard]] const std::string& node_name() const { return node_; }
  [[nodiscard]] const Identity& identity() const { return key_; }
  [[nodiscard]] const JobsOptions& options() const { return options_; }

 private:
  struct Running {
    JobRecord claimed;  // the record as claimed (status running, this attempt)
    CancelToken token;
    std::atomic<bool> timed_out{false};
    std::atomic<bool> claim_lost{false};
    std::atomic<bool> claim_confirmed{false};
    std::atomic<uint64_t> deadline_mono_ms{0};  // set when the handler starts
    // The outcome is recorded once both the handler has ended and the claim is settled.
    std::atomic<int> arrivals{0};
    HandlerOutcome outcome;          // written by the worker before its arrival
    bool claim_unconfirmed = false;  // written before the claim's arrival: too few replicas
  };

  Result<Envelope> envelope_for(const nlohmann::json& body, JobSpec& spec) const;
  void pump();
  static bool claimable(const JobRecord& r, uint64_t now);
  void run_slot(const std::string& id);
  void claim(const JobRecord& rec, uint32_t attempt, uint64_t now,
             const std::shared_ptr<Running>& running);
  void arrive(const std::shared_ptr<Running>& running);
  void release_unconfirmed(const JobRecord& claimed);
  void finish(const JobRecord& claimed, const HandlerOutcome& outcome);
  void renew_leases();
  void done_with(const std::string& id);
  HandlerOutcome execute(const JobRecord& rec, const std::shared_ptr<Running>& running);
  NodeResult sign_result(const JobRecord& rec, const HandlerOutcome& outcome) const;
  void watch();
  uint64_t backoff_ms(uint32_t attempt);
  Status recover();

  asio::io_context& io_;
  Store& store_;
  const Identity& key_;
  const std::string node_;
  const JobsOptions options_;
  JobHooks hooks_;
  Executor executor_;
  asio::steady_timer watchdog_;  // io thread only

  mutable std::mutex mu_;  // guards everything below
  bool stopping_ = false;
  std::deque<std::string> backlog_;         // runnable, not yet claimed
  std::unordered_set<std::string> active_;  // in the backlog or in the pipeline
  size_t in_pipeline_ = 0;
  std::map<std::string, std::shared_ptr<Running>> running_;  // handler started, outcome not written
  std::unordered_set<std::string> scheduled_;                // retry timers pending
  uint64_t last_renewal_mono_ms_ = 0;                        // io thread only
  JobsStats stats_;
  std::mt19937_64 rng_;
  // Submissions through this node get strictly increasing times, so that (node, time) names one
  // submission (submitted_before in job_record.h).
  uint64_t last_submission_ms_ = 0;
};

}  // namespace meshwork
