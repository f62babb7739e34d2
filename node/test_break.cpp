// Broken result signers for tests only; see test_break.h.
#include "node/test_break.h"

namespace meshwork {
namespace {

NodeResult sign_lie(const Identity& key, const std::string& node, const std::string& id,
                    uint32_t attempt, const HandlerOutcome& outcome, uint64_t now_ms) {
  if (outcome.kind != HandlerOutcome::Kind::succeeded)
    return JobRunner::sign_result(key, node, id, attempt, outcome, now_ms);
  return JobRunner::sign_result(key, node, id, attempt,
                                HandlerOutcome::success(result_lie(outcome.result)), now_ms);
}

NodeResult sign_forged(const Identity& key, const std::string& node, const std::string& id,
                       uint32_t attempt, const HandlerOutcome& outcome, uint64_t now_ms) {
  NodeResult r = JobRunner::sign_result(key, node, id, attempt, outcome, now_ms);
  std::string signature = from_base64(r.receipt.signature).value_or(std::string(1, '\0'));
  signature[0] = static_cast<char>(signature[0] ^ 0x01);
  r.receipt.signature = to_base64(signature);
  return r;
}

}  // namespace

JobRunner::Signer result_signer(std::string_view test_break) {
  if (test_break == "lie") return &sign_lie;
  if (test_break == "forge") return &sign_forged;
  return &JobRunner::sign_result;
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
