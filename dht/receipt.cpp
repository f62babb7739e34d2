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

namespace {

// The key the checker knows for a receipt's node: base64 as NodeKeys hold it, or raw as gossip
// announced it (the replica core's checks, which then skip a round trip through base64).
struct KnownKey {
  const std::string* b64 = nullptr;
  const std::string* raw = nullptr;

  [[nodiscard]] bool known() const { return b64 || raw; }
  // Whether the receipt carries this key, as base64.
  [[nodiscard]] bool carried_by(const Receipt& receipt) const {
    return b64 ? receipt.public_key == *b64 : is_base64_of(receipt.public_key, *raw);
  }
  // The raw key, decoded into `decoded` when held as base64; nullopt when that base64 is malformed.
  [[nodiscard]] std::optional<std::string_view> bytes(std::optional<std::string>& decoded) const {
    if (raw) return std::string_view(*raw);
    decoded = from_base64(*b64);
    return decoded ? std::optional<std::string_view>(*decoded) : std::nullopt;
  }
};

// In order: the job, the attempt, the hash (all decidable without a key), then the key the checker
// knows for the node and the signature under that key.
ReceiptFinding check_against(const Receipt& receipt, const std::string& job_id, uint64_t attempt,
                             std::string_view text, const KnownKey& known,
                             const SignatureCheck& verify) {
  ReceiptFinding f{ReceiptCheck::forged, ""};
  if (receipt.job_id != job_id) {
    f.why = "names job " + receipt.job_id + ", not this one";
  } else if (receipt.attempt != attempt) {
    f.why = "names attempt " + std::to_string(receipt.attempt) + " for the result of attempt " +
            std::to_string(attempt);
  } else if (!is_blake2b_hex_of(receipt.result_hash, text)) {
    f.why = "result_hash does not match the result";
  } else if (!proof_holds(receipt)) {
    f.why = "its inclusion proof does not lead to its root";
  } else if (!known.known()) {
    f.check = ReceiptCheck::unknown_node;
    f.why = "the mesh knows no key for node " + receipt.node;
  } else if (!known.carried_by(receipt)) {
    f.why = "carries a key that is not the one the mesh knows for " + receipt.node;
  } else {
    std::optional<std::string> decoded;
    const auto key = known.bytes(decoded);
    const auto signature = public_from_base64(receipt.signature);
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

// A result's check: too_large first, then the receipt's.
ReceiptFinding check_result_against(const std::string& job_id, const NodeResult& r,
                                    const KnownKey& known, const SignatureCheck& verify) {
  if (r.result.size() + r.error.size() > kResultBytesMax)
    return {ReceiptCheck::too_large,
            "the result is larger than " + std::to_string(kResultBytesMax) + " bytes"};
  return check_against(r.receipt, job_id, r.attempt, vouched_text(r), known, verify);
}

KnownKey known_b64(const std::optional<std::string>& key_b64) {
  return {key_b64 ? &*key_b64 : nullptr, nullptr};
}

}  // namespace

ReceiptFinding check_receipt(const Receipt& receipt, const std::string& job_id, uint64_t attempt,
                             std::string_view text, const std::optional<std::string>& known_key_b64,
                             const SignatureCheck& verify) {
  return check_against(receipt, job_id, attempt, text, known_b64(known_key_b64), verify);
}

ReceiptFinding check_result(const std::string& job_id, const NodeResult& r,
                            const std::optional<std::string>& known_key_b64,
                            const SignatureCheck& verify) {
  return check_result_against(job_id, r, known_b64(known_key_b64), verify);
}

ReceiptFinding check_result_raw_key(const std::string& job_id, const NodeResult& r,
                                    const std::optional<std::string>& known_key,
                                    const SignatureCheck& verify) {
  return check_result_against(job_id, r, {nullptr, known_key ? &*known_key : nullptr}, verify);
}

}  // namespace meshwork
