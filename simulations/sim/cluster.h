// N gossip nodes in one process on virtual time: the real gossip::Membership state machines, a
// discrete-event queue keyed by (time, class, sequence) and the simulated Network.
//
// Node i is named "n<i>" and listens on 10.0.0.0 + i, port 7000. A node is ticked only at its own
// next_deadline_ms() (a stale wake-up is skipped), and every datagram due at an instant is handed
// over before that instant's ticks, as the Membership driver contract asks. Crashes drop the
// state machine; a restart builds a new one with a higher incarnation that rejoins through a seed.
//
// Beside the gossip packets the queue carries opaque application messages (the replica cores'
// peer messages, replica_sim.h, over the same lossy network) and scheduled actions (the
// scenario's faults, and everything the replica driver schedules: fsyncs, handlers, wake-ups).
// A message that reaches a node that is down or cut off from its sender is reported to the
// sender's side (AppUndelivered), as a real transport's connection error would be.
//
// The cluster keeps, from the member events, each node's view of every other node (one byte per
// pair), so convergence checks cost O(N^2) byte compares and no copies of member lists.
//
// Thread-safety: none. Invariants: virtual time never goes backwards; the queue holds at most one
// live wake-up per node (older ones are recognised as stale and skipped); the trace digest covers
// every member event in the order the simulation produced it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

#include "gossip/membership.h"
#include "simulations/sim/network.h"
#include "simulations/sim/random.h"

namespace meshwork::sim {

inline constexpr uint32_t nodes_min = 2;
inline constexpr uint32_t nodes_max = 16'384;
static_assert(nodes_max <= gossip::members_max_limit, "every node fits in every member list");

// A node's view of another, as its member events last told it.
enum class View : uint8_t { unknown, alive, suspect, dead, left };

std::string node_name(uint32_t i);
gossip::Address node_address(uint32_t i);

struct Traffic {
  uint64_t packets_sent = 0;
  uint64_t bytes_sent = 0;
  uint64_t packets_delivered = 0;
  uint64_t app_messages = 0;
};

class Cluster {
 public:
  // Sees every member event; `first_hand` is true when the viewer's own suspicion timer expired
  // (the event came out of tick(), not out of a received message).
  using EventObserver = std::function<void(uint64_t now_ms, uint32_t viewer,
                                           const gossip::MemberEvent& e, bool first_hand)>;
  using AppReceiver = std::function<void(uint32_t to, uint32_t from, const std::string& bytes)>;
  // A message that arrived at a node that is down, or cut off from the sender, by then.
  using AppUndelivered = std::function<void(uint32_t to, uint32_t from, std::string bytes)>;
  // Node i came up (called before it joins, so it sees its own first member events) or went down
  // (called before its state machine is dropped).
  using Lifecycle = std::function<void(uint32_t node, bool up)>;

  Cluster(gossip::Config cfg, NetworkParams net, uint32_t nodes, Random rng);

  // Starts node i (which must be down) and joins it through `seeds` (none: a one-node mesh).
  void start(uint32_t i, const std::vector<uint32_t>& seeds);
  void crash(uint32_t i);
  // Processes every event due at or before `t_ms`, then sets the clock to t_ms.
  void run_until(uint64_t t_ms);
  void at(uint64_t t_ms, std::function<void()> action);
  // Sends an application message over the simulated network (dropped if `from` is down).
  void send_app(uint32_t from, uint32_t to, std::string bytes);

  uint64_t now_ms() const { return now_ms_; }
  uint32_t size() const { return static_cast<uint32_t>(nodes_.size()); }
  bool up(uint32_t i) const { return nodes_[i].m != nullptr; }
  uint32_t up_count() const { return up_count_; }
  // When node i's current instance started (never_ms if it is down) and its first incarnation.
  uint64_t started_ms(uint32_t i) const { return nodes_[i].started_ms; }
  uint64_t first_incarnation(uint32_t i) const { return nodes_[i].first_incarnation; }
  const gossip::Membership* membership(uint32_t i) const { return nodes_[i].m.get(); }
  View view(uint32_t viewer, uint32_t subject) const { return views_[row(viewer) + subject]; }
  Network& network() { return net_; }
  const gossip::Config& config() const { return cfg_; }
  const Traffic& traffic() const { return traffic_; }
  // Digest of every member event and of the traffic counters so far.
  uint64_t digest() const;

  void observe(EventObserver f) { observer_ = std::move(f); }
  void receive_app(AppReceiver f) { app_receiver_ = std::move(f); }
  void app_undelivered(AppUndelivered f) { app_undelivered_ = std::move(f); }
  void lifecycle(Lifecycle f) { lifecycle_ = std::move(f); }

 private:
  enum class Kind : uint8_t { action, deliver, app, tick };  // same-instant order, too
  struct Event {
    uint64_t at_ms;
    Kind kind;
    uint64_t seq;
    uint32_t node;  // tick: the node; deliver/app/action: slot index
    uint32_t epoch;
    bool operator>(const Event& o) const {
      if (at_ms != o.at_ms) return at_ms > o.at_ms;
      if (kind != o.kind) return kind > o.kind;
      return seq > o.seq;
    }
  };
  struct Node {
    std::unique_ptr<gossip::Membership> m;
    uint64_t wake_ms = never_ms;  // the live wake-up in the queue
    uint32_t epoch = 0;           // bumped on every start, so old wake-ups go stale
    uint64_t first_incarnation = 0;
    uint64_t started_ms = never_ms;
  };
  struct Datagram {
    uint32_t from;
    uint32_t to;
    std::vector<uint8_t> bytes;
  };
  struct AppMessage {
    uint32_t from;
    uint32_t to;
    std::string bytes;
  };
  template <typename T>
  struct Slab {  // stable slots with a free list: events stay small
    std::vector<T> items;
    std::vector<uint32_t> free;
    uint32_t put(T v);
    T take(uint32_t slot);
  };

  std::size_t row(uint32_t viewer) const { return std::size_t{viewer} * nodes_.size(); }
  void push(uint64_t at_ms, Kind kind, uint32_t node, uint32_t epoch = 0);
  void on_tick(uint32_t i, uint32_t epoch);
  void on_deliver(uint32_t slot);
  void on_app(uint32_t slot);
  void dispatch(uint32_t i, bool from_tick);
  void schedule_wake(uint32_t i, bool after_tick);
  void record(uint32_t viewer, const gossip::MemberEvent& e, bool first_hand);

  gossip::Config cfg_;
  Network net_;
  Random rng_;
  std::vector<Node> nodes_;
  std::vector<View> views_;  // views_[viewer * N + subject]
  std::priority_queue<Event, std::vector<Event>, std::greater<>> queue_;
  Slab<Datagram> datagrams_;
  Slab<AppMessage> app_messages_;
  Slab<std::function<void()>> actions_;
  gossip::Output out_;
  std::vector<uint64_t> arrivals_;
  EventObserver observer_;
  AppReceiver app_receiver_;
  AppUndelivered app_undelivered_;
  Lifecycle lifecycle_;
  Traffic traffic_;
  uint64_t now_ms_ = 0;
  uint64_t seq_ = 0;
  uint64_t digest_ = 0xcbf29ce484222325ull;
  uint32_t up_count_ = 0;
  uint32_t restarts_ = 0;
};

// Parses "n<i>" back to i; returns UINT32_MAX for anything else.
uint32_t node_index(std::string_view name);

}  // namespace meshwork::sim
