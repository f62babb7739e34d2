// Parsing JSON from outside with a bound on nesting depth; see json_bounded.h.
#include "node/json_bounded.h"

namespace meshwork {
namespace {

// The deepest nesting of arrays and objects, ignoring brackets inside strings.
size_t nesting_depth(std::string_view text, size_t stop_after) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > stop_after) return deepest;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

Result<nlohmann::json> parse_json_bounded(std::string_view text, size_t depth_max) {
  if (nesting_depth(text, depth_max) > depth_max)
    return Result<nlohmann::json>(Code::malformed, "JSON nested deeper than " +
                                                       std::to_string(depth_max) + " levels");
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Result<nlohmann::json>(Code::malformed, "the body is not valid JSON");
  return j;
}

}  // namespace meshwork
