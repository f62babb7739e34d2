// Host reputation; see reputation.h.
#include "dht/reputation.h"

namespace meshwork {

double HostScore::score() const {
  const double n = static_cast<double>(agreed + 1);
  const double d =
      static_cast<double>(agreed + disagreed + Reputation::kForgedWeight * forged + 2);
  return n / d;
}

// score >= threshold/100  ⇔  100·(agreed + 1) >= threshold·(agreed + disagreed + w·forged + 2).
// Counts stay far below 2^50 (one per job merged), so neither side overflows.
bool Reputation::trusted(const HostScore& s, uint32_t threshold_percent) {
  const uint64_t lhs = 100 * (s.agreed + 1);
  const uint64_t rhs =
      uint64_t{threshold_percent} * (s.agreed + s.disagreed + kForgedWeight * s.forged + 2);
  return lhs >= rhs;
}

bool Reputation::add(const std::string& host, uint64_t HostScore::*field) {
  auto [it, fresh] = hosts_.try_emplace(host);
  if (fresh) {
    if (hosts_.size() > kHostsMax) {  // forget the host first seen longest ago
      const std::string oldest = seen_order_.begin()->second;
      seen_order_.erase(seen_order_.begin());
      seen_at_.erase(oldest);
      hosts_.erase(oldest);
      it = hosts_.find(host);
    }
    seen_at_[host] = next_seen_;
    seen_order_[next_seen_++] = host;
  }
  ++evidence_;
  const bool before = trusted(it->second, threshold_percent_);
  ++(it->second.*field);
  return trusted(it->second, threshold_percent_) != before;
}

bool Reputation::agreed(const std::string& host) {
  return add(host, &HostScore::agreed);
}
bool Reputation::disagreed(const std::string& host) {
  return add(host, &HostScore::disagreed);
}
bool Reputation::forged(const std::string& host) {
  return add(host, &HostScore::forged);
}

HostScore Reputation::counts(const std::string& host) const {
  auto it = hosts_.find(host);
  return it == hosts_.end() ? HostScore{} : it->second;
}

double Reputation::score(const std::string& host) const {
  return counts(host).score();
}

bool Reputation::trusted(const std::string& host) const {
  return trusted(counts(host), threshold_percent_);
}

}  // namespace meshwork
