// Receipt verification; see receipt_check.h.
#include "node/receipt_check.h"

#include <limits>

#include "dht/hash.h"
#include "dht/job_record.h"

namespace meshwork {
namespace {

using nlohmann::json;
using Kind = ReceiptVerdict::Kind;

// The text a receipt hashes: the result's compact JSON (as the node dumped it) or the error.
std::string vouched_text(const json& entry, bool succeeded) {
  if (!succeeded)
    return entry.contains("error") && entry["error"].is_string() ? entry["error"].get<std::string>()
                                                                 : "";
  return entry.contains("result")
             ? entry["result"].dump(-1, ' ', false, json::error_handler_t::replace)
             : "";
}

// The receipt's fields, or nullopt when one is missing or of the wrong type.
std::optional<Receipt> parse_receipt(const json& rc) {
  if (!rc.is_object()) return std::nullopt;
  for (const char* k : {"job_id", "node", "result_hash", "public_key", "signature"})
    if (!rc.contains(k) || !rc[k].is_string()) return std::nullopt;
  if (!rc.contains("attempt") || !rc["attempt"].is_number_unsigned() ||
      rc["attempt"].get<uint64_t>() > std::numeric_limits<uint32_t>::max())
    return std::nullopt;
  return Receipt{rc["job_id"],      rc["node"],       rc["attempt"].get<uint32_t>(),
                 rc["result_hash"], rc["public_key"], rc["signature"]};
}

// Checks one receipt: this job, the attempt it vouches for, the hash of `text`, then the key the
// mesh knows for its node and the signature under that key.
ReceiptVerdict check_one(const json& rc, std::string where, const std::string& job_id,
                         uint64_t attempt, const std::string& text, const NodeKeys& keys) {
  ReceiptVerdict v{Kind::invalid, std::move(where), "", 0, ""};
  const std::optional<Receipt> r = parse_receipt(rc);
  if (!r) {
    v.why = "malformed receipt (a field is missing or of the wrong type)";
    return v;
  }
  v.node = r->node;
  v.attempt = r->attempt;
  const auto known = keys.find(r->node);
  const auto key = known == keys.end() ? std::nullopt : from_base64(known->second);
  const auto signature = from_base64(r->signature);
  if (r->job_id != job_id) {
    v.why = "names job " + r->job_id + ", not this one";
  } else if (r->attempt != attempt) {
    v.why = "names attempt " + std::to_string(r->attempt) + " for the result of attempt " +
            std::to_string(attempt);
  } else if (r->result_hash != blake2b_hex(text)) {
    v.why = "result_hash does not match the result";
  } else if (known == keys.end()) {
    v.kind = Kind::unchecked;
    v.why = "the mesh knows no key for node " + r->node;
  } else if (r->public_key != known->second) {
    v.why = "carries a key that is not the one the mesh knows for " + r->node;
  } else if (!key || !signature || !verify_signature(r->message(), *signature, *key)) {
    v.why = "the signature does not verify with " + r->node + "'s key";
  } else {
    v.kind = Kind::valid;
  }
  return v;
}

// check_receipts without the guard against fields of the wrong type.
std::vector<ReceiptVerdict> check_document(const json& job, const NodeKeys& keys) {
  std::vector<ReceiptVerdict> out;
  if (!job.is_object() || !job.contains("id") || !job["id"].is_string() ||
      !job.contains("results") || !job["results"].is_object()) {
    out.push_back({Kind::invalid, "job", "", 0, "not a job document (no id or results)"});
    return out;
  }
  const std::string id = job["id"];
  const json& results = job["results"];
  for (const auto& [node, entry] : results.items()) {
    if (!entry.is_object()) {
      out.push_back({Kind::invalid, "results." + node, node, 0, "not a result object"});
      continue;
    }
    const bool ok = entry.value("outcome", "") == "succeeded";
    const json& rc = entry.contains("receipt") ? entry["receipt"] : json();
    ReceiptVerdict v = check_one(rc, "results." + node, id, entry.value("attempt", uint64_t{0}),
                                 vouched_text(entry, ok), keys);
    if (v.kind != Kind::invalid && v.node != node) {
      v.kind = Kind::invalid;
      v.why = "a receipt of " + v.node + " filed under " + node;
    }
    out.push_back(std::move(v));
  }
  if (!job.contains("receipt") || job["receipt"].is_null()) return out;
  // The top-level receipt is the final result's: it must be one of the results' receipts.
  const json& rc = job["receipt"];
  const std::string node = rc.is_object() ? rc.value("node", "") : "";
  if (!results.contains(node) || !results[node].is_object() ||
      results[node].value("receipt", json()) != rc) {
    out.push_back({Kind::invalid, "receipt", node, 0, "not the receipt of any result"});
    return out;
  }
  const bool ok = job.value("state", "") == "succeeded";
  out.push_back(check_one(rc, "receipt", id, results[node].value("attempt", uint64_t{0}),
                          vouched_text(ok ? job : results[node], ok), keys));
  return out;
}

}  // namespace

std::vector<ReceiptVerdict> check_receipts(const json& job, const NodeKeys& keys) {
  try {
    return check_document(job, keys);
  } catch (const json::exception& e) {  // a field of the wrong type, e.g. "attempt": "1"
    return {{Kind::invalid, "job", "", 0, std::string("malformed job document: ") + e.what()}};
  }
}

}  // namespace meshwork
