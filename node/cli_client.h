// The command-line client: every `meshwork` subcommand but `node` and `keygen`.
//
//   sign                       print a signed envelope (no network)
//   submit [--wait]            POST /v1/jobs; --wait long-polls GET /v1/jobs/{id}?wait_s=
//   status ID, cancel ID       GET /v1/jobs/{id}, POST /v1/jobs/{id}/cancel (signed with --key)
//   jobs                       GET /v1/jobs as a table, with the cursor of the next page
//   members, ring, info        GET /v1/cluster/members, /v1/cluster/ring, /v1/node, readable
//   watch                      GET /v1/events, one line per event as it arrives
//   verify ID | --file F       the job's receipts against the node keys the mesh knows
// Every networked command takes --node URL (alias --to) and --ca-file FILE; --json prints the
// node's answer as it is. The files: cli_client.cpp (jobs: submit, status, cancel), cli_show.cpp
// (tables), cli_watch.cpp (events), cli_verify.cpp (receipts, with node/receipt_check.h).
// Thread-safety: single-threaded, used from main().
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

namespace meshwork::cli {

struct ClientArgs {
  std::string node = "http://127.0.0.1:8001";  // --node (alias --to)
  std::string ca_file;                         // --ca-file: trust this CA for https:// URLs
  std::string key_file;
  std::string type;
  std::string payload = "{}";
  std::string envelope_file;
  std::string id;
  uint32_t max_attempts = 0;
  uint64_t timeout_ms = 0;
  std::optional<uint32_t> priority;  // --priority (unset: the node's default, 5)
  uint64_t delay_ms = 0;
  uint32_t redundancy = 0;  // 0: not sent (the node's default, 1)
  bool wait = false;
  uint64_t wait_s = 600;
  bool json = false;   // --json: print the node's answer unformatted
  std::string state;   // jobs --state
  uint32_t limit = 0;  // jobs --limit (0: the node's default)
  std::string cursor;  // jobs --cursor
  std::string kinds;   // watch --kinds job,member
  std::string file;    // verify --file: a saved job document
};

void add_client_commands(CLI::App& app, ClientArgs& args);
// Runs whichever client subcommand was parsed; returns the process exit code.
int run_client_command(CLI::App& app, const ClientArgs& args);

}  // namespace meshwork::cli
