// The simulated datagram network: per-packet loss, a delay distribution, duplication and
// reordering, partitions (sets of nodes cut off from the rest), clogged nodes (FoundationDB's
// swizzle-clogging: a clogged node's datagrams wait until it is unclogged) and, for showing that
// the checker can fail, a "deaf" node that never receives anything.
//
// Delay: uniform in [delay_ms_min, delay_ms_max]; with probability `reorder` a packet gets up to
// reorder_delay_ms_max more, so later packets overtake it. A duplicated packet travels twice with
// independent delays.
//
// Thread-safety: none. Invariants: loss, duplicate and reorder are probabilities in [0, 1];
// delay_ms_min <= delay_ms_max; a packet between different partition groups is never delivered.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "simulations/sim/random.h"

namespace meshwork::sim {

inline constexpr uint64_t never_ms = std::numeric_limits<uint64_t>::max();

struct NetworkParams {
  double loss = 0.01;
  double duplicate = 0.01;
  double reorder = 0.02;
  uint64_t delay_ms_min = 1;
  uint64_t delay_ms_max = 10;
  uint64_t reorder_delay_ms_max = 60;
};

// Why `p` is unusable, or nullopt.
std::optional<std::string> network_error(const NetworkParams& p);

class Network {
 public:
  Network(NetworkParams params, uint32_t nodes);

  // Appends the delivery times (none, one, or two when duplicated) of a datagram sent now.
  void route(uint32_t from, uint32_t to, uint64_t now_ms, Random& rng, std::vector<uint64_t>& at);
  // At delivery time: never_ms to drop it, now_ms to deliver, or a later time to hold it until.
  uint64_t arrival(uint32_t from, uint32_t to, uint64_t now_ms) const;

  // Cuts `side` off from everyone else until heal().
  void partition(const std::vector<uint32_t>& side);
  void heal();
  void clog(uint32_t node, uint64_t until_ms) { clogged_until_[node] = until_ms; }
  void unclog(uint32_t node) { clogged_until_[node] = 0; }
  void make_deaf(uint32_t node) { deaf_[node] = 1; }
  void set_loss(double loss) { params_.loss = loss; }
  const NetworkParams& params() const { return params_; }
  // True while a partition separates `a` and `b`.
  bool cut_off(uint32_t a, uint32_t b) const { return cut(a, b); }

 private:
  bool cut(uint32_t from, uint32_t to) const { return group_[from] != group_[to]; }
  uint64_t clog_end(uint32_t node, uint64_t now_ms) const {
    return clogged_until_[node] > now_ms ? clogged_until_[node] : 0;
  }

  NetworkParams params_;
  std::vector<uint8_t> group_;  // partition group: 0 = the main side
  std::vector<uint64_t> clogged_until_;
  std::vector<uint8_t> deaf_;
};

}  // namespace meshwork::sim
