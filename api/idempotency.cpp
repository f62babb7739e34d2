// Idempotency-Key parsing and the stored entry; see idempotency.h.
#include "api/idempotency.h"

#include <nlohmann/json.hpp>

#include "dht/hash.h"

namespace meshwork::api {

Result<std::optional<std::string>> parse_idempotency_key(std::optional<std::string_view> value,
                                                         size_t count) {
  using Out = Result<std::optional<std::string>>;
  if (!value) return std::optional<std::string>();
  if (count > 1) return Out(Code::malformed, "Idempotency-Key: give the header once");
  std::string_view key = *value;
  if (key.size() >= 2 && key.front() == '"' && key.back() == '"')
    key = key.substr(1, key.size() - 2);
  if (key.empty()) return Out(Code::malformed, "Idempotency-Key: the key is empty");
  if (key.size() > kIdempotencyKeyBytesMax)
    return Out(Code::malformed, "Idempotency-Key: at most " +
                                    std::to_string(kIdempotencyKeyBytesMax) + " characters");
  for (char c : key)
    if (c < 0x21 || c > 0x7e || c == '"')
      return Out(Code::malformed,
                 "Idempotency-Key: only visible ASCII characters (no spaces, no quotes inside)");
  return std::optional<std::string>(blake2b_hex("meshwork-idempotency-v1\n", key));
}

std::string encode_idempotency_entry(const IdempotencyEntry& e) {
  return nlohmann::json{{"body", e.body_hash},
                        {"nonce", e.nonce},
                        {"created_at", e.created_at_ms},
                        {"at", e.at_ms}}
      .dump();
}

std::optional<IdempotencyEntry> decode_idempotency_entry(std::string_view bytes) {
  auto j = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  const auto str = [&](const char* k) { return j.contains(k) && j[k].is_string(); };
  const auto num = [&](const char* k) { return j.contains(k) && j[k].is_number_unsigned(); };
  if (!str("body") || !str("nonce") || !num("created_at") || !num("at")) return std::nullopt;
  return IdempotencyEntry{j["body"].get<std::string>(), j["nonce"].get<std::string>(),
                          j["created_at"].get<uint64_t>(), j["at"].get<uint64_t>()};
}

}  // namespace meshwork::api
