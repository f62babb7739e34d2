// Merkle trees over receipts and jobs; see merkle.h.
#include "dht/merkle.h"

#include "dht/require.h"

namespace meshwork {

std::string merkle_leaf(uint32_t index, std::string_view message) {
  std::string prefix(5, '\0');
  for (int i = 0; i < 4; ++i) prefix[1 + i] = static_cast<char>((index >> (8 * i)) & 0xff);
  return blake2b(prefix, message);
}

std::string merkle_node(std::string_view left, std::string_view right) {
  std::string children;
  children.reserve(1 + left.size() + right.size());
  children.push_back('\x01');
  children.append(left);
  children.append(right);
  return blake2b(children);
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

bool merkle_proof_holds(std::string_view message, uint32_t index,
                        const std::vector<std::string>& proof_hex, std::string_view root_hex) {
  if (proof_hex.size() > kMerkleLevelsMax) return false;
  const std::optional<std::string> root = from_hex(root_hex);
  if (!root || root->size() != kHashBytes) return false;
  std::vector<std::string> proof;
  proof.reserve(proof_hex.size());
  for (const std::string& sibling : proof_hex) {
    std::optional<std::string> raw = from_hex(sibling);
    if (!raw) return false;
    proof.push_back(std::move(*raw));
  }
  const auto reached = merkle_root_of(merkle_leaf(index, message), index, proof);
  return reached && *reached == *root;
}

}  // namespace meshwork
