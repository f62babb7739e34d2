// Signed client requests; see client_auth.h.
#include "node/client_auth.h"

#include "node/check.h"
#include "node/decimal.h"

namespace meshwork {
namespace {

static_assert(kClientKeyHeaderBytesMax == (kPublicKeyBytes + 2) / 3 * 4);
static_assert(kClientSignatureHeaderBytesMax == (kSignatureBytes + 2) / 3 * 4);

Status malformed(std::string why) {
  return {Code::malformed, "signed request: " + std::move(why)};
}

// The raw bytes of a base64 header value that must decode to exactly `bytes`.
std::optional<std::string> decode_exact(std::string_view b64, size_t bytes) {
  auto raw = from_base64(b64);
  if (!raw || raw->size() != bytes) return std::nullopt;
  return raw;
}

std::optional<std::string> header(const httplib::Request& req, const char* name, bool& repeated) {
  const size_t n = req.get_header_value_count(name);
  if (n == 0) return std::nullopt;
  if (n > 1) repeated = true;
  return req.headers.find(name)->second;
}

}  // namespace

std::string client_request_message(std::string_view action, std::string_view job_id,
                                   uint64_t time_ms) {
  std::string m = "meshwork-request-v1\n";
  m.append(action).append("\n").append(job_id).append("\n").append(std::to_string(time_ms));
  return m;
}

httplib::Headers client_request_headers(const Identity& key, std::string_view action,
                                        std::string_view job_id, uint64_t now_ms) {
  return {{kClientKeyHeader, key.public_key_b64()},
          {kClientTimeHeader, std::to_string(now_ms)},
          {kClientSignatureHeader,
           to_base64(key.sign(client_request_message(action, job_id, now_ms)))}};
}

ClientAuthHeaders client_auth_headers(const httplib::Request& req) {
  ClientAuthHeaders h;
  h.key = header(req, kClientKeyHeader, h.repeated);
  h.time = header(req, kClientTimeHeader, h.repeated);
  h.signature = header(req, kClientSignatureHeader, h.repeated);
  return h;
}

Result<std::optional<ClientSignature>> parse_client_signature(const ClientAuthHeaders& h) {
  if (!h.key && !h.time && !h.signature) return std::optional<ClientSignature>();
  if (h.repeated)
    return malformed(std::string("each of ") + kClientKeyHeader + ", " + kClientTimeHeader +
                     " and " + kClientSignatureHeader + " may appear once");
  if (!h.key || !h.time || !h.signature)
    return malformed(std::string("a signed request needs all three headers ") + kClientKeyHeader +
                     ", " + kClientTimeHeader + " and " + kClientSignatureHeader);
  ClientSignature s;
  auto key = h.key->size() <= kClientKeyHeaderBytesMax ? decode_exact(*h.key, kPublicKeyBytes)
                                                       : std::nullopt;
  if (!key)
    return malformed(std::string(kClientKeyHeader) +
                     " must be the base64 of a 32-byte Ed25519 public key");
  auto sig = h.signature->size() <= kClientSignatureHeaderBytesMax
                 ? decode_exact(*h.signature, kSignatureBytes)
                 : std::nullopt;
  if (!sig)
    return malformed(std::string(kClientSignatureHeader) +
                     " must be the base64 of a 64-byte Ed25519 signature");
  auto time = h.time->size() <= kClientTimeHeaderBytesMax ? parse_decimal(*h.time) : std::nullopt;
  if (!time)
    return malformed(std::string(kClientTimeHeader) +
                     " must be the time in ms since the epoch, in decimal digits");
  s.public_key = std::move(*key);
  s.signature = std::move(*sig);
  s.time_ms = *time;
  return std::optional<ClientSignature>(std::move(s));
}

Status verify_client_signature(const ClientSignature& s, std::string_view action,
                               std::string_view job_id, uint64_t now_ms) {
  const uint64_t skew_ms = s.time_ms > now_ms ? s.time_ms - now_ms : now_ms - s.time_ms;
  if (skew_ms > kClientRequestSkewMsMax)
    return {Code::unauthorized, std::string("signed request: ") + kClientTimeHeader + " is " +
                                    std::to_string(skew_ms / 1000) +
                                    " s from the node's clock (at most " +
                                    std::to_string(kClientRequestSkewMsMax / 1000) +
                                    " s allowed): sign the request again"};
  if (!verify_signature(client_request_message(action, job_id, s.time_ms), s.signature,
                        s.public_key))
    return {Code::unauthorized, "signed request: the signature does not verify over \"" +
                                    std::string(action) + "\", the job id and the time"};
  return Status::ok();
}

Status authorize_job_request(const std::optional<ClientSignature>& s, std::string_view job_key,
                             bool job_open, const std::set<std::string>& admin_keys) {
  if (job_open) return Status::ok();
  if (s && (s->public_key == job_key || admin_keys.contains(s->public_key))) return Status::ok();
  if (!s)
    return {Code::forbidden, std::string("this job was signed by a client: the request must be "
                                         "signed by the job's key or an admin key (headers ") +
                                 kClientKeyHeader + ", " + kClientTimeHeader + ", " +
                                 kClientSignatureHeader + ")"};
  return {Code::forbidden, "the request is signed by " + to_base64(s->public_key) +
                               ", which is neither the job's key nor an admin key"};
}

ReplayGuard::ReplayGuard(size_t entries_max) : entries_max_(entries_max) {
  MESHWORK_CHECK(entries_max_ >= 1);
}

bool ReplayGuard::first_use(const ClientSignature& s, std::string_view action,
                            std::string_view job_id, uint64_t now_ms) {
  while (!expiry_.empty() && expiry_.begin()->first < now_ms) {
    seen_.erase(expiry_.begin()->second);
    expiry_.erase(expiry_.begin());
  }
  std::string digest = blake2b(client_request_message(action, job_id, s.time_ms), s.public_key);
  if (seen_.contains(digest)) return false;
  if (seen_.size() == entries_max_) {
    seen_.erase(expiry_.begin()->second);
    expiry_.erase(expiry_.begin());
  }
  const uint64_t expires_ms = s.time_ms > UINT64_MAX - kClientRequestSkewMsMax
                                  ? UINT64_MAX
                                  : s.time_ms + kClientRequestSkewMsMax;
  expiry_.emplace(expires_ms, digest);
  seen_.emplace(std::move(digest), expires_ms);
  MESHWORK_CHECK(seen_.size() == expiry_.size() && seen_.size() <= entries_max_);
  return true;
}

}  // namespace meshwork
