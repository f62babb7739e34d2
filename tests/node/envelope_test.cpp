// Envelopes: signatures (alone and per batch), ids, spec validation, and the bounded JSON parser.
#include <doctest/doctest.h>

#include "node/envelope.h"
#include "node/json_bounded.h"
#include "node/receipt_check.h"

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

namespace {

// `n` distinct signed job texts (another `nonce` prefix: other jobs).
std::vector<std::string> job_texts(size_t n, const std::string& nonce = "n") {
  std::vector<std::string> texts;
  for (size_t i = 0; i < n; ++i)
    texts.push_back(nlohmann::json{
        {"type", "echo"},
        {"payload", {{"i", i}}},
        {"nonce", nonce + std::to_string(i)},
        {"created_at",
         5}}.dump());
  return texts;
}

Code open_code(const Envelope& env) {
  return open_envelope(env, Limits{}).status().code();
}

}  // namespace

TEST_CASE("jobs signed in a batch open one by one, with the ids they have when signed alone") {
  const Identity key = Identity::generate();
  for (size_t n : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{64}}) {
    CAPTURE(n);
    const std::vector<std::string> texts = job_texts(n);
    const std::vector<Envelope> envs = sign_job_batch(texts, key);
    REQUIRE(envs.size() == n);
    for (size_t i = 0; i < n; ++i) {
      const Envelope& env = envs[i];
      CHECK(env.batched());
      CHECK(env.index == i);
      CHECK(env.root == envs.front().root);
      CHECK(env.signature == envs.front().signature);  // one signature for the batch
      CHECK(env.proof.size() == (n == 1 ? 0 : n <= 2 ? 1 : n <= 4 ? 2 : n <= 8 ? 3 : 6));
      CHECK(env.id() == blake2b_hex(texts[i], key.public_key()));
      Envelope alone{texts[i], key.public_key(), key.sign(texts[i])};
      CHECK(alone.id() == env.id());
      CHECK(open_code(env) == Code::ok);
      auto parsed = parse_envelope(env.to_json());  // what a client sends and a view shows
      REQUIRE(parsed.is_ok());
      CHECK(parsed.value().root == env.root);
      CHECK(parsed.value().index == env.index);
      CHECK(parsed.value().proof == env.proof);
      CHECK(open_code(parsed.value()) == Code::ok);
    }
  }
}

TEST_CASE("every alteration of a batch-signed envelope fails to open") {
  const Identity key = Identity::generate();
  const std::vector<Envelope> envs = sign_job_batch(job_texts(5), key);
  for (size_t i = 0; i < envs.size(); ++i) {
    CAPTURE(i);
    const Envelope& good = envs[i];
    REQUIRE(open_code(good) == Code::ok);
    const auto altered = [&](auto&& change) {
      Envelope e = good;
      change(e);
      return open_code(e);
    };
    CHECK(altered([](Envelope& e) { e.job.insert(e.job.size() - 1, " "); }) == Code::unauthorized);
    CHECK(altered([&](Envelope& e) { e.job = envs[(i + 1) % envs.size()].job; }) ==
          Code::unauthorized);  // another job of the batch at this position
    for (uint32_t other = 0; other < 8; ++other)
      if (other != i) CHECK(altered([&](Envelope& e) { e.index = other; }) == Code::unauthorized);
    for (size_t k = 0; k < good.proof.size(); ++k)
      for (size_t c : {size_t{0}, size_t{63}})
        CHECK(altered([&](Envelope& e) { e.proof[k][c] = e.proof[k][c] == '0' ? '1' : '0'; }) ==
              Code::unauthorized);
    CHECK(altered([](Envelope& e) { e.proof.pop_back(); }) == Code::unauthorized);
    CHECK(altered([](Envelope& e) { e.proof.push_back(std::string(64, '0')); }) ==
          Code::unauthorized);
    CHECK(altered([&](Envelope& e) { e.proof = envs[(i + 1) % envs.size()].proof; }) ==
          Code::unauthorized);
    CHECK(altered([](Envelope& e) { e.root[10] = e.root[10] == 'a' ? 'b' : 'a'; }) ==
          Code::unauthorized);
    CHECK(altered([](Envelope& e) { e.signature[0] ^= 1; }) == Code::unauthorized);
    CHECK(altered([](Envelope& e) { e.public_key = Identity::generate().public_key(); }) ==
          Code::unauthorized);
    CHECK(altered([](Envelope& e) {  // the batch's signature read as one over the job itself
            e.root.clear();
            e.index = 0;
            e.proof.clear();
          }) == Code::unauthorized);
    // A proof of another batch by the same key does not carry this job.
    const std::vector<Envelope> other = sign_job_batch(job_texts(6, "other"), key);
    CHECK(altered([&](Envelope& e) {
            e.root = other[i].root;
            e.proof = other[i].proof;
            e.signature = other[i].signature;
          }) == Code::unauthorized);
  }
  // A signature of the root message by another key, or of a receipt root by the same key.
  Envelope e = envs[2];
  e.signature = Identity::generate().sign(jobs_root_message(e.root));
  CHECK(open_code(e) == Code::unauthorized);
  e.signature = key.sign("meshwork-receipts-v2|n1|" + e.root);
  CHECK(open_code(e) == Code::unauthorized);
}

TEST_CASE("malformed batch fields are refused before anything is verified") {
  const Identity key = Identity::generate();
  const nlohmann::json good = sign_job_batch(job_texts(3), key)[2].to_json();
  REQUIRE(parse_envelope(good).is_ok());
  const auto code = [&](auto&& change) {
    nlohmann::json j = good;
    change(j);
    return parse_envelope(j).status().code();
  };
  using nlohmann::json;
  CHECK(code([](json& j) { j["root"] = "zz"; }) == Code::invalid);
  CHECK(code([](json& j) { j["root"] = std::string(64, 'A'); }) == Code::invalid);
  CHECK(code([](json& j) { j["root"] = 7; }) == Code::invalid);
  CHECK(code([](json& j) { j["index"] = -1; }) == Code::invalid);
  CHECK(code([](json& j) { j["index"] = uint64_t{1} << 32; }) == Code::invalid);
  CHECK(code([](json& j) { j["index"] = "2"; }) == Code::invalid);
  CHECK(code([](json& j) { j.erase("index"); }) == Code::invalid);
  CHECK(code([](json& j) { j["index"] = 4; }) == Code::invalid);  // past a proof of 2 siblings
  CHECK(code([](json& j) { j["proof"] = "ab"; }) == Code::invalid);
  CHECK(code([](json& j) { j["proof"] = json::array({"00"}); }) == Code::invalid);
  CHECK(code([](json& j) { j["proof"] = json::array({1, 2}); }) == Code::invalid);
  CHECK(code([](json& j) {
          j["proof"] = std::vector<std::string>(kMerkleLevelsMax + 1, std::string(64, '0'));
        }) == Code::invalid);
  CHECK(code([](json& j) { j.erase("proof"); }) == Code::invalid);
  CHECK(code([](json& j) { j.erase("root"); }) == Code::invalid);  // a proof without a root
  // The longest proof is read (and then fails to lead to the root), any index fits it.
  nlohmann::json longest = good;
  longest["proof"] = std::vector<std::string>(kMerkleLevelsMax, std::string(64, '0'));
  longest["index"] = UINT32_MAX;
  auto parsed = parse_envelope(longest);
  REQUIRE(parsed.is_ok());
  CHECK(open_code(parsed.value()) == Code::unauthorized);
}

TEST_CASE("a batch's signature is verified once; the proofs are checked every time") {
  const Identity key = Identity::generate();
  const std::vector<Envelope> envs = sign_job_batch(job_texts(100), key);
  VerifiedSignatures verified;
  for (const Envelope& env : envs) CHECK(open_envelope(env, Limits{}, &verified).is_ok());
  CHECK(verified.verifications() == 1);
  for (const Envelope& env : envs) CHECK(open_envelope(env, Limits{}, &verified).is_ok());
  CHECK(verified.verifications() == 1);
  Envelope moved = envs[3];
  moved.index = 4;  // the cached signature does not excuse a proof that fails
  CHECK(open_envelope(moved, Limits{}, &verified).status().code() == Code::unauthorized);
  Envelope forged = envs[3];
  forged.signature[5] ^= 1;  // another signature: verified, fails, not remembered
  CHECK(open_envelope(forged, Limits{}, &verified).status().code() == Code::unauthorized);
  CHECK(open_envelope(forged, Limits{}, &verified).status().code() == Code::unauthorized);
  CHECK(verified.verifications() == 3);
  for (const Envelope& env : sign_job_batch(job_texts(10), Identity::generate()))
    CHECK(open_envelope(env, Limits{}, &verified).is_ok());
  CHECK(verified.verifications() == 4);  // one per (key, root, signature)
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
