// `tx-verify`: verifies and applies a batch of simulated Ed25519-signed transfers, like a block
// validator. The batch is either explicit (accounts + signed txs) or generated from a seed.
//
// Each tx signs the canonical bytes  "meshwork-tx-v1|<from>|<to>|<amount>|<nonce>"  where from/to
// are standard base64 (with padding) of the 32-byte public keys and amount/nonce are decimal.
// Txs are checked in order: signature, known sender, nonce == sender's next nonce (from 0),
// balance >= amount, recipient balance does not overflow; valid txs are applied at once.
// merkle_root: binary BLAKE2b-256 tree over the hashes of the *applied* txs in batch order,
// tx hash = BLAKE2b-256(canonical bytes || 64-byte signature), parent = BLAKE2b-256(left || right),
// an odd level duplicates its last hash, one leaf is its own root, no leaves gives 32 zero bytes.
//
// Thread-safety: reentrant; all state is local to one call.
// Invariants: the result is a pure function of the payload; the generator's planned invalid txs
// are exactly the ones the verifier rejects, so generated.bad_planned == invalid.
#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "node/handler_impl.h"

namespace meshwork::handler_impl {
namespace {

constexpr size_t kTxsMax = 10'000;
constexpr size_t kAccountsMax = 10'000;
constexpr size_t kGenAccountsMin = 2;  // a transfer needs a sender and a distinct recipient
constexpr size_t kVerdictsOutMax = 1'000;
constexpr size_t kBalancesOutMax = 1'000;
constexpr size_t kSeedBytesMax = 256;
constexpr size_t kTxCancelPollTxs = 64;  // ~64 signature checks, a few ms
constexpr uint64_t kGenBalanceStart = 1'000'000;
constexpr uint64_t kGenOverdraftExtraMax = 1'000;
constexpr size_t kHashBytes = 32;
constexpr int kB64 = sodium_base64_VARIANT_ORIGINAL;
constexpr std::string_view kTxDomain = "meshwork-tx-v1";
constexpr std::string_view kGenDomain = "meshwork-tx-gen-v1";
static_assert(kVerdictsOutMax <= kTxsMax && kBalancesOutMax <= kAccountsMax);
static_assert(kGenBalanceStart * kAccountsMax + kGenOverdraftExtraMax <
              std::numeric_limits<uint64_t>::max() / 2);

using Hash = std::array<uint8_t, kHashBytes>;
using PublicKey = std::array<uint8_t, crypto_sign_PUBLICKEYBYTES>;
using SecretKey = std::array<uint8_t, crypto_sign_SECRETKEYBYTES>;
using Signature = std::array<uint8_t, crypto_sign_BYTES>;

struct Tx {
  std::string from;  // canonical base64
  std::string to;    // canonical base64
  PublicKey from_key{};
  uint64_t amount = 0;
  uint64_t nonce = 0;
  Signature sig{};
};

struct Account {
  uint64_t balance = 0;
  uint64_t next_nonce = 0;
};

using Ledger = std::map<std::string, Account>;  // canonical base64 key -> account

struct GenSpec {
  uint64_t accounts = 0;
  uint64_t txs = 0;
  std::string seed;
  double invalid_ratio = 0;
};

struct Batch {
  Ledger ledger;
  std::vector<Tx> txs;
  bool generated = false;
  GenSpec gen;
  std::map<std::string, uint64_t> planned;  // generator only: reason -> planned count
};

std::string b64(const uint8_t* bytes, size_t n) {
  std::string out(sodium_base64_ENCODED_LEN(n, kB64), '\0');
  sodium_bin2base64(out.data(), out.size(), bytes, n, kB64);
  out.pop_back();  // the terminating NUL written by libsodium
  return out;
}

// Decodes standard base64 (with padding) of exactly N bytes.
template <size_t N>
bool from_b64(std::string_view s, std::array<uint8_t, N>& out) {
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), N, s.data(), s.size(), nullptr, &len, &end, kB64) != 0) {
    return false;
  }
  return len == N && end == s.data() + s.size();
}

template <size_t N>
bool from_b64(const json& v, std::array<uint8_t, N>& out) {
  return v.is_string() && from_b64(std::string_view(v.get_ref<const std::string&>()), out);
}

Hash blake2b(std::string_view a, const uint8_t* b = nullptr, size_t b_len = 0) {
  Hash h{};
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, kHashBytes);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(a.data()), a.size());
  if (b_len > 0) crypto_generichash_update(&st, b, b_len);
  crypto_generichash_final(&st, h.data(), kHashBytes);
  return h;
}

std::string signing_bytes(const Tx& tx) {
  return std::string(kTxDomain) + "|" + tx.from + "|" + tx.to + "|" + std::to_string(tx.amount) +
         "|" + std::to_string(tx.nonce);
}

// ---- explicit batches ----

std::string parse_accounts(const json& accounts, Ledger& ledger) {
  if (!accounts.is_object() || accounts.size() > kAccountsMax) {
    return "payload.accounts must be an object of at most " + std::to_string(kAccountsMax) +
           " \"<base64 public key>\": balance entries";
  }
  for (const auto& item : accounts.items()) {
    const std::string where = "payload.accounts[\"" + item.key() + "\"]";
    PublicKey pk{};
    if (!from_b64(std::string_view(item.key()), pk)) {
      return where + ": key must be a base64 Ed25519 public key (32 bytes)";
    }
    uint64_t balance = 0;
    if (!json_u64(item.value(), std::numeric_limits<uint64_t>::max(), balance)) {
      return where + " must be an integer 0..18446744073709551615";
    }
    if (!ledger.emplace(b64(pk.data(), pk.size()), Account{balance, 0}).second) {
      return where + " is a second encoding of an account already listed";
    }
  }
  return "";
}

std::string parse_tx(const json& j, size_t i, Tx& tx) {
  const std::string where = "payload.txs[" + std::to_string(i) + "]";
  if (auto r = check_object(j, where, {"from", "to", "amount", "nonce", "signature"}); !r.empty()) {
    return r;
  }
  PublicKey to{};
  if (!j.contains("from") || !from_b64(j["from"], tx.from_key)) {
    return where + ".from must be a base64 Ed25519 public key (32 bytes)";
  }
  if (!j.contains("to") || !from_b64(j["to"], to)) {
    return where + ".to must be a base64 Ed25519 public key (32 bytes)";
  }
  if (!j.contains("signature") || !from_b64(j["signature"], tx.sig)) {
    return where + ".signature must be a base64 Ed25519 signature (64 bytes)";
  }
  constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();
  if (auto r = read_u64(j, where, "amount", kU64Max, tx.amount); !r.empty()) return r;
  if (auto r = read_u64(j, where, "nonce", kU64Max, tx.nonce); !r.empty()) return r;
  tx.from = b64(tx.from_key.data(), tx.from_key.size());
  tx.to = b64(to.data(), to.size());
  return "";
}

std::string parse_explicit(const json& p, Batch& batch) {
  if (!p.contains("accounts") || !p.contains("txs")) {
    return "payload must have either \"generate\" or both \"accounts\" and \"txs\"";
  }
  if (auto r = parse_accounts(p["accounts"], batch.ledger); !r.empty()) return r;
  const json& txs = p["txs"];
  if (!txs.is_array() || txs.size() > kTxsMax) {
    return "payload.txs must be an array of at most " + std::to_string(kTxsMax) + " transactions";
  }
  batch.txs.resize(txs.size());
  for (size_t i = 0; i < txs.size(); ++i) {
    if (auto r = parse_tx(txs[i], i, batch.txs[i]); !r.empty()) return r;
  }
  return "";
}

// ---- generated batches ----

std::string parse_generate(const json& g, GenSpec& spec) {
  const std::string_view where = "payload.generate";
  if (auto r = check_object(g, where, {"accounts", "txs", "seed", "invalid_ratio"}); !r.empty()) {
    return r;
  }
  if (auto r = read_u64(g, where, "accounts", kAccountsMax, spec.accounts); !r.empty()) return r;
  if (spec.accounts < kGenAccountsMin) {
    return "payload.generate.accounts must be an integer " + std::to_string(kGenAccountsMin) +
           ".." + std::to_string(kAccountsMax);
  }
  if (auto r = read_u64(g, where, "txs", kTxsMax, spec.txs); !r.empty()) return r;
  const auto seed = g.find("seed");
  uint64_t seed_number = 0;
  if (seed != g.end() && json_u64(*seed, std::numeric_limits<uint64_t>::max(), seed_number)) {
    spec.seed = std::to_string(seed_number);
  } else if (seed != g.end() && seed->is_string() &&
             seed->get_ref<const std::string&>().size() <= kSeedBytesMax) {
    spec.seed = seed->get<std::string>();
  } else {
    return "payload.generate.seed must be an unsigned integer or a string of at most " +
           std::to_string(kSeedBytesMax) + " bytes";
  }
  const auto ratio = g.find("invalid_ratio");
  if (ratio != g.end()) {
    if (!ratio->is_number() || !(ratio->get<double>() >= 0.0 && ratio->get<double>() <= 1.0)) {
      return "payload.generate.invalid_ratio must be a number 0..1";
    }
    spec.invalid_ratio = ratio->get<double>();
  }
  return "";
}

// splitmix64: tiny, fully specified, so every node draws the same sequence from the same seed.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return next() % n; }                        // n > 0
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)

 private:
  uint64_t state_;
};

struct Keys {
  std::vector<PublicKey> pk;
  std::vector<SecretKey> sk;
  std::vector<std::string> name;  // canonical base64 of pk
  std::vector<Account> shadow;    // generator's own view of each account
};

// Keypair i = crypto_sign_seed_keypair(BLAKE2b-256("meshwork-tx-gen-v1|key|<seed>|<i>")).
Keys derive_keys(const GenSpec& spec) {
  Keys k;
  k.pk.resize(spec.accounts);
  k.sk.resize(spec.accounts);
  k.name.resize(spec.accounts);
  k.shadow.assign(spec.accounts, Account{kGenBalanceStart, 0});
  for (size_t i = 0; i < spec.accounts; ++i) {
    Hash seed = blake2b(std::string(kGenDomain) + "|key|" + spec.seed + "|" + std::to_string(i));
    crypto_sign_seed_keypair(k.pk[i].data(), k.sk[i].data(), seed.data());
    sodium_memzero(seed.data(), seed.size());
    k.name[i] = b64(k.pk[i].data(), k.pk[i].size());
  }
  return k;
}

// One generated tx from `s` to `r`; `bad` selects a deliberate fault. Returns the reason the
// verifier will give ("" for a valid tx) and updates the shadow state as the verifier will.
std::string_view make_tx(Keys& k, size_t s, size_t r, bool bad, SplitMix64& rng, Tx& tx) {
  Account& sender = k.shadow[s];
  static constexpr std::array<std::string_view, 3> kFaults = {"bad_signature", "replayed_nonce",
                                                              "overdraft"};
  std::string_view fault = bad ? kFaults[rng.below(kFaults.size())] : "";
  if (fault == "replayed_nonce" && sender.next_nonce == 0) fault = "overdraft";
  tx.from = k.name[s];
  tx.to = k.name[r];
  tx.from_key = k.pk[s];
  tx.nonce = fault == "replayed_nonce" ? sender.next_nonce - 1 : sender.next_nonce;
  if (fault == "overdraft") {
    tx.amount = sender.balance + 1 + rng.below(kGenOverdraftExtraMax);
  } else {
    tx.amount = std::min(sender.balance, 1 + rng.below(sender.balance / 10 + 1));
  }
  const std::string msg = signing_bytes(tx);
  crypto_sign_detached(tx.sig.data(), nullptr, reinterpret_cast<const unsigned char*>(msg.data()),
                       msg.size(), k.sk[s].data());
  if (fault == "bad_signature") tx.sig[0] ^= 0x01;
  if (fault.empty()) {
    sender.balance -= tx.amount;
    sender.next_nonce += 1;
    k.shadow[r].balance += tx.amount;
  }
  return fault;
}

// Fills `batch` from `spec`; false when cancelled part-way.
bool generate_batch(const GenSpec& spec, CancelToken& cancel, Batch& batch) {
  Keys keys = derive_keys(spec);
  for (size_t i = 0; i < spec.accounts; ++i) batch.ledger[keys.name[i]] = keys.shadow[i];
  const Hash rng_seed = blake2b(std::string(kGenDomain) + "|rng|" + spec.seed);
  uint64_t seed64 = 0;
  std::memcpy(&seed64, rng_seed.data(), sizeof seed64);
  SplitMix64 rng(seed64);
  batch.txs.resize(spec.txs);
  for (size_t j = 0; j < spec.txs; ++j) {
    if (j % kTxCancelPollTxs == 0 && cancel.cancelled()) return false;
    const size_t s = rng.below(spec.accounts);
    size_t r = rng.below(spec.accounts - 1);
    if (r >= s) ++r;
    const bool bad = rng.unit() < spec.invalid_ratio;
    const std::string_view fault = make_tx(keys, s, r, bad, rng, batch.txs[j]);
    if (!fault.empty()) ++batch.planned[std::string(fault)];
  }
  for (SecretKey& sk : keys.sk) sodium_memzero(sk.data(), sk.size());
  return true;
}

std::string parse_batch(const json& p, Batch& batch) {
  if (auto r = check_object(p, "payload", {"accounts", "txs", "generate"}); !r.empty()) return r;
  if (!p.contains("generate")) return parse_explicit(p, batch);
  if (p.contains("accounts") || p.contains("txs")) {
    return "payload must have either \"generate\" or both \"accounts\" and \"txs\", not both";
  }
  batch.generated = true;
  return parse_generate(p["generate"], batch.gen);
}

// ---- verification ----

// "" when `tx` is valid and has been applied to `ledger`, else the reason it was rejected.
std::string_view apply_tx(const Tx& tx, Ledger& ledger) {
  const std::string msg = signing_bytes(tx);
  if (crypto_sign_verify_detached(tx.sig.data(), reinterpret_cast<const unsigned char*>(msg.data()),
                                  msg.size(), tx.from_key.data()) != 0) {
    return "bad_signature";
  }
  const auto sender = ledger.find(tx.from);
  if (sender == ledger.end()) return "unknown_sender";
  if (tx.nonce < sender->second.next_nonce) return "replayed_nonce";
  if (tx.nonce > sender->second.next_nonce) return "nonce_gap";
  if (tx.amount > sender->second.balance) return "overdraft";
  const auto recipient = ledger.find(tx.to);
  const uint64_t to_balance = recipient == ledger.end() ? 0 : recipient->second.balance;
  if (tx.from != tx.to && to_balance > std::numeric_limits<uint64_t>::max() - tx.amount) {
    return "balance_overflow";
  }
  sender->second.balance -= tx.amount;
  sender->second.next_nonce += 1;
  ledger[tx.to].balance += tx.amount;  // creates the recipient on first credit
  return "";
}

Hash tx_hash(const Tx& tx) {
  return blake2b(signing_bytes(tx), tx.sig.data(), tx.sig.size());
}

Hash merkle_root(std::vector<Hash> level) {
  if (level.empty()) return Hash{};
  while (level.size() > 1) {
    if (level.size() % 2 == 1) level.push_back(level.back());
    std::vector<Hash> up(level.size() / 2);
    for (size_t i = 0; i < up.size(); ++i) {
      up[i] =
          blake2b(std::string_view(reinterpret_cast<const char*>(level[2 * i].data()), kHashBytes),
                  level[2 * i + 1].data(), kHashBytes);
    }
    level = std::move(up);
  }
  return level.front();
}

json balances_json(const Ledger& ledger) {
  json out = json::object();
  for (const auto& [name, account] : ledger) {
    if (out.size() == kBalancesOutMax) break;
    out[name] = account.balance;
  }
  return out;
}

struct Tally {
  size_t valid = 0;
  size_t invalid = 0;
  std::map<std::string, uint64_t> reasons;
  json verdicts = json::array();
  bool verdicts_truncated = false;
  std::vector<Hash> leaves;
};

// Verdicts: one per tx when the batch has at most kVerdictsOutMax txs, else only the invalid
// ones, at most kVerdictsOutMax of them.
void record(Tally& t, size_t i, std::string_view reason, bool list_all) {
  if (reason.empty()) {
    ++t.valid;
  } else {
    ++t.invalid;
    ++t.reasons[std::string(reason)];
  }
  if (!list_all && reason.empty()) return;
  if (t.verdicts.size() == kVerdictsOutMax) {
    t.verdicts_truncated = true;
    return;
  }
  json v{{"i", i}, {"ok", reason.empty()}};
  if (!reason.empty()) v["reason"] = reason;
  t.verdicts.push_back(std::move(v));
}

json result_json(const Batch& batch, Tally& t) {
  const Hash root = merkle_root(std::move(t.leaves));
  json out{{"valid", t.valid},
           {"invalid", t.invalid},
           {"reasons", t.reasons},
           {"verdicts", std::move(t.verdicts)},
           {"verdicts_truncated", t.verdicts_truncated},
           {"merkle_root", hex_of(root.data(), root.size())},
           {"accounts", batch.ledger.size()},
           {"balances", balances_json(batch.ledger)},
           {"balances_truncated", batch.ledger.size() > kBalancesOutMax}};
  if (batch.generated) {
    uint64_t bad = 0;
    for (const auto& [reason, count] : batch.planned) bad += count;
    out["generated"] = json{{"accounts", batch.gen.accounts},
                            {"txs", batch.gen.txs},
                            {"seed", batch.gen.seed},
                            {"bad_planned", bad},
                            {"planned", batch.planned}};
  }
  return out;
}

}  // namespace

std::string validate_tx_verify(const json& payload) {
  init_crypto();
  Batch batch;
  return parse_batch(payload, batch);
}

HandlerOutcome run_tx_verify(const JobContext& ctx, CancelToken& cancel) {
  init_crypto();
  Batch batch;
  if (auto r = parse_batch(ctx.payload, batch); !r.empty()) return HandlerOutcome::failure(r);
  if (batch.generated && !generate_batch(batch.gen, cancel, batch)) {
    return HandlerOutcome::stopped("tx-verify cancelled while generating transactions");
  }
  Tally tally;
  const bool list_all = batch.txs.size() <= kVerdictsOutMax;
  for (size_t i = 0; i < batch.txs.size(); ++i) {
    if (i % kTxCancelPollTxs == 0 && cancel.cancelled()) {
      return HandlerOutcome::stopped("tx-verify cancelled after " + std::to_string(i) + " txs");
    }
    const std::string_view reason = apply_tx(batch.txs[i], batch.ledger);
    if (reason.empty()) tally.leaves.push_back(tx_hash(batch.txs[i]));
    record(tally, i, reason, list_all);
  }
  return HandlerOutcome::success(result_json(batch, tally));
}

}  // namespace meshwork::handler_impl
