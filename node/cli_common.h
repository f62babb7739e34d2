// What the command-line client's files share: exit codes, the HTTP transport and how answers and
// problems are printed. Internal to node/cli_*.cpp; the entry points are in cli_client.h.
// Thread-safety: single-threaded, used from main().
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "node/cli_client.h"

namespace meshwork::cli {

// The exit codes main.cpp documents. `meshwork verify` answers 0 valid, 1 invalid, 2 unchecked.
inline constexpr int kExitOk = 0, kExitJobFailed = 1, kExitUsage = 2, kExitRefused = 3,
                     kExitDown = 4;
inline constexpr int kVerifyValid = 0, kVerifyInvalid = 1, kVerifyUnchecked = 2;

inline constexpr time_t kConnectTimeoutS = 5;
inline constexpr time_t kReadTimeoutS = 30;

// Prints "meshwork: <what>" to stderr; returns `code`.
int fail(std::string_view what, int code);

// A client for the node at --node, with TCP_NODELAY and the default timeouts.
httplib::Client client_for(const ClientArgs& a);

// "404 Not Found: no job ab12…" from a problem+json answer (or its raw body when it is not one).
std::string problem_text(const httplib::Response& r);

// The exit code a failed answer implies (unreachable or 5xx: kExitDown, 4xx: kExitRefused),
// after printing the problem's detail to stderr.
int fail_answer(const httplib::Result& r);

// The body of a 200 answer parsed as a JSON object, or nullopt after fail_answer().
std::optional<nlohmann::json> get_object(const httplib::Result& r, int& exit_code);

// Prints the response body; returns the exit code its status implies (the problem's detail goes
// to stderr too).
int report(const httplib::Result& r);

// The read-only views (cli_show.cpp), watch (cli_watch.cpp) and verify (cli_verify.cpp).
int members(const ClientArgs& a);
int jobs(const ClientArgs& a);
int ring(const ClientArgs& a);
int info(const ClientArgs& a);
int watch(const ClientArgs& a);
int verify(const ClientArgs& a);

inline bool is_terminal(std::string_view state) {
  return state == "succeeded" || state == "failed" || state == "cancelled";
}

// ms since the epoch as "2026-11-29T23:04:05.123Z".
std::string utc_time(uint64_t ms);

}  // namespace meshwork::cli
