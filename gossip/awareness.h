// Lifeguard's local health multiplier ("awareness"): a score in [0, max) that rises when this
// node seems to be the slow one (missed nacks, failed probes, having to refute) and falls on
// every successful probe. Probe intervals and timeouts are multiplied by (score + 1), so an
// overloaded node backs off instead of accusing healthy peers.
//
// Thread-safety: none; owned by one Membership.
// Invariants: 0 <= score() < max (max >= 1).
#pragma once

#include <cstdint>

namespace meshwork::gossip {

class Awareness {
 public:
  explicit Awareness(uint32_t max) : max_(max == 0 ? 1 : max) {}

  // Adds `delta` (may be negative) and clamps to [0, max - 1].
  void apply_delta(int delta);
  uint32_t score() const { return score_; }
  // timeout * (score + 1).
  uint64_t scale_ms(uint64_t timeout_ms) const { return timeout_ms * (score_ + 1); }

 private:
  uint32_t max_;
  uint32_t score_ = 0;
};

}  // namespace meshwork::gossip
