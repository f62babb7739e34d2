// The peer wire protocol; see peer_frame.h.
#include "node/peer_frame.h"

#include <sodium.h>

#include <cstring>

#include "node/check.h"

namespace meshwork {
namespace {

constexpr std::string_view kHelloContext = "meshwork-peer-hello-v1";
constexpr std::string_view kWelcomeContext = "meshwork-peer-welcome-v1";
constexpr uint8_t kHelloType = 1;
constexpr uint8_t kWelcomeType = 2;

static_assert(kSessionKeyBytes == crypto_kx_SESSIONKEYBYTES);
static_assert(kKxKeyBytes == crypto_kx_PUBLICKEYBYTES && kKxKeyBytes == crypto_kx_SECRETKEYBYTES);
static_assert(kFrameTagBytes == crypto_aead_chacha20poly1305_IETF_ABYTES);
static_assert(crypto_aead_chacha20poly1305_IETF_NPUBBYTES == 12);
static_assert(crypto_aead_chacha20poly1305_IETF_KEYBYTES == kSessionKeyBytes);
static_assert(kFrameBytesMax <= UINT32_MAX);
static_assert(kHandshakeBytesMax <= UINT16_MAX);

void put_u32(char* at, uint32_t v) {
  for (int i = 0; i < 4; ++i) at[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint32_t get_u32(const char* at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(static_cast<uint8_t>(at[i])) << (8 * i);
  return v;
}

std::array<uint8_t, 12> nonce_of(uint64_t n) {
  std::array<uint8_t, 12> nonce{};
  for (int i = 0; i < 8; ++i) nonce[size_t(i)] = static_cast<uint8_t>((n >> (8 * i)) & 0xff);
  return nonce;
}

void put_short(std::string& out, std::string_view s) {
  MESHWORK_CHECK(s.size() <= 255);
  out.push_back(static_cast<char>(s.size()));
  out.append(s);
}

// Body up to the signature, with the signature over context [+ extra] + that, and the length.
std::string finish_handshake(const Identity& key, std::string body, std::string_view context,
                             std::string_view extra) {
  std::string signed_part(context);
  signed_part.append(extra);
  signed_part.append(body);
  body.append(key.sign(signed_part));
  MESHWORK_CHECK(body.size() <= kHandshakeBytesMax);
  std::string out;
  out.push_back(static_cast<char>(body.size() & 0xff));
  out.push_back(static_cast<char>(body.size() >> 8));
  out.append(body);
  return out;
}

std::string handshake_head(uint8_t type, std::string_view name) {
  std::string body(kPeerMagic);
  body.push_back(static_cast<char>(kPeerProtocolVersion));
  body.push_back(static_cast<char>(type));
  put_short(body, name);
  return body;
}

// Bounded reads over a handshake body.
struct Reader {
  std::string_view in;
  size_t at = 0;
  bool ok = true;
  std::string_view take(size_t n) {
    if (!ok || in.size() - at < n) {
      ok = false;
      return {};
    }
    std::string_view v = in.substr(at, n);
    at += n;
    return v;
  }
  std::string_view take_short() {
    const std::string_view n = take(1);
    return ok ? take(static_cast<uint8_t>(n[0])) : std::string_view();
  }
};

bool plain_name(std::string_view s) {
  if (s.empty() || s.size() > kNodeNameBytesMax) return false;
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e) return false;
  return true;
}

Result<HandshakeMessage> open_handshake(std::string_view body, uint8_t type,
                                        std::string_view context, std::string_view extra) {
  const char* what = type == kHelloType ? "hello" : "welcome";
  auto malformed = [&](const char* why) {
    return Status(Code::malformed, std::string("peer ") + what + ": " + why);
  };
  if (body.size() > kHandshakeBytesMax) return malformed("too long");
  Reader r{body};
  if (r.take(kPeerMagic.size()) != kPeerMagic || !r.ok) return malformed("not a meshwork peer");
  const std::string_view version = r.take(1);
  if (!r.ok || static_cast<uint8_t>(version[0]) != kPeerProtocolVersion)
    return malformed("unsupported protocol version");
  const std::string_view t = r.take(1);
  if (!r.ok || static_cast<uint8_t>(t[0]) != type) return malformed("unexpected message type");
  HandshakeMessage m;
  m.name = std::string(r.take_short());
  if (type == kHelloType) m.target = std::string(r.take_short());
  m.public_key = std::string(r.take(kPublicKeyBytes));
  m.kx_public = std::string(r.take(kKxKeyBytes));
  const size_t signed_bytes = r.at;
  const std::string_view signature = r.take(kSignatureBytes);
  if (!r.ok) return malformed("truncated");
  if (r.at != body.size()) return malformed("trailing bytes");
  if (!plain_name(m.name) || (type == kHelloType && !plain_name(m.target)))
    return malformed("bad member name");
  std::string signed_part(context);
  signed_part.append(extra);
  signed_part.append(body.substr(0, signed_bytes));
  if (!verify_signature(signed_part, signature, m.public_key))
    return Status(Code::unauthorized, std::string("peer ") + what + ": bad signature");
  m.body = std::string(body);
  return m;
}

}  // namespace

KxKeyPair::~KxKeyPair() {
  wipe();
}

void KxKeyPair::wipe() {
  sodium_memzero(secret_key.data(), secret_key.size());
}

KxKeyPair KxKeyPair::generate() {
  init_crypto();
  KxKeyPair kx;
  crypto_kx_keypair(kx.public_key.data(), kx.secret_key.data());
  return kx;
}

std::string make_hello(const Identity& key, std::string_view name, std::string_view target,
                       const KxKeyPair& kx) {
  std::string body = handshake_head(kHelloType, name);
  put_short(body, target);
  body.append(key.public_key());
  body.append(kx.public_view());
  return finish_handshake(key, std::move(body), kHelloContext, {});
}

std::string make_welcome(const Identity& key, std::string_view name, const KxKeyPair& kx,
                         std::string_view hello_body) {
  std::string body = handshake_head(kWelcomeType, name);
  body.append(key.public_key());
  body.append(kx.public_view());
  return finish_handshake(key, std::move(body), kWelcomeContext, blake2b(hello_body));
}

Result<size_t> handshake_body_bytes(std::string_view length_bytes) {
  if (length_bytes.size() < kHandshakeLengthBytes)
    return Status(Code::malformed, "peer handshake: truncated length");
  const size_t n = static_cast<uint8_t>(length_bytes[0]) |
                   (size_t(static_cast<uint8_t>(length_bytes[1])) << 8);
  if (n == 0 || n > kHandshakeBytesMax)
    return Status(Code::malformed, "peer handshake: bad length " + std::to_string(n));
  return n;
}

Result<HandshakeMessage> open_hello(std::string_view body) {
  return open_handshake(body, kHelloType, kHelloContext, {});
}

Result<HandshakeMessage> open_welcome(std::string_view body, std::string_view hello_body) {
  return open_handshake(body, kWelcomeType, kWelcomeContext, blake2b(hello_body));
}

std::optional<SessionKeys> client_session(const KxKeyPair& mine,
                                          std::string_view server_kx_public) {
  if (server_kx_public.size() != kKxKeyBytes) return std::nullopt;
  SessionKeys k;
  if (crypto_kx_client_session_keys(k.rx.data(), k.tx.data(), mine.public_key.data(),
                                    mine.secret_key.data(),
                                    reinterpret_cast<const uint8_t*>(server_kx_public.data())) != 0)
    return std::nullopt;
  return k;
}

std::optional<SessionKeys> server_session(const KxKeyPair& mine,
                                          std::string_view client_kx_public) {
  if (client_kx_public.size() != kKxKeyBytes) return std::nullopt;
  SessionKeys k;
  if (crypto_kx_server_session_keys(k.rx.data(), k.tx.data(), mine.public_key.data(),
                                    mine.secret_key.data(),
                                    reinterpret_cast<const uint8_t*>(client_kx_public.data())) != 0)
    return std::nullopt;
  return k;
}

size_t FrameSealer::begin(std::string& out, FrameKind kind) const {
  const size_t at = out.size();
  out.append(kFrameHeaderBytes, '\0');
  out.push_back(static_cast<char>(kind));
  return at;
}

void FrameSealer::seal(std::string& out, size_t frame_at) {
  MESHWORK_CHECK(out.size() > frame_at + kFrameHeaderBytes);
  const size_t plain = out.size() - frame_at - kFrameHeaderBytes;
  MESHWORK_CHECK(plain <= kFramePlainBytesMax);
  out.resize(out.size() + kFrameTagBytes);
  char* frame = out.data() + frame_at;
  put_u32(frame, static_cast<uint32_t>(plain + kFrameTagBytes));
  const auto nonce = nonce_of(next_++);
  auto* text = reinterpret_cast<uint8_t*>(frame + kFrameHeaderBytes);
  crypto_aead_chacha20poly1305_ietf_encrypt_detached(
      text, text + plain, nullptr, text, plain, reinterpret_cast<const uint8_t*>(frame),
      kFrameHeaderBytes, nullptr, nonce.data(), key_.data());
}

Result<size_t> FrameOpener::frame_bytes(std::string_view data) {
  if (data.size() < kFrameHeaderBytes) return size_t{0};
  const size_t n = get_u32(data.data());
  if (n < 1 + kFrameTagBytes) return Status(Code::malformed, "peer frame: too short");
  if (n > kFramePlainBytesMax + kFrameTagBytes)
    return Status(Code::too_large, "peer frame: " + std::to_string(n) + " bytes");
  return kFrameHeaderBytes + n;
}

Result<Frame> FrameOpener::open(char* data, size_t size) {
  auto need = frame_bytes(std::string_view(data, size));
  if (!need.is_ok()) return need.status();
  MESHWORK_CHECK(need.value() != 0 && need.value() <= size);
  const size_t plain = need.value() - kFrameHeaderBytes - kFrameTagBytes;
  auto* text = reinterpret_cast<uint8_t*>(data + kFrameHeaderBytes);
  const auto nonce = nonce_of(next_);
  if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(
          text, nullptr, text, plain, text + plain, reinterpret_cast<const uint8_t*>(data),
          kFrameHeaderBytes, nonce.data(), key_.data()) != 0)
    return Status(Code::unauthorized, "peer frame " + std::to_string(next_) +
                                          " does not authenticate (altered, replayed or reordered)");
  next_++;
  const auto kind = static_cast<uint8_t>(text[0]);
  if (kind != uint8_t(FrameKind::messages) && kind != uint8_t(FrameKind::ack))
    return Status(Code::malformed, "peer frame: unknown kind " + std::to_string(kind));
  return Frame{FrameKind(kind), std::string_view(reinterpret_cast<char*>(text) + 1, plain - 1)};
}

void append_item(std::string& out, std::string_view message) {
  MESHWORK_CHECK(message.size() <= kMessageBytesMax);
  char len[kFrameItemHeaderBytes];
  put_u32(len, static_cast<uint32_t>(message.size()));
  out.append(len, sizeof len);
  out.append(message);
}

Result<std::vector<std::string_view>> parse_items(std::string_view payload, size_t items_max) {
  auto malformed = [](const char* why) {
    return Status(Code::malformed, std::string("peer frame items: ") + why);
  };
  if (payload.empty()) return malformed("no messages");
  std::vector<std::string_view> items;
  size_t at = 0;
  while (at < payload.size()) {
    if (items.size() == items_max)
      return Status(Code::too_large,
                    "peer frame items: more than " + std::to_string(items_max) + " messages");
    if (payload.size() - at < kFrameItemHeaderBytes) return malformed("truncated length");
    const uint32_t n = get_u32(payload.data() + at);
    at += kFrameItemHeaderBytes;
    if (payload.size() - at < n) return malformed("truncated message");
    items.push_back(payload.substr(at, n));
    at += n;
  }
  return items;
}

Result<uint64_t> parse_ack(std::string_view payload) {
  if (payload.size() != 8) return Status(Code::malformed, "peer ack: not 8 bytes");
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v |= uint64_t(static_cast<uint8_t>(payload[i])) << (8 * i);
  return v;
}

void append_ack(std::string& out, uint64_t frames) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((frames >> (8 * i)) & 0xff));
}

}  // namespace meshwork
