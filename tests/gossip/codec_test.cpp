#include "gossip/codec.h"

#include <doctest/doctest.h>

#include "tests/gossip/sim_net.h"

using namespace meshwork::gossip;
using meshwork::gossip::test::with_number;

namespace {

NodeMeta sample_meta() {
  return {"127.0.0.1:8001", "pk-base64", {{"zone", "a"}, {"role", "worker"}}};
}

Message round_trip(const Message& m) {
  std::vector<uint8_t> bytes{wire_version};
  REQUIRE(encode(m, bytes));
  std::vector<Message> out;
  REQUIRE(decode_packet(bytes, out) == DecodeStatus::ok);
  REQUIRE(out.size() == 1);
  return out[0];
}

}  // namespace

TEST_CASE("every message round-trips") {
  const Address addr{0x0a000001, 7001};
  {
    auto m = std::get<Ping>(round_trip(Ping{42, "n1"}));
    CHECK(m.seq == 42);
    CHECK(m.target == "n1");
  }
  CHECK(std::get<Ack>(round_trip(Ack{0xdeadbeef})).seq == 0xdeadbeef);
  CHECK(std::get<Nack>(round_trip(Nack{7})).seq == 7);
  {
    auto m = std::get<PingReq>(round_trip(PingReq{9, "n3", addr}));
    CHECK(m.seq == 9);
    CHECK(m.target == "n3");
    CHECK(m.target_addr == addr);
  }
  {
    auto m = std::get<Alive>(round_trip(Alive{"n2", 1ull << 40, addr, sample_meta()}));
    CHECK(m.name == "n2");
    CHECK(m.incarnation == 1ull << 40);
    CHECK(m.addr == addr);
    CHECK(m.meta == sample_meta());
  }
  {
    auto m = std::get<Suspect>(round_trip(Suspect{"n2", 5, "n1"}));
    CHECK((m.name == "n2" && m.incarnation == 5 && m.from == "n1"));
  }
  {
    auto m = std::get<Dead>(round_trip(Dead{"n2", 6, "n4"}));
    CHECK((m.name == "n2" && m.incarnation == 6 && m.from == "n4"));
  }
  {
    auto m = std::get<Left>(round_trip(Left{"n2", 7}));
    CHECK((m.name == "n2" && m.incarnation == 7));
  }
  {
    auto m = std::get<PushPull>(round_trip(PushPull{true, 11, 3}));
    CHECK((m.request && m.seq == 11 && m.chunk == 3));
  }
  CHECK(std::get<Sender>(round_trip(Sender{"n9"})).name == "n9");
}

TEST_CASE("a ping's sender is a message of its own that a peer which predates it skips") {
  std::vector<uint8_t> bytes{wire_version};
  REQUIRE(encode(Ping{1, "n2"}, bytes));
  const std::size_t ping_end = bytes.size();
  REQUIRE(encode(Sender{"n1"}, bytes));
  CHECK(bytes[ping_end] == static_cast<uint8_t>(MessageType::sender));
  std::vector<Message> out;
  REQUIRE(decode_packet(bytes, out) == DecodeStatus::ok);
  REQUIRE(out.size() == 2);
  CHECK(std::get<Sender>(out[1]).name == "n1");
  // An empty name is malformed, like every other name.
  std::vector<uint8_t> empty{wire_version, static_cast<uint8_t>(MessageType::sender), 0, 1, 0};
  CHECK(decode_packet(empty, out) == DecodeStatus::bad_value);
  std::vector<uint8_t> refused;
  CHECK_FALSE(encode(Sender{""}, refused));
  CHECK(refused.empty());
}

TEST_CASE("a compound packet decodes in order and skips unknown types") {
  std::vector<uint8_t> bytes{wire_version};
  REQUIRE(encode(Ping{1, "a"}, bytes));
  bytes.insert(bytes.end(), {200, 0, 2, 0xaa, 0xbb});  // a future message type
  REQUIRE(encode(Ack{2}, bytes));
  std::vector<Message> out;
  REQUIRE(decode_packet(bytes, out) == DecodeStatus::ok);
  REQUIRE(out.size() == 2);
  CHECK(std::holds_alternative<Ping>(out[0]));
  CHECK(std::holds_alternative<Ack>(out[1]));
}

TEST_CASE("encode refuses fields beyond their limits") {
  std::vector<uint8_t> bytes;
  CHECK_FALSE(encode(Ping{1, ""}, bytes));
  CHECK_FALSE(encode(Ping{1, std::string(name_bytes_max + 1, 'x')}, bytes));
  CHECK(encode(Ping{1, std::string(name_bytes_max, 'x')}, bytes));
  bytes.clear();
  NodeMeta meta = sample_meta();
  meta.api = std::string(api_bytes_max + 1, 'x');
  CHECK_FALSE(encode(Alive{"n", 1, {}, meta}, bytes));
  meta = sample_meta();
  for (int i = 0; i < 17; ++i) meta.tags.emplace(with_number("k", i), std::string(1, 'v'));
  CHECK_FALSE(meta_fits(meta));
  CHECK_FALSE(encode(Alive{"n", 1, {}, meta}, bytes));
  meta = {std::string(api_bytes_max, 'a'), std::string(public_key_bytes_max, 'p'), {}};
  for (int i = 0; i < 8; ++i) meta.tags[with_number("key", i)] = std::string(100, 'v');
  CHECK_FALSE(meta_fits(meta));  // each field fits, the total does not
  CHECK(bytes.empty());          // failures leave the buffer untouched
}

TEST_CASE("the largest alive message has the advertised size") {
  NodeMeta meta{std::string(api_bytes_max, 'a'), std::string(public_key_bytes_max, 'p'), {}};
  for (int i = 0; meta_fits(meta); ++i) {
    meta.tags[with_number("k", i)] = std::string(tag_value_bytes_max, 'v');
  }
  meta.tags.erase(std::prev(meta.tags.end()));
  REQUIRE(meta_fits(meta));
  std::vector<uint8_t> bytes;
  REQUIRE(encode(Alive{std::string(name_bytes_max, 'n'), 1, {}, meta}, bytes));
  CHECK(bytes.size() <= alive_bytes_max);
}

TEST_CASE("decode rejects malformed packets with a reason") {
  std::vector<Message> out;
  std::vector<uint8_t> good{wire_version};
  REQUIRE(encode(Suspect{"n2", 5, "n1"}, good));
  CHECK(decode_packet({}, out) == DecodeStatus::empty);
  auto bad = good;
  bad[0] = 2;
  CHECK(decode_packet(bad, out) == DecodeStatus::bad_version);
  for (std::size_t cut = 2; cut < good.size(); ++cut) {
    CHECK(decode_packet(std::span(good).first(cut), out) != DecodeStatus::ok);
  }
  bad = good;
  bad[4] = 0;  // empty name
  CHECK(decode_packet(bad, out) != DecodeStatus::ok);
  bad = good;
  bad[4] = 200;  // name longer than the limit
  CHECK(decode_packet(bad, out) == DecodeStatus::too_long);
  bad = good;
  bad.push_back(0);  // trailing byte inside the body: length now too short for it
  bad[3] = static_cast<uint8_t>(bad[3] + 1);  // low byte of the length
  CHECK(decode_packet(bad, out) == DecodeStatus::bad_value);
  std::vector<uint8_t> big(packet_bytes_max + 1, 0);
  big[0] = wire_version;
  CHECK(decode_packet(big, out) == DecodeStatus::too_long);
  std::vector<uint8_t> many{wire_version};
  for (std::size_t i = 0; i <= messages_per_packet_max; ++i) REQUIRE(encode(Ack{1}, many));
  CHECK(decode_packet(many, out) == DecodeStatus::too_many);
}

TEST_CASE("duplicate tags are rejected") {
  std::vector<uint8_t> bytes{wire_version};
  REQUIRE(encode(Alive{"n", 1, {}, {"", "", {{"a", "1"}, {"b", "2"}}}}, bytes));
  // Rename tag "b" to "a": the tags are the last 6 bytes (1 a 1 1, 1 b 1 2).
  bytes[bytes.size() - 3] = 'a';
  std::vector<Message> out;
  CHECK(decode_packet(bytes, out) == DecodeStatus::bad_value);
}
