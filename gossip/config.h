// Gossip timings and limits, with three profiles (`local`, `lan`, `wan`; `lan` is the default).
// The formulas that use these fields, and the arithmetic behind each profile, are in
// docs/protocol.md ("Timing").
//
// Thread-safety: plain value.
// Invariants (checked by config_error): probe_timeout_ms * 2 <= probe_interval_ms, so a
// ping-req's nack can arrive before the probe round ends; probe and gossip intervals are at least
// tick_ms; reap_timeout_ms >= reconnect_timeout_ms; 1 <= members_max <= members_max_limit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace meshwork::gossip {

// A push-pull chunk index is a u16 and every chunk carries at least one member record.
inline constexpr uint32_t members_max_limit = 0xffff;
inline constexpr uint32_t indirect_checks_max = 16;
inline constexpr uint32_t gossip_nodes_max = 16;
inline constexpr uint32_t awareness_max_limit = 64;

struct Config {
  uint64_t tick_ms = 10;              // the driver calls tick() at least this often
  uint64_t probe_interval_ms = 200;   // one probe round; scaled by awareness
  uint64_t probe_timeout_ms = 80;     // direct ack wait before ping-reqs; scaled by awareness
  uint32_t indirect_checks = 3;       // k ping-reqs per failed direct probe
  uint64_t gossip_interval_ms = 100;  // piggyback-only packets to gossip_nodes random members
  uint32_t gossip_nodes = 3;
  uint64_t gossip_to_dead_ms = 10'000;   // dead members stay gossip targets this long
  uint32_t retransmit_mult = 4;          // lambda in lambda * ceil(log10(N + 1))
  uint32_t suspicion_mult = 3;           // min = mult * max(1, log10 N) * probe_interval
  uint32_t suspicion_max_mult = 5;       // max = suspicion_max_mult * min
  uint32_t suspicion_confirmations = 2;  // K: confirmations that shrink the timeout to min
  uint32_t awareness_max = 8;
  uint64_t push_pull_interval_ms = 30'000;  // scaled up beyond 32 members
  uint64_t join_retry_ms = 1'000;
  uint64_t dead_probe_interval_ms = 2'000;  // ping one recently dead member this often
  uint64_t reconnect_timeout_ms = 120'000;  // ...as long as it has been dead less than this
  uint64_t reap_timeout_ms = 180'000;       // dead/left members are forgotten after this
  uint32_t members_max = 16'384;            // new names beyond this are refused (and counted)
};

enum class Profile { local, lan, wan };

Config config_for(Profile profile);
std::optional<Profile> parse_profile(std::string_view name);  // "local" | "lan" | "wan"
std::string_view to_string(Profile profile);

// Why `cfg` is unusable, or nullopt when it is fine.
std::optional<std::string> config_error(const Config& cfg);

// Suspicion timeout bounds for a cluster of `members` live members (see suspicion.h).
uint64_t suspicion_min_ms(const Config& cfg, std::size_t members);
uint64_t suspicion_max_ms(const Config& cfg, std::size_t members);
// K, or 0 when the cluster is too small to produce K independent confirmations.
uint32_t suspicion_expected_confirmations(const Config& cfg, std::size_t members);
// memberlist's pushPullScale: the interval grows by one step per doubling beyond 32 members.
uint64_t push_pull_interval_scaled_ms(const Config& cfg, std::size_t members);

}  // namespace meshwork::gossip
