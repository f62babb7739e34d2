// Merkle trees over receipts and jobs: a node signs one root for a batch of outcomes, a client (or
// the entry node, for plain jobs) one root for a batch of jobs, and each receipt or job envelope
// carries the path from its leaf to that root, so every one still verifies on its own.
//
// The tree (docs/protocol.md, "Receipts are signed per batch" and "Jobs signed per batch"):
//   leaf i      = BLAKE2b-256(0x00 || u32 little-endian i || message_i)
//   inner node  = BLAKE2b-256(0x01 || left || right)
//   a level of odd width pairs its last node with itself; the root is the one node of the last
//   level (a batch of one: root = leaf 0, empty proof).
// The proof of leaf i lists, from the bottom, the sibling at each level; at level k the leaf's
// node is the right child when bit k of i is set. The prefixes keep a leaf from being read as an
// inner node; the index in the leaf keeps one message from verifying at another position (the
// duplicated last node of an odd level included).
//
// Thread-safety: pure functions.
// Invariants: 1. every proof of merkle_tree(leaves) leads from its leaf to its root;
//             2. a proof longer than kMerkleLevelsMax, a sibling not kHashBytes long, or an index
//                with a bit at or above the proof's length is refused (nullopt), never read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dht/hash.h"

namespace meshwork {

// A node signs at most this many outcomes under one root.
inline constexpr size_t kReceiptBatchMax = 1'024;
// A proof has at most this many siblings (a tree of up to 2^32 leaves); a longer one is refused.
inline constexpr size_t kMerkleLevelsMax = 32;
static_assert((uint64_t{1} << kMerkleLevelsMax) > kReceiptBatchMax);

// The hash of leaf `index` holding `message`, 32 raw bytes.
[[nodiscard]] std::string merkle_leaf(uint32_t index, std::string_view message);
// The hash of an inner node over its children's hashes, 32 raw bytes.
[[nodiscard]] std::string merkle_node(std::string_view left, std::string_view right);

struct MerkleTree {
  std::string root;                              // 32 raw bytes
  std::vector<std::vector<std::string>> proofs;  // per leaf, siblings from the bottom (raw)
};

// The tree over `leaves` (raw leaf hashes). Precondition: 1 <= leaves.size() <= kReceiptBatchMax
// (asserted).
[[nodiscard]] MerkleTree merkle_tree(const std::vector<std::string>& leaves);

// The root that `proof` leads to from `leaf` at `index`, or nullopt when the proof is malformed
// (invariant 2).
[[nodiscard]] std::optional<std::string> merkle_root_of(std::string_view leaf, uint32_t index,
                                                        const std::vector<std::string>& proof);

// Whether `proof_hex` (hex siblings) leads from the leaf of `message` at `index` to `root_hex`, as
// a receipt or job envelope carries them; false for a root or sibling that is not 32 bytes of hex
// and for a malformed proof (invariant 2).
[[nodiscard]] bool merkle_proof_holds(std::string_view message, uint32_t index,
                                      const std::vector<std::string>& proof_hex,
                                      std::string_view root_hex);

}  // namespace meshwork
