// The replica core's write side: quorum writes (submissions, cancels, claims, hint replays), the
// outbox that coalesces records per peer, acks in both directions, and client reads; see
// replica.h.
#include <algorithm>
#include <tuple>

#include "dht/replica.h"

namespace meshwork {

// Sends `rec` to every member of `replicas` (this node's copy is merged here and counts once it is
// durable) and tracks the answers as one write; returns its id.
uint64_t Replica::start_write(Now now, Write w, const SharedRecord& rec,
                              const std::vector<std::string>& replicas) {
  const uint64_t wid = next_id_++;
  w.deadline_ms = now.mono_ms + config_.peer_timeout_ms;
  w.record = rec.record;
  w.id = rec->id;
  Write& slot = writes_.emplace(wid, std::move(w)).first->second;
  bool local = false;
  for (const std::string& m : replicas) {
    slot.asked++;
    if (m == self_) {
      local = true;
    } else {
      queue_replicate(m, rec, wid);
    }
  }
  if (local) {
    Merged mm = merge_in(now, rec);
    const bool existed = mm.before && submitted_before(*mm.before, rec->history);
    if (existed) {
      auto it = writes_.find(wid);
      it->second.existed = true;
      it->second.copy = *mm.after;
    }
    const uint64_t seq = pending_seq(rec->id);
    if (seq == 0) {
      answer(now, wid, 1, nullptr);
    } else {
      local_waits_.emplace(seq, wid);
    }
  }
  return wid;
}

void Replica::queue_replicate(const std::string& peer, const SharedRecord& rec, uint64_t write,
                              const JobStatus* if_claimed) {
  auto& [msg, writes] = outbox_[peer];
  if (if_claimed != nullptr)
    msg.if_claimed.push_back(IfClaimed{static_cast<uint32_t>(msg.records.size()), *if_claimed});
  msg.records.push_back(rec);
  writes.push_back(write);
  stats_.replicate_sent++;
}

// Every record queued for a peer during one input leaves in one message — a few, past
// kMessageItemsMax records or kReplicateBytesMax bytes (so that the ack, which may carry the
// replica's copies back, stays far below kMessageBytesMax too).
void Replica::flush(Now now) {
  for (auto& [peer, queued] : outbox_) {
    auto& [msg, writes] = queued;
    size_t i = 0;
    size_t c = 0;  // the next condition in msg.if_claimed
    while (i < msg.records.size()) {
      const uint64_t corr = next_id_++;
      Outstanding o;
      o.kind = Outstanding::Kind::replicate;
      o.peer = peer;
      o.sent_ms = now.mono_ms;
      Replicate part;
      part.corr = corr;
      size_t bytes = 0;
      for (; i < msg.records.size() && part.records.size() < kMessageItemsMax; ++i) {
        const size_t size = msg.records[i].bytes->size();
        if (!part.records.empty() && bytes + size > kReplicateBytesMax) break;
        bytes += size;
        const bool conditional = c < msg.if_claimed.size() && msg.if_claimed[c].index == i;
        if (conditional) {
          IfClaimed& cond = msg.if_claimed[c++];
          cond.index = static_cast<uint32_t>(part.records.size());
          part.if_claimed.push_back(std::move(cond));
        }
        o.writes.push_back(writes[i]);
        o.ids.push_back(msg.records[i]->id);
        o.records.push_back(msg.records[i]);
        o.conditional.push_back(conditional);
        part.records.push_back(std::move(msg.records[i]));
      }
      outstanding_.emplace(corr, std::move(o));
      open_replicates_[peer].insert(corr);
      out_.sends.push_back(Send{peer, std::move(part)});
    }
  }
  outbox_.clear();
}

// One answer for a write: +1 counts towards its quorum, 0 is no answer (unreachable, timed out,
// refused), -1 says the write cannot win (a claim that another status beat).
void Replica::answer(Now now, uint64_t write, int verdict, const ItemAck* ack) {
  auto it = writes_.find(write);
  if (it == writes_.end() || it->second.decided) return;
  Write& w = it->second;
  w.answered++;
  if (ack != nullptr && ack->deleted) w.deleted = true;
  if (ack != nullptr && ack->existed) {
    w.existed = true;
    if (ack->copy && (*ack->copy)->id == w.id)
      w.copy = w.copy ? merge(*w.copy, **ack->copy) : **ack->copy;
  }
  if (verdict > 0) w.acks++;
  if (verdict < 0) w.refused = true;
  if (w.acks >= w.need || w.refused || w.answered >= w.asked) decide(now, write, w);
}

void Replica::decide(Now now, uint64_t write_id, Write& w) {
  w.decided = true;
  const bool ok = w.acks >= w.need && !w.refused;
  Write done = std::move(w);
  writes_.erase(write_id);
  switch (done.kind) {
    case Write::Kind::submit:
      finish_submit_item(now, done, ok);
      break;
    case Write::Kind::cancel:
    case Write::Kind::retry: {
      const bool cancel = done.kind == Write::Kind::cancel;
      Reply r{done.request, {}};
      ItemResult item;
      if (ok) {
        item.record = *done.record;
        if (cancel && done.record->status.state == JobState::cancelled) stats_.cancelled++;
        if (!cancel) stats_.retries_requested++;
        log(LogLine::Level::info, cancel ? "job_cancel" : "job_retry", done.id, "");
      } else {
        item.status = Status(Code::unavailable, std::string("the ") +
                                                    (cancel ? "cancel" : "retry") +
                                                    " reached too few replicas; retry shortly");
      }
      r.items.push_back(std::move(item));
      out_.replies.push_back(std::move(r));
      break;
    }
    case Write::Kind::claim:
      claim_settled(now, done.id, done.attempt, ok);
      break;
    case Write::Kind::outcome:
      outcome_settled(now, done, ok);
      break;
    case Write::Kind::hint:
      hints_inflight_.erase({done.target, done.id});
      if (ok) {
        drop_hint(done.target, done.id);
        stats_.hints_replayed++;
      }
      break;
    case Write::Kind::plain:
      break;
  }
}

void Replica::finish_submit_item(Now, const Write& w, bool ok) {
  auto it = submits_.find(w.request);
  if (it == submits_.end()) return;
  ItemResult& item = it->second.items[w.item];
  if (w.deleted) {  // a replica erased it: nothing was stored
    item.status = removed(w.id);
  } else if (!ok) {
    item.status =
        Status(Code::unavailable, "the job reached " + std::to_string(w.acks) + " of its " +
                                      std::to_string(w.asked) + " replicas and " +
                                      std::to_string(w.need) + " must store it; retry shortly");
    stats_.quorum_failures++;
  } else {
    item.created = !w.existed;
    item.record = w.existed && w.copy ? merge(*w.record, *w.copy) : *w.record;
    (item.created ? stats_.submitted : stats_.duplicates)++;
    if (item.created) log(LogLine::Level::debug, "job_accepted", w.id, w.record->type);
  }
  if (--it->second.left == 0) {
    out_.replies.push_back(Reply{w.request, std::move(it->second.items)});
    submits_.erase(it);
  }
}

void Replica::cancel(Now now, uint64_t request, const std::string& id) {
  start_read(now, request, id, ReadOp::Then::cancel);
  flush(now);
}

void Replica::retry(Now now, uint64_t request, const std::string& id) {
  start_read(now, request, id, ReadOp::Then::retry);
  flush(now);
}

void Replica::read(Now now, uint64_t request, const std::string& id) {
  start_read(now, request, id, ReadOp::Then::read);
  flush(now);
}

// Merges each record and acks once the merge is durable. The sender is an authenticated member:
// envelopes are verified where a job enters the mesh and where it runs, not by every replica that
// only stores it; receipts are checked here, on every record that brings a result this node does
// not hold (docs/protocol.md, trust model). A record refused for a receipt is answered not ok.
void Replica::on_replicate(Now now, const std::string& from, Replicate& m) {
  stats_.replicate_received += m.records.size();
  ReplicateAck ack;
  ack.corr = m.corr;
  uint64_t need_seq = 0;
  size_t c = 0;  // the next condition in m.if_claimed
  for (size_t i = 0; i < m.records.size(); ++i) {
    const SharedRecord& rec = m.records[i];
    const IfClaimed* cond = nullptr;
    if (c < m.if_claimed.size() && m.if_claimed[c].index == i) cond = &m.if_claimed[c++];
    ItemAck item;
    if (tombstones_.contains(rec->id)) {  // erased here: acknowledged, not stored, and said so
      stats_.tombstone_refusals++;
      item.ok = true;
      item.deleted = true;
      ack.items.push_back(std::move(item));
      continue;
    }
    // An outcome shipped with its claim: where this copy already beats the claim (the job was
    // cancelled while queued, a later attempt runs, it finished), the copy stays as it is and the
    // ack says what it holds; the claimant counts that as a refusal.
    if (cond != nullptr) {
      if (auto held = current_shared(rec->id); held && status_before(cond->claim, held->status)) {
        stats_.outcomes_refused_here++;
        item.ok = true;
        item.existed = submitted_before(*held, rec->history);
        item.state = held->status.state;
        item.attempt = held->status.attempt;
        item.node = held->status.node;
        item.cancel_requested = held->cancel_requested();
        if (item.existed) item.copy = SharedRecord::of(*held);
        need_seq = std::max(need_seq, pending_seq(rec->id));
        ack.items.push_back(std::move(item));
        continue;
      }
    }
    if (!receipts_pass(now, from, *rec)) {
      ack.items.push_back(std::move(item));
      continue;
    }
    Merged mm = merge_in(now, rec);
    item.ok = true;
    item.existed = mm.before && submitted_before(*mm.before, rec->history);
    item.state = mm.after->status.state;
    item.attempt = mm.after->status.attempt;
    item.node = mm.after->status.node;
    item.cancel_requested = mm.after->cancel_requested();
    if (item.existed) item.copy = SharedRecord::of(*mm.after);
    need_seq = std::max(need_seq, pending_seq(rec->id));
    ack.items.push_back(std::move(item));
  }
  if (need_seq == 0 || need_seq <= durable_seq_) {
    out_.sends.push_back(Send{from, std::move(ack)});
  } else {
    ack_waits_.push_back(AckWait{need_seq, from, std::move(ack)});
  }
}

namespace {

// Equal in every field, receipt included: a result this node holds and checked already.
bool identical_result(const NodeResult& a, const NodeResult& b) {
  const auto key = [](const NodeResult& r) {
    const Receipt& rc = r.receipt;
    return std::tie(r.attempt, r.outcome, r.at_ms, r.result, r.error, rc.job_id, rc.node,
                    rc.attempt, rc.result_hash, rc.public_key, rc.signature);
  };
  return key(a) == key(b);
}

}  // namespace

bool Replica::receipts_pass(Now now, const std::string& from, const JobRecord& incoming) {
  if (!config_.receipt_check || incoming.results.empty()) return true;
  const std::shared_ptr<const JobRecord> held = current_shared(incoming.id);
  for (const auto& [node, res] : incoming.results) {
    if (held) {
      auto it = held->results.find(node);
      if (it != held->results.end() && identical_result(it->second, res)) continue;
    }
    const ReceiptCheck c = res.receipt.node != node ? ReceiptCheck::forged  // filed under another
                                                    : config_.receipt_check(incoming.id, res);
    if (c == ReceiptCheck::valid) continue;
    // A finished job's evidence relayed after its producer left the mesh: kept, unchecked.
    if (c == ReceiptCheck::unknown_node && is_terminal(incoming.status.state) && node != from) {
      stats_.receipts_unchecked++;
      continue;
    }
    stats_.receipts_refused++;
    if (c == ReceiptCheck::forged) stats_.receipts_forged++;
    if (c == ReceiptCheck::unknown_node) stats_.receipts_unknown_node++;
    if (c == ReceiptCheck::too_large) stats_.receipts_too_large++;
    log(LogLine::Level::warn, "receipt_refused", incoming.id,
        "a record from " + from + " with a result of " + node + ": " +
            std::string(receipt_check_name(c)));
    if (c == ReceiptCheck::forged && reputation_.forged(from)) note_trust(now, from);
    return false;
  }
  return true;
}

void Replica::on_replicate_ack(Now now, const std::string& from, ReplicateAck& m) {
  auto it = outstanding_.find(m.corr);
  if (it == outstanding_.end() || it->second.peer != from ||
      it->second.kind != Outstanding::Kind::replicate || it->second.ids.size() != m.items.size()) {
    stats_.refused_messages++;
    return;
  }
  Outstanding o = std::move(it->second);
  outstanding_.erase(it);
  open_replicates_[from].erase(m.corr);
  for (size_t i = 0; i < m.items.size(); ++i) {
    const ItemAck& a = m.items[i];
    auto w = writes_.find(o.writes[i]);
    if (a.deleted) {  // the replica erased the job: so does this node, and a claim cannot win
      if (index_.contains(o.ids[i])) erase_soon_.insert(o.ids[i]);
      const bool claim = w != writes_.end() && (w->second.kind == Write::Kind::claim ||
                                                w->second.kind == Write::Kind::outcome);
      answer(now, o.writes[i], claim ? -1 : 1, &a);
      continue;
    }
    if (!a.ok) stats_.replicate_failed++;
    if (a.ok) stand_in_acked(now, from, o.records[i], a);
    int verdict = a.ok ? 1 : 0;
    // A claim, or an outcome shipped with its claim, counts where the replica now holds it.
    const bool claim = w != writes_.end() && w->second.kind == Write::Kind::claim;
    const bool outcome = w != writes_.end() && w->second.kind == Write::Kind::outcome;
    const JobState holding = outcome ? w->second.record->status.state : JobState::running;
    if (a.ok && (claim || outcome) &&
        !(a.state == holding && a.attempt == w->second.attempt && a.node == self_)) {
      verdict = -1;  // this replica holds something newer: pull it
      fetch_from(now, from, {o.ids[i]}, Outstanding::Why::pull, 0);
    }
    answer(now, o.writes[i], verdict, &a);
  }
}

// A request that got no answer in time, or that the transport could not deliver.
void Replica::fail_outstanding(Now now, uint64_t corr) {
  auto it = outstanding_.find(corr);
  if (it == outstanding_.end()) return;
  Outstanding o = std::move(it->second);
  outstanding_.erase(it);
  switch (o.kind) {
    case Outstanding::Kind::replicate:
      open_replicates_[o.peer].erase(corr);
      for (size_t i = 0; i < o.ids.size(); ++i) {
        stats_.replicate_failed++;
        // An outcome shipped with its claim is not this node's to keep unless the write decides
        // so (outcome_settled): the hint replays whatever this node holds.
        if (o.conditional[i]) {
          remember_hint(o.peer, o.ids[i]);
          answer(now, o.writes[i], 0, nullptr);
          continue;
        }
        // The record is owed to the peer: a node that does not hold it (an entry node outside the
        // replica list) keeps a copy as the peer's stand-in, so that the hint can be replayed. One
        // that holds an older copy merges it in too (a no-op where it already has it): the hint
        // replays this node's copy, which must carry the cancel or retry it owes, not an older one
        // (a stand-in of an earlier write, or a read repair sent in the same message).
        merge_in(now, o.records[i]);
        remember_hint(o.peer, o.ids[i]);
        answer(now, o.writes[i], 0, nullptr);
      }
      break;
    case Outstanding::Kind::fetch:
      if (o.why == Outstanding::Why::read)
        on_read_copy(now, o.request, o.peer, std::nullopt, false);
      if (o.why == Outstanding::Why::takeover)
        for (const std::string& id : o.ids) takeover_answered(now, id);
      break;
    case Outstanding::Kind::digest:
      break;
  }
}

// Fire and forget: the other replicas get the record; one that misses it gets a hint.
void Replica::replicate_to_others(Now, const SharedRecord& rec) {
  for (const std::string& m : placement_.replicas(rec->id))
    if (m != self_) queue_replicate(m, rec, 0);
}

// Every usable replica's copy (and this node's) is gathered, then merged (finish_read).
void Replica::start_read(Now now, uint64_t request, const std::string& id, ReadOp::Then then) {
  if (tombstones_.contains(id) || expired_here(now, id)) {  // whatever another copy still says
    out_.replies.push_back(
        Reply{request, {ItemResult{Status(Code::not_found, "no job with id " + id), false, {}}}});
    return;
  }
  ReadOp op;
  op.then = then;
  op.id = id;
  op.deadline_ms = now.mono_ms + config_.peer_timeout_ms;
  op.copies.emplace_back(self_, current(id));
  std::vector<std::string> peers;
  for (const std::string& m : placement_.replicas(id))
    if (m != self_) peers.push_back(m);
  op.waiting = peers.size();
  reads_[request] = std::move(op);
  for (const std::string& m : peers) fetch_from(now, m, {id}, Outstanding::Why::read, request);
  if (peers.empty()) finish_read(now, request);
}

void Replica::on_read_copy(Now now, uint64_t request, const std::string& from,
                           std::optional<JobRecord> copy, bool answered) {
  auto it = reads_.find(request);
  if (it == reads_.end()) return;
  if (answered) it->second.copies.emplace_back(from, std::move(copy));
  if (it->second.waiting > 0 && --it->second.waiting == 0) finish_read(now, request);
}

// Merges the copies of the right job, repairs the replicas that hold less, and answers.
void Replica::finish_read(Now now, uint64_t request) {
  auto it = reads_.find(request);
  if (it == reads_.end()) return;
  ReadOp op = std::move(it->second);
  reads_.erase(it);
  std::optional<JobRecord> merged;
  for (auto& [m, rec] : op.copies) {
    if (rec && rec->id != op.id) {
      stats_.refused_records++;
      rec.reset();
    }
    if (rec) merged = merged ? merge(*merged, *rec) : *rec;
  }
  ItemResult item;
  if (!merged) {
    item.status = op.copies.size() <= 1 && !index_.contains(op.id) && op.waiting > 0
                      ? Status(Code::unavailable, "no replica of the job answered")
                      : Status(Code::not_found, "no job with id " + op.id);
    out_.replies.push_back(Reply{request, {std::move(item)}});
    return;
  }
  std::optional<SharedRecord> repaired;
  for (const auto& [m, rec] : op.copies) {
    if (rec && same_state(*rec, *merged)) continue;
    stats_.read_repairs++;
    if (m == self_) {
      if (placement_.is_replica(op.id, self_) || index_.contains(op.id)) merge_in(now, *merged);
    } else {
      if (!repaired) repaired = SharedRecord::of(*merged);
      queue_replicate(m, *repaired, 0);
    }
  }
  if (op.then == ReadOp::Then::cancel) return finish_cancel(now, request, *merged);
  if (op.then == ReadOp::Then::retry) return finish_retry(now, request, *merged);
  item.record = std::move(merged);
  out_.replies.push_back(Reply{request, {std::move(item)}});
}

// The cancel transition on the merged record: cancelled at once when not running, else a cancel
// request the running handler obeys; written to a quorum of the job's replicas.
void Replica::finish_cancel(Now now, uint64_t request, const JobRecord& cur) {
  auto refuse = [&](Status s) {
    out_.replies.push_back(Reply{request, {ItemResult{s, false, {}}}});
  };
  if (is_terminal(cur.status.state))
    return refuse(
        Status(Code::conflict, "the job already " + std::string(state_name(cur.status.state))));
  if (cur.cancel_requested()) {
    out_.replies.push_back(Reply{request, {ItemResult{Status::ok(), false, cur}}});
    return;
  }
  JobRecord next = cur;
  next.cancel_round = cur.status.round + 1;
  next.updated_at_ms = std::max(next.updated_at_ms, now.wall_ms);  // a max register: never back
  if (cur.status.state == JobState::running) {
    next.add_history(JobState::running, self_, cur.status.attempt, now.wall_ms, "cancel requested");
  } else {
    next.status = cur.status.next(JobState::cancelled, cur.status.attempt, self_, now.wall_ms,
                                  "cancelled by request", 0);
    next.add_history(JobState::cancelled, self_, cur.status.attempt, now.wall_ms,
                     "cancelled by request before it ran");
  }
  write_change(now, request, Write::Kind::cancel, std::move(next));
}

// The retry transition on the merged record (job_record.h retried()): only a failed or cancelled
// job; the owner starts it like a new submission once the change reaches it.
void Replica::finish_retry(Now now, uint64_t request, const JobRecord& cur) {
  std::optional<JobRecord> next = retried(cur, self_, now.wall_ms);
  if (!next) {
    const Status s(Code::conflict, "the job is " + std::string(public_state(cur, now.wall_ms)) +
                                       "; only a failed or cancelled job can be retried");
    out_.replies.push_back(Reply{request, {ItemResult{s, false, {}}}});
    return;
  }
  write_change(now, request, Write::Kind::retry, std::move(*next));
}

void Replica::write_change(Now now, uint64_t request, Write::Kind kind, JobRecord next) {
  const auto replicas = placement_.replicas(next.id);
  Write w;
  w.kind = kind;
  w.request = request;
  w.need = std::min(placement_.write_quorum(), replicas.size());
  if (w.need == 0) {
    const Status s(Code::unavailable,
                   std::string("the ") + (kind == Write::Kind::cancel ? "cancel" : "retry") +
                       " reached too few replicas; retry shortly");
    out_.replies.push_back(Reply{request, {ItemResult{s, false, {}}}});
    return;
  }
  start_write(now, std::move(w), SharedRecord::of(std::move(next)), replicas);
}

// Writes, reads and requests that ran out of time.
void Replica::expire(Now now) {
  while (!outstanding_.empty() &&
         outstanding_.begin()->second.sent_ms + config_.peer_timeout_ms <= now.mono_ms)
    fail_outstanding(now, outstanding_.begin()->first);
  while (!writes_.empty() && writes_.begin()->second.deadline_ms <= now.mono_ms)
    decide(now, writes_.begin()->first, writes_.begin()->second);
  std::vector<uint64_t> slow;
  for (const auto& [request, op] : reads_)
    if (op.deadline_ms <= now.mono_ms) slow.push_back(request);
  for (uint64_t request : slow) finish_read(now, request);
}

}  // namespace meshwork
