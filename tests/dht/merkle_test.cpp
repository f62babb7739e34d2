// Merkle trees over receipts (dht/merkle.h): every proof of a tree leads to its root, and any
// change to a leaf, a sibling, the index or the root makes it fail; malformed proofs are refused.
#include "dht/merkle.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace meshwork {
namespace {

std::vector<std::string> leaves_of(size_t n) {
  std::vector<std::string> leaves;
  for (size_t i = 0; i < n; ++i)
    leaves.push_back(merkle_leaf(static_cast<uint32_t>(i), "message " + std::to_string(i)));
  return leaves;
}

bool leads_to(const std::string& leaf, uint32_t index, const std::vector<std::string>& proof,
              const std::string& root) {
  const auto got = merkle_root_of(leaf, index, proof);
  return got && *got == root;
}

std::string flipped(std::string s, size_t at = 0) {
  s[at] = static_cast<char>(s[at] ^ 0x01);
  return s;
}

}  // namespace

TEST_CASE("every proof of a tree leads to its root; any change fails") {
  for (size_t n : {1u, 2u, 3u, 5u, 1'024u}) {
    CAPTURE(n);
    const std::vector<std::string> leaves = leaves_of(n);
    const MerkleTree t = merkle_tree(leaves);
    REQUIRE(t.root.size() == kHashBytes);
    REQUIRE(t.proofs.size() == n);
    if (n == 1) CHECK((t.root == leaves[0] && t.proofs[0].empty()));  // a batch of one
    const size_t step = n > 64 ? 37 : 1;  // 1,024 leaves: a sample of them for the changes
    for (size_t i = 0; i < n; ++i) {
      const auto index = static_cast<uint32_t>(i);
      const auto& proof = t.proofs[i];
      REQUIRE(leads_to(leaves[i], index, proof, t.root));
      if (i % step != 0 && i != n - 1) continue;
      CHECK_FALSE(leads_to(flipped(leaves[i]), index, proof, t.root));
      CHECK_FALSE(leads_to(leaves[i], index, proof, flipped(t.root)));
      for (size_t k = 0; k < proof.size(); ++k) {
        auto bad = proof;
        bad[k] = flipped(bad[k], k % kHashBytes);
        CHECK_FALSE(leads_to(leaves[i], index, bad, t.root));
      }
      // Another index: the leaf hashes its index, so the same message and proof fail there.
      const std::string message = "message " + std::to_string(i);
      for (uint32_t other = 0; other < (uint32_t{1} << proof.size()) && other < 8; ++other)
        if (other != index)
          CHECK_FALSE(leads_to(merkle_leaf(other, message), other, proof, t.root));
      // Another leaf's proof fails too.
      if (n > 1) CHECK_FALSE(leads_to(leaves[i], index, t.proofs[(i + 1) % n], t.root));
    }
  }
}

TEST_CASE("the last node of an odd level pairs with itself") {
  const std::vector<std::string> leaves = leaves_of(3);
  const MerkleTree t = merkle_tree(leaves);
  CHECK(t.root ==
        merkle_node(merkle_node(leaves[0], leaves[1]), merkle_node(leaves[2], leaves[2])));
  CHECK(t.proofs[2] == std::vector<std::string>{leaves[2], merkle_node(leaves[0], leaves[1])});
  // Its duplicate's position (index 3) does not verify: the leaf there hashes index 3. (The
  // leaf hash of index 2 would lead there: a receipt's rule recomputes the leaf from its index.)
  CHECK_FALSE(leads_to(merkle_leaf(3, "message 2"), 3, t.proofs[2], t.root));
  CHECK(leads_to(leaves[2], 3, t.proofs[2], t.root));
}

TEST_CASE("malformed proofs are refused, not read") {
  const std::string leaf = merkle_leaf(0, "m");
  const std::string sibling = merkle_leaf(1, "n");
  CHECK(merkle_root_of(leaf, 0, {}) == leaf);
  CHECK_FALSE(merkle_root_of(leaf, 1, {}));            // index past the proof
  CHECK_FALSE(merkle_root_of(leaf, 2, {sibling}));     // index past the proof
  CHECK_FALSE(merkle_root_of(leaf, 0, {"short"}));     // a sibling not 32 bytes
  CHECK_FALSE(merkle_root_of("short", 0, {sibling}));  // a leaf not 32 bytes
  CHECK_FALSE(merkle_root_of(leaf, 0, std::vector<std::string>(kMerkleLevelsMax + 1, sibling)));
  CHECK(merkle_root_of(leaf, UINT32_MAX, std::vector<std::string>(kMerkleLevelsMax, sibling)));
  // Leaf and inner node hashes never coincide for the same bytes (domain prefixes).
  CHECK(merkle_leaf(0, leaf + sibling) != merkle_node(leaf, sibling));
}

}  // namespace meshwork
