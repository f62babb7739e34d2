// Job handlers: the built-in job types a node can run (echo, sleep, flaky, pow, tx-verify, enrich).
//
// A handler is a pair of pure functions over JSON:
//   validate(payload)   -> "" when the payload is acceptable, else a human-readable reason (API: 422).
//   run(ctx, cancel)    -> the outcome of one attempt.
// Handlers see only their job (id, payload, attempt) and a cancel token; they do no I/O, keep no
// state between calls and are deterministic for a given (payload, attempt), so that a job re-run on
// another node after a takeover produces the same result.
//
// Thread-safety: the registry is immutable after static initialisation; handlers are called
// concurrently from the executor's worker threads and must be reentrant.
// Long-running handlers poll `cancel.cancelled()` (or wait through `cancel.wait_for`) often enough to
// stop within ~10 ms of a cancel or timeout.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace meshwork {

// Set once (by a user's cancel or by the executor's per-job timeout), observed by the handler.
class CancelToken {
 public:
  void cancel() {
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
    }
    cv_.notify_all();
  }
  [[nodiscard]] bool cancelled() const {
    std::lock_guard lock(mu_);
    return cancelled_;
  }
  // Sleeps up to `ms`; returns true if the token was cancelled before or during the wait.
  bool wait_for(std::chrono::milliseconds ms) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, ms, [&] { return cancelled_; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool cancelled_ = false;
};

struct JobContext {
  std::string_view job_id;
  const nlohmann::json& payload;
  uint32_t attempt;  // 1 for the first attempt
};

struct HandlerOutcome {
  enum class Kind { succeeded, failed, cancelled };
  Kind kind = Kind::failed;
  nlohmann::json result;  // set when succeeded
  std::string error;      // set when failed or cancelled

  static HandlerOutcome success(nlohmann::json r) { return {Kind::succeeded, std::move(r), {}}; }
  static HandlerOutcome failure(std::string e) { return {Kind::failed, nullptr, std::move(e)}; }
  static HandlerOutcome stopped(std::string e) { return {Kind::cancelled, nullptr, std::move(e)}; }
};

struct Handler {
  std::string_view type;
  std::string_view summary;  // one line, shown by GET /v1/node and the docs
  std::string (*validate)(const nlohmann::json& payload);
  HandlerOutcome (*run)(const JobContext& ctx, CancelToken& cancel);
};

// The handler for `type`, or nullptr when no such type exists.
[[nodiscard]] const Handler* find_handler(std::string_view type);

// Every registered handler, in a stable order.
[[nodiscard]] const std::vector<Handler>& all_handlers();

}  // namespace meshwork
