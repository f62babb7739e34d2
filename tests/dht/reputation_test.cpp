// Host reputation (dht/reputation.h): the score, the threshold and the bound.
#include "dht/reputation.h"

#include <doctest/doctest.h>

#include <string>

using meshwork::HostScore;
using meshwork::Reputation;

TEST_CASE("a host nobody has seen work scores one half and is trusted") {
  Reputation rep;
  CHECK(rep.score("n1") == doctest::Approx(0.5));
  CHECK(rep.trusted("n1"));
  CHECK(rep.hosts().empty());
}

TEST_CASE("two wrong answers distrust a new host, one does not") {
  Reputation rep;
  CHECK_FALSE(rep.disagreed("liar"));  // 1/3: still trusted
  CHECK(rep.score("liar") == doctest::Approx(1.0 / 3));
  CHECK(rep.trusted("liar"));
  CHECK(rep.disagreed("liar"));  // 1/4: trust changed
  CHECK_FALSE(rep.trusted("liar"));
  CHECK_FALSE(rep.disagreed("liar"));  // still distrusted: no change
  CHECK(rep.counts("liar").disagreed == 3);
}

TEST_CASE("one forged receipt distrusts a host at once") {
  Reputation rep;
  CHECK(rep.forged("forger"));
  CHECK(rep.score("forger") == doctest::Approx(1.0 / 6));
  CHECK_FALSE(rep.trusted("forger"));
}

TEST_CASE("agreements earn trust back, and an honest record absorbs a slip") {
  Reputation rep;
  for (int i = 0; i < 20; ++i) CHECK_FALSE(rep.agreed("honest"));
  CHECK_FALSE(rep.disagreed("honest"));
  CHECK_FALSE(rep.disagreed("honest"));
  CHECK(rep.trusted("honest"));
  CHECK(rep.score("honest") == doctest::Approx(21.0 / 24));

  rep.disagreed("x");
  CHECK(rep.disagreed("x"));
  CHECK_FALSE(rep.trusted("x"));
  CHECK(rep.agreed("x"));  // 2/5 = 0.4 ≥ 0.3: trusted again
  CHECK(rep.trusted("x"));
}

TEST_CASE("trusted() is decided on integers exactly at the threshold") {
  // (a + 1) / (a + d + 2) with a = 2, d = 6 is 3/10: exactly the default threshold.
  Reputation rep;
  for (int i = 0; i < 2; ++i) rep.agreed("edge");
  for (int i = 0; i < 6; ++i) rep.disagreed("edge");
  CHECK(rep.score("edge") == doctest::Approx(0.3));
  CHECK(rep.trusted("edge"));  // at the threshold counts as trusted
  rep.disagreed("edge");
  CHECK_FALSE(rep.trusted("edge"));

  Reputation strict(50);
  CHECK(strict.trusted("new"));  // 0.5 ≥ 0.5
  CHECK(strict.disagreed("new"));
  CHECK_FALSE(strict.trusted("new"));
}

TEST_CASE("at most kHostsMax hosts are kept; the first seen goes first") {
  Reputation rep;
  for (size_t i = 0; i < Reputation::kHostsMax; ++i) rep.disagreed("h" + std::to_string(i));
  CHECK(rep.hosts().size() == Reputation::kHostsMax);
  rep.forged("late");
  CHECK(rep.hosts().size() == Reputation::kHostsMax);
  CHECK(rep.counts("h0").disagreed == 0);  // forgotten
  CHECK(rep.counts("h1").disagreed == 1);
  CHECK(rep.counts("late").forged == 1);
  const HostScore none{};
  CHECK(none.score() == doctest::Approx(0.5));
}
