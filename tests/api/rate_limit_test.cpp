// RateLimiter: a burst then the refill rate, Retry-After until the next token, clients apart, the
// table bounded by LRU, and nothing kept when the limit is off. The clock is the test's.
#include <doctest/doctest.h>

#include <random>
#include <string>

#include "api/rate_limit.h"

namespace meshwork::api {

TEST_CASE("a bucket allows a burst, then one job per 1/rate seconds") {
  RateLimiter rl({.rate_per_s = 10, .burst = 5});
  for (int i = 0; i < 5; ++i) CHECK(rl.take("a", 1'000).allowed);
  const RateDecision refused = rl.take("a", 1'000);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.retry_after_ms == 100);  // one token every 100 ms
  CHECK(retry_after_seconds(refused.retry_after_ms) == 1);
  CHECK_FALSE(rl.take("a", 1'050).allowed);
  CHECK(rl.take("a", 1'050).retry_after_ms == 50);
  CHECK(rl.take("a", 1'100).allowed);
  CHECK_FALSE(rl.take("a", 1'100).allowed);
  // A long pause refills to the burst, never beyond.
  int allowed = 0;
  for (int i = 0; i < 20; ++i) allowed += rl.take("a", 60'000).allowed;
  CHECK(allowed == 5);
}

TEST_CASE("a refusal takes nothing: steady retries get through at the rate") {
  RateLimiter rl({.rate_per_s = 2, .burst = 1});
  CHECK(rl.take("a", 0).allowed);
  int allowed = 0;
  for (uint64_t t = 0; t <= 10'000; t += 10) allowed += rl.take("a", t).allowed;
  CHECK(allowed == 20);  // 2 per second over 10 s, not fewer
}

TEST_CASE("a slow rate says how many seconds to wait") {
  RateLimiter rl({.rate_per_s = 0.25, .burst = 0});
  CHECK(rl.burst() == 1);
  CHECK(rl.take("a", 0).allowed);
  const RateDecision r = rl.take("a", 1'000);
  CHECK_FALSE(r.allowed);
  CHECK(r.retry_after_ms == 3'000);
  CHECK(retry_after_seconds(r.retry_after_ms) == 3);
  CHECK(retry_after_seconds(0) == 1);
  CHECK(retry_after_seconds(1'001) == 2);
}

TEST_CASE("the default burst is the rate rounded up") {
  CHECK(RateLimiter({.rate_per_s = 2.5}).burst() == 3);
  CHECK(RateLimiter({.rate_per_s = 100}).burst() == 100);
  CHECK(RateLimiter({.rate_per_s = 100, .burst = 7}).burst() == 7);
}

TEST_CASE("one client's empty bucket does not limit another") {
  RateLimiter rl({.rate_per_s = 1, .burst = 2});
  CHECK(rl.take("key:a", 0).allowed);
  CHECK(rl.take("key:a", 0).allowed);
  CHECK_FALSE(rl.take("key:a", 0).allowed);
  CHECK(rl.take("key:b", 0).allowed);
  CHECK(rl.take("ip:127.0.0.1", 0).allowed);
  CHECK(rl.clients() == 3);
}

TEST_CASE("the table keeps at most clients_max buckets and drops the least recently used") {
  RateLimiter rl({.rate_per_s = 1, .burst = 1, .clients_max = 3});
  CHECK(rl.take("a", 0).allowed);
  CHECK(rl.take("b", 0).allowed);
  CHECK(rl.take("c", 0).allowed);
  CHECK_FALSE(rl.take("a", 0).allowed);  // a is now the most recently used
  CHECK(rl.take("d", 0).allowed);        // drops b
  CHECK(rl.clients() == 3);
  CHECK(rl.evictions() == 1);
  CHECK_FALSE(rl.take("a", 0).allowed);  // a kept its empty bucket
  CHECK_FALSE(rl.take("c", 0).allowed);
  CHECK(rl.take("b", 0).allowed);  // b starts afresh (drops d)
  CHECK(rl.clients() == 3);

  // Many distinct clients never grow the table beyond its bound.
  RateLimiter big({.rate_per_s = 5, .burst = 5, .clients_max = 1'000});
  for (int i = 0; i < 50'000; ++i) (void)big.take("ip:" + std::to_string(i), uint64_t(i));
  CHECK(big.clients() == 1'000);
  CHECK(big.evictions() == 49'000);
}

TEST_CASE("a clock that steps back neither refills nor breaks the bucket") {
  RateLimiter rl({.rate_per_s = 1, .burst = 1});
  CHECK(rl.take("a", 10'000).allowed);
  CHECK_FALSE(rl.take("a", 5'000).allowed);
  CHECK_FALSE(rl.take("a", 10'500).allowed);
  CHECK(rl.take("a", 11'000).allowed);
}

TEST_CASE("with the limit off every job is allowed and no bucket is kept") {
  RateLimiter rl({});
  CHECK_FALSE(rl.enabled());
  for (int i = 0; i < 1'000; ++i) CHECK(rl.take("a", 0).allowed);
  CHECK(rl.clients() == 0);
}

TEST_CASE("options out of range are named") {
  CHECK(rate_limit_error({.rate_per_s = 5}).empty());
  CHECK_FALSE(rate_limit_error({.rate_per_s = -1}).empty());
  CHECK_FALSE(rate_limit_error({.rate_per_s = 1e12}).empty());
  CHECK_FALSE(rate_limit_error({.rate_per_s = std::nan("")}).empty());
  CHECK_FALSE(rate_limit_error({.rate_per_s = 1, .burst = kRateBurstMax + 1}).empty());
  CHECK_FALSE(rate_limit_error({.rate_per_s = 1, .clients_max = 0}).empty());
}

TEST_CASE("random traffic keeps every invariant") {
  std::mt19937_64 rng(14);
  RateLimiter rl({.rate_per_s = 3, .burst = 4, .clients_max = 50});
  uint64_t now = 0;
  for (int i = 0; i < 100'000; ++i) {
    now += rng() % 20;
    const std::string client = "c" + std::to_string(rng() % 80);
    const RateDecision d = rl.take(client, now);
    CHECK((d.allowed ? d.retry_after_ms == 0 : d.retry_after_ms > 0));
    CHECK(rl.clients() <= 50);
  }
  // One client alone over 10 s: at most burst + rate * 10 s.
  RateLimiter one({.rate_per_s = 3, .burst = 4});
  int n = 0;
  for (uint64_t t = 0; t <= 10'000; t += rng() % 7 + 1) n += one.take("x", t).allowed;
  CHECK(n <= 4 + 30);
  CHECK(n >= 4 + 29);
}

}  // namespace meshwork::api
