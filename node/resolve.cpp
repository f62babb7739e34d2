// Names to addresses; see resolve.h.
#include "node/resolve.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <memory>

namespace meshwork {

namespace {
constexpr size_t kResolveHostBytesMax = 253;  // the longest DNS name
}  // namespace

Result<std::string> resolve_ipv4(const std::string& host, std::string_view what) {
  const std::string flag(what);
  if (host.empty() || host.size() > kResolveHostBytesMax)
    return Status(Code::invalid, flag + " needs a host name or IPv4 address");
  in_addr literal{};
  if (inet_pton(AF_INET, host.c_str(), &literal) == 1) return host;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owned(found, &freeaddrinfo);
  if (rc != 0 || !found)
    return Status(Code::invalid, flag + ": cannot resolve '" + host + "' to an IPv4 address: " +
                                     (rc != 0 ? gai_strerror(rc) : "no address"));
  char text[INET_ADDRSTRLEN] = {};
  const auto* sin = reinterpret_cast<const sockaddr_in*>(found->ai_addr);
  inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text);
  return std::string(text);
}

Result<std::string> resolve_host_port(std::string_view host_port, std::string_view what) {
  const size_t colon = host_port.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return Status(Code::invalid,
                  std::string(what) + " must be HOST:PORT, got " + std::string(host_port));
  auto ip = resolve_ipv4(std::string(host_port.substr(0, colon)), what);
  if (!ip.is_ok()) return ip.status();
  return ip.value() + std::string(host_port.substr(colon));
}

bool is_wildcard_host(std::string_view host) {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]";
}

}  // namespace meshwork
