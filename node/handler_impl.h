// Private to the handler files (node/handlers.cpp, node/handler_*.cpp): the per-type entry points
// the registry wraps, and the small JSON/encoding helpers they share.
//
// Thread-safety: every function here is reentrant and keeps no state. Hex encoding and libsodium
// initialisation come from node/crypto.h (to_hex, init_crypto).
// Invariants: validate_X(p) == "" exactly when run_X would get past its own payload parsing,
// because both go through the same parse function; run_X never throws past the registry's guard.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "node/crypto.h"
#include "node/handlers.h"

namespace meshwork::handler_impl {

using nlohmann::json;

// "" when `v` is an object whose keys are all in `allowed`, else a reason naming `path`.
[[nodiscard]] std::string check_object(const json& v, std::string_view path,
                                       std::initializer_list<std::string_view> allowed);

// True when `v` is a JSON integer in 0..max; stores it in `out`. Floats (even 3.0) are rejected.
[[nodiscard]] bool json_u64(const json& v, uint64_t max, uint64_t& out);

// Reads `obj[key]` as an integer 0..max. A missing key is an error unless `fallback` is given.
// Returns "" or a reason such as "payload.ms must be an integer 0..3600000".
[[nodiscard]] std::string read_u64(const json& obj, std::string_view path, std::string_view key,
                                   uint64_t max, uint64_t& out);
[[nodiscard]] std::string read_u64_or(const json& obj, std::string_view path, std::string_view key,
                                      uint64_t max, uint64_t fallback, uint64_t& out);

// Lower-case hex of `n` bytes (node/crypto.h's to_hex over raw bytes).
[[nodiscard]] inline std::string hex_of(const uint8_t* bytes, size_t n) {
  return meshwork::to_hex(std::string_view(reinterpret_cast<const char*>(bytes), n));
}

// Per-type entry points; the registry in handlers.cpp adds type names, summaries and the guard
// that turns an escaped exception into a failed outcome.
[[nodiscard]] std::string validate_pow(const json& payload);
[[nodiscard]] HandlerOutcome run_pow(const JobContext& ctx, CancelToken& cancel);
[[nodiscard]] std::string validate_tx_verify(const json& payload);
[[nodiscard]] HandlerOutcome run_tx_verify(const JobContext& ctx, CancelToken& cancel);
[[nodiscard]] std::string validate_enrich(const json& payload);
[[nodiscard]] HandlerOutcome run_enrich(const JobContext& ctx, CancelToken& cancel);

}  // namespace meshwork::handler_impl
