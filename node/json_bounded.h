// Parsing JSON from outside with a bound on nesting depth.
//
// nlohmann::json parses iteratively but serialises and compares recursively, so a body of a million
// '[' would overflow the stack later. parse_json_bounded() rejects nesting deeper than
// kJsonDepthMax before parsing. Thread-safety: pure function.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "dht/result.h"

namespace meshwork {

inline constexpr size_t kJsonDepthMax = 64;

// Code::malformed for invalid JSON or nesting deeper than depth_max.
[[nodiscard]] Result<nlohmann::json> parse_json_bounded(std::string_view text,
                                                        size_t depth_max = kJsonDepthMax);

}  // namespace meshwork
