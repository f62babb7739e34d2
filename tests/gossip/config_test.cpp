#include "gossip/config.h"

#include <doctest/doctest.h>

using namespace meshwork::gossip;

TEST_CASE("every profile is valid and lan is the default") {
  for (const Profile p : {Profile::local, Profile::lan, Profile::wan}) {
    const Config c = config_for(p);
    CHECK_MESSAGE(!config_error(c), to_string(p));
    CHECK(parse_profile(to_string(p)) == p);
  }
  CHECK_FALSE(parse_profile("fast"));
  const Config def;
  CHECK(def.probe_interval_ms == config_for(Profile::lan).probe_interval_ms);
  CHECK(config_for(Profile::local).probe_interval_ms < def.probe_interval_ms);
  CHECK(config_for(Profile::wan).probe_interval_ms > def.probe_interval_ms);
}

TEST_CASE("config_error catches impossible timings") {
  Config c;
  c.probe_timeout_ms = c.probe_interval_ms;
  CHECK(config_error(c));
  c = Config{};
  c.reap_timeout_ms = c.reconnect_timeout_ms - 1;
  CHECK(config_error(c));
  c = Config{};
  c.tick_ms = 0;
  CHECK(config_error(c));
  c = Config{};
  c.members_max = 0;
  CHECK(config_error(c));
}

TEST_CASE("suspicion bounds scale with log10 N and push-pull with log2 N beyond 32") {
  const Config c;  // lan: mult 3, max mult 5, interval 200
  CHECK(suspicion_min_ms(c, 1) == 600);
  CHECK(suspicion_min_ms(c, 5) == 600);
  CHECK(suspicion_min_ms(c, 20) == 780);
  CHECK(suspicion_min_ms(c, 1000) >= 1799);
  CHECK(suspicion_min_ms(c, 1000) <= 1800);
  CHECK(suspicion_max_ms(c, 5) == 3000);
  CHECK(suspicion_expected_confirmations(c, 3) == 0);
  CHECK(suspicion_expected_confirmations(c, 4) == 2);
  CHECK(push_pull_interval_scaled_ms(c, 32) == c.push_pull_interval_ms);
  CHECK(push_pull_interval_scaled_ms(c, 33) == 2 * c.push_pull_interval_ms);
  CHECK(push_pull_interval_scaled_ms(c, 10000) == 10 * c.push_pull_interval_ms);
}
