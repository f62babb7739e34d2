// The node's receipt checks (node/receipt_check.h): receipt_checker, the replica core's check on a
// node, against the keys gossip knows; check_node_result and the receipts endpoint's view
// (api/views.h); and check_receipts on a job document, all by the one rule of dht/receipt.h.
#include "node/receipt_check.h"

#include <doctest/doctest.h>

#include <string>

#include "api/views.h"
#include "node/crypto.h"
#include "node/job_runner.h"

namespace meshwork {
namespace {

const std::string kReceiptJob(64, 'c');

struct KeyedMesh {
  Identity n1 = Identity::generate();
  Identity n2 = Identity::generate();
  // What gossip knows: n1 and n2, raw keys.
  KeyOf key_of() const {
    return [this](const std::string& node) -> std::optional<std::string> {
      if (node == "n1") return n1.public_key();
      if (node == "n2") return n2.public_key();
      return std::nullopt;
    };
  }
  NodeKeys keys() const { return {{"n1", n1.public_key_b64()}, {"n2", n2.public_key_b64()}}; }
};

NodeResult ran(const Identity& key, const std::string& node, nlohmann::json result) {
  return JobRunner::sign_result(key, node, kReceiptJob, 1,
                                HandlerOutcome::success(std::move(result)), 5);
}

}  // namespace

TEST_CASE("the core's check on a node: gossip's key, the hash, the size") {
  KeyedMesh m;
  const ReceiptChecker check = receipt_checker(m.key_of());
  const NodeResult good = ran(m.n2, "n2", {{"nonce", 7}});
  CHECK(check(kReceiptJob, good) == ReceiptCheck::valid);

  NodeResult lie = good;
  lie.result = R"({"nonce":8})";  // a wrong result under a receipt for another
  CHECK(check(kReceiptJob, lie) == ReceiptCheck::forged);

  // Signed by a key of its own, naming n2: the key gossip knows for n2 decides.
  const Identity stranger = Identity::generate();
  CHECK(check(kReceiptJob, ran(stranger, "n2", {{"nonce", 7}})) == ReceiptCheck::forged);
  CHECK(check(kReceiptJob, ran(stranger, "ghost", {{"nonce", 7}})) == ReceiptCheck::unknown_node);

  NodeResult flipped = good;
  flipped.receipt.signature[3] = flipped.receipt.signature[3] == 'A' ? 'B' : 'A';
  CHECK(check(kReceiptJob, flipped) == ReceiptCheck::forged);

  CHECK(check(std::string(64, 'd'), good) == ReceiptCheck::forged);  // another job's receipt

  const NodeResult failed =
      JobRunner::sign_result(m.n1, "n1", kReceiptJob, 2, HandlerOutcome::failure("boom"), 5);
  CHECK(check(kReceiptJob, failed) == ReceiptCheck::valid);
}

TEST_CASE("the checker verifies one signature per batch, and never remembers a failure") {
  KeyedMesh m;
  auto verified = std::make_shared<VerifiedSignatures>();
  const ReceiptChecker check = receipt_checker(m.key_of(), verified);
  std::vector<Outcome> batch;
  for (int i = 0; i < 8; ++i) {
    const std::string id = blake2b_hex("job " + std::to_string(i));
    batch.push_back(
        Outcome{id, 1, JobRunner::result_of("n2", id, 1, HandlerOutcome::success({{"i", i}}), 5)});
  }
  JobRunner::sign_batch(m.n2, batch);
  for (const Outcome& o : batch) CHECK(check(o.id, o.result) == ReceiptCheck::valid);
  CHECK(verified->verifications() == 1);  // the second receipt on: no signature check
  CHECK(verified->size() == 1);

  // A tampered receipt of the same batch is refused before the cache is asked (proof, root) ...
  NodeResult moved = batch[3].result;
  moved.receipt.index = 4;
  CHECK(check(batch[3].id, moved) == ReceiptCheck::forged);
  NodeResult rerooted = batch[3].result;
  rerooted.receipt.root = batch[3].result.receipt.proof[0];
  CHECK(check(batch[3].id, rerooted) == ReceiptCheck::forged);
  // ... and a bad signature over the same root is checked, refused and not remembered.
  NodeResult flipped = batch[0].result;
  flipped.receipt.signature[3] = flipped.receipt.signature[3] == 'A' ? 'B' : 'A';
  CHECK(check(batch[0].id, flipped) == ReceiptCheck::forged);
  CHECK(check(batch[0].id, flipped) == ReceiptCheck::forged);
  CHECK(verified->verifications() == 3);
  CHECK(verified->size() == 1);
  // Another node's key for the same root message is another triple.
  NodeResult n1s = batch[0].result;
  n1s.receipt.node = "n1";
  n1s.receipt.public_key = m.n1.public_key_b64();
  CHECK(check(batch[0].id, n1s) == ReceiptCheck::forged);  // its proof names n2's messages
}

TEST_CASE("remembered signatures are bounded, the least recently used out") {
  const Identity key = Identity::generate();
  VerifiedSignatures verified(2);
  const auto sig = [&](const std::string& m) { return key.sign(m); };
  CHECK(verified.verify("a", sig("a"), key.public_key()));
  CHECK(verified.verify("b", sig("b"), key.public_key()));
  CHECK(verified.verify("a", sig("a"), key.public_key()));  // a is now the most recent
  CHECK(verified.verifications() == 2);
  CHECK(verified.verify("c", sig("c"), key.public_key()));  // b out
  CHECK(verified.size() == 2);
  CHECK(verified.verify("a", sig("a"), key.public_key()));
  CHECK(verified.verifications() == 3);
  CHECK(verified.verify("b", sig("b"), key.public_key()));
  CHECK(verified.verifications() == 4);
  CHECK_FALSE(verified.verify("a", sig("b"), key.public_key()));
  CHECK(verified.size() == 2);
}

TEST_CASE("a result over the limit is failed by its runner and refused by every checker") {
  KeyedMesh m;
  const std::string big(kResultBytesMax, 'x');
  const NodeResult r = ran(m.n1, "n1", {{"blob", big}});
  CHECK(r.outcome == JobState::failed);  // the runner does not sign what replicas would refuse
  CHECK(r.error.find("larger than") != std::string::npos);
  CHECK(receipt_checker(m.key_of())(kReceiptJob, r) == ReceiptCheck::valid);

  NodeResult forced = r;  // as a peer could send it anyway
  forced.outcome = JobState::succeeded;
  forced.result = "\"" + big + "\"";
  CHECK(receipt_checker(m.key_of())(kReceiptJob, forced) == ReceiptCheck::too_large);
}

TEST_CASE("the receipts view: each receipt's status and why, the job's redundancy") {
  KeyedMesh m;
  JobRecord r;
  r.id = kReceiptJob;
  r.envelope.job = R"({"type":"echo","payload":{},"redundancy":3})";
  r.redundancy = 3;
  r.status.attempt = 1;
  r.results["n1"] = ran(m.n1, "n1", {{"v", 1}});
  r.results["n2"] = ran(m.n2, "n2", {{"v", 1}});
  r.results["n2"].result = R"({"v":2})";          // tampered
  r.results["n3"] = ran(m.n1, "n1", {{"v", 1}});  // n1's receipt filed under n3
  const nlohmann::json v = api::receipts_view(r, m.keys());
  CHECK(v["id"] == kReceiptJob);
  CHECK(v["redundancy"] == 3);
  CHECK(v["verdict"]["decided"] == true);  // by their receipts' hashes: all three say {"v":1}
  CHECK(v["verdict"]["agreeing"].size() == 3);
  REQUIRE(v["receipts"].size() == 3);
  CHECK(v["receipts"][0]["node"] == "n1");
  CHECK(v["receipts"][0]["status"] == "valid");
  CHECK(v["receipts"][0]["why"].is_null());
  CHECK(v["receipts"][1]["status"] == "invalid");
  CHECK(v["receipts"][1]["why"] == "result_hash does not match the result");
  CHECK(v["receipts"][2]["status"] == "invalid");
  CHECK(v["receipts"][2]["why"] == "a receipt of n1 filed under n3");

  NodeKeys without_n2 = m.keys();
  without_n2.erase("n2");
  r.results["n2"] = ran(m.n2, "n2", {{"v", 1}});
  CHECK(api::receipts_view(r, without_n2)["receipts"][1]["status"] == "unchecked");

  r.redundancy = 1;
  CHECK(api::receipts_view(r, m.keys())["redundancy"] == 1);
  CHECK_FALSE(api::receipts_view(r, m.keys()).contains("verdict"));
}

TEST_CASE("check_receipts on a job document keeps its verdicts") {
  KeyedMesh m;
  JobRecord r;
  r.id = kReceiptJob;
  r.envelope.job = R"({"type":"echo","payload":{}})";
  r.envelope.public_key = std::string(32, 'k');
  r.status.state = JobState::succeeded;
  r.status.node = "n1";
  r.results["n1"] = ran(m.n1, "n1", {{"v", 1}});
  nlohmann::json doc = api::job_view(r, 0);
  auto verdicts = check_receipts(doc, m.keys());
  REQUIRE(verdicts.size() == 2);  // results.n1, then the top-level receipt
  CHECK(verdicts[0].kind == ReceiptVerdict::Kind::valid);
  CHECK(verdicts[1].kind == ReceiptVerdict::Kind::valid);
  doc["result"] = {{"v", 2}};
  verdicts = check_receipts(doc, m.keys());
  CHECK(verdicts[1].kind == ReceiptVerdict::Kind::invalid);
  CHECK(check_receipts(doc, {})[0].kind == ReceiptVerdict::Kind::unchecked);
}

}  // namespace meshwork
