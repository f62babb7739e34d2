// Merkle trees over receipts and jobs; see merkle.h.
#include "dht/merkle.h"

#include "dht/require.h"

namespace meshwork {
namespace {

// The tree's two hashes (merkle.h) as arrays, which merkle_proof_holds uses without allocating.
RawHash leaf_hash(uint32_t index, std::string_view message) {
  char prefix[5] = {'\0'};
  for (int i = 0; i < 4; ++i) prefix[1 + i] = static_cast<char>((index >> (8 * i)) & 0xff);
  return blake2b_raw(std::string_view(prefix, sizeof prefix), message);
}

RawHash node_hash(std::string_view left, std::string_view right) {
  return blake2b_raw("\x01", left, right);
}

std::string_view view(const RawHash& h) {
  return {h.data(), h.size()};
}

}  // namespace

std::string merkle_leaf(uint32_t index, std::string_view message) {
  return std::string(view(leaf_hash(index, message)));
}

std::string merkle_node(std::string_view left, std::string_view right) {
  return std::string(view(node_hash(left, right)));
}

MerkleTree merkle_tree(const std::vector<std::string>& leaves) {
  dht::require(!leaves.empty() && leaves.size() <= kReceiptBatchMax,
               "merkle_tree: 1 to kReceiptBatchMax leaves");
  MerkleTree t;
  t.proofs.resize(leaves.size());
  std::vector<std::string> level = leaves;
  for (size_t k = 0; level.size() > 1; ++k) {
    for (size_t i = 0; i < leaves.size(); ++i) {
      const size_t sibling = (i >> k) ^ 1;
      t.proofs[i].push_back(level[sibling < level.size() ? sibling : level.size() - 1]);
    }
    std::vector<std::string> up;
    up.reserve((level.size() + 1) / 2);
    for (size_t i = 0; i < level.size(); i += 2)
      up.push_back(merkle_node(level[i], level[i + 1 < level.size() ? i + 1 : i]));
    level = std::move(up);
  }
  t.root = std::move(level.front());
  return t;
}

std::optional<std::string> merkle_root_of(std::string_view leaf, uint32_t index,
                                          const std::vector<std::string>& proof) {
  if (leaf.size() != kHashBytes || proof.size() > kMerkleLevelsMax) return std::nullopt;
  if (proof.size() < kMerkleLevelsMax && (uint64_t{index} >> proof.size()) != 0)
    return std::nullopt;
  std::string node(leaf);
  for (size_t k = 0; k < proof.size(); ++k) {
    if (proof[k].size() != kHashBytes) return std::nullopt;
    node = (index >> k) & 1 ? merkle_node(proof[k], node) : merkle_node(node, proof[k]);
  }
  return node;
}

// merkle_root_of over the decoded proof, compared with the decoded root, hash by hash on the stack:
// false in exactly the cases where one of them fails to decode to 32 bytes, the proof is malformed
// (invariant 2) or the roots differ.
bool merkle_proof_holds(std::string_view message, uint32_t index,
                        const std::vector<std::string>& proof_hex, std::string_view root_hex) {
  if (proof_hex.size() > kMerkleLevelsMax) return false;
  if (proof_hex.size() < kMerkleLevelsMax && (uint64_t{index} >> proof_hex.size()) != 0)
    return false;
  RawHash root;
  if (!hash_from_hex(root_hex, root)) return false;
  RawHash node = leaf_hash(index, message);
  RawHash sibling;
  for (size_t k = 0; k < proof_hex.size(); ++k) {
    if (!hash_from_hex(proof_hex[k], sibling)) return false;
    node = (index >> k) & 1 ? node_hash(view(sibling), view(node))
                            : node_hash(view(node), view(sibling));
  }
  return node == root;
}

}  // namespace meshwork
