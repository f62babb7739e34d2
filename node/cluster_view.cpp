// Cluster-wide listing and the ring view; see cluster_view.h.
#include "node/cluster_view.h"

#include <algorithm>
#include <cstdio>
#include <future>
#include <map>

#include "node/clock.h"
#include "node/json_bounded.h"

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

std::string string_field(const nlohmann::json& j, const char* name, size_t bytes_max) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) return "";
  return it->get<std::string>().substr(0, bytes_max);
}

uint64_t uint_field(const nlohmann::json& j, const char* name, uint64_t fallback) {
  auto it = j.find(name);
  return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : fallback;
}

bool matches(const ListQuery& q, const JobRecord& r, uint64_t now_ms) {
  if (!q.type.empty() && r.type != q.type) return false;
  return q.state.empty() || public_state(r, now_ms) == q.state;
}

}  // namespace

ClusterView::ClusterView(Store& store, PeerClient& peers, const ReplicaDriver& driver,
                         std::string self_api, uint64_t peer_timeout_ms)
    : store_(store),
      peers_(peers),
      driver_(driver),
      self_api_(std::move(self_api)),
      peer_timeout_ms_(peer_timeout_ms) {}

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
Result<Store::Page> ClusterView::list(const ListQuery& q, bool local_only) const {
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
  nlohmann::json ask = {
      {"state", q.state}, {"type", q.type}, {"limit", q.limit}, {"cursor", q.cursor}};
  // The filter and cursor come from the query string and may be any bytes: bytes that are not
  // UTF-8 are replaced (such a type or cursor matches nothing anyway) instead of throwing.
  const std::string body = ask.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const auto snap = driver_.snapshot();
  const auto peers = snap.placement ? snap.placement->usable_peers() : std::vector<std::string>{};
  for (auto& got : call_each(peers, "/internal/v1/list", body)) {
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

// The same request to every peer, kFanoutMax at a time: a round costs its slowest member's answer,
// not the sum of them, and the threads stay bounded however large the mesh.
std::vector<Result<std::string>> ClusterView::call_each(const std::vector<std::string>& peers,
                                                        const std::string& path,
                                                        const std::string& body) const {
  std::vector<Result<std::string>> out;
  out.reserve(peers.size());
  for (size_t start = 0; start < peers.size(); start += kFanoutMax) {
    std::vector<std::future<Result<std::string>>> wave;
    for (size_t i = start; i < std::min(peers.size(), start + kFanoutMax); ++i)
      wave.push_back(std::async(std::launch::async, [this, &peer = peers[i], &path, &body] {
        return peers_.call(peer, path, body, peer_timeout_ms_);
      }));
    for (auto& w : wave) out.push_back(w.get());
  }
  return out;
}

nlohmann::json ClusterView::placement_json(const std::string& id) const {
  const auto snap = driver_.snapshot();
  std::vector<std::string> list;
  if (snap.placement) list = snap.placement->replicas(id);
  return {{"owner", list.empty() ? nlohmann::json(nullptr) : nlohmann::json(list.front())},
          {"replicas", list}};
}

nlohmann::json ClusterView::ring_json() const {
  const auto snap = driver_.snapshot();
  const Placement& placement = *snap.placement;
  const PlacementOptions& o = placement.options();
  const auto shares = placement.ring().shares(o.replicas);
  const auto directory = driver_.members();
  std::map<std::string, nlohmann::json> held_by;  // absent: did not answer
  held_by[placement.self()] = snap.held;
  const auto peers = placement.usable_peers();
  auto answers = call_each(peers, "/internal/v1/held", "{}");
  for (size_t i = 0; i < peers.size(); ++i) {
    auto j = answers[i].is_ok() ? nlohmann::json::parse(answers[i].value(), nullptr, false)
                                : nlohmann::json();
    if (j.is_object() && j["held"].is_number_unsigned()) held_by[peers[i]] = j["held"];
  }
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

Result<std::string> ClusterView::answer_list(const std::string& body) const {
  auto j = parse_json_bounded(body);
  if (!j.is_ok()) return j.status();
  if (!j.value().is_object()) return Status(Code::malformed, "the body must be a JSON object");
  ListQuery q;
  const std::string state = string_field(j.value(), "state", 32);
  if (!state.empty()) {
    if (!is_public_state_name(state)) return Status(Code::invalid, "unknown state " + state);
    q.state = state;
  }
  q.type = string_field(j.value(), "type", 64);
  q.limit = std::clamp<size_t>(uint_field(j.value(), "limit", 50), 1, 1'000);
  q.cursor = string_field(j.value(), "cursor", 128);
  auto page = list_local(q);
  if (!page.is_ok()) return page.status();
  std::string out = "{\"records\":[";
  for (size_t i = 0; i < page.value().records.size(); ++i) {
    if (i > 0) out += ',';
    out += record_to_json(page.value().records[i]).dump();
  }
  return out + "],\"next_cursor\":" +
         nlohmann::json(page.value().next_cursor)
             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
         "}";
}

std::string ClusterView::answer_held() const {
  const auto snap = driver_.snapshot();
  return nlohmann::json{{"held", snap.held}, {"unfinished", snap.unfinished}}.dump();
}

}  // namespace meshwork
