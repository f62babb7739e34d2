#include "gossip/codec.h"

namespace meshwork::gossip {

namespace {

// ---- writing ------------------------------------------------------------------------------------

void put_u8(std::vector<uint8_t>& out, uint8_t v) {
  out.push_back(v);
}

void put_be(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void put_str(std::vector<uint8_t>& out, std::string_view s) {
  out.push_back(static_cast<uint8_t>(s.size()));
  out.insert(out.end(), s.begin(), s.end());
}

void put_addr(std::vector<uint8_t>& out, Address a) {
  put_be(out, a.ip, 4);
  put_be(out, a.port, 2);
}

bool name_ok(std::string_view name) {
  return !name.empty() && name.size() <= name_bytes_max;
}

std::size_t meta_bytes(const NodeMeta& meta) {
  std::size_t n = 1 + meta.api.size() + 1 + meta.public_key.size() + 1;
  for (const auto& [k, v] : meta.tags) n += 2 + k.size() + v.size();
  return n;
}

void put_meta(std::vector<uint8_t>& out, const NodeMeta& meta) {
  put_str(out, meta.api);
  put_str(out, meta.public_key);
  put_u8(out, static_cast<uint8_t>(meta.tags.size()));
  for (const auto& [k, v] : meta.tags) {
    put_str(out, k);
    put_str(out, v);
  }
}

// Body writers return false when a field breaks a limit.
struct BodyWriter {
  std::vector<uint8_t>& out;

  bool operator()(const Ping& m) { return put_seq_name(m.seq, m.target); }
  bool operator()(const Ack& m) { return put_be(out, m.seq, 4), true; }
  bool operator()(const Nack& m) { return put_be(out, m.seq, 4), true; }
  bool operator()(const PingReq& m) {
    if (!put_seq_name(m.seq, m.target)) return false;
    put_addr(out, m.target_addr);
    return true;
  }
  bool operator()(const Alive& m) {
    if (!name_ok(m.name) || !meta_fits(m.meta)) return false;
    put_str(out, m.name);
    put_be(out, m.incarnation, 8);
    put_addr(out, m.addr);
    put_meta(out, m.meta);
    return true;
  }
  bool operator()(const Suspect& m) { return put_accusation(m.name, m.incarnation, m.from); }
  bool operator()(const Dead& m) { return put_accusation(m.name, m.incarnation, m.from); }
  bool operator()(const Left& m) {
    if (!name_ok(m.name)) return false;
    put_str(out, m.name);
    put_be(out, m.incarnation, 8);
    return true;
  }
  bool operator()(const PushPull& m) {
    put_u8(out, m.request ? 1 : 0);
    put_be(out, m.seq, 4);
    put_be(out, m.chunk, 2);
    return true;
  }
  bool operator()(const Sender& m) {
    if (!name_ok(m.name)) return false;
    put_str(out, m.name);
    return true;
  }

  bool put_seq_name(uint32_t seq, std::string_view name) {
    if (!name_ok(name)) return false;
    put_be(out, seq, 4);
    put_str(out, name);
    return true;
  }
  bool put_accusation(std::string_view name, uint64_t incarnation, std::string_view from) {
    if (!name_ok(name) || !name_ok(from)) return false;
    put_str(out, name);
    put_be(out, incarnation, 8);
    put_str(out, from);
    return true;
  }
};

// ---- reading ------------------------------------------------------------------------------------

// A bounds-checked cursor; the first failure sticks and every later read returns zero values.
struct Reader {
  std::span<const uint8_t> in;
  std::size_t pos = 0;
  DecodeStatus status = DecodeStatus::ok;

  bool ok() const { return status == DecodeStatus::ok; }
  void fail(DecodeStatus s) {
    if (ok()) status = s;
  }
  bool need(std::size_t n) {
    if (ok() && in.size() - pos < n) fail(DecodeStatus::truncated);
    return ok();
  }
  uint64_t be(int bytes) {
    if (!need(static_cast<std::size_t>(bytes))) return 0;
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | in[pos++];
    return v;
  }
  uint8_t u8() { return static_cast<uint8_t>(be(1)); }
  uint32_t u32() { return static_cast<uint32_t>(be(4)); }
  std::string str(std::size_t max) {
    const std::size_t n = u8();
    if (n > max) fail(DecodeStatus::too_long);
    if (!need(n)) return {};
    std::string s(reinterpret_cast<const char*>(in.data() + pos), n);
    pos += n;
    return s;
  }
  std::string name() {
    std::string s = str(name_bytes_max);
    if (ok() && s.empty()) fail(DecodeStatus::bad_value);
    return s;
  }
  Address addr() {
    Address a;
    a.ip = u32();
    a.port = static_cast<uint16_t>(be(2));
    return a;
  }
  NodeMeta meta() {
    NodeMeta m;
    const std::size_t start = pos;
    m.api = str(api_bytes_max);
    m.public_key = str(public_key_bytes_max);
    const std::size_t tags = u8();
    if (tags > tags_count_max) fail(DecodeStatus::too_many);
    for (std::size_t i = 0; i < tags && ok(); ++i) {
      std::string k = str(tag_key_bytes_max);
      std::string v = str(tag_value_bytes_max);
      if (ok() && !m.tags.emplace(std::move(k), std::move(v)).second) fail(DecodeStatus::bad_value);
    }
    if (ok() && pos - start > meta_bytes_max) fail(DecodeStatus::too_long);
    return m;
  }
};

Message read_body(MessageType type, Reader& r) {
  switch (type) {
    case MessageType::ping: {
      Ping m;
      m.seq = r.u32();
      m.target = r.name();
      return m;
    }
    case MessageType::ack:
      return Ack{r.u32()};
    case MessageType::nack:
      return Nack{r.u32()};
    case MessageType::ping_req: {
      PingReq m;
      m.seq = r.u32();
      m.target = r.name();
      m.target_addr = r.addr();
      return m;
    }
    case MessageType::alive: {
      Alive m;
      m.name = r.name();
      m.incarnation = r.be(8);
      m.addr = r.addr();
      m.meta = r.meta();
      return m;
    }
    case MessageType::suspect: {
      Suspect m;
      m.name = r.name();
      m.incarnation = r.be(8);
      m.from = r.name();
      return m;
    }
    case MessageType::dead: {
      Dead m;
      m.name = r.name();
      m.incarnation = r.be(8);
      m.from = r.name();
      return m;
    }
    case MessageType::left: {
      Left m;
      m.name = r.name();
      m.incarnation = r.be(8);
      return m;
    }
    case MessageType::push_pull: {
      PushPull m;
      const uint8_t flags = r.u8();
      if (flags > 1) r.fail(DecodeStatus::bad_value);
      m.request = flags == 1;
      m.seq = r.u32();
      m.chunk = static_cast<uint16_t>(r.be(2));
      return m;
    }
    case MessageType::sender:
      return Sender{r.name()};
  }
  r.fail(DecodeStatus::bad_value);
  return Ack{};
}

bool known_type(uint8_t t) {
  return t >= static_cast<uint8_t>(MessageType::ping) &&
         t <= static_cast<uint8_t>(MessageType::sender);
}

}  // namespace

std::string_view to_string(DecodeStatus status) {
  switch (status) {
    case DecodeStatus::ok:
      return "ok";
    case DecodeStatus::empty:
      return "empty";
    case DecodeStatus::bad_version:
      return "bad_version";
    case DecodeStatus::truncated:
      return "truncated";
    case DecodeStatus::too_long:
      return "too_long";
    case DecodeStatus::too_many:
      return "too_many";
    case DecodeStatus::bad_value:
      return "bad_value";
  }
  return "unknown";
}

bool meta_fits(const NodeMeta& meta) {
  if (meta.api.size() > api_bytes_max || meta.public_key.size() > public_key_bytes_max ||
      meta.tags.size() > tags_count_max) {
    return false;
  }
  for (const auto& [k, v] : meta.tags) {
    if (k.size() > tag_key_bytes_max || v.size() > tag_value_bytes_max) return false;
  }
  return meta_bytes(meta) <= meta_bytes_max;
}

bool encode(const Message& message, std::vector<uint8_t>& out) {
  const std::size_t start = out.size();
  put_u8(out, static_cast<uint8_t>(message.index() + 1));
  put_be(out, 0, 2);  // length, patched below
  if (!std::visit(BodyWriter{out}, message)) {
    out.resize(start);
    return false;
  }
  const std::size_t body = out.size() - start - message_header_bytes;
  out[start + 1] = static_cast<uint8_t>(body >> 8);
  out[start + 2] = static_cast<uint8_t>(body);
  return true;
}

DecodeStatus decode_packet(std::span<const uint8_t> bytes, std::vector<Message>& out) {
  out.clear();
  if (bytes.empty()) return DecodeStatus::empty;
  if (bytes.size() > packet_bytes_max) return DecodeStatus::too_long;
  if (bytes[0] != wire_version) return DecodeStatus::bad_version;
  Reader packet{bytes, 1};
  std::size_t seen = 0;
  while (packet.ok() && packet.pos < bytes.size()) {
    if (++seen > messages_per_packet_max) return DecodeStatus::too_many;
    const uint8_t type = packet.u8();
    const std::size_t length = packet.be(2);
    if (!packet.need(length)) break;
    Reader body{bytes.subspan(packet.pos, length)};
    packet.pos += length;
    if (!known_type(type)) continue;  // a newer peer's message: skip it
    Message m = read_body(static_cast<MessageType>(type), body);
    if (body.ok() && body.pos != length) body.fail(DecodeStatus::bad_value);
    if (!body.ok()) return body.status;
    out.push_back(std::move(m));
  }
  if (!packet.ok()) return packet.status;
  return DecodeStatus::ok;  // may hold no message when every one had an unknown type
}

}  // namespace meshwork::gossip
