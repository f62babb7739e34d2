// Membership: construction, receiving, and the member state transitions (alive, suspect, dead,
// left, refutation). Periodic work lives in membership_tick.cpp.
#include "gossip/membership.h"

#include <algorithm>
#include <cassert>

namespace meshwork::gossip {

namespace {

bool is_live(MemberState s) {
  return s == MemberState::alive || s == MemberState::suspect;
}

// Members without metadata (common in large simulations) share one immutable empty NodeMeta
// instead of a heap block each.
std::shared_ptr<const NodeMeta> share_meta(const NodeMeta& meta) {
  static const auto empty = std::make_shared<const NodeMeta>();
  return meta == *empty ? empty : std::make_shared<const NodeMeta>(meta);
}

}  // namespace

std::string_view to_string(MemberEvent::Kind kind) {
  switch (kind) {
    case MemberEvent::Kind::joined:
      return "joined";
    case MemberEvent::Kind::updated:
      return "updated";
    case MemberEvent::Kind::suspect:
      return "suspect";
    case MemberEvent::Kind::alive:
      return "alive";
    case MemberEvent::Kind::dead:
      return "dead";
    case MemberEvent::Kind::left:
      return "left";
  }
  return "unknown";
}

std::optional<std::string> Membership::identity_error(std::string_view name, const NodeMeta& meta) {
  if (name.empty() || name.size() > name_bytes_max) return "name must be 1..64 bytes";
  if (!meta_fits(meta)) return "metadata exceeds the codec limits";
  return std::nullopt;
}

Membership::Membership(Config cfg, std::string name, Address self_addr, NodeMeta meta,
                       uint64_t incarnation, uint64_t rng_seed, Keyring keyring)
    : cfg_(cfg),
      keyring_(std::move(keyring)),
      rng_(rng_seed),
      awareness_(cfg.awareness_max),
      seq_(static_cast<uint32_t>(rng_.next())) {
  assert(!config_error(cfg_));
  assert(!identity_error(name, meta));
  Member me;
  me.name = std::move(name);
  me.addr = self_addr;
  me.incarnation = incarnation;
  me.meta = share_meta(meta);
  members_.push_back(std::move(me));
  index_.put(members_.front().name, 0, name_of());
}

void Membership::receive(uint64_t now_ms, Address from, std::span<const uint8_t> bytes,
                         Output& out) {
  ++stats_.packets_received;
  stats_.bytes_received += bytes.size();
  if (bytes.size() > packet_bytes_max) {
    ++stats_.dropped_oversize;
    return;
  }
  std::span<const uint8_t> plain = bytes;
  std::vector<uint8_t> opened;
  if (!keyring_.empty()) {
    if (!open(keyring_, bytes, opened)) {
      ++stats_.dropped_unsealable;
      return;
    }
    plain = opened;
  }
  std::vector<Message> messages = std::move(scratch_messages_);
  if (decode_packet(plain, messages) != DecodeStatus::ok) {
    ++stats_.dropped_malformed;
    scratch_messages_ = std::move(messages);
    return;
  }
  bool in_push_pull = false;
  for (const Message& msg : messages) {
    in_push_pull = in_push_pull || std::holds_alternative<PushPull>(msg);
    handle(now_ms, from, msg, in_push_pull, out);
  }
  scratch_messages_ = std::move(messages);
}

void Membership::handle(uint64_t now_ms, Address from, const Message& msg, bool in_push_pull,
                        Output& out) {
  if (const auto* m = std::get_if<Ping>(&msg)) return on_ping(now_ms, from, *m, out);
  if (const auto* m = std::get_if<PingReq>(&msg)) return on_ping_req(now_ms, from, *m, out);
  if (const auto* m = std::get_if<Ack>(&msg)) return on_ack(now_ms, m->seq, out);
  if (const auto* m = std::get_if<Nack>(&msg)) {
    if (probe_.active && m->seq == probe_.seq) {
      ++probe_.nacks;
      ++stats_.nacks_received;
    }
    return;
  }
  if (const auto* m = std::get_if<Alive>(&msg)) return on_alive(now_ms, from, *m, out);
  if (const auto* m = std::get_if<Suspect>(&msg)) {
    // In a push-pull the sender vouches only for its own view: we suspect in our own name.
    if (in_push_pull) return on_hearsay(now_ms, from, m->name, m->incarnation, name(), out);
    if (m->name != name() && held_dead(m->from)) return;
    return on_suspect(now_ms, from, *m, out);
  }
  if (const auto* m = std::get_if<Dead>(&msg)) {
    // memberlist's rule: a remote "dead" in a push-pull only makes us suspect.
    if (in_push_pull) return on_hearsay(now_ms, from, m->name, m->incarnation, name(), out);
    if (m->name != name() && held_dead(m->from)) return;
    // About a member we already suspect, the accuser's timer ran out: a confirmation from it.
    const Member* known = find(m->name);
    if (known != nullptr && known->state == MemberState::suspect &&
        m->incarnation == known->incarnation) {
      return on_suspect(now_ms, from, {m->name, m->incarnation, m->from}, out);
    }
    return on_hearsay(now_ms, from, m->name, m->incarnation, m->from, out);
  }
  if (const auto* m = std::get_if<Left>(&msg)) {
    return on_dead(now_ms, from, m->name, m->incarnation, MemberState::left, m->name, out);
  }
  if (const auto* m = std::get_if<PushPull>(&msg)) return on_push_pull(now_ms, from, *m, out);
  if (const auto* m = std::get_if<Sender>(&msg)) return on_sender(now_ms, from, m->name, out);
}

void Membership::on_ping(uint64_t, Address from, const Ping& m, Output& out) {
  if (m.target != name()) return;  // meant for a previous owner of this address
  const Message ack = Ack{m.seq};
  send(from, {&ack, 1}, out);
}

void Membership::on_ping_req(uint64_t now_ms, Address from, const PingReq& m, Output& out) {
  if (m.target == name() || indirect_.size() >= indirect_pending_max) return;
  const uint32_t seq = next_seq();
  // Nack early enough to reach the requester before its round ends (probe_timeout * 2 <= interval).
  indirect_.push_back({seq, m.seq, from, now_ms + cfg_.probe_timeout_ms * 3 / 4});
  send_ping(m.target_addr, seq, m.target, nullptr, out);
}

void Membership::on_ack(uint64_t now_ms, uint32_t seq, Output& out) {
  if (probe_.active && seq == probe_.seq) return finish_probe(now_ms, true, out);
  for (std::size_t i = 0; i < indirect_.size(); ++i) {
    if (indirect_[i].seq != seq) continue;
    const Message ack = Ack{indirect_[i].requester_seq};
    const Address requester = indirect_[i].requester;
    indirect_[i] = indirect_.back();
    indirect_.pop_back();
    send(requester, {&ack, 1}, out);
    return;
  }
}

void Membership::on_alive(uint64_t now_ms, Address from, const Alive& a, Output& out) {
  if (a.name == name()) {
    const Member& me = self();
    const bool differs = a.addr != me.addr || a.meta != *me.meta;
    if (!leaving_ &&
        (a.incarnation > me.incarnation || (a.incarnation == me.incarnation && differs))) {
      refute(now_ms, a.incarnation, from, out);
    }
    return;
  }
  Member* m = find(a.name);
  if (m == nullptr) {
    if ((m = add_member(now_ms, a)) != nullptr) {
      emit(MemberEvent::Kind::joined, *m, out);
      broadcast(a.name, a);
    }
    return;
  }
  if (a.incarnation <= m->incarnation) return;
  const MemberState old = m->state;
  const bool changed = a.addr != m->addr || a.meta != *m->meta;
  m->incarnation = a.incarnation;
  m->addr = a.addr;
  if (a.meta != *m->meta) m->meta = share_meta(a.meta);
  if (old != MemberState::alive) {
    suspicions_.erase(m->name);
    set_state(*m, MemberState::alive, now_ms);
    emit(old == MemberState::suspect ? MemberEvent::Kind::alive : MemberEvent::Kind::joined, *m,
         out);
  }
  if (changed) emit(MemberEvent::Kind::updated, *m, out);
  broadcast(a.name, a);
}

void Membership::on_suspect(uint64_t now_ms, Address from, const Suspect& s, Output& out) {
  if (s.name == name()) return accused(now_ms, s.incarnation, from, out);
  Member* m = find(s.name);
  if (m == nullptr || s.incarnation < m->incarnation) return;
  if (m->state == MemberState::suspect) {
    const auto it = suspicions_.find(m->name);
    if (it != suspicions_.end() && it->second.confirm(name_id(s.from))) {
      suspicion_timers_.push({it->second.deadline_ms(), m->name});
      broadcast(s.name, s);
    }
    return;
  }
  if (m->state != MemberState::alive) return;
  m->incarnation = s.incarnation;
  start_suspicion(now_ms, *m, s.from);
  emit(MemberEvent::Kind::suspect, *m, out);
  broadcast(s.name, s);
}

void Membership::on_dead(uint64_t now_ms, Address from, const std::string& who,
                         uint64_t incarnation, MemberState state, const std::string& accuser,
                         Output& out) {
  if (who == name()) return accused(now_ms, incarnation, from, out);
  Member* m = find(who);
  if (m == nullptr || incarnation < m->incarnation) return;
  const bool upgrade_to_left = m->state == MemberState::dead && state == MemberState::left;
  if (!is_live(m->state) && !upgrade_to_left) return;
  m->incarnation = incarnation;
  suspicions_.erase(m->name);
  set_state(*m, state, now_ms);
  reap_timers_.push({now_ms + cfg_.reap_timeout_ms, m->name});
  if (state == MemberState::dead) {
    if (recently_dead_.size() >= cfg_.members_max) recently_dead_.clear();
    if (recently_dead_.empty()) next_dead_probe_ms_ = now_ms + cfg_.dead_probe_interval_ms;
    recently_dead_.push_back(m->name);
    emit(MemberEvent::Kind::dead, *m, out);
    broadcast(who, Dead{who, incarnation, accuser});
  } else {
    emit(MemberEvent::Kind::left, *m, out);
    broadcast(who, Left{who, incarnation});
  }
}

// A `dead` gossiped by another node, or a `suspect` or `dead` record in a push-pull: hearsay.
// Only our own suspicion timer declares a death (invariant 6). A node cut off by a partition
// declares the other side dead at their current incarnations, after suspicions they never heard
// of; as the partition heals its queued dead notices and its push-pull records reach the rest
// (docs/chaos.md), and applied at once they killed live members. So hearsay about a member we
// hold alive starts a suspicion here, in the accuser's name, which the member refutes when our
// suspect check or probe reaches it. It is not re-broadcast: after a heal it comes from many
// accusers at once, and re-broadcast it would cut every timer to its minimum while hundreds of
// members refute together. A real death is declared by our own timer, confirmed by our failed
// probes, the `suspect`s of those who probed it and the `dead`s of those whose timer ran out.
void Membership::on_hearsay(uint64_t now_ms, Address from, const std::string& who,
                            uint64_t incarnation, const std::string& accuser, Output& out) {
  if (who == name()) return accused(now_ms, incarnation, from, out);
  Member* m = find(who);
  if (m == nullptr || incarnation < m->incarnation || m->state != MemberState::alive) return;
  m->incarnation = incarnation;
  start_suspicion(now_ms, *m, accuser);
  emit(MemberEvent::Kind::suspect, *m, out);
}

// Asks `from` for its whole state, at most once per dead_probe_interval_ms. Two callers:
// - accused(), when our own probes have been going unanswered too (awareness above 0): we were
//   likely cut off or stalled, and the news of that time (deaths above all) has died out by now.
//   The request carries only our own `alive`: the rest of our view is the stale part, and pushing
//   it would make the peer suspect everyone we hold dead. (A node on the other side of a healed
//   partition may be accused and pull from the stale side too; those records only start quiet
//   suspicions: on_hearsay.)
// - on_sender(), when a member we do not know pings us: we missed its join.
// The limit bounds what forged senders or accusations can cost: one request, and one reply of
// our peer's state, per interval.
void Membership::pull_state(uint64_t now_ms, Address from, Output& out) {
  if (now_ms < next_pull_ms_) return;
  next_pull_ms_ = now_ms + cfg_.dead_probe_interval_ms;
  ++stats_.push_pulls;
  std::vector<uint8_t> plain{wire_version};
  if (encode(PushPull{true, next_seq(), 0}, plain) && encode(alive_of(self()), plain)) {
    flush(from, plain, out);
  }
}

void Membership::on_push_pull(uint64_t now_ms, Address from, const PushPull& m, Output& out) {
  // A push-pull, request or reply, carries the sender's whole state: that completes a join.
  // (A ping does not: we would know only the members whose news happens to be in flight.)
  joined_ = true;
  if (!m.request || m.chunk != 0 || leaving_) return;
  if (now_ms >= push_pull_window_ms_ + cfg_.probe_interval_ms) {
    push_pull_window_ms_ = now_ms;
    push_pull_replies_ = 0;
  }
  if (push_pull_replies_ >= push_pull_replies_per_interval_max) return;
  ++push_pull_replies_;
  send_state(from, false, out);
}

// A member we do not know pinged us and named itself, as it does in its first probe rounds after
// joining (sender_probe_rounds). Its `alive` and every retransmit of it missed us (they are
// limited to lambda * log(N) sends per node). Until a push-pull, up to push_pull_interval_ms
// away, we would not probe it and the ring built from our view would lack it; and if it died
// meanwhile, it would stay unknown here while dead everywhere else, since a `suspect` or `dead`
// carries no address and cannot add a member. So pull its state now: the reply brings its
// `alive`, and whatever else we missed with it. A name we hold in any state needs no pull
// (docs/protocol.md, "Missed joins").
void Membership::on_sender(uint64_t now_ms, Address from, const std::string& who, Output& out) {
  if (leaving_ || who == name() || find(who) != nullptr) return;
  pull_state(now_ms, from, out);
}

void Membership::accused(uint64_t now_ms, uint64_t incarnation, Address from, Output& out) {
  if (leaving_) return;
  const bool cut_off = awareness_.score() > 0;  // read before a refutation raises it
  if (incarnation >= self().incarnation) {
    refute(now_ms, incarnation, from, out);
  } else {
    // A stale accusation: its sender missed our refutation, so tell it directly (no bump needed).
    const Message alive = alive_of(self());
    send(from, {&alive, 1}, out);
  }
  if (!cut_off) return;
  // Our queued suspicions and deaths were formed while our probes went unanswered: from behind a
  // partition they accuse the whole other side. Drop them rather than flood the healed mesh.
  broadcasts_.erase_if([](std::span<const uint8_t> msg) {
    return !msg.empty() && (msg[0] == static_cast<uint8_t>(MessageType::suspect) ||
                            msg[0] == static_cast<uint8_t>(MessageType::dead));
  });
  pull_state(now_ms, from, out);
}

void Membership::refute(uint64_t now_ms, uint64_t accused_incarnation, Address accuser,
                        Output& out) {
  Member& me = self();
  me.incarnation = std::max(me.incarnation, accused_incarnation) + 1;
  me.state_since_ms = now_ms;
  awareness_.apply_delta(1);
  ++stats_.refutes;
  const Message alive = alive_of(me);
  broadcast(me.name, alive);
  send(accuser, {&alive, 1}, out);  // the accuser (or whoever relayed it) learns first
}

void Membership::leave(uint64_t now_ms, Output& out) {
  if (leaving_) return;
  leaving_ = true;
  probe_.active = false;
  Member& me = self();
  set_state(me, MemberState::left, now_ms);
  const Message left = Left{me.name, me.incarnation};
  broadcast(me.name, left);
  for (const Member* m : random_members(2 * cfg_.gossip_nodes, {}, now_ms, false)) {
    send(m->addr, {&left, 1}, out);
  }
}

bool Membership::set_meta(NodeMeta meta) {
  if (!meta_fits(meta)) return false;
  Member& me = self();
  me.meta = share_meta(meta);
  ++me.incarnation;
  broadcast(me.name, alive_of(me));
  return true;
}

std::vector<MemberInfo> Membership::members() const {
  std::vector<MemberInfo> all;
  all.reserve(members_.size());
  for (const Member& m : members_) {
    all.push_back({m.name, m.addr, m.state, m.incarnation, *m.meta, m.state_since_ms});
  }
  return all;
}

std::optional<MemberInfo> Membership::member(const std::string& who) const {
  const auto idx = index_.find(who, name_of());
  if (!idx) return std::nullopt;
  const Member& m = members_[*idx];
  return MemberInfo{m.name, m.addr, m.state, m.incarnation, *m.meta, m.state_since_ms};
}

// ---- helpers ------------------------------------------------------------------------------------

// An accusation by a member we hold dead is ignored (unless it is about us): we declared it dead
// because it stopped answering, typically from behind a partition, and what it says now it
// concluded there. Once it refutes (it is alive again here), its word counts again.
bool Membership::held_dead(const std::string& accuser) {
  const Member* m = find(accuser);
  return m != nullptr && m->state == MemberState::dead;
}

Membership::Member* Membership::find(const std::string& who) {
  const auto idx = index_.find(who, name_of());
  return idx ? &members_[*idx] : nullptr;
}

Membership::Member* Membership::add_member(uint64_t now_ms, const Alive& a) {
  if (members_.size() >= cfg_.members_max) {
    ++stats_.members_refused;
    return nullptr;
  }
  const auto idx = static_cast<uint32_t>(members_.size());
  Member m;
  m.name = a.name;
  m.addr = a.addr;
  m.incarnation = a.incarnation;
  m.state_since_ms = now_ms;
  m.meta = share_meta(a.meta);
  members_.push_back(std::move(m));
  index_.put(members_.back().name, idx, name_of());
  ++live_;
  if (probe_next_ < probe_order_.size()) {  // probe it in this round, at a random position
    const std::size_t pos = probe_next_ + rng_.below(probe_order_.size() - probe_next_ + 1);
    probe_order_.push_back(idx);
    std::swap(probe_order_[pos], probe_order_.back());
  }
  return &members_.back();
}

void Membership::remove_member(const std::string& who) {
  const auto found = index_.find(who, name_of());
  if (!found || *found == 0) return;
  const uint32_t idx = *found;
  index_.erase(who, name_of());
  suspicions_.erase(who);
  if (is_live(members_[idx].state)) --live_;
  if (idx + 1 != members_.size()) {
    index_.put(members_.back().name, idx, name_of());  // while the last one still has its name
    members_[idx] = std::move(members_.back());
  }
  members_.pop_back();
  probe_next_ = probe_order_.size();  // indices moved: reshuffle before the next probe
}

void Membership::set_state(Member& m, MemberState state, uint64_t now_ms) {
  if (is_live(m.state) && !is_live(state)) --live_;
  if (!is_live(m.state) && is_live(state)) ++live_;
  m.state = state;
  m.state_since_ms = now_ms;
}

void Membership::start_suspicion(uint64_t now_ms, Member& m, const std::string& from) {
  const std::size_t n = live_;
  const Suspicion s(name_id(from), suspicion_expected_confirmations(cfg_, n),
                    suspicion_min_ms(cfg_, n), suspicion_max_ms(cfg_, n), now_ms);
  suspicions_.insert_or_assign(m.name, s);
  set_state(m, MemberState::suspect, now_ms);
  suspicion_timers_.push({s.deadline_ms(), m.name});
  ++stats_.suspicions;
}

void Membership::emit(MemberEvent::Kind kind, const Member& m, Output& out) const {
  out.events.push_back({kind, {m.name, m.addr, m.state, m.incarnation, *m.meta, m.state_since_ms}});
}

void Membership::broadcast(const std::string& about, const Message& msg) {
  std::vector<uint8_t> bytes;
  if (encode(msg, bytes)) broadcasts_.push(about, std::move(bytes));
}

Alive Membership::alive_of(const Member& m) const {
  return Alive{m.name, m.incarnation, m.addr, *m.meta};
}

}  // namespace meshwork::gossip
