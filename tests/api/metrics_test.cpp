// Metrics: the text exposition (names, HELP/TYPE, escaping, values), histograms (buckets,
// cumulative counts, racing updates), labelled families (one child per label set, bounded), the
// API's route labels and submission outcomes, and the node's scrape-time families.
#include <doctest/doctest.h>

#include <array>
#include <string>
#include <thread>
#include <vector>

#include "api/http_metrics.h"
#include "api/metrics.h"
#include "api/node_metrics.h"

namespace meshwork::api {
namespace {

using metrics::Label;
using metrics::Registry;
using metrics::Type;
using metrics::Writer;

bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("names, label escaping and values follow the text format") {
  CHECK(metrics::valid_metric_name("meshwork_jobs"));
  CHECK(metrics::valid_metric_name("a:b_c9"));
  CHECK_FALSE(metrics::valid_metric_name("9jobs"));
  CHECK_FALSE(metrics::valid_metric_name("jobs-total"));
  CHECK_FALSE(metrics::valid_metric_name(""));
  CHECK(metrics::valid_label_name("route"));
  CHECK_FALSE(metrics::valid_label_name("a:b"));
  CHECK_FALSE(metrics::valid_label_name("__name__"));

  CHECK(metrics::escape_label_value("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
  CHECK(metrics::escape_help("line\\one\ntwo \"q\"") == "line\\\\one\\ntwo \"q\"");

  CHECK(metrics::format_value(3) == "3");
  CHECK(metrics::format_value(0.25) == "0.25");
  CHECK(metrics::format_value(0.0005) == "0.0005");
  CHECK(metrics::format_value(0.000001) == "0.000001");
  CHECK(metrics::format_value(1234567.5) == "1234567.5");
  CHECK(metrics::format_value(1e20) == "1e+20");
  CHECK(metrics::format_value(2.5e-9) == "2.5e-09");
  CHECK(metrics::format_value(1.0 / 0.0) == "+Inf");
  CHECK(metrics::format_value(-1.0 / 0.0) == "-Inf");
  CHECK(metrics::format_value(0.0 / 0.0) == "NaN");
}

TEST_CASE("a writer emits HELP and TYPE once per family, then its samples") {
  Writer w;
  w.family("meshwork_members", "Members by state.\nSecond line \\ here.", Type::gauge);
  const Label alive[] = {{"state", "alive"}};
  const Label odd[] = {{"state", "a \"quoted\"\nvalue"}};
  w.sample(alive, uint64_t{3});
  w.sample(odd, 0.5);
  w.single("meshwork_attempts_total", "Attempts.", Type::counter, 18446744073709551615ull);
  const std::string text = w.take();
  CHECK(text ==
        "# HELP meshwork_members Members by state.\\nSecond line \\\\ here.\n"
        "# TYPE meshwork_members gauge\n"
        "meshwork_members{state=\"alive\"} 3\n"
        "meshwork_members{state=\"a \\\"quoted\\\"\\nvalue\"} 0.5\n"
        "# HELP meshwork_attempts_total Attempts.\n"
        "# TYPE meshwork_attempts_total counter\n"
        "meshwork_attempts_total 18446744073709551615\n");
}

TEST_CASE("a histogram counts each value in the first bucket whose bound holds it") {
  const std::array bounds = {0.1, 1.0, 10.0};
  metrics::Histogram h(bounds);
  for (double v : {0.05, 0.1, 0.5, 1.0, 7.0, 100.0, 1e9}) h.observe(v);
  const auto s = h.snapshot();
  CHECK(s.cumulative == std::vector<uint64_t>{2, 4, 5, 7});  // le=0.1, 1, 10, +Inf
  CHECK(s.sum == doctest::Approx(0.05 + 0.1 + 0.5 + 1.0 + 7.0 + 100.0 + 1e9));

  Writer w;
  w.family("meshwork_store_fsync_seconds", "Fsync.", Type::histogram);
  const Label labels[] = {{"route", "/v1/jobs"}};
  w.sample(labels, s);
  const std::string text = w.take();
  CHECK(has_line(text, "meshwork_store_fsync_seconds_bucket{route=\"/v1/jobs\",le=\"0.1\"} 2"));
  CHECK(has_line(text, "meshwork_store_fsync_seconds_bucket{route=\"/v1/jobs\",le=\"1\"} 4"));
  CHECK(has_line(text, "meshwork_store_fsync_seconds_bucket{route=\"/v1/jobs\",le=\"10\"} 5"));
  CHECK(has_line(text, "meshwork_store_fsync_seconds_bucket{route=\"/v1/jobs\",le=\"+Inf\"} 7"));
  CHECK(has_line(text, "meshwork_store_fsync_seconds_count{route=\"/v1/jobs\"} 7"));
  CHECK(text.find("meshwork_store_fsync_seconds_sum{route=\"/v1/jobs\"} 1000000108.65") !=
        std::string::npos);
}

TEST_CASE("updates from many threads are all counted, and +Inf always equals the count") {
  Registry r;
  auto& family = r.histogram("meshwork_x_seconds", "X.", {0.5, 1.0}, {"code"});
  auto& counter = r.counter("meshwork_y_total", "Y.").with({});
  constexpr int kThreads = 4, kEach = 20'000;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done) {
      const auto s = family.with({"200"}).snapshot();
      REQUIRE(s.cumulative.size() == 3);
      CHECK(s.cumulative[0] <= s.cumulative[1]);
      CHECK(s.cumulative[1] <= s.cumulative[2]);
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t)
    writers.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        family.with({t % 2 ? "200" : "404"}).observe(i % 3 == 0 ? 0.25 : 2.0);
        counter.inc();
      }
    });
  for (auto& w : writers) w.join();
  done = true;
  reader.join();
  CHECK(counter.value() == uint64_t(kThreads) * kEach);
  const auto ok = family.with({"200"}).snapshot();
  CHECK(ok.cumulative.back() == uint64_t(kThreads / 2) * kEach);
  const std::string text = r.render();
  CHECK(has_line(text, "meshwork_x_seconds_count{code=\"200\"} 40000"));
  CHECK(has_line(text, "meshwork_x_seconds_count{code=\"404\"} 40000"));
  CHECK(has_line(text, "meshwork_y_total 80000"));
}

TEST_CASE("a family keeps one child per label set, in label order, and bounds how many") {
  Registry r;
  auto& f = r.counter("meshwork_z_total", "Z.", {"a", "b"});
  f.with({"x", "2"}).inc();
  f.with({"x", "1"}).inc(5);
  f.with({"x", "2"}).inc();
  CHECK(&f.with({"x", "2"}) == &f.with({"x", "2"}));
  CHECK(&f.with({"x", "2"}) != &f.with({"x2", ""}));  // values never run together
  std::string text = r.render();
  const size_t one = text.find("meshwork_z_total{a=\"x\",b=\"1\"} 5\n");
  const size_t two = text.find("meshwork_z_total{a=\"x\",b=\"2\"} 2\n");
  CHECK(one != std::string::npos);
  CHECK(two != std::string::npos);
  CHECK(one < two);

  for (size_t i = 0; i < metrics::kSeriesMax + 10; ++i) f.with({"n", std::to_string(i)}).inc();
  CHECK(r.overflowed() > 0);
  text = r.render();
  size_t series = 0;
  for (size_t at = 0; (at = text.find("\nmeshwork_z_total{", at)) != std::string::npos; ++at)
    ++series;
  CHECK(series == metrics::kSeriesMax);
}

TEST_CASE("a registry renders its instruments, then its collectors, each family once") {
  Registry r;
  (void)r.counter("meshwork_a_total", "A.").with({});
  r.add_collector([](Writer& w) { w.single("meshwork_b", "B.", Type::gauge, 7); });
  const std::string text = r.render();
  CHECK(text ==
        "# HELP meshwork_a_total A.\n# TYPE meshwork_a_total counter\nmeshwork_a_total 0\n"
        "# HELP meshwork_b B.\n# TYPE meshwork_b gauge\nmeshwork_b 7\n");
  CHECK(r.render() == text);
}

TEST_CASE("routes are labelled by pattern, never by raw path") {
  CHECK(route_label("/v1/jobs") == "/v1/jobs");
  CHECK(route_label("/v1/jobs/batch") == "/v1/jobs/batch");
  CHECK(route_label("/v1/jobs/0123abcd") == "/v1/jobs/{id}");
  CHECK(route_label("/v1/jobs/anything-at-all") == "/v1/jobs/{id}");
  CHECK(route_label("/v1/jobs/0123abcd/cancel") == "/v1/jobs/{id}/cancel");
  CHECK(route_label("/v1/jobs/a/b/cancel") == "other");
  CHECK(route_label("/v1/jobs/") == "other");
  CHECK(route_label("/internal/v1/list") == "other");  // nodes have no HTTP routes for each other
  CHECK(route_label("/metrics") == "/metrics");
  CHECK(route_label("/") == "/");
  CHECK(route_label("/v1/events") == "/v1/events");
  CHECK(route_label("/wp-admin/setup.php") == "other");
  CHECK(method_label("GET") == "GET");
  CHECK(method_label("BREW") == "other");
  CHECK(refusal_reason(202) == "");
  CHECK(refusal_reason(200) == "");
  CHECK(refusal_reason(429) == "429");
  CHECK(refusal_reason(503) == "503");
  CHECK(refusal_reason(422) == "4xx");
  CHECK(refusal_reason(413) == "4xx");
  CHECK(refusal_reason(500) == "5xx");
}

TEST_CASE("the API counts submissions by outcome and requests by method, route and code") {
  Registry r;
  HttpMetrics m(r);
  for (int status : {202, 202, 200, 429, 503, 400, 422, 500}) m.submission(status);
  m.request("GET", "/v1/jobs/abc", 200, 0.003);
  m.request("GET", "/v1/jobs/def", 200, 0.2);
  m.request("FOO", "/nowhere/" + std::string(100, 'x'), 404, 0.001);
  m.request("GET", "/metrics", 1000, 0.001);
  const std::string text = r.render();
  CHECK(has_line(text, "meshwork_submissions_accepted_total 2"));
  CHECK(has_line(text, "meshwork_submissions_duplicate_total 1"));
  CHECK(has_line(text, "meshwork_submissions_refused_total{reason=\"429\"} 1"));
  CHECK(has_line(text, "meshwork_submissions_refused_total{reason=\"503\"} 1"));
  CHECK(has_line(text, "meshwork_submissions_refused_total{reason=\"4xx\"} 2"));
  CHECK(has_line(text, "meshwork_submissions_refused_total{reason=\"5xx\"} 1"));
  CHECK(has_line(text,
                 "meshwork_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/jobs/"
                 "{id}\",code=\"200\"} 2"));
  CHECK(has_line(text,
                 "meshwork_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/jobs/"
                 "{id}\",code=\"200\",le=\"0.005\"} 1"));
  CHECK(has_line(text,
                 "meshwork_http_request_duration_seconds_count{method=\"other\",route=\"other\","
                 "code=\"404\"} 1"));
  CHECK(has_line(text,
                 "meshwork_http_request_duration_seconds_count{method=\"GET\",route=\"/metrics\","
                 "code=\"other\"} 1"));
  CHECK(text.find("xxxx") == std::string::npos);
}

TEST_CASE("the node's families: jobs and members by state, core, gossip and API counters") {
  Store::StateCounts jobs{};
  jobs[size_t(JobState::queued)] = 4;
  jobs[size_t(JobState::succeeded)] = 9;
  ReplicaSnapshot core;
  core.hints = 2;
  core.stats.attempts_started = 11;
  core.stats.takeovers = 1;
  core.stats.anti_entropy_rounds = 6;
  core.stats.expired = 40;
  core.tombstones = 37;
  core.stats.retries_requested = 3;
  gossip::Stats g;
  g.packets_sent = 5;
  g.bytes_received = 700;
  g.dropped_unsealable = 3;
  std::vector<gossip::MemberInfo> members(4);
  members[0].state = gossip::MemberState::alive;
  members[1].state = gossip::MemberState::alive;
  members[2].state = gossip::MemberState::dead;
  members[3].state = gossip::MemberState::left;
  Writer w;
  write_job_metrics(w, jobs, core);
  write_gossip_metrics(w, g, members);
  write_change_refusals(w, 5, 7);
  const std::string text = w.take();
  CHECK(has_line(text, "meshwork_jobs{state=\"queued\"} 4"));
  CHECK(has_line(text, "meshwork_jobs{state=\"succeeded\"} 9"));
  CHECK(has_line(text, "meshwork_jobs{state=\"running\"} 0"));
  CHECK(has_line(text, "meshwork_hints_pending 2"));
  CHECK(has_line(text, "meshwork_attempts_total 11"));
  CHECK(has_line(text, "meshwork_takeovers_total 1"));
  CHECK(has_line(text, "meshwork_retries_total 0"));
  CHECK(has_line(text, "meshwork_anti_entropy_rounds_total 6"));
  CHECK(has_line(text, "meshwork_jobs_expired_total 40"));
  CHECK(has_line(text, "meshwork_tombstones 37"));
  CHECK(has_line(text, "meshwork_retries_requested_total 3"));
  CHECK(has_line(text, "meshwork_cancels_refused_total 5"));
  CHECK(has_line(text, "meshwork_retries_refused_total 7"));
  CHECK(has_line(text, "# TYPE meshwork_retries_refused_total counter"));
  CHECK(has_line(text, "# TYPE meshwork_members gauge"));
  CHECK(has_line(text, "meshwork_members{state=\"alive\"} 2"));
  CHECK(has_line(text, "meshwork_members{state=\"suspect\"} 0"));
  CHECK(has_line(text, "meshwork_members{state=\"dead\"} 1"));
  CHECK(has_line(text, "meshwork_members{state=\"left\"} 1"));
  CHECK(has_line(text, "meshwork_gossip_packets_total{direction=\"sent\"} 5"));
  CHECK(has_line(text, "meshwork_gossip_bytes_total{direction=\"received\"} 700"));
  CHECK(has_line(text, "meshwork_gossip_packets_dropped_total{reason=\"unsealable\"} 3"));
}

}  // namespace meshwork::api
