#include "gossip/seal.h"

#include <sodium.h>

#include <cassert>
#include <cctype>

namespace meshwork::gossip {

namespace {

void init_sodium() {
  // sodium_init is idempotent and thread-safe; failure means no usable CSPRNG: a bug to stop on.
  [[maybe_unused]] const int rc = sodium_init();
  assert(rc >= 0);
}

}  // namespace

Keyring::Keyring(std::vector<Key> keys) : keys_(std::move(keys)) {
  init_sodium();
  if (keys_.size() > keyring_keys_max) keys_.resize(keyring_keys_max);
}

std::optional<Key> Keyring::key_from_hex(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  if (text.size() != 2 * key_bytes) return std::nullopt;
  Key key{};
  std::size_t len = 0;
  if (sodium_hex2bin(key.data(), key.size(), text.data(), text.size(), nullptr, &len, nullptr) !=
          0 ||
      len != key_bytes) {
    return std::nullopt;
  }
  return key;
}

void seal(const Keyring& keyring, std::span<const uint8_t> plain, std::vector<uint8_t>& out) {
  assert(!keyring.empty());
  assert(plain.size() <= sealed_plaintext_bytes_max);
  const std::size_t start = out.size();
  out.resize(start + seal_overhead_bytes + plain.size());
  uint8_t* header = out.data() + start;
  header[0] = seal_version;
  uint8_t* nonce = header + 1;
  randombytes_buf(nonce, nonce_bytes);
  unsigned long long written = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + nonce_bytes, &written, plain.data(),
                                             plain.size(), header, 1, nullptr, nonce,
                                             keyring.keys().front().data());
  assert(written == plain.size() + tag_bytes);
}

bool open(const Keyring& keyring, std::span<const uint8_t> sealed, std::vector<uint8_t>& out) {
  out.clear();
  if (sealed.size() < seal_overhead_bytes || sealed.size() > packet_bytes_max ||
      sealed[0] != seal_version) {
    return false;
  }
  const uint8_t* nonce = sealed.data() + 1;
  const uint8_t* cipher = nonce + nonce_bytes;
  const std::size_t cipher_len = sealed.size() - 1 - nonce_bytes;
  out.resize(cipher_len - tag_bytes);
  for (const Key& key : keyring.keys()) {
    unsigned long long len = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out.data(), &len, nullptr, cipher, cipher_len,
                                                   sealed.data(), 1, nonce, key.data()) == 0) {
      out.resize(len);
      return true;
    }
  }
  out.clear();
  return false;
}

}  // namespace meshwork::gossip
