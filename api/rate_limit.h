// Per-client rate limit of job submissions: a token bucket per client in a table of bounded size.
//
// A bucket holds at most `burst` tokens and refills at `rate_per_s` tokens per second; each job
// takes one. A client the table has not seen (or has forgotten) starts with a full bucket. The
// client is a string the caller picks (the API: "key:" + a signing key, or "ip:" + an address).
//
// The table is bounded by clients_max: when a new client arrives and the table is full, the
// bucket used least recently is dropped (LRU). A dropped bucket that was not yet full again is
// the only state lost, and it can only be lost by clients_max other clients arriving within
// burst / rate_per_s seconds; so many clients get a full burst each in any case. Memory: about
// 200 bytes per bucket (the client string, a list node and a hash-table node), so at the default
// kRateClientsMax about 13 MiB at most, however many addresses or keys send jobs.
//
// Time is an argument (monotonic ms): no clock is read here, so tests drive it.
// Thread-safety: none; the owner serialises calls (the API holds a mutex around it).
// Invariants: 1. clients() <= clients_max. 2. 0 <= a bucket's tokens <= burst.
//             3. take() answers allowed = false only when the bucket holds less than one token,
//                and then retry_after_ms > 0 is when it will hold one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

namespace meshwork::api {

inline constexpr size_t kRateClientsMax = 65'536;  // buckets kept at most (LRU beyond)
inline constexpr double kRatePerSecondMax = 1e6;   // --rate-limit at most
inline constexpr uint32_t kRateBurstMax = 1'000'000;

struct RateLimitOptions {
  double rate_per_s = 0;  // tokens added per second; 0: no limit
  uint32_t burst = 0;     // tokens a bucket holds; 0: the rate rounded up, at least 1
  size_t clients_max = kRateClientsMax;
};

// Why a RateLimitOptions cannot be used ("" when it can).
[[nodiscard]] std::string rate_limit_error(const RateLimitOptions& o);

struct RateDecision {
  bool allowed = true;
  uint64_t retry_after_ms = 0;  // when refused: until the bucket holds a token again
};

class RateLimiter {
 public:
  // Precondition: rate_limit_error(options) is empty (checked).
  explicit RateLimiter(RateLimitOptions options);

  // Takes one token from `client`'s bucket at `now_ms`, or refuses when it holds less than one.
  // A refusal takes nothing. With no limit (rate 0) every call is allowed and nothing is kept.
  [[nodiscard]] RateDecision take(std::string_view client, uint64_t now_ms);

  [[nodiscard]] bool enabled() const { return options_.rate_per_s > 0; }
  [[nodiscard]] double rate_per_s() const { return options_.rate_per_s; }
  [[nodiscard]] uint32_t burst() const { return burst_; }
  [[nodiscard]] size_t clients() const { return index_.size(); }
  [[nodiscard]] size_t clients_max() const { return options_.clients_max; }
  [[nodiscard]] uint64_t evictions() const { return evictions_; }

 private:
  struct Bucket {
    std::string client;
    double tokens = 0;
    uint64_t at_ms = 0;  // when `tokens` was last brought up to date
  };
  using Lru = std::list<Bucket>;  // most recently used first

  Bucket& bucket_for(std::string_view client, uint64_t now_ms);

  const RateLimitOptions options_;
  const uint32_t burst_;
  Lru lru_;
  std::unordered_map<std::string_view, Lru::iterator> index_;  // views into lru_'s strings
  uint64_t evictions_ = 0;
};

// Seconds a Retry-After header should say for `retry_after_ms`: rounded up, at least 1.
[[nodiscard]] inline uint64_t retry_after_seconds(uint64_t retry_after_ms) {
  const uint64_t s = (retry_after_ms + 999) / 1000;
  return s == 0 ? 1 : s;
}

}  // namespace meshwork::api
