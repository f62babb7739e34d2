// Packet sealing with the cluster keyring: XChaCha20-Poly1305 (libsodium
// crypto_aead_xchacha20poly1305_ietf_*).
//
//   sealed := seal_version:u8 nonce[24] ciphertext[n] tag[16]     (the version byte is the AD)
//
// Key rotation: seal with the first key, open with any key in the ring.
//
// Thread-safety: a Keyring is immutable after construction; seal/open may run concurrently.
// Invariants: open() never yields bytes that failed authentication; sealed packets are exactly
// seal_overhead_bytes longer than their plaintext. Nonces come from randombytes_buf: they are
// not protocol state, so they do not break the determinism of the state machine.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "gossip/codec.h"

namespace meshwork::gossip {

inline constexpr std::size_t key_bytes = 32;
inline constexpr std::size_t nonce_bytes = 24;
inline constexpr std::size_t tag_bytes = 16;
inline constexpr uint8_t seal_version = 1;
inline constexpr std::size_t seal_overhead_bytes = 1 + nonce_bytes + tag_bytes;
inline constexpr std::size_t keyring_keys_max = 8;
// The plaintext budget of a packet when sealing is on.
inline constexpr std::size_t sealed_plaintext_bytes_max = packet_bytes_max - seal_overhead_bytes;
static_assert(1 + 2 * message_header_bytes + 7 + alive_bytes_max <= sealed_plaintext_bytes_max,
              "a push-pull chunk with one maximal alive record fits a sealed packet");

using Key = std::array<uint8_t, key_bytes>;

class Keyring {
 public:
  Keyring() = default;  // empty: no sealing
  // Keeps at most keyring_keys_max keys; the first one seals.
  explicit Keyring(std::vector<Key> keys);

  // Parses 64 hex characters (surrounding whitespace allowed).
  static std::optional<Key> key_from_hex(std::string_view text);

  bool empty() const { return keys_.empty(); }
  const std::vector<Key>& keys() const { return keys_; }

 private:
  std::vector<Key> keys_;
};

// Seals `plain` with the first key and appends the sealed packet to `out`. Precondition: the
// keyring is not empty and plain.size() <= sealed_plaintext_bytes_max.
void seal(const Keyring& keyring, std::span<const uint8_t> plain, std::vector<uint8_t>& out);

// Opens `sealed` with whichever key authenticates it; writes the plaintext to `out` (replacing
// its contents). Returns false, with `out` empty, when no key opens it or the layout is wrong.
[[nodiscard]] bool open(const Keyring& keyring, std::span<const uint8_t> sealed,
                        std::vector<uint8_t>& out);

}  // namespace meshwork::gossip
