#include "gossip/config.h"

#include <algorithm>
#include <cmath>

#include "gossip/suspicion.h"

namespace meshwork::gossip {

namespace {

constexpr std::size_t push_pull_scale_threshold = 32;

Config local_profile() {
  Config c;
  c.tick_ms = 5;
  c.probe_interval_ms = 100;
  c.probe_timeout_ms = 40;
  c.gossip_interval_ms = 50;
  c.gossip_to_dead_ms = 5'000;
  c.push_pull_interval_ms = 15'000;
  c.join_retry_ms = 500;
  c.dead_probe_interval_ms = 1'000;
  c.reconnect_timeout_ms = 60'000;
  c.reap_timeout_ms = 90'000;
  return c;
}

Config wan_profile() {
  Config c;
  c.tick_ms = 50;
  c.probe_interval_ms = 1'000;
  c.probe_timeout_ms = 400;
  c.gossip_interval_ms = 300;
  c.gossip_nodes = 4;
  c.gossip_to_dead_ms = 60'000;
  c.suspicion_mult = 4;
  c.suspicion_max_mult = 6;
  c.push_pull_interval_ms = 60'000;
  c.join_retry_ms = 3'000;
  c.dead_probe_interval_ms = 10'000;
  c.reconnect_timeout_ms = 600'000;
  c.reap_timeout_ms = 900'000;
  return c;
}

}  // namespace

Config config_for(Profile profile) {
  switch (profile) {
    case Profile::local:
      return local_profile();
    case Profile::lan:
      return Config{};
    case Profile::wan:
      return wan_profile();
  }
  return Config{};
}

std::optional<Profile> parse_profile(std::string_view name) {
  if (name == "local") return Profile::local;
  if (name == "lan") return Profile::lan;
  if (name == "wan") return Profile::wan;
  return std::nullopt;
}

std::string_view to_string(Profile profile) {
  switch (profile) {
    case Profile::local:
      return "local";
    case Profile::lan:
      return "lan";
    case Profile::wan:
      return "wan";
  }
  return "lan";
}

std::optional<std::string> config_error(const Config& c) {
  if (c.tick_ms == 0) return "tick_ms must be positive";
  if (c.probe_interval_ms < c.tick_ms || c.gossip_interval_ms < c.tick_ms) {
    return "probe and gossip intervals must be at least tick_ms";
  }
  if (c.probe_timeout_ms == 0 || c.probe_timeout_ms * 2 > c.probe_interval_ms) {
    return "probe_timeout_ms must be positive and at most half of probe_interval_ms";
  }
  if (c.indirect_checks > indirect_checks_max) return "indirect_checks too large";
  if (c.gossip_nodes == 0 || c.gossip_nodes > gossip_nodes_max) return "gossip_nodes out of range";
  if (c.retransmit_mult == 0) return "retransmit_mult must be positive";
  if (c.suspicion_mult == 0 || c.suspicion_max_mult == 0)
    return "suspicion multipliers must be >= 1";
  if (c.suspicion_confirmations > suspicion_confirmations_max) {
    return "suspicion_confirmations too large";
  }
  if (c.awareness_max == 0 || c.awareness_max > awareness_max_limit)
    return "awareness_max out of range";
  if (c.push_pull_interval_ms == 0 || c.join_retry_ms == 0 || c.dead_probe_interval_ms == 0) {
    return "push-pull, join-retry and dead-probe intervals must be positive";
  }
  if (c.reap_timeout_ms < c.reconnect_timeout_ms) return "reap_timeout_ms < reconnect_timeout_ms";
  if (c.members_max < 1 || c.members_max > members_max_limit) return "members_max out of range";
  return std::nullopt;
}

uint64_t suspicion_min_ms(const Config& c, std::size_t members) {
  const double scale =
      std::max(1.0, std::log10(static_cast<double>(std::max<std::size_t>(members, 1))));
  return static_cast<uint64_t>(static_cast<double>(c.suspicion_mult) * scale *
                               static_cast<double>(c.probe_interval_ms));
}

uint64_t suspicion_max_ms(const Config& c, std::size_t members) {
  return suspicion_min_ms(c, members) * c.suspicion_max_mult;
}

uint32_t suspicion_expected_confirmations(const Config& c, std::size_t members) {
  // Confirmations come from live members other than the suspect and ourselves.
  return members < 2 + static_cast<std::size_t>(c.suspicion_confirmations)
             ? 0
             : c.suspicion_confirmations;
}

uint64_t push_pull_interval_scaled_ms(const Config& c, std::size_t members) {
  if (members <= push_pull_scale_threshold) return c.push_pull_interval_ms;
  const double steps = std::ceil(std::log2(static_cast<double>(members)) -
                                 std::log2(static_cast<double>(push_pull_scale_threshold)));
  return c.push_pull_interval_ms * (static_cast<uint64_t>(steps) + 1);
}

}  // namespace meshwork::gossip
