// The loop that runs the replica core; see replica_driver.h.
#include "node/replica_driver.h"

#include <asio/post.hpp>

#include <chrono>

#include "dht/merkle.h"
#include "node/check.h"
#include "node/clock.h"
#include "node/log.h"

namespace meshwork {
namespace {

// The one item of a cancel, retry or read's reply.
Result<ItemResult> one_item(Result<Reply> reply) {
  if (!reply.is_ok()) return reply.status();
  if (reply.value().items.size() != 1) return Status(Code::unavailable, "the node is stopping");
  return std::move(reply.value().items.front());
}

spdlog::level::level_enum level_of(LogLine::Level l) {
  switch (l) {
    case LogLine::Level::debug:
      return spdlog::level::debug;
    case LogLine::Level::info:
      return spdlog::level::info;
    case LogLine::Level::warn:
      return spdlog::level::warn;
  }
  return spdlog::level::info;
}

bool usable(MemberState s) {
  return s == MemberState::alive || s == MemberState::suspect;
}

}  // namespace

MemberState member_state_of(gossip::MemberState s) {
  switch (s) {
    case gossip::MemberState::alive:
      return MemberState::alive;
    case gossip::MemberState::suspect:
      return MemberState::suspect;
    case gossip::MemberState::dead:
      return MemberState::dead;
    case gossip::MemberState::left:
      return MemberState::left;
  }
  return MemberState::dead;
}

ReplicaDriver::ReplicaDriver(asio::io_context& io, std::string self, ReplicaConfig config,
                             Store& store, PeerTransport& transport, const Identity& key,
                             EnvelopeCheck check, int64_t wall_offset_ms, JobRunner::Signer sign)
    : io_(io),
      self_(std::move(self)),
      config_(config),
      wall_offset_ms_(wall_offset_ms),
      store_(store),
      transport_(transport),
      key_(key),
      sign_(sign),
      runner_(self_, config_.workers, [this](Outcome o) { report(std::move(o)); },
              std::move(check)),
      replica_(std::make_unique<Replica>(self_, config_, store_)),
      timer_(io),
      sign_timer_(io) {}

ReplicaDriver::~ReplicaDriver() {
  runner_.shutdown();
}

Now ReplicaDriver::now() const {
  return Now{mono_ms(), wall_ms() + static_cast<uint64_t>(wall_offset_ms_)};
}

Status ReplicaDriver::boot() {
  std::promise<Status> done;
  asio::post(io_, [this, &done] {
    size_t records = 0, hints = 0;
    Status s = store_.scan([&](JobRecord&& r, std::string_view encoded) {
      replica_->load(r, encoded);
      ++records;
    });
    if (s.is_ok())
      s = store_.scan_hints([&](const std::string& target, const std::string& id) {
        replica_->load_hint(target, id);
        ++hints;
      });
    if (s.is_ok())
      s = store_.scan_tombstones(
          [&](const std::string& id, uint64_t at_ms) { replica_->load_tombstone(id, at_ms); });
    if (s.is_ok()) {
      store_.start_writer([this](uint64_t seq, const Status& st) {
        asio::post(io_, [this, seq, st] {
          if (stopped_) return;
          replica_->durable(now(), seq, st);
          drain();
        });
      });
      replica_->start(now());
      drain();
      log_event(spdlog::level::info, "recovered", "",
                std::to_string(records) + " records, " + std::to_string(hints) + " hints, " +
                    std::to_string(replica_->index().unfinished_count()) + " unfinished");
    }
    done.set_value(s);
  });
  return done.get_future().get();
}

void ReplicaDriver::stop() {
  if (stopping_.exchange(true)) return;
  runner_.shutdown();
  std::promise<void> stopped;
  asio::post(io_, [this, &stopped] {
    stopped_ = true;
    timer_.cancel();
    sign_timer_.cancel();
    for (auto& [id, w] : waiters_) w->set_value(Reply{id, {}});
    waiters_.clear();
    stopped.set_value();
  });
  stopped.get_future().wait();
}

// ---- inputs from other threads ----

Result<Reply> ReplicaDriver::request(Input input, uint64_t extra_ms) {
  if (stopping_) return Status(Code::unavailable, "the node is stopping");
  auto waiter = std::make_shared<std::promise<Reply>>();
  auto answer = waiter->get_future();
  const uint64_t id = next_request_++;
  asio::post(io_, [this, id, waiter, input = std::move(input)] {
    if (stopped_) return waiter->set_value(Reply{id, {}});
    waiters_.emplace(id, waiter);
    input(*replica_, now(), id);
    drain();
  });
  const auto wait = std::chrono::milliseconds(config_.peer_timeout_ms + extra_ms + kReplyMarginMs);
  if (answer.wait_for(wait) != std::future_status::ready) {
    asio::post(io_, [this, id] { waiters_.erase(id); });
    return Status(Code::unavailable, "the mesh did not answer in time; retry shortly");
  }
  try {
    return answer.get();
  } catch (const std::future_error&) {  // the loop was torn down with the request in it
    return Status(Code::unavailable, "the node is stopping");
  }
}

Result<std::vector<ItemResult>> ReplicaDriver::submit(std::vector<JobRecord> admitted) {
  const size_t n = admitted.size();
  auto records = std::make_shared<std::vector<JobRecord>>(std::move(admitted));
  auto reply =
      request([records](Replica& r, Now t, uint64_t id) { r.submit(t, id, std::move(*records)); },
              config_.admission_wait_ms);
  if (!reply.is_ok()) return reply.status();
  if (reply.value().items.size() != n) return Status(Code::unavailable, "the node is stopping");
  return std::move(reply.value().items);
}

Result<ItemResult> ReplicaDriver::cancel(const std::string& id) {
  return one_item(request([id](Replica& r, Now t, uint64_t req) { r.cancel(t, req, id); }));
}

Result<ItemResult> ReplicaDriver::retry(const std::string& id) {
  return one_item(request([id](Replica& r, Now t, uint64_t req) { r.retry(t, req, id); }));
}

Result<ItemResult> ReplicaDriver::read(const std::string& id) {
  return one_item(request([id](Replica& r, Now t, uint64_t req) { r.read(t, req, id); }));
}

void ReplicaDriver::receive(const std::string& from, std::vector<Message>&& messages) {
  if (stopped_) return;
  const Now t = now();
  for (Message& m : messages) replica_->receive(t, from, std::move(m));
  drain();
}

// Queues a worker's outcome; the first one queued posts the loop's take_outcomes.
void ReplicaDriver::report(Outcome&& o) {
  std::lock_guard lock(outcomes_mu_);
  outcomes_.push_back(std::move(o));
  if (outcomes_posted_) return;
  outcomes_posted_ = true;
  asio::post(io_, [this] { take_outcomes(); });
}

// ---- the loop ----

// Frees the workers of the outcomes queued so far (handler_ended) and signs them now, or when the
// receipt linger since the last signature has passed.
void ReplicaDriver::take_outcomes() {
  std::vector<Outcome> queued;
  {
    std::lock_guard lock(outcomes_mu_);
    queued.swap(outcomes_);
    outcomes_posted_ = false;
  }
  if (stopped_ || queued.empty()) return;
  for (Outcome& o : queued) {
    replica_->handler_ended(now(), o.id, o.attempt);
    unsigned_.push_back(std::move(o));
  }
  const uint64_t due_ms = last_signed_ms_ + receipt_linger_ms_;
  if (unsigned_.size() >= kReceiptBatchMax || mono_ms() >= due_ms) return sign_outcomes();
  if (!sign_timer_armed_) {
    sign_timer_armed_ = true;
    sign_timer_.expires_at(std::chrono::steady_clock::time_point(std::chrono::milliseconds(due_ms)));
    sign_timer_.async_wait([this](std::error_code ec) {
      sign_timer_armed_ = false;
      if (!ec) sign_outcomes();
    });
  }
  drain();
}

// Signs every outcome taken, kReceiptBatchMax to a signature, and hands them to the core.
void ReplicaDriver::sign_outcomes() {
  if (stopped_ || unsigned_.empty()) return;
  std::vector<Outcome> queued;
  queued.swap(unsigned_);
  last_signed_ms_ = mono_ms();
  for (size_t first = 0; first < queued.size(); first += kReceiptBatchMax) {
    const size_t last = std::min(queued.size(), first + kReceiptBatchMax);
    std::vector<Outcome> batch(std::make_move_iterator(queued.begin() + first),
                               std::make_move_iterator(queued.begin() + last));
    sign_(key_, batch);
    ++signed_batches_;
    for (Outcome& o : batch) replica_->handler_done(now(), std::move(o));
  }
  drain();
}

void ReplicaDriver::on_member(const gossip::MemberInfo& m) {
  if (stopped_ || m.name == self_) return;
  if (events_ != nullptr)
    events_->publish_member(m.name, gossip::to_string(m.state), m.incarnation, m.meta.api);
  std::map<std::string, std::string> peers;
  {
    std::lock_guard lock(members_mu_);
    auto key = from_base64(m.meta.public_key);
    members_[m.name] = MemberView{m.meta.api, gossip::to_string(m.addr),
                                  key && key->size() == kPublicKeyBytes ? *key : std::string(),
                                  member_state_of(m.state)};
    for (const auto& [name, v] : members_) {
      if (!usable(v.state)) continue;
      peers.emplace(name, v.peer);
    }
  }
  transport_.set_peers(peers);
  replica_->set_member(now(), m.name, member_state_of(m.state));
  drain();
}

void ReplicaDriver::drain() {
  Output& out = replica_->output();
  if (events_ != nullptr && events_->wanted())
    for (const Persist& p : out.persists)
      if (p.kind == Persist::Kind::record && p.record.record) events_->publish_job(*p.record);
  if (!out.persists.empty()) store_.write(std::move(out.persists));
  for (Send& s : out.sends) send(s);
  if (!out.sends.empty()) transport_.flush();
  // Published before any reply wakes its HTTP thread, so a client that has its answer reads
  // counters and state at least as new as the answer (GET /v1/node right after a submit).
  publish();
  for (Reply& r : out.replies) {
    auto it = waiters_.find(r.request);
    if (it == waiters_.end()) continue;  // its HTTP thread gave up waiting
    it->second->set_value(std::move(r));
    waiters_.erase(it);
  }
  for (const Start& s : out.starts) runner_.start(s);
  for (const Stop& s : out.stops) runner_.stop(s);
  for (const LogLine& l : out.logs) log_event(level_of(l.level), l.event, l.id, l.detail);
  out.clear();
  arm_timer();
}

void ReplicaDriver::send(Send& s) {
  std::string bytes = encode_message(s.message);
  auto message = std::make_shared<Message>(std::move(s.message));
  transport_.send(s.to, std::move(bytes), [this, to = s.to, message](const Status&) {
    asio::post(io_, [this, to, message] {
      if (stopped_) return;
      replica_->undeliverable(now(), to, *message);
      drain();
    });
  });
}

void ReplicaDriver::publish() {
  const Replica& r = *replica_;
  std::lock_guard lock(snapshot_mu_);
  ReplicaSnapshot& s = snapshot_;
  s.ready = r.ready(now());
  s.backlog = r.backlog();
  s.running = r.running();
  s.hints = r.hints();
  s.tombstones = r.tombstones();
  s.held = r.index().size();
  s.unfinished = r.index().unfinished_count();
  s.stats = r.stats();
  if (!s.placement || s.placement->version() != r.placement().version())
    s.placement = std::make_shared<const Placement>(r.placement());
  if (!s.reputation || s.reputation->evidence() != r.reputation().evidence())
    s.reputation = std::make_shared<const Reputation>(r.reputation());
}

// Wakes the loop at the core's next deadline, or sooner to refresh the snapshot.
void ReplicaDriver::arm_timer() {
  if (stopped_) return;
  const uint64_t now_ms = mono_ms();
  const uint64_t at =
      std::max(std::min(replica_->next_deadline_ms(), now_ms + kSnapshotRefreshMs), now_ms + 1);
  if (timer_armed_ && timer_at_ms_ <= at) return;
  timer_armed_ = true;
  timer_at_ms_ = at;
  timer_.expires_at(std::chrono::steady_clock::time_point(std::chrono::milliseconds(at)));
  timer_.async_wait([this](std::error_code ec) {
    if (ec) return;  // re-armed earlier, or stopped
    timer_armed_ = false;
    on_timer();
  });
}

void ReplicaDriver::on_timer() {
  if (stopped_) return;
  const Now t = now();
  if (t.mono_ms >= replica_->next_deadline_ms()) {
    replica_->tick(t);
    drain();
  } else {
    publish();
    arm_timer();
  }
}

ReplicaSnapshot ReplicaDriver::snapshot() const {
  std::lock_guard lock(snapshot_mu_);
  return snapshot_;
}

std::optional<std::string> ReplicaDriver::public_key_of(std::string_view name) const {
  std::lock_guard lock(members_mu_);
  auto it = members_.find(std::string(name));
  if (it == members_.end() || it->second.public_key.empty()) return std::nullopt;
  return it->second.public_key;
}

std::map<std::string, MemberView> ReplicaDriver::members() const {
  std::lock_guard lock(members_mu_);
  return members_;
}

}  // namespace meshwork
