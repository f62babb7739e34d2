// Receipt verification on a node: for a job document as GET /v1/jobs/{id} returns it (docs/api.md),
// the check behind `meshwork verify` and GET /v1/jobs/{id}/receipts; and for the records the
// replica core merges, receipt_checker. Both apply the one rule of dht/receipt.h: a receipt is
// valid when it names this job, is signed by the key the mesh knows for the node it names (not
// merely the key it carries), and its result_hash is the BLAKE2b-256 of the result it vouches for:
// the compact JSON text of the result when the outcome succeeded, else the error text
// (node/job_runner.cpp, sign_result).
//
// The receipts checked are the one of each node in `results`, plus the top-level `receipt`, which
// must be one of them and, for a succeeded job, must hash the top-level `result`.
// Receipts signed in a batch share one signature (dht/merkle.h); receipt_checker remembers the
// signatures it verified (VerifiedSignatures), so the core verifies one per batch, not per receipt.
// Thread-safety: pure functions, but VerifiedSignatures, which locks (receipt_checker's check is as
// safe as its `key_of`).
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "dht/receipt.h"

namespace meshwork {

struct ReceiptVerdict {
  enum class Kind { valid, invalid, unchecked };  // unchecked: the mesh knows no key for the node
  Kind kind = Kind::invalid;
  std::string where;  // "results.n2" or "receipt"
  std::string node;
  uint64_t attempt = 0;
  std::string why;  // empty when valid
};

// Node name → base64 Ed25519 public key, as GET /v1/cluster/members lists them.
using NodeKeys = std::map<std::string, std::string>;

// One verdict per receipt in `job`, in document order (results by node, then the top-level
// receipt). A document that is not a job object gives one invalid verdict.
[[nodiscard]] std::vector<ReceiptVerdict> check_receipts(const nlohmann::json& job,
                                                         const NodeKeys& keys);

// One result of a record, as the replica core holds it (`filed_under` is its key in `results`),
// checked by the same rule against `keys`: the per-receipt answer of GET /v1/jobs/{id}/receipts.
// too_large and forged are invalid, unknown_node unchecked.
[[nodiscard]] ReceiptVerdict check_node_result(const std::string& job_id,
                                               const std::string& filed_under, const NodeResult& r,
                                               const NodeKeys& keys);

// The raw Ed25519 key membership announced for a node (this node's own included); nullopt when
// none is known.
using KeyOf = std::function<std::optional<std::string>(const std::string& node)>;

// Signatures remembered by receipt_checker.
inline constexpr size_t kVerifiedSignaturesMax = 4'096;

// The (key, signed message, signature) triples that verified, so that the second receipt of a
// batch (same node, root and signature) costs a lookup instead of an Ed25519 verification. At most
// `capacity` triples, the least recently used out; a triple that failed is not remembered.
// Thread-safety: any thread (one mutex).
class VerifiedSignatures {
 public:
  explicit VerifiedSignatures(size_t capacity = kVerifiedSignaturesMax) : capacity_(capacity) {}
  // verify_signature(message, signature, key), from memory when the triple verified before.
  [[nodiscard]] bool verify(std::string_view message, std::string_view signature,
                            std::string_view key);
  // A triple this process signed itself (it verifies by construction): remembered as verified, so
  // that checking its own signature later costs a lookup. Never for a signature from outside.
  void remember(std::string_view message, std::string_view signature, std::string_view key);
  [[nodiscard]] uint64_t verifications() const;  // Ed25519 verifications actually run
  [[nodiscard]] size_t size() const;

 private:
  void keep(std::string triple);  // as verified, least recently used out past capacity_

  const size_t capacity_;
  mutable std::mutex mu_;
  uint64_t verifications_ = 0;    // guarded by mu_
  std::list<std::string> order_;  // most recent first; guarded by mu_
  std::unordered_map<std::string, std::list<std::string>::iterator> index_;  // guarded by mu_
};

// The replica core's check on a node (ReplicaConfig::receipt_check): check_result against the key
// `key_of` knows for the receipt's node, signatures through `verified` (a fresh cache when null).
// Runs on the loop thread; `key_of` must be safe there.
[[nodiscard]] ReceiptChecker receipt_checker(KeyOf key_of,
                                             std::shared_ptr<VerifiedSignatures> verified = {});

}  // namespace meshwork
