// The hot paths' forms in dht/hash.h for public data (public_to_hex, hash_from_hex,
// public_from_base64, is_base64_of, is_blake2b_hex_of) give libsodium's forms' answers exactly:
// checked against them on every byte, on edge cases and on random and mutated text from a fixed
// seed. (sodium_base642bin reads every byte from 0x80 up as '/': so must public_from_base64.)
#include "dht/hash.h"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

namespace meshwork {
namespace {

std::string random_bytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// Text near `valid`: a character swapped for one from `alphabet` (or any byte), one dropped, one
// added, cut short or left as it is.
std::string near(std::string s, std::string_view alphabet, std::mt19937_64& rng) {
  const auto pick = [&] {
    return rng() % 4 == 0 ? static_cast<char>(rng()) : alphabet[rng() % alphabet.size()];
  };
  for (uint64_t k = rng() % 3; k > 0; --k) {
    const size_t at = s.empty() ? 0 : rng() % s.size();
    switch (rng() % 4) {
      case 0:
        if (!s.empty()) s[at] = pick();
        break;
      case 1:
        if (!s.empty()) s.erase(at, 1);
        break;
      case 2:
        s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), pick());
        break;
      default:
        s.resize(rng() % (s.size() + 1));
    }
  }
  return s;
}

constexpr std::string_view kHexAlphabet = "0123456789abcdefABCDEFgx ";
constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n";

}  // namespace

TEST_CASE("public_to_hex and hash_from_hex agree with to_hex and from_hex") {
  std::mt19937_64 rng(41);
  CHECK(public_to_hex("") == "");
  CHECK(public_to_hex(std::string("\x00\x0f\xf0\xff", 4)) == "000ff0ff");
  RawHash h;
  CHECK(hash_from_hex(std::string(64, 'A'), h));  // either case, as sodium_hex2bin reads
  CHECK(std::string(h.data(), h.size()) == std::string(kHashBytes, '\xaa'));
  for (int c = 0; c < 256; ++c) {  // every byte, first and last
    for (size_t at : {size_t{0}, 2 * kHashBytes - 1}) {
      std::string hex(2 * kHashBytes, '0');
      hex[at] = static_cast<char>(c);
      CHECK(hash_from_hex(hex, h) == from_hex(hex).has_value());
    }
  }
  for (int i = 0; i < 20'000; ++i) {
    const std::string bytes = random_bytes(rng, rng() % 40);
    REQUIRE(public_to_hex(bytes) == to_hex(bytes));
    const std::string valid = to_hex(random_bytes(rng, kHashBytes));
    const std::string hex = i % 5 == 0 ? valid : near(valid, kHexAlphabet, rng);
    const std::optional<std::string> want = from_hex(hex);
    const bool is_hash = want && want->size() == kHashBytes;
    REQUIRE(hash_from_hex(hex, h) == is_hash);
    if (is_hash) REQUIRE(std::string(h.data(), h.size()) == *want);
  }
}

TEST_CASE("public_from_base64 and is_base64_of agree with from_base64 and to_base64") {
  std::mt19937_64 rng(42);
  const std::vector<std::string> edges = {
      "",       "=",    "==",       "A",        "AA",       "AA=",    "AA==",     "AB==", "AAA",
      "AAA=",   "AAB=", "AAAA",     "AAAA=",    "AAAA==",   "A===",   "AA==AA==", "AA=A", " AAAA",
      "AAAA\n", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy", "Zm9vYg", "-_8="};
  for (const std::string& edge : edges) CHECK(public_from_base64(edge) == from_base64(edge));
  for (int c = 0; c < 256; ++c) {  // every byte, where a digit or padding may stand
    for (const char* form : {"AAA?", "AA?=", "AA=?", "?AAA", "AAAA?"}) {
      std::string b64 = form;
      b64[b64.find('?')] = static_cast<char>(c);
      CHECK(public_from_base64(b64) == from_base64(b64));
    }
  }
  for (int i = 0; i < 40'000; ++i) {
    const std::string bytes = random_bytes(rng, rng() % 70);
    const std::string valid = to_base64(bytes);
    const std::string b64 = i % 5 == 0 ? valid : near(valid, kBase64Alphabet, rng);
    REQUIRE(public_from_base64(b64) == from_base64(b64));
    REQUIRE(is_base64_of(b64, bytes) == (b64 == valid));
    REQUIRE(is_base64_of(valid, bytes));
  }
}

TEST_CASE("is_blake2b_hex_of is blake2b_hex compared") {
  std::mt19937_64 rng(43);
  for (int i = 0; i < 5'000; ++i) {
    const std::string a = random_bytes(rng, rng() % 100), b = random_bytes(rng, rng() % 3);
    const std::string valid = blake2b_hex(a, b);
    const std::string hex = i % 3 == 0 ? valid : near(valid, kHexAlphabet, rng);
    REQUIRE(is_blake2b_hex_of(hex, a, b) == (hex == valid));
    REQUIRE(std::string(blake2b_raw(a, b).data(), kHashBytes) == blake2b(a, b));
  }
}

}  // namespace meshwork
