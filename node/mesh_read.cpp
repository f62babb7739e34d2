// The mesh's read side: one job from all its replicas (merged, with read repair), cluster-wide
// listing by scatter-gather, and the ring view; see mesh.h.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>

#include "node/log.h"
#include "node/mesh.h"

namespace meshwork {
namespace {

struct Copies {
  std::mutex mu;
  std::condition_variable cv;
  size_t waiting = 0;
  size_t failed = 0;
  std::vector<std::pair<std::string, std::optional<JobRecord>>> copies;  // by replica
};

// "<created_at 16 hex>/<id>": the listing order, newest first when compared descending.
std::string position_of(const JobRecord& r) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(r.created_at_ms));
  return std::string(buf) + "/" + r.id;
}

}  // namespace

// Every usable replica's copy (and this node's, if it holds one), merged. nullopt when nobody
// answering holds the job; Code::unavailable when nobody could be asked or answered.
Result<std::optional<JobRecord>> Mesh::read_merged(const std::string& id, const Topology& topo) {
  auto c = std::make_shared<Copies>();
  auto local = store_.get(id);
  if (local.is_ok()) c->copies.emplace_back(self_, std::move(local).value());
  const auto list = topo.replicas(id);
  for (const std::string& m : list) {
    if (m == self_) continue;
    {
      std::lock_guard lock(c->mu);
      c->waiting++;
    }
    peers_.fetch(m, id, [c, m](Result<std::optional<std::string>> got) {
      std::optional<JobRecord> rec;
      bool ok = got.is_ok();
      if (ok && got.value()) {
        auto decoded = decode_record(*got.value());
        ok = decoded.is_ok();
        if (ok) rec = std::move(decoded).value();
      }
      std::lock_guard lock(c->mu);
      if (ok) {
        c->copies.emplace_back(m, std::move(rec));
      } else {
        c->failed++;
      }
      if (--c->waiting == 0) c->cv.notify_all();
    });
  }
  std::vector<std::pair<std::string, std::optional<JobRecord>>> copies;
  {
    std::unique_lock lock(c->mu);
    c->cv.wait_for(lock, std::chrono::milliseconds(options_.peer_timeout_ms),
                   [&] { return c->waiting == 0; });
    copies = c->copies;
  }
  std::optional<JobRecord> merged;
  for (auto& [m, rec] : copies) {
    if (rec && (rec->id != id || !verified(*rec))) rec.reset();  // a copy that fails its checks
    if (!rec) continue;
    merged = merged ? merge(*merged, *rec) : *rec;
  }
  if (!merged) {
    if (copies.empty()) return Status(Code::unavailable, "no replica of the job answered");
    return std::optional<JobRecord>();
  }
  std::vector<std::string> stale;
  for (const auto& [m, rec] : copies)
    if (!rec || !same_state(*rec, *merged)) stale.push_back(m);
  for (const std::string& m : stale) {
    {
      std::lock_guard lock(stats_mu_);
      stats_.read_repairs++;
    }
    if (m == self_) {
      if (topo.is_replica(id, self_) || catalog_.contains(id))
        store_.merge(*merged, [](Status, Applied) {});
    } else {
      send_to(m, *merged, encode_record(*merged), [](const ReplicateAck&) {});
    }
  }
  return merged;
}

Result<JobRecord> Mesh::get(const std::string& id, bool local_only) {
  if (local_only) return jobs_.get(id);
  auto merged = read_merged(id, *topology());
  if (!merged.is_ok()) return merged.status();
  if (!merged.value()) return Status(Code::not_found, "no job with id " + id);
  return std::move(*merged.value());
}

// Scatter-gather: every usable member lists its own records from the cursor on; the pages are
// merged by id and cut where the shortest-reaching member stopped scanning, so that nothing in the
// answer can be missing a copy that a later page would bring.
Result<Store::Page> Mesh::list(const Jobs::ListQuery& q, bool local_only) {
  if (local_only) return jobs_.list(q);
  auto topo = topology();
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
  auto mine = jobs_.list(q);
  if (!mine.is_ok()) return mine.status();
  take(std::move(mine.value().records), mine.value().next_cursor);
  nlohmann::json ask = {{"state", q.state ? std::string(state_name(*q.state)) : ""},
                        {"type", q.type},
                        {"limit", q.limit},
                        {"cursor", q.cursor}};
  // The filter and cursor come from the query string and may be any bytes: bytes that are not
  // UTF-8 are replaced (such a type or cursor matches nothing anyway) instead of throwing.
  const std::string body = ask.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  for (auto& got : call_each(topo->usable_peers(), "/internal/v1/list", body)) {
    if (!got.is_ok()) continue;  // a member that cannot answer is skipped, as in a read
    auto j = nlohmann::json::parse(got.value(), nullptr, false);
    if (!j.is_object() || !j["records"].is_array()) continue;
    std::vector<JobRecord> records;
    for (const auto& rj : j["records"]) {
      auto r = record_from_json(rj);
      if (r.is_ok()) records.push_back(std::move(r).value());
    }
    take(std::move(records), j.value("next_cursor", std::string()));
  }
  Store::Page page;
  for (auto it = by_position.rbegin(); it != by_position.rend(); ++it) {
    if (page.records.size() == q.limit) {
      page.next_cursor = position_of(page.records.back());
      return page;
    }
    if (it->first < horizon) break;
    const JobRecord& r = it->second;
    if (q.state && public_state_name(r.status.state) != public_state_name(*q.state)) continue;
    if (!q.type.empty() && r.type != q.type) continue;
    page.records.push_back(r);
  }
  if (more) page.next_cursor = horizon;
  return page;
}

// The same request to every peer, kFanoutMax at a time: a round costs its slowest member's answer,
// not the sum of them, and the threads stay bounded however large the mesh.
std::vector<Result<std::string>> Mesh::call_each(const std::vector<std::string>& peers,
                                                 const std::string& path, const std::string& body) {
  std::vector<Result<std::string>> out;
  out.reserve(peers.size());
  for (size_t start = 0; start < peers.size(); start += kFanoutMax) {
    std::vector<std::future<Result<std::string>>> wave;
    for (size_t i = start; i < std::min(peers.size(), start + kFanoutMax); ++i)
      wave.push_back(std::async(std::launch::async, [this, &peer = peers[i], &path, &body] {
        return peers_.call(peer, path, body, options_.peer_timeout_ms);
      }));
    for (auto& w : wave) out.push_back(w.get());
  }
  return out;
}

nlohmann::json Mesh::ring_json() {
  auto topo = topology();
  const auto shares = topo->ring().shares(options_.placement.replicas);
  std::map<std::string, nlohmann::json> held_by;  // absent: did not answer
  held_by[self_] = catalog_.size();
  const auto peers = topo->usable_peers();
  auto answers = call_each(peers, "/internal/v1/held", "{}");
  for (size_t i = 0; i < peers.size(); ++i) {
    auto j = answers[i].is_ok() ? nlohmann::json::parse(answers[i].value(), nullptr, false)
                                : nlohmann::json();
    if (j.is_object() && j["held"].is_number_unsigned()) held_by[peers[i]] = j["held"];
  }
  nlohmann::json members = nlohmann::json::array();
  for (const auto& s : shares) {
    const Peer& p = topo->members().at(s.name);
    auto it = held_by.find(s.name);
    const nlohmann::json held = it == held_by.end() ? nlohmann::json(nullptr) : it->second;
    nlohmann::json ranges = nlohmann::json::array();
    for (const auto& r : topo->ring().ranges_of(s.name, 1)) {
      char a[17], b[17];
      std::snprintf(a, sizeof a, "%016llx", static_cast<unsigned long long>(r.start));
      std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(r.end));
      ranges.push_back({a, b});
    }
    members.push_back({{"name", s.name},
                       {"state", std::string(gossip::to_string(p.state))},
                       {"api", p.api},
                       {"tokens", s.tokens},
                       {"primary_fraction", s.primary_fraction},
                       {"replica_fraction", s.replica_fraction},
                       {"jobs_held", held},
                       {"primary_ranges", std::move(ranges)}});
  }
  return {{"vnodes", options_.placement.vnodes},
          {"replicas", options_.placement.replicas},
          {"write_quorum", topo->write_quorum()},
          {"version", topo->version()},
          {"members", std::move(members)}};
}

}  // namespace meshwork
