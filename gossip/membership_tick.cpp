// Membership: periodic work (probing, indirect probes, gossip, push-pull, join, dead re-probing,
// suspicion expiry, reaping) and packet assembly. Transitions live in membership.cpp.
#include <algorithm>
#include <limits>

#include "gossip/membership.h"

namespace meshwork::gossip {

void Membership::join(uint64_t now_ms, std::vector<Address> seeds, Output& out) {
  std::erase(seeds, self().addr);
  seeds_ = std::move(seeds);
  joined_ = seeds_.empty();
  leaving_ = false;
  if (self().state == MemberState::left) {
    ++self().incarnation;
    set_state(self(), MemberState::alive, now_ms);
  }
  if (self().state_since_ms == 0) self().state_since_ms = now_ms;  // the first moment we know
  broadcast(name(), alive_of(self()));
  sender_rounds_left_ = sender_probe_rounds + 1;  // the next round to start takes one
  next_probe_ms_ = now_ms + rng_.below(cfg_.probe_interval_ms);  // spread nodes started together
  next_gossip_ms_ = now_ms;
  next_push_pull_ms_ = now_ms + push_pull_interval_scaled_ms(cfg_, live_);
  next_dead_probe_ms_ = now_ms + cfg_.dead_probe_interval_ms;
  next_join_ms_ = now_ms;
  tick_join(now_ms, out);
}

void Membership::tick(uint64_t now_ms, Output& out) {
  tick_indirect(now_ms, out);
  if (!leaving_) {
    tick_probe(now_ms, out);
    tick_join(now_ms, out);
    tick_push_pull(now_ms, out);
    tick_dead_probe(now_ms, out);
    tick_suspect_check(now_ms, out);
  }
  // After probing: a failed probe that confirms a suspicion may make it due right now.
  tick_timers(now_ms, out);
  tick_gossip(now_ms, out);  // last, so news from this tick goes out at once
}

uint64_t Membership::next_deadline_ms() const {
  uint64_t at = std::numeric_limits<uint64_t>::max();
  if (!leaving_) {
    at = std::min(at, next_probe_ms_);
    if (probe_.active)
      at = std::min(at, probe_.indirect_sent ? probe_.deadline_ms : probe_.indirect_at_ms);
    if (joined_) at = std::min(at, next_push_pull_ms_);
    if (!joined_ && !seeds_.empty()) at = std::min(at, next_join_ms_);
    if (!recently_dead_.empty()) at = std::min(at, next_dead_probe_ms_);
    if (!suspicions_.empty()) at = std::min(at, next_suspect_check_ms_);
  }
  for (const Indirect& i : indirect_) at = std::min(at, i.nack_at_ms);
  if (!broadcasts_.empty()) at = std::min(at, next_gossip_ms_);
  if (!suspicion_timers_.empty()) at = std::min(at, suspicion_timers_.top().at_ms);
  if (!reap_timers_.empty()) at = std::min(at, reap_timers_.top().at_ms);
  return at;
}

// ---- probing ------------------------------------------------------------------------------------

void Membership::tick_probe(uint64_t now_ms, Output& out) {
  if (probe_.active && !probe_.indirect_sent && now_ms >= probe_.indirect_at_ms) {
    send_indirect(now_ms, out);
  }
  if (probe_.active && now_ms >= probe_.deadline_ms) finish_probe(now_ms, false, out);
  if (!probe_.active && now_ms >= next_probe_ms_) {
    next_probe_ms_ = now_ms + awareness_.scale_ms(cfg_.probe_interval_ms);
    start_probe(now_ms, out);
  }
}

// Besides the round-robin probe, every probe_interval_ms (not scaled by awareness) we ping one
// member we suspect, with the suspicion attached (Lifeguard's buddy system, applied on its own
// cadence instead of only when the suspect's turn comes): if it is alive it refutes, or, if it
// already has, answers with its newer alive directly. Under heavy loss this is what keeps a node
// that missed a refutation from declaring a false death.
void Membership::tick_suspect_check(uint64_t now_ms, Output& out) {
  if (suspicions_.empty() || now_ms < next_suspect_check_ms_) return;
  next_suspect_check_ms_ = now_ms + cfg_.probe_interval_ms;
  auto it = suspicions_.begin();
  std::advance(it, static_cast<std::ptrdiff_t>(rng_.below(
                       std::min<std::size_t>(suspicions_.size(), suspect_checks_window))));
  if (probe_.active && it->first == probe_.target) return;
  const Member* m = find(it->first);
  if (m == nullptr || m->state != MemberState::suspect) return;
  const Message suspect = Suspect{m->name, m->incarnation, name()};
  send_ping(m->addr, next_seq(), m->name, &suspect, out);
}

void Membership::start_probe(uint64_t now_ms, Output& out) {
  const Member* target = nullptr;
  for (std::size_t tries = 0; target == nullptr && tries <= members_.size(); ++tries) {
    if (probe_next_ >= probe_order_.size()) {  // a new round over a fresh shuffle
      probe_order_.resize(members_.size() - 1);
      for (std::size_t i = 0; i < probe_order_.size(); ++i)
        probe_order_[i] = static_cast<uint32_t>(i + 1);
      for (std::size_t i = probe_order_.size(); i > 1; --i) {
        std::swap(probe_order_[i - 1], probe_order_[rng_.below(i)]);
      }
      probe_next_ = 0;
      if (probe_order_.empty()) return;
      if (sender_rounds_left_ > 0) --sender_rounds_left_;  // an empty round does not count
    }
    const uint32_t idx = probe_order_[probe_next_++];
    if (idx < members_.size() && (members_[idx].state == MemberState::alive ||
                                  members_[idx].state == MemberState::suspect)) {
      target = &members_[idx];
    }
  }
  if (target == nullptr) return;
  probe_ = Probe{};
  probe_.active = true;
  probe_.seq = next_seq();
  probe_.target = target->name;
  probe_.indirect_at_ms = now_ms + awareness_.scale_ms(cfg_.probe_timeout_ms);
  probe_.deadline_ms = now_ms + awareness_.scale_ms(cfg_.probe_interval_ms);
  ++stats_.probes;
  if (target->state == MemberState::suspect) {  // Lifeguard's buddy system: tell it so it refutes
    const Message suspect = Suspect{target->name, target->incarnation, name()};
    send_ping(target->addr, probe_.seq, target->name, &suspect, out);
  } else {
    send_ping(target->addr, probe_.seq, target->name, nullptr, out);
  }
}

void Membership::send_indirect(uint64_t now_ms, Output& out) {
  probe_.indirect_sent = true;
  const Member* target = find(probe_.target);
  if (target == nullptr) return;
  const Message req = PingReq{probe_.seq, target->name, target->addr};
  const Address target_addr = target->addr;
  for (const Member* peer : random_members(cfg_.indirect_checks, probe_.target, now_ms, false)) {
    if (peer->addr == target_addr) continue;
    ++probe_.nacks_expected;
    ++stats_.indirect_probes_sent;
    send(peer->addr, {&req, 1}, out);
  }
}

void Membership::finish_probe(uint64_t now_ms, bool acked, Output& out) {
  probe_.active = false;
  if (acked) {
    awareness_.apply_delta(-1);
    return;
  }
  ++stats_.probe_failures;
  // Lifeguard: missing nacks mean *we* may be the slow one; all nacks back means the target is.
  const uint32_t missed =
      probe_.nacks_expected > probe_.nacks ? probe_.nacks_expected - probe_.nacks : 0;
  awareness_.apply_delta(probe_.nacks_expected > 0 ? static_cast<int>(missed) : 1);
  const Member* target = find(probe_.target);
  if (target == nullptr ||
      (target->state != MemberState::alive && target->state != MemberState::suspect)) {
    return;
  }
  on_suspect(now_ms, self().addr, Suspect{target->name, target->incarnation, name()}, out);
}

void Membership::tick_indirect(uint64_t now_ms, Output& out) {
  for (std::size_t i = 0; i < indirect_.size();) {
    if (now_ms < indirect_[i].nack_at_ms) {
      ++i;
      continue;
    }
    const Message nack = Nack{indirect_[i].requester_seq};
    const Address requester = indirect_[i].requester;
    indirect_[i] = indirect_.back();
    indirect_.pop_back();
    send(requester, {&nack, 1}, out);
  }
}

// ---- dissemination ------------------------------------------------------------------------------

void Membership::tick_gossip(uint64_t now_ms, Output& out) {
  if (broadcasts_.empty() || now_ms < next_gossip_ms_) return;
  next_gossip_ms_ = now_ms + cfg_.gossip_interval_ms;
  for (const Member* m : random_members(cfg_.gossip_nodes, {}, now_ms, true)) {
    send(m->addr, {}, out);
  }
}

void Membership::tick_push_pull(uint64_t now_ms, Output& out) {
  if (!joined_ || now_ms < next_push_pull_ms_) return;
  next_push_pull_ms_ = now_ms + push_pull_interval_scaled_ms(cfg_, live_);
  for (const Member* m : random_members(1, {}, now_ms, false)) {
    ++stats_.push_pulls;
    send_state(m->addr, true, out);
  }
}

void Membership::tick_join(uint64_t now_ms, Output& out) {
  if (joined_ || seeds_.empty() || now_ms < next_join_ms_) return;
  next_join_ms_ = now_ms + cfg_.join_retry_ms;
  for (const Address& seed : seeds_) send_state(seed, true, out);
}

void Membership::tick_dead_probe(uint64_t now_ms, Output& out) {
  if (recently_dead_.empty() || now_ms < next_dead_probe_ms_) return;
  next_dead_probe_ms_ = now_ms + cfg_.dead_probe_interval_ms;
  for (std::size_t tries = 0; tries < dead_probe_attempts_max && !recently_dead_.empty(); ++tries) {
    const std::size_t i = rng_.below(recently_dead_.size());
    const Member* m = find(recently_dead_[i]);
    if (m == nullptr || m->state != MemberState::dead ||
        now_ms - m->state_since_ms > cfg_.reconnect_timeout_ms) {
      recently_dead_[i] = std::move(recently_dead_.back());
      recently_dead_.pop_back();
      continue;
    }
    // If it is alive after all (a healed partition, a resumed process), the dead notice makes
    // it refute straight back to us.
    const Message dead = Dead{m->name, m->incarnation, name()};
    send_ping(m->addr, next_seq(), m->name, &dead, out);
    return;
  }
}

void Membership::tick_timers(uint64_t now_ms, Output& out) {
  while (!suspicion_timers_.empty() && suspicion_timers_.top().at_ms <= now_ms) {
    const std::string who = suspicion_timers_.top().name;
    suspicion_timers_.pop();
    const Member* m = find(who);
    const auto it = suspicions_.find(who);
    if (m == nullptr || m->state != MemberState::suspect || it == suspicions_.end() ||
        it->second.deadline_ms() > now_ms) {
      continue;  // refuted, already dead, or a later timer for a newer suspicion
    }
    ++stats_.deaths_declared;
    on_dead(now_ms, self().addr, who, m->incarnation, MemberState::dead, name(), out);
  }
  while (!reap_timers_.empty() && reap_timers_.top().at_ms <= now_ms) {
    const std::string who = reap_timers_.top().name;
    reap_timers_.pop();
    const Member* m = find(who);
    if (m != nullptr && (m->state == MemberState::dead || m->state == MemberState::left) &&
        now_ms - m->state_since_ms >= cfg_.reap_timeout_ms) {
      remove_member(who);
    }
  }
}

// ---- packets ------------------------------------------------------------------------------------

std::size_t Membership::plaintext_budget() const {
  return keyring_.empty() ? packet_bytes_max : sealed_plaintext_bytes_max;
}

void Membership::send(Address to, std::span<const Message> head, Output& out) {
  std::vector<uint8_t> plain;
  plain.reserve(plaintext_budget());
  plain.push_back(wire_version);
  for (const Message& m : head) {
    if (!encode(m, plain)) return;  // our own message broke a limit: a bug upstream of here
  }
  const std::size_t head_bytes = plain.size();
  if (head_bytes > plaintext_budget()) return;
  broadcasts_.fill(plain, plaintext_budget() - head_bytes,
                   retransmit_limit(cfg_.retransmit_mult, live_));
  if (head.empty() && plain.size() == head_bytes) return;
  flush(to, plain, out);
}

void Membership::send_ping(Address to, uint32_t seq, const std::string& target,
                           const Message* extra, Output& out) {
  Message head[3] = {Ping{seq, target}};
  std::size_t count = 1;
  if (sender_rounds_left_ > 0) head[count++] = Sender{name()};
  if (extra != nullptr) head[count++] = *extra;
  send(to, {head, count}, out);
}

void Membership::send_state(Address to, bool request, Output& out) {
  PushPull header{request, next_seq(), 0};
  std::vector<uint8_t> plain;
  std::vector<uint8_t> record;
  const auto start_chunk = [&] {
    plain.assign(1, wire_version);
    (void)encode(header, plain);
  };
  start_chunk();
  const std::size_t empty_chunk = plain.size();
  for (const Member& m : members_) {
    record.clear();
    bool ok = false;
    switch (m.state) {
      case MemberState::alive:
        ok = encode(alive_of(m), record);
        break;
      case MemberState::suspect:
        ok = encode(Suspect{m.name, m.incarnation, name()}, record);
        break;
      case MemberState::dead:
        ok = encode(Dead{m.name, m.incarnation, name()}, record);
        break;
      case MemberState::left:
        ok = encode(Left{m.name, m.incarnation}, record);
        break;
    }
    if (!ok) continue;
    if (plain.size() + record.size() > plaintext_budget() && plain.size() > empty_chunk) {
      flush(to, plain, out);
      ++header.chunk;
      start_chunk();
    }
    plain.insert(plain.end(), record.begin(), record.end());
  }
  flush(to, plain, out);
}

void Membership::flush(Address to, std::vector<uint8_t>& plain, Output& out) {
  Packet packet{to, {}};
  if (keyring_.empty()) {
    packet.bytes = std::move(plain);
  } else {
    packet.bytes.reserve(plain.size() + seal_overhead_bytes);
    seal(keyring_, plain, packet.bytes);
  }
  ++stats_.packets_sent;
  stats_.bytes_sent += packet.bytes.size();
  out.packets.push_back(std::move(packet));
  plain.clear();
}

// k distinct random members other than self and `exclude`: alive or suspect, or also dead for
// gossip_to_dead_ms when `include_dead`. Rejection sampling keeps this O(k) in large clusters.
std::vector<const Membership::Member*> Membership::random_members(std::size_t k,
                                                                  const std::string& exclude,
                                                                  uint64_t now_ms,
                                                                  bool include_dead) {
  std::vector<const Member*> picked;
  const auto eligible = [&](const Member& m) {
    if (m.name == exclude || m.name == name()) return false;
    if (m.state == MemberState::alive || m.state == MemberState::suspect) return true;
    return include_dead && m.state == MemberState::dead &&
           now_ms - m.state_since_ms < cfg_.gossip_to_dead_ms;
  };
  const auto take = [&](const Member& m) {
    if (eligible(m) && std::find(picked.begin(), picked.end(), &m) == picked.end())
      picked.push_back(&m);
  };
  const std::size_t n = members_.size();
  if (n <= 1 || k == 0) return picked;
  for (std::size_t tries = 0; picked.size() < k && tries < 4 * k + 8; ++tries) {
    take(members_[1 + rng_.below(n - 1)]);
  }
  if (picked.size() < k && n <= 256) {  // small or mostly dead: a scan from a random start
    const std::size_t start = rng_.below(n);
    for (std::size_t i = 0; i < n && picked.size() < k; ++i) take(members_[(start + i) % n]);
  }
  return picked;
}

}  // namespace meshwork::gossip
