// Receipts: the one rule every checker applies; see receipt.h.
#include "dht/receipt.h"

#include "dht/hash.h"
#include "dht/merkle.h"

namespace meshwork {

std::string_view receipt_check_name(ReceiptCheck c) {
  switch (c) {
    case ReceiptCheck::valid:
      return "valid";
    case ReceiptCheck::forged:
      return "forged";
    case ReceiptCheck::unknown_node:
      return "unknown_node";
    case ReceiptCheck::too_large:
      return "too_large";
  }
  return "forged";
}

const std::string& vouched_text(const NodeResult& r) {
  return r.outcome == JobState::succeeded ? r.result : r.error;
}

bool proof_holds(const Receipt& receipt) {
  return receipt.root.empty() ||
         merkle_proof_holds(receipt.message(), receipt.index, receipt.proof, receipt.root);
}

// In order: the job, the attempt, the hash (all decidable without a key), then the key the checker
// knows for the node and the signature under that key.
ReceiptFinding check_receipt(const Receipt& receipt, const std::string& job_id, uint64_t attempt,
                             std::string_view text, const std::optional<std::string>& known_key_b64,
                             const SignatureCheck& verify) {
  ReceiptFinding f{ReceiptCheck::forged, ""};
  if (receipt.job_id != job_id) {
    f.why = "names job " + receipt.job_id + ", not this one";
  } else if (receipt.attempt != attempt) {
    f.why = "names attempt " + std::to_string(receipt.attempt) + " for the result of attempt " +
            std::to_string(attempt);
  } else if (receipt.result_hash != blake2b_hex(text)) {
    f.why = "result_hash does not match the result";
  } else if (!proof_holds(receipt)) {
    f.why = "its inclusion proof does not lead to its root";
  } else if (!known_key_b64) {
    f.check = ReceiptCheck::unknown_node;
    f.why = "the mesh knows no key for node " + receipt.node;
  } else if (receipt.public_key != *known_key_b64) {
    f.why = "carries a key that is not the one the mesh knows for " + receipt.node;
  } else {
    const auto key = from_base64(*known_key_b64);
    const auto signature = from_base64(receipt.signature);
    const std::string message = receipt.signed_message();
    const bool ok =
        key && signature &&
        (verify ? verify(message, *signature, *key) : verify_signature(message, *signature, *key));
    if (!ok) {
      f.why = "the signature does not verify with " + receipt.node + "'s key";
    } else {
      f.check = ReceiptCheck::valid;
    }
  }
  return f;
}

ReceiptFinding check_result(const std::string& job_id, const NodeResult& r,
                            const std::optional<std::string>& known_key_b64,
                            const SignatureCheck& verify) {
  if (r.result.size() + r.error.size() > kResultBytesMax)
    return {ReceiptCheck::too_large,
            "the result is larger than " + std::to_string(kResultBytesMax) + " bytes"};
  return check_receipt(r.receipt, job_id, r.attempt, vouched_text(r), known_key_b64, verify);
}

}  // namespace meshwork
