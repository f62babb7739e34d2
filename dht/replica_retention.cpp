// The replica core's retention side: finished jobs erased once older than retain_ms, the
// tombstones that keep an erased job from coming back, and stand-in copies dropped once their home
// replicas hold them; see replica.h and docs/guarantees.md (retention).
//
// Expiry is a function of a copy and this node's wall clock: a terminal status written more than
// retain_ms ago. Every holder decides on its own copy (equal copies decide alike, a clock's skew
// apart); a replica that refuses a copy because it erased the job says so in its ack
// (ItemAck::deleted), and the sender erases its copy too. A tombstone refuses every copy that
// arrives later — replicate, hint replay, fetch reply, anti-entropy — for tombstone_ms.
#include <algorithm>

#include "dht/replica.h"

namespace meshwork {
namespace {

// Records erased and tombstones dropped per round (one a sweep interval): a backlog of expiries
// (a node back after a long stop) is worked off over several rounds instead of blocking the loop.
// Far above what a node finishes per second, so a steady load never falls behind.
constexpr size_t kErasuresPerRoundMax = 8'192;
// Stand-in copies checked per round, and how often one is pushed again to the home replicas that
// have not acknowledged it.
constexpr size_t kStandInsPerRoundMax = 256;
constexpr uint64_t kStandInPushIntervalMs = 10'000;

bool listed(const std::vector<std::string>& list, const std::string& name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

}  // namespace

void Replica::load_tombstone(const std::string& id, uint64_t deleted_at_ms) {
  if (!tombstones_.emplace(id, deleted_at_ms).second) return;
  if (config_.tombstone_ms > 0)
    tombstone_expiries_.emplace(deleted_at_ms + config_.tombstone_ms, id);
}

Status Replica::removed(const std::string& id) const {
  return Status(Code::conflict, "job " + id +
                                    " was finished and removed by retention; it cannot be "
                                    "submitted again");
}

bool Replica::expired_here(Now now, const std::string& id) const {
  const IndexEntry* e = index_.find(id);
  return e != nullptr && past_retention(e->state, e->status_at_ms, config_.retain_ms, now.wall_ms);
}

// A record that became terminal is due for removal retain_ms after its status was written.
void Replica::schedule_expiry(const JobRecord& r) {
  if (config_.retain_ms == 0 || !is_terminal(r.status.state)) return;
  expiries_.emplace(r.status.at_ms + config_.retain_ms, r.id);
}

std::vector<std::string> Replica::hint_targets(const std::string& id) const {
  std::vector<std::string> out;
  for (const auto& [target, ids] : hints_)
    if (ids.contains(id) || hints_inflight_.contains({target, id})) out.push_back(target);
  return out;
}

bool Replica::owes_hint(const std::string& id) const {
  for (const auto& [target, ids] : hints_)
    if (ids.contains(id) || hints_inflight_.contains({target, id})) return true;
  return false;
}

// One round: erase what replicas said they erased, then what expired here, drop tombstones past
// tombstone_ms, and look at the stand-in copies.
//
// A record that expires here while this node still owes it to a replica it could not reach (a
// hint) is kept until the hint is delivered: the replica may hold an older copy (say, `running`)
// that only this record tells it is finished (found by the simulator: seed 12 with --retain 5 left
// a replica with a `running` copy nobody would finish or remove). It is erased at once when a
// replica says it erased the job (erase_soon_): a tombstone exists then, and refuses the stale
// copy when it comes back. A hint to a member that never comes back is dropped when that member is
// reaped (--reap-after-s).
void Replica::retain(Now now) {
  size_t budget = kErasuresPerRoundMax;
  for (auto it = erase_soon_.begin(); it != erase_soon_.end() && budget > 0;) {
    if (running_.contains(*it)) {  // an attempt of ours still runs: once it has settled
      ++it;
      continue;
    }
    erase_record(now, *it, Persist::Kind::erase);
    --budget;
    it = erase_soon_.erase(it);
  }
  while (budget > 0 && !expiries_.empty() && expiries_.begin()->first < now.wall_ms) {
    const std::string id = std::move(expiries_.extract(expiries_.begin()).mapped());
    const IndexEntry* e = index_.find(id);
    // Gone already, or changed since (a newer status is due later, or was retried).
    if (e == nullptr || !past_retention(e->state, e->status_at_ms, config_.retain_ms, now.wall_ms))
      continue;
    --budget;
    if (running_.contains(id) || owes_hint(id)) {
      erase_soon_.insert(id);
    } else {
      erase_record(now, id, Persist::Kind::erase);
    }
  }
  while (budget > 0 && !tombstone_expiries_.empty() &&
         tombstone_expiries_.begin()->first < now.wall_ms) {
    auto node = tombstone_expiries_.extract(tombstone_expiries_.begin());
    auto t = tombstones_.find(node.mapped());
    if (t == tombstones_.end() || t->second + config_.tombstone_ms != node.key()) continue;
    tombstones_.erase(t);
    --budget;
    out_.persists.push_back(
        Persist{next_seq_++, Persist::Kind::tombstone_drop, {}, "", node.mapped()});
  }
  check_stand_ins(now);
}

// Forgets the record everywhere in the core and persists its removal: `erase` leaves a tombstone,
// `drop` (a stand-in copy) does not. Not while an attempt of this node runs (its handler's outcome
// must find the attempt); false then, or when the record is not held.
bool Replica::erase_record(Now now, const std::string& id, Persist::Kind kind) {
  const IndexEntry* e = index_.find(id);
  if (e == nullptr || running_.contains(id)) return false;
  Persist p{0, kind, {}, "", id};
  p.created_at_ms = e->created_at_ms;
  std::vector<std::string> hinted;
  for (const auto& [target, ids] : hints_)
    if (ids.contains(id)) hinted.push_back(target);
  for (const std::string& target : hinted) drop_hint(target, id);
  index_.erase(id);
  overlay_.erase(id);  // a pending write of it is still applied first: persists keep seq order
  cache_drop(id);
  adopted_.erase(id);
  wake_scheduled_.erase(id);
  takeover_reads_.erase(id);
  stand_ins_.erase(id);
  if (kind == Persist::Kind::erase) {
    p.at_ms = now.wall_ms;
    load_tombstone(id, now.wall_ms);
    stats_.expired++;
    log(LogLine::Level::debug, "job_expired", id, "");
  } else {
    stats_.stand_ins_dropped++;
    log(LogLine::Level::debug, "stand_in_dropped", id, "the home replicas hold it");
  }
  p.seq = next_seq_++;  // after the hint drops, so the store applies them in order
  out_.persists.push_back(std::move(p));
  return true;
}

// Called on every change of a record: a copy outside its replica list is a stand-in, whose
// acknowledgements restart with each new version.
void Replica::track_stand_in(const std::string& id, const IndexEntry& e) {
  const bool home = e.placed_version == placement_.version() ? listed(e.replicas, self_)
                                                             : placement_.is_replica(id, self_);
  if (home) {
    stand_ins_.erase(id);
    return;
  }
  StandIn& s = stand_ins_[id];
  if (s.fingerprint != e.fingerprint) {
    s.fingerprint = e.fingerprint;
    s.held_by.clear();
  }
}

// A replica acknowledged (merged and durable) a copy this node sent: when it is a stand-in's
// current version, that replica holds it or newer; when the replica holds the job finished and
// this copy does not, the stand-in fetches the replica's copy (it expires with it then).
void Replica::stand_in_acked(Now now, const std::string& peer, const SharedRecord& sent,
                             const ItemAck& ack) {
  auto it = stand_ins_.find(sent->id);
  if (it == stand_ins_.end()) return;
  const IndexEntry* e = index_.find(sent->id);
  if (e != nullptr && is_terminal(ack.state) && !is_terminal(e->state))
    fetch_from(now, peer, {sent->id}, Outstanding::Why::pull, 0);
  if (record_fingerprint(*sent.bytes) == it->second.fingerprint) it->second.held_by.insert(peer);
}

// Drops each stand-in copy once all R of its home replicas acknowledged its version — never with
// fewer replicas usable, never while it runs or is owed to anyone here (a hint) — and pushes it
// again, now and then, to those that have not.
void Replica::check_stand_ins(Now now) {
  std::vector<std::string> drop;
  size_t n = 0;
  auto it = stand_ins_.upper_bound(stand_in_cursor_);  // in turn, from where the last round ended
  if (it == stand_ins_.end()) it = stand_ins_.begin();
  for (; it != stand_ins_.end() && n < kStandInsPerRoundMax; ++n) {
    stand_in_cursor_ = it->first;
    const auto& [id, s] = *it;
    const IndexEntry* e = index_.find(id);
    const std::vector<std::string> home = placement_.replicas(id);
    if (e == nullptr || listed(home, self_)) {
      it = stand_ins_.erase(it);
      continue;
    }
    StandIn& si = it->second;
    if (e->fingerprint != si.fingerprint) {
      si.fingerprint = e->fingerprint;
      si.held_by.clear();
    }
    ++it;
    bool hinted = false;
    for (const auto& [target, ids] : hints_) hinted = hinted || ids.contains(id);
    const bool held = home.size() >= placement_.options().replicas &&
                      std::all_of(home.begin(), home.end(),
                                  [&](const std::string& m) { return si.held_by.contains(m); });
    if (held && !hinted && !running_.contains(id) && !adopted_.contains(id) &&
        !overlay_.contains(id)) {
      drop.push_back(id);
      continue;
    }
    // Held by all but kept (a hint is owed): an unfinished copy is still pushed now and then, so
    // that it learns what became of the job (stand_in_acked) instead of outliving it.
    if ((held && is_terminal(e->state)) || now.mono_ms < si.next_push_ms) continue;
    si.next_push_ms = now.mono_ms + kStandInPushIntervalMs;
    auto rec = current_encoded(id);
    if (!rec) continue;
    for (const std::string& m : home)
      if (held || !si.held_by.contains(m)) queue_replicate(m, *rec, 0);
  }
  for (const std::string& id : drop) erase_record(now, id, Persist::Kind::drop);
}

}  // namespace meshwork
