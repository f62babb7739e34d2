// `pow`: BLAKE2b-256 proof of work. Finds the smallest nonce n (uint64, counted from 0) such that
// BLAKE2b-256(data || n as 8 little-endian bytes) has at least difficulty_bits leading zero bits
// (most significant bit of byte 0 first).
//
// Thread-safety: reentrant; all state is on the stack.
// Invariants: the result is a pure function of the payload (smallest nonce, so every node finds the
// same one); the data prefix is absorbed once and the hash state copied per nonce; the cancel
// token is polled every kPowCancelPollHashes hashes (a few ms of work).
#include <sodium.h>

#include <bit>
#include <cstdint>
#include <limits>
#include <string>

#include "node/handler_impl.h"

namespace meshwork::handler_impl {
namespace {

constexpr size_t kPowDataBytesMax = 64 * 1024;
constexpr uint64_t kPowDifficultyBitsMax = 32;
constexpr uint64_t kPowCancelPollHashes = 4096;  // ~1-4 ms of hashing on one core
constexpr size_t kPowHashBytes = 32;
constexpr size_t kPowNonceBytes = 8;
static_assert(kPowDifficultyBitsMax <= kPowHashBytes * 8);
static_assert((kPowCancelPollHashes & (kPowCancelPollHashes - 1)) == 0, "power of two");

struct PowSpec {
  const std::string* data = nullptr;  // points into the payload
  unsigned difficulty_bits = 0;
};

std::string parse_pow(const json& p, PowSpec& spec) {
  if (auto r = check_object(p, "payload", {"data", "difficulty_bits"}); !r.empty()) return r;
  const auto data = p.find("data");
  const std::string* text = data == p.end() ? nullptr : data->get_ptr<const std::string*>();
  if (text == nullptr || text->size() > kPowDataBytesMax) {
    return "payload.data must be a string of at most " + std::to_string(kPowDataBytesMax) +
           " bytes";
  }
  uint64_t bits = 0;
  if (auto r = read_u64(p, "payload", "difficulty_bits", kPowDifficultyBitsMax, bits); !r.empty()) {
    return r;
  }
  spec.data = text;
  spec.difficulty_bits = static_cast<unsigned>(bits);
  return "";
}

unsigned leading_zero_bits(const uint8_t* hash, size_t n) {
  unsigned zeros = 0;
  for (size_t i = 0; i < n; ++i) {
    if (hash[i] != 0) return zeros + static_cast<unsigned>(std::countl_zero(hash[i]));
    zeros += 8;
  }
  return zeros;
}

}  // namespace

std::string validate_pow(const json& payload) {
  PowSpec spec;
  return parse_pow(payload, spec);
}

HandlerOutcome run_pow(const JobContext& ctx, CancelToken& cancel) {
  PowSpec spec;
  if (auto r = parse_pow(ctx.payload, spec); !r.empty()) return HandlerOutcome::failure(r);
  init_crypto();

  crypto_generichash_state prefix;
  crypto_generichash_init(&prefix, nullptr, 0, kPowHashBytes);
  crypto_generichash_update(&prefix, reinterpret_cast<const unsigned char*>(spec.data->data()),
                            spec.data->size());

  uint8_t hash[kPowHashBytes];
  uint8_t nonce_le[kPowNonceBytes];
  for (uint64_t nonce = 0;; ++nonce) {
    if ((nonce & (kPowCancelPollHashes - 1)) == 0 && cancel.cancelled()) {
      return HandlerOutcome::stopped("pow cancelled after " + std::to_string(nonce) + " hashes");
    }
    for (size_t i = 0; i < kPowNonceBytes; ++i)
      nonce_le[i] = static_cast<uint8_t>(nonce >> (8 * i));
    crypto_generichash_state state = prefix;
    crypto_generichash_update(&state, nonce_le, kPowNonceBytes);
    crypto_generichash_final(&state, hash, kPowHashBytes);
    if (leading_zero_bits(hash, kPowHashBytes) >= spec.difficulty_bits) {
      return HandlerOutcome::success(json{{"nonce", nonce},
                                          {"hash", hex_of(hash, kPowHashBytes)},
                                          {"hashes", nonce + 1},
                                          {"difficulty_bits", spec.difficulty_bits}});
    }
    // Unreachable for difficulty <= 32 (expected 2^32 hashes), kept so the loop provably ends.
    if (nonce == std::numeric_limits<uint64_t>::max()) break;
  }
  return HandlerOutcome::failure("pow: nonce space exhausted");
}

}  // namespace meshwork::handler_impl
