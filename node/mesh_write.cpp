// The mesh's write side: quorum writes of submissions and cancels, claim confirmation, and the
// asynchronous shipping of claims, renewals and outcomes; see mesh.h.
#include <chrono>

#include "node/clock.h"
#include "node/log.h"
#include "node/mesh.h"

namespace meshwork {

using spdlog::level::debug;
using spdlog::level::info;

// One record written to its replicas, decided once `need` of them hold it durably or once that can
// no longer happen. Answers are counted under the batch's mutex; on_decided runs once, unlocked.
struct Mesh::Quorum {
  JobRecord record;
  std::string encoded;
  std::vector<std::string> replicas;
  size_t need = 0;
  // +1: this answer counts; 0: no answer (unreachable); -1: this write cannot win (claims only).
  std::function<int(const ReplicateAck&)> judge;
  std::function<void(bool ok, bool existed)> on_decided;

  std::mutex mu;
  size_t acks = 0, answered = 0;
  bool existed = false, decided = false;

  void answer(int verdict, bool was_there) {
    bool fire = false, ok = false;
    {
      std::lock_guard lock(mu);
      answered++;
      existed = existed || was_there;
      if (verdict > 0) acks++;
      if (!decided && (acks >= need || verdict < 0 || answered == replicas.size())) {
        decided = fire = true;
        ok = acks >= need;
      }
    }
    if (fire) on_decided(ok, existed);
  }
};

namespace {

// Waits for a number of decisions, with a deadline.
struct Latch {
  std::mutex mu;
  std::condition_variable cv;
  size_t left = 0;
  void done() {
    std::lock_guard lock(mu);
    if (left > 0 && --left == 0) cv.notify_all();
  }
  bool wait(uint64_t timeout_ms) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return left == 0; });
  }
};

}  // namespace

// Sends every item to each of its replicas: this node's store, or a peer. Returns at once; each
// item's on_decided reports.
void Mesh::write_all(std::vector<std::shared_ptr<Quorum>>& items, const Topology&) {
  for (auto& q : items) {
    for (const std::string& member : q->replicas) {
      if (member == self_) {
        store_.merge(q->record, [q](Status s, Applied a) {
          ReplicateAck ack;
          ack.status = s;
          if (s.is_ok() && a.after) {
            ack.existed = a.before && submitted_before(*a.before, q->record.history);
            ack.state = a.after->status.state;
            ack.attempt = a.after->status.attempt;
            ack.node = a.after->status.node;
          }
          q->answer(s.is_ok() ? q->judge(ack) : 0, ack.existed);
        });
      } else {
        send_to(member, q->record, q->encoded, [q](const ReplicateAck& ack) {
          q->answer(ack.status.is_ok() ? q->judge(ack) : 0, ack.status.is_ok() && ack.existed);
        });
      }
    }
  }
}

// Back-pressure before anything is written: when the records already queued for one of the
// replicas have waited longer than a fifth of the quorum timeout, new work would likely time out
// half-written (a 503 that may leave a copy); a 429 refuses it cleanly instead.
Status Mesh::replication_backlog(const std::vector<std::string>& replicas) {
  const uint64_t limit = options_.peer_timeout_ms / 5;
  for (const std::string& m : replicas) {
    if (m == self_) continue;
    if (const uint64_t lag = peers_.replicate_lag_ms(m); lag > limit) {
      std::lock_guard lock(stats_mu_);
      stats_.backpressure_refusals++;
      return Status(Code::overloaded, "replication to " + m + " is " + std::to_string(lag) +
                                          " ms behind; retry later");
    }
  }
  return Status::ok();
}

Mesh::ItemResult Mesh::submit(const nlohmann::json& body) {
  return std::move(submit_batch({body}).front());
}

std::vector<Mesh::ItemResult> Mesh::submit_batch(const std::vector<nlohmann::json>& bodies) {
  std::vector<ItemResult> results(bodies.size());
  if (!ready()) {
    for (auto& r : results)
      r.status = Status(Code::unavailable, "this node has not joined the mesh yet; retry shortly");
    return results;
  }
  auto topo = topology();
  auto latch = std::make_shared<Latch>();
  std::vector<std::shared_ptr<Quorum>> items;
  std::vector<size_t> index;  // items[k] answers results[index[k]]
  for (size_t i = 0; i < bodies.size(); ++i) {
    auto admitted = jobs_.admit(bodies[i]);
    if (!admitted.is_ok()) {
      results[i].status = admitted.status();
      continue;
    }
    auto q = std::make_shared<Quorum>();
    q->record = std::move(admitted).value();
    q->replicas = topo->replicas(q->record.id);
    q->need = topo->write_quorum();
    if (Status behind = replication_backlog(q->replicas); !behind.is_ok()) {
      results[i].status = behind;
      continue;
    }
    if (q->replicas.size() < q->need) {
      results[i].status =
          Status(Code::unavailable, "only " + std::to_string(q->replicas.size()) +
                                        " replicas are reachable and " + std::to_string(q->need) +
                                        " must store a job; retry shortly");
      continue;
    }
    q->encoded = encode_record(q->record);
    q->judge = [](const ReplicateAck&) { return 1; };
    q->on_decided = [latch](bool, bool) { latch->done(); };
    items.push_back(std::move(q));
    index.push_back(i);
  }
  latch->left = items.size();
  write_all(items, *topo);
  latch->wait(options_.peer_timeout_ms);
  for (size_t k = 0; k < items.size(); ++k) {
    Quorum& q = *items[k];
    ItemResult& out = results[index[k]];
    std::lock_guard lock(q.mu);
    if (q.acks < q.need) {
      out.status =
          Status(Code::unavailable, "the job reached " + std::to_string(q.acks) + " of its " +
                                        std::to_string(q.replicas.size()) + " replicas and " +
                                        std::to_string(q.need) + " must store it; retry shortly");
      std::lock_guard s(stats_mu_);
      stats_.quorum_failures++;
      continue;
    }
    out.created = !q.existed;
    out.record = q.record;
    jobs_.note_submitted(out.created);
  }
  // A job submitted before: answer with what the mesh knows of it now.
  for (auto& out : results)
    if (out.status.is_ok() && !out.created && out.record) {
      auto now = read_merged(out.record->id, *topo);
      if (now.is_ok() && now.value()) out.record = std::move(*now.value());
    }
  return results;
}

Result<JobRecord> Mesh::cancel(const std::string& id) {
  auto topo = topology();
  auto current = read_merged(id, *topo);
  if (!current.is_ok()) return current.status();
  Status refusal = Status::ok();
  const JobRecord* cur = current.value() ? &*current.value() : nullptr;
  auto next = cancel_record(cur, id, self_, wall_ms(), refusal);
  if (!refusal.is_ok()) return refusal;
  if (!next) return *cur;  // a cancel was already requested
  auto q = std::make_shared<Quorum>();
  q->record = std::move(*next);
  q->encoded = encode_record(q->record);
  q->replicas = topo->replicas(id);
  q->need = std::min(topo->write_quorum(), q->replicas.size());
  auto latch = std::make_shared<Latch>();
  latch->left = 1;
  q->judge = [](const ReplicateAck&) { return 1; };
  q->on_decided = [latch](bool, bool) { latch->done(); };
  std::vector<std::shared_ptr<Quorum>> items{q};
  write_all(items, *topo);
  latch->wait(options_.peer_timeout_ms);
  std::lock_guard lock(q->mu);
  if (q->acks < q->need || q->need == 0)
    return Status(Code::unavailable, "the cancel reached too few replicas; retry shortly");
  jobs_.note_cancel(Applied{std::nullopt, q->record, true});
  log_event(info, "job_cancel", id);
  return q->record;
}

// A claim holds once a majority of the job's replicas have merged it and still show it as the
// winning status; any replica that shows another status has seen something newer, and the claim
// cannot win.
void Mesh::confirm_claim(const JobRecord& claimed, std::function<void(bool)> done) {
  auto topo = topology();
  auto q = std::make_shared<Quorum>();
  q->record = claimed;
  q->encoded = encode_record(claimed);
  for (const std::string& m : topo->replicas(claimed.id))
    if (m != self_) q->replicas.push_back(m);
  const size_t list_size = q->replicas.size() + 1;  // this node holds it already
  q->need = Topology::majority(list_size) - 1;
  if (q->need == 0) {
    std::lock_guard lock(stats_mu_);
    stats_.claims_confirmed++;
    return done(true);
  }
  const uint32_t attempt = claimed.status.attempt;
  q->judge = [this, attempt](const ReplicateAck& a) {
    if (a.state == JobState::running && a.attempt == attempt && a.node == self_) return 1;
    return -1;
  };
  q->on_decided = [this, done = std::move(done), id = claimed.id, others = q->replicas](bool ok,
                                                                                        bool) {
    {
      std::lock_guard lock(stats_mu_);
      (ok ? stats_.claims_confirmed : stats_.claims_refused)++;
    }
    // A refused claim means some replica knows something newer (another attempt, or the
    // outcome): pull it, so this node stops claiming a job that is already settled elsewhere.
    if (!ok)
      for (const std::string& m : others) pull_from(m, id);
    done(ok);
  };
  std::vector<std::shared_ptr<Quorum>> items{q};
  write_all(items, *topo);
}

// Fire and forget: the other replicas get the record; one that misses it gets a hint.
void Mesh::replicate_async(const JobRecord& r) {
  auto topo = topology();
  std::string encoded;
  for (const std::string& m : topo->replicas(r.id)) {
    if (m == self_) continue;
    if (encoded.empty()) encoded = encode_record(r);
    send_to(m, r, encoded, [](const ReplicateAck&) {});
  }
}

void Mesh::send_to(const std::string& peer, const JobRecord& r, std::string encoded,
                   std::function<void(const ReplicateAck&)> done) {
  {
    std::lock_guard lock(stats_mu_);
    stats_.replicate_sent++;
  }
  peers_.replicate(peer, std::move(encoded),
                   [this, peer, id = r.id, done = std::move(done)](ReplicateAck ack) {
                     if (!ack.status.is_ok()) {
                       {
                         std::lock_guard lock(stats_mu_);
                         stats_.replicate_failed++;
                       }
                       remember_hint(peer, id);
                     }
                     done(ack);
                   });
}

// A replica missed a record this node holds: remember to hand it over when it is back.
void Mesh::remember_hint(const std::string& peer, const std::string& id) {
  if (!catalog_.contains(id)) return;  // only a holder can replay it; anti-entropy covers the rest
  if (!store_.put_hint(peer, id).is_ok()) return;
  std::lock_guard lock(stats_mu_);
  stats_.hints_stored++;
  log_event(debug, "hint_stored", id, "for " + peer);
}

}  // namespace meshwork
