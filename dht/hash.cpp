// Pure crypto primitives over libsodium; see hash.h.
#include "dht/hash.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace meshwork {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr uint8_t kNotHex = 0xff;
// Each byte's value as a hex digit, or kNotHex: the digits sodium_hex2bin reads, [0-9a-fA-F].
constexpr std::array<uint8_t, 256> kHexValues = [] {
  std::array<uint8_t, 256> v{};
  v.fill(kNotHex);
  for (uint8_t d = 0; d < 10; ++d) v['0' + d] = d;
  for (uint8_t d = 0; d < 6; ++d) v['a' + d] = v['A' + d] = static_cast<uint8_t>(10 + d);
  return v;
}();

constexpr uint8_t kNotBase64 = 0xff;
// Each byte's value as sodium_base642bin reads it (original alphabet), or kNotBase64. It reads
// every byte from 0x80 up as '/' (its constant-time comparisons see a negative char), and so does
// this table: from_base64 is the reference (tests/dht/hash_test.cpp).
constexpr std::array<uint8_t, 256> kBase64Values = [] {
  std::array<uint8_t, 256> v{};
  v.fill(kNotBase64);
  for (size_t c = 0x80; c < v.size(); ++c) v[c] = 63;
  for (uint8_t d = 0; d < 26; ++d) {
    v['A' + d] = d;
    v['a' + d] = static_cast<uint8_t>(26 + d);
  }
  for (uint8_t d = 0; d < 10; ++d) v['0' + d] = static_cast<uint8_t>(52 + d);
  v['+'] = 62;
  v['/'] = 63;
  return v;
}();

}  // namespace

void init_crypto() {
  static const bool ready = [] {
    if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
    return true;
  }();
  (void)ready;
}

std::string to_hex(std::string_view bytes) {
  std::string out(bytes.size() * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                 bytes.size());
  out.pop_back();
  return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out(hex.size() / 2, '\0');
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_hex2bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), hex.data(),
                     hex.size(), nullptr, &len, &end) != 0 ||
      len != out.size() || end != hex.data() + hex.size())
    return std::nullopt;
  return out;
}

std::string to_base64(std::string_view bytes) {
  const int variant = sodium_base64_VARIANT_ORIGINAL;
  std::string out(sodium_base64_encoded_len(bytes.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), variant);
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::optional<std::string> from_base64(std::string_view b64) {
  std::string out(b64.size() / 4 * 3 + 3, '\0');
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), b64.data(),
                        b64.size(), nullptr, &len, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != b64.data() + b64.size())
    return std::nullopt;
  out.resize(len);
  return out;
}

std::string blake2b(std::string_view a, std::string_view b) {
  const RawHash h = blake2b_raw(a, b);
  return std::string(h.data(), h.size());
}

std::string blake2b_hex(std::string_view a, std::string_view b) {
  return to_hex(blake2b(a, b));
}

RawHash blake2b_raw(std::string_view a, std::string_view b, std::string_view c) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, kHashBytes);
  for (std::string_view part : {a, b, c})
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(part.data()),
                              part.size());
  RawHash out;
  crypto_generichash_final(&st, reinterpret_cast<unsigned char*>(out.data()), kHashBytes);
  return out;
}

std::string public_to_hex(std::string_view bytes) {
  std::string out(2 * bytes.size(), '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    const auto byte = static_cast<uint8_t>(bytes[i]);
    out[2 * i] = kHexDigits[byte >> 4];
    out[2 * i + 1] = kHexDigits[byte & 0x0f];
  }
  return out;
}

bool hash_from_hex(std::string_view hex, RawHash& out) {
  if (hex.size() != 2 * kHashBytes) return false;
  for (size_t i = 0; i < kHashBytes; ++i) {
    const uint8_t high = kHexValues[static_cast<uint8_t>(hex[2 * i])];
    const uint8_t low = kHexValues[static_cast<uint8_t>(hex[2 * i + 1])];
    if (high == kNotHex || low == kNotHex) return false;
    out[i] = static_cast<char>((high << 4) | low);
  }
  return true;
}

// sodium_base642bin's loop for the original variant with padding and nothing ignored, as
// from_base64 calls it (room for every byte, all input consumed), reading digits from a table.
std::optional<std::string> public_from_base64(std::string_view b64) {
  std::string out;
  out.reserve(b64.size() / 4 * 3 + 3);
  uint32_t acc = 0;
  size_t acc_len = 0;
  size_t pos = 0;
  for (; pos < b64.size(); ++pos) {
    const uint8_t d = kBase64Values[static_cast<uint8_t>(b64[pos])];
    if (d == kNotBase64) break;
    acc = (acc << 6) + d;
    acc_len += 6;
    if (acc_len >= 8) {
      acc_len -= 8;
      out.push_back(static_cast<char>((acc >> acc_len) & 0xff));
    }
  }
  if (acc_len > 4 || (acc & ((1u << acc_len) - 1u)) != 0) return std::nullopt;
  for (size_t padding = acc_len / 2; padding > 0; --padding, ++pos)
    if (pos >= b64.size() || b64[pos] != '=') return std::nullopt;
  if (pos != b64.size()) return std::nullopt;
  return out;
}

// to_base64's text (the original alphabet, padded), compared as it is made.
bool is_base64_of(std::string_view b64, std::string_view bytes) {
  constexpr char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (b64.size() != (bytes.size() + 2) / 3 * 4) return false;
  for (size_t i = 0, o = 0; i < bytes.size(); i += 3, o += 4) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t group = 0;
    for (size_t k = 0; k < 3; ++k)
      group = (group << 8) | (k < n ? static_cast<uint8_t>(bytes[i + k]) : 0u);
    for (size_t k = 0; k < 4; ++k) {
      const char want = k <= n ? kDigits[(group >> (18 - 6 * k)) & 0x3f] : '=';
      if (b64[o + k] != want) return false;
    }
  }
  return true;
}

bool is_blake2b_hex_of(std::string_view hex, std::string_view a, std::string_view b) {
  if (hex.size() != 2 * kHashBytes) return false;
  const RawHash h = blake2b_raw(a, b);
  for (size_t i = 0; i < kHashBytes; ++i) {
    const auto byte = static_cast<uint8_t>(h[i]);
    if (hex[2 * i] != kHexDigits[byte >> 4] || hex[2 * i + 1] != kHexDigits[byte & 0x0f])
      return false;
  }
  return true;
}

bool is_hash_hex(std::string_view s) {
  if (s.size() != 2 * kHashBytes) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool verify_signature(std::string_view message, std::string_view signature,
                      std::string_view public_key) {
  init_crypto();
  if (signature.size() != kSignatureBytes || public_key.size() != kPublicKeyBytes) return false;
  return crypto_sign_verify_detached(
             reinterpret_cast<const unsigned char*>(signature.data()),
             reinterpret_cast<const unsigned char*>(message.data()), message.size(),
             reinterpret_cast<const unsigned char*>(public_key.data())) == 0;
}

}  // namespace meshwork
