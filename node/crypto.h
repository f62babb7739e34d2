// Crypto primitives over libsodium: hex and base64, BLAKE2b-256, and Ed25519 identities.
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

#include "node/result.h"

namespace meshwork {

inline constexpr size_t kPublicKeyBytes = 32;
inline constexpr size_t kSecretKeyBytes = 64;
inline constexpr size_t kSignatureBytes = 64;
inline constexpr size_t kHashBytes = 32;
inline constexpr size_t kClusterKeyBytes = 32;

void init_crypto();

[[nodiscard]] std::string to_hex(std::string_view bytes);
[[nodiscard]] std::optional<std::string> from_hex(std::string_view hex);
[[nodiscard]] std::string to_base64(std::string_view bytes);
// Standard alphabet with padding; nullopt for anything else (including trailing garbage).
[[nodiscard]] std::optional<std::string> from_base64(std::string_view b64);

// BLAKE2b-256 of the concatenation of the parts, as 32 raw bytes or 64 lowercase hex characters.
[[nodiscard]] std::string blake2b(std::string_view a, std::string_view b = {});
[[nodiscard]] std::string blake2b_hex(std::string_view a, std::string_view b = {});

// Detached Ed25519 verification; false on any malformed input.
[[nodiscard]] bool verify_signature(std::string_view message, std::string_view signature,
                                    std::string_view public_key);

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
  [[nodiscard]] std::string public_key_b64() const { return to_base64(public_key()); }

 private:
  std::array<uint8_t, kSecretKeyBytes> secret_{};
};

// Writes `bytes` to `path` with mode 0600 and fsync; fails if the file exists.
[[nodiscard]] Status write_secret_file(const std::string& path, std::string_view bytes);

}  // namespace meshwork
