// Receipts (dht/receipt.h) and the replica core's check of every peer record it merges
// (ReplicaConfig::receipt_check): the rule itself, then a stage of three cores with real Ed25519
// keys where peers send records carrying good, forged, oversized and unknown receipts.
#include "dht/receipt.h"

#include <doctest/doctest.h>
#include <sodium.h>

#include <map>
#include <string>

#include "dht/merkle.h"
#include "replica_harness.h"

namespace meshwork {
namespace {

using stage::Stage;

// Deterministic keys per node name: seed = BLAKE2b(name).
struct Keys {
  std::string pk, sk;
};
Keys keys_of(const std::string& node) {
  init_crypto();
  const std::string seed = blake2b(node);
  Keys k{std::string(crypto_sign_PUBLICKEYBYTES, '\0'),
         std::string(crypto_sign_SECRETKEYBYTES, '\0')};
  crypto_sign_seed_keypair(reinterpret_cast<unsigned char*>(k.pk.data()),
                           reinterpret_cast<unsigned char*>(k.sk.data()),
                           reinterpret_cast<const unsigned char*>(seed.data()));
  return k;
}

// A result of `node` for attempt `attempt`, signed as node/job_runner.cpp's sign_result does.
NodeResult signed_result(const std::string& job_id, const std::string& node, uint32_t attempt,
                         const std::string& text, JobState outcome = JobState::succeeded) {
  NodeResult r;
  r.attempt = attempt;
  r.outcome = outcome;
  (outcome == JobState::succeeded ? r.result : r.error) = text;
  r.at_ms = 1;
  const Keys k = keys_of(node);
  r.receipt = Receipt{job_id, node, attempt, blake2b_hex(text), to_base64(k.pk), ""};
  std::string sig(crypto_sign_BYTES, '\0');
  const std::string m = r.receipt.message();
  crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr,
                       reinterpret_cast<const unsigned char*>(m.data()), m.size(),
                       reinterpret_cast<const unsigned char*>(k.sk.data()));
  r.receipt.signature = to_base64(sig);
  return r;
}

// The key "the mesh knows": n1..n3 have one, anyone else is unknown.
std::optional<std::string> known(const std::string& node) {
  if (node != "n1" && node != "n2" && node != "n3") return std::nullopt;
  return to_base64(keys_of(node).pk);
}

size_t checks = 0;     // calls of the injected check
bool checking = true;  // false: every node accepts anything (to plant a forged copy on one)

ReplicaConfig checked() {
  ReplicaConfig c = stage::quiet();
  c.receipt_check = [](const std::string& id, const NodeResult& r) {
    ++checks;
    if (!checking) return ReceiptCheck::valid;
    return check_result(id, r, known(r.receipt.node)).check;
  };
  return c;
}

// Sends `rec` to node 0 as a replicate from `from` and returns node 0's answer for it.
ItemAck replicate(Stage& s, const std::string& from, const JobRecord& rec) {
  Replicate m;
  m.corr = 777;
  m.records.push_back(SharedRecord::of(rec));
  s.core(0).receive(s.now(), from, std::move(m));
  ItemAck a;
  a.ok = true;  // no answer yet: it waits for the disk, so the record was merged
  for (const Send& send : s.core(0).output().sends)
    if (const auto* ack = std::get_if<ReplicateAck>(&send.message);
        ack && send.to == from && ack->corr == 777)
      a = ack->items.at(0);
  s.read(0, rec.id);  // drains node 0's output into the stage
  s.settle();
  return a;
}

// A job all three nodes hold, queued.
JobRecord held_job(Stage& s) {
  JobRecord r = stage::job(1, s.now().wall_ms);
  s.submit(0, r);
  s.settle();
  return *s.copy(0, r.id);
}

}  // namespace

TEST_CASE("the rule: a valid receipt, and each way one is not") {
  const std::string id(64, 'a');
  const NodeResult good = signed_result(id, "n2", 1, "{\"x\":1}");
  CHECK(check_result(id, good, known("n2")).check == ReceiptCheck::valid);
  CHECK(check_result(id, good, std::nullopt).check == ReceiptCheck::unknown_node);
  CHECK(check_result(id, good, known("n3")).check == ReceiptCheck::forged);  // another's key
  CHECK(check_result(std::string(64, 'b'), good, known("n2")).check == ReceiptCheck::forged);

  NodeResult tampered = good;
  tampered.result = "{\"x\":2}";
  const ReceiptFinding f = check_result(id, tampered, known("n2"));
  CHECK(f.check == ReceiptCheck::forged);
  CHECK(f.why == "result_hash does not match the result");

  NodeResult wrong_attempt = good;
  wrong_attempt.attempt = 2;
  CHECK(check_result(id, wrong_attempt, known("n2")).check == ReceiptCheck::forged);

  NodeResult bad_signature = good;
  bad_signature.receipt.signature = to_base64(std::string(64, 'x'));
  CHECK(check_result(id, bad_signature, known("n2")).check == ReceiptCheck::forged);
  bad_signature.receipt.signature = "not base64";
  CHECK(check_result(id, bad_signature, known("n2")).check == ReceiptCheck::forged);

  const NodeResult failed = signed_result(id, "n2", 1, "boom", JobState::failed);
  CHECK(check_result(id, failed, known("n2")).check == ReceiptCheck::valid);

  const NodeResult big = signed_result(id, "n2", 1, std::string(kResultBytesMax + 1, 'x'));
  CHECK(check_result(id, big, known("n2")).check == ReceiptCheck::too_large);
  CHECK(receipt_check_name(ReceiptCheck::unknown_node) == "unknown_node");
}

namespace {

// Detached Ed25519 by `node`'s deterministic key.
std::string sign_as(const std::string& node, const std::string& m) {
  const Keys k = keys_of(node);
  std::string sig(crypto_sign_BYTES, '\0');
  crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr,
                       reinterpret_cast<const unsigned char*>(m.data()), m.size(),
                       reinterpret_cast<const unsigned char*>(k.sk.data()));
  return sig;
}

// Results of jobs ids[i] by `node`, signed together over one Merkle root (as
// JobRunner::sign_batch).
std::vector<NodeResult> batch_of(const std::vector<std::string>& ids, const std::string& node) {
  std::vector<NodeResult> out;
  std::vector<std::string> leaves;
  for (size_t i = 0; i < ids.size(); ++i) {
    NodeResult r = signed_result(ids[i], node, 1, "{\"i\":" + std::to_string(i) + "}");
    leaves.push_back(merkle_leaf(static_cast<uint32_t>(i), r.receipt.message()));
    out.push_back(std::move(r));
  }
  const MerkleTree t = merkle_tree(leaves);
  const std::string signature = to_base64(sign_as(node, root_message(node, to_hex(t.root))));
  for (size_t i = 0; i < out.size(); ++i) {
    Receipt& rc = out[i].receipt;
    rc.root = to_hex(t.root);
    rc.index = static_cast<uint32_t>(i);
    for (const std::string& sibling : t.proofs[i]) rc.proof.push_back(to_hex(sibling));
    rc.signature = signature;
  }
  return out;
}

}  // namespace

TEST_CASE("the rule for a batched receipt: its proof leads to a root the node signed") {
  const std::vector<std::string> ids = {std::string(64, 'a'), std::string(64, 'b'),
                                        std::string(64, 'c')};
  const std::vector<NodeResult> batch = batch_of(ids, "n2");
  for (size_t i = 0; i < ids.size(); ++i)
    CHECK(check_result(ids[i], batch[i], known("n2")).check == ReceiptCheck::valid);
  const NodeResult& good = batch[1];
  const auto why = [&](const NodeResult& r) {
    const ReceiptFinding f = check_result(ids[1], r, known("n2"));
    CHECK(f.check == ReceiptCheck::forged);
    return f.why;
  };
  NodeResult r = good;
  r.receipt.index = 0;
  CHECK(why(r) == "its inclusion proof does not lead to its root");
  r = good;
  r.receipt.proof[0] = batch[0].receipt.proof[0];
  CHECK(why(r) == "its inclusion proof does not lead to its root");
  r = good;
  r.receipt.proof.pop_back();
  CHECK(why(r) == "its inclusion proof does not lead to its root");
  r = good;
  r.receipt.proof.assign(kMerkleLevelsMax + 1, good.receipt.proof[0]);  // a huge proof
  CHECK(why(r) == "its inclusion proof does not lead to its root");
  r = good;
  r.receipt.index = UINT32_MAX;  // a bad index
  CHECK(why(r) == "its inclusion proof does not lead to its root");
  r = good;
  r.receipt.root = "not hex";
  CHECK(why(r) == "its inclusion proof does not lead to its root");
  // Another root that the proof does lead to (a batch the node never signed): the signature fails.
  const std::vector<NodeResult> other = batch_of(ids, "n3");
  r = good;
  r.receipt.root = to_hex(merkle_root_of(merkle_leaf(1, r.receipt.message()), 1,
                                         {merkle_leaf(0, "x"), merkle_leaf(0, "y")})
                              .value());
  r.receipt.proof = {to_hex(merkle_leaf(0, "x")), to_hex(merkle_leaf(0, "y"))};
  CHECK(why(r) == "the signature does not verify with n2's key");
  // Another node's batch signature on this node's root: refused.
  r = good;
  r.receipt.signature = other[1].receipt.signature;
  CHECK(why(r) == "the signature does not verify with n2's key");
  // A batched receipt's signature does not pass for an unbatched one, nor the other way round.
  r = good;
  r.receipt.root.clear();
  r.receipt.proof.clear();
  r.receipt.index = 0;
  CHECK(why(r) == "the signature does not verify with n2's key");
  NodeResult single = signed_result(ids[1], "n2", 1, good.result);
  single.receipt.root = good.receipt.root;
  single.receipt.proof = good.receipt.proof;
  single.receipt.index = 1;
  CHECK(why(single) == "the signature does not verify with n2's key");
  // The checker's own signature check is used when given.
  size_t calls = 0;
  const SignatureCheck counting = [&](std::string_view m, std::string_view s, std::string_view k) {
    ++calls;
    return verify_signature(m, s, k);
  };
  CHECK(check_result(ids[0], batch[0], known("n2"), counting).check == ReceiptCheck::valid);
  CHECK(calls == 1);
}

TEST_CASE("check_result_raw_key finds what check_result finds with the key as base64") {
  const std::vector<std::string> ids = {std::string(64, 'a'), std::string(64, 'b'),
                                        std::string(64, 'c')};
  const std::vector<NodeResult> batch = batch_of(ids, "n2");
  std::vector<NodeResult> variants = {batch[1], signed_result(ids[1], "n2", 1, "{}"),
                                      signed_result(ids[1], "n1", 1, "{}"),
                                      signed_result(ids[1], "ghost", 1, "{}")};
  const auto vary = [&](auto&& change) {
    NodeResult r = batch[1];
    change(r);
    variants.push_back(r);
  };
  vary([](NodeResult& r) { r.result += " "; });
  vary([](NodeResult& r) { r.attempt = 2; });
  vary([](NodeResult& r) { r.receipt.index = 0; });
  vary([](NodeResult& r) { r.receipt.root = "not hex"; });
  vary([](NodeResult& r) { r.receipt.public_key = to_base64(keys_of("n3").pk); });
  vary([](NodeResult& r) { r.receipt.public_key.pop_back(); });
  vary([](NodeResult& r) { r.receipt.signature[3] = r.receipt.signature[3] == 'A' ? 'B' : 'A'; });
  vary([](NodeResult& r) { r.receipt.signature = "not base64"; });
  vary([](NodeResult& r) { r.receipt.signature = to_base64("short"); });
  vary([](NodeResult& r) { r.result.assign(kResultBytesMax + 1, 'x'); });
  size_t valid = 0;
  for (const NodeResult& r : variants) {
    for (const std::string& id : {ids[1], ids[0]}) {
      for (const std::string& as : {std::string("n1"), std::string("n2"), std::string("ghost")}) {
        const std::optional<std::string> b64 = known(as);
        const std::optional<std::string> raw =
            b64 ? std::optional<std::string>(keys_of(as).pk) : std::nullopt;
        const ReceiptFinding want = check_result(id, r, b64);
        const ReceiptFinding got = check_result_raw_key(id, r, raw);
        CHECK(got.check == want.check);
        CHECK(got.why == want.why);
        valid += want.check == ReceiptCheck::valid;
      }
    }
  }
  CHECK(valid > 0);
}

TEST_CASE("a forged receipt in a replicate is refused whole, counted, and its sender distrusted") {
  Stage s(3, checked());
  const JobRecord base = held_job(s);

  JobRecord good = base;
  good.results["n2"] = signed_result(base.id, "n2", 1, "{\"ok\":true}");
  CHECK(replicate(s, "n2", good).ok);
  REQUIRE(s.copy(0, base.id)->results.contains("n2"));

  JobRecord forged = *s.copy(0, base.id);
  forged.results["n3"] = signed_result(base.id, "n3", 1, "{\"ok\":true}");
  forged.results["n3"].result = "{\"ok\":false}";  // the receipt vouches for another result
  const ItemAck ack = replicate(s, "n3", forged);
  CHECK_FALSE(ack.ok);
  CHECK_FALSE(s.copy(0, base.id)->results.contains("n3"));  // nothing of it merged
  const ReplicaStats& st = s.core(0).stats();
  CHECK(st.receipts_refused == 1);
  CHECK(st.receipts_forged == 1);
  CHECK(s.core(0).reputation().counts("n3").forged == 1);
  CHECK_FALSE(s.core(0).reputation().trusted("n3"));
  CHECK(s.core(0).placement().distrusted("n3"));
  CHECK_FALSE(s.core(0).placement().usable("n3"));  // it holds and runs nothing in n1's view
  for (int n = 0; n < 20; ++n) {
    const JobRecord r = stage::job(100 + n, s.now().wall_ms);
    const auto list = s.core(0).placement().replicas(r.id);
    CHECK(std::find(list.begin(), list.end(), "n3") == list.end());
  }

  // Filed under another node than the one its receipt names: forged too.
  JobRecord misfiled = *s.copy(0, base.id);
  misfiled.results["n1"] = signed_result(base.id, "n2", 1, "{\"ok\":true}");
  CHECK_FALSE(replicate(s, "n2", misfiled).ok);
  CHECK(s.core(0).stats().receipts_forged == 2);
}

TEST_CASE("a fetched copy with a forged receipt is dropped and its sender scored") {
  Stage s(3, checked());
  const JobRecord base = held_job(s);
  JobRecord forged = base;
  forged.results["n2"] = signed_result(base.id, "n2", 1, "{\"ok\":true}");
  forged.results["n2"].result = "{\"ok\":false}";
  checking = false;  // n2 takes it unchecked, as a node without the check would
  Replicate m;
  m.corr = 1;
  m.records.push_back(SharedRecord::of(forged));
  s.core(1).receive(s.now(), "n3", std::move(m));
  checking = true;
  s.settle();
  REQUIRE(s.copy(1, base.id)->results.contains("n2"));

  const uint64_t request = s.read(0, base.id);  // asks n2 and n3 for their copies
  s.settle();
  const Reply& answer = stage::reply(s, 0, request);
  REQUIRE(answer.items.at(0).record);
  CHECK_FALSE(answer.items.at(0).record->results.contains("n2"));  // n2's copy was dropped
  CHECK_FALSE(s.copy(0, base.id)->results.contains("n2"));
  CHECK(s.core(0).stats().receipts_forged == 1);
  CHECK(s.core(0).reputation().counts("n2").forged == 1);
}

TEST_CASE("a result this node already holds identically is not checked again") {
  Stage s(3, checked());
  const JobRecord base = held_job(s);
  JobRecord good = base;
  good.results["n2"] = signed_result(base.id, "n2", 1, "{\"ok\":true}");
  CHECK(replicate(s, "n2", good).ok);
  const size_t before = checks;
  good.updated_at_ms += 5;  // a newer copy with the same result
  CHECK(replicate(s, "n2", good).ok);
  CHECK(checks == before);
}

TEST_CASE("an oversized result is refused without scoring its sender") {
  Stage s(3, checked());
  const JobRecord base = held_job(s);
  JobRecord big = base;
  big.results["n2"] = signed_result(base.id, "n2", 1, std::string(kResultBytesMax + 1, 'x'));
  CHECK_FALSE(replicate(s, "n2", big).ok);
  CHECK(s.core(0).stats().receipts_too_large == 1);
  CHECK(s.core(0).stats().receipts_refused == 1);
  CHECK(s.core(0).reputation().counts("n2").forged == 0);
  CHECK(s.core(0).reputation().trusted("n2"));
}

TEST_CASE("an unknown node's receipt: refused in a live record, kept in a finished one relayed") {
  Stage s(3, checked());
  const JobRecord base = held_job(s);
  JobRecord live = base;
  live.results["ghost"] = signed_result(base.id, "ghost", 1, "{\"ok\":true}");
  CHECK_FALSE(replicate(s, "n2", live).ok);
  CHECK(s.core(0).stats().receipts_unknown_node == 1);
  CHECK(s.core(0).reputation().counts("n2").forged == 0);

  // The same evidence in a finished record, sent by the ghost itself: still refused.
  JobRecord done = live;
  done.status = base.status.next(JobState::succeeded, 1, "ghost", base.status.at_ms + 1, "", 0);
  CHECK_FALSE(replicate(s, "ghost", done).ok);
  CHECK(s.core(0).stats().receipts_unknown_node == 2);

  // ... relayed by another member: kept, counted as unchecked.
  CHECK(replicate(s, "n2", done).ok);
  CHECK(s.copy(0, base.id)->results.contains("ghost"));
  CHECK(s.core(0).stats().receipts_unchecked == 1);
  CHECK(s.core(0).stats().receipts_refused == 2);
}

TEST_CASE("without a check every receipt is accepted") {
  Stage s(3, stage::quiet());
  const JobRecord base = held_job(s);
  JobRecord forged = base;
  forged.results["n3"] = signed_result(base.id, "n3", 1, "{\"ok\":true}");
  forged.results["n3"].receipt.signature = "x";
  CHECK(replicate(s, "n3", forged).ok);
  CHECK(s.core(0).stats().receipts_refused == 0);
}

TEST_CASE("placement: a distrusted member is not usable, version moves, self never") {
  Placement p("n1", {{"n2", MemberState::alive}, {"n3", MemberState::alive}}, {}, 1);
  const uint64_t v = p.version();
  CHECK(p.set_distrusted("n2", true));
  CHECK(p.version() > v);
  CHECK_FALSE(p.usable("n2"));
  CHECK_FALSE(p.set_distrusted("n2", true));  // no change
  CHECK_FALSE(p.set_distrusted("n1", true));  // never self
  CHECK(p.usable("n1"));
  CHECK(p.members().contains("n2"));  // still a ring member
  CHECK(p.ring().member_count() == 3);
  for (int n = 0; n < 50; ++n) {
    const auto list = p.replicas("job" + std::to_string(n));
    CHECK(std::find(list.begin(), list.end(), "n2") == list.end());
  }
  CHECK(p.set_distrusted("n2", false));
  CHECK(p.usable("n2"));
}

}  // namespace meshwork
