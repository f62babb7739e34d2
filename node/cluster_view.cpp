// Cluster-wide listing and the ring view; see cluster_view.h.
#include "node/cluster_view.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <asio/post.hpp>

#include "node/clock.h"
#include "node/thread_name.h"

namespace meshwork {
namespace {

// "<created_at 16 hex>/<id>": the listing order, newest first when compared descending.
std::string position_of(const JobRecord& r) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(r.created_at_ms));
  return std::string(buf) + "/" + r.id;
}

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

bool matches(const ListQuery& q, const JobRecord& r, uint64_t now_ms) {
  if (!q.type.empty() && r.type != q.type) return false;
  return q.state.empty() || public_state(r, now_ms) == q.state;
}

}  // namespace

struct ClusterView::Gather {
  std::vector<std::optional<Message>> answers;  // one per peer asked
  size_t open = 0;                              // requests neither answered nor failed yet
};

ClusterView::ClusterView(asio::io_context& io, Store& store, PeerTransport& transport,
                         const ReplicaDriver& driver, std::string self_api,
                         uint64_t peer_timeout_ms)
    : io_(io),
      store_(store),
      transport_(transport),
      driver_(driver),
      self_api_(std::move(self_api)),
      peer_timeout_ms_(peer_timeout_ms),
      worker_([this] {
        name_this_thread("mw-list");
        work();
      }) {}

ClusterView::~ClusterView() {
  stop();
}

void ClusterView::stop() {
  {
    std::lock_guard lock(work_mu_);
    stopping_ = true;
    work_.clear();
  }
  work_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

Result<Store::Page> ClusterView::list_local(const ListQuery& q) const {
  store_.wait_written(kListWaitWrittenMs);
  const uint64_t now = wall_ms();
  const uint64_t retain_ms = driver_.config().retain_ms;
  // A job past its retention is gone already, as reads say, though its removal is a moment away.
  return store_.list(
      [&q, now, retain_ms](const JobRecord& r) {
        return matches(q, r, now) &&
               !past_retention(r.status.state, r.status.at_ms, retain_ms, now);
      },
      q.limit, q.cursor);
}

// Scatter-gather: every usable member lists its own records from the cursor on; the pages are
// merged by id and cut where the shortest-reaching member stopped scanning, so that nothing in the
// answer can be missing a copy that a later page would bring.
Result<Store::Page> ClusterView::list(const ListQuery& q, bool local_only) {
  if (local_only) return list_local(q);
  std::map<std::string, JobRecord> by_position;  // ascending; read backwards for newest first
  std::string horizon;                           // the highest position where a scan stopped
  bool more = false;
  auto take = [&](std::vector<JobRecord> records, const std::string& next_cursor) {
    for (JobRecord& r : records) {
      std::string pos = position_of(r);
      auto it = by_position.find(pos);
      if (it == by_position.end()) {
        by_position.emplace(std::move(pos), std::move(r));
      } else {
        it->second = merge(it->second, r);
      }
    }
    if (!next_cursor.empty()) {
      more = true;
      horizon = std::max(horizon, next_cursor);
    }
  };
  auto mine = list_local(q);
  if (!mine.is_ok()) return mine.status();
  take(std::move(mine.value().records), mine.value().next_cursor);
  // A type filter longer than any job type matches nothing, cut or not.
  ListRequest ask{0, q.state, q.type.substr(0, kListTypeBytesMax),
                  static_cast<uint32_t>(std::clamp<size_t>(q.limit, 1, kListLimitMax)),
                  q.cursor.substr(0, kListCursorBytesMax)};
  const auto snap = driver_.snapshot();
  const auto peers = snap.placement ? snap.placement->usable_peers() : std::vector<std::string>{};
  const size_t reply_kind = Message(std::in_place_type<ListReply>).index();
  for (auto& got : call_each(peers, reply_kind, [&ask](uint64_t corr) {
         ask.corr = corr;
         return Message(ask);
       })) {
    if (!got) continue;  // a member that cannot answer is skipped, as in a read
    ListReply& reply = std::get<ListReply>(*got);
    std::vector<JobRecord> records;
    records.reserve(reply.records.size());
    for (const SharedRecord& r : reply.records) records.push_back(*r);
    take(std::move(records), reply.next_cursor);
  }
  Store::Page page;
  const uint64_t now = wall_ms();
  for (auto it = by_position.rbegin(); it != by_position.rend(); ++it) {
    if (page.records.size() == q.limit) {
      page.next_cursor = position_of(page.records.back());
      return page;
    }
    if (it->first < horizon) break;
    if (matches(q, it->second, now)) page.records.push_back(it->second);
  }
  if (more) page.next_cursor = horizon;
  return page;
}

// The same request to every peer at once, posted to the loop in one go: a round costs its
// slowest member's answer (at most peer_timeout_ms), not the sum of them, and takes no thread.
std::vector<std::optional<Message>> ClusterView::call_each(
    const std::vector<std::string>& peers, size_t answer_kind,
    const std::function<Message(uint64_t corr)>& make) {
  auto gather = std::make_shared<Gather>();
  gather->answers.resize(peers.size());
  gather->open = peers.size();
  std::vector<uint64_t> corrs;
  std::vector<std::string> bytes;
  {
    std::lock_guard lock(asked_mu_);
    for (size_t i = 0; i < peers.size(); ++i) {
      const uint64_t corr = next_corr_++;
      asked_.emplace(corr, Asked{gather, i, peers[i], answer_kind});
      corrs.push_back(corr);
      bytes.push_back(encode_message(make(corr)));
    }
  }
  if (peers.empty()) return {};
  asio::post(io_, [this, peers, corrs, bytes = std::move(bytes)]() mutable {
    for (size_t i = 0; i < peers.size(); ++i)
      transport_.send(peers[i], std::move(bytes[i]), [this, corr = corrs[i]](const Status&) {
        settle(corr, nullptr, std::nullopt);
      });
    transport_.flush();
  });
  std::unique_lock lock(asked_mu_);
  answered_.wait_for(lock, std::chrono::milliseconds(peer_timeout_ms_),
                     [&gather] { return gather->open == 0; });
  for (uint64_t corr : corrs) asked_.erase(corr);  // those still open time out
  return std::move(gather->answers);
}

// An answer (from `from`) or a failure (from null) for request `corr`; anything but the expected
// answer from the member asked is dropped.
void ClusterView::settle(uint64_t corr, const std::string* from, std::optional<Message> answer) {
  std::lock_guard lock(asked_mu_);
  auto it = asked_.find(corr);
  if (it == asked_.end()) return;
  Asked& a = it->second;
  if (from != nullptr && (*from != a.peer || !answer || answer->index() != a.answer_kind)) return;
  a.gather->answers[a.index] = std::move(answer);
  if (--a.gather->open == 0) answered_.notify_all();
  asked_.erase(it);
}

std::vector<std::string> ClusterView::replicas_of(const std::string& id) const {
  const auto snap = driver_.snapshot();
  if (!snap.placement) return {};
  return snap.placement->replicas(id);
}

nlohmann::json ClusterView::ring_json() {
  const auto snap = driver_.snapshot();
  const Placement& placement = *snap.placement;
  const PlacementOptions& o = placement.options();
  const auto shares = placement.ring().shares(o.replicas);
  const auto directory = driver_.members();
  std::map<std::string, nlohmann::json> held_by;  // absent: did not answer
  held_by[placement.self()] = snap.held;
  const auto peers = placement.usable_peers();
  const size_t reply_kind = Message(std::in_place_type<HeldReply>).index();
  auto answers =
      call_each(peers, reply_kind, [](uint64_t corr) { return Message(HeldRequest{corr}); });
  for (size_t i = 0; i < answers.size(); ++i)
    if (answers[i]) held_by[peers[i]] = std::get<HeldReply>(*answers[i]).held;
  nlohmann::json members = nlohmann::json::array();
  for (const auto& s : shares) {
    auto state = placement.members().find(s.name);
    auto known = directory.find(s.name);
    auto it = held_by.find(s.name);
    nlohmann::json ranges = nlohmann::json::array();
    for (const auto& r : placement.ring().ranges_of(s.name, 1))
      ranges.push_back({hex16(r.start), hex16(r.end)});
    members.push_back({{"name", s.name},
                       {"state", state == placement.members().end()
                                     ? "unknown"
                                     : std::string(member_state_name(state->second))},
                       {"api", s.name == placement.self() ? self_api_
                               : known == directory.end() ? std::string()
                                                          : known->second.api},
                       {"tokens", s.tokens},
                       {"primary_fraction", s.primary_fraction},
                       {"replica_fraction", s.replica_fraction},
                       {"jobs_held", it == held_by.end() ? nlohmann::json(nullptr) : it->second},
                       {"primary_ranges", std::move(ranges)}});
  }
  // Reaped members (dead past --reap-after-s) own nothing any more; listed last, without tokens.
  for (const std::string& name : placement.reaped()) {
    auto known = directory.find(name);
    members.push_back({{"name", name},
                       {"state", "reaped"},
                       {"api", known == directory.end() ? std::string() : known->second.api},
                       {"tokens", 0},
                       {"primary_fraction", 0.0},
                       {"replica_fraction", 0.0},
                       {"jobs_held", nullptr},
                       {"primary_ranges", nlohmann::json::array()}});
  }
  return {{"vnodes", o.vnodes},
          {"replicas", o.replicas},
          {"write_quorum", placement.write_quorum()},
          {"version", placement.version()},
          {"members", std::move(members)}};
}

void ClusterView::receive(const std::string& from, Message&& m) {
  if (const auto* held = std::get_if<HeldRequest>(&m)) {
    const auto snap = driver_.snapshot();
    return send_on_loop(from, HeldReply{held->corr, snap.held, snap.unfinished});
  }
  if (auto* list = std::get_if<ListRequest>(&m)) {
    {
      std::lock_guard lock(work_mu_);
      if (!stopping_ && work_.size() < kListQueueMax) {
        work_.emplace_back(from, std::move(*list));
        work_cv_.notify_one();
        return;
      }
    }
    lists_dropped_++;
    return;
  }
  const uint64_t corr = corr_of(m);
  settle(corr, &from, std::move(m));
}

// The worker: one list request at a time, in the order they came.
void ClusterView::work() {
  std::unique_lock lock(work_mu_);
  for (;;) {
    work_cv_.wait(lock, [this] { return stopping_ || !work_.empty(); });
    if (stopping_) return;
    auto [to, q] = std::move(work_.front());
    work_.pop_front();
    lock.unlock();
    answer_list(to, q);
    lock.lock();
  }
}

// One page of this node's records for `to`; a page past kListReplyBytesMax ends early, its cursor
// at its last record. A store error sends nothing: the asker skips this member.
void ClusterView::answer_list(const std::string& to, const ListRequest& q) const {
  auto page = list_local(ListQuery{q.state, q.type, q.limit, q.cursor});
  if (!page.is_ok()) return;
  ListReply reply{q.corr, {}, std::move(page.value().next_cursor)};
  size_t bytes = 0;
  for (JobRecord& r : page.value().records) {
    SharedRecord s = SharedRecord::of(std::move(r));
    if (!reply.records.empty() && bytes + s.bytes->size() > kListReplyBytesMax) {
      reply.next_cursor = position_of(*reply.records.back());
      break;
    }
    bytes += s.bytes->size();
    reply.records.push_back(std::move(s));
  }
  send_on_loop(to, reply);
}

// Encodes here, sends on the loop (PeerTransport::send is the loop's). A reply that cannot be
// delivered is not retried: the asker skips this member.
void ClusterView::send_on_loop(const std::string& to, const Message& m) const {
  asio::post(io_, [this, to, bytes = encode_message(m)]() mutable {
    transport_.send(to, std::move(bytes), [](const Status&) {});
    transport_.flush();
  });
}

}  // namespace meshwork
