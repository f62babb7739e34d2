// The Idempotency-Key header's parser and the stored entry's codec (api/idempotency.h): what is
// accepted, what is refused and why, and that no bytes make either throw or crash.
#include <doctest/doctest.h>

#include <random>

#include "api/idempotency.h"

namespace meshwork::api {

TEST_CASE("an idempotency key: absent, accepted, or refused with the reason") {
  auto absent = parse_idempotency_key(std::nullopt, 0);
  REQUIRE(absent.is_ok());
  CHECK(!absent.value());

  auto plain = parse_idempotency_key("order-17", 1);
  REQUIRE(plain.is_ok());
  REQUIRE(plain.value());
  CHECK(plain.value()->size() == 64);  // hex BLAKE2b-256
  auto quoted = parse_idempotency_key("\"order-17\"", 1);
  REQUIRE(quoted.is_ok());
  CHECK(*quoted.value() == *plain.value());  // the quoted form names the same key
  CHECK(*parse_idempotency_key("order-18", 1).value() != *plain.value());
  CHECK(parse_idempotency_key(std::string(kIdempotencyKeyBytesMax, '~'), 1).is_ok());

  const auto refused = [](std::string_view v, size_t count, const char* why) {
    auto r = parse_idempotency_key(v, count);
    CAPTURE(v);
    REQUIRE(!r.is_ok());
    CHECK(r.status().code() == Code::malformed);
    CHECK(r.status().message().find(why) != std::string::npos);
  };
  refused("a", 2, "once");
  refused("", 1, "empty");
  refused("\"\"", 1, "empty");
  refused(std::string(kIdempotencyKeyBytesMax + 1, 'x'), 1, "at most 255");
  refused("a b", 1, "visible ASCII");
  refused("a\"b", 1, "visible ASCII");
  refused("caf\xc3\xa9", 1, "visible ASCII");
  refused(std::string("a\0b", 3), 1, "visible ASCII");
  refused("tab\there", 1, "visible ASCII");
}

TEST_CASE("an idempotency entry round-trips and hostile bytes decode to nothing") {
  IdempotencyEntry e{std::string(64, 'a'), "nonce-1", 1'796'000'000'000, 1'796'000'000'123};
  auto back = decode_idempotency_entry(encode_idempotency_entry(e));
  REQUIRE(back);
  CHECK(back->body_hash == e.body_hash);
  CHECK(back->nonce == e.nonce);
  CHECK(back->created_at_ms == e.created_at_ms);
  CHECK(back->at_ms == e.at_ms);
  CHECK(!decode_idempotency_entry(""));
  CHECK(!decode_idempotency_entry("[]"));
  CHECK(!decode_idempotency_entry(R"({"body":"x","nonce":"n","created_at":-1,"at":2})"));
  CHECK(!decode_idempotency_entry(R"({"body":1,"nonce":"n","created_at":1,"at":2})"));
  const std::string good = encode_idempotency_entry(e);
  std::mt19937_64 rng(1130);
  for (int i = 0; i < 20'000; ++i) {
    std::string m = good.substr(0, rng() % (good.size() + 1));
    if (!m.empty()) m[rng() % m.size()] = static_cast<char>(rng());
    (void)decode_idempotency_entry(m);  // never throws
  }
}

}  // namespace meshwork::api
