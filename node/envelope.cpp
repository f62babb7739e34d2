// Signed job envelopes and job specs; see envelope.h.
#include "node/envelope.h"

#include <limits>

#include "node/handlers.h"
#include "node/json_bounded.h"
#include "node/receipt_check.h"

namespace meshwork {
namespace {

Result<uint64_t> bounded_uint(const nlohmann::json& spec, const char* field, uint64_t lo,
                              uint64_t hi, uint64_t fallback) {
  auto it = spec.find(field);
  if (it == spec.end()) return fallback;
  if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<int64_t>() >= 0))
    return Result<uint64_t>(Code::invalid, std::string(field) + " must be a non-negative integer");
  uint64_t v = it->get<uint64_t>();
  if (v < lo || v > hi)
    return Result<uint64_t>(Code::invalid, std::string(field) + " must be between " +
                                               std::to_string(lo) + " and " + std::to_string(hi));
  return v;
}

// The batch fields of an envelope object, when it has "root" (see parse_envelope).
Status parse_batch_fields(const nlohmann::json& body, Envelope& env) {
  if (!body.contains("root")) {
    if (body.contains("index") || body.contains("proof"))
      return Status(Code::invalid, "an envelope with 'index' or 'proof' needs its batch's 'root'");
    return Status::ok();
  }
  const auto& root = body["root"];
  if (!root.is_string() || !is_hash_hex(root.get_ref<const std::string&>()))
    return Status(Code::invalid, "'root' must be 64 lowercase hex characters (a BLAKE2b-256 hash)");
  const auto index = body.find("index");
  if (index == body.end() || !index->is_number_unsigned() ||
      index->get<uint64_t>() > std::numeric_limits<uint32_t>::max())
    return Status(Code::invalid,
                  "'index' must be the job's leaf number in its batch (0 to 2^32-1)");
  const auto proof = body.find("proof");
  if (proof == body.end() || !proof->is_array() || proof->size() > kMerkleLevelsMax)
    return Status(Code::invalid, "'proof' must be an array of at most " +
                                     std::to_string(kMerkleLevelsMax) + " sibling hashes");
  for (const auto& sibling : *proof)
    if (!sibling.is_string() || !is_hash_hex(sibling.get_ref<const std::string&>()))
      return Status(Code::invalid, "each 'proof' sibling must be 64 lowercase hex characters");
  env.root = root.get<std::string>();
  env.index = index->get<uint32_t>();
  env.proof = proof->get<std::vector<std::string>>();
  if (env.proof.size() < kMerkleLevelsMax && (uint64_t{env.index} >> env.proof.size()) != 0)
    return Status(Code::invalid, "'index' " + std::to_string(env.index) +
                                     " is past a batch that a proof of " +
                                     std::to_string(env.proof.size()) + " siblings can reach");
  return Status::ok();
}

}  // namespace

Result<Envelope> parse_envelope(const nlohmann::json& body) {
  if (!body.is_object()) return Result<Envelope>(Code::malformed, "the envelope must be an object");
  for (const char* f : {"job", "public_key", "signature"}) {
    auto it = body.find(f);
    if (it == body.end() || !it->is_string())
      return Result<Envelope>(Code::invalid, std::string("envelope field '") + f +
                                                 "' must be present and a string");
  }
  Envelope env;
  env.job = body["job"].get<std::string>();
  if (env.job.size() > kJobTextBytesMax)
    return Result<Envelope>(Code::too_large, "the signed job text exceeds " +
                                                 std::to_string(kJobTextBytesMax) + " bytes");
  auto pk = from_base64(body["public_key"].get<std::string>());
  if (!pk || pk->size() != kPublicKeyBytes)
    return Result<Envelope>(Code::unauthorized, "public_key must be 32 bytes of base64");
  auto sig = from_base64(body["signature"].get<std::string>());
  if (!sig || sig->size() != kSignatureBytes)
    return Result<Envelope>(Code::unauthorized, "signature must be 64 bytes of base64");
  env.public_key = std::move(*pk);
  env.signature = std::move(*sig);
  if (Status s = parse_batch_fields(body, env); !s.is_ok()) return s;
  return env;
}

Result<JobSpec> open_envelope(const Envelope& env, const Limits& limits,
                              VerifiedSignatures* verified, VerifiedSignatures* verified_jobs) {
  if (env.batched()) {
    if (!env.proof_holds())
      return Result<JobSpec>(Code::unauthorized,
                             "the inclusion proof does not lead from the job to its batch's root");
    const std::string message = env.signed_message();
    if (!(verified ? verified->verify(message, env.signature, env.public_key)
                   : verify_signature(message, env.signature, env.public_key)))
      return Result<JobSpec>(Code::unauthorized,
                             "the signature does not match the batch's root and key");
  } else if (!(verified_jobs ? verified_jobs->verify(env.job, env.signature, env.public_key)
                            : verify_signature(env.job, env.signature, env.public_key))) {
    return Result<JobSpec>(Code::unauthorized, "the signature does not match the job and key");
  }
  auto spec = parse_json_bounded(env.job);
  if (!spec.is_ok())
    return Result<JobSpec>(Code::malformed, "the signed job text: " + spec.status().message());
  auto parsed = parse_spec(spec.value(), limits);
  if (!parsed.is_ok()) return parsed;
  if (parsed.value().nonce.empty() || parsed.value().created_at_ms == 0)
    return Result<JobSpec>(Code::invalid, "a signed job must carry 'nonce' and 'created_at'");
  return parsed;
}

Result<JobSpec> parse_spec(const nlohmann::json& spec, const Limits& limits) {
  if (!spec.is_object()) return Result<JobSpec>(Code::malformed, "the job must be a JSON object");
  JobSpec out;
  auto type = spec.find("type");
  if (type == spec.end() || !type->is_string())
    return Result<JobSpec>(Code::invalid, "'type' must be present and a string");
  out.type = type->get<std::string>();
  const Handler* handler = find_handler(out.type);
  if (handler == nullptr)
    return Result<JobSpec>(Code::invalid, "unknown job type '" + out.type + "'");
  auto payload = spec.find("payload");
  out.payload = payload == spec.end() ? nlohmann::json::object() : *payload;
  if (out.payload.dump().size() > limits.payload_bytes_max)
    return Result<JobSpec>(
        Code::too_large, "payload exceeds " + std::to_string(limits.payload_bytes_max) + " bytes");
  if (std::string why = handler->validate(out.payload); !why.empty())
    return Result<JobSpec>(Code::invalid, why);
  if (auto n = spec.find("nonce"); n != spec.end()) {
    if (!n->is_string() || n->get_ref<const std::string&>().size() > kNonceBytesMax)
      return Result<JobSpec>(Code::invalid, "'nonce' must be a string of at most " +
                                                std::to_string(kNonceBytesMax) + " bytes");
    out.nonce = n->get<std::string>();
  }
  auto created = bounded_uint(spec, "created_at", 1, UINT64_MAX / 2, 0);
  auto attempts = bounded_uint(spec, "max_attempts", 1, kMaxAttemptsMax, kMaxAttemptsDefault);
  auto timeout = bounded_uint(spec, "timeout_ms", 1, kTimeoutMsMax, kTimeoutMsDefault);
  auto priority = bounded_uint(spec, "priority", 0, kPriorityMax, kPriorityDefault);
  auto delay = bounded_uint(spec, "delay_ms", 0, kDelayMsMax, 0);
  auto redundancy = bounded_uint(spec, "redundancy", 1, kRedundancyMax, kRedundancyDefault);
  for (const auto* r : {&created, &attempts, &timeout, &priority, &delay, &redundancy})
    if (!r->is_ok()) return r->status();
  out.created_at_ms = created.value();
  out.max_attempts = static_cast<uint32_t>(attempts.value());
  out.timeout_ms = timeout.value();
  out.priority = static_cast<uint32_t>(priority.value());
  out.delay_ms = delay.value();
  out.redundancy = static_cast<uint32_t>(redundancy.value());
  static constexpr std::array kKnown = {"type",       "payload",      "nonce",
                                        "created_at", "max_attempts", "timeout_ms",
                                        "priority",   "delay_ms",     "redundancy"};
  for (const auto& [key, _] : spec.items())
    if (std::find(kKnown.begin(), kKnown.end(), key) == kKnown.end())
      return Result<JobSpec>(Code::invalid, "unknown job field '" + key + "'");
  return out;
}

Result<std::string> plain_job_text(const nlohmann::json& body, uint64_t now_ms,
                                   const Limits& limits, JobSpec* spec_out) {
  auto checked = parse_spec(body, limits);
  if (!checked.is_ok()) return checked.status();
  nlohmann::json spec = body;
  if (!spec.contains("nonce")) spec["nonce"] = checked.value().nonce = to_hex(random_bytes(16));
  if (!spec.contains("created_at")) spec["created_at"] = checked.value().created_at_ms = now_ms;
  if (!spec.contains("payload")) spec["payload"] = nlohmann::json::object();
  std::string text = spec.dump();
  if (text.size() > kJobTextBytesMax)
    return Result<std::string>(Code::too_large,
                               "the job exceeds " + std::to_string(kJobTextBytesMax) + " bytes");
  if (spec_out != nullptr) *spec_out = std::move(checked).value();
  return text;
}

Result<Envelope> sign_plain_job(const nlohmann::json& body, const Identity& key, uint64_t now_ms,
                                const Limits& limits, JobSpec* spec_out) {
  auto text = plain_job_text(body, now_ms, limits, spec_out);
  if (!text.is_ok()) return text.status();
  Envelope env;
  env.job = std::move(text).value();
  env.public_key = key.public_key();
  env.signature = key.sign(env.job);
  return env;
}

std::vector<Envelope> sign_job_batch(const std::vector<std::string>& texts, const Identity& key) {
  std::vector<Envelope> out = batch_envelopes(texts, key.public_key());
  const std::string signature = key.sign(jobs_root_message(out.front().root));
  for (Envelope& env : out) env.signature = signature;
  return out;
}

}  // namespace meshwork
