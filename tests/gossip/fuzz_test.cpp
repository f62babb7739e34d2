// Fuzz tests: random and mutated byte strings into the codec and into Membership::receive, sealed
// and unsealed. Nothing may crash (run under ASan/UBSan too), and nothing may grow without bound.
// MESHWORK_FUZZ_SCALE (default 1) multiplies the iteration counts.
#include <doctest/doctest.h>

#include <cstdlib>
#include <random>

#include "gossip/membership.h"
#include "tests/gossip/sim_net.h"

using namespace meshwork::gossip;
using meshwork::gossip::test::with_number;

namespace {

std::size_t scaled(std::size_t n) {
  const char* s = std::getenv("MESHWORK_FUZZ_SCALE");
  const double f = s ? std::atof(s) : 1.0;
  return static_cast<std::size_t>(static_cast<double>(n) * (f > 0 ? f : 1.0));
}

struct Gen {
  std::mt19937_64 rng;
  explicit Gen(uint64_t seed) : rng(seed) {}

  uint64_t below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng); }
  std::string name() { return with_number("n", below(12)); }
  Address addr() { return {0x7f000001, static_cast<uint16_t>(7000 + below(12))}; }
  NodeMeta meta() {
    NodeMeta m{with_number("127.0.0.1:", 8000 + below(12)), std::string(below(45), 'k'), {}};
    for (uint64_t i = below(4); i > 0; --i)
      m.tags[with_number("t", i)] = std::string(below(20), 'v');
    return m;
  }
  Message message() {
    const uint32_t seq = static_cast<uint32_t>(below(8));
    const uint64_t inc = below(6);
    switch (below(10)) {
      case 0:
        return Ping{seq, name()};
      case 1:
        return Ack{seq};
      case 2:
        return Nack{seq};
      case 3:
        return PingReq{seq, name(), addr()};
      case 4:
        return Alive{name(), inc, addr(), meta()};
      case 5:
        return Suspect{name(), inc, name()};
      case 6:
        return Dead{name(), inc, name()};
      case 7:
        return Left{name(), inc};
      case 8:
        return PushPull{below(2) == 1, seq, static_cast<uint16_t>(below(3))};
      default:
        return Sender{name()};
    }
  }
  // A valid compound packet of 1..8 random messages.
  std::vector<uint8_t> packet(std::vector<Message>* messages = nullptr) {
    std::vector<uint8_t> bytes{wire_version};
    for (uint64_t n = 1 + below(8); n > 0; --n) {
      Message m = message();
      REQUIRE(encode(m, bytes));
      if (messages) messages->push_back(std::move(m));
    }
    return bytes;
  }
  std::vector<uint8_t> random_bytes() {
    std::vector<uint8_t> b(below(packet_bytes_max + 100));
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    if (!b.empty() && below(2) == 0) b[0] = wire_version;
    return b;
  }
  void mutate(std::vector<uint8_t>& b) {
    for (uint64_t n = 1 + below(6); n > 0; --n) {
      const uint64_t op = below(5);
      if (b.empty() || op == 0) {
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(b.empty() ? 0 : below(b.size() + 1)),
                 static_cast<uint8_t>(rng()));
      } else if (op == 1) {
        b[below(b.size())] ^= static_cast<uint8_t>(1u << below(8));
      } else if (op == 2) {
        b[below(b.size())] = static_cast<uint8_t>(below(2) ? 0xff : below(4));
      } else if (op == 3) {
        b.erase(b.begin() + static_cast<std::ptrdiff_t>(below(b.size())));
      } else {
        b.resize(below(b.size() + 1));
      }
    }
  }
  std::vector<uint8_t> input() {
    if (below(4) == 0) return random_bytes();
    auto b = packet();
    mutate(b);
    return b;
  }
};

}  // namespace

TEST_CASE("fuzz: random compound packets round-trip exactly") {
  Gen g(1);
  std::vector<Message> decoded;
  for (std::size_t i = 0; i < scaled(100'000); ++i) {
    std::vector<Message> messages;
    const auto bytes = g.packet(&messages);
    REQUIRE(decode_packet(bytes, decoded) == DecodeStatus::ok);
    REQUIRE(decoded == messages);
  }
}

TEST_CASE("fuzz: random and mutated bytes never crash decode, and decoded sizes stay bounded") {
  Gen g(2);
  std::vector<Message> out;
  std::size_t ok = 0;
  for (std::size_t i = 0; i < scaled(2'000'000); ++i) {
    const auto bytes = g.input();
    if (decode_packet(bytes, out) != DecodeStatus::ok) continue;
    ++ok;
    REQUIRE(out.size() <= messages_per_packet_max);
    for (const Message& m : out) {
      if (const auto* a = std::get_if<Alive>(&m)) REQUIRE(meta_fits(a->meta));
    }
  }
  MESSAGE(ok, " of ", scaled(2'000'000), " fuzzed packets decoded");
  CHECK(ok > 0);
}

TEST_CASE("fuzz: Membership::receive stays bounded, unsealed and sealed") {
  Config cfg;
  cfg.members_max = 32;
  Key key{};
  key.fill(9);
  for (const bool sealed : {false, true}) {
    Gen g(sealed ? 4 : 3);
    const Keyring ring = sealed ? Keyring({key}) : Keyring{};
    Membership m(cfg, "n0", {0x7f000001, 7000}, {"127.0.0.1:8000", "pk", {}}, 1, 42, ring);
    Output out;
    m.join(0, {{0x7f000001, 7001}}, out);
    uint64_t now = 0;
    const std::size_t rounds = scaled(sealed ? 300'000 : 1'000'000);
    for (std::size_t i = 0; i < rounds; ++i) {
      auto bytes = g.input();
      if (sealed && g.below(2) == 0) {  // authentic packets with fuzzed plaintext
        std::vector<uint8_t> boxed;
        if (bytes.size() > sealed_plaintext_bytes_max) bytes.resize(sealed_plaintext_bytes_max);
        seal(ring, bytes, boxed);
        bytes = std::move(boxed);
      }
      m.receive(now, g.addr(), bytes, out);
      if (i % 64 == 0) m.tick(now += 7, out);
      REQUIRE(m.member_count() <= cfg.members_max);
      REQUIRE(out.packets.size() <= 4 * cfg.members_max);
      for (const Packet& p : out.packets) REQUIRE(p.bytes.size() <= packet_bytes_max);
      out.packets.clear();
      out.events.clear();
    }
    const Stats& s = m.stats();
    MESSAGE(std::string(sealed ? "sealed" : "unsealed"), ": ", s.packets_received, " received, ",
            s.dropped_unsealable, " unsealable, ", s.dropped_malformed, " malformed, ",
            s.dropped_oversize, " oversize, ", m.member_count(), " members, ", s.refutes,
            " refutes");
    CHECK(s.dropped_malformed > 0);
    CHECK(m.name() == "n0");
    CHECK(m.members().front().state != MemberState::dead);
    if (sealed) CHECK(s.dropped_unsealable > 0);
  }
}

TEST_CASE("a node with a keyring drops plaintext and foreign-key packets without parsing them") {
  Key mine{}, other{};
  mine.fill(1);
  other.fill(2);
  Membership m(Config{}, "n0", {0x7f000001, 7000}, {}, 1, 1, Keyring({mine}));
  Output out;
  m.join(0, {}, out);
  Gen g(5);
  const auto plain = g.packet();
  std::vector<uint8_t> foreign;
  seal(Keyring({other}), plain, foreign);
  m.receive(1, {0x7f000001, 7001}, plain, out);
  m.receive(2, {0x7f000001, 7001}, foreign, out);
  CHECK(m.stats().dropped_unsealable == 2);
  CHECK(m.stats().dropped_malformed == 0);
  CHECK(m.member_count() == 1);
  CHECK(out.packets.empty());
}
