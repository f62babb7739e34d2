// A deterministic stage for the replica core (dht/replica.h): N cores on manual time, each with
// an in-memory disk that syncs when told, messages carried through the real codec over a network
// that can cut links, and handlers that end when the test says. Scenario tests drive it step by
// step and assert on what each node holds, started and stopped.
//
// Thread-safety: none. Determinism: no clock, no threads; the only randomness is the cores' seeded
// jitter.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "dht/hash.h"
#include "dht/replica.h"

namespace meshwork::stage {

// A fake envelope: its id is real (BLAKE2b of the job text and key), its signature a marker (the
// core does not verify signatures: the node does, at entry and where a job runs). `priority` and
// `delay_ms` go into the signed text only when they differ from the defaults.
inline JobRecord job(int n, uint64_t now_ms, const std::string& entry = "n1",
                     uint64_t timeout_ms = 60'000, uint32_t priority = kPriorityDefault,
                     uint64_t delay_ms = 0) {
  JobSpec spec;
  spec.type = "echo";
  spec.payload = {{"n", n}};
  spec.nonce = "nonce-" + std::to_string(n);
  spec.created_at_ms = now_ms;
  spec.timeout_ms = timeout_ms;
  spec.priority = priority;
  spec.delay_ms = delay_ms;
  nlohmann::json text = {{"type", spec.type},
                         {"payload", spec.payload},
                         {"nonce", spec.nonce},
                         {"created_at", now_ms},
                         {"timeout_ms", timeout_ms}};
  if (priority != kPriorityDefault) text["priority"] = priority;
  if (delay_ms > 0) text["delay_ms"] = delay_ms;
  Envelope env{text.dump(), std::string(32, 'k'), std::string(64, 's')};
  return make_record(env, spec, entry, now_ms);
}

// A job of redundancy `k` (the "redundancy" field in its signed text), else as job().
inline JobRecord redundant_job(int n, uint64_t now_ms, uint32_t k, uint64_t delay_ms = 0) {
  JobRecord r = job(n, now_ms, "n1", 60'000, kPriorityDefault, delay_ms);
  nlohmann::json text = nlohmann::json::parse(r.envelope.job);
  text["redundancy"] = k;
  JobSpec spec;
  spec.type = r.type;
  spec.payload = text["payload"];
  spec.nonce = text["nonce"];
  spec.created_at_ms = now_ms;
  spec.timeout_ms = r.timeout_ms;
  spec.redundancy = k;
  spec.delay_ms = delay_ms;
  Envelope env{text.dump(), r.envelope.public_key, r.envelope.signature};
  return make_record(env, spec, "n1", now_ms);
}

// The same signed job submitted again, through `entry` at `now_ms` (as the node admits it).
inline JobRecord again(const JobRecord& r, const std::string& entry, uint64_t now_ms) {
  JobRecord a = r;
  a.status = JobStatus{JobState::queued, 0, entry, now_ms, {}, 0};
  a.claim = {};
  a.cancel_round = 0;
  a.results.clear();
  a.history.clear();
  a.add_history(JobState::queued, entry, 0, now_ms, kSubmittedReason);
  a.updated_at_ms = now_ms;
  return a;
}

struct Disk final : RecordReader {
  std::map<std::string, JobRecord> records;  // durable
  std::map<std::pair<std::string, std::string>, bool> hints;
  std::map<std::string, uint64_t> tombstones;  // erased jobs: id → when
  std::vector<Persist> pending;  // written, not yet synced
  mutable size_t reads = 0;      // read() calls: what the core's record cache did not serve
  std::optional<JobRecord> read(const std::string& id) const override {
    ++reads;
    auto it = records.find(id);
    if (it == records.end()) return std::nullopt;
    return it->second;
  }
};

struct Node {
  std::string name;
  Disk disk;
  std::unique_ptr<Replica> core;
  bool up = true;
  bool frozen = false;  // a stalled process: no input reaches it, nothing leaves it
  bool slow_disk = false;  // its writes wait unsynced, and so do the acks that need them
  std::map<uint64_t, Reply> replies;
  std::vector<Start> starts;
  std::vector<Stop> stops;
  std::set<std::string> running;  // handlers started and not ended
  std::vector<LogLine> logs;
  int64_t wall_offset_ms = 0;  // Stage::skew
};

class Stage {
 public:
  explicit Stage(size_t n, ReplicaConfig config = {}) : config_(config) {
    for (size_t i = 1; i <= n; ++i) nodes_.push_back(std::make_unique<Node>());
    for (size_t i = 0; i < n; ++i) {
      nodes_[i]->name = "n" + std::to_string(i + 1);
      boot(i);
    }
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < n; ++j)
        if (i != j) core(i).set_member(now(i), name(j), MemberState::alive);
    settle();
  }

  [[nodiscard]] Now now() const { return Now{mono_ms_, 1'700'000'000'000ull + mono_ms_}; }
  // Node i's clock: the stage's, with its wall clock set off by skew().
  [[nodiscard]] Now now(size_t i) const {
    const Now t = now();
    return Now{t.mono_ms, t.wall_ms + static_cast<uint64_t>(node(i).wall_offset_ms)};
  }
  // From now on node i's wall clock reads `offset_ms` (signed) off the stage's.
  void skew(size_t i, int64_t offset_ms) { node(i).wall_offset_ms = offset_ms; }
  [[nodiscard]] size_t size() const { return nodes_.size(); }
  [[nodiscard]] Node& node(size_t i) { return *nodes_[i]; }
  [[nodiscard]] const Node& node(size_t i) const { return *nodes_[i]; }
  [[nodiscard]] Replica& core(size_t i) { return *nodes_[i]->core; }
  [[nodiscard]] const std::string& name(size_t i) const { return nodes_[i]->name; }
  [[nodiscard]] size_t index(const std::string& name) const {
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (nodes_[i]->name == name) return i;
    return SIZE_MAX;
  }

  // Links that carry nothing, both ways.
  void cut(size_t a, size_t b) { cut_.insert({std::min(a, b), std::max(a, b)}); }
  void heal() { cut_.clear(); }
  [[nodiscard]] bool linked(size_t a, size_t b) const {
    return !cut_.contains({std::min(a, b), std::max(a, b)});
  }

  // Gossip's verdict, told to every up node but `subject` (and not to frozen ones).
  void tell_all(size_t subject, MemberState state) {
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (i != subject && node(i).up && !node(i).frozen) {
        core(i).set_member(now(i), name(subject), state);
        drain(i);
      }
  }

  void crash(size_t i) {
    Node& n = node(i);
    n.up = false;
    n.disk.pending.clear();  // what was not synced is lost
    n.running.clear();
    n.core.reset();
  }
  void restart(size_t i) {
    boot(i);
    for (size_t j = 0; j < nodes_.size(); ++j)
      if (j != i && node(j).up) core(i).set_member(now(i), name(j), MemberState::alive);
    drain(i);
  }

  uint64_t submit(size_t i, JobRecord r) {
    std::vector<JobRecord> v;
    v.push_back(std::move(r));
    return submit_all(i, std::move(v));
  }
  // One submission of several records (a batch).
  uint64_t submit_all(size_t i, std::vector<JobRecord> records) {
    const uint64_t request = next_request_++;
    core(i).submit(now(i), request, std::move(records));
    drain(i);
    return request;
  }
  uint64_t read(size_t i, const std::string& id) {
    const uint64_t request = next_request_++;
    core(i).read(now(i), request, id);
    drain(i);
    return request;
  }
  uint64_t cancel(size_t i, const std::string& id) {
    const uint64_t request = next_request_++;
    core(i).cancel(now(i), request, id);
    drain(i);
    return request;
  }
  uint64_t retry(size_t i, const std::string& id) {
    const uint64_t request = next_request_++;
    core(i).retry(now(), request, id);
    drain(i);
    return request;
  }

  // Ends a handler that node i runs for `id` with `outcome`.
  void finish(size_t i, const std::string& id, JobState outcome = JobState::succeeded,
              std::string error = "") {
    finish_with(i, id, outcome == JobState::succeeded ? "{\"ok\":true}" : "", outcome,
                std::move(error), "h");
  }
  // ... with the result text `result` and a receipt whose hash is `hash` (empty: "h:" + result,
  // so that equal texts agree and different ones do not), for `attempt` (0: the last started).
  void finish_with(size_t i, const std::string& id, const std::string& result,
                   JobState outcome = JobState::succeeded, std::string error = "",
                   std::string hash = "", uint32_t attempt = 0) {
    Node& n = node(i);
    uint32_t last = 0;
    for (const Start& s : n.starts)
      if (s.id == id) last = s.attempt;
    if (attempt == 0) attempt = last;
    if (attempt == last) n.running.erase(id);
    NodeResult r;
    r.attempt = attempt;
    r.outcome = outcome;
    r.result = result;
    r.error = std::move(error);
    r.at_ms = now(i).wall_ms;
    if (hash.empty()) hash = "h:" + (outcome == JobState::succeeded ? result : r.error);
    r.receipt = Receipt{id, n.name, attempt, std::move(hash), "k", "s"};
    core(i).handler_done(now(i), Outcome{id, attempt, std::move(r)});
    drain(i);
  }

  // The handler of `id` on node i returned (Replica::handler_ended); its outcome follows with
  // finish().
  void ended(size_t i, const std::string& id, uint32_t attempt = 1) {
    core(i).handler_ended(now(i), id, attempt);
    drain(i);
  }

  // Syncs every disk and delivers every message, repeatedly, until nothing moves (time stands).
  void settle() {
    for (int guard = 0; guard < 10'000; ++guard) {
      bool moved = false;
      for (size_t i = 0; i < nodes_.size(); ++i) moved = sync(i) || moved;
      moved = deliver() || moved;
      if (!moved) return;
    }
  }

  // One round of settle(): syncs every disk, then delivers what is on the wire (the answers that
  // causes wait on the wire for the next round).
  void step() {
    for (size_t i = 0; i < nodes_.size(); ++i) sync(i);
    deliver();
  }

  // Lets `ms` pass in steps, ticking every up core at its deadline and settling after each step.
  void run(uint64_t ms, uint64_t step_ms = 10) {
    const uint64_t end = mono_ms_ + ms;
    while (mono_ms_ < end) {
      mono_ms_ = std::min(end, mono_ms_ + step_ms);
      for (size_t i = 0; i < nodes_.size(); ++i) {
        Node& n = node(i);
        if (!n.up || n.frozen || n.core->next_deadline_ms() > mono_ms_) continue;
        n.core->tick(now(i));
        drain(i);
      }
      settle();
    }
  }

  // Every up node's copy of `id` (nullopt where it holds none).
  [[nodiscard]] std::optional<JobRecord> copy(size_t i, const std::string& id) {
    return core(i).current(id);
  }
  [[nodiscard]] size_t starts_of(const std::string& id) const {
    size_t n = 0;
    for (const auto& node : nodes_)
      for (const Start& s : node->starts) n += s.id == id;
    return n;
  }
  uint64_t messages_dropped = 0;

 private:
  void boot(size_t i) {
    Node& n = node(i);
    ReplicaConfig c = config_;
    c.seed = i + 1;
    n.core = std::make_unique<Replica>(n.name, c, n.disk);
    n.up = true;
    n.frozen = false;
    for (const auto& [id, r] : n.disk.records) n.core->load(r, encode_record(r));
    for (const auto& [key, on] : n.disk.hints) n.core->load_hint(key.first, key.second);
    for (const auto& [id, at] : n.disk.tombstones) n.core->load_tombstone(id, at);
    n.core->start(now(i));
    drain(i);
  }

  void drain(size_t i) {
    Node& n = node(i);
    if (!n.up) return;
    Output& out = n.core->output();
    for (Persist& p : out.persists) n.disk.pending.push_back(std::move(p));
    for (Send& s : out.sends) wire_.push_back({i, s.to, encode_message(s.message)});
    for (Reply& r : out.replies) n.replies[r.request] = std::move(r);
    for (Start& s : out.starts) {
      n.running.insert(s.id);
      n.starts.push_back(std::move(s));
    }
    for (Stop& s : out.stops) n.stops.push_back(std::move(s));
    for (LogLine& l : out.logs) n.logs.push_back(std::move(l));
    out.clear();
  }

  bool sync(size_t i) {
    Node& n = node(i);
    if (!n.up || n.frozen || n.slow_disk || n.disk.pending.empty()) return false;
    uint64_t last = 0;
    for (const Persist& p : n.disk.pending) {
      last = p.seq;
      if (p.kind == Persist::Kind::record) n.disk.records[p.id] = *p.record;
      if (p.kind == Persist::Kind::hint_put) n.disk.hints[{p.target, p.id}] = true;
      if (p.kind == Persist::Kind::hint_drop) n.disk.hints.erase({p.target, p.id});
      if (p.kind == Persist::Kind::erase || p.kind == Persist::Kind::drop)
        n.disk.records.erase(p.id);
      if (p.kind == Persist::Kind::erase) n.disk.tombstones[p.id] = p.at_ms;
      if (p.kind == Persist::Kind::tombstone_drop) n.disk.tombstones.erase(p.id);
    }
    n.disk.pending.clear();
    n.core->durable(now(i), last, Status::ok());
    drain(i);
    return true;
  }

  // Delivers what is on the wire; a message to a down, frozen or cut-off node is lost and its
  // sender is told it could not be delivered (as the node's transport would be).
  bool deliver() {
    if (wire_.empty()) return false;
    auto batch = std::move(wire_);
    wire_.clear();
    for (auto& [from, to, bytes] : batch) {
      const size_t t = index(to);
      auto decoded = decode_message(bytes);
      REQUIRE_OK(decoded);
      const bool reach = t != SIZE_MAX && node(t).up && !node(t).frozen && linked(from, t);
      if (!reach) {
        messages_dropped++;
        if (node(from).up && !node(from).frozen) {
          core(from).undeliverable(now(from), to, decoded.value());
          drain(from);
        }
        continue;
      }
      core(t).receive(now(t), name(from), std::move(decoded).value());
      drain(t);
    }
    return true;
  }
  static void REQUIRE_OK(const Result<Message>& m) {
    if (!m.is_ok()) throw std::runtime_error("undecodable message: " + m.status().message());
  }

  ReplicaConfig config_;
  std::vector<std::unique_ptr<Node>> nodes_;
  struct Wire {
    size_t from;
    std::string to;
    std::string bytes;
  };
  std::deque<Wire> wire_;
  std::set<std::pair<size_t, size_t>> cut_;
  uint64_t mono_ms_ = 1'000;
  uint64_t next_request_ = 1;
};

// A job whose preference list over the stage's members is exactly `order` (names).
inline JobRecord job_placed(Stage& s, const std::vector<std::string>& order, uint64_t now) {
  for (int n = 0; n < 100'000; ++n) {
    JobRecord r = job(n, now);
    if (s.core(0).placement().replicas(r.id) == order) return r;
  }
  FAIL("no job id lands on that preference list");
  return {};
}

// Quiet background repair (anti-entropy and hint replay once an hour), so that a scenario sees
// only the mechanism it stages.
inline ReplicaConfig quiet() {
  ReplicaConfig c;
  // A staged handler runs across many settle() calls at one instant, as a handler longer than the
  // claim hold would: its claim leaves at once. The hold has scenarios of its own (replica_test).
  c.claim_hold_ms = 0;
  c.anti_entropy_interval_ms = 3'600'000;
  c.anti_entropy_interval_ms_max = 3'600'000;
  c.hint_replay_interval_ms = 3'600'000;
  return c;
}

// Node i's answer to `request` (the test fails when there is none).
inline const Reply& reply(Stage& s, size_t i, uint64_t request) {
  REQUIRE(s.node(i).replies.contains(request));
  return s.node(i).replies.at(request);
}

}  // namespace meshwork::stage
