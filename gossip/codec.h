// Versioned binary codec for gossip packets (wire format in docs/protocol.md).
//
//   packet  := version:u8 message{1..messages_per_packet_max}
//   message := type:u8 length:u16be body[length]
//
// Integers are big-endian; strings are u8 length + bytes. Unknown message types are skipped so a
// newer peer can add messages without breaking older ones.
//
// Thread-safety: stateless free functions.
// Invariants: decode never reads past its input, never throws, and allocates at most
// O(packet_bytes_max) (every length is bounded by a named limit below). encode_* appends to the
// caller's buffer; a message that would break a limit is rejected with `false`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "gossip/types.h"

namespace meshwork::gossip {

inline constexpr std::size_t packet_bytes_max = 1400;  // whole UDP payload, sealed or not
inline constexpr uint8_t wire_version = 1;
inline constexpr std::size_t message_header_bytes = 3;  // type:u8 + length:u16
inline constexpr std::size_t messages_per_packet_max = 128;
inline constexpr std::size_t name_bytes_max = 64;
inline constexpr std::size_t api_bytes_max = 128;
inline constexpr std::size_t public_key_bytes_max = 128;
inline constexpr std::size_t tags_count_max = 16;
inline constexpr std::size_t tag_key_bytes_max = 32;
inline constexpr std::size_t tag_value_bytes_max = 128;
inline constexpr std::size_t meta_bytes_max = 640;  // encoded api + public_key + tags
inline constexpr std::size_t address_bytes = 6;
// Largest encoded alive message: header + name + incarnation + address + meta.
inline constexpr std::size_t alive_bytes_max =
    message_header_bytes + 1 + name_bytes_max + 8 + address_bytes + meta_bytes_max;

static_assert(api_bytes_max <= 255 && public_key_bytes_max <= 255 && name_bytes_max <= 255,
              "strings carry a u8 length");
static_assert(tag_key_bytes_max <= 255 && tag_value_bytes_max <= 255 && tags_count_max <= 255);
static_assert(meta_bytes_max >= 2 + api_bytes_max + public_key_bytes_max + 1,
              "api and public key always fit next to a few tags");
static_assert(packet_bytes_max <= 0xffff, "a message length is a u16");
// A push-pull chunk (header + one alive) must fit in a sealed packet; checked again in seal.h.
static_assert(1 + 2 * message_header_bytes + 7 + alive_bytes_max + 64 <= packet_bytes_max);

enum class MessageType : uint8_t {
  ping = 1,
  ack = 2,
  nack = 3,
  ping_req = 4,
  alive = 5,
  suspect = 6,
  dead = 7,
  left = 8,
  push_pull = 9,
  sender = 10,
};

struct Ping {
  uint32_t seq = 0;
  std::string target;  // the name the prober expects; a node with another name stays silent

  friend bool operator==(const Ping&, const Ping&) = default;
};
struct Ack {
  uint32_t seq = 0;

  friend bool operator==(const Ack&, const Ack&) = default;
};
struct Nack {
  uint32_t seq = 0;

  friend bool operator==(const Nack&, const Nack&) = default;
};
struct PingReq {
  uint32_t seq = 0;
  std::string target;
  Address target_addr;

  friend bool operator==(const PingReq&, const PingReq&) = default;
};
struct Alive {
  std::string name;
  uint64_t incarnation = 0;
  Address addr;
  NodeMeta meta;

  friend bool operator==(const Alive&, const Alive&) = default;
};
struct Suspect {
  std::string name;
  uint64_t incarnation = 0;
  std::string from;  // who suspects: confirmations count distinct `from`s

  friend bool operator==(const Suspect&, const Suspect&) = default;
};
struct Dead {
  std::string name;
  uint64_t incarnation = 0;
  std::string from;

  friend bool operator==(const Dead&, const Dead&) = default;
};
struct Left {
  std::string name;
  uint64_t incarnation = 0;

  friend bool operator==(const Left&, const Left&) = default;
};
// Opens every packet of a push-pull exchange; the member records follow as alive/suspect/dead/left.
struct PushPull {
  bool request = false;  // true: "here is my state, send me yours"
  uint32_t seq = 0;
  uint16_t chunk = 0;  // index of this packet within the exchange; replies are sent for chunk 0

  friend bool operator==(const PushPull&, const PushPull&) = default;
};

// Names the node that sent the packet. It rides with every ping, so that a node pinged by a member
// it does not know (it missed that member's join) can pull the member's state (docs/protocol.md,
// "Missed joins"). A peer that predates it skips it as an unknown type.
struct Sender {
  std::string name;

  friend bool operator==(const Sender&, const Sender&) = default;
};

// The alternatives are in MessageType order: a message's type is its index + 1.
using Message =
    std::variant<Ping, Ack, Nack, PingReq, Alive, Suspect, Dead, Left, PushPull, Sender>;
static_assert(std::variant_size_v<Message> == static_cast<std::size_t>(MessageType::sender));

enum class DecodeStatus : uint8_t {
  ok,
  empty,
  bad_version,
  truncated,  // a length runs past the end
  too_long,   // a string or the packet exceeds its limit
  too_many,   // more messages or tags than allowed
  bad_value,  // e.g. empty name, duplicate tag, trailing bytes inside a message
};

std::string_view to_string(DecodeStatus status);

// True when `meta` respects every size limit (what encode and decode enforce).
bool meta_fits(const NodeMeta& meta);

// Appends `message` (header + body) to `out`. Returns false, leaving `out` unchanged, when a field
// breaks a limit.
[[nodiscard]] bool encode(const Message& message, std::vector<uint8_t>& out);

// Decodes a whole plaintext packet into `out` (cleared first). On error `out` is unspecified.
[[nodiscard]] DecodeStatus decode_packet(std::span<const uint8_t> bytes, std::vector<Message>& out);

}  // namespace meshwork::gossip
