// What the REST API counts; see http_metrics.h.
#include "api/http_metrics.h"

#include <array>
#include <charconv>

namespace meshwork::api {
namespace {

// Request durations: from a cached GET (well under a millisecond) to a long-poll or an event
// stream (up to a minute and more).
constexpr std::array kDurationBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,   0.5,   1.0,    2.5,   5.0,  10.0,  30.0, 60.0};

// Every fixed path a route serves (server.h, and the routes of docs/api.md).
constexpr std::array<std::string_view, 11> kFixedRoutes = {"/",
                                                           "/metrics",
                                                           "/healthz",
                                                           "/readyz",
                                                           "/v1/node",
                                                           "/v1/cluster/members",
                                                           "/v1/cluster/ring",
                                                           "/v1/openapi.json",
                                                           "/v1/events",
                                                           "/v1/jobs",
                                                           "/v1/jobs/batch"};

constexpr std::array<std::string_view, 9> kMethods = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"};

bool one_segment(std::string_view s) {
  return !s.empty() && s.find('/') == std::string_view::npos;
}

}  // namespace

std::string_view route_label(std::string_view path) {
  for (std::string_view r : kFixedRoutes)
    if (path == r) return r;
  constexpr std::string_view jobs = "/v1/jobs/", cancel = "/cancel", receipts = "/receipts";
  if (path.starts_with(jobs)) {
    std::string_view rest = path.substr(jobs.size());
    if (one_segment(rest)) return "/v1/jobs/{id}";
    if (rest.ends_with(cancel) && one_segment(rest.substr(0, rest.size() - cancel.size())))
      return "/v1/jobs/{id}/cancel";
    if (rest.ends_with(receipts) && one_segment(rest.substr(0, rest.size() - receipts.size())))
      return "/v1/jobs/{id}/receipts";
  }
  return "other";
}

std::string_view method_label(std::string_view method) {
  for (std::string_view m : kMethods)
    if (method == m) return m;
  return "other";
}

std::string_view refusal_reason(int status) {
  if (status == 200 || status == 202) return "";
  if (status == 429) return "429";
  if (status == 503) return "503";
  if (status >= 400 && status < 500) return "4xx";
  return "5xx";
}

HttpMetrics::HttpMetrics(metrics::Registry& registry)
    : durations_(registry.histogram(
          "meshwork_http_request_duration_seconds",
          "Time from routing a request to its last byte written, by method, route pattern and "
          "status code.",
          {kDurationBounds.begin(), kDurationBounds.end()}, {"method", "route", "code"})),
      accepted_(registry
                    .counter("meshwork_submissions_accepted_total",
                             "Jobs this node acknowledged as new (202): POST /v1/jobs and batch "
                             "items.")
                    .with({})),
      duplicate_(registry
                     .counter("meshwork_submissions_duplicate_total",
                              "Submissions of a job the mesh already had, answered with it (200).")
                     .with({})),
      refused_(registry.counter("meshwork_submissions_refused_total",
                                "Submissions refused, by reason: 429 overloaded, 503 too few "
                                "replicas, 4xx bad input, 5xx internal error. A batch refused as "
                                "a whole counts once.",
                                {"reason"})) {
  for (int status : {429, 503, 400, 500}) (void)refused_.with({refusal_reason(status)});
}

void HttpMetrics::request(std::string_view method, std::string_view path, int status,
                          double seconds) {
  char code[4] = {};
  std::string_view code_label = "other";
  if (status >= 100 && status <= 599) {
    (void)std::to_chars(code, code + 3, status);
    code_label = std::string_view(code, 3);
  }
  durations_.with({method_label(method), route_label(path), code_label}).observe(seconds);
}

void HttpMetrics::submission(int status) {
  if (status == 202) return accepted_.inc();
  if (status == 200) return duplicate_.inc();
  refused_.with({refusal_reason(status)}).inc();
}

}  // namespace meshwork::api
