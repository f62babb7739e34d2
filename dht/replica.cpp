// The replica core: construction, boot, membership, records and timers; see replica.h. Admission
// is in replica_admit.cpp, the write side in replica_write.cpp, running jobs in replica_run.cpp,
// repair in replica_repair.cpp.
#include "dht/replica.h"

#include <algorithm>

namespace meshwork {

void Output::clear() {
  persists.clear();
  sends.clear();
  replies.clear();
  starts.clear();
  stops.clear();
  logs.clear();
}

bool Output::empty() const {
  return persists.empty() && sends.empty() && replies.empty() && starts.empty() && stops.empty() &&
         logs.empty();
}

Replica::Replica(std::string self, ReplicaConfig config, const RecordReader& reader)
    : self_(std::move(self)),
      config_(std::move(config)),
      reader_(reader),
      placement_(self_, {}, config_.placement, 1),
      reputation_(config_.score_threshold_percent),
      rng_state_(config_.seed ^ 0x9e3779b97f4a7c15ull),
      ae_interval_ms_(config_.anti_entropy_interval_ms) {
  index_.share_as(self_, kDigestBits);
}

void Replica::load(const JobRecord& r, std::string_view encoded) {
  index_.put(r, record_fingerprint(encoded));
  sight(0, r);  // dated by start()
  schedule_expiry(r);
}

void Replica::load_hint(const std::string& target, const std::string& id) {
  hints_[target].insert(id);
}

size_t Replica::hints() const {
  size_t n = 0;
  for (const auto& [target, ids] : hints_) n += ids.size();
  return n;
}

void Replica::start(Now now) {
  started_ = true;
  started_ms_ = now.mono_ms;
  next_sweep_ms_ = now.mono_ms;
  next_hints_ms_ = now.mono_ms + config_.hint_replay_interval_ms;
  next_ae_ms_ = now.mono_ms + config_.anti_entropy_interval_ms;
  next_renewal_ms_ = now.mono_ms + config_.lease_ms / 3;
  last_sweep_ms_ = now.mono_ms;
  for (auto& [id, seen] : sightings_) seen.seen_ms = now.mono_ms;
  recover(now);
  flush(now);
}

void Replica::set_member(Now now, const std::string& name, MemberState state) {
  if (name == self_ || name.empty() || name.size() > kNodeNameBytesMax) return;
  const uint64_t version = placement_.version();
  if (!placement_.set(name, state)) return;
  if (state == MemberState::dead) {
    dead_since_ms_.try_emplace(name, now.mono_ms);
  } else {
    dead_since_ms_.erase(name);
  }
  if (state == MemberState::alive) {
    seen_peer_ = true;
    // Back (or joined) and sharing records with this node: reconcile with it first.
    if (std::binary_search(co_replicas_.begin(), co_replicas_.end(), name)) ae_soon_.insert(name);
  }
  // Suspected or cleared: no list moved, so there is nothing to hand off or sweep for. (Under
  // load members are suspected often; a sweep and a hand-off pass over every record each time
  // cost the loop more than the load itself.)
  if (placement_.version() == version) return;
  ae_interval_ms_ = config_.anti_entropy_interval_ms;
  next_sweep_ms_ = now.mono_ms;  // a membership change: sweep at once
}

// A member dead for config.reap_after_ms in this node's view gives up its ring tokens. Its ranges
// already had live stand-ins (replicas() skips the dead), which hold them from now on as their home
// replicas; the write quorum no longer counts it; hints owed to it are dropped. If it ever comes
// back, its tokens return as on a join and hand-off brings it its ranges. After as long again it
// is forgotten (as if it had left), so that a mesh whose members come and go under new names does
// not keep every old name.
void Replica::reap_dead(Now now) {
  bool changed = false;
  for (auto it = dead_since_ms_.begin(); it != dead_since_ms_.end();) {
    const std::string name = it->first;
    const bool reaped = placement_.reaped().contains(name);
    if (now.mono_ms < reap_due_ms(it->second, reaped)) {
      ++it;
      continue;
    }
    changed = true;
    if (reaped || !placement_.reap(name)) {  // reaped long enough: forget it
      it = dead_since_ms_.erase(it);
      if (reaped && placement_.set(name, MemberState::left))
        log(LogLine::Level::info, "member_forgotten", "", name + " was reaped: forgotten");
      continue;
    }
    ++it;
    if (auto h = hints_.find(name); h != hints_.end()) {
      const std::set<std::string> owed = h->second;
      for (const std::string& id : owed) drop_hint(name, id);
    }
    log(LogLine::Level::info, "member_reaped", "",
        name + " dead for " + std::to_string(config_.reap_after_ms / 1000) +
            " s: its tokens leave the ring");
  }
  if (!changed) return;
  ae_interval_ms_ = config_.anti_entropy_interval_ms;
  next_sweep_ms_ = now.mono_ms;  // hand off and sweep for the new placement at once
}

// When a member dead since `since_ms` is reaped (or, once reaped, forgotten); saturating.
uint64_t Replica::reap_due_ms(uint64_t since_ms, bool reaped) const {
  const uint64_t after = config_.reap_after_ms;
  const uint64_t wait = !reaped ? after : after > UINT64_MAX / 2 ? UINT64_MAX : 2 * after;
  return since_ms + std::min(wait, UINT64_MAX - since_ms);
}

bool Replica::ready(Now now) const {
  if (!config_.joining || seen_peer_) return true;
  return started_ && now.mono_ms >= started_ms_ + config_.alone_after_ms;
}

// A node that just joined waits a moment before running jobs, so that it first learns the
// membership (and with it who owns what) instead of running everything it holds as a mesh of one.
bool Replica::owns(Now now, const std::string& id) const {
  return owns(now, id, nullptr);
}

// With `e` (id's index entry) placed by the current placement, the owner is read from its list
// instead of walking the ring: the placement's version moves whenever a list may move.
bool Replica::owns(Now now, std::string_view id, const IndexEntry* e) const {
  if (!started_ || !ready(now)) return false;
  if (config_.joining && now.mono_ms < started_ms_ + config_.settle_ms) return false;
  if (adopted_.contains(id)) return true;
  if (e != nullptr && e->placed_version == placement_.version())
    return !e->replicas.empty() && e->replicas.front() == self_;
  auto owner = placement_.owner(id);
  return owner && *owner == self_;
}

std::shared_ptr<const JobRecord> Replica::current_shared(const std::string& id) const {
  if (auto it = overlay_.find(id); it != overlay_.end()) return it->second.record.record;
  if (!index_.contains(id)) return nullptr;
  if (auto it = cache_.find(id); it != cache_.end()) return it->second.rec.record;
  auto stored = reader_.read(id);
  return stored ? std::make_shared<const JobRecord>(std::move(*stored)) : nullptr;
}

std::optional<SharedRecord> Replica::current_encoded(const std::string& id) const {
  if (auto it = overlay_.find(id); it != overlay_.end()) return it->second.record;
  if (!index_.contains(id)) return std::nullopt;
  if (auto it = cache_.find(id); it != cache_.end()) return it->second.rec;
  auto stored = reader_.read(id);
  if (!stored) return std::nullopt;
  return SharedRecord::of(std::move(*stored));
}

std::optional<JobRecord> Replica::current(const std::string& id) const {
  if (auto it = overlay_.find(id); it != overlay_.end()) return *it->second.record;
  if (!index_.contains(id)) return std::nullopt;
  if (auto it = cache_.find(id); it != cache_.end()) return *it->second.rec;
  return reader_.read(id);
}

void Replica::cache_put(const SharedRecord& rec) {
  if (config_.record_cache_max == 0) return;
  const bool finished = is_terminal(rec->status.state);
  if (auto it = cache_.find(rec->id); it != cache_.end()) {
    Cached& c = it->second;
    c.rec = rec;
    if (c.finished) cache_finished_.erase(c.at);
    if (!c.finished && finished) cache_unfinished_.erase(c.at);
    if (finished) {
      cache_finished_.push_front(rec->id);
      c.at = cache_finished_.begin();
    } else if (c.finished) {  // retried: unfinished again, behind the others
      cache_unfinished_.push_back(rec->id);
      c.at = std::prev(cache_unfinished_.end());
    }
    c.finished = finished;
    return;
  }
  if (cache_.size() >= config_.record_cache_max) {
    if (cache_finished_.empty()) return;  // full of unfinished records, each wanted before this
    cache_.erase(cache_finished_.back());
    cache_finished_.pop_back();
  }
  std::list<std::string>& list = finished ? cache_finished_ : cache_unfinished_;
  const auto at = finished ? list.insert(list.begin(), rec->id) : list.insert(list.end(), rec->id);
  cache_.emplace(rec->id, Cached{rec, finished, at});
}

void Replica::cache_drop(const std::string& id) {
  auto it = cache_.find(id);
  if (it == cache_.end()) return;
  (it->second.finished ? cache_finished_ : cache_unfinished_).erase(it->second.at);
  cache_.erase(it);
}

uint64_t Replica::pending_seq(const std::string& id) const {
  auto it = overlay_.find(id);
  return it == overlay_.end() ? 0 : it->second.seq;
}

// Every change to a record goes through here: persisted (the overlay serves it until durable),
// indexed, and acted on.
uint64_t Replica::commit(Now now, JobRecord next) {
  return commit(now, SharedRecord::of(std::move(next)));
}

uint64_t Replica::commit(Now now, SharedRecord rec) {
  const uint64_t seq = next_seq_++;
  const std::string& id = rec->id;
  const IndexEntry* before = index_.find(id);
  const bool finished_before = before != nullptr && is_terminal(before->state);
  index_.put(*rec, record_fingerprint(*rec.bytes));
  sight(now.mono_ms, *rec);
  // The list hand_off compares with after the next change; a record that hand_off has yet to see
  // in a new placement keeps its old list, so that its new members are not skipped.
  const IndexEntry* e = index_.find(id);
  if (e->placed_version != placement_.version() &&
      (e->placed_version == 0 || handed_version_ == placement_.version())) {
    index_.place(id, placement_.replicas(id), placement_.version());
  }
  // Its replicas are anti-entropy partners from now on, not only after the next placement change:
  // a record that arrives after hand_off ran (a hint replayed to a node back from a crash) would
  // otherwise be compared with nobody, and a stale copy of it never repaired or removed (the
  // simulator: seed 43 with --retain 5).
  for (const std::string& m : e->replicas) {
    if (m == self_) continue;
    auto at = std::lower_bound(co_replicas_.begin(), co_replicas_.end(), m);
    if (at == co_replicas_.end() || *at != m) co_replicas_.insert(at, m);
  }
  overlay_[id] = Overlay{rec, seq};
  overlay_order_.emplace_back(seq, id);
  // A cached copy keeps its place: the overlay serves the record until the change is durable, and
  // cache_put then replaces the copy (a failed write leaves it, as the store's copy stands).
  out_.persists.push_back(Persist{seq, Persist::Kind::record, rec, "", id});
  ae_interval_ms_ = config_.anti_entropy_interval_ms;
  track_stand_in(id, *e);
  forward(*e, rec);
  if (rec->redundancy > 1 && !finished_before && is_terminal(rec->status.state))
    note_verdict(now, *rec);
  react(now, *rec);
  return seq;
}

// A node that holds a record it is not a replica of (a stand-in in the writer's view, a copy kept
// for an unreachable target) passes every change on to the replicas of its own view: nothing else
// would bring it there, since hand-off needs a placement change and anti-entropy compares only
// records both sides replicate. A change that merges to nothing new is not committed, so views
// that disagree cannot bounce a record back and forth.
void Replica::forward(const IndexEntry& e, const SharedRecord& rec) {
  const std::vector<std::string> fresh = e.placed_version == placement_.version()
                                             ? std::vector<std::string>()
                                             : placement_.replicas(rec->id);
  const std::vector<std::string>& list = fresh.empty() ? e.replicas : fresh;
  if (std::find(list.begin(), list.end(), self_) != list.end()) return;
  for (const std::string& m : list) queue_replicate(m, rec, 0);
  stats_.forwarded++;
}

Replica::Merged Replica::merge_in(Now now, const JobRecord& incoming) {
  return merge_into(now, incoming, nullptr);
}

Replica::Merged Replica::merge_in(Now now, const SharedRecord& incoming) {
  return merge_into(now, *incoming, &incoming);
}

Replica::Merged Replica::merge_into(Now now, const JobRecord& incoming,
                                    const SharedRecord* encoded) {
  Merged m;
  if (tombstones_.contains(incoming.id)) {  // erased here: it does not come back
    stats_.tombstone_refusals++;
    return m;
  }
  m.before = current_shared(incoming.id);
  if (m.before) {
    JobRecord next = merge(*m.before, incoming);
    if (same_state(next, *m.before)) {
      m.after = std::make_shared<const JobRecord>(std::move(next));
      return m;
    }
    // Equal states of one job are equal records (same_state compares the envelopes' signatures;
    // the job text, key and spec follow from the id).
    if (encoded && same_state(next, incoming)) {
      commit(now, *encoded);
    } else {
      commit(now, std::move(next));
    }
  } else if (encoded) {
    commit(now, *encoded);
  } else {
    commit(now, incoming);
  }
  m.changed = true;
  m.after = overlay_.at(incoming.id).record.record;
  return m;
}

// What a record's new state asks of this node: stop a handler whose claim no longer holds or
// whose job was cancelled; start or stop a co-run; end an attempt whose verdict is in; queue or
// schedule a job it owns.
void Replica::react(Now now, const JobRecord& r) {
  if (auto u = unsettled_.find(r.id); u != unsettled_.end()) {
    const bool won = !status_before(r.status, u->second) && !status_before(u->second, r.status);
    if (won) count_end(r.status.state);  // this node's outcome came back: it won after all
    if (won || status_before(u->second, r.status)) unsettled_.erase(u);  // or it never will
  }
  bool awaiting = false;
  if (auto it = running_.find(r.id); it != running_.end()) {
    Attempt& a = it->second;
    awaiting = a.awaiting;
    const bool holds = r.status.state == JobState::running && r.status.attempt == a.attempt &&
                       r.status.node == self_;
    if (!holds && a.handler_running && !a.stopped) {
      a.stopped = true;
      stats_.superseded_stops++;
      out_.stops.push_back(Stop{Stop::Why::superseded, r.id, a.attempt});
      log(LogLine::Level::info, "claim_superseded", r.id,
          "attempt " + std::to_string(a.attempt) + " stopped: the record is now " +
              std::string(state_name(r.status.state)) + " attempt " +
              std::to_string(r.status.attempt) + " by " + r.status.node);
    } else if (holds && r.cancel_requested() && a.handler_running && !a.stopped) {
      a.stopped = true;
      out_.stops.push_back(Stop{Stop::Why::cancelled, r.id, a.attempt});
    }
  }
  if (r.redundancy > 1) react_co_run(now, r);
  // When the verdict ends the attempt, the next record is committed (and reacted to) in there;
  // what follows sees `r`, running by this node, and does nothing.
  if (awaiting) settle_verdict(now, r.id);
  schedule_expiry(r);
  if (r.status.state != JobState::queued && r.status.state != JobState::retry_wait) {
    if (r.status.state != JobState::running || r.status.node != self_) adopted_.erase(r.id);
    return;
  }
  if (!owns(now, r.id)) return;
  if (r.status.state == JobState::queued) {
    enqueue(now, r.id);
  } else if (const IndexEntry* e = index_.find(r.id)) {
    wake_at(r.id, retry_due_ms(now, r.id, *e));
  }
}

void Replica::durable(Now now, uint64_t seq, const Status& status) {
  if (seq < durable_seq_) return;
  if (!status.is_ok()) {
    // The store could not write: nothing that depended on it is acknowledged. Writes waiting for
    // this node's copy count it as no answer; the peers' acks are not sent (they retry or hint).
    log(LogLine::Level::warn, "store_failed", "", status.message());
    std::vector<uint64_t> failed;
    for (auto it = local_waits_.begin(); it != local_waits_.end() && it->first <= seq;) {
      failed.push_back(it->second);
      it = local_waits_.erase(it);
    }
    for (uint64_t write : failed) answer(now, write, 0, nullptr);
    while (!ack_waits_.empty() && ack_waits_.front().seq <= seq) ack_waits_.pop_front();
  }
  durable_seq_ = seq;
  while (!overlay_order_.empty() && overlay_order_.front().first <= seq) {
    auto [s, id] = std::move(overlay_order_.front());
    overlay_order_.pop_front();
    if (auto it = overlay_.find(id); it != overlay_.end() && it->second.seq == s) {
      if (status.is_ok()) cache_put(it->second.record);  // else the store's copy stands
      overlay_.erase(it);
    }
  }
  std::vector<uint64_t> done;
  for (auto it = local_waits_.begin(); it != local_waits_.end() && it->first <= seq;) {
    done.push_back(it->second);
    it = local_waits_.erase(it);
  }
  for (uint64_t write : done) answer(now, write, 1, nullptr);
  while (!ack_waits_.empty() && ack_waits_.front().seq <= seq) {
    out_.sends.push_back(Send{ack_waits_.front().to, std::move(ack_waits_.front().ack)});
    ack_waits_.pop_front();
  }
  pump(now);
  flush(now);
}

void Replica::tick(Now now) {
  expire(now);
  admit_parked(now);
  reap_dead(now);
  while (!wake_timers_.empty() && wake_timers_.begin()->first <= now.mono_ms) {
    const std::string id = wake_timers_.begin()->second;
    wake_timers_.erase(wake_timers_.begin());
    wake_scheduled_.erase(id);
    if (owns(now, id)) enqueue(now, id);
  }
  watch_deadlines(now);
  release_holds(now);
  if (now.mono_ms >= next_renewal_ms_) {
    renew_leases(now);
    next_renewal_ms_ = now.mono_ms + std::max<uint64_t>(1, config_.lease_ms / 3);
  }
  if (now.mono_ms >= next_sweep_ms_) {
    retain(now);
    sweep(now);
    next_sweep_ms_ = now.mono_ms + config_.sweep_interval_ms;
  }
  if (now.mono_ms >= next_hints_ms_) {
    replay_hints(now);
    next_hints_ms_ = now.mono_ms + config_.hint_replay_interval_ms;
  }
  if (now.mono_ms >= next_ae_ms_ || !ae_soon_.empty()) {
    anti_entropy_round(now);
    next_ae_ms_ = now.mono_ms + ae_interval_ms_;
  }
  pump(now);
  flush(now);
}

uint64_t Replica::next_deadline_ms() const {
  uint64_t t = std::min({next_sweep_ms_, next_hints_ms_, next_ae_ms_});
  if (!ae_soon_.empty()) t = 0;
  if (!running_.empty()) t = std::min(t, next_renewal_ms_);
  for (const auto& [id, a] : running_) {
    if (a.handler_running && !a.stopped) t = std::min(t, a.deadline_ms);
    if (a.awaiting) t = std::min(t, a.deadline_ms + config_.peer_timeout_ms);
    if (a.held) t = std::min(t, a.hold_until_ms);
  }
  for (const auto& [id, c] : co_runs_)
    if (!c.stopped) t = std::min(t, c.deadline_ms);
  if (!wake_timers_.empty()) t = std::min(t, wake_timers_.begin()->first);
  for (const auto& [name, since_ms] : dead_since_ms_)
    t = std::min(t, reap_due_ms(since_ms, placement_.reaped().contains(name)));
  if (!outstanding_.empty())
    t = std::min(t, outstanding_.begin()->second.sent_ms + config_.peer_timeout_ms);
  // Write ids grow with time and every write waits the same timeout: the first ends first.
  if (!writes_.empty()) t = std::min(t, writes_.begin()->second.deadline_ms);
  for (const auto& [request, op] : reads_) t = std::min(t, op.deadline_ms);
  // Every submission waits as long: the first in line runs out first.
  if (!parked_.empty()) t = std::min(t, parked_.front().until_ms);
  if (admit_soon_) t = 0;
  return t;
}

void Replica::log(LogLine::Level level, std::string event, std::string id, std::string detail) {
  out_.logs.push_back(LogLine{level, std::move(event), std::move(id), std::move(detail)});
}

// splitmix64: the core's only randomness, seeded by the config.
uint64_t Replica::random_below(uint64_t n) {
  uint64_t z = (rng_state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return n == 0 ? 0 : z % n;
}

// Exponential backoff with "equal jitter": half fixed, half random, capped.
uint64_t Replica::backoff_ms(uint32_t attempt) {
  const uint32_t shift = std::min<uint32_t>(attempt > 0 ? attempt - 1 : 0, 20);
  const uint64_t ceiling = std::min(config_.backoff_max_ms, config_.backoff_base_ms << shift);
  return ceiling / 2 + random_below(ceiling / 2 + 1);
}

void Replica::receive(Now now, const std::string& from, Message message) {
  std::visit(
      [&](auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, Replicate>) on_replicate(now, from, m);
        if constexpr (std::is_same_v<T, ReplicateAck>) on_replicate_ack(now, from, m);
        if constexpr (std::is_same_v<T, Fetch>) on_fetch(now, from, m);
        if constexpr (std::is_same_v<T, FetchReply>) on_fetch_reply(now, from, m);
        if constexpr (std::is_same_v<T, Digest>) on_digest(now, from, m);
        if constexpr (std::is_same_v<T, DigestReply>) on_digest_reply(now, from, m);
      },
      message);
  admit_parked(now);  // an ack may have ended a replica's lag
  pump(now);
  flush(now);
}

void Replica::undeliverable(Now now, const std::string& to, const Message& message) {
  const uint64_t corr = corr_of(message);
  auto it = outstanding_.find(corr);
  if (it == outstanding_.end() || it->second.peer != to) return;  // an answer, or settled
  fail_outstanding(now, corr);
  admit_parked(now);
  pump(now);
  flush(now);
}

}  // namespace meshwork
