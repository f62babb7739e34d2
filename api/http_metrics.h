// What the REST API counts (docs/operations.md, "Metrics"): the duration of every request by
// method, route and status code, and the outcome of every job submission.
//
//   meshwork_http_request_duration_seconds{method,route,code}  histogram
//   meshwork_submissions_accepted_total                        counter: new jobs (202)
//   meshwork_submissions_duplicate_total                       counter: known jobs (200)
//   meshwork_submissions_refused_total{reason}                 counter: reason 429, 503, 4xx, 5xx
//
// A submission is one POST /v1/jobs, or one job of a batch; a batch refused as a whole (too large,
// not a list, overloaded) counts as one refusal.
//
// Label values are bounded (metrics.h, invariant 2): `route` is the route pattern a path matches
// (route_label), never the raw path; `method` one of the HTTP methods or "other"; `code` the
// status, 100 to 599, or "other".
// Thread-safety: every method from any HTTP thread; updates take no lock.
#pragma once

#include <string_view>

#include "api/metrics.h"

namespace meshwork::api {

// The route pattern of a request path, e.g. "/v1/jobs/{id}"; "other" for a path no route serves.
[[nodiscard]] std::string_view route_label(std::string_view path);
// The method as a label value: a standard HTTP method, else "other".
[[nodiscard]] std::string_view method_label(std::string_view method);
// A refused submission's reason: "429", "503", "4xx" or "5xx"; "" for 200 and 202 (not refused).
[[nodiscard]] std::string_view refusal_reason(int status);

class HttpMetrics {
 public:
  // Registers the families above in `registry`, which outlives this.
  explicit HttpMetrics(metrics::Registry& registry);

  // One request answered: `seconds` from the start of its routing to its last byte written.
  void request(std::string_view method, std::string_view path, int status, double seconds);
  // One submission answered with `status` (202 accepted, 200 duplicate, anything else refused).
  void submission(int status);

 private:
  metrics::Family<metrics::Histogram>& durations_;
  metrics::Counter& accepted_;
  metrics::Counter& duplicate_;
  metrics::Family<metrics::Counter>& refused_;  // by reason, every reason made at start
};

}  // namespace meshwork::api
