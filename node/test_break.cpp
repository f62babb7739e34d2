// Broken result signers for tests only; see test_break.h.
#include "node/test_break.h"

namespace meshwork {
namespace {

// Each succeeded result replaced by its lie (result_lie), rehashed, then signed honestly.
void sign_lie(const Identity& key, std::vector<Outcome>& batch) {
  for (Outcome& o : batch) {
    NodeResult& r = o.result;
    if (r.outcome != JobState::succeeded) continue;
    r.result = result_lie(nlohmann::json::parse(r.result, nullptr, false)).dump();
    r.receipt.result_hash = blake2b_hex(r.result);
  }
  JobRunner::sign_batch(key, batch);
}

// Signed honestly, then every receipt's signature with one bit flipped.
void sign_forged(const Identity& key, std::vector<Outcome>& batch) {
  JobRunner::sign_batch(key, batch);
  for (Outcome& o : batch) {
    Receipt& rc = o.result.receipt;
    std::string signature = from_base64(rc.signature).value_or(std::string(1, '\0'));
    signature[0] = static_cast<char>(signature[0] ^ 0x01);
    rc.signature = to_base64(signature);
  }
}

}  // namespace

JobRunner::Signer result_signer(std::string_view test_break) {
  if (test_break == "lie") return &sign_lie;
  if (test_break == "forge") return &sign_forged;
  return &JobRunner::sign_batch;
}

nlohmann::json result_lie(const nlohmann::json& honest) {
  nlohmann::json lie = honest;
  bool changed = false;
  if (lie.is_object()) {
    for (auto& [field, value] : lie.items()) {
      if (value.is_number_unsigned()) {
        value = value.get<uint64_t>() ^ 1u;
        changed = true;
      } else if (value.is_number_integer()) {
        value = value.get<int64_t>() ^ 1;
        changed = true;
      }
    }
    if (!changed && !lie.empty()) {
      auto first = lie.begin();
      *first = nlohmann::json{{"lie", *first}};
      changed = true;
    }
  }
  return changed ? lie : nlohmann::json{{"lie", honest}};
}

}  // namespace meshwork
