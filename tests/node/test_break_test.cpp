// --test-break lie|forge (node/test_break.h): a liar signs a wrong result validly, a forger signs
// the honest result with a signature that does not verify; every other value keeps the honest
// signer.
#include <doctest/doctest.h>

#include "dht/receipt.h"
#include "node/test_break.h"

namespace meshwork {
namespace {

const HandlerOutcome kBreakPow = HandlerOutcome::success(
    {{"nonce", 41}, {"hash", "00ab"}, {"hashes", 42}, {"difficulty_bits", 8}});

bool break_receipt_verifies(const NodeResult& r, const Identity& key) {
  return check_result("j", r, key.public_key_b64()).check == ReceiptCheck::valid;
}

// `outcome` of job "j" attempt `attempt`, signed by `signer` as a batch of one.
NodeResult signed_by(JobRunner::Signer signer, const Identity& key, uint32_t attempt,
                     const HandlerOutcome& outcome) {
  std::vector<Outcome> batch{
      Outcome{"j", attempt, JobRunner::result_of("n1", "j", attempt, outcome, 5)}};
  signer(key, batch);
  return batch.front().result;
}

}  // namespace

TEST_CASE("only lie and forge break the signer") {
  const JobRunner::Signer honest = &JobRunner::sign_batch;
  CHECK((result_signer("") == honest));
  CHECK((result_signer("skip-takeover") == honest));
  CHECK((result_signer("lie") != honest));
  CHECK((result_signer("forge") != honest));
}

TEST_CASE("a liar's result is wrong and its receipt verifies") {
  const Identity key = Identity::generate();
  const NodeResult honest = JobRunner::sign_result(key, "n1", "j", 1, kBreakPow, 5);
  const NodeResult lie = signed_by(result_signer("lie"), key, 1, kBreakPow);
  CHECK(lie.outcome == JobState::succeeded);
  CHECK(lie.result != honest.result);
  const auto lied = nlohmann::json::parse(lie.result);
  CHECK(lied["nonce"] == 40);
  CHECK(lied["hash"] == "00ab");
  CHECK(lie.receipt.result_hash == blake2b_hex(lie.result));
  CHECK(lie.receipt.result_hash != honest.receipt.result_hash);
  CHECK(break_receipt_verifies(lie, key));
}

TEST_CASE("a liar reports failures as they are") {
  const Identity key = Identity::generate();
  const auto failure = HandlerOutcome::failure("no");
  const NodeResult lie = signed_by(result_signer("lie"), key, 2, failure);
  CHECK(lie.outcome == JobState::failed);
  CHECK(lie.error == "no");
  CHECK(break_receipt_verifies(lie, key));
}

TEST_CASE("a forger's result is honest and its receipt does not verify") {
  const Identity key = Identity::generate();
  const NodeResult honest = JobRunner::sign_result(key, "n1", "j", 1, kBreakPow, 5);
  const NodeResult forged = signed_by(result_signer("forge"), key, 1, kBreakPow);
  CHECK(forged.result == honest.result);
  CHECK(forged.receipt.result_hash == honest.receipt.result_hash);
  CHECK(forged.receipt.signature != honest.receipt.signature);
  CHECK(break_receipt_verifies(honest, key));
  CHECK_FALSE(break_receipt_verifies(forged, key));
}

TEST_CASE("the lie differs from the honest result whatever its shape") {
  using nlohmann::json;
  CHECK(result_lie(json{{"echo", {{"n", 1}}}}) == json{{"echo", {{"lie", {{"n", 1}}}}}});
  CHECK(result_lie(json{{"slept_ms", 0}}) == json{{"slept_ms", 1}});
  CHECK(result_lie(json{{"b", -3}, {"a", "x"}}) == json{{"b", -4}, {"a", "x"}});
  CHECK(result_lie(json::object()) == json{{"lie", json::object()}});
  CHECK(result_lie(json("text")) == json{{"lie", "text"}});
  CHECK(result_lie(nullptr) == json{{"lie", nullptr}});
}

}  // namespace meshwork
