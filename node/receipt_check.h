// Receipt verification for a job document as GET /v1/jobs/{id} returns it (docs/api.md): the
// check behind `meshwork verify`. A receipt is valid when it names this job, is signed by the key
// the mesh knows for the node it names (not merely the key it carries), and its result_hash is the
// BLAKE2b-256 of the result it vouches for: the compact JSON text of the result when the outcome
// succeeded, else the error text (node/job_runner.cpp, sign_result).
//
// The receipts checked are the one of each node in `results`, plus the top-level `receipt`, which
// must be one of them and, for a succeeded job, must hash the top-level `result`.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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

}  // namespace meshwork
