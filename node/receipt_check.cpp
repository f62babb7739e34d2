// Receipt verification; see receipt_check.h.
#include "node/receipt_check.h"

#include <limits>

#include "dht/merkle.h"
#include "dht/receipt.h"

namespace meshwork {
namespace {

using nlohmann::json;
using Kind = ReceiptVerdict::Kind;

// The text a receipt hashes: the result's compact JSON (as the node dumped it) or the error.
std::string document_text(const json& entry, bool succeeded) {
  if (!succeeded)
    return entry.contains("error") && entry["error"].is_string() ? entry["error"].get<std::string>()
                                                                 : "";
  return entry.contains("result")
             ? entry["result"].dump(-1, ' ', false, json::error_handler_t::replace)
             : "";
}

Kind verdict_kind(ReceiptCheck c) {
  return c == ReceiptCheck::valid          ? Kind::valid
         : c == ReceiptCheck::unknown_node ? Kind::unchecked
                                           : Kind::invalid;
}

// A batched receipt's root, index and proof (bounded before it is read); false when malformed.
bool parse_batch(const json& rc, Receipt& r) {
  if (!rc["root"].is_string() || !rc.contains("index") || !rc["index"].is_number_unsigned() ||
      rc["index"].get<uint64_t>() > std::numeric_limits<uint32_t>::max() || !rc.contains("proof") ||
      !rc["proof"].is_array() || rc["proof"].size() > kMerkleLevelsMax)
    return false;
  r.root = rc["root"].get<std::string>();
  r.index = rc["index"].get<uint32_t>();
  for (const json& sibling : rc["proof"]) {
    if (!sibling.is_string()) return false;
    r.proof.push_back(sibling.get<std::string>());
  }
  return !r.root.empty();
}

// The receipt's fields, or nullopt when one is missing or of the wrong type.
std::optional<Receipt> parse_receipt(const json& rc) {
  if (!rc.is_object()) return std::nullopt;
  for (const char* k : {"job_id", "node", "result_hash", "public_key", "signature"})
    if (!rc.contains(k) || !rc[k].is_string()) return std::nullopt;
  if (!rc.contains("attempt") || !rc["attempt"].is_number_unsigned() ||
      rc["attempt"].get<uint64_t>() > std::numeric_limits<uint32_t>::max())
    return std::nullopt;
  Receipt r{rc["job_id"],      rc["node"],       rc["attempt"].get<uint32_t>(),
            rc["result_hash"], rc["public_key"], rc["signature"]};
  if (!rc.contains("root")) return r;
  return parse_batch(rc, r) ? std::optional<Receipt>(std::move(r)) : std::nullopt;
}

// Checks one receipt by the rule of dht/receipt.h, against the key the mesh knows for its node.
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
  ReceiptFinding f =
      check_receipt(*r, job_id, attempt, text,
                    known == keys.end() ? std::nullopt : std::optional<std::string>(known->second));
  v.kind = verdict_kind(f.check);
  v.why = std::move(f.why);
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
                                 document_text(entry, ok), keys);
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
                          document_text(ok ? job : results[node], ok), keys));
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

ReceiptVerdict check_node_result(const std::string& job_id, const std::string& filed_under,
                                 const NodeResult& r, const NodeKeys& keys) {
  const auto known = keys.find(r.receipt.node);
  ReceiptFinding f = check_result(
      job_id, r, known == keys.end() ? std::nullopt : std::optional<std::string>(known->second));
  ReceiptVerdict v{verdict_kind(f.check), "results." + filed_under, r.receipt.node,
                   r.receipt.attempt, std::move(f.why)};
  if (v.kind != Kind::invalid && r.receipt.node != filed_under) {
    v.kind = Kind::invalid;
    v.why = "a receipt of " + r.receipt.node + " filed under " + filed_under;
  }
  return v;
}

namespace {

// The cache's key for a (message, signature, key) triple.
std::string triple_of(std::string_view message, std::string_view signature, std::string_view key) {
  std::string triple;
  triple.reserve(key.size() + signature.size() + message.size() + 2);
  triple.append(key).append(1, '|').append(signature).append(1, '|').append(message);
  return triple;
}

}  // namespace

bool VerifiedSignatures::verify(std::string_view message, std::string_view signature,
                                std::string_view key) {
  std::string triple = triple_of(message, signature, key);
  {
    std::lock_guard lock(mu_);
    if (auto it = index_.find(triple); it != index_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return true;
    }
    ++verifications_;
  }
  if (!verify_signature(message, signature, key)) return false;
  keep(std::move(triple));
  return true;
}

void VerifiedSignatures::remember(std::string_view message, std::string_view signature,
                                  std::string_view key) {
  keep(triple_of(message, signature, key));
}

void VerifiedSignatures::keep(std::string triple) {
  std::lock_guard lock(mu_);
  if (index_.count(triple) != 0 || capacity_ == 0) return;
  order_.push_front(triple);
  index_.emplace(std::move(triple), order_.begin());
  if (order_.size() > capacity_) {
    index_.erase(order_.back());
    order_.pop_back();
  }
}

uint64_t VerifiedSignatures::verifications() const {
  std::lock_guard lock(mu_);
  return verifications_;
}

size_t VerifiedSignatures::size() const {
  std::lock_guard lock(mu_);
  return index_.size();
}

ReceiptChecker receipt_checker(KeyOf key_of, std::shared_ptr<VerifiedSignatures> verified) {
  if (!verified) verified = std::make_shared<VerifiedSignatures>();
  SignatureCheck verify = [verified](std::string_view m, std::string_view s, std::string_view k) {
    return verified->verify(m, s, k);
  };
  return [key_of = std::move(key_of), verify = std::move(verify)](const std::string& job_id,
                                                                  const NodeResult& r) {
    return check_result_raw_key(job_id, r, key_of(r.receipt.node), verify).check;
  };
}

}  // namespace meshwork
