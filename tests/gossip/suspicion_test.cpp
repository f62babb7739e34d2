#include "gossip/suspicion.h"

#include <doctest/doctest.h>

#include <cmath>

using namespace meshwork::gossip;

TEST_CASE("suspicion timeout follows Lifeguard's formula") {
  // max - (max - min) * log(C + 1) / log(K + 1), floored, never below min.
  CHECK(suspicion_timeout_ms(0, 3, 2000, 30000) == 30000);
  CHECK(suspicion_timeout_ms(1, 3, 2000, 30000) == 16000);  // log2/log4 = 1/2
  CHECK(suspicion_timeout_ms(2, 3, 2000, 30000) ==
        static_cast<uint64_t>(std::floor(30000 - 28000 * std::log(3.0) / std::log(4.0))));
  CHECK(suspicion_timeout_ms(3, 3, 2000, 30000) == 2000);
  CHECK(suspicion_timeout_ms(9, 3, 2000, 30000) == 2000);  // clamped at min
  CHECK(suspicion_timeout_ms(0, 0, 2000, 30000) == 2000);  // K == 0: min at once
  CHECK(suspicion_timeout_ms(0, 2, 500, 100) == 500);      // max < min: min
}

TEST_CASE("confirmations shrink the deadline, count once per member, never the accuser") {
  Suspicion s(name_id("n1"), 2, 600, 3000, 1000);
  CHECK(s.deadline_ms() == 4000);
  CHECK_FALSE(s.confirm(name_id("n1")));  // the accuser
  CHECK(s.confirm(name_id("n2")));
  const uint64_t one = s.deadline_ms();
  CHECK(one < 4000);
  CHECK(one > 1600);
  CHECK_FALSE(s.confirm(name_id("n2")));  // duplicate
  CHECK(s.deadline_ms() == one);
  CHECK(s.confirm(name_id("n3")));
  CHECK(s.deadline_ms() == 1600);
  CHECK_FALSE(s.confirm(name_id("n4")));  // K reached
  CHECK(s.confirmations() == 2);
}

TEST_CASE("expected confirmations are clamped") {
  Suspicion s(1, 100, 10, 1000, 0);
  for (uint64_t i = 2; i < 20; ++i) (void)s.confirm(i);
  CHECK(s.confirmations() == suspicion_confirmations_max);
  CHECK(s.deadline_ms() == 10);
}

TEST_CASE("name ids are stable FNV-1a") {
  CHECK(name_id("") == 0xcbf29ce484222325ull);
  CHECK(name_id("a") == 0xaf63dc4c8601ec8cull);
  CHECK(name_id("n1") != name_id("n2"));
}
