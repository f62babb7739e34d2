// Signed job envelopes: the pure parts; see envelope.h.
#include "dht/envelope.h"

#include "dht/require.h"

namespace meshwork {

std::string Envelope::signed_message() const {
  return batched() ? jobs_root_message(root) : job;
}

bool Envelope::proof_holds() const {
  return !batched() || merkle_proof_holds(job_leaf_message(id()), index, proof, root);
}

nlohmann::json Envelope::to_json() const {
  nlohmann::json j = {
      {"job", job}, {"public_key", to_base64(public_key)}, {"signature", to_base64(signature)}};
  if (batched()) {
    j["root"] = root;
    j["index"] = index;
    j["proof"] = proof;
  }
  return j;
}

std::string job_leaf_message(const std::string& job_id) {
  return "meshwork-job-v1|" + job_id;
}

std::string jobs_root_message(const std::string& root_hex) {
  return "meshwork-jobs-v1|" + root_hex;
}

std::vector<Envelope> batch_envelopes(const std::vector<std::string>& texts,
                                      const std::string& public_key) {
  dht::require(!texts.empty() && texts.size() <= kJobBatchMax,
               "batch_envelopes: 1 to kJobBatchMax jobs");
  std::vector<Envelope> out(texts.size());
  std::vector<std::string> leaves;
  leaves.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    out[i].job = texts[i];
    out[i].public_key = public_key;
    leaves.push_back(merkle_leaf(static_cast<uint32_t>(i), job_leaf_message(out[i].id())));
  }
  MerkleTree tree = merkle_tree(leaves);
  const std::string root = to_hex(tree.root);
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].root = root;
    out[i].index = static_cast<uint32_t>(i);
    out[i].proof.reserve(tree.proofs[i].size());
    for (const std::string& sibling : tree.proofs[i]) out[i].proof.push_back(to_hex(sibling));
  }
  return out;
}

bool is_job_id(std::string_view s) {
  return is_hash_hex(s);
}

}  // namespace meshwork
