// The peer wire protocol, without I/O: the handshake that opens a connection, the session keys it
// yields, and the sealed frames that follow (node/peer_transport.h moves them over TCP).
//
// Handshake. The connecting node (client) sends a Hello, the accepting node (server) answers with
// a Welcome; each is a u16 little-endian length and a body of at most kHandshakeBytesMax bytes:
//   "MWP1" u8 version u8 type(1 hello, 2 welcome) u8 |name| name [u8 |target| target]
//   public_key(32, Ed25519) kx_public(32, X25519, fresh for this connection) signature(64)
// The Hello names the member it means to reach (target) and is signed over
// "meshwork-peer-hello-v1" + its body up to the signature; the Welcome is signed over
// "meshwork-peer-welcome-v1" + BLAKE2b-256(the Hello's body) + its body up to the signature, so it
// answers that Hello and no other. Each side checks the other's public key against the one
// membership lists for that name (the caller does that: open_* check only the signature).
// Both then derive the session keys from the two fresh X25519 keys (libsodium's crypto_kx): a
// key per direction, new for every connection, so nothing recorded on one connection opens on
// another, and a stolen identity key does not open past traffic.
//
// Frames. u32 little-endian length L, then L bytes of ChaCha20-Poly1305 (IETF) ciphertext with
// its 16-byte tag; the associated data is the 4 length bytes, and the nonce is the frame's number
// on this connection in this direction (u64 little-endian, then 4 zero bytes), counted from 0.
// A frame that was replayed, reordered, truncated, altered or sent on another connection fails to
// open, and the connection is closed. The plaintext is u8 kind then:
//   messages  items: each a u32 little-endian length and that many bytes of encode_message
//   ack       u64: how many message frames the receiver has opened and handed on so far
//
// Thread-safety: pure functions; a FrameSealer or FrameOpener belongs to one connection's thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dht/messages.h"
#include "dht/result.h"
#include "node/crypto.h"

namespace meshwork {

inline constexpr std::string_view kPeerMagic = "MWP1";
inline constexpr uint8_t kPeerProtocolVersion = 1;
inline constexpr size_t kHandshakeLengthBytes = 2;
inline constexpr size_t kHandshakeBytesMax = 512;
inline constexpr size_t kKxKeyBytes = 32;
inline constexpr size_t kSessionKeyBytes = 32;
inline constexpr size_t kFrameHeaderBytes = 4;
inline constexpr size_t kFrameTagBytes = 16;
inline constexpr size_t kFrameItemHeaderBytes = 4;
inline constexpr size_t kFrameItemsMax = 4'096;
// The largest plaintext: the kind byte and one message of the largest size.
inline constexpr size_t kFramePlainBytesMax = 1 + kFrameItemHeaderBytes + kMessageBytesMax;
inline constexpr size_t kFrameBytesMax = kFrameHeaderBytes + kFramePlainBytesMax + kFrameTagBytes;

enum class FrameKind : uint8_t { messages = 1, ack = 2 };

struct HandshakeMessage {
  std::string name;
  std::string target;      // Hello only
  std::string public_key;  // raw Ed25519
  std::string kx_public;   // raw X25519
  std::string body;        // as received (the Welcome's signature covers the Hello's)
};

// A fresh X25519 key pair for one connection; the secret half is wiped when it goes.
struct KxKeyPair {
  KxKeyPair() = default;
  KxKeyPair(const KxKeyPair&) = default;
  KxKeyPair& operator=(const KxKeyPair&) = default;
  ~KxKeyPair();
  std::array<uint8_t, kKxKeyBytes> public_key{};
  std::array<uint8_t, kKxKeyBytes> secret_key{};
  [[nodiscard]] static KxKeyPair generate();
  void wipe();  // once the session keys are derived
  [[nodiscard]] std::string_view public_view() const {
    return {reinterpret_cast<const char*>(public_key.data()), public_key.size()};
  }
};

struct SessionKeys {
  std::array<uint8_t, kSessionKeyBytes> rx{}, tx{};
};

// A Hello or Welcome with its u16 length, ready to send.
[[nodiscard]] std::string make_hello(const Identity& key, std::string_view name,
                                     std::string_view target, const KxKeyPair& kx);
[[nodiscard]] std::string make_welcome(const Identity& key, std::string_view name,
                                       const KxKeyPair& kx, std::string_view hello_body);
// The body length a handshake message announces (its first two bytes); Code::malformed when it is
// 0 or over kHandshakeBytesMax.
[[nodiscard]] Result<size_t> handshake_body_bytes(std::string_view length_bytes);
// A Hello's or Welcome's body (without the length), parsed and its signature checked against the
// key it carries; Code::malformed or Code::unauthorized otherwise. Never reads past `body`.
[[nodiscard]] Result<HandshakeMessage> open_hello(std::string_view body);
[[nodiscard]] Result<HandshakeMessage> open_welcome(std::string_view body,
                                                    std::string_view hello_body);

// Session keys from this side's pair and the other side's X25519 key; nullopt for a bad key.
[[nodiscard]] std::optional<SessionKeys> client_session(const KxKeyPair& mine,
                                                        std::string_view server_kx_public);
[[nodiscard]] std::optional<SessionKeys> server_session(const KxKeyPair& mine,
                                                        std::string_view client_kx_public);

// Seals frames in order. Build a frame in place: begin() appends the header and the kind, the
// caller appends the payload, seal() encrypts it where it stands and appends the tag.
class FrameSealer {
 public:
  explicit FrameSealer(const std::array<uint8_t, kSessionKeyBytes>& key) : key_(key) {}
  [[nodiscard]] size_t begin(std::string& out, FrameKind kind) const;  // the frame's offset
  void seal(std::string& out, size_t frame_at);
  [[nodiscard]] uint64_t sealed() const { return next_; }

 private:
  std::array<uint8_t, kSessionKeyBytes> key_;
  uint64_t next_ = 0;
};

struct Frame {
  FrameKind kind = FrameKind::messages;
  std::string_view payload;  // into the opened buffer
};

// Opens frames in order.
class FrameOpener {
 public:
  explicit FrameOpener(const std::array<uint8_t, kSessionKeyBytes>& key) : key_(key) {}
  // How many bytes the frame at the front of `data` needs in all (header included): 0 while fewer
  // than kFrameHeaderBytes are there; Code::malformed or Code::too_large for a bad length.
  [[nodiscard]] static Result<size_t> frame_bytes(std::string_view data);
  // Opens the frame at the front of `data` (which holds at least frame_bytes() bytes), in place;
  // Code::unauthorized when it does not authenticate as the next frame, Code::malformed for an
  // unknown kind. The payload views into `data`.
  [[nodiscard]] Result<Frame> open(char* data, size_t size);
  [[nodiscard]] uint64_t opened() const { return next_; }

 private:
  std::array<uint8_t, kSessionKeyBytes> key_;
  uint64_t next_ = 0;
};

// Message items (the payload of a messages frame).
void append_item(std::string& out, std::string_view message);
// The items of a payload, viewing into it; Code::malformed unless it is exactly a sequence of
// length-prefixed items (at least one), Code::too_large past `items_max`. Never reads past it.
[[nodiscard]] Result<std::vector<std::string_view>> parse_items(std::string_view payload,
                                                                size_t items_max);
// The u64 of an ack frame's payload; Code::malformed unless it is exactly 8 bytes.
[[nodiscard]] Result<uint64_t> parse_ack(std::string_view payload);
void append_ack(std::string& out, uint64_t frames);

}  // namespace meshwork
