// NameIndex against std::unordered_map under random inserts, replacements and erasures. At a load
// of up to 3/4, linear probing puts many names in shared probe runs, so the backward-shift deletion
// has to keep every run reachable for the model to agree.
#include "gossip/name_index.h"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <unordered_map>
#include <vector>

using meshwork::gossip::NameIndex;

namespace {

// The owner side of the index: value v stands for names[v].
struct Table {
  std::vector<std::string> names;
  NameIndex<uint32_t> index;
  auto key_of() const {
    return [this](uint32_t v) -> const std::string& { return names[v]; };
  }
};

}  // namespace

TEST_CASE("name index: find, put, replace and erase") {
  Table t;
  t.names = {"n0", "n1", "n2"};
  CHECK_FALSE(t.index.find("n0", t.key_of()));
  for (uint32_t i = 0; i < 3; ++i) t.index.put(t.names[i], i, t.key_of());
  CHECK(t.index.size() == 3);
  CHECK(t.index.find("n1", t.key_of()) == 1u);
  CHECK_FALSE(t.index.find("n3", t.key_of()));
  CHECK_FALSE(t.index.find("", t.key_of()));

  t.names.push_back("n1");  // value 3 stands for the same name: put replaces, size stays
  t.index.put("n1", 3, t.key_of());
  CHECK(t.index.size() == 3);
  CHECK(t.index.find("n1", t.key_of()) == 3u);

  CHECK(t.index.erase("n1", t.key_of()));
  CHECK_FALSE(t.index.erase("n1", t.key_of()));
  CHECK_FALSE(t.index.find("n1", t.key_of()));
  CHECK(t.index.find("n0", t.key_of()) == 0u);
  CHECK(t.index.find("n2", t.key_of()) == 2u);
  CHECK(t.index.size() == 2);
  t.index.clear();
  CHECK(t.index.size() == 0);
  CHECK_FALSE(t.index.find("n0", t.key_of()));
}

TEST_CASE("name index: agrees with unordered_map over 200,000 random operations") {
  std::mt19937_64 rng(42);
  Table t;
  for (uint32_t i = 0; i < 3000; ++i) t.names.push_back("member-" + std::to_string(i));
  std::unordered_map<std::string, uint32_t> model;
  for (int op = 0; op < 200'000; ++op) {
    const uint32_t v = static_cast<uint32_t>(rng() % t.names.size());
    const std::string& name = t.names[v];
    switch (rng() % 3) {
      case 0:
        t.index.put(name, v, t.key_of());
        model[name] = v;
        break;
      case 1:
        CHECK(t.index.erase(name, t.key_of()) == (model.erase(name) == 1));
        break;
      default: {
        const auto got = t.index.find(name, t.key_of());
        const auto want = model.find(name);
        REQUIRE(got.has_value() == (want != model.end()));
        if (got) CHECK(*got == want->second);
      }
    }
    REQUIRE(t.index.size() == model.size());
  }
  for (const auto& [name, v] : model) CHECK(t.index.find(name, t.key_of()) == v);
}

TEST_CASE("name index: grows from empty and shrinks to empty") {
  Table t;
  for (uint32_t i = 0; i < 10'000; ++i) {
    t.names.push_back("n" + std::to_string(i));
    t.index.put(t.names.back(), i, t.key_of());
  }
  CHECK(t.index.size() == 10'000);
  for (uint32_t i = 0; i < 10'000; i += 2) CHECK(t.index.erase(t.names[i], t.key_of()));
  for (uint32_t i = 0; i < 10'000; ++i) {
    const auto got = t.index.find(t.names[i], t.key_of());
    if (i % 2 == 0) {
      CHECK_FALSE(got);
    } else {
      CHECK(got == i);
    }
  }
  for (uint32_t i = 1; i < 10'000; i += 2) CHECK(t.index.erase(t.names[i], t.key_of()));
  CHECK(t.index.size() == 0);
}
