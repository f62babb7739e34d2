// The replica core's repair side: fetching copies (reads, takeovers, pulls), hinted handoff and
// anti-entropy; see replica.h.
#include <algorithm>

#include "dht/replica.h"

namespace meshwork {

void Replica::fetch_from(Now now, const std::string& peer, const std::vector<std::string>& ids,
                         Outstanding::Why why, uint64_t request) {
  for (size_t start = 0; start < ids.size(); start += kFetchIdsMax) {
    const size_t end = std::min(ids.size(), start + kFetchIdsMax);
    const uint64_t corr = next_id_++;
    Outstanding o;
    o.kind = Outstanding::Kind::fetch;
    o.why = why;
    o.peer = peer;
    o.sent_ms = now.mono_ms;
    o.request = request;
    o.ids.assign(ids.begin() + static_cast<std::ptrdiff_t>(start),
                 ids.begin() + static_cast<std::ptrdiff_t>(end));
    Fetch f{corr, o.ids};
    outstanding_.emplace(corr, std::move(o));
    out_.sends.push_back(Send{peer, std::move(f)});
  }
}

void Replica::on_fetch(Now now, const std::string& from, Fetch& m) {
  FetchReply reply;
  reply.corr = m.corr;
  for (const std::string& id : m.ids)
    reply.records.emplace_back(expired_here(now, id) ? std::nullopt : current_encoded(id));
  out_.sends.push_back(Send{from, std::move(reply)});
}

void Replica::on_fetch_reply(Now now, const std::string& from, FetchReply& m) {
  auto it = outstanding_.find(m.corr);
  if (it == outstanding_.end() || it->second.peer != from ||
      it->second.kind != Outstanding::Kind::fetch || it->second.ids.size() != m.records.size()) {
    stats_.refused_messages++;
    return;
  }
  Outstanding o = std::move(it->second);
  outstanding_.erase(it);
  for (size_t i = 0; i < m.records.size(); ++i) {
    std::optional<SharedRecord>& rec = m.records[i];
    const std::string& id = o.ids[i];
    if (rec && (*rec)->id != id) {
      stats_.refused_records++;
      rec.reset();
    }
    if (rec && !receipts_pass(now, from, **rec)) rec.reset();  // counted there
    if (o.why == Outstanding::Why::read) {
      on_read_copy(now, o.request, from,
                   rec ? std::optional<JobRecord>(**rec) : std::optional<JobRecord>(), true);
      continue;
    }
    // A pull or a takeover read: the copy is merged here.
    if (rec) merge_in(now, *rec);
    if (o.why == Outstanding::Why::takeover) takeover_answered(now, id);
  }
}

// A replica missed a record this node holds: remember to hand it over when it is back.
void Replica::remember_hint(const std::string& peer, const std::string& id) {
  if (!index_.contains(id)) return;  // only a holder can replay it; anti-entropy covers the rest
  if (!hints_[peer].insert(id).second) return;
  out_.persists.push_back(Persist{next_seq_++, Persist::Kind::hint_put, {}, peer, id});
  stats_.hints_stored++;
  log(LogLine::Level::debug, "hint_stored", id, "for " + peer);
}

void Replica::drop_hint(const std::string& peer, const std::string& id) {
  auto it = hints_.find(peer);
  if (it == hints_.end() || it->second.erase(id) == 0) return;
  if (it->second.empty()) hints_.erase(it);
  out_.persists.push_back(Persist{next_seq_++, Persist::Kind::hint_drop, {}, peer, id});
}

// Hands each reachable target up to kHintsPerReplayMax of the records it is owed; a hint is
// dropped once the target acknowledged its copy as durable.
void Replica::replay_hints(Now now) {
  std::vector<std::pair<std::string, std::string>> gone, send;
  for (const auto& [target, ids] : hints_) {
    if (!placement_.usable(target)) continue;
    size_t n = 0;
    for (const std::string& id : ids) {
      if (hints_inflight_.contains({target, id})) continue;
      if (n++ == kHintsPerReplayMax) break;
      send.emplace_back(target, id);
    }
  }
  for (const auto& [target, id] : send) {
    auto cur = current_encoded(id);
    if (!cur) {
      gone.emplace_back(target, id);
      continue;
    }
    hints_inflight_.insert({target, id});
    Write w;
    w.kind = Write::Kind::hint;
    w.target = target;
    w.need = 1;
    start_write(now, std::move(w), std::move(*cur), {target});
  }
  for (const auto& [target, id] : gone) drop_hint(target, id);
}

// The records both this node and `peer` should hold in the current view. A record's replica list
// comes from its index entry while that is current (hand_off keeps it so), else from the ring.
RecordIndex::Keep Replica::shared_with(const std::string& peer) const {
  return [peer, this](const std::string& id, const IndexEntry& e) {
    const std::vector<std::string> fresh = e.placed_version == placement_.version()
                                               ? std::vector<std::string>()
                                               : placement_.replicas(id);
    const std::vector<std::string>& list = fresh.empty() ? e.replicas : fresh;
    bool me = false, them = false;
    for (const std::string& m : list) {
      me = me || m == self_;
      them = them || m == peer;
    }
    return me && them;
  };
}

// The digests of the records shared with `peer`: kept by the index while every entry's list is
// the current placement's (between a membership change and the hand-off after it, a walk).
std::vector<uint64_t> Replica::digests_with(const std::string& peer) const {
  if (index_.all_placed_at(placement_.version())) return index_.shared_digests(peer);
  return index_.digests(kDigestBits, shared_with(peer));
}

// After the placement changed, every record this node holds goes to the members of its new replica
// list that were not in its old one — a member back or joined takes its ranges back, a stand-in
// steps in for a dead one — so R copies are restored in one round trip instead of waiting for
// anti-entropy to reach the right peer (docs/guarantees.md, placement). Every holder sends (a few copies more, no
// coordination); the index entries keep the lists compared against next time, and the members
// that share any record with this node become its anti-entropy partners. Runs from the sweep, at
// most once a sweep interval, so a storm of joins costs one pass per second, not one per event.
void Replica::hand_off(Now now) {
  if (handed_version_ == placement_.version() || now.mono_ms < next_hand_off_ms_) return;
  handed_version_ = placement_.version();
  next_hand_off_ms_ = now.mono_ms + config_.sweep_interval_ms;
  std::set<std::string> co;
  std::vector<std::pair<std::string, std::string>> pushes;  // (member, id)
  for (const auto& [key, e] : index_.entries()) {
    const std::string& id = key.id;
    std::vector<std::string> next = placement_.replicas(id);
    for (const std::string& m : next) {
      if (m == self_) continue;
      co.insert(m);
      const bool known = e.placed_version == 0 ||
                         std::find(e.replicas.begin(), e.replicas.end(), m) != e.replicas.end();
      if (!known) pushes.emplace_back(m, id);
    }
    index_.place(id, std::move(next), placement_.version());
    track_stand_in(id, e);
  }
  co_replicas_.assign(co.begin(), co.end());
  for (const auto& [member, id] : pushes)
    if (auto rec = current_encoded(id)) queue_replicate(member, *rec, 0);
  stats_.handed_off += pushes.size();
}

// One exchange: our per-arc digests go to one peer (a member just back first, else each in turn),
// which answers with the arcs that differ and its (id, fingerprint) pairs there; we push what it
// lacks or holds differently and pull what we lack or hold differently. While the replicas agree
// the rounds back off (ae_interval_ms_ doubles up to the maximum); any change resets them.
void Replica::anti_entropy_round(Now now) {
  std::string peer;
  while (!ae_soon_.empty() && peer.empty()) {
    std::string p = *ae_soon_.begin();
    ae_soon_.erase(ae_soon_.begin());
    if (placement_.usable(p)) peer = std::move(p);
  }
  if (peer.empty()) {  // the members this node shares records with, in turn
    std::vector<std::string> peers;
    for (const std::string& m : co_replicas_)
      if (placement_.usable(m)) peers.push_back(m);
    if (peers.empty()) return;
    peer = peers[ae_next_++ % peers.size()];
  }
  Digest d;
  d.corr = next_id_++;
  d.buckets = digests_with(peer);
  Outstanding o;
  o.kind = Outstanding::Kind::digest;
  o.peer = peer;
  o.sent_ms = now.mono_ms;
  outstanding_.emplace(d.corr, std::move(o));
  out_.sends.push_back(Send{peer, std::move(d)});
  stats_.anti_entropy_rounds++;
}

void Replica::on_digest(Now, const std::string& from, Digest& m) {
  if (m.buckets.size() != kDigestBuckets) {
    stats_.refused_messages++;
    return;
  }
  const RecordIndex::Keep keep = shared_with(from);
  const auto mine = digests_with(from);
  DigestReply reply;
  reply.corr = m.corr;
  std::set<uint32_t> differ;
  for (uint32_t b = 0; b < mine.size(); ++b)
    if (mine[b] != m.buckets[b]) differ.insert(b);
  reply.differ.assign(differ.begin(), differ.end());
  reply.entries = index_.entries_in(kDigestBits, differ, keep, kAntiEntropyEntriesMax);
  out_.sends.push_back(Send{from, std::move(reply)});
}

void Replica::on_digest_reply(Now now, const std::string& from, DigestReply& m) {
  auto it = outstanding_.find(m.corr);
  if (it == outstanding_.end() || it->second.peer != from ||
      it->second.kind != Outstanding::Kind::digest) {
    stats_.refused_messages++;
    return;
  }
  outstanding_.erase(it);
  if (m.differ.empty()) {
    ae_interval_ms_ = std::min(config_.anti_entropy_interval_ms_max, 2 * ae_interval_ms_);
    return;
  }
  ae_interval_ms_ = config_.anti_entropy_interval_ms;
  std::set<uint32_t> buckets;
  for (uint32_t b : m.differ)
    if (b < kDigestBuckets) buckets.insert(b);
  std::map<std::string, uint64_t> theirs(m.entries.begin(), m.entries.end());
  const RecordIndex::Keep keep = shared_with(from);
  std::vector<std::string> push, pull;
  std::set<std::string> seen;
  for (const auto& [id, fp] :
       index_.entries_in(kDigestBits, buckets, keep, kAntiEntropyEntriesMax)) {
    seen.insert(id);
    auto t = theirs.find(id);
    if (t == theirs.end() || t->second != fp) push.push_back(id);
    if (t != theirs.end() && t->second != fp) pull.push_back(id);
  }
  for (const auto& [id, fp] : theirs)
    if (!seen.contains(id) && is_job_id(id) && !tombstones_.contains(id)) pull.push_back(id);
  for (const std::string& id : push)
    if (auto rec = current_encoded(id)) queue_replicate(from, *rec, 0);
  if (!pull.empty()) fetch_from(now, from, pull, Outstanding::Why::pull, 0);
  stats_.anti_entropy_pushed += push.size();
  stats_.anti_entropy_pulled += pull.size();
  log(LogLine::Level::debug, "anti_entropy", "",
      from + ": pushed " + std::to_string(push.size()) + ", pulled " + std::to_string(pull.size()));
}

}  // namespace meshwork
