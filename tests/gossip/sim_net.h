// A tiny virtual network for gossip scenario tests: N Membership instances on virtual time, with
// seeded loss, delay (and so reordering), partitions, pauses, crashes and restarts. Nodes are
// "n1".."nN" at 127.0.0.1:(7000 + i). Time advances from one event to the next: packet deliveries
// and each node's next_deadline_ms(), so the state machine's deadline bookkeeping is exercised too.
//
// Thread-safety: none; test-local.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gossip/membership.h"

namespace meshwork::gossip::test {

// "prefix" + std::to_string(n) without GCC 12's false -Wrestrict on operator+ at -O3.
inline std::string with_number(std::string_view prefix, uint64_t n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}

inline Address sim_address(int id) {
  return Address{0x7f000001, static_cast<uint16_t>(7000 + id)};
}
inline std::string sim_name(int id) {
  return with_number("n", id);
}

class SimNet {
 public:
  struct Options {
    Config cfg{};
    uint64_t seed = 1;
    double loss = 0.0;
    uint64_t delay_ms_min = 0;
    uint64_t delay_ms_max = 2;
  };
  struct Event {
    uint64_t at_ms;
    int viewer;
    MemberEvent::Kind kind;
    std::string subject;
  };

  explicit SimNet(Options opt) : opt_(opt), rng_(opt.seed) {}

  // Starts node `id` and joins it through n1 (n1 itself joins nobody).
  void start(int id, uint64_t incarnation = 0, Keyring keyring = {}, int seed_id = 1) {
    if (nodes_.size() <= static_cast<std::size_t>(id)) nodes_.resize(id + 1);
    Node& n = nodes_[id];
    NodeMeta meta{with_number("127.0.0.1:", 8000 + id), with_number("pk", id), {}};
    n.m =
        std::make_unique<Membership>(opt_.cfg, sim_name(id), sim_address(id), meta, incarnation,
                                     opt_.seed * 1000 + id + 7919 * ++starts_, std::move(keyring));
    n.paused = false;
    Output out;
    std::vector<Address> seeds;
    if (id != seed_id) seeds.push_back(sim_address(seed_id));
    n.m->join(now_, seeds, out);
    dispatch(id, out);
  }
  void start_all(int count) {
    for (int id = 1; id <= count; ++id) start(id);
  }
  void crash(int id) { nodes_[id].m.reset(); }
  void pause(int id) { nodes_[id].paused = true; }
  // Like a descheduled process: for `ms` the node neither ticks nor receives, but what is sent to
  // it waits in its "socket buffer" and is handed over, in order, when it wakes up.
  void stall(int id, uint64_t ms) {
    nodes_[id].frozen_until = std::max(nodes_[id].frozen_until, now_ + ms);
  }
  bool stalled(int id) const { return running(id) && nodes_[id].frozen_until > now_; }
  void resume(int id) { nodes_[id].paused = false; }
  void leave(int id) {
    Output out;
    nodes_[id].m->leave(now_, out);
    dispatch(id, out);
  }
  // Cuts every link between the two groups, both ways.
  void partition(const std::vector<int>& a, const std::vector<int>& b) {
    for (int x : a) {
      for (int y : b) {
        cut_.insert({x, y});
        cut_.insert({y, x});
      }
    }
  }
  void heal() { cut_.clear(); }
  // Sees every packet that the loss and the cuts let through, before it is queued, and may
  // rewrite it: e.g. strip one message to stage news that never reaches a node.
  using Filter = std::function<void(int from, int to, std::vector<uint8_t>& bytes)>;
  void set_filter(Filter filter) { filter_ = std::move(filter); }
  void set_loss(double loss) { opt_.loss = loss; }
  // Hands `bytes` to node `to` as if `from` had sent it.
  void inject(int to, Address from, const std::vector<uint8_t>& bytes) {
    Output out;
    nodes_[to].m->receive(now_, from, bytes, out);
    dispatch(to, out);
  }

  void run_for(uint64_t ms) { run_until_time(now_ + ms); }
  // Runs until `done()` holds (checked every `step_ms`) or `max_ms` passes; returns the time taken.
  std::optional<uint64_t> run_until(const std::function<bool()>& done, uint64_t max_ms,
                                    uint64_t step_ms = 5) {
    const uint64_t start = now_;
    while (now_ - start <= max_ms) {
      if (done()) return now_ - start;
      run_until_time(now_ + step_ms);
    }
    return std::nullopt;
  }

  bool running(int id) const {
    return static_cast<std::size_t>(id) < nodes_.size() && nodes_[id].m != nullptr;
  }
  Membership& node(int id) { return *nodes_[id].m; }
  std::optional<MemberInfo> view(int viewer, int subject) const {
    return nodes_[viewer].m->member(sim_name(subject));
  }
  std::optional<MemberState> state(int viewer, int subject) const {
    auto v = view(viewer, subject);
    return v ? std::optional(v->state) : std::nullopt;
  }
  // Every running node other than `subject` sees `subject` in state `s`.
  bool all_see(int subject, MemberState s) const {
    for (std::size_t id = 1; id < nodes_.size(); ++id) {
      if (static_cast<int>(id) == subject || !running(static_cast<int>(id))) continue;
      if (state(static_cast<int>(id), subject) != s) return false;
    }
    return true;
  }
  // Every running node sees every running node alive (itself included).
  bool converged() const {
    for (std::size_t id = 1; id < nodes_.size(); ++id) {
      if (running(static_cast<int>(id)) && !all_see(static_cast<int>(id), MemberState::alive)) {
        return false;
      }
    }
    return true;
  }
  std::size_t count_events(MemberEvent::Kind kind, const std::string& subject = {}) const {
    return static_cast<std::size_t>(
        std::count_if(events_.begin(), events_.end(), [&](const Event& e) {
          return e.kind == kind && (subject.empty() || e.subject == subject);
        }));
  }
  const std::vector<Event>& events() const { return events_; }
  uint64_t now() const { return now_; }
  uint64_t packets_delivered() const { return delivered_; }

 private:
  struct Node {
    std::unique_ptr<Membership> m;
    bool paused = false;
    uint64_t frozen_until = 0;
  };
  struct InFlight {
    uint64_t at_ms;
    uint64_t seq;
    int from;
    int to;
    std::vector<uint8_t> bytes;
    bool operator>(const InFlight& o) const {
      return at_ms != o.at_ms ? at_ms > o.at_ms : seq > o.seq;
    }
  };

  bool active(int id) const {
    return running(id) && !nodes_[id].paused && nodes_[id].frozen_until <= now_;
  }

  void dispatch(int from, Output& out) {
    for (Packet& p : out.packets) {
      REQUIRE(p.bytes.size() <= packet_bytes_max);
      const int to = p.to.port - 7000;
      if (p.to.ip != 0x7f000001 || to <= 0) continue;
      if (cut_.count({from, to}) || std::bernoulli_distribution(opt_.loss)(rng_)) continue;
      if (filter_) filter_(from, to, p.bytes);
      const uint64_t delay =
          std::uniform_int_distribution<uint64_t>(opt_.delay_ms_min, opt_.delay_ms_max)(rng_);
      inflight_.push({now_ + delay, next_seq_++, from, to, std::move(p.bytes)});
    }
    for (MemberEvent& e : out.events) {
      events_.push_back({now_, from, e.kind, e.member.name});
    }
    out.packets.clear();
    out.events.clear();
  }

  void run_until_time(uint64_t end) {
    for (int spins = 0;; ++spins) {
      REQUIRE(spins < 10'000'000);
      uint64_t next = inflight_.empty() ? end + 1 : inflight_.top().at_ms;
      for (std::size_t id = 1; id < nodes_.size(); ++id) {
        if (!running(static_cast<int>(id)) || nodes_[id].paused) continue;
        next = std::min(next, std::max(nodes_[id].frozen_until, nodes_[id].m->next_deadline_ms()));
      }
      if (next > end) break;
      now_ = std::max(now_, next);
      step();
    }
    now_ = std::max(now_, end);
  }

  // Receive everything due, then tick whoever has work: the order the driver contract asks for.
  void step() {
    while (!inflight_.empty() && inflight_.top().at_ms <= now_) {
      InFlight p = inflight_.top();
      inflight_.pop();
      if (stalled(p.to) && !nodes_[p.to].paused) {  // buffered until it wakes up
        p.at_ms = nodes_[p.to].frozen_until;
        p.seq = next_seq_++;
        inflight_.push(std::move(p));
        continue;
      }
      if (!active(p.to) || cut_.count({p.from, p.to})) continue;
      ++delivered_;
      Output out;
      nodes_[p.to].m->receive(now_, sim_address(p.from), p.bytes, out);
      dispatch(p.to, out);
    }
    for (std::size_t id = 1; id < nodes_.size(); ++id) {
      if (!active(static_cast<int>(id)) || nodes_[id].m->next_deadline_ms() > now_) continue;
      Output out;
      nodes_[id].m->tick(now_, out);
      dispatch(static_cast<int>(id), out);
      REQUIRE(nodes_[id].m->next_deadline_ms() > now_);
    }
  }

  Options opt_;
  std::mt19937_64 rng_;
  std::vector<Node> nodes_;
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<>> inflight_;
  std::set<std::pair<int, int>> cut_;
  Filter filter_;
  std::vector<Event> events_;
  uint64_t now_ = 1'000'000;
  uint64_t next_seq_ = 0;
  uint64_t delivered_ = 0;
  int starts_ = 0;
};

}  // namespace meshwork::gossip::test
