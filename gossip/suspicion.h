// Lifeguard's suspicion timer: starts at `max` and shrinks towards `min` as independent members
// confirm the suspicion:
//
//   timeout(C) = max(min, max - (max - min) * log(C + 1) / log(K + 1))
//
// where C is the number of distinct confirmations received so far and K the number expected.
// With K == 0 the timeout is `min` from the start.
//
// Thread-safety: none; owned by one Membership.
// Invariants: min <= timeout <= max; deadline_ms() never moves later; confirmations() <= K;
// the member that raised the suspicion never counts as a confirmation.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace meshwork::gossip {

inline constexpr uint32_t suspicion_confirmations_max = 7;  // K is clamped to this

uint64_t suspicion_timeout_ms(uint32_t confirmations, uint32_t expected, uint64_t min_ms,
                              uint64_t max_ms);

// A stable 64-bit id for a member name (FNV-1a); used to tell confirmers apart compactly.
uint64_t name_id(std::string_view name);

class Suspicion {
 public:
  Suspicion(uint64_t from_id, uint32_t expected, uint64_t min_ms, uint64_t max_ms,
            uint64_t start_ms);

  // Counts a confirmation from `from_id`; false if it was already counted or K is reached.
  bool confirm(uint64_t from_id);
  uint64_t deadline_ms() const;
  uint64_t start_ms() const { return start_ms_; }
  uint32_t confirmations() const { return confirmations_; }

 private:
  std::array<uint64_t, suspicion_confirmations_max + 1> confirmers_{};
  uint64_t min_ms_;
  uint64_t max_ms_;
  uint64_t start_ms_;
  uint32_t expected_;
  uint32_t confirmations_ = 0;
};

}  // namespace meshwork::gossip
