// Pure crypto primitives over libsodium: hex and base64, BLAKE2b-256 and Ed25519 verification.
// Nothing here touches a file, a clock or the OS random source, so the pure cores (dht/) and the
// simulator can use them.
// Thread-safety: reentrant free functions; sodium_init() is called once by init_crypto(), which
// every entry point that needs it calls.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace meshwork {

inline constexpr size_t kPublicKeyBytes = 32;
inline constexpr size_t kSecretKeyBytes = 64;
inline constexpr size_t kSignatureBytes = 64;
inline constexpr size_t kHashBytes = 32;

void init_crypto();

[[nodiscard]] std::string to_hex(std::string_view bytes);
[[nodiscard]] std::optional<std::string> from_hex(std::string_view hex);
[[nodiscard]] std::string to_base64(std::string_view bytes);
// Standard alphabet with padding; nullopt for anything else (including trailing garbage).
[[nodiscard]] std::optional<std::string> from_base64(std::string_view b64);

// BLAKE2b-256 of the concatenation of the parts, as 32 raw bytes or 64 lowercase hex characters.
[[nodiscard]] std::string blake2b(std::string_view a, std::string_view b = {});
[[nodiscard]] std::string blake2b_hex(std::string_view a, std::string_view b = {});
// True when `s` is a hash as blake2b_hex writes it: 64 lowercase hex characters.
[[nodiscard]] bool is_hash_hex(std::string_view s);

// The hot paths' forms, for public data only (hashes, roots, proofs): they never allocate, and they
// branch on the data, unlike the libsodium forms above, which secret keys pass through.
using RawHash = std::array<char, kHashBytes>;
[[nodiscard]] RawHash blake2b_raw(std::string_view a, std::string_view b = {},
                                  std::string_view c = {});
// to_hex's text, for public bytes.
[[nodiscard]] std::string public_to_hex(std::string_view bytes);
// `hex` as 32 raw bytes into `out`: true exactly when from_hex(hex) is 32 bytes long (64 hex
// digits of either case); `out` is unspecified when false.
[[nodiscard]] bool hash_from_hex(std::string_view hex, RawHash& out);
// from_base64's answer, for public bytes (a signature).
[[nodiscard]] std::optional<std::string> public_from_base64(std::string_view b64);
// Whether `b64` == to_base64(bytes), without building the string.
[[nodiscard]] bool is_base64_of(std::string_view b64, std::string_view bytes);
// Whether `hex` == blake2b_hex(a, b), without building the string.
[[nodiscard]] bool is_blake2b_hex_of(std::string_view hex, std::string_view a,
                                     std::string_view b = {});

// Detached Ed25519 verification; false on any malformed input.
[[nodiscard]] bool verify_signature(std::string_view message, std::string_view signature,
                                    std::string_view public_key);

}  // namespace meshwork
