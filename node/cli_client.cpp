// The command-line client: shared transport and printing, the job commands (sign, submit,
// status, cancel, retry) and the subcommand table; see cli_client.h and the exit codes in main.cpp.
#include "node/cli_client.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <thread>

#include "node/cli_common.h"
#include "node/client_auth.h"
#include "node/clock.h"
#include "node/crypto.h"
#include "node/envelope.h"

namespace meshwork::cli {

using nlohmann::json;

int fail(std::string_view what, int code) {
  std::cerr << "meshwork: " << what << "\n";
  return code;
}

httplib::Client client_for(const ClientArgs& a) {
  httplib::Client c(a.node);
  c.set_tcp_nodelay(true);
  c.set_connection_timeout(kConnectTimeoutS);
  c.set_read_timeout(kReadTimeoutS);
  c.set_keep_alive(true);
  if (!a.ca_file.empty()) c.set_ca_cert_path(a.ca_file.c_str());
  return c;
}

std::string problem_text(const httplib::Response& r) {
  const json p = json::parse(r.body, nullptr, false);
  std::string text = std::to_string(r.status);
  if (p.is_object() && p.contains("title") && p["title"].is_string())
    text += " " + p["title"].get<std::string>();
  if (p.is_object() && p.contains("detail") && p["detail"].is_string())
    return text + ": " + p["detail"].get<std::string>();
  return r.body.empty() ? text : text + ": " + r.body.substr(0, 200);
}

int fail_answer(const httplib::Result& r) {
  if (!r) return fail("cannot reach the node: " + httplib::to_string(r.error()), kExitDown);
  return fail(problem_text(*r), r->status >= 500 ? kExitDown : kExitRefused);
}

std::optional<json> get_object(const httplib::Result& r, int& exit_code) {
  if (r && r->status == 200) {
    json j = json::parse(r->body, nullptr, false);
    if (j.is_object()) return j;
    exit_code = fail("the node's answer is not a JSON object", kExitDown);
    return std::nullopt;
  }
  exit_code = fail_answer(r);
  return std::nullopt;
}

int report(const httplib::Result& r) {
  if (!r) return fail_answer(r);
  std::cout << r->body << (r->body.ends_with('\n') ? "" : "\n");
  return r->status >= 400 ? fail_answer(r) : kExitOk;
}

std::string utc_time(uint64_t ms) {
  const std::time_t s = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[32];
  const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03uZ", static_cast<unsigned>(ms % 1000));
  return buf;
}

namespace {

// The longest single long-poll --wait asks for (the node allows up to 60 s).
constexpr uint64_t kLongPollS = 30;

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
  if (a.priority) spec["priority"] = *a.priority;
  if (a.delay_ms) spec["delay_ms"] = a.delay_ms;
  if (a.redundancy) spec["redundancy"] = a.redundancy;
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

// Long-polls GET /v1/jobs/{id}?wait_s= until the job is terminal or a.wait_s have passed. An
// answer that is not terminal and came back at once (a node without the long-poll, or one that
// could not be reached) is followed by a short pause that grows up to 1 s.
int wait_for(const ClientArgs& a, const std::string& id) {
  using namespace std::chrono;
  auto c = client_for(a);
  c.set_read_timeout(static_cast<time_t>(kLongPollS) + kReadTimeoutS);
  const auto deadline = steady_clock::now() + seconds(a.wait_s);
  auto pause = milliseconds(50);
  for (auto asked = steady_clock::now(); asked < deadline; asked = steady_clock::now()) {
    const auto left_s = duration_cast<seconds>(deadline - asked).count();
    const auto poll_s = std::clamp<int64_t>(left_s, 1, kLongPollS);
    auto r = c.Get("/v1/jobs/" + id + "?wait_s=" + std::to_string(poll_s));
    if (r && r->status == 200) {
      json j = json::parse(r->body, nullptr, false);
      std::string state = j.is_object() ? j.value("state", "") : "";
      if (is_terminal(state)) {
        std::cout << r->body << "\n";
        return state == "succeeded" ? kExitOk : kExitJobFailed;
      }
    } else if (r && r->status == 422) {
      return fail_answer(r);  // the node refused the request itself; asking again will not help
    }
    if (steady_clock::now() - asked < seconds(1)) {
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, duration_cast<milliseconds>(seconds(1)));
    }
  }
  return fail("timed out waiting for job " + id, kExitDown);
}

int submit(const ClientArgs& a) {
  json body;
  if (int rc = build_body(a, body); rc != kExitOk) return rc;
  auto c = client_for(a);
  auto r = c.Post("/v1/jobs", body.dump(), "application/json");
  if (!a.wait || !r || r->status >= 300) return report(r);
  json j = json::parse(r->body, nullptr, false);
  if (!j.is_object() || !j.contains("id")) return report(r);
  std::cerr << "accepted " << j["id"].get<std::string>() << ", waiting\n";
  return wait_for(a, j["id"].get<std::string>());
}

int status(const ClientArgs& a) {
  if (!is_job_id(a.id)) return fail("'" + a.id + "' is not a job id", kExitUsage);
  auto c = client_for(a);
  return report(c.Get("/v1/jobs/" + a.id));
}

// With --key the request is signed (node/client_auth.h): a job a client signed may be cancelled
// or retried only with its key or an admin key.
int change(const ClientArgs& a, std::string_view action) {
  if (!is_job_id(a.id)) return fail("'" + a.id + "' is not a job id", kExitUsage);
  httplib::Headers headers;
  if (!a.key_file.empty()) {
    auto key = Identity::load(a.key_file);
    if (!key.is_ok()) return fail(key.status().message(), kExitUsage);
    headers = client_request_headers(key.value(), action, a.id, wall_ms());
  }
  auto c = client_for(a);
  return report(c.Post("/v1/jobs/" + a.id + "/" + std::string(action), headers, "",
                       "application/json"));
}

int cancel(const ClientArgs& a) {
  return change(a, kCancelAction);
}

int retry(const ClientArgs& a) {
  return change(a, kRetryAction);
}

void add_job_options(CLI::App* cmd, ClientArgs& a) {
  cmd->add_option("--type", a.type, "job type (echo, sleep, flaky, pow, tx-verify, enrich)");
  cmd->add_option("--payload", a.payload, "job payload as JSON")->capture_default_str();
  cmd->add_option("--max-attempts", a.max_attempts, "attempts before the job fails");
  cmd->add_option("--timeout-ms", a.timeout_ms, "per-attempt timeout");
  cmd->add_option("--priority", a.priority, "0-9, higher runs first (the node's default: 5)");
  cmd->add_option("--delay-ms", a.delay_ms, "run no earlier than this long after it is accepted");
  cmd->add_option("--redundancy", a.redundancy,
                  "run each attempt on this many replicas; a majority of results must agree");
}

// A subcommand that talks to a node: --node URL (--to is the older name) and --ca-file.
CLI::App* networked(CLI::App& app, const std::string& name, const std::string& what,
                    ClientArgs& a) {
  auto* cmd = app.add_subcommand(name, what);
  cmd->add_option("--node,--to", a.node, "node URL, http:// or https://")->capture_default_str();
  cmd->add_option("--ca-file", a.ca_file, "CA certificate (PEM) to trust for an https:// node")
      ->check(CLI::ExistingFile);
  return cmd;
}

void add_view_commands(CLI::App& app, ClientArgs& a) {
  networked(app, "members", "list the mesh as a node sees it", a)
      ->add_flag("--json", a.json, "print the node's answer as it is");
  auto* jobs_cmd = networked(app, "jobs", "list jobs, newest first, one page at a time", a);
  jobs_cmd->add_option("--state", a.state, "only jobs in this state")
      ->check(
          CLI::IsMember({"queued", "scheduled", "running", "succeeded", "failed", "cancelled"}));
  jobs_cmd->add_option("--type", a.type, "only jobs of this type");
  jobs_cmd->add_option("--limit", a.limit, "jobs per page (1-1000; the node's default is 50)")
      ->check(CLI::Range(1u, 1000u));
  jobs_cmd->add_option("--cursor", a.cursor, "continue from a previous page's next cursor");
  jobs_cmd->add_flag("--json", a.json, "print the node's answer as it is");
  networked(app, "ring", "the consistent-hash ring: ranges, shares and jobs held per member", a)
      ->add_flag("--json", a.json, "print the node's answer as it is");
  networked(app, "info", "a node's identity, counters and limits", a)
      ->add_flag("--json", a.json, "print the node's answer as it is");
  auto* watch_cmd = networked(app, "watch", "print job and membership events as they happen", a);
  watch_cmd->add_option("--job", a.id, "only this job's changes; exit when it finishes");
  watch_cmd->add_option("--kinds", a.kinds, "comma list of job,member (default: both)");
  watch_cmd->add_flag("--json", a.json, "one JSON object per event: {\"event\", \"data\"}");
  auto* verify_cmd =
      networked(app, "verify",
                "check a job's receipts against the node keys the mesh knows (exit 0 valid, "
                "1 invalid, 2 could not check)",
                a);
  verify_cmd->add_option("id", a.id, "job id (fetched from --node)");
  verify_cmd
      ->add_option("--file", a.file, "check this saved job document instead (meshwork status)")
      ->check(CLI::ExistingFile);
}

}  // namespace

void add_client_commands(CLI::App& app, ClientArgs& a) {
  auto* sign_cmd = app.add_subcommand("sign", "print a signed job envelope (no network)");
  sign_cmd->add_option("--key", a.key_file, "Ed25519 identity file (meshwork keygen)")->required();
  add_job_options(sign_cmd, a);

  auto* submit_cmd = networked(app, "submit", "submit a job to a node", a);
  submit_cmd->add_option("--key", a.key_file, "sign with this identity (else the node signs)");
  submit_cmd->add_option("--envelope", a.envelope_file, "send this signed envelope as it is");
  submit_cmd->add_flag("--wait", a.wait, "wait until the job finishes; print it");
  submit_cmd->add_option("--wait-s", a.wait_s, "how long --wait waits")->capture_default_str();
  add_job_options(submit_cmd, a);

  networked(app, "status", "show a job", a)->add_option("id", a.id, "job id")->required();
  for (const auto& [name, what] :
       {std::pair{"cancel", "cancel a job: a queued one at once, a running one cooperatively"},
        std::pair{"retry", "run a failed or cancelled job again, with a fresh set of attempts"}}) {
    auto* cmd = networked(app, name, what, a);
    cmd->add_option("id", a.id, "job id")->required();
    cmd->add_option("--key", a.key_file,
                    "sign the request with this identity: the job's key or an admin key "
                    "(needed for a job a client signed)");
  }
  add_view_commands(app, a);
}

int run_client_command(CLI::App& app, const ClientArgs& args) {
  using Command = int (*)(const ClientArgs&);
  static const std::pair<const char*, Command> kCommands[] = {
      {"sign", sign},       {"submit", submit}, {"status", status}, {"cancel", cancel},
      {"retry", retry},     {"members", members}, {"jobs", jobs},   {"ring", ring},
      {"info", info},       {"watch", watch},     {"verify", verify}};
  try {
    for (const auto& [name, run] : kCommands)
      if (app.got_subcommand(name)) return run(args);
  } catch (const nlohmann::json::exception& e) {  // a field of an unexpected type in an answer
    return fail(std::string("unexpected answer from the node: ") + e.what(), kExitDown);
  }
  return fail("unknown command", kExitUsage);
}

}  // namespace meshwork::cli
