// Tests for dht/ring: the token scheme, preference lists against a naive model, balance, minimal
// movement on joins and leaves, and moved_ranges against brute-force sampling.
//
// Every random input comes from a fixed seed, so every figure asserted here is reproducible. The
// bounds are justified in docs/ring.md; the skipped case "ring measurements" prints the figures:
//   dht_tests -tc='ring measurements' --no-skip
#include "dht/ring.h"

#include <doctest/doctest.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace {

using meshwork::dht::key_position;
using meshwork::dht::member_token;
using meshwork::dht::moved_ranges;
using meshwork::dht::MovedRange;
using meshwork::dht::Position;
using meshwork::dht::Range;
using meshwork::dht::Ring;
using meshwork::dht::Status;
using Names = std::vector<std::string>;

constexpr std::uint32_t r3 = 3;

Names numbered(const std::string& prefix, int count, int first = 1) {
  Names out;
  for (int i = first; i < first + count; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

Ring build(const Names& names, std::uint32_t vnodes = meshwork::dht::vnodes_default) {
  Ring ring(vnodes);
  REQUIRE(ring.add_all(names) == Status::ok);
  return ring;
}

std::string random_job_id(std::mt19937_64& rng) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string id;
  for (int word = 0; word < 4; ++word) {
    std::uint64_t bits = rng();
    for (int nibble = 0; nibble < 16; ++nibble, bits >>= 4) id.push_back(hex[bits & 0xf]);
  }
  return id;
}

std::vector<Position> random_positions(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Position> out(count);
  for (Position& p : out) p = key_position(random_job_id(rng));
  return out;
}

// An independent, obviously-correct model of the ring: every token, sorted, walked one by one.
struct NaiveRing {
  std::vector<std::pair<Position, std::string>> tokens;

  NaiveRing(const Names& names, std::uint32_t vnodes) {
    for (const std::string& name : names) {
      for (std::uint32_t i = 0; i < vnodes; ++i) tokens.emplace_back(member_token(name, i), name);
    }
    std::sort(tokens.begin(), tokens.end());
  }

  Names list(Position p, std::size_t r) const {
    Names out;
    std::size_t start = 0;
    while (start < tokens.size() && tokens[start].first < p) ++start;
    for (std::size_t step = 0; step < tokens.size() && out.size() < r; ++step) {
      const std::string& name = tokens[(start + step) % tokens.size()].second;
      if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
    }
    return out;
  }
};

// Positions where off-by-one mistakes live: each token, its neighbours, and the circle's ends.
std::vector<Position> edge_positions(const Names& names, std::uint32_t vnodes) {
  std::vector<Position> out{0, 1, UINT64_MAX - 1, UINT64_MAX};
  for (const std::string& name : names) {
    for (std::uint32_t i = 0; i < vnodes; ++i) {
      const Position t = member_token(name, i);
      out.insert(out.end(), {t - 1, t, t + 1});
    }
  }
  return out;
}

double covered_fraction(const std::vector<Range>& ranges) {
  double sum = 0;
  for (const Range& range : ranges) sum += range.fraction();
  return sum;
}

// Largest |count / mean - 1| over the counts.
double max_relative_deviation(const std::vector<double>& counts) {
  double mean = 0;
  for (double c : counts) mean += c;
  mean /= static_cast<double>(counts.size());
  double worst = 0;
  for (double c : counts) worst = std::max(worst, std::abs(c / mean - 1));
  return worst;
}

std::vector<double> primary_key_counts(const Ring& ring, const std::vector<Position>& keys) {
  const Names members = ring.members();
  std::vector<double> counts(members.size(), 0);
  for (Position p : keys) {
    const std::string owner = *ring.owner(p, 1);
    counts[std::lower_bound(members.begin(), members.end(), owner) - members.begin()] += 1;
  }
  return counts;
}

// `shorter` equals `longer` with `name` removed, keeping only the first shorter.size() members.
bool is_prefix_without(const Names& shorter, const Names& longer, const std::string& name) {
  Names rest;
  for (const std::string& m : longer) {
    if (m != name) rest.push_back(m);
  }
  return shorter.size() <= rest.size() && std::equal(shorter.begin(), shorter.end(), rest.begin());
}

}  // namespace

TEST_CASE("key_position decodes job ids and hashes any other string") {
  const std::string id = "0123456789abcdef" + std::string(48, '7');
  CHECK(key_position(id) == 0x0123456789abcdefULL);
  CHECK(key_position(std::string(64, 'f')) == UINT64_MAX);
  CHECK(key_position(std::string(64, '0')) == 0);
  // Not a job id (uppercase, wrong length): hashed. Known answer from Python's hashlib.blake2b.
  CHECK(key_position("hello") == 0x324dcf027dd4a30aULL);
  std::string upper = id;
  upper[10] = 'A';
  CHECK(key_position(upper) != key_position(id));
  CHECK(key_position(id.substr(0, 63)) != key_position(id));
}

TEST_CASE("member_token is the first 8 bytes of BLAKE2b-256(name || be32 index)") {
  // Known answers from Python: hashlib.blake2b(name + struct.pack('>I', i), digest_size=32).
  CHECK(member_token("n1", 0) == 0x41a5d905f00c6e75ULL);
  CHECK(member_token("n1", 127) == 0xb551a0931fac41f5ULL);
  CHECK(member_token("node-a", 5) == 0xe8aa7544a1bd5291ULL);
  const std::array<unsigned char, 6> input{'n', '7', 0, 0, 1, 2};
  std::array<unsigned char, 32> digest{};
  REQUIRE(crypto_generichash(digest.data(), digest.size(), input.data(), input.size(), nullptr,
                             0) == 0);
  Position expected = 0;
  for (int i = 0; i < 8; ++i) expected = (expected << 8) | digest[i];
  CHECK(member_token("n7", 0x0102) == expected);
}

TEST_CASE("membership edits report bad input as values and change nothing") {
  Ring ring(16);
  CHECK(ring.add("a") == Status::ok);
  CHECK(ring.add("a") == Status::member_exists);
  CHECK(ring.add("") == Status::name_empty);
  CHECK(ring.add(std::string(meshwork::dht::member_name_bytes_max + 1, 'x')) ==
        Status::name_too_long);
  CHECK(ring.add(std::string(meshwork::dht::member_name_bytes_max, 'x')) == Status::ok);
  CHECK(ring.remove("nope") == Status::member_unknown);
  CHECK(ring.add_all(Names{"b", "c", "b"}) == Status::member_exists);
  CHECK(ring.add_all(Names{"b", "a"}) == Status::member_exists);
  CHECK(ring.member_count() == 2);
  CHECK(ring.token_count() == 32);
  CHECK_FALSE(ring.contains("b"));
  CHECK(ring.add_all(Names{"c", "b"}) == Status::ok);
  CHECK(ring.members() ==
        Names{"a", "b", "c", std::string(meshwork::dht::member_name_bytes_max, 'x')});
  CHECK(ring.remove("a") == Status::ok);
  CHECK_FALSE(ring.contains("a"));
  CHECK(ring.token_count() == 48);
  CHECK(meshwork::dht::to_string(Status::members_full).size() > 0);
}

TEST_CASE("an empty ring places nothing") {
  const Ring ring;
  CHECK(ring.empty());
  CHECK(ring.preference_list(Position{42}, r3).empty());
  CHECK(ring.preference_list("some-key", r3).empty());
  CHECK_FALSE(ring.owner(Position{42}, r3).has_value());
  CHECK(ring.ranges_of("a").empty());
  CHECK(ring.shares(r3).empty());
  CHECK(moved_ranges(ring, ring, r3).empty());
}

TEST_CASE("a single member owns the whole circle") {
  Ring ring = build({"solo"});
  for (Position p : {Position{0}, Position{UINT64_MAX}, key_position("k")}) {
    CHECK(ring.preference_list(p, r3) == Names{"solo"});
    CHECK(ring.owner(p, r3) == "solo");
  }
  const std::vector<Range> ranges = ring.ranges_of("solo", r3);
  REQUIRE(ranges.size() == 1);
  CHECK(ranges[0].full());
  CHECK(ranges[0].fraction() == 1.0);
  const auto shares = ring.shares(r3);
  REQUIRE(shares.size() == 1);
  CHECK(shares[0].primary_fraction == doctest::Approx(1.0));
  CHECK(shares[0].replica_fraction == doctest::Approx(1.0));

  Ring one_token(1);
  REQUIRE(one_token.add("solo") == Status::ok);
  REQUIRE(one_token.ranges_of("solo").size() == 1);
  CHECK(one_token.ranges_of("solo")[0].full());
}

TEST_CASE("r beyond the member count returns every member once; r = 0 returns none") {
  const Ring ring = build({"a", "b", "c"});
  for (Position p : random_positions(200, 1)) {
    Names list = ring.preference_list(p, 5);
    REQUIRE(list.size() == 3);
    std::sort(list.begin(), list.end());
    CHECK(list == Names{"a", "b", "c"});
    CHECK(ring.preference_list(p, 0).empty());
  }
  for (const auto& share : ring.shares(5)) CHECK(share.replica_fraction == doctest::Approx(1.0));
}

TEST_CASE("preference lists match a naive model, including at every token and across the wrap") {
  const Names names = numbered("node-", 12);
  const std::uint32_t vnodes = 16;
  const Ring ring = build(names, vnodes);
  const NaiveRing naive(names, vnodes);
  std::vector<Position> points = edge_positions(names, vnodes);
  const std::vector<Position> sampled = random_positions(5000, 2);
  points.insert(points.end(), sampled.begin(), sampled.end());
  for (Position p : points) {
    for (std::uint32_t r : {1u, 3u, 12u}) {
      const Names list = ring.preference_list(p, r);
      CHECK(list == naive.list(p, r));
      CHECK(std::set<std::string>(list.begin(), list.end()).size() == list.size());
    }
  }
  // Past the last token a key wraps to the first: the same list as position 0.
  const Position last = naive.tokens.back().first;
  CHECK(ring.preference_list(last + 1, r3) == ring.preference_list(Position{0}, r3));
  CHECK(ring.preference_list(UINT64_MAX, r3) == ring.preference_list(Position{0}, r3));
  const std::vector<Range> first_owner = ring.ranges_of(naive.tokens.front().second);
  CHECK(std::any_of(first_owner.begin(), first_owner.end(),
                    [](const Range& x) { return x.start > x.end && x.contains(0); }));
}

TEST_CASE("the ring depends on the member set only, never on insertion order") {
  const Names names = numbered("m", 20);
  const Ring sorted = build(names);
  Names reversed(names.rbegin(), names.rend());
  Names shuffled = names;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937_64(3));
  Ring one_by_one;
  for (const std::string& name : shuffled) REQUIRE(one_by_one.add(name) == Status::ok);
  Ring churned = build(reversed);  // slots freed and reused in a different order
  REQUIRE(churned.remove("m7") == Status::ok);
  REQUIRE(churned.remove("m3") == Status::ok);
  REQUIRE(churned.add("extra") == Status::ok);
  REQUIRE(churned.add("m3") == Status::ok);
  REQUIRE(churned.add("m7") == Status::ok);
  REQUIRE(churned.remove("extra") == Status::ok);

  for (const Ring* other : {&one_by_one, &churned}) {
    CHECK(other->members() == sorted.members());
    CHECK(other->token_count() == sorted.token_count());
    CHECK(moved_ranges(sorted, *other, meshwork::dht::replicas_max).empty());
    for (const std::string& name : names)
      CHECK(other->ranges_of(name, r3) == sorted.ranges_of(name, r3));
  }
  for (Position p : random_positions(2000, 4)) {
    CHECK(one_by_one.preference_list(p, r3) == sorted.preference_list(p, r3));
    CHECK(churned.preference_list(p, r3) == sorted.preference_list(p, r3));
  }
}

TEST_CASE("usable skips rejected members; the owner is the first usable member of the plain list") {
  const Ring ring = build(numbered("n", 6));
  const std::set<std::string> dead{"n2", "n5"};
  const meshwork::dht::Usable alive = [&](std::string_view m) {
    return dead.count(std::string(m)) == 0;
  };
  for (Position p : random_positions(2000, 5)) {
    const Names plain = ring.preference_list(p, r3);
    const Names live = ring.preference_list(p, r3, alive);
    REQUIRE(live.size() == r3);
    for (const std::string& m : live) CHECK(alive(m));
    const auto first_live = std::find_if(plain.begin(), plain.end(), alive);
    const auto owner = ring.owner(p, r3, alive);
    if (first_live == plain.end()) {
      CHECK_FALSE(owner.has_value());
    } else {
      CHECK(owner == *first_live);
      CHECK(live.front() == *first_live);
    }
    CHECK(ring.owner(p, r3) == plain.front());
  }
  const meshwork::dht::Usable nobody = [](std::string_view) { return false; };
  CHECK(ring.preference_list(Position{7}, r3, nobody).empty());
  CHECK_FALSE(ring.owner(Position{7}, r3, nobody).has_value());
}

TEST_CASE("ranges_of and shares partition the circle consistently with owner") {
  const Ring ring = build(numbered("n", 7), 32);
  double primary_total = 0;
  double replica_total = 0;
  for (const auto& share : ring.shares(r3)) {
    CHECK(share.tokens == 32);
    CHECK(covered_fraction(ring.ranges_of(share.name)) == doctest::Approx(share.primary_fraction));
    CHECK(covered_fraction(ring.ranges_of(share.name, r3)) ==
          doctest::Approx(share.replica_fraction));
    primary_total += share.primary_fraction;
    replica_total += share.replica_fraction;
  }
  CHECK(primary_total == doctest::Approx(1.0));
  CHECK(replica_total == doctest::Approx(3.0));
  struct Owned {
    std::string name;
    std::vector<Range> primary;
    std::vector<Range> replica;
  };
  std::vector<Owned> owned;
  for (const std::string& name : ring.members()) {
    owned.push_back({name, ring.ranges_of(name), ring.ranges_of(name, r3)});
  }
  for (Position p : random_positions(3000, 6)) {
    const Names list = ring.preference_list(p, r3);
    auto in = [p](const std::vector<Range>& rs) {
      return std::count_if(rs.begin(), rs.end(), [p](const Range& x) { return x.contains(p); });
    };
    for (const Owned& o : owned) {
      CHECK(in(o.primary) == (o.name == list.front() ? 1 : 0));
      CHECK(in(o.replica) == (std::count(list.begin(), list.end(), o.name) > 0 ? 1 : 0));
    }
  }
}

// Each member's share of the circle is a sum of V of the N*V gaps between uniform tokens, so its
// relative standard deviation is sqrt((NV - V) / (V (NV + 1))) ~ 8.4% at N = 10, V = 128: that is
// the "about 8%" of the design. The largest of 10 such deviations is about twice that, so V = 128
// does NOT keep every member within +-10% of the mean (see docs/ring.md for the figures).
double expected_share_sigma(double members, double vnodes) {
  const double tokens = members * vnodes;
  return std::sqrt((tokens - vnodes) / (vnodes * (tokens + 1)));
}

std::vector<double> primary_areas(const Ring& ring) {
  std::vector<double> out;
  for (const auto& share : ring.shares(1)) out.push_back(share.primary_fraction);
  return out;
}

TEST_CASE("balance: 10 members, V = 128, 100,000 keys") {
  const Ring ring = build(numbered("n", 10));
  const std::vector<Position> keys = random_positions(100'000, 7);
  const std::vector<double> counts = primary_key_counts(ring, keys);
  const std::vector<double> areas = primary_areas(ring);
  const double sampled = max_relative_deviation(counts);
  const double area = max_relative_deviation(areas);
  MESSAGE("V=128 max deviation from the mean primary share: keys " << sampled << ", area " << area);
  // Deterministic for these names: measured 0.195 (keys 0.198). An ordinary draw: over 300 sets
  // of 10 names the largest deviation has median 0.15 and p90 0.22 at V = 128 (docs/ring.md).
  CHECK(area <= 0.20);
  CHECK(sampled <= 0.22);
  // Keys follow the areas: ~10,000 keys per member gives a sampling sigma of ~1%; allow 3 sigma.
  for (std::size_t i = 0; i < counts.size(); ++i) {
    CHECK(counts[i] / static_cast<double>(keys.size()) == doctest::Approx(areas[i]).epsilon(0.03));
  }
}

TEST_CASE("balance: V = 512 keeps 10 members within +-10% of the mean") {
  const Ring ring = build(numbered("n", 10), 512);
  const double sampled =
      max_relative_deviation(primary_key_counts(ring, random_positions(100'000, 7)));
  const double area = max_relative_deviation(primary_areas(ring));
  MESSAGE("V=512 max deviation from the mean primary share: keys " << sampled << ", area " << area);
  CHECK(area <= 0.10);  // measured 0.066
  CHECK(sampled <= 0.10);
}

TEST_CASE("balance: share spread across many member sets matches the uniform-token model") {
  for (std::uint32_t vnodes : {32u, 128u}) {
    double sum_squares = 0;
    int samples = 0;
    for (int set = 0; set < 100; ++set) {
      for (double share :
           primary_areas(build(numbered("s" + std::to_string(set) + "-", 10), vnodes))) {
        sum_squares += (share * 10 - 1) * (share * 10 - 1);
        ++samples;
      }
    }
    const double sigma = std::sqrt(sum_squares / samples);
    MESSAGE("V=" << vnodes << " relative sigma of a member's share " << sigma << ", model "
                 << expected_share_sigma(10, vnodes));
    // 1000 shares estimate sigma to ~2.5% (1 sigma); 15% is a wide, non-flaky margin.
    CHECK(sigma == doctest::Approx(expected_share_sigma(10, vnodes)).epsilon(0.15));
  }
}

TEST_CASE("minimal movement when an 11th member joins") {
  const Ring before = build(numbered("n", 10));
  Ring after = before;
  REQUIRE(after.add("n11") == Status::ok);
  const std::vector<Position> keys = random_positions(100'000, 8);
  std::size_t primary_moved = 0;
  std::size_t list_changed = 0;
  for (Position p : keys) {
    const Names old_list = before.preference_list(p, r3);
    const Names new_list = after.preference_list(p, r3);
    if (old_list.front() != new_list.front()) {
      ++primary_moved;
      CHECK(new_list.front() == "n11");  // keys move only to the newcomer
    }
    if (old_list != new_list) {
      ++list_changed;
      // The newcomer slots in and pushes the last member out; nobody else moves.
      CHECK(std::count(new_list.begin(), new_list.end(), "n11") == 1);
      CHECK(is_prefix_without(Names(old_list.begin(), old_list.end() - 1), new_list, "n11"));
    }
  }
  const double moved = static_cast<double>(primary_moved) / static_cast<double>(keys.size());
  const double changed = static_cast<double>(list_changed) / static_cast<double>(keys.size());
  double moved_area = 0;
  for (const MovedRange& m : moved_ranges(before, after, 1)) moved_area += m.range.fraction();
  MESSAGE("join: primaries moved " << moved << " (area " << moved_area << ", 1/11 = " << 1.0 / 11
                                   << "), lists changed " << changed << " (3/11 = " << 3.0 / 11
                                   << ")");
  // The newcomer's share has a relative sigma of ~8.4% (expected_share_sigma): allow 3 sigma.
  CHECK(moved == doctest::Approx(1.0 / 11).epsilon(0.25));
  CHECK(changed == doctest::Approx(3.0 / 11).epsilon(0.25));
  // Keys agree with the exact area: p ~ 0.09 over 100,000 keys has sigma ~0.001.
  CHECK(std::abs(moved - moved_area) <= 0.003);
}

TEST_CASE("a member that leaves moves only the keys it held") {
  const Ring before = build(numbered("n", 11));
  Ring after = before;
  REQUIRE(after.remove("n4") == Status::ok);
  std::size_t primary_moved = 0;
  for (Position p : random_positions(50'000, 9)) {
    const Names old_list = before.preference_list(p, r3);
    const Names new_list = after.preference_list(p, r3);
    const bool held = std::count(old_list.begin(), old_list.end(), "n4") > 0;
    CHECK((old_list.front() != new_list.front()) == (old_list.front() == "n4"));
    CHECK((old_list != new_list) == held);
    if (held) CHECK(is_prefix_without(Names(new_list.begin(), new_list.end() - 1), old_list, "n4"));
    primary_moved += old_list.front() == "n4" ? 1 : 0;
  }
  MESSAGE("leave: primaries moved " << primary_moved / 50'000.0);
}

// Checks moved_ranges(before, after, r) against the lists themselves at every edge position of both
// rings and at random keys: a point is in exactly one reported range iff its list changed, and that
// range carries the point's old and new lists.
void check_moved_ranges(const Ring& before, const Ring& after, std::uint32_t r) {
  const std::vector<MovedRange> moved = moved_ranges(before, after, r);
  std::vector<Position> points = random_positions(20'000, 10);
  for (const Ring* ring : {&before, &after}) {
    const std::vector<Position> edges = edge_positions(ring->members(), ring->vnodes());
    points.insert(points.end(), edges.begin(), edges.end());
  }
  for (Position p : points) {
    const Names old_list = before.preference_list(p, r);
    const Names new_list = after.preference_list(p, r);
    std::vector<const MovedRange*> hits;
    for (const MovedRange& m : moved) {
      if (m.range.contains(p)) hits.push_back(&m);
    }
    if (old_list == new_list) {
      CHECK(hits.empty());
    } else {
      REQUIRE(hits.size() == 1);
      CHECK(hits[0]->before == old_list);
      CHECK(hits[0]->after == new_list);
    }
  }
  for (std::size_t i = 0; i < moved.size(); ++i) {  // merged: neighbours differ in their lists
    const MovedRange& next = moved[(i + 1) % moved.size()];
    if (moved.size() > 1 && moved[i].range.end == next.range.start) {
      CHECK((moved[i].before != next.before || moved[i].after != next.after));
    }
  }
}

Ring edited(Ring ring, const Names& removed, const Names& added) {
  for (const std::string& name : removed) REQUIRE(ring.remove(name) == Status::ok);
  for (const std::string& name : added) REQUIRE(ring.add(name) == Status::ok);
  return ring;
}

TEST_CASE("moved_ranges agrees with brute force over the preference lists") {
  const Ring base = build(numbered("n", 8), 16);
  const Ring empty(16);
  for (std::uint32_t r : {1u, 3u, 8u}) {
    CAPTURE(r);
    SUBCASE("join") {
      check_moved_ranges(base, edited(base, {}, {"n9"}), r);
    }
    SUBCASE("leave") {
      check_moved_ranges(base, edited(base, {"n3"}, {}), r);
    }
    SUBCASE("join and leave at once") {
      check_moved_ranges(base, edited(base, {"n2"}, {"x1", "x2"}), r);
    }
    SUBCASE("different vnodes") {
      check_moved_ranges(base, build(numbered("n", 8), 32), r);
    }
    SUBCASE("from and to an empty ring") {
      check_moved_ranges(empty, base, r);
      check_moved_ranges(base, empty, r);
    }
    SUBCASE("no change") {
      CHECK(moved_ranges(base, base, r).empty());
    }
  }
  SUBCASE("default vnodes, join") {
    check_moved_ranges(build(numbered("n", 10)), build(numbered("n", 11)), r3);
  }
  SUBCASE("one member replaced by another moves the whole circle") {
    const std::vector<MovedRange> moved = moved_ranges(build({"a"}), build({"b"}), r3);
    REQUIRE(moved.size() == 1);
    CHECK(moved[0].range.full());
    CHECK(moved[0].before == Names{"a"});
    CHECK(moved[0].after == Names{"b"});
  }
  SUBCASE("a join moves exactly the newcomer's primary area") {
    const Ring after = edited(base, {}, {"n9"});
    double area = 0;
    for (const MovedRange& m : moved_ranges(base, after, 1)) area += m.range.fraction();
    for (const auto& share : after.shares(1)) {
      if (share.name == "n9") CHECK(area == doctest::Approx(share.primary_fraction));
    }
  }
}

TEST_CASE("10,000 members x 128 vnodes: every list has R members, a join moves few ranges") {
  const Names names = numbered("node-", 10'000);
  const auto t0 = std::chrono::steady_clock::now();
  const Ring ring = build(names);
  const auto t1 = std::chrono::steady_clock::now();
  REQUIRE(ring.token_count() == 1'280'000);
  const std::vector<Position> keys = random_positions(100'000, 11);
  std::size_t listed = 0;
  for (Position p : keys) listed += ring.preference_list(p, r3).size();
  const auto t2 = std::chrono::steady_clock::now();
  CHECK(listed == 3 * keys.size());
  Ring after = ring;
  REQUIRE(after.add("node-new") == Status::ok);
  const auto t3 = std::chrono::steady_clock::now();
  const std::vector<MovedRange> moved = moved_ranges(ring, after, r3);
  const auto t4 = std::chrono::steady_clock::now();
  CHECK(moved.size() <= 3 * meshwork::dht::vnodes_default);
  for (const MovedRange& m : moved)
    CHECK(std::count(m.after.begin(), m.after.end(), "node-new") == 1);
  auto ms = [](auto from, auto to) {
    return std::chrono::duration<double, std::milli>(to - from).count();
  };
  MESSAGE("10,000 members: build " << ms(t0, t1) << " ms, 100,000 preference lists " << ms(t1, t2)
                                   << " ms, copy + add one " << ms(t2, t3) << " ms, moved_ranges "
                                   << ms(t3, t4) << " ms (" << moved.size() << " ranges)");
  // The times are printed, not asserted: tests check behaviour (a loaded CI machine once took
  // 1,007 ms to build what takes ~400 ms here). The simulator's 10,000-node runs are where a
  // slow ring would show.
}

TEST_CASE("ring measurements" * doctest::skip()) {
  const std::vector<Position> keys = random_positions(100'000, 7);
  for (std::uint32_t vnodes : {64u, 128u, 256u, 512u, 1024u}) {
    std::vector<double> worst;
    std::vector<double> joins;
    for (int set = 0; set < 300; ++set) {
      const Ring ring = build(numbered("s" + std::to_string(set) + "-", 10), vnodes);
      worst.push_back(max_relative_deviation(primary_areas(ring)));
      const Ring grown = edited(ring, {}, {"s" + std::to_string(set) + "-11"});
      double area = 0;
      for (const MovedRange& m : moved_ranges(ring, grown, 1)) area += m.range.fraction();
      joins.push_back(std::abs(area * 11 - 1));
    }
    std::sort(worst.begin(), worst.end());
    std::sort(joins.begin(), joins.end());
    const Ring named = build(numbered("n", 10), vnodes);
    MESSAGE("V=" << vnodes << " n1..n10: area " << max_relative_deviation(primary_areas(named))
                 << " keys " << max_relative_deviation(primary_key_counts(named, keys))
                 << " | 300 sets of 10, max deviation: median " << worst[150] << " p90 "
                 << worst[270] << " p99 " << worst[297] << " | join moves 1/11 +- (median "
                 << joins[150] << ", p90 " << joins[270] << ") | sigma model "
                 << expected_share_sigma(10, vnodes));
  }
}
