// Names to addresses for what a node is told at start: the hosts in --join and --advertise.
//
// Gossip addresses are IPv4 (gossip/types.h), so a host name resolves to its first IPv4 address,
// once, when the node starts. A literal IPv4 address is taken as it is, without a lookup.
// Thread-safety: pure apart from the system resolver, which is thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "dht/result.h"

namespace meshwork {

// "host:port" → "a.b.c.d:port"; `what` names the flag in the error ("--join").
[[nodiscard]] Result<std::string> resolve_host_port(std::string_view host_port,
                                                    std::string_view what);
// "host" → "a.b.c.d".
[[nodiscard]] Result<std::string> resolve_ipv4(const std::string& host, std::string_view what);
// True for a host that means "every interface" (0.0.0.0, ::, or nothing): never an address that
// other nodes can use.
[[nodiscard]] bool is_wildcard_host(std::string_view host);

}  // namespace meshwork
