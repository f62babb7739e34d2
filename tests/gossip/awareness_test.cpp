#include "gossip/awareness.h"

#include <doctest/doctest.h>

using meshwork::gossip::Awareness;

TEST_CASE("awareness starts healthy and scales timeouts by score + 1") {
  Awareness a(8);
  CHECK(a.score() == 0);
  CHECK(a.scale_ms(200) == 200);
  a.apply_delta(2);
  CHECK(a.score() == 2);
  CHECK(a.scale_ms(200) == 600);
}

TEST_CASE("awareness is clamped to [0, max)") {
  Awareness a(8);
  a.apply_delta(-5);
  CHECK(a.score() == 0);
  a.apply_delta(100);
  CHECK(a.score() == 7);
  CHECK(a.scale_ms(100) == 800);
  a.apply_delta(-1);
  CHECK(a.score() == 6);
  Awareness degenerate(0);  // treated as max 1: never scales
  degenerate.apply_delta(3);
  CHECK(degenerate.score() == 0);
}
