// The handler registry (find_handler, all_handlers), the small built-in types (echo, sleep, flaky)
// and the helpers shared by every handler file.
//
// Thread-safety: the registry is built once, on first use, in a function-local static and never
// changes; the handlers keep no state. Every registered validate/run is wrapped by a guard, so no
// exception leaves a handler: validate turns one into a reason, run into a failed outcome.
// Payload rules and result shapes are documented in docs/job-types.md.

#include <chrono>
#include <new>
#include <string>

#include "node/handler_impl.h"
#include "node/handlers.h"

namespace meshwork {
namespace handler_impl {

std::string check_object(const json& v, std::string_view path,
                         std::initializer_list<std::string_view> allowed) {
  if (!v.is_object()) return std::string(path) + " must be an object";
  for (const auto& item : v.items()) {
    bool known = false;
    for (std::string_view a : allowed) known = known || a == item.key();
    if (known) continue;
    std::string names;
    for (std::string_view a : allowed) names += (names.empty() ? "" : ", ") + std::string(a);
    return std::string(path) + " has unknown field \"" + item.key() + "\" (allowed: " + names + ")";
  }
  return "";
}

bool json_u64(const json& v, uint64_t max, uint64_t& out) {
  uint64_t value = 0;
  if (v.is_number_unsigned()) {
    value = v.get<uint64_t>();
  } else if (v.is_number_integer()) {
    const int64_t s = v.get<int64_t>();
    if (s < 0) return false;
    value = static_cast<uint64_t>(s);
  } else {
    return false;
  }
  if (value > max) return false;
  out = value;
  return true;
}

std::string read_u64_or(const json& obj, std::string_view path, std::string_view key, uint64_t max,
                        uint64_t fallback, uint64_t& out) {
  const auto it = obj.find(key);
  if (it == obj.end()) {
    out = fallback;
    return "";
  }
  if (json_u64(*it, max, out)) return "";
  return std::string(path) + "." + std::string(key) + " must be an integer 0.." +
         std::to_string(max);
}

std::string read_u64(const json& obj, std::string_view path, std::string_view key, uint64_t max,
                     uint64_t& out) {
  if (!obj.contains(key)) {
    return std::string(path) + "." + std::string(key) + " is missing; it must be an integer 0.." +
           std::to_string(max);
  }
  return read_u64_or(obj, path, key, max, 0, out);
}


}  // namespace handler_impl

namespace {

using handler_impl::json;

constexpr uint64_t kSleepMsMax = 3'600'000;    // one hour
constexpr uint64_t kFlakyFailTimesMax = 100;   // beyond any sensible retry budget
constexpr uint64_t kFlakySleepMsMax = 10'000;  // "small": flaky is for retry demos, not for load

// ---- echo: {"echo": payload} ----

std::string validate_echo(const json&) {
  return "";
}

HandlerOutcome run_echo(const JobContext& ctx, CancelToken&) {
  return HandlerOutcome::success(json{{"echo", ctx.payload}});
}

// ---- sleep: {"ms": N} -> {"slept_ms": N} ----

std::string parse_sleep(const json& p, uint64_t& ms) {
  if (auto r = handler_impl::check_object(p, "payload", {"ms"}); !r.empty()) return r;
  return handler_impl::read_u64(p, "payload", "ms", kSleepMsMax, ms);
}

std::string validate_sleep(const json& p) {
  uint64_t ms = 0;
  return parse_sleep(p, ms);
}

HandlerOutcome run_sleep(const JobContext& ctx, CancelToken& cancel) {
  uint64_t ms = 0;
  if (auto r = parse_sleep(ctx.payload, ms); !r.empty()) return HandlerOutcome::failure(r);
  if (cancel.wait_for(std::chrono::milliseconds(ms))) {
    return HandlerOutcome::stopped("sleep cancelled before " + std::to_string(ms) + " ms elapsed");
  }
  return HandlerOutcome::success(json{{"slept_ms", ms}});
}

// ---- flaky: {"fail_times": k, "ms"?: N} fails on attempts 1..k, succeeds from k+1 ----

struct FlakySpec {
  uint64_t fail_times = 0;
  uint64_t ms = 0;
};

std::string parse_flaky(const json& p, FlakySpec& spec) {
  if (auto r = handler_impl::check_object(p, "payload", {"fail_times", "ms"}); !r.empty()) {
    return r;
  }
  if (auto r =
          handler_impl::read_u64(p, "payload", "fail_times", kFlakyFailTimesMax, spec.fail_times);
      !r.empty()) {
    return r;
  }
  return handler_impl::read_u64_or(p, "payload", "ms", kFlakySleepMsMax, 0, spec.ms);
}

std::string validate_flaky(const json& p) {
  FlakySpec spec;
  return parse_flaky(p, spec);
}

HandlerOutcome run_flaky(const JobContext& ctx, CancelToken& cancel) {
  FlakySpec spec;
  if (auto r = parse_flaky(ctx.payload, spec); !r.empty()) return HandlerOutcome::failure(r);
  if (spec.ms > 0 && cancel.wait_for(std::chrono::milliseconds(spec.ms))) {
    return HandlerOutcome::stopped("flaky cancelled during its " + std::to_string(spec.ms) +
                                   " ms sleep");
  }
  if (ctx.attempt <= spec.fail_times) {
    return HandlerOutcome::failure(
        "flaky: deliberate failure on attempt " + std::to_string(ctx.attempt) +
        " (fails while attempt <= " + std::to_string(spec.fail_times) + ")");
  }
  return HandlerOutcome::success(
      json{{"succeeded_on_attempt", ctx.attempt}, {"fail_times", spec.fail_times}});
}

// ---- registry ----

using ValidateFn = std::string (*)(const json&);
using RunFn = HandlerOutcome (*)(const JobContext&, CancelToken&);

// Guards: an exception escaping a handler is a bug or resource exhaustion, never a reason to let it
// unwind through the executor's thread.
template <ValidateFn Fn>
std::string guarded_validate(const json& payload) {
  try {
    return Fn(payload);
  } catch (const std::bad_alloc&) {
    return "payload is too large to validate";
  } catch (const std::exception& e) {
    return std::string("payload could not be validated: ") + e.what();
  } catch (...) {
    return "payload could not be validated";
  }
}

template <RunFn Fn>
HandlerOutcome guarded_run(const JobContext& ctx, CancelToken& cancel) {
  try {
    return Fn(ctx, cancel);
  } catch (const std::bad_alloc&) {
    return HandlerOutcome::failure("handler ran out of memory");
  } catch (const std::exception& e) {
    return HandlerOutcome::failure(std::string("handler error: ") + e.what());
  } catch (...) {
    return HandlerOutcome::failure("handler error");
  }
}

template <ValidateFn V, RunFn R>
Handler make(std::string_view type, std::string_view summary) {
  return Handler{type, summary, &guarded_validate<V>, &guarded_run<R>};
}

std::vector<Handler> build_registry() {
  namespace hi = handler_impl;
  return {
      make<validate_echo, run_echo>("echo", "returns its payload unchanged: {\"echo\": payload}"),
      make<validate_sleep, run_sleep>("sleep", "waits payload.ms milliseconds (cancellable)"),
      make<validate_flaky, run_flaky>(
          "flaky", "fails while attempt <= payload.fail_times, then succeeds (retry demo)"),
      make<hi::validate_pow, hi::run_pow>(
          "pow", "BLAKE2b-256 proof of work: smallest nonce giving difficulty_bits leading zeros"),
      make<hi::validate_tx_verify, hi::run_tx_verify>(
          "tx-verify",
          "verifies and applies a batch of Ed25519-signed transfers; balances and Merkle root"),
      make<hi::validate_enrich, hi::run_enrich>(
          "enrich", "enriches CDN access-log records (IP class, user agent, URL, time) + summary"),
  };
}

}  // namespace

const std::vector<Handler>& all_handlers() {
  static const std::vector<Handler> registry = build_registry();
  return registry;
}

const Handler* find_handler(std::string_view type) {
  for (const Handler& h : all_handlers()) {
    if (h.type == type) return &h;
  }
  return nullptr;
}

}  // namespace meshwork
