// Admission on the HTTP thread: plain jobs signed by the node, envelopes verified, signed-only
// nodes and allowed keys, refusals counted, submission times strictly increasing; batches signed
// once (by a client, or by the node for plain jobs) and verified once per node.
#include <doctest/doctest.h>

#include <set>

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

TEST_CASE("a job that entered through this node costs its worker's check no second verification") {
  const Identity node_key = Identity::generate(), other_key = Identity::generate();
  const Identity client = Identity::generate();
  Admission here(node_key, "n1", {}), there(other_key, "n2", {});
  auto plain = here.admit({{"type", "echo"}, {"payload", {{"x", 1}}}});
  REQUIRE(plain.is_ok());
  CHECK(here.check(plain.value()));
  CHECK(here.job_verifications() == 0);  // signed here: remembered, not verified
  CHECK(there.check(plain.value()));
  CHECK(there.check(plain.value()));
  CHECK(there.job_verifications() == 1);  // another node verifies it, once

  auto env = sign_plain_job({{"type", "echo"}, {"payload", 2}}, client, 5, Limits{});
  auto admitted = here.admit(env.value().to_json());
  REQUIRE(admitted.is_ok());
  CHECK(here.job_verifications() == 1);  // verified at admission
  CHECK(here.check(admitted.value()));
  CHECK(here.job_verifications() == 1);  // and not again at the check

  // What it neither signed nor verified is verified, and fails when it should.
  JobRecord altered = plain.value();
  altered.envelope.job += " ";
  CHECK_FALSE(here.check(altered));
  JobRecord forged = admitted.value();
  forged.envelope.signature[0] ^= 1;
  CHECK_FALSE(here.check(forged));
  CHECK(here.job_verifications() == 3);
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

namespace {

using nlohmann::json;

// A batch body of `n` echo jobs signed once by `key`: {"jobs": [{"job": text}...], ...}.
json signed_batch(const Identity& key, size_t n, std::vector<std::string>* texts_out = nullptr) {
  std::vector<std::string> texts;
  json jobs = json::array();
  for (size_t i = 0; i < n; ++i) {
    texts.push_back(json{
        {"type", "echo"}, {"payload", i}, {"nonce", "b" + std::to_string(i)}, {"created_at", 7}}
                        .dump());
    jobs.push_back({{"job", texts.back()}});
  }
  const std::vector<Envelope> envs = sign_job_batch(texts, key);
  if (texts_out) *texts_out = texts;
  return {{"jobs", jobs},
          {"public_key", key.public_key_b64()},
          {"signature", to_base64(envs.front().signature)}};
}

}  // namespace

TEST_CASE("a batch signed once is verified once, whole, and each job keeps its own proof") {
  const Identity node_key = Identity::generate(), client = Identity::generate();
  Admission a(node_key, "n1", {});
  std::vector<std::string> texts;
  const json body = signed_batch(client, 100, &texts);
  auto got = a.admit_signed_batch(body);
  REQUIRE(got.is_ok());
  REQUIRE(got.value().size() == 100);
  CHECK(a.root_verifications() == 1);
  for (size_t i = 0; i < texts.size(); ++i) {
    REQUIRE(got.value()[i].is_ok());
    const JobRecord& r = got.value()[i].value();
    CHECK(r.id == blake2b_hex(texts[i], client.public_key()));
    CHECK(r.envelope.index == i);
    CHECK(r.envelope.batched());
    CHECK(a.check(r));  // the worker's check: the root is remembered
  }
  CHECK(a.root_verifications() == 1);
  // The same job signed alone is the same job.
  auto alone = a.admit(Envelope{texts[5], client.public_key(), client.sign(texts[5])}.to_json());
  REQUIRE(alone.is_ok());
  CHECK(alone.value().id == got.value()[5].value().id);
  CHECK(a.rejected() == 0);

  const auto code = [&](json b) { return a.admit_signed_batch(b).status().code(); };
  json tampered = body;
  tampered["signature"] = to_base64(client.sign("meshwork-jobs-v1|" + std::string(64, '0')));
  CHECK(code(tampered) == Code::unauthorized);
  json reordered = body;
  std::swap(reordered["jobs"][0], reordered["jobs"][1]);  // the root is over the jobs in order
  CHECK(code(reordered) == Code::unauthorized);
  json dropped = body;
  dropped["jobs"].erase(dropped["jobs"].size() - 1);
  CHECK(code(dropped) == Code::unauthorized);
  json changed = body;
  changed["jobs"][50]["job"] = texts[50] + " ";
  CHECK(code(changed) == Code::unauthorized);
  json stranger = body;
  stranger["public_key"] = Identity::generate().public_key_b64();
  CHECK(code(stranger) == Code::unauthorized);
  json mixed = body;
  mixed["jobs"][3]["signature"] = body["signature"];  // an envelope inside a signed batch
  CHECK(code(mixed) == Code::invalid);
  mixed = body;
  mixed["jobs"][3] = {{"type", "echo"}};  // a plain job inside a signed batch
  CHECK(code(mixed) == Code::invalid);
  mixed = body;
  mixed["jobs"][3] = texts[3];  // a bare string
  CHECK(code(mixed) == Code::invalid);
  json empty = body;
  empty["jobs"] = json::array();
  CHECK(code(empty) == Code::invalid);
  json no_key = body;
  no_key.erase("public_key");
  CHECK(code(no_key) == Code::malformed);
  json bad_b64 = body;
  bad_b64["signature"] = "nope";
  CHECK(code(bad_b64) == Code::unauthorized);
  CHECK(a.root_verifications() == 6);  // each refused signature was verified, none remembered
  CHECK(a.rejected() == 11);
}

TEST_CASE("in a signed batch a bad job is refused alone; the key policy holds for all") {
  const Identity node_key = Identity::generate(), client = Identity::generate();
  std::vector<std::string> texts = {
      json{{"type", "echo"}, {"nonce", "1"}, {"created_at", 1}}.dump(),
      json{{"type", "nope"}, {"nonce", "2"}, {"created_at", 1}}.dump(),
      json{{"type", "echo"}, {"nonce", "3"}}.dump()};
  const std::vector<Envelope> envs = sign_job_batch(texts, client);
  json body = {{"jobs", json::array()},
               {"public_key", client.public_key_b64()},
               {"signature", to_base64(envs.front().signature)}};
  for (const std::string& t : texts) body["jobs"].push_back({{"job", t}});
  Admission a(node_key, "n1", {});
  auto got = a.admit_signed_batch(body);
  REQUIRE(got.is_ok());
  CHECK(got.value()[0].is_ok());
  CHECK(got.value()[1].status().code() == Code::invalid);  // unknown type
  CHECK(got.value()[2].status().code() == Code::invalid);  // no created_at
  AdmissionOptions o;
  o.allowed_keys = std::set<std::string>{node_key.public_key()};
  Admission strict(node_key, "n1", o);
  auto refused = strict.admit_signed_batch(body);
  REQUIRE(refused.is_ok());
  CHECK(refused.value()[0].status().code() == Code::forbidden);
}

TEST_CASE("the plain jobs of a batch are signed together by the node, once") {
  const Identity node_key = Identity::generate(), client = Identity::generate();
  Admission a(node_key, "n1", {});
  json items = json::array();
  for (int i = 0; i < 10; ++i) items.push_back({{"type", "echo"}, {"payload", i}});
  auto env = sign_plain_job({{"type", "echo"}, {"payload", "x"}}, client, 5, Limits{});
  items.push_back(env.value().to_json());
  items.push_back(7);                   // not an object
  items.push_back({{"type", "nope"}});  // refused: not in the tree
  auto got = a.admit_batch(items);
  REQUIRE(got.size() == 13);
  std::set<std::string> roots, signatures;
  for (int i = 0; i < 10; ++i) {
    REQUIRE(got[i].is_ok());
    const Envelope& e = got[i].value().envelope;
    CHECK(e.public_key == node_key.public_key());
    CHECK(e.index == uint32_t(i));
    roots.insert(e.root);
    signatures.insert(e.signature);
    CHECK(a.check(got[i].value()));
  }
  CHECK(roots.size() == 1);
  CHECK(signatures.size() == 1);
  CHECK(a.root_verifications() == 0);  // signed here: the workers' checks of the ten look it up
  const Identity other_key = Identity::generate();
  Admission other(other_key, "n2", {});
  for (int i = 0; i < 10; ++i) CHECK(other.check(got[i].value()));
  CHECK(other.root_verifications() == 1);  // another node's checks of the ten: one verification
  REQUIRE(got[10].is_ok());
  CHECK(got[10].value().id == env.value().id());
  CHECK_FALSE(got[10].value().envelope.batched());
  CHECK(got[11].status().code() == Code::malformed);
  CHECK(got[12].status().code() == Code::invalid);
  CHECK(a.rejected() == 2);
  // One plain job alone is signed as POST /v1/jobs signs it.
  auto one = a.admit_batch(json::array({{{"type", "echo"}}}));
  REQUIRE(one.front().is_ok());
  CHECK_FALSE(one.front().value().envelope.batched());
  CHECK(a.check(one.front().value()));
  // A signed-only node refuses the plain ones and still verifies the envelope.
  AdmissionOptions o;
  o.require_signed = true;
  Admission strict(node_key, "n1", o);
  auto refused = strict.admit_batch(items);
  CHECK(refused[0].status().code() == Code::unauthorized);
  CHECK(refused[10].is_ok());
}

}  // namespace meshwork
