// The command-line client: `meshwork sign`, `submit` and `status`.
// Thread-safety: single-threaded, used from main().
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace meshwork::cli {

struct ClientArgs {
  std::string to = "http://127.0.0.1:8001";
  std::string ca_file;  // PEM CA certificates that verify an https:// node; empty: the system's
  std::string key_file;
  std::string type;
  std::string payload = "{}";
  std::string envelope_file;
  std::string id;
  uint32_t max_attempts = 0;
  uint64_t timeout_ms = 0;
  bool wait = false;
  uint64_t wait_s = 600;
};

void add_client_commands(CLI::App& app, ClientArgs& args);
// Runs whichever client subcommand was parsed; returns the process exit code.
int run_client_command(CLI::App& app, const ClientArgs& args);

}  // namespace meshwork::cli
