// Envelopes: signatures, ids, spec validation, and the bounded JSON parser.
#include <doctest/doctest.h>

#include "node/envelope.h"
#include "node/json_bounded.h"

namespace meshwork {

TEST_CASE("a signed plain job opens, and its id is stable") {
  const Identity key = Identity::generate();
  nlohmann::json body{{"type", "echo"}, {"payload", {{"a", 1}}}, {"nonce", "n"}, {"created_at", 5}};
  auto env = sign_plain_job(body, key, 99, Limits{});
  REQUIRE(env.is_ok());
  auto again = sign_plain_job(body, key, 12345, Limits{});
  CHECK(again.value().id() == env.value().id());  // same nonce and created_at: same job
  CHECK(is_job_id(env.value().id()));
  auto parsed = parse_envelope(env.value().to_json());
  REQUIRE(parsed.is_ok());
  auto spec = open_envelope(parsed.value(), Limits{});
  REQUIRE(spec.is_ok());
  CHECK(spec.value().type == "echo");
  CHECK(spec.value().payload["a"] == 1);
  CHECK(spec.value().max_attempts == kMaxAttemptsDefault);
  // Another key signing the same text is another job.
  const Identity other = Identity::generate();
  CHECK(sign_plain_job(body, other, 99, Limits{}).value().id() != env.value().id());
}

TEST_CASE("the node fills in nonce and created_at, so two plain posts are two jobs") {
  const Identity key = Identity::generate();
  nlohmann::json body{{"type", "echo"}, {"payload", 1}};
  CHECK(sign_plain_job(body, key, 1, Limits{}).value().id() !=
        sign_plain_job(body, key, 1, Limits{}).value().id());
}

TEST_CASE("the spec handed back by sign_plain_job is the spec of the signed text") {
  const Identity key = Identity::generate();
  JobSpec filled;
  auto env = sign_plain_job({{"type", "sleep"}, {"payload", {{"ms", 5}}}, {"max_attempts", 2}}, key,
                            777, Limits{}, &filled);
  REQUIRE(env.is_ok());
  auto opened = open_envelope(env.value(), Limits{});
  REQUIRE(opened.is_ok());
  CHECK(filled.type == opened.value().type);
  CHECK(filled.payload == opened.value().payload);
  CHECK(filled.nonce == opened.value().nonce);
  CHECK(filled.nonce.size() == 32);
  CHECK(filled.created_at_ms == 777);
  CHECK(opened.value().created_at_ms == 777);
  CHECK(filled.max_attempts == 2);
  CHECK(filled.timeout_ms == opened.value().timeout_ms);
}

TEST_CASE("tampering is caught") {
  const Identity key = Identity::generate();
  auto env = sign_plain_job({{"type", "echo"}, {"payload", 1}}, key, 1, Limits{}).value();
  SUBCASE("changed job text") {
    env.job[env.job.size() - 2] = env.job[env.job.size() - 2] == '1' ? '2' : '1';
    CHECK(open_envelope(env, Limits{}).status().code() == Code::unauthorized);
  }
  SUBCASE("another key") {
    env.public_key = Identity::generate().public_key();
    CHECK(open_envelope(env, Limits{}).status().code() == Code::unauthorized);
  }
  SUBCASE("bad base64 and missing fields") {
    nlohmann::json j = env.to_json();
    j["signature"] = "not base64!";
    CHECK(parse_envelope(j).status().code() == Code::unauthorized);
    j.erase("signature");
    CHECK(parse_envelope(j).status().code() == Code::invalid);
    CHECK(parse_envelope(nlohmann::json::array()).status().code() == Code::malformed);
  }
}

TEST_CASE("spec validation names the bad field") {
  Limits limits;
  limits.payload_bytes_max = 100;
  auto code = [&](nlohmann::json spec) { return parse_spec(spec, limits).status().code(); };
  CHECK(code({{"type", "echo"}, {"payload", 1}}) == Code::ok);
  CHECK(code({{"type", "nope"}, {"payload", 1}}) == Code::invalid);
  CHECK(code({{"payload", 1}}) == Code::invalid);
  CHECK(code({{"type", 3}}) == Code::invalid);
  CHECK(code({{"type", "echo"}, {"max_attempts", 0}}) == Code::invalid);
  CHECK(code({{"type", "echo"}, {"max_attempts", 21}}) == Code::invalid);
  CHECK(code({{"type", "echo"}, {"max_attempts", -1}}) == Code::invalid);
  CHECK(code({{"type", "echo"}, {"timeout_ms", "soon"}}) == Code::invalid);
  CHECK(code({{"type", "echo"}, {"colour", "red"}}) == Code::invalid);
  CHECK(code({{"type", "echo"}, {"payload", std::string(200, 'x')}}) == Code::too_large);
  CHECK(code({{"type", "sleep"}, {"payload", {{"ms", "long"}}}}) == Code::invalid);
  CHECK(code(nlohmann::json::array()) == Code::malformed);
}

TEST_CASE("bounded JSON parsing refuses deep nesting and garbage") {
  CHECK(parse_json_bounded("{\"a\":[1,2,{\"b\":null}]}").is_ok());
  CHECK(parse_json_bounded(std::string(64, '[') + std::string(64, ']')).is_ok());
  CHECK(!parse_json_bounded(std::string(65, '[') + std::string(65, ']')).is_ok());
  CHECK(!parse_json_bounded(std::string(1'000'000, '[')).is_ok());
  CHECK(parse_json_bounded("\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"")
            .is_ok());  // brackets inside strings do not count
  CHECK(!parse_json_bounded("{").is_ok());
  CHECK(!parse_json_bounded("").is_ok());
}

TEST_CASE("hex and base64 reject what they do not produce") {
  CHECK(from_hex(to_hex("abc")).value() == "abc");
  CHECK(!from_hex("abz").has_value());
  CHECK(!from_hex("a").has_value());
  CHECK(from_base64(to_base64("hello")).value() == "hello");
  CHECK(!from_base64("aGVsbG8=x").has_value());
  CHECK(!is_job_id("ABCDEF"));
  CHECK(!is_job_id(std::string(64, 'A')));
  CHECK(is_job_id(std::string(64, 'a')));
}

}  // namespace meshwork
