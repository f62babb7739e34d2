// Receipts: the rule that says whether a result's signed receipt vouches for it, shared by every
// place that checks one — the replica core on every peer record it merges (through
// ReplicaConfig::receipt_check), the node's verifier behind it, GET /v1/jobs/{id}/receipts and
// `meshwork verify` (node/receipt_check.h), and the simulator.
//
// A receipt is valid when it names the job and the attempt of the result it is filed with, its
// result_hash is the BLAKE2b-256 (hex) of the text it vouches for — the result's JSON text when
// the outcome succeeded, else the error text (node/job_runner.cpp, sign_result) — and it is signed
// by the key the checker knows for the node it names: the key membership (gossip) announced, never
// merely the key the receipt carries. A checker that knows no key for the node cannot say more
// than unknown_node; a result larger than kResultBytesMax is too_large, unchecked.
//
// A receipt signed in a batch (a root, dht/merkle.h) holds when, besides the above, its proof leads
// from the leaf of message() at its index to its root, and the signature is over
// root_message(node, root); one without a root keeps the first rule: a signature over message().
//
// Thread-safety: pure functions. Invariant: a receipt that fails any check other than a missing
// key is `forged`, whoever made it — a wrong hash is as much a false claim as a bad signature.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "dht/job_record.h"

namespace meshwork {

// A result's text and error together may be this large; a larger one is refused unread. The
// node's handlers stay below it (node/job_runner.cpp turns a larger result into a failure);
// replica.h asserts that a record of kResultsMax such results still fits a replicate message.
inline constexpr size_t kResultBytesMax = 1u << 20;

enum class ReceiptCheck : uint8_t { valid, forged, unknown_node, too_large };
[[nodiscard]] std::string_view receipt_check_name(ReceiptCheck c);  // valid|forged|unknown_node|...

// A check's verdict and, unless valid, why (a sentence fragment for logs and the API).
struct ReceiptFinding {
  ReceiptCheck check = ReceiptCheck::forged;
  std::string why;
};

// The text a result's receipt hashes: the result when it succeeded, else the error.
[[nodiscard]] const std::string& vouched_text(const NodeResult& r);

// Whether `signature` (raw) is `key`'s (raw Ed25519) over `message`. The default is
// verify_signature; a checker may remember the batches it verified (node/receipt_check.h).
using SignatureCheck =
    std::function<bool(std::string_view message, std::string_view signature, std::string_view key)>;

// The rule for one receipt: it names `job_id` and `attempt`, hashes `text`, its proof (if batched)
// leads to its root, and it is signed by `known_key_b64` (base64 Ed25519), the key the checker
// knows for receipt.node (nullopt: none — unknown_node, once the rest holds). `verify` checks the
// signature (empty: verify_signature).
[[nodiscard]] ReceiptFinding check_receipt(const Receipt& receipt, const std::string& job_id,
                                           uint64_t attempt, std::string_view text,
                                           const std::optional<std::string>& known_key_b64,
                                           const SignatureCheck& verify = {});

// The same for a result of the record of job `job_id`: too_large first, then check_receipt with
// the result's attempt and vouched_text.
[[nodiscard]] ReceiptFinding check_result(const std::string& job_id, const NodeResult& r,
                                          const std::optional<std::string>& known_key_b64,
                                          const SignatureCheck& verify = {});

// check_result against `known_key` raw, as membership announced it: the same finding as
// check_result with to_base64(*known_key), without the round trip through base64 (the replica
// core's check of every result a peer sends).
[[nodiscard]] ReceiptFinding check_result_raw_key(const std::string& job_id, const NodeResult& r,
                                                  const std::optional<std::string>& known_key,
                                                  const SignatureCheck& verify = {});

// Whether a batched receipt's proof leads from the leaf of its message() to its root; true for a
// receipt without a root. False for a root or sibling that is not 32 bytes of hex, a proof longer
// than kMerkleLevelsMax or an index past it.
[[nodiscard]] bool proof_holds(const Receipt& receipt);

// What the replica core asks of every result a peer sends it (ReplicaConfig::receipt_check).
using ReceiptChecker = std::function<ReceiptCheck(const std::string& job_id, const NodeResult&)>;

}  // namespace meshwork
