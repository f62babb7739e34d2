// JobRunner: runs the handlers the replica core starts, on the executor's workers.
//
//   Start (loop thread)  → a worker verifies the job's envelope (`check`: the node that runs a job
//                          verifies it, whatever its replicas did), then runs the job's handler
//                          (node/handlers.h) with a cancel token; an envelope that does not
//                          verify fails the attempt without running
//   Stop (loop thread)   → the token is cancelled; Why::timed_out also marks the attempt timed out
//   the handler returns  → its outcome ("timed out after N ms" when the core timed it out and it
//                          did not succeed), as an unsigned result (result_of), goes to `done`.
//                          The loop signs outcomes together, at most once per receipt linger,
//                          one Merkle root per batch (sign_batch, through a Signer:
//                          ReplicaDriver); the Signer is
//                          sign_batch unless a test breaks it on purpose (node/test_break.h,
//                          chosen once when the node starts)
//
// The core decides everything else: which attempt runs, its timeout, what an outcome means.
// Thread-safety: start() and stop() on the loop thread; shutdown() and the getters from any
// thread; `done` runs on a worker thread.
// Invariants: at most one attempt per job id runs here; after shutdown() no outcome is reported
// (handlers are cancelled and their jobs stay running on disk: the next boot recovers them).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dht/replica.h"
#include "node/crypto.h"
#include "node/executor.h"
#include "node/handlers.h"

namespace meshwork {

// Verifies a record's envelope (its signature and the node's key policy).
using EnvelopeCheck = std::function<bool(const JobRecord&)>;

class JobRunner {
 public:
  using Done = std::function<void(Outcome)>;
  // Signs a batch of this node's results (result_of's, 1 to kReceiptBatchMax of them) in place.
  using Signer = void (*)(const Identity& key, std::vector<Outcome>& batch);

  JobRunner(std::string node_name, size_t workers, Done done, EnvelopeCheck check = {});
  ~JobRunner();  // shutdown()
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  void start(const Start& s);
  void stop(const Stop& s);
  // Cancels every handler, drops their outcomes and joins the workers. Idempotent.
  void shutdown();

  [[nodiscard]] size_t workers() const { return executor_.workers(); }
  [[nodiscard]] size_t busy() const { return executor_.busy(); }

  // The outcome of running attempt `attempt` of `rec`'s handler (any exception becomes a failure).
  [[nodiscard]] static HandlerOutcome execute(const JobRecord& rec, uint32_t attempt,
                                              CancelToken& token);
  // `outcome` as this node's result of attempt `attempt`, its receipt not yet signed: a result
  // larger than kResultBytesMax becomes a failure, result_hash is set, the batch fields are not.
  [[nodiscard]] static NodeResult result_of(const std::string& node, const std::string& id,
                                            uint32_t attempt, const HandlerOutcome& outcome,
                                            uint64_t now_ms);
  // Signs `batch` (1 to kReceiptBatchMax results of this node) with one signature: over the Merkle
  // root of their receipts' messages (dht/merkle.h), each receipt given its index and proof.
  static void sign_batch(const Identity& key, std::vector<Outcome>& batch);
  // `outcome` as this node's signed result of attempt `attempt`: result_of, signed as a batch of
  // one.
  [[nodiscard]] static NodeResult sign_result(const Identity& key, const std::string& node,
                                              const std::string& id, uint32_t attempt,
                                              const HandlerOutcome& outcome, uint64_t now_ms);

 private:
  struct Running {
    uint32_t attempt = 0;
    CancelToken token;
    std::atomic<bool> timed_out{false};
  };
  void run(const std::shared_ptr<const JobRecord>& rec, uint32_t attempt,
           const std::shared_ptr<Running>& running);

  const std::string node_;
  const Done done_;
  const EnvelopeCheck check_;
  Executor executor_;
  std::mutex mu_;
  bool stopping_ = false;                                    // guarded by mu_
  std::map<std::string, std::shared_ptr<Running>> running_;  // guarded by mu_
};

}  // namespace meshwork
