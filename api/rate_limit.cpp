// Per-client token buckets; see rate_limit.h.
#include "api/rate_limit.h"

#include <algorithm>
#include <cmath>

#include "node/check.h"

namespace meshwork::api {
namespace {

uint32_t burst_of(const RateLimitOptions& o) {
  if (o.burst > 0) return o.burst;
  return static_cast<uint32_t>(std::max(1.0, std::ceil(o.rate_per_s)));
}

}  // namespace

std::string rate_limit_error(const RateLimitOptions& o) {
  if (!std::isfinite(o.rate_per_s) || o.rate_per_s < 0 || o.rate_per_s > kRatePerSecondMax)
    return "the rate limit must be from 0 (off) to " + std::to_string(int64_t(kRatePerSecondMax)) +
           " jobs per second";
  if (o.burst > kRateBurstMax)
    return "the burst must be at most " + std::to_string(kRateBurstMax) + " jobs";
  if (o.clients_max == 0) return "the rate limit needs room for at least one client";
  return "";
}

RateLimiter::RateLimiter(RateLimitOptions options) : options_(options), burst_(burst_of(options)) {
  MESHWORK_CHECK(rate_limit_error(options_).empty());
}

RateLimiter::Bucket& RateLimiter::bucket_for(std::string_view client, uint64_t now_ms) {
  if (auto it = index_.find(client); it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);  // most recently used; iterators stay valid
    return lru_.front();
  }
  if (index_.size() == options_.clients_max) {
    index_.erase(lru_.back().client);
    lru_.pop_back();
    evictions_++;
  }
  lru_.push_front(Bucket{std::string(client), double(burst_), now_ms});
  index_.emplace(lru_.front().client, lru_.begin());
  MESHWORK_CHECK(index_.size() <= options_.clients_max && index_.size() == lru_.size());
  return lru_.front();
}

RateDecision RateLimiter::take(std::string_view client, uint64_t now_ms) {
  if (!enabled()) return {};
  Bucket& b = bucket_for(client, now_ms);
  if (now_ms > b.at_ms) {  // a clock that stands still or steps back adds nothing
    b.tokens = std::min(double(burst_), b.tokens + double(now_ms - b.at_ms) * rate_per_s() / 1e3);
    b.at_ms = now_ms;
  }
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return {};
  }
  const double wait_ms = std::ceil((1 - b.tokens) * 1e3 / rate_per_s());
  return {false, std::max<uint64_t>(1, static_cast<uint64_t>(wait_ms))};
}

}  // namespace meshwork::api
