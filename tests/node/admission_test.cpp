// Admission on the HTTP thread: plain jobs signed by the node, envelopes verified, signed-only
// nodes and allowed keys, refusals counted, submission times strictly increasing.
#include <doctest/doctest.h>

#include "node/admission.h"
#include "node/envelope.h"
#include "tests/node/test_util.h"

namespace meshwork {

TEST_CASE("a plain job is signed by the node; an envelope is verified and kept as sent") {
  const Identity node_key = Identity::generate(), client = Identity::generate();
  Admission a(node_key, "n1", {});
  auto plain = a.admit({{"type", "echo"}, {"payload", {{"x", 1}}}});
  REQUIRE(plain.is_ok());
  CHECK(plain.value().envelope.public_key == node_key.public_key());
  CHECK(plain.value().status.state == JobState::queued);
  CHECK(a.check(plain.value()));

  auto env = sign_plain_job({{"type", "echo"}, {"payload", 2}}, client, 5, Limits{});
  auto signed_job = a.admit(env.value().to_json());
  REQUIRE(signed_job.is_ok());
  CHECK(signed_job.value().id == env.value().id());
  CHECK(signed_job.value().envelope.public_key == client.public_key());

  nlohmann::json tampered = env.value().to_json();
  tampered["job"] = tampered["job"].get<std::string>() + " ";
  CHECK(a.admit(tampered).status().code() == Code::unauthorized);
  CHECK(a.admit({{"type", "nope"}, {"payload", {}}}).status().code() == Code::invalid);
  CHECK(a.rejected() == 2);

  JobRecord forged = signed_job.value();
  forged.envelope.signature[0] ^= 1;
  CHECK_FALSE(a.check(forged));
}

TEST_CASE("signed-only nodes refuse plain jobs; allowed keys restrict signers") {
  const Identity node_key = Identity::generate(), allowed = Identity::generate(),
                 stranger = Identity::generate();
  AdmissionOptions o;
  o.allowed_keys = std::set<std::string>{allowed.public_key()};
  Admission a(node_key, "n1", o);
  CHECK(a.admit({{"type", "echo"}}).status().code() == Code::unauthorized);
  auto ok = sign_plain_job({{"type", "echo"}}, allowed, 1, Limits{});
  CHECK(a.admit(ok.value().to_json()).is_ok());
  auto bad = sign_plain_job({{"type", "echo"}}, stranger, 1, Limits{});
  CHECK(a.admit(bad.value().to_json()).status().code() == Code::forbidden);

  AdmissionOptions signed_only;
  signed_only.require_signed = true;
  Admission b(node_key, "n1", signed_only);
  CHECK(b.admit({{"type", "echo"}}).status().code() == Code::unauthorized);
  CHECK(b.admit(bad.value().to_json()).is_ok());
}

TEST_CASE("a job's redundancy is 1..7 and at most the node's R, else 422") {
  const Identity node_key = Identity::generate();
  AdmissionOptions o;
  o.redundancy_max = 3;
  Admission a(node_key, "n1", o);
  auto job = [](nlohmann::json k) { return nlohmann::json{{"type", "echo"}, {"redundancy", k}}; };
  auto three = a.admit(job(3));
  REQUIRE(three.is_ok());
  CHECK(three.value().redundancy == 3);
  CHECK(a.admit({{"type", "echo"}}).value().redundancy == 1);
  for (const nlohmann::json& k : {nlohmann::json(4), nlohmann::json(0), nlohmann::json(8),
                                  nlohmann::json(-1), nlohmann::json("3")})
    CHECK(a.admit(job(k)).status().code() == Code::invalid);
  CHECK(a.rejected() == 5);
  // A peer's record of a job admitted where R is larger still checks (its spec is valid).
  Admission wide(node_key, "n2", {});
  auto five = wide.admit(job(5));
  REQUIRE(five.is_ok());
  CHECK(a.check(five.value()));
}

TEST_CASE("submissions through one node get strictly increasing times") {
  const Identity node_key = Identity::generate();
  Admission a(node_key, "n1", {});
  auto env = sign_plain_job({{"type", "echo"}, {"payload", 1}}, node_key, 5, Limits{});
  uint64_t last = 0;
  for (int i = 0; i < 100; ++i) {
    auto r = a.admit(env.value().to_json());  // the same envelope: a new submission each time
    REQUIRE(r.is_ok());
    REQUIRE_FALSE(r.value().history.empty());
    CHECK(r.value().history.front().at_ms > last);
    last = r.value().history.front().at_ms;
  }
}

}  // namespace meshwork
