// Clocks: wall-clock milliseconds for records and logs, monotonic milliseconds for protocol timing.
// Thread-safety: free functions.
#pragma once

#include <chrono>
#include <cstdint>

namespace meshwork {

inline uint64_t wall_ms() {
  using namespace std::chrono;
  return static_cast<uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

inline uint64_t mono_ms() {
  using namespace std::chrono;
  return static_cast<uint64_t>(
      duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count());
}

}  // namespace meshwork
