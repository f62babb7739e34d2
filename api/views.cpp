// What clients see of a job; see views.h.
#include "api/views.h"

#include "api/json_text.h"
#include "api/problem.h"
#include "dht/verdict.h"
#include "node/check.h"
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

constexpr const char* kNoRecordDetail = "the mesh answered without the job";

// receipt_to_json (dht/job_record.h), written directly.
void append_receipt(std::string& out, const Receipt& r) {
  JsonObjectWriter o(out);
  o.uint("attempt", r.attempt);
  if (!r.root.empty()) o.uint("index", r.index);
  o.string("job_id", r.job_id);
  o.string("node", r.node);
  if (!r.root.empty()) append_json_strings(o.key("proof"), r.proof);
  o.string("public_key", r.public_key);
  o.string("result_hash", r.result_hash);
  if (!r.root.empty()) o.string("root", r.root);
  o.string("signature", r.signature);
  o.close();
}

// result_json, written directly.
void append_result(std::string& out, const NodeResult& r) {
  JsonObjectWriter o(out);
  o.uint("at", r.at_ms);
  o.uint("attempt", r.attempt);
  if (!r.error.empty()) o.string("error", r.error);
  o.string("outcome", state_name(r.outcome));
  append_receipt(o.key("receipt"), r.receipt);
  if (!r.result.empty()) append_json_text(o.key("result"), r.result);
  o.close();
}

// job_view's "results": by node, in the map's (byte) order, which is nlohmann's.
void append_results(std::string& out, const std::map<std::string, NodeResult>& results) {
  out += '{';
  bool first = true;
  for (const auto& [node, res] : results) {
    if (!first) out += ',';
    first = false;
    append_json_string(out, node);
    out += ':';
    append_result(out, res);
  }
  out += '}';
}

void append_history(std::string& out, const std::vector<HistoryEntry>& history) {
  out += '[';
  for (size_t i = 0; i < history.size(); ++i) {
    const HistoryEntry& h = history[i];
    if (i > 0) out += ',';
    JsonObjectWriter o(out);
    o.uint("at", h.at_ms);
    o.uint("attempt", h.attempt);
    o.string("node", h.node);
    o.string("reason", h.reason);
    o.string("state", public_state_name(h.state));
    o.close();
  }
  out += ']';
}

// placement_view's "owner".
void append_owner(std::string& out, const std::vector<std::string>& replicas) {
  if (replicas.empty())
    out += "null";
  else
    append_json_string(out, replicas.front());
}

// job_view's "payload": the spec's, copied from the job text when that is proven canonical (a plain
// job's text is nlohmann's own dump, node/envelope.cpp: it is, unless a number has a fraction),
// else parsed again.
void append_payload(std::string& out, const std::string& job_text) {
  if (auto payload = canonical_member(job_text, "payload")) {
    out += *payload;
    return;
  }
  auto spec = json::parse(job_text, nullptr, false);
  out += dump_json(spec.is_object() ? spec.value("payload", json()) : json());
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

json placement_view(const std::vector<std::string>& replicas) {
  return {{"owner", replicas.empty() ? json(nullptr) : json(replicas.front())},
          {"replicas", replicas}};
}

// The members of job_view and placement_view, in nlohmann's (sorted) order.
void append_job_view(std::string& out, const JobRecord& r, uint64_t now_ms,
                     const std::vector<std::string>& replicas) {
  const NodeResult* fin = r.final_result();
  JsonObjectWriter o(out);
  o.uint("attempts", r.status.attempt);
  if (r.cancel_requested()) o.literal("cancel_requested", "true");
  JsonObjectWriter claim(o.key("claim"));
  claim.uint("attempt", r.claim.attempt);
  claim.uint("lease_until", r.claim.lease_until_ms);
  claim.string("node", r.claim.node);
  claim.close();
  o.uint("created_at", r.created_at_ms);
  if (r.delay_ms > 0) o.uint("delay_ms", r.delay_ms);
  append_json_string_or_null(o.key("error"), r.status.error);
  append_history(o.key("history"), r.history);
  o.string("id", r.id);
  o.uint("max_attempts", r.max_attempts);
  append_owner(o.key("owner"), replicas);
  append_payload(o.key("payload"), r.envelope.job);
  o.uint("priority", r.priority);
  if (fin)
    append_receipt(o.key("receipt"), fin->receipt);
  else
    o.literal("receipt", "null");
  if (r.redundancy > 1) o.uint("redundancy", r.redundancy);
  append_json_strings(o.key("replicas"), replicas);
  if (fin && !fin->result.empty())
    append_json_text(o.key("result"), fin->result);
  else
    o.literal("result", "null");
  append_results(o.key("results"), r.results);
  if (r.status.round > 0) o.uint("retries", r.status.round);
  if (r.status.state == JobState::retry_wait) o.uint("retry_at", r.status.retry_at_ms);
  if (r.delay_ms > 0) o.uint("run_after", r.run_after_ms());
  o.string("state", public_state(r, now_ms));
  o.string("submitted_by", to_base64(r.envelope.public_key));
  o.uint("timeout_ms", r.timeout_ms);
  o.string("type", r.type);
  o.uint("updated_at", r.updated_at_ms);
  o.close();
}

int batch_item_status(const ItemResult& r) {
  if (!r.status.is_ok()) return http_status(r.status.code());
  if (!r.record) return 500;
  return r.created ? 202 : 200;
}

namespace {

json batch_item_view(const ItemResult& r, uint64_t now_ms, const std::vector<std::string>& replicas,
                     uint64_t retry_after_s) {
  json j = {{"status", batch_item_status(r)}};
  if (!r.status.is_ok()) {
    j["detail"] = r.status.message();
  } else if (!r.record) {
    j["detail"] = kNoRecordDetail;
  } else {
    j["id"] = r.record->id;
    j["state"] = public_state(*r.record, now_ms);
    j.update(placement_view(replicas));
  }
  if (retry_after_s > 0) j["retry_after"] = retry_after_s;
  return j;
}

void append_batch_item(std::string& out, const ItemResult& r, uint64_t now_ms,
                       const std::vector<std::string>& replicas, uint64_t retry_after_s) {
  const bool stored = r.status.is_ok() && r.record;
  JsonObjectWriter o(out);
  if (!r.status.is_ok()) o.string("detail", r.status.message());
  if (r.status.is_ok() && !r.record) o.string("detail", kNoRecordDetail);
  if (stored) {
    o.string("id", r.record->id);
    append_owner(o.key("owner"), replicas);
    append_json_strings(o.key("replicas"), replicas);
  }
  if (retry_after_s > 0) o.uint("retry_after", retry_after_s);
  if (stored) o.string("state", public_state(*r.record, now_ms));
  o.uint("status", static_cast<uint64_t>(batch_item_status(r)));
  o.close();
}

struct BatchCounts {
  size_t accepted = 0, duplicates = 0, rejected = 0;
};

BatchCounts count_batch(const std::vector<ItemResult>& items) {
  BatchCounts c;
  for (const ItemResult& r : items) {
    if (!r.status.is_ok() || !r.record)
      c.rejected++;
    else
      (r.created ? c.accepted : c.duplicates)++;
  }
  return c;
}

}  // namespace

json batch_answer_view(const std::vector<ItemResult>& items,
                       const std::vector<uint64_t>& retry_after_s,
                       const std::vector<std::vector<std::string>>& replicas, uint64_t now_ms) {
  MESHWORK_CHECK(retry_after_s.size() == items.size() && replicas.size() == items.size());
  json results = json::array();
  for (size_t i = 0; i < items.size(); ++i)
    results.push_back(batch_item_view(items[i], now_ms, replicas[i], retry_after_s[i]));
  const BatchCounts c = count_batch(items);
  return {{"results", std::move(results)},
          {"accepted", c.accepted},
          {"duplicates", c.duplicates},
          {"rejected", c.rejected}};
}

void append_batch_answer(std::string& out, const std::vector<ItemResult>& items,
                         const std::vector<uint64_t>& retry_after_s,
                         const std::vector<std::vector<std::string>>& replicas, uint64_t now_ms) {
  MESHWORK_CHECK(retry_after_s.size() == items.size() && replicas.size() == items.size());
  const BatchCounts c = count_batch(items);
  JsonObjectWriter o(out);
  o.uint("accepted", c.accepted);
  o.uint("duplicates", c.duplicates);
  o.uint("rejected", c.rejected);
  std::string& list = o.key("results");
  list += '[';
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) list += ',';
    append_batch_item(list, items[i], now_ms, replicas[i], retry_after_s[i]);
  }
  list += ']';
  o.close();
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
