#include "gossip/seal.h"

#include <doctest/doctest.h>

using namespace meshwork::gossip;

namespace {

Key key(uint8_t fill) {
  Key k;
  k.fill(fill);
  return k;
}

}  // namespace

TEST_CASE("seal then open returns the plaintext, with the documented overhead") {
  const Keyring ring({key(1)});
  const std::vector<uint8_t> plain{1, 2, 3, 4, 5};
  std::vector<uint8_t> sealed;
  seal(ring, plain, sealed);
  CHECK(sealed.size() == plain.size() + seal_overhead_bytes);
  CHECK(sealed[0] == seal_version);
  std::vector<uint8_t> opened;
  REQUIRE(open(ring, sealed, opened));
  CHECK(opened == plain);
  std::vector<uint8_t> again;
  seal(ring, plain, again);
  CHECK(again != sealed);  // fresh nonce every time
}

TEST_CASE("key rotation: seal with the first key, open with any") {
  const Keyring old_ring({key(1)});
  const Keyring rotating({key(2), key(1)});
  const Keyring new_ring({key(2)});
  const std::vector<uint8_t> plain(100, 7);
  std::vector<uint8_t> from_old, from_rotating, out;
  seal(old_ring, plain, from_old);
  seal(rotating, plain, from_rotating);
  CHECK(open(rotating, from_old, out));
  CHECK(open(new_ring, from_rotating, out));
  CHECK(open(rotating, from_rotating, out));
  CHECK_FALSE(open(old_ring, from_rotating, out));  // sealed with key 2 only
  CHECK(out.empty());
}

TEST_CASE("tampering, truncation and wrong versions fail to open") {
  const Keyring ring({key(3)});
  std::vector<uint8_t> sealed, out;
  seal(ring, std::vector<uint8_t>(50, 1), sealed);
  for (std::size_t i = 0; i < sealed.size(); ++i) {
    auto bad = sealed;
    bad[i] ^= 0x01;
    CHECK_FALSE(open(ring, bad, out));
  }
  CHECK_FALSE(open(ring, std::span(sealed).first(seal_overhead_bytes - 1), out));
  CHECK_FALSE(open(ring, {}, out));
  std::vector<uint8_t> empty_plain;
  seal(ring, {}, empty_plain);
  CHECK(open(ring, empty_plain, out));
  CHECK(out.empty());
}

TEST_CASE("keys parse from hex") {
  const auto k =
      Keyring::key_from_hex("  000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n");
  REQUIRE(k);
  CHECK((*k)[0] == 0);
  CHECK((*k)[31] == 31);
  CHECK_FALSE(Keyring::key_from_hex("0001"));
  CHECK_FALSE(Keyring::key_from_hex(std::string(64, 'g')));
  CHECK(Keyring(std::vector<Key>(20, key(1))).keys().size() == keyring_keys_max);
}
