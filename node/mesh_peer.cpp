// The peer-only endpoints (/internal/v1/...), called by other nodes with signed requests (the API
// checks the signature before calling in); see mesh.h and docs/protocol.md. Every body is
// untrusted: bounded, type-checked, and every record is checked (and its envelope's signature
// verified when it is new here) before it is merged.
#include <chrono>

#include "node/clock.h"
#include "node/json_bounded.h"
#include "node/log.h"
#include "node/mesh.h"

namespace meshwork {
namespace {

constexpr size_t kPeerItemsMax = 4'096;  // records or ids per peer request

Result<nlohmann::json> parse_body(const std::string& body) {
  auto j = parse_json_bounded(body);
  if (!j.is_ok()) return j.status();
  if (!j.value().is_object()) return Status(Code::malformed, "the body must be a JSON object");
  return j;
}

Result<const nlohmann::json*> array_field(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_array())
    return Status(Code::malformed, std::string("'") + name + "' must be an array");
  if (it->size() > kPeerItemsMax)
    return Status(Code::too_large, std::string("'") + name + "' holds too many items");
  return &*it;
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

}  // namespace

Result<std::string> Mesh::handle_peer(const std::string& name, const std::string& sender,
                                      const std::string& body) {
  if (name == "replicate") return on_replicate(body);
  if (name == "fetch") return on_fetch(body);
  if (name == "digest") return on_digest(sender, body);
  if (name == "list") return on_list(body);
  if (name == "held") return on_held();
  return Status(Code::not_found, "no peer endpoint " + name);
}

bool Mesh::verified(const JobRecord& r) const {
  if (catalog_.contains(r.id)) return true;  // checked when it was first stored here
  return open_envelope(r.envelope, jobs_.options().limits).is_ok();
}

Status Mesh::merge_from_peer(Result<JobRecord> rec, PeerMergeFn done) {
  if (!rec.is_ok()) return rec.status();
  if (!verified(rec.value()))
    return Status(Code::unauthorized, "the job's envelope does not verify");
  std::vector<HistoryEntry> history = rec.value().history;  // copied before the record moves
  store_.merge(std::move(rec).value(),
               [history = std::move(history), done = std::move(done)](Status s, Applied a) {
                 const bool before = a.before && submitted_before(*a.before, history);
                 done(s, std::move(a), before);
               });
  return Status::ok();
}

namespace {

// The records of a replicate body, decoded one by one (a record that fails its checks fails
// alone): the binary body, or the JSON one older nodes send.
Result<std::vector<Result<JobRecord>>> replicated_records(const std::string& body) {
  std::vector<Result<JobRecord>> out;
  if (!body.empty() && body.front() != '{') {
    auto views = parse_replicate_body(body, kPeerItemsMax);
    if (!views.is_ok()) return views.status();
    out.reserve(views.value().size());
    for (std::string_view v : views.value()) out.push_back(decode_record(v));
    return out;
  }
  auto j = parse_body(body);
  if (!j.is_ok()) return j.status();
  auto records = array_field(j.value(), "records");
  if (!records.is_ok()) return records.status();
  out.reserve(records.value()->size());
  for (const nlohmann::json& r : *records.value()) out.push_back(record_from_json(r));
  return out;
}

}  // namespace

// Merges each record and answers, per record, what this replica now holds.
Result<std::string> Mesh::on_replicate(const std::string& body) {
  auto records = replicated_records(body);
  if (!records.is_ok()) return records.status();
  std::vector<Result<JobRecord>>& list = records.value();
  struct Answers {
    std::mutex mu;
    std::condition_variable cv;
    size_t left = 0;
    std::vector<nlohmann::json> items;
  };
  auto a = std::make_shared<Answers>();
  a->items.assign(list.size(), nlohmann::json());
  a->left = list.size();
  for (size_t i = 0; i < list.size(); ++i) {
    auto finish = [a, i](nlohmann::json item) {
      std::lock_guard lock(a->mu);
      a->items[i] = std::move(item);
      if (--a->left == 0) a->cv.notify_all();
    };
    Status s = merge_from_peer(std::move(list[i]), [finish](Status st, Applied ap, bool submitted) {
      if (!st.is_ok() || !ap.after) return finish({{"ok", false}, {"error", st.message()}});
      finish({{"ok", true},
              {"existed", submitted},
              {"state", std::string(state_name(ap.after->status.state))},
              {"attempt", ap.after->status.attempt},
              {"node", ap.after->status.node},
              {"cancel", ap.after->cancel_requested}});
    });
    if (!s.is_ok()) finish({{"ok", false}, {"error", s.message()}});
  }
  {
    std::lock_guard lock(stats_mu_);
    stats_.replicate_received += list.size();
  }
  std::unique_lock lock(a->mu);
  if (!a->cv.wait_for(lock, std::chrono::milliseconds(options_.peer_timeout_ms),
                      [&] { return a->left == 0; }))
    return Status(Code::unavailable, "the store did not apply the records in time");
  return nlohmann::json{{"results", a->items}}.dump();
}

Result<std::string> Mesh::on_fetch(const std::string& body) {
  auto j = parse_body(body);
  if (!j.is_ok()) return j.status();
  auto ids = array_field(j.value(), "ids");
  if (!ids.is_ok()) return ids.status();
  std::string out = "{\"records\":[";
  bool first = true;
  for (const auto& id : *ids.value()) {
    if (!first) out += ',';
    first = false;
    if (!id.is_string() || !is_job_id(id.get<std::string>())) {
      out += "null";
      continue;
    }
    auto rec = store_.get(id.get<std::string>());
    out += rec.is_ok() && rec.value() ? record_to_json(*rec.value()).dump() : "null";
  }
  return out + "]}";
}

// The caller's digests against ours over the records both should hold: the arcs that differ, and
// our (id, fingerprint) pairs in them.
Result<std::string> Mesh::on_digest(const std::string& sender, const std::string& body) {
  auto j = parse_body(body);
  if (!j.is_ok()) return j.status();
  auto digests = array_field(j.value(), "digests");
  if (!digests.is_ok()) return digests.status();
  if (uint_field(j.value(), "bits", 0) != kDigestBits ||
      digests.value()->size() != (1u << kDigestBits))
    return Status(Code::invalid, "digests must cover 2^" + std::to_string(kDigestBits) + " arcs");
  auto topo = topology();
  const Catalog::Keep keep = shared_with(sender, *topo);
  const auto mine = catalog_.digests(kDigestBits, keep);
  std::set<uint32_t> differ;
  for (uint32_t b = 0; b < mine.size(); ++b) {
    const auto& d = (*digests.value())[b];
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(mine[b]));
    if (!d.is_string() || d.get<std::string>() != buf) differ.insert(b);
  }
  nlohmann::json entries = nlohmann::json::array();
  for (const auto& [id, fp] :
       catalog_.entries_in(kDigestBits, differ, keep, kAntiEntropyEntriesMax)) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fp));
    entries.push_back({id, buf});
  }
  return nlohmann::json{{"differ", differ}, {"entries", std::move(entries)}}.dump();
}

Result<std::string> Mesh::on_list(const std::string& body) {
  auto j = parse_body(body);
  if (!j.is_ok()) return j.status();
  Jobs::ListQuery q;
  const std::string state = string_field(j.value(), "state", 32);
  if (!state.empty()) {
    q.state = parse_state(state);
    if (!q.state) return Status(Code::invalid, "unknown state " + state);
  }
  q.type = string_field(j.value(), "type", 64);
  q.limit = std::clamp<size_t>(uint_field(j.value(), "limit", 50), 1, 1'000);
  q.cursor = string_field(j.value(), "cursor", 128);
  auto page = jobs_.list(q);
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

Result<std::string> Mesh::on_held() {
  return nlohmann::json{{"held", catalog_.size()}, {"unfinished", catalog_.unfinished_count()}}
      .dump();
}

}  // namespace meshwork
