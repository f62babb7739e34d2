// The simulated cluster; see cluster.h.
#include "simulations/sim/cluster.h"

#include <cassert>
#include <charconv>

#include "simulations/sim/random.h"

namespace meshwork::sim {
namespace {

constexpr uint32_t ip_base = 0x0a000000;  // 10.0.0.0
constexpr uint16_t gossip_port = 7000;
// Incarnations of successive instances of a node are this far apart, so a restarted node beats
// every refutation its old self could have made (the real node uses wall-clock seconds).
constexpr uint64_t incarnation_step = uint64_t{1} << 32;

View view_of(gossip::MemberEvent::Kind kind) {
  using K = gossip::MemberEvent::Kind;
  switch (kind) {
    case K::joined:
    case K::updated:
    case K::alive:
      return View::alive;
    case K::suspect:
      return View::suspect;
    case K::dead:
      return View::dead;
    case K::left:
      return View::left;
  }
  return View::unknown;
}

}  // namespace

std::string node_name(uint32_t i) {
  std::string s = "n";
  s += std::to_string(i);
  return s;
}

gossip::Address node_address(uint32_t i) {
  return gossip::Address{ip_base + i, gossip_port};
}

uint32_t node_index(std::string_view name) {
  uint32_t i = 0;
  if (name.size() < 2 || name[0] != 'n') return UINT32_MAX;
  const auto [end, ec] = std::from_chars(name.data() + 1, name.data() + name.size(), i);
  return ec == std::errc{} && end == name.data() + name.size() ? i : UINT32_MAX;
}

template <typename T>
uint32_t Cluster::Slab<T>::put(T v) {
  if (free.empty()) {
    items.push_back(std::move(v));
    return static_cast<uint32_t>(items.size() - 1);
  }
  const uint32_t slot = free.back();
  free.pop_back();
  items[slot] = std::move(v);
  return slot;
}

template <typename T>
T Cluster::Slab<T>::take(uint32_t slot) {
  T v = std::move(items[slot]);
  free.push_back(slot);
  return v;
}

Cluster::Cluster(gossip::Config cfg, NetworkParams net, uint32_t nodes, Random rng)
    : cfg_(cfg),
      net_(net, nodes),
      rng_(rng),
      nodes_(nodes),
      views_(std::size_t{nodes} * nodes, View::unknown) {
  assert(nodes >= nodes_min && nodes <= nodes_max);
}

void Cluster::start(uint32_t i, const std::vector<uint32_t>& seeds) {
  assert(!up(i));
  Node& n = nodes_[i];
  n.first_incarnation = incarnation_step * ++restarts_;
  n.m = std::make_unique<gossip::Membership>(cfg_, node_name(i), node_address(i),
                                             gossip::NodeMeta{}, n.first_incarnation, rng_.next());
  n.started_ms = now_ms_;
  n.wake_ms = never_ms;
  ++n.epoch;
  ++up_count_;
  std::fill(views_.begin() + static_cast<std::ptrdiff_t>(row(i)),
            views_.begin() + static_cast<std::ptrdiff_t>(row(i) + nodes_.size()), View::unknown);
  views_[row(i) + i] = View::alive;
  if (lifecycle_) lifecycle_(i, true);
  std::vector<gossip::Address> addrs;
  for (const uint32_t s : seeds) addrs.push_back(node_address(s));
  out_.packets.clear();
  out_.events.clear();
  n.m->join(now_ms_, std::move(addrs), out_);
  dispatch(i, false);
  schedule_wake(i, false);
}

void Cluster::crash(uint32_t i) {
  if (!up(i)) return;
  if (lifecycle_) lifecycle_(i, false);
  nodes_[i].m.reset();
  nodes_[i].started_ms = never_ms;
  nodes_[i].wake_ms = never_ms;
  --up_count_;
}

void Cluster::at(uint64_t t_ms, std::function<void()> action) {
  push(std::max(t_ms, now_ms_), Kind::action, actions_.put(std::move(action)));
}

void Cluster::send_app(uint32_t from, uint32_t to, std::string bytes) {
  if (!up(from)) return;
  arrivals_.clear();
  net_.route(from, to, now_ms_, rng_, arrivals_);
  for (std::size_t c = 0; c < arrivals_.size(); ++c) {
    const bool last = c + 1 == arrivals_.size();
    AppMessage msg{from, to, last ? std::move(bytes) : bytes};
    push(arrivals_[c], Kind::app, app_messages_.put(std::move(msg)));
  }
}

void Cluster::run_until(uint64_t t_ms) {
  while (!queue_.empty() && queue_.top().at_ms <= t_ms) {
    const Event e = queue_.top();
    queue_.pop();
    now_ms_ = e.at_ms;
    switch (e.kind) {
      case Kind::action:
        actions_.take(e.node)();
        break;
      case Kind::deliver:
        on_deliver(e.node);
        break;
      case Kind::app:
        on_app(e.node);
        break;
      case Kind::tick:
        on_tick(e.node, e.epoch);
        break;
    }
  }
  now_ms_ = std::max(now_ms_, t_ms);
}

void Cluster::push(uint64_t at_ms, Kind kind, uint32_t node, uint32_t epoch) {
  queue_.push(Event{at_ms, kind, seq_++, node, epoch});
}

void Cluster::on_tick(uint32_t i, uint32_t epoch) {
  Node& n = nodes_[i];
  if (!n.m || n.epoch != epoch || n.wake_ms != now_ms_) return;  // stale wake-up
  n.wake_ms = never_ms;
  out_.packets.clear();
  out_.events.clear();
  n.m->tick(now_ms_, out_);
  dispatch(i, true);
  schedule_wake(i, true);
}

void Cluster::on_deliver(uint32_t slot) {
  Datagram d = datagrams_.take(slot);
  if (!up(d.to)) return;
  const uint64_t at = net_.arrival(d.from, d.to, now_ms_);
  if (at == never_ms) return;
  if (at > now_ms_) {  // the receiver is clogged: hold the datagram until it is not
    push(at, Kind::deliver, datagrams_.put(std::move(d)));
    return;
  }
  ++traffic_.packets_delivered;
  out_.packets.clear();
  out_.events.clear();
  nodes_[d.to].m->receive(now_ms_, node_address(d.from), d.bytes, out_);
  dispatch(d.to, false);
  schedule_wake(d.to, false);
}

void Cluster::on_app(uint32_t slot) {
  AppMessage msg = app_messages_.take(slot);
  if (!up(msg.to) || net_.cut_off(msg.from, msg.to)) {
    if (app_undelivered_) app_undelivered_(msg.to, msg.from, std::move(msg.bytes));
    return;
  }
  const uint64_t at = net_.arrival(msg.from, msg.to, now_ms_);
  if (at == never_ms) return;
  if (at > now_ms_) {
    push(at, Kind::app, app_messages_.put(std::move(msg)));
    return;
  }
  ++traffic_.app_messages;
  if (app_receiver_) app_receiver_(msg.to, msg.from, msg.bytes);
}

void Cluster::dispatch(uint32_t i, bool from_tick) {
  for (const gossip::MemberEvent& e : out_.events) record(i, e, from_tick);
  for (gossip::Packet& p : out_.packets) {
    ++traffic_.packets_sent;
    traffic_.bytes_sent += p.bytes.size();
    const uint32_t to = p.to.ip - ip_base;
    if (to >= nodes_.size() || p.to.port != gossip_port) continue;
    arrivals_.clear();
    net_.route(i, to, now_ms_, rng_, arrivals_);
    for (std::size_t c = 0; c < arrivals_.size(); ++c) {
      const bool last = c + 1 == arrivals_.size();
      Datagram d{i, to, last ? std::move(p.bytes) : p.bytes};
      push(arrivals_[c], Kind::deliver, datagrams_.put(std::move(d)));
    }
  }
}

void Cluster::schedule_wake(uint32_t i, bool after_tick) {
  Node& n = nodes_[i];
  if (!n.m) return;
  uint64_t d = n.m->next_deadline_ms();
  if (d == never_ms) return;
  // Ticks at an instant run after its deliveries; a tick never schedules another at its instant.
  d = std::max(d, after_tick ? now_ms_ + 1 : now_ms_);
  if (d >= n.wake_ms) return;
  n.wake_ms = d;
  push(d, Kind::tick, i, n.epoch);
}

uint64_t Cluster::digest() const {
  uint64_t h = fnv_mix(digest_, traffic_.packets_sent);
  h = fnv_mix(h, traffic_.bytes_sent);
  h = fnv_mix(h, traffic_.packets_delivered);
  return fnv_mix(h, traffic_.app_messages);
}

void Cluster::record(uint32_t viewer, const gossip::MemberEvent& e, bool first_hand) {
  const uint32_t subject = node_index(e.member.name);
  if (subject >= nodes_.size()) return;
  views_[row(viewer) + subject] = view_of(e.kind);
  digest_ = fnv_mix(digest_, now_ms_);
  digest_ = fnv_mix(digest_, (uint64_t{viewer} << 32) | subject);
  digest_ = fnv_mix(digest_, (e.member.incarnation << 8) | static_cast<uint64_t>(e.kind));
  if (observer_) observer_(now_ms_, viewer, e, first_hand);
}

}  // namespace meshwork::sim
