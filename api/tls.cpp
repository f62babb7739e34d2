// HTTPS for the public API; see tls.h.
#include "api/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace meshwork::api {
namespace {

// OpenSSL's most recent error for this thread, as text, and clears its queue.
std::string openssl_reason() {
  unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  const char* reason = ERR_reason_error_string(e);
  return reason ? reason : "error " + std::to_string(e);
}

// Loads the chain and the key into `ctx`; on failure says why in `error`.
bool load_identity(SSL_CTX& ctx, const std::string& cert_file, const std::string& key_file,
                   std::string& error) {
  ERR_clear_error();
  SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(&ctx, cert_file.c_str()) != 1) {
    error = "cannot use --tls-cert " + cert_file + ": " + openssl_reason();
    return false;
  }
  const std::string mismatch = "--tls-key " + key_file + " does not match --tls-cert " + cert_file;
  if (SSL_CTX_use_PrivateKey_file(&ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    const bool other_key = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
    error = other_key ? mismatch : "cannot use --tls-key " + key_file + ": " + openssl_reason();
    ERR_clear_error();
    return false;
  }
  if (SSL_CTX_check_private_key(&ctx) != 1) {
    error = mismatch + ": " + openssl_reason();
    return false;
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<httplib::Server>> https_server(const std::string& cert_file,
                                                      const std::string& key_file) {
  std::string error;
  auto server = std::make_unique<httplib::SSLServer>(
      [&](SSL_CTX& ctx) { return load_identity(ctx, cert_file, key_file, error); });
  if (!server->is_valid())
    return Status(Code::invalid, error.empty() ? "cannot create a TLS context" : error);
  return std::unique_ptr<httplib::Server>(std::move(server));
}

Status check_ca_file(const std::string& ca_file) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        &SSL_CTX_free);
  ERR_clear_error();
  if (!ctx || SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr) != 1)
    return {Code::invalid, "cannot use --tls-ca " + ca_file + ": " + openssl_reason()};
  return Status::ok();
}

}  // namespace meshwork::api
