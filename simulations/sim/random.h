// The simulator's only source of randomness: a splitmix64 stream (the same generator the gossip
// state machine uses) seeded from --seed. Nothing in the simulator reads a clock,
// std::random_device or the address of an object, so a run is a function of its arguments.
//
// Thread-safety: none; the simulator is single-threaded.
// Invariants: unit() is in [0, 1); between(lo, hi) is in [lo, hi]; fork() advances this stream by
// one draw, so adding a consumer of a fork never shifts the draws of the parent's other users.
#pragma once

#include <cstdint>

#include "gossip/rng.h"

namespace meshwork::sim {

// FNV-1a over the 8 bytes of `v`, continuing from `h`: the run digests that replays compare.
inline uint64_t fnv_mix(uint64_t h, uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    h ^= (v >> (8 * i)) & 0xff;
    h *= 0x100000001b3ull;
  }
  return h;
}

class Random {
 public:
  explicit Random(uint64_t seed) : rng_(seed) {}

  uint64_t next() { return rng_.next(); }
  uint64_t below(uint64_t bound) { return rng_.below(bound); }
  double unit() { return static_cast<double>(rng_.next() >> 11) * 0x1.0p-53; }
  bool chance(double p) { return p > 0 && unit() < p; }
  uint64_t between(uint64_t lo, uint64_t hi) { return hi <= lo ? lo : lo + below(hi - lo + 1); }
  // An independent stream for one component (network, scenario, jobs).
  Random fork() { return Random(rng_.next() ^ 0x5deece66dull); }

 private:
  gossip::Rng rng_;
};

}  // namespace meshwork::sim
