// The command-line client; see cli_client.h and the exit codes in main.cpp.
#include "node/cli_client.h"

#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <thread>

#include <nlohmann/json.hpp>

#include "node/clock.h"
#include "node/crypto.h"
#include "node/envelope.h"

namespace meshwork::cli {
namespace {

using nlohmann::json;

constexpr int kExitOk = 0, kExitJobFailed = 1, kExitUsage = 2, kExitRefused = 3, kExitDown = 4;

int fail(std::string_view what, int code) {
  std::cerr << "meshwork: " << what << "\n";
  return code;
}

// A client for an http:// or https:// node URL; https verifies the node's certificate against
// `ca_file` (or the system's trust store) and the URL's host.
httplib::Client client_for(const std::string& url, const std::string& ca_file) {
  httplib::Client c(url);
  if (!ca_file.empty()) c.set_ca_cert_path(ca_file);
  c.set_tcp_nodelay(true);
  c.set_connection_timeout(5);
  c.set_read_timeout(30);
  c.set_keep_alive(true);
  return c;
}

// Prints the response body; returns the exit code its status implies.
int report(const httplib::Result& r) {
  if (!r) return fail("cannot reach the node: " + httplib::to_string(r.error()), kExitDown);
  std::cout << r->body << (r->body.ends_with('\n') ? "" : "\n");
  if (r->status >= 500) return kExitDown;
  if (r->status >= 400) return kExitRefused;
  return kExitOk;
}

// The job body to send: a signed envelope when a key is given, else a plain job.
int build_body(const ClientArgs& a, json& body) {
  if (!a.envelope_file.empty()) {
    std::ifstream in(a.envelope_file);
    if (!in) return fail("cannot read " + a.envelope_file, kExitUsage);
    body = json::parse(in, nullptr, false);
    return body.is_object() ? kExitOk : fail(a.envelope_file + " is not a JSON object", kExitUsage);
  }
  if (a.type.empty()) return fail("give --type and --payload, or --envelope", kExitUsage);
  json spec{{"type", a.type}, {"payload", json::parse(a.payload, nullptr, false)}};
  if (spec["payload"].is_discarded()) return fail("--payload is not valid JSON", kExitUsage);
  if (a.max_attempts) spec["max_attempts"] = a.max_attempts;
  if (a.timeout_ms) spec["timeout_ms"] = a.timeout_ms;
  if (a.key_file.empty()) {
    body = std::move(spec);
    return kExitOk;
  }
  auto key = Identity::load(a.key_file);
  if (!key.is_ok()) return fail(key.status().message(), kExitUsage);
  auto env = sign_plain_job(spec, key.value(), wall_ms(), Limits{});
  if (!env.is_ok()) return fail(env.status().message(), kExitUsage);
  body = env.value().to_json();
  return kExitOk;
}

int sign(const ClientArgs& a) {
  if (a.key_file.empty()) return fail("sign needs --key", kExitUsage);
  json body;
  if (int rc = build_body(a, body); rc != kExitOk) return rc;
  std::cout << body.dump() << "\n";
  return kExitOk;
}

int wait_for(httplib::Client& c, const std::string& id, uint64_t wait_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
  auto delay = std::chrono::milliseconds(50);
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = c.Get("/v1/jobs/" + id);
    if (r && r->status == 200) {
      json j = json::parse(r->body, nullptr, false);
      std::string state = j.is_object() ? j.value("state", "") : "";
      if (state == "succeeded" || state == "failed" || state == "cancelled") {
        std::cout << r->body << "\n";
        return state == "succeeded" ? kExitOk : kExitJobFailed;
      }
    }
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::milliseconds(1000));
  }
  return fail("timed out waiting for job " + id, kExitDown);
}

int submit(const ClientArgs& a) {
  json body;
  if (int rc = build_body(a, body); rc != kExitOk) return rc;
  auto c = client_for(a.to, a.ca_file);
  auto r = c.Post("/v1/jobs", body.dump(), "application/json");
  if (!a.wait || !r || r->status >= 300) return report(r);
  json j = json::parse(r->body, nullptr, false);
  if (!j.is_object() || !j.contains("id")) return report(r);
  std::cerr << "accepted " << j["id"].get<std::string>() << ", waiting\n";
  return wait_for(c, j["id"].get<std::string>(), a.wait_s);
}

int status(const ClientArgs& a) {
  if (!is_job_id(a.id)) return fail("'" + a.id + "' is not a job id", kExitUsage);
  auto c = client_for(a.to, a.ca_file);
  return report(c.Get("/v1/jobs/" + a.id));
}

// A table of the members a node sees.
int members(const ClientArgs& a) {
  auto c = client_for(a.to, a.ca_file);
  auto r = c.Get("/v1/cluster/members");
  if (!r || r->status != 200) return report(r);
  json j = json::parse(r->body, nullptr, false);
  if (!j.is_object() || !j.contains("members")) return report(r);
  std::printf("%-16s %-8s %-12s %-22s %s\n", "NAME", "STATE", "INCARNATION", "GOSSIP", "API");
  for (const auto& m : j["members"])
    std::printf("%-16s %-8s %-12llu %-22s %s\n", m.value("name", "").c_str(),
                m.value("state", "").c_str(),
                static_cast<unsigned long long>(m.value("incarnation", uint64_t{0})),
                m.value("gossip", "").c_str(), m.value("api", "").c_str());
  return kExitOk;
}

void add_node_options(CLI::App* cmd, ClientArgs& a) {
  cmd->add_option("--to", a.to, "node URL, http:// or https://")->capture_default_str();
  cmd->add_option("--ca-file", a.ca_file,
                  "PEM CA certificates that verify an https:// node (default: the system's)")
      ->check(CLI::ExistingFile);
}

void add_job_options(CLI::App* cmd, ClientArgs& a) {
  cmd->add_option("--type", a.type, "job type (echo, sleep, flaky, pow, tx-verify, enrich)");
  cmd->add_option("--payload", a.payload, "job payload as JSON")->capture_default_str();
  cmd->add_option("--max-attempts", a.max_attempts, "attempts before the job fails");
  cmd->add_option("--timeout-ms", a.timeout_ms, "per-attempt timeout");
}

}  // namespace

void add_client_commands(CLI::App& app, ClientArgs& a) {
  auto* sign_cmd = app.add_subcommand("sign", "print a signed job envelope (no network)");
  sign_cmd->add_option("--key", a.key_file, "Ed25519 identity file (meshwork keygen)")->required();
  add_job_options(sign_cmd, a);

  auto* submit_cmd = app.add_subcommand("submit", "submit a job to a node");
  add_node_options(submit_cmd, a);
  submit_cmd->add_option("--key", a.key_file, "sign with this identity (else the node signs)");
  submit_cmd->add_option("--envelope", a.envelope_file, "send this signed envelope as it is");
  submit_cmd->add_flag("--wait", a.wait, "wait until the job finishes; print it");
  submit_cmd->add_option("--wait-s", a.wait_s, "how long --wait waits")->capture_default_str();
  add_job_options(submit_cmd, a);

  auto* members_cmd = app.add_subcommand("members", "list the mesh as a node sees it");
  add_node_options(members_cmd, a);

  auto* status_cmd = app.add_subcommand("status", "show a job");
  add_node_options(status_cmd, a);
  status_cmd->add_option("id", a.id, "job id")->required();
}

int run_client_command(CLI::App& app, const ClientArgs& args) {
  if (app.got_subcommand("sign")) return sign(args);
  if (app.got_subcommand("submit")) return submit(args);
  if (app.got_subcommand("status")) return status(args);
  if (app.got_subcommand("members")) return members(args);
  return fail("unknown command", kExitUsage);
}

}  // namespace meshwork::cli
