// HTTPS for the public API: a cpp-httplib SSLServer whose TLS context holds the node's certificate
// chain and private key (PEM files, `meshwork node --tls-cert FILE --tls-key FILE`).
//
// The files are read once, at start: an unreadable or malformed certificate or key, or a key that
// does not match the certificate, is an error that names the file and OpenSSL's reason, before any
// socket is bound. TLS 1.2 is the oldest version offered. A connection whose handshake fails (plain
// HTTP or random bytes sent to the port) is closed by cpp-httplib on its own worker; nothing else
// is affected.
//
// Thread-safety: https_server() from any thread; the server it returns is the caller's.
#pragma once

#include <memory>
#include <string>

#include <httplib.h>

#include "dht/result.h"

namespace meshwork::api {

// An SSLServer serving with `cert_file` (the leaf first, then any intermediates) and `key_file`.
[[nodiscard]] Result<std::unique_ptr<httplib::Server>> https_server(const std::string& cert_file,
                                                                    const std::string& key_file);

// Ok when `ca_file` holds at least one PEM certificate OpenSSL can use to verify peers.
[[nodiscard]] Status check_ca_file(const std::string& ca_file);

}  // namespace meshwork::api
