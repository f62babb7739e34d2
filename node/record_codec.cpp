// JSON form of the job record, for storage and for peers. Decoding checks every field and that the
// id is the hash of the envelope; it never throws.
#include <nlohmann/json.hpp>

#include "node/job_record.h"

namespace meshwork {
namespace {

using nlohmann::json;

inline constexpr int kRecordVersion = 1;

json receipt_to_json(const Receipt& r) {
  return {{"job_id", r.job_id},         {"node", r.node},
          {"attempt", r.attempt},       {"result_hash", r.result_hash},
          {"public_key", r.public_key}, {"signature", r.signature}};
}

Receipt receipt_from_json(const json& j) {
  return Receipt{j.at("job_id").get<std::string>(),     j.at("node").get<std::string>(),
                 j.at("attempt").get<uint32_t>(),       j.at("result_hash").get<std::string>(),
                 j.at("public_key").get<std::string>(), j.at("signature").get<std::string>()};
}

JobState state_from_json(const json& j) {
  auto s = parse_state(j.get<std::string>());
  if (!s) throw json::other_error::create(501, "unknown state", &j);
  return *s;
}

// The fields of the spec the record needs, read from the signed job text.
void fill_spec_fields(JobRecord& r) {
  json spec = json::parse(r.envelope.job);
  r.type = spec.at("type").get<std::string>();
  r.max_attempts = spec.value("max_attempts", kMaxAttemptsDefault);
  r.timeout_ms = spec.value("timeout_ms", kTimeoutMsDefault);
  r.created_at_ms = spec.value("created_at", uint64_t{0});
}

JobRecord record_from_json_unchecked(const json& j) {
  if (j.at("v").get<int>() != kRecordVersion) throw json::other_error::create(501, "version", &j);
  JobRecord r;
  r.id = j.at("id").get<std::string>();
  const json& env = j.at("envelope");
  r.envelope.job = env.at("job").get<std::string>();
  r.envelope.public_key = from_base64(env.at("public_key").get<std::string>()).value_or("");
  r.envelope.signature = from_base64(env.at("signature").get<std::string>()).value_or("");
  const json& st = j.at("status");
  r.status = JobStatus{state_from_json(st.at("state")), st.at("attempt").get<uint32_t>(),
                    st.at("node").get<std::string>(), st.at("at").get<uint64_t>(),
                    st.at("error").get<std::string>(), st.at("retry_at").get<uint64_t>()};
  const json& cl = j.at("claim");
  r.claim = Claim{cl.at("attempt").get<uint32_t>(), cl.at("node").get<std::string>(),
                  cl.at("lease_until").get<uint64_t>()};
  r.cancel_requested = j.at("cancel_requested").get<bool>();
  for (const auto& [node, res] : j.at("results").items()) {
    r.results[node] = NodeResult{res.at("attempt").get<uint32_t>(),
                                 state_from_json(res.at("outcome")),
                                 res.at("result").get<std::string>(),
                                 res.at("error").get<std::string>(),
                                 res.at("at").get<uint64_t>(),
                                 receipt_from_json(res.at("receipt"))};
  }
  for (const json& h : j.at("history"))
    r.history.push_back(HistoryEntry{state_from_json(h.at("state")), h.at("node").get<std::string>(),
                                     h.at("attempt").get<uint32_t>(), h.at("at").get<uint64_t>(),
                                     h.at("reason").get<std::string>()});
  r.updated_at_ms = j.at("updated_at").get<uint64_t>();
  fill_spec_fields(r);
  return r;
}

Status check_record(const JobRecord& r) {
  if (r.envelope.public_key.size() != kPublicKeyBytes ||
      r.envelope.signature.size() != kSignatureBytes)
    return {Code::corruption, "record " + r.id + " has a malformed envelope"};
  if (r.id != r.envelope.id()) return {Code::corruption, "record id does not match its envelope"};
  if (r.history.size() > kHistoryMax || r.results.size() > kResultsMax)
    return {Code::corruption, "record " + r.id + " exceeds its bounds"};
  if (!std::is_sorted(r.history.begin(), r.history.end(), [](const auto& a, const auto& b) {
        return std::tie(a.at_ms, a.attempt, a.state, a.node, a.reason) <
               std::tie(b.at_ms, b.attempt, b.state, b.node, b.reason);
      }))
    return {Code::corruption, "record " + r.id + " has unsorted history"};
  return Status::ok();
}

}  // namespace

json record_to_json(const JobRecord& r) {
  json results = json::object();
  for (const auto& [node, res] : r.results)
    results[node] = {{"attempt", res.attempt}, {"outcome", state_name(res.outcome)},
                     {"result", res.result},   {"error", res.error},
                     {"at", res.at_ms},        {"receipt", receipt_to_json(res.receipt)}};
  json history = json::array();
  for (const auto& h : r.history)
    history.push_back({{"state", state_name(h.state)}, {"node", h.node}, {"attempt", h.attempt},
                       {"at", h.at_ms}, {"reason", h.reason}});
  return {{"v", kRecordVersion},
          {"id", r.id},
          {"envelope", r.envelope.to_json()},
          {"status",
           {{"state", state_name(r.status.state)}, {"attempt", r.status.attempt},
            {"node", r.status.node}, {"at", r.status.at_ms}, {"error", r.status.error},
            {"retry_at", r.status.retry_at_ms}}},
          {"claim",
           {{"attempt", r.claim.attempt}, {"node", r.claim.node},
            {"lease_until", r.claim.lease_until_ms}}},
          {"cancel_requested", r.cancel_requested},
          {"results", std::move(results)},
          {"history", std::move(history)},
          {"updated_at", r.updated_at_ms}};
}

Result<JobRecord> record_from_json(const json& j) {
  try {
    JobRecord r = record_from_json_unchecked(j);
    if (Status s = check_record(r); !s.is_ok()) return s;
    return r;
  } catch (const json::exception& e) {
    return Result<JobRecord>(Code::corruption, std::string("malformed job record: ") + e.what());
  }
}

std::string encode_record(const JobRecord& r) { return record_to_json(r).dump(); }

Result<JobRecord> decode_record(std::string_view bytes) {
  json j = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Result<JobRecord>(Code::corruption, "job record is not JSON");
  return record_from_json(j);
}

}  // namespace meshwork
