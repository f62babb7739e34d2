// Crypto primitives over libsodium; see crypto.h.
#include "node/crypto.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace meshwork {

std::string random_bytes(size_t n) {
  init_crypto();
  std::string out(n, '\0');
  randombytes_buf(out.data(), n);
  return out;
}

Identity Identity::generate() {
  init_crypto();
  Identity id;
  unsigned char pk[kPublicKeyBytes];
  crypto_sign_keypair(pk, id.secret_.data());
  return id;
}

Result<Identity> Identity::load(const std::string& path) {
  init_crypto();
  std::ifstream in(path, std::ios::binary);
  if (!in) return Result<Identity>(Code::io_error, "cannot read key file " + path);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() != kSecretKeyBytes)
    return Result<Identity>(Code::corruption, "key file " + path + " is not a 64-byte Ed25519 key");
  Identity id;
  std::memcpy(id.secret_.data(), bytes.data(), kSecretKeyBytes);
  // The last 32 bytes must be the public key derived from the seed in the first 32.
  unsigned char pk[kPublicKeyBytes];
  crypto_sign_ed25519_sk_to_pk(pk, id.secret_.data());
  unsigned char seed_pk[kPublicKeyBytes], seed_sk[kSecretKeyBytes];
  crypto_sign_seed_keypair(seed_pk, seed_sk, id.secret_.data());
  if (std::memcmp(pk, seed_pk, kPublicKeyBytes) != 0)
    return Result<Identity>(Code::corruption, "key file " + path + " is inconsistent");
  return id;
}

Result<Identity> Identity::load_or_create(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return load(path);
  Identity id = generate();
  if (auto s = id.save(path); !s.is_ok()) return s;
  return id;
}

Status Identity::save(const std::string& path) const {
  return write_secret_file(
      path, std::string_view(reinterpret_cast<const char*>(secret_.data()), secret_.size()));
}

std::string Identity::sign(std::string_view message) const {
  std::string sig(kSignatureBytes, '\0');
  crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr,
                       reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                       secret_.data());
  return sig;
}

std::string Identity::public_key() const {
  std::string pk(kPublicKeyBytes, '\0');
  crypto_sign_ed25519_sk_to_pk(reinterpret_cast<unsigned char*>(pk.data()), secret_.data());
  return pk;
}

std::optional<std::string> Identity::shared_secret(std::string_view peer_public_key) const {
  if (peer_public_key.size() != kPublicKeyBytes) return std::nullopt;
  unsigned char peer_curve[crypto_scalarmult_BYTES], own_curve[crypto_scalarmult_SCALARBYTES];
  if (crypto_sign_ed25519_pk_to_curve25519(
          peer_curve, reinterpret_cast<const unsigned char*>(peer_public_key.data())) != 0)
    return std::nullopt;
  if (crypto_sign_ed25519_sk_to_curve25519(own_curve, secret_.data()) != 0) return std::nullopt;
  std::string out(crypto_scalarmult_BYTES, '\0');
  const int rc =
      crypto_scalarmult(reinterpret_cast<unsigned char*>(out.data()), own_curve, peer_curve);
  sodium_memzero(own_curve, sizeof own_curve);
  if (rc != 0) return std::nullopt;  // all-zero output: a low-order point
  return out;
}

Status write_secret_file(const std::string& path, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return {Code::io_error, "cannot create " + path + ": " + std::strerror(errno)};
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return {Code::io_error, "cannot write " + path + ": " + std::strerror(errno)};
    }
    done += static_cast<size_t>(n);
  }
  bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) return {Code::io_error, "cannot fsync " + path};
  return Status::ok();
}

}  // namespace meshwork
