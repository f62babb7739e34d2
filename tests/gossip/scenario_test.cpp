// Scenario tests on the pure core, in the spirit of etcd raft's testdata scripts: a script of
// events on a virtual network, then the membership every node must see.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>

#include "tests/gossip/sim_net.h"

using namespace meshwork::gossip;
using namespace meshwork::gossip::test;
using Kind = MemberEvent::Kind;

namespace {

SimNet::Options lan(uint64_t seed) {
  SimNet::Options o;
  o.seed = seed;
  o.delay_ms_min = 0;
  o.delay_ms_max = 5;  // up to 5 ms: packets overtake each other
  return o;
}

// start N, run until every node sees every node alive.
void stabilize(SimNet& net, int n) {
  net.start_all(n);
  const auto took = net.run_until([&] { return net.converged(); }, 10'000);
  REQUIRE_MESSAGE(took, "cluster did not converge");
}

uint64_t median(std::vector<uint64_t> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

TEST_CASE("start 5, stabilize: everyone alive everywhere, with metadata") {
  SimNet net(lan(1));
  stabilize(net, 5);
  net.run_for(5'000);
  CHECK(net.converged());
  const auto v = net.view(4, 2);
  REQUIRE(v);
  CHECK(v->meta.api == "127.0.0.1:8002");
  CHECK(v->meta.public_key == "pk2");
  CHECK(net.count_events(Kind::suspect) == 0);
  CHECK(net.count_events(Kind::dead) == 0);
}

TEST_CASE("crash n3, run 10 s: all others see n3 dead") {
  SimNet net(lan(2));
  stabilize(net, 5);
  net.run_for(2'000);
  net.crash(3);
  net.run_for(10'000);
  CHECK(net.all_see(3, MemberState::dead));
  for (int id : {1, 2, 4, 5}) CHECK(net.all_see(id, MemberState::alive));
  // Reaped after the reap timeout: gone from every list.
  net.run_for(net.node(1).config().reap_timeout_ms + 1'000);
  for (int id : {1, 2, 4, 5}) CHECK_FALSE(net.state(id, 3));
  CHECK(net.converged());
}

TEST_CASE("kill-to-dead-everywhere latency of the lan profile, 5 and 20 nodes") {
  for (const int n : {5, 20}) {
    std::vector<uint64_t> took;
    for (uint64_t seed = 1; seed <= 11; ++seed) {
      SimNet net(lan(100 + seed));
      net.start_all(n);
      REQUIRE(net.run_until([&] { return net.converged(); }, 20'000));
      net.run_for(3'000 + seed * 37);
      net.crash(n);
      const auto t = net.run_until([&] { return net.all_see(n, MemberState::dead); }, 20'000, 5);
      REQUIRE(t);
      took.push_back(*t);
      CHECK(net.count_events(Kind::dead) == static_cast<std::size_t>(n - 1));  // no one else died
    }
    const uint64_t med = median(took);
    MESSAGE("lan, N=", n, ": median ", med, " ms, max ",
            *std::max_element(took.begin(), took.end()),
            " ms from crash to dead on every survivor");
    CHECK(med <= 1'500);
  }
}

TEST_CASE("partition then heal: each side sees the other dead, then all alive again") {
  SimNet net(lan(3));
  stabilize(net, 5);
  net.partition({1, 2}, {3, 4, 5});
  net.run_for(10'000);
  CHECK(net.state(1, 4) == MemberState::dead);
  CHECK(net.state(5, 2) == MemberState::dead);
  CHECK(net.state(1, 2) == MemberState::alive);
  CHECK(net.state(3, 5) == MemberState::alive);
  net.heal();
  const auto took = net.run_until([&] { return net.converged(); }, 30'000);
  CHECK_MESSAGE(took, "partitions did not merge again");
  MESSAGE("partition healed in ", took.value_or(0), " ms");
}

TEST_CASE("pausing n2 for less than the suspicion timeout gets nobody declared dead") {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SimNet net(lan(200 + seed));
    stabilize(net, 5);
    net.run_for(1'000 + seed * 13);
    net.pause(2);  // like SIGSTOP: no ticks, and nothing reaches it or leaves it
    net.run_for(400);
    net.resume(2);
    net.run_for(5'000);
    CHECK_MESSAGE(net.count_events(Kind::dead) == 0, "seed ", seed);
    CHECK(net.converged());
  }
}

TEST_CASE("pausing n2 for longer gets it declared dead; on resume it refutes and is alive again") {
  SimNet net(lan(4));
  stabilize(net, 5);
  const uint64_t before = net.node(2).incarnation();
  net.pause(2);
  net.run_for(8'000);
  CHECK(net.all_see(2, MemberState::dead));
  net.resume(2);
  const auto took = net.run_until([&] { return net.converged(); }, 20'000);
  CHECK(took);
  CHECK(net.node(2).incarnation() > before);
  CHECK(net.node(2).stats().refutes >= 1);
}

TEST_CASE("a falsely suspected n2 refutes with a higher incarnation") {
  SimNet net(lan(5));
  stabilize(net, 5);
  const uint64_t before = net.node(2).incarnation();
  std::vector<uint8_t> lie{wire_version};
  REQUIRE(encode(Suspect{"n2", before, "n1"}, lie));
  net.inject(3, sim_address(1), lie);
  CHECK(net.state(3, 2) == MemberState::suspect);
  net.run_for(3'000);
  CHECK(net.converged());
  CHECK(net.node(2).incarnation() == before + 1);
  for (int id : {1, 3, 4, 5}) CHECK(net.view(id, 2)->incarnation == before + 1);
  CHECK(net.node(2).stats().refutes == 1);
  CHECK(net.count_events(Kind::dead) == 0);
}

TEST_CASE("a dead notice about a live n2 that nobody suspected: n2 refutes, nobody sees it dead") {
  // What a node that was cut off says when its partition heals: it declared n2 dead at n2's
  // current incarnation, after a suspicion that never reached n2 (docs/chaos.md).
  SimNet net(lan(12));
  stabilize(net, 5);
  const uint64_t before = net.node(2).incarnation();
  std::vector<uint8_t> stale{wire_version};
  REQUIRE(encode(Dead{"n2", before, "n5"}, stale));
  net.inject(3, sim_address(5), stale);
  CHECK(net.state(3, 2) == MemberState::suspect);
  net.run_for(3'000);
  CHECK(net.converged());
  CHECK(net.count_events(Kind::dead) == 0);
  CHECK(net.node(2).incarnation() == before + 1);
}

TEST_CASE("dead notices do not end a suspicion: only this node's own timer declares a death") {
  // n1 knows n2, n3, n4; n3 tells it n2 is suspect, then n3 and n4 tell it n2 is dead. n2 stays
  // suspect until n1's own suspicion timer runs out.
  const Config cfg;
  Membership m(cfg, "n1", sim_address(1), {}, 1, 7);
  Output out;
  uint64_t now = 1'000;
  m.join(now, {}, out);
  const auto hear = [&](const Message& msg) {
    std::vector<uint8_t> bytes{wire_version};
    REQUIRE(encode(msg, bytes));
    m.receive(now, sim_address(3), bytes, out);
  };
  for (int id = 2; id <= 4; ++id) hear(Alive{sim_name(id), 5, sim_address(id), {}});
  hear(Suspect{"n2", 5, "n3"});
  REQUIRE(m.member("n2")->state == MemberState::suspect);
  now += 100;
  hear(Dead{"n2", 5, "n3"});
  hear(Dead{"n2", 5, "n4"});
  CHECK(m.member("n2")->state == MemberState::suspect);
  CHECK(m.stats().deaths_declared == 0);
  now = 1'000 + suspicion_min_ms(cfg, 4) - 1;  // a timer never runs out before its minimum
  m.tick(now, out);
  CHECK(m.member("n2")->state == MemberState::suspect);
  const uint64_t end = 1'000 + suspicion_max_ms(cfg, 4);  // ...nor after its maximum
  while (now < end && m.member("n2")->state != MemberState::dead) {
    now = std::min(end, std::max(now + 1, m.next_deadline_ms()));
    m.tick(now, out);
  }
  CHECK(m.member("n2")->state == MemberState::dead);
  CHECK(m.stats().deaths_declared >= 1);
}

TEST_CASE("a node cut off until it declares the others dead, then healed: no false deaths") {
  // docs/chaos.md, "False deaths after a partition heals": n5, alone behind a partition, declares
  // the others dead at their current incarnations; the partition heals right after (0-80 ms).
  // Its dead notices, still being gossiped, must not get a live member declared dead by the
  // others; everyone must see everyone alive again.
  std::size_t false_deaths = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SimNet net(lan(400 + seed));
    net.start_all(7);
    // Not stabilize(): at seed 16 the join of n7 misses n4 and only a push-pull repairs it.
    REQUIRE(net.run_until([&] { return net.converged(); }, 40'000));
    net.run_for(500 + seed * 37);
    const uint64_t cut_at = net.now();
    net.partition({5}, {1, 2, 3, 4, 6, 7});
    const uint64_t deaths = 1 + seed % 3;
    REQUIRE(
        net.run_until([&] { return net.node(5).stats().deaths_declared >= deaths; }, 20'000, 1));
    net.run_for(seed % 5 * 20);
    net.heal();
    net.run_for(10'000);
    std::size_t here = 0;
    for (const SimNet::Event& e : net.events()) {
      here += e.at_ms > cut_at && e.kind == Kind::dead && e.viewer != 5 && e.subject != "n5";
    }
    CHECK_MESSAGE(here == 0, "seed ", seed, ": ", here, " false deaths on the main side");
    CHECK_MESSAGE(net.converged(), "seed ", seed);
    false_deaths += here;
  }
  MESSAGE("20 heals: ", false_deaths, " dead events about live members on the main side");
}

TEST_CASE("a node that hears it was declared dead pulls the state it missed") {
  // docs/simulation.md: deaths announced while a node was cut off (or paused) reach it late,
  // because the dead notices have died out by the time it is back. Once it learns it was
  // declared dead, it asks its accuser for the whole state, so it learns them at once.
  SimNet net(lan(14));
  stabilize(net, 40);
  net.pause(5);
  net.run_for(500);
  net.crash(2);
  REQUIRE(net.run_until(
      [&] { return net.state(1, 2) == MemberState::dead && net.state(1, 5) == MemberState::dead; },
      20'000));
  net.run_for(3'000);  // the dead notices about n2 have died out
  REQUIRE(net.state(5, 2) == MemberState::alive);
  const uint64_t pulls = net.node(5).stats().push_pulls;
  net.resume(5);
  const auto took = net.run_until([&] { return net.state(5, 2) == MemberState::dead; }, 30'000);
  REQUIRE(took);
  MESSAGE("n5 saw crashed n2 dead ", *took, " ms after it resumed");
  CHECK(net.node(5).stats().push_pulls > pulls);
  CHECK(*took <= 8'000);
  CHECK(net.run_until([&] { return net.all_see(5, MemberState::alive); }, 10'000));
}

TEST_CASE("a node that missed a join learns the member from its pings, and sees it die") {
  // meshwork-sim --nodes 10 --seed 15 --duration 30 --jobs 500 --cancels 0.1 --retries 1: the one
  // alive about n8 sent to n1 was lost and the retransmits ran out elsewhere. n8 pinged n1 16 times
  // in 27 s and n1 acked, but a ping did not say who sent it, and n1's first push-pull was due
  // after n8 crashed; the suspect and dead notices about a member n1 did not know were ignored,
  // so n1 never knew n8 at all (invariant dead-detected). Here every alive about n5 gossiped to
  // n2 is lost; push-pulls get through, but the next periodic one is 30 s away.
  SimNet net(lan(15));
  stabilize(net, 4);
  net.set_filter([](int, int to, std::vector<uint8_t>& bytes) {
    std::vector<Message> messages;
    if (to != 2 || decode_packet(bytes, messages) != DecodeStatus::ok) return;
    if (!messages.empty() && std::holds_alternative<PushPull>(messages.front())) return;
    std::vector<uint8_t> kept{wire_version};
    for (const Message& m : messages) {
      const auto* alive = std::get_if<Alive>(&m);
      if (alive == nullptr || alive->name != "n5") REQUIRE(encode(m, kept));
    }
    bytes = std::move(kept);
  });
  const uint64_t pulls = net.node(2).stats().push_pulls;
  net.start(5);
  const auto took = net.run_until([&] { return net.state(2, 5) == MemberState::alive; }, 5'000);
  REQUIRE_MESSAGE(took, "n2 never learned of n5, which pings it");
  MESSAGE("n2 learned of n5 ", *took, " ms after n5 started");
  CHECK(net.node(2).stats().push_pulls == pulls + 1);  // one pull, from n5
  CHECK(net.view(2, 5)->meta.api == "127.0.0.1:8005");
  CHECK(net.run_until([&] { return net.converged(); }, 2'000));
  net.crash(5);
  CHECK(net.run_until([&] { return net.all_see(5, MemberState::dead); }, 10'000));
  CHECK(net.count_events(Kind::dead) == 4);  // n5 on each of the four others, nobody else
}

TEST_CASE("pings between members that know each other pull no state") {
  SimNet net(lan(16));
  stabilize(net, 8);
  std::vector<uint64_t> pulls;
  for (int id = 1; id <= 8; ++id) pulls.push_back(net.node(id).stats().push_pulls);
  net.run_for(10'000);  // 7 probe rounds each, before the first periodic push-pull
  for (int id = 1; id <= 8; ++id) CHECK(net.node(id).stats().push_pulls == pulls[id - 1]);
}

TEST_CASE("pings name their sender only in its first probe rounds after it joins") {
  SimNet net(lan(17));
  int named = 0;
  int pings = 0;
  net.set_filter([&](int, int, std::vector<uint8_t>& bytes) {
    std::vector<Message> messages;
    if (decode_packet(bytes, messages) != DecodeStatus::ok) return;
    for (const Message& m : messages) {
      pings += std::holds_alternative<Ping>(m) ? 1 : 0;
      named += std::holds_alternative<Sender>(m) ? 1 : 0;
    }
  });
  stabilize(net, 6);
  net.run_for(300);
  CHECK(named > 0);
  net.start(7);              // joins later, so it names itself after the others have stopped
  net.run_for(5 * 7 * 200);  // 5 rounds of 6 probes, or more
  named = 0;
  pings = 0;
  net.run_for(5'000);
  CHECK(pings > 100);
  CHECK(named == 0);
}

TEST_CASE("leave: everyone sees left, not dead") {
  SimNet net(lan(6));
  stabilize(net, 5);
  net.leave(4);
  // Keep it ticking until its `left` has been sent often enough, then stop it.
  CHECK(net.run_until([&] { return net.node(4).pending_broadcasts() == 0; }, 2'000));
  net.crash(4);
  net.run_for(5'000);
  CHECK(net.all_see(4, MemberState::left));
  CHECK(net.count_events(Kind::dead) == 0);
  CHECK(net.count_events(Kind::left, "n4") == 4);
}

TEST_CASE("restart n4 with the same name: alive everywhere again") {
  SUBCASE("after it was declared dead, with an incarnation from the wall clock") {
    SimNet net(lan(7));
    stabilize(net, 5);
    net.crash(4);
    net.run_for(8'000);
    REQUIRE(net.all_see(4, MemberState::dead));
    net.start(4, /*incarnation=*/1'700'000'000);
    CHECK(net.run_until([&] { return net.converged(); }, 10'000));
    CHECK(net.view(1, 4)->incarnation == 1'700'000'000);
  }
  SUBCASE("after it was declared dead, restarting from incarnation 0: it refutes upward") {
    SimNet net(lan(8));
    stabilize(net, 5);
    net.crash(4);
    net.run_for(8'000);
    REQUIRE(net.all_see(4, MemberState::dead));
    net.start(4, 0);
    CHECK(net.run_until([&] { return net.converged(); }, 10'000));
    CHECK(net.node(4).incarnation() > 0);
  }
  SUBCASE("before anyone noticed it was gone") {
    SimNet net(lan(9));
    stabilize(net, 5);
    net.crash(4);
    net.run_for(50);
    net.start(4, 0);
    net.run_for(10'000);
    CHECK(net.converged());
    CHECK(net.count_events(Kind::dead) == 0);
  }
}

TEST_CASE("a node with the wrong cluster key never appears; the right key joins; rotation works") {
  Key a{}, b{}, c{};
  a.fill(1);
  b.fill(2);
  c.fill(3);
  SimNet net(lan(10));
  for (int id = 1; id <= 4; ++id) net.start(id, 0, Keyring({a}));
  REQUIRE(net.run_until([&] { return net.converged(); }, 10'000));
  net.start(5, 0, Keyring({b}));
  net.run_for(10'000);
  for (int id = 1; id <= 4; ++id) {
    CHECK_FALSE(net.state(id, 5));
    CHECK(net.node(id).member_count() == 4);
  }
  CHECK(net.node(1).stats().dropped_unsealable > 0);
  CHECK_FALSE(net.node(5).joined());
  // A node that seals with a new key and still accepts the old one joins the old cluster.
  net.crash(5);
  net.start(6, 0, Keyring({c, a}));
  net.run_for(3'000);
  CHECK(net.state(1, 6) == std::nullopt);  // they cannot open what 6 seals with key c...
  CHECK(net.node(6).member_count() == 1);
  net.crash(6);
  for (int id = 1; id <= 4; ++id) {  // ...until everyone accepts c (rolling rotation, step 1)
    net.crash(id);
    net.start(id, 100, Keyring({a, c}));
  }
  net.start(6, 0, Keyring({c, a}));
  CHECK(net.run_until([&] { return net.converged(); }, 15'000));
}

TEST_CASE("20% loss for 60 s: no false deaths") {
  // The bound we assert: with 20% independent loss on every packet, 5 and 10 nodes see zero
  // deaths in 60 s (suspicions happen and are refuted).
  for (const int n : {5, 10}) {
    SimNet net(lan(11 + n));
    stabilize(net, n);
    net.set_loss(0.20);
    net.run_for(60'000);
    CHECK_MESSAGE(net.count_events(Kind::dead) == 0, "N=", n);
    MESSAGE("N=", n, ", 20% loss, 60 s: ", net.count_events(Kind::suspect), " suspicions, ",
            net.count_events(Kind::dead), " deaths");
    net.set_loss(0.0);
    net.run_for(3'000);
    CHECK(net.converged());
  }
}

TEST_CASE("CPU saturation: nodes stalling for up to 250 ms, 30% of the time, for 60 s: no deaths") {
  // A model of both cores saturated: every node is descheduled at random moments for 0-250 ms
  // (packets wait in its socket buffer), about 30% of the time. Nobody may be declared dead.
  for (const int n : {5, 20}) {
    SimNet net(lan(300 + n));
    stabilize(net, n);
    std::mt19937_64 rng(n);
    for (uint64_t t = 0; t < 60'000; t += 10) {
      for (int id = 1; id <= n; ++id) {
        if (!net.stalled(id) && std::uniform_real_distribution<>(0, 1)(rng) < 0.024) {
          net.stall(id, std::uniform_int_distribution<uint64_t>(0, 250)(rng));
        }
      }
      net.run_for(10);
    }
    CHECK_MESSAGE(net.count_events(Kind::dead) == 0, "N=", n);
    MESSAGE("N=", n, ", stalls for 60 s: ", net.count_events(Kind::suspect), " suspicions, ",
            net.count_events(Kind::dead), " deaths");
    net.run_for(3'000);
    CHECK(net.converged());
  }
}

TEST_CASE("a 20-node cluster with delay and reordering converges and stays quiet") {
  SimNet::Options o = lan(12);
  o.delay_ms_max = 30;
  SimNet net(o);
  stabilize(net, 20);
  net.run_for(30'000);
  CHECK(net.converged());
  CHECK(net.count_events(Kind::dead) == 0);
  // Gossip bytes per node per second in steady state (reported, see docs/protocol.md).
  uint64_t bytes = 0;
  for (int id = 1; id <= 20; ++id) bytes += net.node(id).stats().bytes_sent;
  MESSAGE("20 nodes: ", bytes / 20 / 30, " bytes/s sent per node (includes the join phase)");
}

TEST_CASE("set_meta re-announces with a higher incarnation; everyone sees the update") {
  SimNet net(lan(14));
  stabilize(net, 5);
  const uint64_t before = net.node(3).incarnation();
  NodeMeta meta{"127.0.0.1:9003", "pk3-new", {{"zone", "b"}}};
  CHECK(net.node(3).set_meta(meta));
  CHECK(net.node(3).incarnation() == before + 1);
  NodeMeta too_big = meta;
  too_big.api = std::string(api_bytes_max + 1, 'x');
  CHECK_FALSE(net.node(3).set_meta(too_big));
  net.run_for(2'000);
  for (int id : {1, 2, 4, 5}) {
    const auto v = net.view(id, 3);
    REQUIRE(v);
    CHECK(v->meta == meta);
    CHECK(v->incarnation == before + 1);
  }
  CHECK(net.count_events(Kind::updated, "n3") == 4);
}

TEST_CASE("every profile detects a crash within its suspicion bounds and stays quiet otherwise") {
  for (const Profile p : {Profile::local, Profile::lan, Profile::wan}) {
    SimNet::Options o = lan(15);
    o.cfg = config_for(p);
    SimNet net(o);
    stabilize(net, 5);
    net.run_for(10 * o.cfg.probe_interval_ms);
    net.crash(5);
    const auto took = net.run_until([&] { return net.all_see(5, MemberState::dead); }, 120'000);
    REQUIRE(took);
    // One probe round to suspect, at most the max suspicion timeout, a few gossip hops.
    CHECK(*took <= 4 * o.cfg.probe_interval_ms + suspicion_max_ms(o.cfg, 5));
    CHECK(net.count_events(Kind::dead) == 4);
    MESSAGE(to_string(p), ": crash seen dead everywhere after ", *took, " ms");
  }
}

TEST_CASE("joining under 20% loss and reordering still converges") {
  SimNet::Options o = lan(13);
  o.loss = 0.20;
  o.delay_ms_max = 30;
  SimNet net(o);
  net.start_all(10);
  const auto took = net.run_until([&] { return net.converged(); }, 30'000);
  CHECK(took);
  MESSAGE("10 nodes joined under 20% loss in ", took.value_or(0), " ms");
}

TEST_CASE("the same seed replays the same history") {
  const auto run = [](uint64_t seed) {
    SimNet::Options o = lan(seed);
    o.loss = 0.05;
    SimNet net(o);
    net.start_all(8);
    net.run_for(5'000);
    net.crash(3);
    net.partition({1, 2}, {4, 5});
    net.run_for(10'000);
    net.heal();
    net.run_for(10'000);
    std::vector<std::string> log;
    for (const auto& e : net.events()) {
      log.push_back(std::to_string(e.at_ms) + " " + std::to_string(e.viewer) + " " +
                    std::string(to_string(e.kind)) + " " + e.subject);
    }
    return log;
  };
  const auto a = run(77);
  CHECK(a.size() > 50);
  CHECK(a == run(77));
  CHECK(a != run(78));
}

TEST_CASE("next_deadline_ms is exact enough to drive the machine event by event") {
  Membership m(Config{}, "solo", sim_address(1), {}, 0, 1);
  Output out;
  m.join(0, {}, out);
  CHECK(m.joined());
  const uint64_t d = m.next_deadline_ms();
  CHECK(d < 1'000'000);
  m.tick(d, out);
  CHECK(m.next_deadline_ms() > d);
  CHECK(m.members().size() == 1);
}
