// The mesh's maintenance thread: ownership sweeps and takeover, hint replay, anti-entropy; see
// mesh.h.
#include <chrono>
#include <set>

#include "node/clock.h"
#include "node/log.h"
#include "node/mesh.h"

namespace meshwork {
namespace {

using spdlog::level::debug;
using spdlog::level::info;
using spdlog::level::warn;

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::optional<uint64_t> parse_hex16(const nlohmann::json& j) {
  if (!j.is_string() || j.get_ref<const std::string&>().size() != 16) return std::nullopt;
  uint64_t v = 0;
  for (char c : j.get_ref<const std::string&>()) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return std::nullopt;
    v = (v << 4) | uint64_t(d);
  }
  return v;
}

}  // namespace

void Mesh::maintenance_loop() {
  uint64_t next_sweep = 0, next_hints = 0, next_ae = 0;
  for (;;) {
    {
      std::unique_lock lock(wake_mu_);
      const uint64_t now = mono_ms();
      const uint64_t due = std::min({next_sweep, next_hints, next_ae});
      wake_cv_.wait_for(lock, std::chrono::milliseconds(due > now ? due - now : 0),
                        [&] { return stopping_ || wake_; });
      if (stopping_) return;
      if (wake_) next_sweep = 0;  // a membership change: sweep at once
      wake_ = false;
    }
    const uint64_t now = mono_ms();
    if (now >= next_sweep) {
      sweep();
      next_sweep = now + options_.sweep_interval_ms;
    }
    if (now >= next_hints) {
      replay_hints();
      next_hints = now + options_.hint_replay_interval_ms;
    }
    bool soon;
    {
      std::lock_guard lock(wake_mu_);
      soon = !ae_soon_.empty();
    }
    if (now >= next_ae || soon) {
      anti_entropy_round();
      if (now >= next_ae) next_ae = now + options_.anti_entropy_interval_ms;
    }
  }
}

// Starts what this node owns and takes over what a dead, departed or stalled claimant left.
void Mesh::sweep() {
  if (!ready()) return;
  auto topo = topology();
  const uint64_t now = wall_ms();
  std::set<std::string> taking_over;
  for (const auto& [id, e] : catalog_.unfinished()) {
    auto owner = topo->owner(id);
    if (!owner || *owner != self_) continue;
    if (e.state == JobState::queued || e.state == JobState::retry_wait) {
      if (!jobs_.is_active(id)) {
        if (auto rec = store_.get(id); rec.is_ok() && rec.value()) consider(*rec.value());
      }
      continue;
    }
    const bool expired = e.lease_until_ms + options_.lease_skew_ms < now;
    if (e.claim_node == self_) {
      if (expired && !jobs_.is_active(id)) take_over(id, "own lease expired on " + self_);
      continue;
    }
    const bool gone = !topo->usable(e.claim_node);
    if (gone || expired) {
      auto it = topo->members().find(e.claim_node);
      const std::string what = !gone ? "lease expired"
                               : it == topo->members().end()
                                   ? "gone"
                                   : std::string(gossip::to_string(it->second.state));
      taking_over.insert(id);
      take_over_after_read(id, "owner " + e.claim_node + " " + what + "; " + self_ + " takes over",
                           *topo);
    }
  }
  // Forget reads for jobs that no longer need a takeover here (settled by a copy just merged,
  // owned elsewhere now), and reads that never came back.
  std::lock_guard lock(wake_mu_);
  std::erase_if(takeover_reads_, [&](const auto& kv) {
    return !taking_over.contains(kv.first) ||
           mono_ms() > kv.second.started_ms + 2 * options_.peer_timeout_ms;
  });
}

// Before a takeover the other usable replicas are asked for their copies: the claimant may have
// finished and told one of them before it died, and a takeover on this node's stale `running`
// copy would start the handler again for nothing (docs/chaos.md, seed 3). When the last copy is
// merged the maintenance thread is woken, and the next sweep decides on the merged record:
// take_over() acts only on a record still `running`. A replica that does not answer within the
// peer timeout does not hold the takeover up for longer than that.
void Mesh::take_over_after_read(const std::string& id, const std::string& reason,
                                const Topology& topo) {
  std::vector<std::string> others;
  for (const std::string& m : topo.replicas(id)) {
    if (m != self_ && topo.usable(m)) others.push_back(m);
  }
  {
    std::lock_guard lock(wake_mu_);
    auto it = takeover_reads_.find(id);
    if (it != takeover_reads_.end()) {
      const bool waited_out = mono_ms() > it->second.started_ms + options_.peer_timeout_ms;
      if (it->second.left > 0 && !waited_out) return;  // still reading
      takeover_reads_.erase(it);
      others.clear();  // read (or waited out): decide now
    } else if (!others.empty()) {
      takeover_reads_[id] = TakeoverRead{others.size(), mono_ms()};
    }
  }
  if (others.empty()) {
    take_over(id, reason);
    return;
  }
  for (const std::string& peer : others) {
    pull_from(peer, id, [this, id] {
      {
        std::lock_guard lock(wake_mu_);
        auto it = takeover_reads_.find(id);
        if (it == takeover_reads_.end() || it->second.left == 0 || --it->second.left > 0) return;
        wake_ = true;  // the last copy is in: sweep again at once
      }
      wake_cv_.notify_all();
    });
  }
}

// The running attempt is over: the job goes back to retry_wait (due now) with the reason in its
// history, and runs again here as the next attempt once claimed.
void Mesh::take_over(const std::string& id, const std::string& reason) {
  if (options_.test_skip_takeover) return;  // the deliberately broken build of the chaos test
  const uint64_t now = wall_ms();
  auto applied = store_.update_sync(id, [&](const JobRecord* cur) -> std::optional<JobRecord> {
    if (cur == nullptr || cur->status.state != JobState::running) return std::nullopt;
    const uint32_t n = cur->status.attempt;
    const bool again = n < cur->max_attempts + kInterruptedAttemptsExtraMax;
    JobRecord next = *cur;
    next.status = JobStatus{again ? JobState::retry_wait : JobState::failed,
                            n,
                            self_,
                            now,
                            "attempt " + std::to_string(n) + " interrupted: " + reason,
                            again ? now : 0};
    next.add_history(next.status.state, self_, n, now, reason);
    next.updated_at_ms = now;
    return next;
  });
  if (!applied.is_ok() || !applied.value().changed) return;
  {
    std::lock_guard lock(stats_mu_);
    stats_.takeovers++;
  }
  log_event(info, "takeover", id, reason);
  replicate_async(*applied.value().after);
}

// Fetches `peer`'s copy of job `id` and merges it here (verified, never overwriting).
void Mesh::pull_from(const std::string& peer, const std::string& id, std::function<void()> done) {
  peers_.fetch(peer, id, [this, done = std::move(done)](Result<std::optional<std::string>> got) {
    if (!got.is_ok() || !got.value()) {
      if (done) done();
      return;
    }
    const Status s = merge_from_peer(decode_record(*got.value()), [done](Status, Applied, bool) {
      if (done) done();
    });
    if (!s.is_ok() && done) done();
  });
}

void Mesh::replay_hints() {
  auto topo = topology();
  for (const std::string& target : store_.hint_targets()) {
    if (!topo->usable(target)) continue;
    auto latch = std::make_shared<std::pair<std::mutex, std::condition_variable>>();
    auto left = std::make_shared<size_t>(0);
    for (const std::string& id : store_.hints_for(target, kHintsPerReplayMax)) {
      auto rec = store_.get(id);
      if (!rec.is_ok() || !rec.value()) {
        (void)store_.drop_hint(target, id);
        continue;
      }
      {
        std::lock_guard lock(latch->first);
        ++*left;
      }
      peers_.replicate(target, encode_record(*rec.value()),
                       [this, target, id, latch, left](ReplicateAck ack) {
                         if (ack.status.is_ok()) {
                           (void)store_.drop_hint(target, id);
                           std::lock_guard lock(stats_mu_);
                           stats_.hints_replayed++;
                         }
                         std::lock_guard lock(latch->first);
                         if (--*left == 0) latch->second.notify_all();
                       });
    }
    std::unique_lock lock(latch->first);
    latch->second.wait_for(lock, std::chrono::milliseconds(options_.peer_timeout_ms),
                           [&] { return *left == 0; });
  }
}

// The records both this node and `peer` should hold in the current view.
Catalog::Keep Mesh::shared_with(const std::string& peer, const Topology& topo) const {
  return [&topo, peer, this](const std::string& id) {
    auto list = topo.replicas(id);
    bool me = false, them = false;
    for (const std::string& m : list) {
      me = me || m == self_;
      them = them || m == peer;
    }
    return me && them;
  };
}

void Mesh::anti_entropy_round() {
  auto topo = topology();
  std::string peer;
  {
    std::lock_guard lock(wake_mu_);
    while (!ae_soon_.empty() && peer.empty()) {
      std::string p = *ae_soon_.begin();
      ae_soon_.erase(ae_soon_.begin());
      if (topo->usable(p)) peer = p;
    }
  }
  if (peer.empty()) {
    auto peers = topo->usable_peers();
    if (peers.empty()) return;
    peer = peers[ae_next_++ % peers.size()];
  }
  anti_entropy_with(peer, *topo);
}

// One exchange: our per-arc digests go to `peer`, which answers with the arcs that differ and its
// (id, fingerprint) pairs there; we push what it lacks or holds differently and pull what we lack
// or hold differently. Both sides merge, so one exchange converges the arcs it covered.
void Mesh::anti_entropy_with(const std::string& peer, const Topology& topo) {
  const Catalog::Keep keep = shared_with(peer, topo);
  const auto mine = catalog_.digests(kDigestBits, keep);
  nlohmann::json digests = nlohmann::json::array();
  for (uint64_t d : mine) digests.push_back(hex16(d));
  auto got = peers_.call(peer, "/internal/v1/digest",
                         nlohmann::json{{"bits", kDigestBits}, {"digests", digests}}.dump(),
                         options_.peer_timeout_ms);
  {
    std::lock_guard lock(stats_mu_);
    stats_.anti_entropy_rounds++;
  }
  if (!got.is_ok()) return;
  auto j = nlohmann::json::parse(got.value(), nullptr, false);
  if (!j.is_object() || !j["differ"].is_array() || !j["entries"].is_array()) return;
  std::set<uint32_t> buckets;
  for (const auto& b : j["differ"])
    if (b.is_number_unsigned() && b.get<uint64_t>() < mine.size())
      buckets.insert(b.get<uint32_t>());
  if (buckets.empty()) return;
  std::map<std::string, uint64_t> theirs;
  for (const auto& e : j["entries"]) {
    if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !is_job_id(e[0].get<std::string>()))
      continue;
    if (auto fp = parse_hex16(e[1])) theirs[e[0].get<std::string>()] = *fp;
  }
  std::vector<std::string> push, pull;
  std::set<std::string> seen;
  for (const auto& [id, fp] :
       catalog_.entries_in(kDigestBits, buckets, keep, kAntiEntropyEntriesMax)) {
    seen.insert(id);
    auto it = theirs.find(id);
    if (it == theirs.end() || it->second != fp) push.push_back(id);
    if (it != theirs.end() && it->second != fp) pull.push_back(id);
  }
  for (const auto& [id, fp] : theirs)
    if (!seen.contains(id)) pull.push_back(id);
  for (const std::string& id : push)
    if (auto rec = store_.get(id); rec.is_ok() && rec.value())
      send_to(peer, *rec.value(), encode_record(*rec.value()), [](const ReplicateAck&) {});
  for (const std::string& id : pull) pull_from(peer, id);
  std::lock_guard lock(stats_mu_);
  stats_.anti_entropy_pushed += push.size();
  stats_.anti_entropy_pulled += pull.size();
  if (!push.empty() || !pull.empty())
    log_event(debug, "anti_entropy", "",
              peer + ": pushed " + std::to_string(push.size()) + ", pulled " +
                  std::to_string(pull.size()));
}

}  // namespace meshwork
