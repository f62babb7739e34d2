// The replica cores in the simulator; see replica_sim.h.
#include "simulations/sim/replica_sim.h"

#include <algorithm>
#include <cstring>

#include "dht/hash.h"
#include "simulations/sim/workload.h"

namespace meshwork::sim {
namespace {

constexpr uint64_t fsync_ms_min = 1, fsync_ms_max = 3;
constexpr uint64_t connect_error_ms_min = 5, connect_error_ms_max = 50;
constexpr uint64_t notice_stop_ms_min = 1, notice_stop_ms_max = 10;  // a handler sees its token
constexpr uint64_t sign_ms_min = 0, sign_ms_max = 5;  // an outcome waits for its signature
constexpr size_t header_bytes = 4;  // the sending instance, so a bounce finds its own process

MemberState state_of(gossip::MemberEvent::Kind kind) {
  using K = gossip::MemberEvent::Kind;
  switch (kind) {
    case K::joined:
    case K::updated:
    case K::alive:
      return MemberState::alive;
    case K::suspect:
      return MemberState::suspect;
    case K::dead:
      return MemberState::dead;
    case K::left:
      return MemberState::left;
  }
  return MemberState::dead;
}

void add(ReplicaStats& a, const ReplicaStats& b) {
  a.submitted += b.submitted, a.duplicates += b.duplicates, a.rejected += b.rejected;
  a.retries_requested += b.retries_requested;
  a.attempts_started += b.attempts_started, a.succeeded += b.succeeded, a.failed += b.failed;
  a.retried += b.retried, a.cancelled += b.cancelled;
  a.replicate_sent += b.replicate_sent, a.replicate_failed += b.replicate_failed;
  a.replicate_received += b.replicate_received, a.quorum_failures += b.quorum_failures;
  a.takeovers += b.takeovers, a.hints_stored += b.hints_stored;
  a.hints_replayed += b.hints_replayed, a.anti_entropy_rounds += b.anti_entropy_rounds;
  a.anti_entropy_pushed += b.anti_entropy_pushed, a.anti_entropy_pulled += b.anti_entropy_pulled;
  a.read_repairs += b.read_repairs, a.claims_confirmed += b.claims_confirmed;
  a.claims_refused += b.claims_refused, a.backpressure_refusals += b.backpressure_refusals;
  a.submissions_parked += b.submissions_parked, a.parked_refusals += b.parked_refusals;
  a.outcomes_with_claim += b.outcomes_with_claim;
  a.outcomes_with_claim_taken += b.outcomes_with_claim_taken;
  a.outcomes_refused_here += b.outcomes_refused_here;
  a.superseded_stops += b.superseded_stops, a.refused_records += b.refused_records;
  a.refused_messages += b.refused_messages;
  a.expired += b.expired, a.tombstone_refusals += b.tombstone_refusals;
  a.stand_ins_dropped += b.stand_ins_dropped;
  a.co_runs_started += b.co_runs_started, a.verdicts_decided += b.verdicts_decided;
  a.verdicts_disagreed += b.verdicts_disagreed;
}

std::string frame(uint32_t instance, const Message& m) {
  std::string bytes(header_bytes, '\0');
  std::memcpy(bytes.data(), &instance, header_bytes);
  bytes += encode_message(m);
  return bytes;
}

uint32_t frame_instance(const std::string& bytes) {
  uint32_t instance = 0;
  if (bytes.size() >= header_bytes) std::memcpy(&instance, bytes.data(), header_bytes);
  return instance;
}

Result<Message> unframe(const std::string& bytes) {
  if (bytes.size() < header_bytes) return {Code::malformed, "short frame"};
  return decode_message(std::string_view(bytes).substr(header_bytes));
}

// The broken build's decoding (ReplicaOptions::keep_round false): every record in round 0.
void drop_round(SharedRecord& r) {
  if (r->status.round == 0 && r->status.base == 0) return;
  JobRecord copy = *r;
  copy.status.round = copy.status.base = 0;
  r = SharedRecord::of(std::move(copy));
}

void drop_rounds(Message& m) {
  if (auto* rep = std::get_if<Replicate>(&m)) {
    for (SharedRecord& r : rep->records) drop_round(r);
    for (IfClaimed& c : rep->if_claimed) c.claim.round = c.claim.base = 0;
  }
  if (auto* ack = std::get_if<ReplicateAck>(&m))
    for (ItemAck& a : ack->items)
      if (a.copy) drop_round(*a.copy);
  if (auto* fr = std::get_if<FetchReply>(&m))
    for (auto& r : fr->records)
      if (r) drop_round(*r);
}

}  // namespace

std::string honest_result(uint32_t attempt) {
  return "{\"attempt\":" + std::to_string(attempt) + "}";
}

namespace {

// A redundant job's handler outcome: the same on every runner of an attempt, failed for about
// `fail_fraction` of (job, attempt) pairs.
JobState deterministic_outcome(const std::string& id, uint32_t attempt, double fail_fraction) {
  const std::string h = blake2b_hex(id + "/" + std::to_string(attempt));
  const double unit = static_cast<double>(std::stoul(h.substr(0, 6), nullptr, 16)) / 0x1000000;
  return unit < fail_fraction ? JobState::failed : JobState::succeeded;
}

}  // namespace

ReplicaSim::ReplicaSim(Cluster& cluster, ReplicaOptions o, Random rng)
    : c_(cluster), o_(o), rng_(rng), nodes_(cluster.size()) {
  for (Node& n : nodes_) n.skew_ms = rng_.below(o_.clock_skew_ms_max + 1);
  while (liars_.size() < std::min<size_t>(o_.liars, nodes_.size()))  // no draw without liars
    liars_.insert(static_cast<uint32_t>(rng_.below(nodes_.size())));
  if (!nodes_.empty()) nodes_[0].offset_ms = o_.clock_offset_ms;
  if (nodes_.size() > 1) nodes_[1].offset_ms = -o_.clock_offset_ms;
  c_.lifecycle([this](uint32_t i, bool up) { up ? boot(i) : crash(i); });
  c_.receive_app([this](uint32_t to, uint32_t from, const std::string& bytes) {
    on_app(to, from, bytes);
  });
  c_.app_undelivered([this](uint32_t to, uint32_t from, const std::string& bytes) {
    on_undelivered(to, from, bytes);
  });
}

Now ReplicaSim::now_of(uint32_t i) const {
  const uint64_t offset = static_cast<uint64_t>(nodes_[i].offset_ms);  // wraps: adds a negative
  return Now{c_.now_ms(), wall_base_ms + c_.now_ms() + nodes_[i].skew_ms + offset};
}

ReplicaStats ReplicaSim::stats() const {
  ReplicaStats s = dead_stats_;
  for (const Node& n : nodes_)
    if (n.replica) add(s, n.replica->stats());
  return s;
}

std::vector<std::string> ReplicaSim::running_jobs(uint32_t i) const {
  std::vector<std::string> ids;
  for (const auto& [key, h] : nodes_[i].handlers) ids.push_back(key.first);
  return ids;
}

void ReplicaSim::boot(uint32_t i) {
  Node& n = nodes_[i];
  ++n.instance;
  ReplicaConfig cfg;
  cfg.placement.vnodes = o_.vnodes;
  cfg.workers = o_.workers;
  cfg.record_cache_max = o_.record_cache;
  cfg.lease_ms = o_.lease_ms;
  cfg.take_over = o_.take_over;
  cfg.reap_after_ms = o_.reap_after_ms;
  if (o_.retain_ms > 0) cfg.retain_ms = o_.retain_ms;
  cfg.seed = rng_.next();
  cfg.receipt_check = sim_receipt_check;
  cfg.joining = c_.up_count() > 1;  // the first node of the mesh starts alone
  n.replica = std::make_unique<Replica>(node_name(i), cfg, n.disk);
  for (const auto& [id, rec] : n.disk.records()) n.replica->load(*rec, *rec.bytes);
  for (const auto& [target, id] : n.disk.hints()) n.replica->load_hint(target, id);
  n.erased.clear();
  for (const auto& [id, at] : n.disk.tombstones()) {
    n.replica->load_tombstone(id, at);
    n.erased.insert(id);
  }
  n.replica->start(now_of(i));
  mix(0xb007);
  mix(i);
  drain(i);
  wake(i, false);
}

void ReplicaSim::crash(uint32_t i) {
  Node& n = nodes_[i];
  if (!n.replica) return;
  add(dead_stats_, n.replica->stats());
  n.replica.reset();
  for (const auto& [key, h] : n.handlers) {
    HandlerRun& run = ledger_[key.first].runs[h.run];
    run.end_ms = c_.now_ms();
    run.crashed = true;
  }
  n.handlers.clear();
  n.disk.lose_unsynced();
  n.stalled = false;
  n.queued.clear();
  n.wake_ms = never_ms;
  n.sync_at_ms = 0;
  ++n.instance;
}

void ReplicaSim::on_member(uint32_t viewer, const gossip::MemberEvent& e) {
  ++member_events_;
  input(viewer, [name = e.member.name, state = state_of(e.kind)](Replica& r, Now now) {
    r.set_member(now, name, state);
  });
}

void ReplicaSim::submit(uint32_t i, uint64_t request, JobRecord rec) {
  input(i, [request, rec = std::move(rec)](Replica& r, Now now) {
    r.submit(now, request, {rec});
  });
}

void ReplicaSim::cancel(uint32_t i, uint64_t request, const std::string& id) {
  input(i, [request, id](Replica& r, Now now) { r.cancel(now, request, id); });
}

void ReplicaSim::retry(uint32_t i, uint64_t request, const std::string& id) {
  input(i, [request, id](Replica& r, Now now) { r.retry(now, request, id); });
}

void ReplicaSim::read(uint32_t i, uint64_t request, const std::string& id) {
  input(i, [request, id](Replica& r, Now now) { r.read(now, request, id); });
}

void ReplicaSim::stall(uint32_t i, uint64_t until_ms) {
  Node& n = nodes_[i];
  if (!n.replica) return;
  n.stalled = true;
  c_.at(until_ms, [this, i, instance = n.instance] {
    if (nodes_[i].instance == instance) unstall(i);
  });
}

void ReplicaSim::unstall(uint32_t i) {
  Node& n = nodes_[i];
  n.stalled = false;
  while (!n.queued.empty() && n.replica) {
    Input f = std::move(n.queued.front());
    n.queued.pop_front();
    f(*n.replica, now_of(i));
    drain(i);
  }
  wake(i, false);
}

void ReplicaSim::input(uint32_t i, Input f) {
  Node& n = nodes_[i];
  if (!n.replica) return;
  if (n.stalled) {
    n.queued.push_back(std::move(f));
    return;
  }
  f(*n.replica, now_of(i));
  drain(i);
  wake(i, false);
}

void ReplicaSim::wake(uint32_t i, bool after_tick) {
  Node& n = nodes_[i];
  if (!n.replica || n.stalled) return;
  const uint64_t now = c_.now_ms();
  const uint64_t d = std::max(n.replica->next_deadline_ms(), after_tick ? now + 1 : now);
  if (d >= n.wake_ms) return;
  n.wake_ms = d;
  c_.at(d, [this, i, instance = n.instance] {
    Node& m = nodes_[i];
    if (m.instance != instance || m.wake_ms != c_.now_ms()) return;  // stale
    m.wake_ms = never_ms;
    if (m.stalled) return;  // woken again when the stall ends
    m.replica->tick(now_of(i));
    drain(i);
    wake(i, true);
  });
}

// Hands every action to the disk, the network, the clients and the executor, in that order.
// Replies go out last, after the output is cleared: a client may send the next request at once.
void ReplicaSim::drain(uint32_t i) {
  Output& out = nodes_[i].replica->output();
  if (trace_out_ != nullptr) trace(i, out);
  persist(i, out.persists);
  for (Send& s : out.sends) send(i, s);
  for (const Start& s : out.starts) start_handler(i, s);
  for (const Stop& s : out.stops) stop_handler(i, s);
  for (const LogLine& l : out.logs) {
    ++log_events_[l.event];
    if (l.event == "takeover" || l.event == "claim_not_confirmed") note(i, l.id, l.event, l.detail);
    if (log_) log_(i, l);
  }
  std::vector<Reply> replies = std::move(out.replies);
  out.clear();
  for (const Reply& r : replies) {
    mix(r.request);
    for (const ItemResult& item : r.items) mix(static_cast<uint64_t>(item.status.code()));
    if (reply_) reply_(i, r);
  }
}

void ReplicaSim::persist(uint32_t i, std::vector<Persist>& persists) {
  if (persists.empty()) return;
  Node& n = nodes_[i];
  const uint64_t seq = persists.back().seq;
  for (Persist& p : persists) {
    mix((p.seq << 2) | static_cast<uint64_t>(p.kind));
    check_retention(i, p);
    if (p.kind == Persist::Kind::record) {
      std::vector<uint32_t>& w = writers_[p.id];
      if (std::find(w.begin(), w.end(), i) == w.end()) w.push_back(i);
      if (p.record->status.state == JobState::succeeded) {
        JobLedger& l = ledger_[p.id];
        if (l.succeeded_ms == never_ms) {
          l.succeeded_ms = c_.now_ms();
          l.succeeded_node = node_index(p.record->status.node);
          l.succeeded_attempt = p.record->status.attempt;
        }
      }
    }
    n.disk.write(std::move(p));
  }
  // Group commit: one fsync at a time, in order, each covering what was written before it.
  n.sync_at_ms = std::max(c_.now_ms() + rng_.between(fsync_ms_min, fsync_ms_max), n.sync_at_ms);
  c_.at(n.sync_at_ms, [this, i, instance = n.instance, seq] {
    Node& m = nodes_[i];
    if (m.instance != instance) return;  // crashed meanwhile: those writes are lost
    m.disk.sync(seq);
    input(i, [seq](Replica& r, Now now) { r.durable(now, seq, Status::ok()); });
  });
}

void ReplicaSim::check_retention(uint32_t i, const Persist& p) {
  Node& n = nodes_[i];
  const std::string at = " at " + std::to_string(c_.now_ms()) + " ms";
  if (p.kind == Persist::Kind::record) {
    if (is_terminal(p.record->status.state)) {
      auto [it, fresh] = terminal_at_.try_emplace(p.id, p.record->status.at_ms);
      if (!fresh) it->second = std::min(it->second, p.record->status.at_ms);
    }
    if (n.erased.contains(p.id) && resurrections_++ == 0)
      first_resurrection_ = "n" + std::to_string(i) + " stored " + p.id.substr(0, 12) +
                            " again after erasing it" + at;
  }
  if (p.kind == Persist::Kind::tombstone_drop) n.erased.erase(p.id);
  if (p.kind != Persist::Kind::erase) return;
  n.erased.insert(p.id);
  const auto t = terminal_at_.find(p.id);
  const uint64_t retain = n.replica->config().retain_ms;
  const bool early =
      t == terminal_at_.end() || t->second + retain > now_of(i).wall_ms + o_.clock_skew_ms_max;
  if (early && early_erasures_++ == 0)
    first_early_erasure_ = "n" + std::to_string(i) + " erased " + p.id.substr(0, 12) +
                           (t == terminal_at_.end() ? " before any copy was terminal"
                                                    : " before it was terminal for retain_ms") +
                           at;
}

void ReplicaSim::send(uint32_t i, Send& s) {
  const uint32_t to = node_index(s.to);
  mix(to);
  mix((corr_of(s.message) << 3) | s.message.index());
  ++messages_;
  if (const Fetch* f = std::get_if<Fetch>(&s.message))
    for (const std::string& id : f->ids) note(i, id, "fetch", s.to);
  if (to >= c_.size() || !c_.up(to) || c_.network().cut_off(i, to)) {
    // Connection refused (down) or timed out (cut off): the transport tells the core.
    const uint64_t at = c_.now_ms() + rng_.between(connect_error_ms_min, connect_error_ms_max);
    c_.at(at, [this, i, instance = nodes_[i].instance, to = s.to, m = std::move(s.message)] {
      bounce(i, instance, to, m);
    });
    return;
  }
  c_.send_app(i, to, frame(nodes_[i].instance, s.message));
}

void ReplicaSim::bounce(uint32_t from, uint32_t instance, const std::string& to, Message m) {
  if (nodes_[from].instance != instance) return;
  ++undeliverable_;
  input(from, [to, m = std::move(m)](Replica& r, Now now) { r.undeliverable(now, to, m); });
}

void ReplicaSim::on_app(uint32_t to, uint32_t from, const std::string& bytes) {
  Result<Message> m = unframe(bytes);
  if (!m.is_ok()) {
    ++decode_failures_;
    return;
  }
  if (!o_.keep_round) drop_rounds(m.value());
  input(to,
        [this, to, from = node_name(from), m = std::move(m).value()](Replica& r, Now now) mutable {
          if (const Fetch* f = std::get_if<Fetch>(&m))  // answered now (a stalled core: later)
            for (const std::string& id : f->ids) note(to, id, "fetch_answered", from);
          r.receive(now, from, std::move(m));
        });
}

void ReplicaSim::on_undelivered(uint32_t to, uint32_t from, const std::string& bytes) {
  Result<Message> m = unframe(bytes);
  if (!m.is_ok()) {
    ++decode_failures_;
    return;
  }
  bounce(from, frame_instance(bytes), node_name(to), std::move(m).value());
}

void ReplicaSim::start_handler(uint32_t i, const Start& s) {
  Node& n = nodes_[i];
  mix(s.id);
  mix(s.attempt);
  // Invariant 7: the node's own copy must say this attempt runs, claimed by this node (or, for a
  // redundant job's co-run, by another runner).
  const std::optional<JobRecord> mine = n.replica->current(s.id);
  if (!mine || mine->status.state != JobState::running || mine->status.attempt != s.attempt ||
      (mine->status.node != node_name(i) && mine->redundancy <= 1)) {
    if (superseded_starts_++ == 0) {
      first_superseded_start_ =
          "n" + std::to_string(i) + " started " + s.id.substr(0, 12) + " attempt " +
          std::to_string(s.attempt) + " at " + std::to_string(c_.now_ms()) + " ms, its copy: " +
          (mine ? std::string(state_name(mine->status.state)) + " attempt " +
                      std::to_string(mine->status.attempt) + " by " + mine->status.node
                : std::string("none"));
    }
  }
  // A delayed job starts no earlier than its run_after, by the starting node's own wall clock.
  if (s.record->run_after_ms() > now_of(i).wall_ms && early_starts_++ == 0)
    first_early_start_ = "n" + std::to_string(i) + " started " + s.id.substr(0, 12) + " " +
                         std::to_string(s.record->run_after_ms() - now_of(i).wall_ms) +
                         " ms before its run_after";
  JobLedger& l = ledger_[s.id];
  l.redundancy = s.record->redundancy;
  // A retry (a new round, job_record.h) starts the job afresh: its first start duplicates none of
  // an earlier round's, which ended cancelled or failed (or were cut short by a crash).
  const uint32_t round = s.record->status.round;
  if (std::any_of(l.runs.begin(), l.runs.end(), [&](const HandlerRun& r) {
        return r.round == round && r.outcome != JobState::failed;
      }))
    ++l.duplicate_starts;
  if (std::find(l.attempts.begin(), l.attempts.end(), s.attempt) != l.attempts.end())
    ++l.same_attempt_starts;
  l.attempts.push_back(s.attempt);
  ++l.starts;
  l.runs.push_back(HandlerRun{i, s.attempt, c_.now_ms(), round});
  if (n.handlers.size() >= o_.workers) ++executor_overflows_;
  const uint64_t serial = ++serial_;
  n.handlers[{s.id, s.attempt}] = Handler{serial, false, l.runs.size() - 1};
  const uint64_t run_ms = rng_.chance(o_.long_fraction)
                              ? rng_.between(o_.lease_ms * 11 / 10, o_.lease_ms * 5 / 2)
                          : rng_.chance(o_.quick_fraction)
                              ? rng_.between(0, o_.quick_ms_max)
                              : rng_.between(o_.run_ms_min, o_.run_ms_max);
  JobState outcome = rng_.chance(o_.fail_fraction) ? JobState::failed : JobState::succeeded;
  if (s.record->redundancy > 1) outcome = deterministic_outcome(s.id, s.attempt, o_.fail_fraction);
  if (!sim_signature_ok(*s.record)) outcome = JobState::failed;  // as JobRunner verifies first
  c_.at(c_.now_ms() + run_ms, [this, i, instance = n.instance, id = s.id, attempt = s.attempt,
                               serial, outcome] {
    end_handler(i, instance, id, attempt, serial, outcome,
                outcome == JobState::failed ? "sim: the handler failed" : "");
  });
}

void ReplicaSim::stop_handler(uint32_t i, const Stop& s) {
  Node& n = nodes_[i];
  mix((static_cast<uint64_t>(s.why) << 32) | s.attempt);
  const auto it = n.handlers.find({s.id, s.attempt});
  if (it == n.handlers.end() || it->second.stopping) return;
  it->second.stopping = true;
  const bool timed_out = s.why == Stop::Why::timed_out;
  const uint64_t at = c_.now_ms() + rng_.between(notice_stop_ms_min, notice_stop_ms_max);
  c_.at(at, [this, i, instance = n.instance, id = s.id, attempt = s.attempt,
             serial = it->second.serial, timed_out] {
    end_handler(i, instance, id, attempt, serial,
                timed_out ? JobState::failed : JobState::cancelled,
                timed_out ? "timed out" : "stopped");
  });
}

void ReplicaSim::end_handler(uint32_t i, uint32_t instance, const std::string& id,
                             uint32_t attempt, uint64_t serial, JobState outcome,
                             std::string error) {
  Node& n = nodes_[i];
  const auto it = n.handlers.find({id, attempt});
  if (n.instance != instance || it == n.handlers.end() || it->second.serial != serial) return;
  const bool lie = liars_.contains(i) && outcome != JobState::cancelled;
  if (lie) outcome = JobState::succeeded;
  JobLedger& l = ledger_[id];
  HandlerRun& run = l.runs[it->second.run];
  run.end_ms = c_.now_ms();
  run.outcome = outcome;
  n.handlers.erase(it);
  if (outcome == JobState::succeeded) ++l.succeeded;
  if (outcome == JobState::failed) ++l.failed;
  const Now now = now_of(i);
  Outcome o;
  o.id = id;
  o.attempt = attempt;
  o.result.attempt = attempt;
  o.result.outcome = outcome;
  if (lie)
    o.result.result =
        "{\"attempt\":" + std::to_string(attempt) + ",\"lie\":" + std::to_string(i) + "}";
  else if (outcome == JobState::succeeded)
    o.result.result = honest_result(attempt);
  else
    o.result.error = std::move(error);
  o.result.at_ms = now.wall_ms;
  const std::string& text = outcome == JobState::succeeded ? o.result.result : o.result.error;
  o.result.receipt = Receipt{id, node_name(i), attempt, blake2b_hex(text), "sim", "sim"};
  // As the node's driver: the worker is free at once (handler_ended), the outcome reaches the
  // core once signed, up to a receipt linger later (node/replica_driver.h).
  input(i, [id, attempt](Replica& r, Now t) { r.handler_ended(t, id, attempt); });
  c_.at(c_.now_ms() + rng_.between(sign_ms_min, sign_ms_max),
        [this, i, instance, o = std::move(o)]() mutable {
          if (nodes_[i].instance != instance) return;  // crashed: the outcome is lost
          input(i, [o = std::move(o)](Replica& r, Now t) mutable {
            r.handler_done(t, std::move(o));
          });
        });
}

namespace {

// The ids a message carries, to trace one job through the mesh.
std::vector<std::string> ids_in(const Message& m) {
  std::vector<std::string> ids;
  std::visit(
      [&](const auto& msg) {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, Replicate>)
          for (const SharedRecord& r : msg.records) ids.push_back(r->id);
        if constexpr (std::is_same_v<T, ReplicateAck>)
          for (const ItemAck& a : msg.items)
            if (a.copy) ids.push_back((*a.copy)->id);
        if constexpr (std::is_same_v<T, Fetch>) ids = msg.ids;
        if constexpr (std::is_same_v<T, FetchReply>)
          for (const auto& r : msg.records)
            if (r) ids.push_back((*r)->id);
        if constexpr (std::is_same_v<T, DigestReply>)
          for (const auto& [id, fp] : msg.entries) ids.push_back(id);
      },
      m);
  return ids;
}

}  // namespace

void ReplicaSim::trace(uint32_t i, const Output& out) {
  std::ostream& o = *trace_out_;
  const auto match = [&](const std::string& id) { return id.starts_with(trace_prefix_); };
  const std::string at = std::to_string(c_.now_ms()) + " ms n" + std::to_string(i) + " ";
  const auto status = [](const JobRecord& r) {
    const std::string round = r.status.round == 0 ? "" : " round " + std::to_string(r.status.round);
    return std::string(state_name(r.status.state)) + " a" + std::to_string(r.status.attempt) +
           round + " by " + r.status.node + " claim a" + std::to_string(r.claim.attempt) + "/" +
           r.claim.node;
  };
  for (const Persist& p : out.persists) {
    if (!match(p.id)) continue;
    o << at << "persist seq " << p.seq;
    if (p.kind == Persist::Kind::record) o << " record " << status(*p.record);
    if (p.kind == Persist::Kind::hint_put || p.kind == Persist::Kind::hint_drop)
      o << (p.kind == Persist::Kind::hint_put ? " hint for " : " hint dropped for ") << p.target;
    if (p.kind == Persist::Kind::erase) o << " erased";
    if (p.kind == Persist::Kind::drop) o << " stand-in copy dropped";
    if (p.kind == Persist::Kind::tombstone_drop) o << " tombstone dropped";
    o << "; replicas here:";
    for (const std::string& r : nodes_[i].replica->placement().replicas(p.id)) o << " " << r;
    o << "\n";
  }
  for (const Send& s : out.sends) {
    for (const std::string& id : ids_in(s.message)) {
      if (!match(id)) continue;
      o << at << "send " << message_name(s.message) << " corr " << corr_of(s.message) << " to "
        << s.to << (c_.up(node_index(s.to)) ? "" : " (down)") << "\n";
      break;
    }
  }
  for (const Start& s : out.starts)
    if (match(s.id)) o << at << "start attempt " << s.attempt << "\n";
  for (const Stop& s : out.stops)
    if (match(s.id)) o << at << "stop attempt " << s.attempt << " why " << int(s.why) << "\n";
  for (const LogLine& l : out.logs)
    if (match(l.id)) o << at << "log " << l.event << ": " << l.detail << "\n";
}

void ReplicaSim::note(uint32_t i, const std::string& id, std::string event, std::string detail) {
  if (id.empty()) return;
  ledger_[id].notes.push_back(JobNote{c_.now_ms(), i, std::move(event), std::move(detail)});
}

void ReplicaSim::mix(uint64_t v) {
  for (int b = 0; b < 8; ++b) {
    digest_ ^= (v >> (8 * b)) & 0xff;
    digest_ *= 0x100000001b3ull;
  }
}

void ReplicaSim::mix(std::string_view s) {
  for (const char ch : s) {
    digest_ ^= static_cast<uint8_t>(ch);
    digest_ *= 0x100000001b3ull;
  }
}

}  // namespace meshwork::sim
