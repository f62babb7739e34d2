// The simulated network; see network.h.
#include "simulations/sim/network.h"

#include <algorithm>

namespace meshwork::sim {

std::optional<std::string> network_error(const NetworkParams& p) {
  const auto probability = [](double x) { return x >= 0.0 && x <= 1.0; };
  if (!probability(p.loss) || !probability(p.duplicate) || !probability(p.reorder))
    return "loss, duplicate and reorder must be in [0, 1]";
  if (p.delay_ms_min > p.delay_ms_max) return "delay min must not exceed delay max";
  if (p.delay_ms_max > 60'000 || p.reorder_delay_ms_max > 60'000) return "delays above 60 s";
  return std::nullopt;
}

Network::Network(NetworkParams params, uint32_t nodes)
    : params_(params), group_(nodes, 0), clogged_until_(nodes, 0), deaf_(nodes, 0) {}

void Network::route(uint32_t from, uint32_t to, uint64_t now_ms, Random& rng,
                    std::vector<uint64_t>& at) {
  if (cut(from, to)) return;
  const int copies = rng.chance(params_.duplicate) ? 2 : 1;
  for (int c = 0; c < copies; ++c) {
    if (rng.chance(params_.loss)) continue;
    uint64_t delay = rng.between(params_.delay_ms_min, params_.delay_ms_max);
    if (rng.chance(params_.reorder)) delay += rng.between(1, params_.reorder_delay_ms_max);
    // A clogged sender's datagrams leave when it is unclogged.
    at.push_back(std::max(now_ms, clog_end(from, now_ms)) + delay);
  }
}

uint64_t Network::arrival(uint32_t from, uint32_t to, uint64_t now_ms) const {
  if (cut(from, to) || deaf_[to] != 0) return never_ms;
  const uint64_t held = clog_end(to, now_ms);
  return held != 0 ? held : now_ms;
}

void Network::partition(const std::vector<uint32_t>& side) {
  for (const uint32_t n : side) group_[n] = 1;
}

void Network::heal() {
  std::fill(group_.begin(), group_.end(), 0);
}

}  // namespace meshwork::sim
