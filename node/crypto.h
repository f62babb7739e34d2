// Node identities: Ed25519 key pairs kept in a file, and the OS random source. The pure
// primitives (hex, base64, BLAKE2b, verification) are in dht/hash.h.
//
// An Identity is a node's (or a client's) Ed25519 key pair. It is created once and kept in a file
// of 64 raw secret-key bytes (libsodium's seed||public layout) with mode 0600; the public key is
// derived from it. Signatures are detached (64 bytes) and deterministic.
// Thread-safety: free functions are reentrant; an Identity is immutable after construction.
// sodium_init() is called once by init_crypto(); every entry point here calls it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dht/hash.h"
#include "dht/result.h"

namespace meshwork {

inline constexpr size_t kClusterKeyBytes = 32;

// Random bytes from the OS CSPRNG.
[[nodiscard]] std::string random_bytes(size_t n);

class Identity {
 public:
  static Identity generate();
  // Reads a key file written by save(); Code::corruption when it is not a valid key.
  static Result<Identity> load(const std::string& path);
  // Loads the key at `path`, or creates one there (mode 0600) when the file does not exist.
  static Result<Identity> load_or_create(const std::string& path);
  // Writes the secret key with mode 0600, refusing to overwrite an existing file.
  [[nodiscard]] Status save(const std::string& path) const;

  [[nodiscard]] std::string sign(std::string_view message) const;  // 64 raw bytes
  [[nodiscard]] std::string public_key() const;                    // 32 raw bytes
  // X25519 of this key and `peer_public_key` (raw Ed25519, 32 bytes), both converted to their
  // Curve25519 forms: the same 32 bytes on both sides. nullopt for a key that is not a valid point
  // or that gives the all-zero result (a low-order point).
  [[nodiscard]] std::optional<std::string> shared_secret(std::string_view peer_public_key) const;
  [[nodiscard]] std::string public_key_b64() const { return to_base64(public_key()); }

 private:
  std::array<uint8_t, kSecretKeyBytes> secret_{};
};

// Writes `bytes` to `path` with mode 0600 and fsync; fails if the file exists.
[[nodiscard]] Status write_secret_file(const std::string& path, std::string_view bytes);

}  // namespace meshwork
