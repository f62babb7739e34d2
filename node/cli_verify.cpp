// `meshwork verify`: a job's receipts checked against the node keys the mesh knows
// (node/receipt_check.h). The job comes from GET /v1/jobs/{id} or a saved document (--file); the
// keys always come from GET /v1/cluster/members of --node, never from the receipts themselves.
// Beside each receipt it prints what --node itself says of it (GET /v1/jobs/{id}/receipts), when
// the node says anything: that is the node's word, shown for comparison; the exit status is this
// check's alone.
// Exit: 0 every receipt valid and at least one; 1 any invalid; 2 could not check (no receipt, a
// node the mesh knows no key for, the node unreachable, a usage error).
#include <fstream>
#include <iostream>
#include <map>

#include "dht/envelope.h"
#include "node/cli_common.h"
#include "node/receipt_check.h"

namespace meshwork::cli {
namespace {

using nlohmann::json;
using Kind = ReceiptVerdict::Kind;

// The job document from --file or from the node; nullopt after printing why.
std::optional<json> load_job(const ClientArgs& a) {
  if (!a.file.empty()) {
    std::ifstream in(a.file);
    json j = in ? json::parse(in, nullptr, false) : json();
    if (j.is_object()) return j;
    fail(a.file + " is not a job document (JSON object)", kVerifyUnchecked);
    return std::nullopt;
  }
  if (!is_job_id(a.id)) {
    fail("'" + a.id + "' is not a job id", kVerifyUnchecked);
    return std::nullopt;
  }
  auto c = client_for(a);
  int ignored = 0;
  return get_object(c.Get("/v1/jobs/" + a.id), ignored);
}

// Member name → public key, as the node at --node knows them from gossip.
std::optional<NodeKeys> mesh_keys(const ClientArgs& a) {
  auto c = client_for(a);
  int ignored = 0;
  auto view = get_object(c.Get("/v1/cluster/members"), ignored);
  if (!view) return std::nullopt;
  NodeKeys keys;
  for (const auto& m : view->value("members", json::array()))
    if (m.is_object() && m.value("name", "") != "" && m.value("public_key", "") != "")
      keys[m["name"].get<std::string>()] = m["public_key"].get<std::string>();
  return keys;
}

// The node's status per receipt (valid, invalid, unchecked), by the node each is filed under;
// empty when the node does not say (it does not hold the job, or predates the endpoint).
std::map<std::string, std::string> node_says(const ClientArgs& a, const std::string& id) {
  std::map<std::string, std::string> out;
  if (!is_job_id(id)) return out;
  auto c = client_for(a);
  const auto r = c.Get("/v1/jobs/" + id + "/receipts");
  if (!r || r->status != 200) return out;
  const json j = json::parse(r->body, nullptr, false);
  if (!j.is_object() || !j.contains("receipts") || !j["receipts"].is_array()) return out;
  for (const auto& rc : j["receipts"])
    if (rc.is_object() && rc.contains("node") && rc["node"].is_string() && rc.contains("status") &&
        rc["status"].is_string())
      out[rc["node"].get<std::string>()] = rc["status"].get<std::string>();
  return out;
}

const char* label(Kind k) {
  return k == Kind::valid ? "valid" : k == Kind::invalid ? "INVALID" : "UNCHECKED";
}

}  // namespace

int verify(const ClientArgs& a) {
  if (a.file.empty() == a.id.empty()) return fail("give a job id or --file", kVerifyUnchecked);
  const auto job = load_job(a);
  if (!job) return kVerifyUnchecked;
  const auto keys = mesh_keys(a);
  if (!keys) return fail("cannot learn the mesh's node keys; nothing checked", kVerifyUnchecked);
  const std::vector<ReceiptVerdict> verdicts = check_receipts(*job, *keys);
  const auto text = [&](const char* k) {
    return job->contains(k) && (*job)[k].is_string() ? (*job)[k].get<std::string>() : "?";
  };
  const std::string id = text("id");
  if (verdicts.empty())
    return fail("job " + id + " (" + text("state") + ") has no receipt yet: nothing to check",
                kVerifyUnchecked);
  const std::map<std::string, std::string> says = node_says(a, id);
  size_t invalid = 0, unchecked = 0;
  for (const auto& v : verdicts) {
    const std::string filed = v.where.starts_with("results.") ? v.where.substr(8) : "";
    const auto said = says.find(filed);
    const std::string node_word =
        said == says.end() ? "" : " [the node says: " + said->second + "]";
    std::printf("%-9s %-16s node=%s attempt=%llu%s%s%s\n", label(v.kind), v.where.c_str(),
                v.node.c_str(), static_cast<unsigned long long>(v.attempt),
                v.why.empty() ? "" : ": ", v.why.c_str(), node_word.c_str());
    invalid += v.kind == Kind::invalid;
    unchecked += v.kind == Kind::unchecked;
  }
  if (invalid) {
    std::printf("job %s: %zu of %zu receipts INVALID\n", id.c_str(), invalid, verdicts.size());
    return kVerifyInvalid;
  }
  if (unchecked) {
    std::printf("job %s: %zu of %zu receipts could not be checked\n", id.c_str(), unchecked,
                verdicts.size());
    return kVerifyUnchecked;
  }
  std::printf("job %s: %zu receipts, all valid (signed by the keys the mesh knows, hashes match)\n",
              id.c_str(), verdicts.size());
  return kVerifyValid;
}

}  // namespace meshwork::cli
