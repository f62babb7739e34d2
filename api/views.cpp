// What clients see of a job; see views.h.
#include "api/views.h"

#include "dht/verdict.h"
#include "node/crypto.h"

namespace meshwork::api {
namespace {

using nlohmann::json;

json result_json(const NodeResult& r) {
  json j{{"attempt", r.attempt}, {"outcome", state_name(r.outcome)}, {"at", r.at_ms},
         {"receipt", receipt_to_json(r.receipt)}};
  if (!r.result.empty()) j["result"] = json::parse(r.result, nullptr, false);
  if (!r.error.empty()) j["error"] = r.error;
  return j;
}

}  // namespace

json job_summary(const JobRecord& r, uint64_t now_ms) {
  json j{{"id", r.id},
         {"type", r.type},
         {"state", public_state(r, now_ms)},
         {"attempts", r.status.attempt},
         {"max_attempts", r.max_attempts},
         {"priority", r.priority},
         {"created_at", r.created_at_ms},
         {"updated_at", r.updated_at_ms},
         {"submitted_by", to_base64(r.envelope.public_key)},
         {"error", r.status.error.empty() ? json(nullptr) : json(r.status.error)}};
  if (r.delay_ms > 0) {
    j["delay_ms"] = r.delay_ms;
    j["run_after"] = r.run_after_ms();
  }
  if (r.status.state == JobState::retry_wait) j["retry_at"] = r.status.retry_at_ms;
  if (r.cancel_requested()) j["cancel_requested"] = true;
  if (r.status.round > 0) j["retries"] = r.status.round;
  if (r.redundancy > 1) j["redundancy"] = r.redundancy;
  return j;
}

json job_view(const JobRecord& r, uint64_t now_ms) {
  json j = job_summary(r, now_ms);
  auto spec = json::parse(r.envelope.job, nullptr, false);
  j["payload"] = spec.is_object() ? spec.value("payload", json()) : json();
  j["timeout_ms"] = r.timeout_ms;
  j["claim"] = {{"attempt", r.claim.attempt}, {"node", r.claim.node},
                {"lease_until", r.claim.lease_until_ms}};
  const NodeResult* fin = r.final_result();
  j["result"] = fin && !fin->result.empty() ? json::parse(fin->result, nullptr, false) : json();
  j["receipt"] = fin ? receipt_to_json(fin->receipt) : json();
  json results = json::object();
  for (const auto& [node, res] : r.results) results[node] = result_json(res);
  j["results"] = std::move(results);
  json history = json::array();
  for (const auto& h : r.history)
    history.push_back({{"state", public_state_name(h.state)}, {"node", h.node},
                       {"attempt", h.attempt}, {"at", h.at_ms}, {"reason", h.reason}});
  j["history"] = std::move(history);
  return j;
}

json receipts_view(const JobRecord& r, const NodeKeys& keys) {
  json receipts = json::array();
  for (const auto& [node, res] : r.results) {
    const ReceiptVerdict v = check_node_result(r.id, node, res, keys);
    const char* status = v.kind == ReceiptVerdict::Kind::valid     ? "valid"
                         : v.kind == ReceiptVerdict::Kind::invalid ? "invalid"
                                                                   : "unchecked";
    json entry = {{"node", node},
                  {"attempt", res.attempt},
                  {"outcome", state_name(res.outcome)},
                  {"result_hash", res.receipt.result_hash},
                  {"public_key", res.receipt.public_key},
                  {"signature", res.receipt.signature},
                  {"status", status},
                  {"why", v.why.empty() ? json(nullptr) : json(v.why)}};
    if (!res.receipt.root.empty()) entry["root"] = res.receipt.root;
    receipts.push_back(std::move(entry));
  }
  json j = {{"id", r.id}, {"redundancy", r.redundancy}, {"receipts", std::move(receipts)}};
  if (r.redundancy > 1) {  // the result quorum of the current attempt (dht/verdict.h)
    const Verdict v = is_terminal(r.status.state) ? final_verdict(r)
                                                  : result_verdict(r, r.status.attempt);
    const bool decided = v.kind == Verdict::Kind::decided;
    j["verdict"] = {{"decided", decided},
                    {"result_hash", decided ? json(v.result_hash) : json(nullptr)},
                    {"agreeing", v.agreeing},
                    {"dissenting", v.dissenting}};
  }
  return j;
}

}  // namespace meshwork::api
