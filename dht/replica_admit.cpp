// The replica core's admission: whether a client's submission is written at once, refused before
// anything is written, or waits (see replica.h, ReplicaConfig::admission_wait_ms).
//
// A submission's items are refused at once for a removed job, a node not joined yet, a full
// backlog or too few replicas. An item whose only refusal is a lagging replica (its oldest
// unacknowledged replicate older than peer_timeout_ms / 5) would be refused with 429 too, and the
// client would send it again: instead the whole submission waits in parked_, in arrival order,
// like the producer of a JetStream stream or a TCP sender whose window is full. Invariants:
//   1. Nothing of a waiting submission is written: a 429 item is never stored or run.
//   2. Submissions leave parked_ in arrival order, and while one waits every new one waits behind
//      it (else new work would keep the lagging replica behind and the waiting one would starve).
//   3. parked_ holds at most config.parked_items_max open items; a submission that does not fit
//      is decided at once, as without waiting.
//   4. The head leaves once no open item of it would be refused for lag alone (checked where acks
//      arrive, where requests fail, and in tick; one such per input), or at its until_ms, when it
//      is decided as it would have been at once: its lagging items get the same 429.
//      next_deadline_ms() counts both.
#include "dht/replica.h"

namespace meshwork {

// Back-pressure before anything is written: when the records sent to a replica have waited for
// their ack longer than a fifth of the quorum timeout, new work would likely time out half-written
// (a 503 that may leave a copy); a 429 refuses it cleanly instead.
std::optional<Status> Replica::lagging(Now now, const std::vector<std::string>& replicas) const {
  const uint64_t limit = config_.peer_timeout_ms / 5;
  for (const std::string& m : replicas) {
    auto it = open_replicates_.find(m);
    if (m == self_ || it == open_replicates_.end() || it->second.empty()) continue;
    const uint64_t sent = outstanding_.at(*it->second.begin()).sent_ms;
    if (const uint64_t lag = now.mono_ms - sent; lag > limit)
      return Status(Code::overloaded, "replication to " + m + " is " + std::to_string(lag) +
                                          " ms behind; retry later");
  }
  return std::nullopt;
}

std::optional<Replica::Refusal> Replica::refusal(Now now,
                                                 const std::vector<std::string>& replicas) const {
  if (run_queue_.size() >= config_.backlog_max)
    return Refusal{Refusal::Why::backlog,
                   Status(Code::overloaded, "the node's backlog is full; retry later")};
  if (auto behind = lagging(now, replicas)) return Refusal{Refusal::Why::lagging, *behind};
  const size_t need = placement_.write_quorum();
  if (replicas.size() < need)
    return Refusal{
        Refusal::Why::replicas,
        Status(Code::unavailable, "only " + std::to_string(replicas.size()) +
                                      " replicas are reachable and " + std::to_string(need) +
                                      " must store a job; retry shortly")};
  return std::nullopt;
}

void Replica::refuse(ItemResult& item, Refusal no, bool waited) {
  if (no.why == Refusal::Why::backlog) stats_.rejected++;
  if (no.why == Refusal::Why::lagging) {
    stats_.backpressure_refusals++;
    if (waited) stats_.parked_refusals++;
  }
  item.status = std::move(no.status);
}

void Replica::submit(Now now, uint64_t request, std::vector<JobRecord> admitted) {
  Admission a;
  a.request = request;
  a.until_ms = now.mono_ms + config_.admission_wait_ms;
  a.placed_version = placement_.version();
  a.items.resize(admitted.size());
  bool lag = false;
  for (size_t i = 0; i < admitted.size(); ++i) {
    if (tombstones_.contains(admitted[i].id)) {
      a.items[i].status = removed(admitted[i].id);
      continue;
    }
    if (!ready(now)) {
      a.items[i].status =
          Status(Code::unavailable, "this node has not joined the mesh yet; retry shortly");
      continue;
    }
    auto replicas = placement_.replicas(admitted[i].id);
    auto no = refusal(now, replicas);
    if (no && no->why != Refusal::Why::lagging) {
      refuse(a.items[i], std::move(*no), false);
      continue;
    }
    lag = lag || no.has_value();
    a.open.push_back(Admission::Open{i, std::move(admitted[i]), std::move(replicas)});
  }
  const bool wait = config_.admission_wait_ms > 0 && !a.open.empty() && (lag || !parked_.empty());
  if (wait && parked_items_ + a.open.size() <= config_.parked_items_max) {
    stats_.submissions_parked++;
    parked_items_ += a.open.size();
    parked_.push_back(std::move(a));
    return;
  }
  admit(now, std::move(a), false);
  pump(now);
  flush(now);
}

// Whether the submission at the head of parked_ waits on: its time is not up, and an open item
// would be refused for a lagging replica alone (one refused for anything else gains nothing by
// waiting). Placement is read again once it changed: a replica declared dead meanwhile no longer
// holds it back. (This runs on every input while a submission waits: the lists are not walked
// again while the placement stands.)
bool Replica::must_wait(Now now, const Admission& a) const {
  if (now.mono_ms >= a.until_ms) return false;
  const bool placed = a.placed_version == placement_.version();
  for (const Admission::Open& o : a.open) {
    const auto no = placed ? refusal(now, o.replicas)
                           : refusal(now, placement_.replicas(o.record.id));
    if (no && no->why == Refusal::Why::lagging) return true;
  }
  return false;
}

// Decides the open items of `a` as a submission that does not wait is decided: each is refused or
// written to its replicas; the client's reply follows once every written item is decided.
// `waited`: `a` comes out of parked_ (its replica lists are read again).
void Replica::admit(Now now, Admission a, bool waited) {
  SubmitOp op;
  op.items = std::move(a.items);
  std::vector<Admission::Open*> go;
  for (Admission::Open& o : a.open) {
    if (waited && tombstones_.contains(o.record.id)) {
      op.items[o.item].status = removed(o.record.id);
      continue;
    }
    if (waited && a.placed_version != placement_.version())
      o.replicas = placement_.replicas(o.record.id);
    if (auto no = refusal(now, o.replicas)) {
      refuse(op.items[o.item], std::move(*no), waited);
      continue;
    }
    go.push_back(&o);
  }
  op.left = go.size();
  if (go.empty()) {
    out_.replies.push_back(Reply{a.request, std::move(op.items)});
    return;
  }
  submits_.emplace(a.request, std::move(op));
  for (Admission::Open* o : go) {
    Write w;
    w.kind = Write::Kind::submit;
    w.request = a.request;
    w.item = o->item;
    w.need = placement_.write_quorum();
    start_write(now, std::move(w), SharedRecord::of(std::move(o->record)), o->replicas);
  }
}

// One submission whose lag cleared per input, then a tick at once for the next (admit_soon_):
// all of them at the instant the lag clears would hand each replica one message of up to
// parked_items_max records and its loop (gossip included) one long turn to merge them; one per
// turn, the replicas take them as they took the submissions arriving, and the lag is checked again
// before each. Submissions whose wait ran out are all decided at once (mostly refused).
void Replica::admit_parked(Now now) {
  admit_soon_ = false;
  while (!parked_.empty() && !must_wait(now, parked_.front())) {
    const bool waited_out = now.mono_ms >= parked_.front().until_ms;
    Admission a = std::move(parked_.front());
    parked_.pop_front();
    parked_items_ -= a.open.size();
    admit(now, std::move(a), true);
    if (!waited_out) {
      admit_soon_ = !parked_.empty();
      return;
    }
  }
}

}  // namespace meshwork
