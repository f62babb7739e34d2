#include "gossip/suspicion.h"

#include <algorithm>
#include <cmath>

namespace meshwork::gossip {

uint64_t suspicion_timeout_ms(uint32_t confirmations, uint32_t expected, uint64_t min_ms,
                              uint64_t max_ms) {
  if (max_ms < min_ms) max_ms = min_ms;
  if (expected == 0) return min_ms;
  const double fraction = std::log(static_cast<double>(confirmations) + 1.0) /
                          std::log(static_cast<double>(expected) + 1.0);
  const double raw = static_cast<double>(max_ms) - fraction * static_cast<double>(max_ms - min_ms);
  const uint64_t timeout = raw <= 0.0 ? 0 : static_cast<uint64_t>(std::floor(raw));
  return std::clamp(timeout, min_ms, max_ms);
}

uint64_t name_id(std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : name) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

Suspicion::Suspicion(uint64_t from_id, uint32_t expected, uint64_t min_ms, uint64_t max_ms,
                     uint64_t start_ms)
    : min_ms_(min_ms),
      max_ms_(std::max(min_ms, max_ms)),
      start_ms_(start_ms),
      expected_(std::min(expected, suspicion_confirmations_max)) {
  confirmers_[0] = from_id;
}

bool Suspicion::confirm(uint64_t from_id) {
  if (confirmations_ >= expected_) return false;
  const auto seen = confirmers_.begin() + confirmations_ + 1;
  if (std::find(confirmers_.begin(), seen, from_id) != seen) return false;
  confirmers_[confirmations_ + 1] = from_id;
  ++confirmations_;
  return true;
}

uint64_t Suspicion::deadline_ms() const {
  return start_ms_ + suspicion_timeout_ms(confirmations_, expected_, min_ms_, max_ms_);
}

}  // namespace meshwork::gossip
