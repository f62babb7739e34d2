// Value types shared by the gossip modules: addresses, node metadata, member states.
//
// Thread-safety: plain values; no shared state.
// Invariants: an Address is IPv4 in host byte order; `port == 0` means "unset".
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace meshwork::gossip {

struct Address {
  uint32_t ip = 0;  // host byte order: 127.0.0.1 == 0x7f000001
  uint16_t port = 0;

  friend bool operator==(const Address&, const Address&) = default;
  friend auto operator<=>(const Address&, const Address&) = default;
};

// "127.0.0.1:7001".
std::string to_string(Address addr);
// Parses "a.b.c.d:port"; nullopt on anything else (no host names: resolving is the driver's job).
std::optional<Address> parse_address(std::string_view text);

// What a node tells the mesh about itself; carried in alive messages. Sizes are bounded by the
// codec (see codec.h: api_bytes_max, public_key_bytes_max, tags_count_max, ...).
struct NodeMeta {
  std::string api;         // e.g. "127.0.0.1:8001"
  std::string public_key;  // e.g. base64 Ed25519 key
  std::map<std::string, std::string> tags;

  friend bool operator==(const NodeMeta&, const NodeMeta&) = default;
};

enum class MemberState : uint8_t { alive = 0, suspect = 1, dead = 2, left = 3 };

std::string_view to_string(MemberState state);

}  // namespace meshwork::gossip
