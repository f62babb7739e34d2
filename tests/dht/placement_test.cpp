// Placement from one membership snapshot (dht/placement.h) and the record index and its digests
// (dht/index.h): both pure, so checked here without processes.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>

#include "dht/hash.h"
#include "dht/index.h"
#include "dht/placement.h"
#include "tests/dht/replica_harness.h"

namespace meshwork {
namespace {

Placement snapshot(const std::map<std::string, MemberState>& states, PlacementOptions o = {}) {
  return Placement("n1", states, o, 1);
}

std::string id_of(int i) {
  return blake2b_hex(std::to_string(i));
}

}  // namespace

TEST_CASE("replicas are the first R usable members; a dead one's place goes to the next") {
  const std::map<std::string, MemberState> all_alive = {{"n1", MemberState::alive},
                                                        {"n2", MemberState::alive},
                                                        {"n3", MemberState::alive},
                                                        {"n4", MemberState::alive},
                                                        {"n5", MemberState::alive}};
  const Placement up = snapshot(all_alive);
  auto with = all_alive;
  with["n3"] = MemberState::dead;
  const Placement down = snapshot(with);
  CHECK(down.ring().member_count() == 5);  // a dead member keeps its tokens
  CHECK_FALSE(down.usable("n3"));
  int moved = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto before = up.replicas(id_of(i));
    const auto after = down.replicas(id_of(i));
    REQUIRE(before.size() == 3);
    REQUIRE(after.size() == 3);
    CHECK(std::find(after.begin(), after.end(), "n3") == after.end());
    if (std::find(before.begin(), before.end(), "n3") == before.end()) {
      CHECK(before == after);  // lists without the dead member do not change
    } else {
      ++moved;
      // The survivors keep their order; the stand-in comes last.
      std::vector<std::string> kept;
      for (const auto& m : before)
        if (m != "n3") kept.push_back(m);
      CHECK(std::equal(kept.begin(), kept.end(), after.begin()));
    }
    CHECK(down.owner(id_of(i)) == after.front());
  }
  CHECK(moved > 2000 * 3 / 5 * 8 / 10);  // about 3/5 of the lists held n3
}

TEST_CASE("suspects keep their place; left members leave the ring") {
  const Placement t = snapshot({{"n2", MemberState::suspect}, {"n3", MemberState::left}});
  CHECK(t.usable("n2"));
  CHECK_FALSE(t.usable("n3"));
  CHECK(t.ring().member_count() == 2);
  for (int i = 0; i < 100; ++i) {
    auto list = t.replicas(id_of(i));
    CHECK(std::set<std::string>(list.begin(), list.end()) == std::set<std::string>{"n1", "n2"});
  }
}

TEST_CASE("the write quorum is W, capped by the ring's size, and counts dead members") {
  CHECK(snapshot({}).write_quorum() == 1);  // a one-node mesh acknowledges on its own disk
  CHECK(snapshot({{"n2", MemberState::alive}}).write_quorum() == 2);
  const Placement t = snapshot({{"n2", MemberState::dead}, {"n3", MemberState::dead}});
  CHECK(t.write_quorum() == 2);  // two of three lost: still two disks, so refuse
  CHECK(t.replicas(id_of(1)) == std::vector<std::string>{"n1"});
  CHECK(Placement::majority(3) == 2);
  CHECK(Placement::majority(1) == 1);
  CHECK(Placement::majority(4) == 3);
}

TEST_CASE("usable peers are the alive and suspect members other than this node") {
  const Placement t = snapshot(
      {{"n2", MemberState::alive}, {"n3", MemberState::dead}, {"n4", MemberState::suspect}});
  CHECK(t.usable_peers() == std::vector<std::string>{"n2", "n4"});
}

TEST_CASE("a distrusted member is not usable, keeps its tokens, and trust brings it back") {
  Placement p = snapshot({{"n1", MemberState::alive},
                          {"n2", MemberState::alive},
                          {"n3", MemberState::alive},
                          {"n4", MemberState::alive}});
  std::string id;  // a job n2 owns
  for (int i = 0; id.empty(); ++i)
    if (p.owner(id_of(i)) == "n2") id = id_of(i);
  const uint64_t v = p.version();
  CHECK(p.set_distrusted("n2", true));
  CHECK_FALSE(p.set_distrusted("n2", true));  // no change
  CHECK(p.version() > v);
  CHECK(p.distrusted("n2"));
  CHECK_FALSE(p.usable("n2"));
  CHECK(p.owner(id) != "n2");
  CHECK_FALSE(p.is_replica(id, "n2"));
  CHECK(p.replicas(id).size() == 3);                  // a stand-in takes its place
  CHECK(p.members().at("n2") == MemberState::alive);  // still a member, on the ring
  CHECK(p.ring().member_count() == 4);
  const auto peers = p.usable_peers();
  CHECK(std::find(peers.begin(), peers.end(), "n2") == peers.end());
  const uint64_t v2 = p.version();
  CHECK(p.set_distrusted("n2", false));
  CHECK(p.version() > v2);
  CHECK(p.owner(id) == "n2");
}

TEST_CASE("distrust: never self; any name; the version moves only when usable() does") {
  Placement p = snapshot({{"n1", MemberState::alive}, {"n2", MemberState::dead}});
  const uint64_t v = p.version();
  CHECK_FALSE(p.set_distrusted("n1", true));  // this node, in its own placement
  CHECK(p.usable("n1"));
  CHECK(p.set_distrusted("n2", true));  // dead: not usable before or after
  CHECK(p.version() == v);
  CHECK(p.set_distrusted("n9", true));  // not a member yet: distrusted when it joins
  CHECK(p.set("n9", MemberState::alive));
  CHECK_FALSE(p.usable("n9"));
  CHECK(p.set("n2", MemberState::alive));  // back, still distrusted
  CHECK_FALSE(p.usable("n2"));
  CHECK(p.ring().member_count() == 3);
}

TEST_CASE("the index tracks unfinished records and digests that agree exactly when contents do") {
  RecordIndex a, b;
  std::vector<JobRecord> recs;
  for (int i = 0; i < 50; ++i) {
    recs.push_back(stage::job(i, 1000));
    const uint64_t fp = record_fingerprint(encode_record(recs.back()));
    a.put(recs.back(), fp);
    b.put(recs.back(), fp);
  }
  const RecordIndex::Keep all = [](const std::string&, const IndexEntry&) { return true; };
  CHECK(a.size() == 50);
  CHECK(a.unfinished_count() == 50);
  CHECK(a.digests(8, all) == b.digests(8, all));

  // One record moves on at b only: exactly its bucket differs, and entries_in names it.
  JobRecord done = recs[7];
  done.status = JobStatus{JobState::succeeded, 1, "n2", 5, {}, 0};
  b.put(done, record_fingerprint(encode_record(done)));
  CHECK(b.unfinished_count() == 49);
  const auto da = a.digests(8, all), db = b.digests(8, all);
  std::set<uint32_t> differ;
  for (uint32_t i = 0; i < da.size(); ++i)
    if (da[i] != db[i]) differ.insert(i);
  CHECK(differ == std::set<uint32_t>{bucket_of(done.id, 8)});
  auto entries = b.entries_in(8, differ, all, 4096);
  CHECK(std::any_of(entries.begin(), entries.end(),
                    [&](const auto& e) { return e.first == done.id; }));
  CHECK(b.entries_in(8, differ, all, 0).empty());  // bounded

  // A filter that keeps nothing makes every digest zero.
  const RecordIndex::Keep none = [](const std::string&, const IndexEntry&) { return false; };
  for (uint64_t d : a.digests(8, none)) CHECK(d == 0);
}

TEST_CASE("the index finds, updates and erases entries, and keeps the unfinished set in step") {
  RecordIndex idx;
  std::vector<JobRecord> recs;
  for (int i = 0; i < 200; ++i) {
    recs.push_back(stage::job(i, 1000));
    idx.put(recs.back(), static_cast<uint64_t>(i));
  }
  // Moves, states going back and forth, erasures: the hash and the ordered views must agree.
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < recs.size(); i += 3) {
      JobRecord r = recs[i];
      r.status.state = (i + round) % 2 == 0 ? JobState::succeeded : JobState::running;
      idx.put(r, 1000 + i);
    }
  }
  for (size_t i = 1; i < recs.size(); i += 5) idx.erase(recs[i].id);
  idx.erase(std::string(64, 'e'));  // not held: nothing happens
  std::map<std::string, const IndexEntry*> listed;  // the unfinished list, each id once
  for (const auto& [id, e] : idx.unfinished()) CHECK(listed.emplace(std::string(id), e).second);
  size_t held = 0, unfinished = 0;
  for (size_t i = 0; i < recs.size(); ++i) {
    CAPTURE(i);
    const IndexEntry* e = idx.find(recs[i].id);
    if (i % 5 == 1) {
      CHECK(e == nullptr);
      CHECK_FALSE(listed.contains(recs[i].id));
      continue;
    }
    REQUIRE(e != nullptr);
    ++held;
    REQUIRE(idx.entries().find(recs[i].id) != idx.entries().end());
    CHECK(e == &idx.entries().find(recs[i].id)->second);  // the same entry either way
    CHECK(listed.contains(recs[i].id) == !is_terminal(e->state));
    if (listed.contains(recs[i].id)) CHECK(listed.at(recs[i].id) == e);
    if (!is_terminal(e->state)) ++unfinished;
  }
  CHECK(idx.size() == held);
  CHECK(idx.unfinished_count() == unfinished);
  CHECK(listed.size() == unfinished);
  // An erased record put back is found again.
  idx.put(recs[1], 7);
  REQUIRE(idx.find(recs[1].id) != nullptr);
  CHECK(idx.find(recs[1].id)->fingerprint == 7);
  RecordIndex moved = std::move(idx);
  REQUIRE(moved.find(recs[1].id) != nullptr);
  CHECK(moved.find(recs[1].id)->fingerprint == 7);
}

namespace {

// The walk both kept views must agree with: bucket digests over the records whose placed list
// names both this node and `peer`.
std::vector<uint64_t> walked_shared(const RecordIndex& idx, const std::string& self,
                                    const std::string& peer, unsigned bits) {
  return idx.digests(bits, [&](const std::string&, const IndexEntry& e) {
    const auto named = [&](const std::string& m) {
      return std::find(e.replicas.begin(), e.replicas.end(), m) != e.replicas.end();
    };
    return named(self) && named(peer);
  });
}

std::vector<std::pair<std::string, uint64_t>> walked_entries(const RecordIndex& idx, unsigned bits,
                                                             const std::set<uint32_t>& buckets,
                                                             size_t max) {
  std::vector<std::pair<std::string, uint64_t>> out;
  for (const auto& [key, e] : idx.entries()) {
    if (out.size() == max) break;
    if (buckets.contains(bucket_of(key.id, bits)) && e.fingerprint % 3 != 0)
      out.emplace_back(key.id, e.fingerprint);
  }
  return out;
}

}  // namespace

TEST_CASE("the kept shared digests and the arc walk agree with a walk of every record") {
  const std::vector<std::string> members{"n1", "n2", "n3", "n4", "n5"};
  uint64_t rng = 0x5eed;
  const auto next = [&](uint64_t n) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (rng >> 33) % n;
  };
  RecordIndex idx;
  idx.share_as("n1", 8);
  std::vector<JobRecord> recs;
  for (int i = 0; i < 400; ++i) recs.push_back(stage::job(i, 1000));
  recs[17].id = "zz" + recs[17].id.substr(2);  // not led by hex: entries_in must walk everything
  uint64_t version = 1;
  for (int step = 0; step < 6000; ++step) {
    const JobRecord& r = recs[next(recs.size())];
    switch (next(5)) {
      case 0:
      case 1:
        idx.put(r, next(1u << 30) + 1);  // a new fingerprint (or a new entry)
        break;
      case 2: {  // a list of 1–4 members, sometimes naming one twice
        std::vector<std::string> list;
        for (uint64_t k = 0, n = 1 + next(4); k < n; ++k) list.push_back(members[next(5)]);
        idx.place(r.id, std::move(list), version);
        break;
      }
      case 3:
        idx.erase(r.id);
        break;
      default:
        if (next(50) == 0) ++version;
    }
    if (step % 500 != 499) continue;
    CAPTURE(step);
    for (const std::string& peer : members)
      if (peer != "n1") CHECK(idx.shared_digests(peer) == walked_shared(idx, "n1", peer, 8));
    const RecordIndex::Keep some = [](const std::string&, const IndexEntry& e) {
      return e.fingerprint % 3 != 0;
    };
    for (unsigned bits : {4u, 6u, 8u, 12u}) {
      std::set<uint32_t> buckets;
      for (int k = 0; k < 12; ++k) buckets.insert(static_cast<uint32_t>(next(1u << bits)));
      for (size_t max : {size_t{0}, size_t{5}, size_t{4096}})
        CHECK(idx.entries_in(bits, buckets, some, max) == walked_entries(idx, bits, buckets, max));
    }
  }
  // Placed at one version, and not at it once a single entry is left behind.
  for (size_t i = 0; i < recs.size(); ++i) idx.put(recs[i], 100 + i);
  for (const JobRecord& r : recs) idx.place(r.id, {"n1", "n2", "n3"}, 9);
  CHECK(idx.all_placed_at(9));
  CHECK_FALSE(idx.all_placed_at(8));
  CHECK(idx.shared_digests("n2") == walked_shared(idx, "n1", "n2", 8));
  for (uint64_t d : idx.shared_digests("n5")) CHECK(d == 0);
  idx.place(recs[3].id, {"n1", "n2", "n4"}, 10);
  CHECK_FALSE(idx.all_placed_at(9));
  CHECK_FALSE(idx.all_placed_at(10));
  idx.erase(recs[17].id);  // the odd id gone: entries_in walks arcs and still agrees
  const RecordIndex::Keep some = [](const std::string&, const IndexEntry& e) {
    return e.fingerprint % 3 != 0;
  };
  const auto arcs = idx.entries_in(8, {0, 1, 2, 200, 255}, some, 4096);
  CHECK_FALSE(arcs.empty());
  CHECK(arcs == walked_entries(idx, 8, {0, 1, 2, 200, 255}, 4096));
  CHECK(idx.shared_digests("n4") == walked_shared(idx, "n1", "n4", 8));
  for (const JobRecord& r : recs) idx.erase(r.id);
  CHECK(idx.all_placed_at(1));  // nothing held
  for (uint64_t d : idx.shared_digests("n2")) CHECK(d == 0);
}

TEST_CASE("id keys order exactly as their ids, whatever their length or bytes") {
  // Short ids, ids that are prefixes of others, NUL and high bytes within and past the lead's 8.
  std::vector<std::string> ids = {"", "a", "ab", std::string("ab\0", 3), std::string("ab\0\0", 4),
                                  "abcdefgh", "abcdefg", "abcdefgh0", "abcdefgh\xff", "\xff",
                                  std::string(8, '\0'), std::string(9, '\0'), "zzzzzzzz"};
  uint64_t x = 88172645463325252ull;  // xorshift: ids that share long leads, and random ones
  for (int i = 0; i < 400; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::string s = i % 2 == 0 ? std::string("00000000") : std::string();
    for (size_t n = x % 12; n > 0; --n) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      s.push_back(i % 3 == 0 ? "\0a\xff"[x % 3] : char(x >> 8));
    }
    ids.push_back(s);
    ids.push_back(id_of(i));
  }
  const IdKeyLess less;
  for (const std::string& a : ids) {
    for (const std::string& b : ids) {
      CAPTURE(a);
      CAPTURE(b);
      const IdKey ka(a), kb(b);
      CHECK(less(ka, kb) == (a < b));
      CHECK(less(ka, std::string_view(b)) == (a < b));
      CHECK(less(std::string_view(a), kb) == (a < b));
    }
  }
  // An index walks its entries in id order.
  RecordIndex idx;
  std::vector<std::string> held;
  for (int i = 0; i < 300; ++i) {
    JobRecord r = stage::job(i, 1000);  // the index reads only the id and the status fields
    r.id = i % 2 == 0 ? id_of(i) : id_of(i).substr(0, 5 + i % 60);
    idx.put(r, uint64_t(i));
    held.push_back(r.id);
  }
  std::sort(held.begin(), held.end());
  held.erase(std::unique(held.begin(), held.end()), held.end());
  std::vector<std::string> walked;
  for (const auto& [key, e] : idx.entries()) walked.push_back(key.id);
  CHECK(walked == held);
}

TEST_CASE("the unfinished list runs in the order records became unfinished") {
  RecordIndex idx;
  std::vector<JobRecord> recs;
  for (int i = 0; i < 12; ++i) {
    recs.push_back(stage::job(i, 1000));
    idx.put(recs.back(), uint64_t(i));
  }
  const auto listed = [&] {
    std::vector<std::string> ids;
    for (const auto& [id, e] : idx.unfinished()) {
      CHECK(e->id == id);
      ids.emplace_back(id);
    }
    return ids;
  };
  const auto ids_of = [&](std::initializer_list<int> at) {
    std::vector<std::string> ids;
    for (int i : at) ids.push_back(recs[size_t(i)].id);
    return ids;
  };
  CHECK(listed() == ids_of({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  // A change that keeps a record unfinished keeps its place; the first, a middle one and the last
  // finish; an erased record leaves; a finished one retried joins at the end.
  JobRecord running = recs[3];
  running.status.state = JobState::running;
  idx.put(running, 100);
  for (int i : {0, 5, 11}) {
    JobRecord done = recs[size_t(i)];
    done.status.state = JobState::succeeded;
    idx.put(done, 200);
  }
  idx.erase(recs[7].id);
  CHECK(listed() == ids_of({1, 2, 3, 4, 6, 8, 9, 10}));
  idx.put(recs[5], 300);
  idx.put(recs[0], 300);
  idx.erase(recs[1].id);
  idx.erase(recs[0].id);
  CHECK(listed() == ids_of({2, 3, 4, 6, 8, 9, 10, 5}));
  CHECK(idx.unfinished_count() == 8);
  RecordIndex moved = std::move(idx);
  std::vector<std::string> after;
  for (const auto& [id, e] : moved.unfinished()) after.emplace_back(id);
  CHECK(after == ids_of({2, 3, 4, 6, 8, 9, 10, 5}));
}

TEST_CASE("bucket_of takes the leading bits of the id") {
  const std::string id(64, 'f');
  CHECK(bucket_of(id, 8) == 255);
  CHECK(bucket_of(std::string(64, '0'), 8) == 0);
  CHECK(bucket_of("a" + std::string(63, '0'), 4) == 10);
}

}  // namespace meshwork

namespace meshwork {

TEST_CASE("a placement changed member by member places like one built from the final view") {
  Placement p("n1", {}, PlacementOptions{}, 1);
  CHECK(p.set("n2", MemberState::alive));
  CHECK(p.set("n3", MemberState::alive));
  CHECK(p.set("n4", MemberState::suspect));
  CHECK(p.set("n5", MemberState::alive));
  CHECK(p.set("n5", MemberState::dead));
  CHECK(p.set("n6", MemberState::alive));
  CHECK(p.set("n6", MemberState::left));
  CHECK_FALSE(p.set("n6", MemberState::left));   // nothing changed
  CHECK_FALSE(p.set("n2", MemberState::alive));  // nothing changed
  CHECK_FALSE(p.set("n1", MemberState::dead));   // this node is always alive in its own view
  const Placement fresh("n1",
                        {{"n2", MemberState::alive},
                         {"n3", MemberState::alive},
                         {"n4", MemberState::suspect},
                         {"n5", MemberState::dead}},
                        PlacementOptions{}, 1);
  CHECK(p.ring().member_count() == 5);
  CHECK(p.version() > fresh.version());
  for (int i = 0; i < 500; ++i) {
    const std::string id = blake2b_hex(std::to_string(i));
    CHECK(p.replicas(id) == fresh.replicas(id));
  }
}

TEST_CASE("the placement version moves when a list may move, not when a member is only suspected") {
  Placement p("n1", {{"n2", MemberState::alive}, {"n3", MemberState::alive}}, PlacementOptions{},
              1);
  const uint64_t v0 = p.version();
  CHECK(p.set("n2", MemberState::suspect));  // recorded...
  CHECK(p.members().at("n2") == MemberState::suspect);
  CHECK(p.version() == v0);                  // ...but both states are usable: no list moved
  CHECK(p.set("n2", MemberState::alive));
  CHECK(p.version() == v0);
  CHECK(p.set("n2", MemberState::dead));  // unusable now: lists move
  CHECK(p.version() > v0);
  const uint64_t v1 = p.version();
  CHECK(p.set("n2", MemberState::suspect));  // usable again
  CHECK(p.version() > v1);
  const uint64_t v2 = p.version();
  CHECK(p.set("n4", MemberState::alive));  // joins the ring
  CHECK(p.version() > v2);
}

}  // namespace meshwork

namespace meshwork {

TEST_CASE("a reaped member gives up its tokens, keeps its dead state, and gets them back alive") {
  const std::map<std::string, MemberState> all_alive = {{"n2", MemberState::alive},
                                                        {"n3", MemberState::alive},
                                                        {"n4", MemberState::alive},
                                                        {"n5", MemberState::alive}};
  const Placement up = snapshot(all_alive);
  Placement p = snapshot(all_alive);
  CHECK_FALSE(p.reap("n3"));  // alive: nothing to reap
  CHECK_FALSE(p.reap("n9"));  // unknown
  REQUIRE(p.set("n3", MemberState::dead));
  const Placement dead = p;
  const uint64_t v0 = p.version();
  CHECK(p.reap("n3"));
  CHECK(p.version() > v0);
  CHECK_FALSE(p.ring().contains("n3"));
  CHECK(p.ring().member_count() == 4);
  CHECK(p.members().at("n3") == MemberState::dead);
  CHECK(p.reaped() == std::set<std::string, std::less<>>{"n3"});
  for (const auto& share : p.ring().shares(3)) CHECK(share.name != "n3");
  // The lists were already without n3 while it was dead: reaping moves none of them.
  for (int i = 0; i < 1000; ++i) {
    const auto list = p.replicas(id_of(i));
    CHECK(list == dead.replicas(id_of(i)));
    CHECK(std::find(list.begin(), list.end(), "n3") == list.end());
  }
  const uint64_t v1 = p.version();
  CHECK_FALSE(p.reap("n3"));                    // once
  CHECK_FALSE(p.set("n3", MemberState::dead));  // gossip repeating `dead` changes nothing
  CHECK(p.version() == v1);
  CHECK_FALSE(p.ring().contains("n3"));
  CHECK(p.set("n3", MemberState::alive));  // back: its tokens return, as on a join
  CHECK(p.version() > v1);
  CHECK(p.ring().contains("n3"));
  CHECK(p.reaped().empty());
  for (int i = 0; i < 1000; ++i) CHECK(p.replicas(id_of(i)) == up.replicas(id_of(i)));
  // A reaped member that leaves is forgotten.
  REQUIRE(p.set("n3", MemberState::dead));
  REQUIRE(p.reap("n3"));
  CHECK(p.set("n3", MemberState::left));
  CHECK_FALSE(p.members().contains("n3"));
  CHECK(p.reaped().empty());
  CHECK(p.ring().member_count() == 4);
}

TEST_CASE("the write quorum stops counting members once they are reaped") {
  Placement p = snapshot({{"n2", MemberState::dead}, {"n3", MemberState::dead}});
  CHECK(p.write_quorum() == 2);  // dead, on the ring: still two disks, so refuse
  REQUIRE(p.reap("n2"));
  CHECK(p.write_quorum() == 2);  // n1 and n3's tokens
  REQUIRE(p.reap("n3"));
  CHECK(p.write_quorum() == 1);  // a mesh of one again, as if both had left
}

}  // namespace meshwork
