#include "gossip/types.h"

#include <charconv>

namespace meshwork::gossip {

std::string to_string(Address addr) {
  std::string out;
  for (int shift = 24; shift >= 0; shift -= 8) {
    out += std::to_string((addr.ip >> shift) & 0xffu);
    out += shift == 0 ? ':' : '.';
  }
  out += std::to_string(addr.port);
  return out;
}

namespace {

// Parses a decimal number in [0, max] that fills `text` exactly.
std::optional<uint32_t> parse_number(std::string_view text, uint32_t max) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  uint32_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || ptr != text.data() + text.size() || value > max) return std::nullopt;
  return value;
}

}  // namespace

std::optional<Address> parse_address(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const auto port = parse_number(text.substr(colon + 1), 65535);
  if (!port) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  uint32_t ip = 0;
  for (int part = 0; part < 4; ++part) {
    const auto dot = host.find('.');
    if ((dot == std::string_view::npos) != (part == 3)) return std::nullopt;
    const auto octet = parse_number(host.substr(0, dot), 255);
    if (!octet) return std::nullopt;
    ip = (ip << 8) | *octet;
    host = dot == std::string_view::npos ? std::string_view{} : host.substr(dot + 1);
  }
  return Address{ip, static_cast<uint16_t>(*port)};
}

std::string_view to_string(MemberState state) {
  switch (state) {
    case MemberState::alive:
      return "alive";
    case MemberState::suspect:
      return "suspect";
    case MemberState::dead:
      return "dead";
    case MemberState::left:
      return "left";
  }
  return "unknown";
}

}  // namespace meshwork::gossip
