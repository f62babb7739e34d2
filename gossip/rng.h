// A small seeded PRNG (splitmix64) for the gossip state machine: shuffles, random targets,
// sequence numbers. Eight bytes of state, so ten thousand simulated nodes cost nothing.
//
// Thread-safety: none; owned by one Membership.
// Invariants: the same seed yields the same sequence on every platform.
#pragma once

#include <cstdint>

namespace meshwork::gossip {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // In [0, bound); bound 0 yields 0. Modulo bias is below 2^-40 for the bounds we use (< 2^24).
  uint64_t below(uint64_t bound) { return bound == 0 ? 0 : next() % bound; }

 private:
  uint64_t state_;
};

}  // namespace meshwork::gossip
