// Signing and verifying peer requests; see peer_auth.h.
#include "node/peer_auth.h"

#include <sodium.h>

#include "gossip/codec.h"
#include "node/decimal.h"

namespace meshwork {
namespace {

static_assert(kPeerNodeNameBytesMax == gossip::name_bytes_max);
static_assert(kPeerSignatureHeaderBytesMax == (kSignatureBytes + 2) / 3 * 4);
static_assert(kPeerMacHeaderBytesMax == (kPeerMacBytes + 2) / 3 * 4);
static_assert(kPeerMacBytes == crypto_generichash_BYTES);

// BLAKE2b-256 of `message` keyed with `key`.
std::string mac_of(const std::string& key, std::string_view message) {
  std::string out(kPeerMacBytes, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(out.data()), out.size(),
                     reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                     reinterpret_cast<const unsigned char*>(key.data()), key.size());
  return out;
}

Status refuse(std::string why) {
  return Status(Code::unauthorized, "peer auth: " + std::move(why));
}

// The single value of header `name`, at most `bytes_max` long; nullopt when missing, repeated,
// empty or too long.
std::optional<std::string> one_header(const httplib::Request& req, const char* name,
                                      size_t bytes_max) {
  if (req.get_header_value_count(name) != 1) return std::nullopt;
  auto it = req.headers.find(name);
  if (it->second.empty() || it->second.size() > bytes_max) return std::nullopt;
  return it->second;
}

// A name safe to put in a message: printable ASCII kept, anything else replaced.
std::string printable(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c < 0x20 || c > 0x7e) c = '?';
  return out;
}

}  // namespace

std::string peer_auth_message(std::string_view method, std::string_view path, uint64_t time_ms,
                              std::string_view body) {
  std::string m = "meshwork-peer-v1\n";
  m.append(method).append("\n").append(path).append("\n");
  m.append(std::to_string(time_ms)).append("\n").append(blake2b_hex(body));
  return m;
}

std::string peer_mac_message(std::string_view method, std::string_view path, uint64_t time_ms,
                             std::string_view body, std::string_view from, std::string_view to) {
  std::string m = peer_auth_message(method, path, time_ms, body);
  m.append("\n").append(from).append("\n").append(to);
  return m;
}

PeerMacKeys::PeerMacKeys(const Identity& key) : key_(key), public_key_(key.public_key()) {}

std::optional<std::string> PeerMacKeys::key_for(const std::string& peer_public_key) const {
  {
    std::lock_guard lk(mu_);
    if (auto it = cache_.find(peer_public_key); it != cache_.end()) return it->second;
  }
  auto shared = key_.shared_secret(peer_public_key);
  if (!shared) return std::nullopt;
  const bool own_first = public_key_ < peer_public_key;
  std::string input = "meshwork-peer-mac-v1";
  input.append(*shared);
  input.append(own_first ? public_key_ : peer_public_key);
  input.append(own_first ? peer_public_key : public_key_);
  std::string pair = blake2b(input);
  sodium_memzero(shared->data(), shared->size());
  sodium_memzero(input.data(), input.size());
  std::lock_guard lk(mu_);
  if (cache_.size() >= kPeerMacKeysMax) cache_.clear();
  cache_.emplace(peer_public_key, pair);
  return pair;
}

httplib::Headers peer_mac_headers(const std::string& pair_key, const std::string& self,
                                  std::string_view to, std::string_view method,
                                  std::string_view path, std::string_view body, uint64_t now_ms) {
  return {{kPeerNodeHeader, self},
          {kPeerTimeHeader, std::to_string(now_ms)},
          {kPeerMacHeader,
           to_base64(mac_of(pair_key, peer_mac_message(method, path, now_ms, body, self, to)))}};
}

httplib::Headers peer_auth_headers(const Identity& key, const std::string& self,
                                   std::string_view method, std::string_view path,
                                   std::string_view body, uint64_t now_ms) {
  std::string signature = key.sign(peer_auth_message(method, path, now_ms, body));
  return {{kPeerNodeHeader, self},
          {kPeerTimeHeader, std::to_string(now_ms)},
          {kPeerSignatureHeader, to_base64(signature)}};
}

Result<std::string> verify_peer_request(const httplib::Request& req, const PeerKeyLookup& key_of,
                                        uint64_t now_ms, const PeerMacKeys* macs,
                                        std::string_view self) {
  auto node = one_header(req, kPeerNodeHeader, kPeerNodeNameBytesMax);
  auto time_text = one_header(req, kPeerTimeHeader, kPeerTimeHeaderBytesMax);
  const bool has_mac = req.has_header(kPeerMacHeader);
  const bool has_sig = req.has_header(kPeerSignatureHeader);
  if (has_mac && has_sig)
    return refuse(std::string("both ") + kPeerMacHeader + " and " + kPeerSignatureHeader);
  auto proof_text = has_mac ? one_header(req, kPeerMacHeader, kPeerMacHeaderBytesMax)
                            : one_header(req, kPeerSignatureHeader, kPeerSignatureHeaderBytesMax);
  if (!node || !time_text || !proof_text)
    return refuse(std::string("missing or malformed ") + kPeerNodeHeader + ", " + kPeerTimeHeader +
                  " or " + kPeerSignatureHeader + "/" + kPeerMacHeader + " header");
  auto time_ms = parse_decimal(*time_text);
  if (!time_ms) return refuse(std::string(kPeerTimeHeader) + " is not a decimal number");
  uint64_t skew_ms = *time_ms > now_ms ? *time_ms - now_ms : now_ms - *time_ms;
  if (skew_ms > kPeerClockSkewMsMax)
    return refuse("request time is " + std::to_string(skew_ms) + " ms from ours (at most " +
                  std::to_string(kPeerClockSkewMsMax) + " ms allowed)");
  auto proof = from_base64(*proof_text);
  if (has_mac && (!proof || proof->size() != kPeerMacBytes))
    return refuse(std::string(kPeerMacHeader) + " is not a base64 32-byte MAC");
  if (!has_mac && (!proof || proof->size() != kSignatureBytes))
    return refuse(std::string(kPeerSignatureHeader) + " is not a base64 Ed25519 signature");
  auto key = key_of(*node);
  if (!key) return refuse("unknown node '" + printable(*node) + "'");
  if (key->size() != kPublicKeyBytes)
    return refuse("node '" + printable(*node) + "' has no usable public key");
  if (has_mac) {
    if (!macs) return refuse("this endpoint takes only signed requests");
    auto pair = macs->key_for(*key);
    if (!pair) return refuse("node '" + printable(*node) + "' has no usable public key");
    const std::string expect =
        mac_of(*pair, peer_mac_message(req.method, req.path, *time_ms, req.body, *node, self));
    if (sodium_memcmp(expect.data(), proof->data(), kPeerMacBytes) != 0)
      return refuse("bad MAC from node '" + printable(*node) + "'");
    return std::move(*node);
  }
  if (!verify_signature(peer_auth_message(req.method, req.path, *time_ms, req.body), *proof, *key))
    return refuse("bad signature from node '" + printable(*node) + "'");
  return std::move(*node);
}

}  // namespace meshwork
