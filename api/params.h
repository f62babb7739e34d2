// Small pieces the routes share: query-parameter parsing and a counter of requests in flight.
// Thread-safety: parse_uint is pure; an InflightGuard is used by the one thread that made it.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string_view>

namespace meshwork::api {

// A decimal integer in [min, max] with at most 9 digits and nothing else, or nullopt.
[[nodiscard]] inline std::optional<uint64_t> parse_uint(std::string_view text, uint64_t min,
                                                        uint64_t max) {
  if (text.empty() || text.size() > 9) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + uint64_t(c - '0');
  }
  if (v < min || v > max) return std::nullopt;
  return v;
}

// Counts a request in flight for as long as it lives.
class InflightGuard {
 public:
  explicit InflightGuard(std::atomic<size_t>& n) : n_(n) { value_ = ++n_; }
  ~InflightGuard() { --n_; }
  InflightGuard(const InflightGuard&) = delete;
  InflightGuard& operator=(const InflightGuard&) = delete;
  [[nodiscard]] size_t value() const { return value_; }

 private:
  std::atomic<size_t>& n_;
  size_t value_;
};

}  // namespace meshwork::api
