// The read-only views of the command-line client: members, jobs, ring and info print a node's
// answer as tables or aligned text (--json: as the node sent it). See cli_client.h.
#include <cstdio>
#include <iostream>

#include "node/cli_common.h"

namespace meshwork::cli {
namespace {

using nlohmann::json;

constexpr size_t kLineWidth = 100;  // info wraps its "key=value" lists at this width

// A field as text for a table cell: strings as they are, null as "-", anything else as JSON.
std::string cell(const json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return "-";
  const json& v = obj[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

std::string percent(const json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_number()) return "-";
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * obj[key].get<double>());
  return buf;
}

// GET `path` (with `params`); prints the body with --json, else hands the object to `show`.
template <typename Show>
int view(const ClientArgs& a, const std::string& path, const httplib::Params& params, Show show) {
  auto c = client_for(a);
  auto r = c.Get(path, params, httplib::Headers{});
  int rc = kExitOk;
  auto body = get_object(r, rc);
  if (!body) return rc;
  if (a.json) {
    std::cout << r->body << (r->body.ends_with('\n') ? "" : "\n");
    return kExitOk;
  }
  show(*body);
  return kExitOk;
}

// "label  k=v k=v ..." for the scalar fields of `obj`, wrapped under the label.
void print_fields(const std::string& label, const json& obj) {
  if (!obj.is_object()) return;
  std::string line = label;
  line.resize(12, ' ');
  const size_t indent = line.size();
  bool first = true;
  for (const auto& [k, v] : obj.items()) {
    if (v.is_object() || v.is_array()) continue;
    const std::string item = k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
    if (!first && line.size() + 1 + item.size() > kLineWidth) {
      std::cout << line << "\n";
      line.assign(indent, ' ');
      first = true;
    }
    line += (first ? "" : " ") + item;
    first = false;
  }
  std::cout << line << "\n";
}

void print_info(const json& n) {
  std::cout << cell(n, "name") << "  meshwork " << cell(n, "version") << ", up "
            << cell(n, "uptime_s") << " s\n";
  std::printf("%-12s%s\n%-12s%s\n", "api", cell(n, "api").c_str(), "public key",
              cell(n, "public_key").c_str());
  std::printf("%-12sworkers=%s backlog=%s running=%s\n", "executor", cell(n, "workers").c_str(),
              cell(n, "backlog").c_str(), cell(n, "running").c_str());
  for (const char* section : {"jobs", "stats", "mesh", "store", "gossip", "limits"})
    if (n.contains(section)) print_fields(section, n[section]);
  std::string types;
  for (const auto& t : n.value("job_types", json::array()))
    types += (types.empty() ? "" : ", ") + cell(t, "type");
  std::printf("%-12s%s\n", "job types", types.c_str());
}

void print_ring(const json& ring) {
  std::cout << "ring version " << cell(ring, "version") << ": R=" << cell(ring, "replicas")
            << " W=" << cell(ring, "write_quorum") << ", " << cell(ring, "vnodes")
            << " vnodes per member\n";
  std::printf("%-16s %-8s %-22s %-7s %-8s %-8s %s\n", "NAME", "STATE", "API", "RANGES", "PRIMARY",
              "REPLICA", "JOBS");
  for (const auto& m : ring.value("members", json::array())) {
    const size_t ranges =
        m.is_object() && m.contains("primary_ranges") && m["primary_ranges"].is_array()
            ? m["primary_ranges"].size()
            : 0;
    std::printf("%-16s %-8s %-22s %-7zu %-8s %-8s %s\n", cell(m, "name").c_str(),
                cell(m, "state").c_str(), cell(m, "api").c_str(), ranges,
                percent(m, "primary_fraction").c_str(), percent(m, "replica_fraction").c_str(),
                cell(m, "jobs_held").c_str());
  }
}

void print_jobs(const json& page) {
  std::printf("%-64s  %-10s %-10s %-9s %s\n", "ID", "TYPE", "STATE", "ATTEMPTS", "CREATED");
  for (const auto& j : page.value("jobs", json::array())) {
    const std::string attempts = cell(j, "attempts") + "/" + cell(j, "max_attempts");
    const bool at =
        j.is_object() && j.contains("created_at") && j["created_at"].is_number_unsigned();
    std::printf("%-64s  %-10s %-10s %-9s %s\n", cell(j, "id").c_str(), cell(j, "type").c_str(),
                cell(j, "state").c_str(), attempts.c_str(),
                at ? utc_time(j["created_at"].get<uint64_t>()).c_str() : "-");
  }
  if (page.contains("next_cursor") && page["next_cursor"].is_string())
    std::cout << "next cursor: " << page["next_cursor"].get<std::string>() << "\n";
}

void print_members(const json& view) {
  std::printf("%-16s %-8s %-12s %-22s %s\n", "NAME", "STATE", "INCARNATION", "GOSSIP", "API");
  for (const auto& m : view.value("members", json::array()))
    std::printf("%-16s %-8s %-12s %-22s %s\n", cell(m, "name").c_str(), cell(m, "state").c_str(),
                cell(m, "incarnation").c_str(), cell(m, "gossip").c_str(), cell(m, "api").c_str());
}

}  // namespace

int members(const ClientArgs& a) {
  return view(a, "/v1/cluster/members", {}, print_members);
}
int ring(const ClientArgs& a) {
  return view(a, "/v1/cluster/ring", {}, print_ring);
}
int info(const ClientArgs& a) {
  return view(a, "/v1/node", {}, print_info);
}

int jobs(const ClientArgs& a) {
  httplib::Params q;
  if (!a.state.empty()) q.emplace("state", a.state);
  if (!a.type.empty()) q.emplace("type", a.type);
  if (a.limit) q.emplace("limit", std::to_string(a.limit));
  if (!a.cursor.empty()) q.emplace("cursor", a.cursor);
  return view(a, "/v1/jobs", q, print_jobs);
}

}  // namespace meshwork::cli
