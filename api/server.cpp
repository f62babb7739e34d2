// The REST API (v1); see server.h.
#include "api/server.h"

#include "api/problem.h"
#include "api/views.h"
#include "node/json_bounded.h"

namespace meshwork::api {
namespace {

using nlohmann::json;

constexpr size_t kListLimitDefault = 50;
constexpr size_t kListLimitMax = 1'000;
constexpr size_t kCursorBytesMax = 128;

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

// Counts a request in flight for as long as it lives.
class InflightGuard {
 public:
  explicit InflightGuard(std::atomic<size_t>& n) : n_(n) { value_ = ++n_; }
  ~InflightGuard() { --n_; }
  InflightGuard(const InflightGuard&) = delete;
  InflightGuard& operator=(const InflightGuard&) = delete;
  [[nodiscard]] size_t value() const { return value_; }

 private:
  std::atomic<size_t>& n_;
  size_t value_;
};

bool parse_limit(const std::string& text, size_t& out) {
  if (text.empty() || text.size() > 6) return false;
  size_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + size_t(c - '0');
  }
  if (v == 0 || v > kListLimitMax) return false;
  out = v;
  return true;
}

}  // namespace

ApiServer::ApiServer(Jobs& jobs, ApiOptions options, Providers providers)
    : jobs_(jobs), options_(options), providers_(std::move(providers)) {
  server_.new_task_queue = [n = options_.threads] { return new httplib::ThreadPool(n); };
  server_.set_tcp_nodelay(true);
  // cpp-httplib's default sets SO_REUSEPORT, which lets a second node bind a port in use and take
  // half its connections; SO_REUSEADDR alone still allows a quick restart (TIME_WAIT).
  server_.set_socket_options([](socket_t s) {
    int on = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  });
  server_.set_keep_alive_max_count(100'000);
  server_.set_payload_max_length(options_.body_bytes_max);
  routes();
}

ApiServer::~ApiServer() { stop(); }

int ApiServer::bind(const std::string& host, int port) {
  if (port == 0) return server_.bind_to_any_port(host);
  return server_.bind_to_port(host, port) ? port : -1;
}

void ApiServer::serve() { server_.listen_after_bind(); }

void ApiServer::stop() {
  if (server_.is_running()) server_.stop();
}

void ApiServer::routes() {
  // Nothing here is a byte-addressable file, so Range is ignored (RFC 9110 allows it). cpp-httplib
  // 0.11 would otherwise cut any answer, a 202 included, to the requested bytes. The request object
  // is the server's own, mutable one; the handler only sees it through a const reference.
  server_.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    const_cast<httplib::Request&>(req).ranges.clear();
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server_.Post("/v1/jobs", [this](const auto& req, auto& res) { post_job(req, res); });
  server_.Get(R"(/v1/jobs/([^/]+))", [this](const auto& req, auto& res) { get_job(req, res); });
  server_.Get("/v1/jobs", [this](const auto& req, auto& res) { list_jobs(req, res); });
  server_.Post(R"(/v1/jobs/([^/]+)/cancel)",
               [this](const auto& req, auto& res) { cancel_job(req, res); });
  server_.Get("/v1/node",
              [this](const auto&, auto& res) { send_json(res, 200, providers_.node_info()); });
  server_.Get("/v1/cluster/members",
              [this](const auto&, auto& res) { send_json(res, 200, providers_.members()); });
  server_.Get("/healthz", [](const auto&, auto& res) { send_json(res, 200, {{"status", "ok"}}); });
  server_.Get("/readyz", [this](const auto&, auto& res) {
    if (providers_.ready()) return send_json(res, 200, {{"status", "ready"}});
    problem(res, 503, "the node is not ready to accept jobs");
  });
  // Anything that reached no route, or that cpp-httplib refused itself (413, 400), gets a problem
  // document instead of an empty body.
  server_.set_error_handler([](const auto& req, auto& res) {
    if (!res.body.empty()) return;
    std::string detail = res.status == 413   ? "the request body exceeds the node's limit"
                         : res.status == 404 ? "no such endpoint: " + req.method + " " + req.path
                         : res.status == 400
                             ? "the request could not be read; a POST needs a Content-Length "
                               "header (curl: -d '') or a chunked body"
                             : "the request could not be processed";
    problem(res, res.status, detail);
  });
  server_.set_exception_handler([](const auto&, auto& res, std::exception_ptr) {
    problem(res, 500, "internal error");
  });
}

void ApiServer::post_job(const httplib::Request& req, httplib::Response& res) {
  InflightGuard inflight(inflight_submits_);
  if (inflight.value() > options_.inflight_submits_max)
    return problem(res, 429, "too many submissions in flight; retry later");
  if (req.body.size() > options_.body_bytes_max)
    return problem(res, 413, "the request body exceeds the node's limit");
  auto body = parse_json_bounded(req.body);
  if (!body.is_ok()) return problem(res, body.status());
  if (!body.value().is_object()) return problem(res, 400, "the body must be a JSON object");
  auto submitted = jobs_.submit(body.value());
  if (!submitted.is_ok()) return problem(res, submitted.status());
  const auto& s = submitted.value();
  res.set_header("Location", "/v1/jobs/" + s.record.id);
  send_json(res, s.created ? 202 : 200, job_view(s.record));
}

void ApiServer::get_job(const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1];
  if (!is_job_id(id)) return problem(res, 404, "'" + id.substr(0, 80) + "' is not a job id");
  auto rec = jobs_.get(id);
  if (!rec.is_ok()) return problem(res, rec.status());
  send_json(res, 200, job_view(rec.value()));
}

void ApiServer::list_jobs(const httplib::Request& req, httplib::Response& res) {
  Jobs::ListQuery q;
  q.limit = kListLimitDefault;
  if (req.has_param("state")) {
    auto st = parse_state(req.get_param_value("state"));
    if (!st || *st == JobState::retry_wait)
      return problem(res, 422, "state must be one of queued, running, succeeded, failed, cancelled");
    q.state = st;
  }
  if (req.has_param("type")) q.type = req.get_param_value("type");
  if (req.has_param("limit") && !parse_limit(req.get_param_value("limit"), q.limit))
    return problem(res, 422, "limit must be an integer from 1 to " + std::to_string(kListLimitMax));
  if (req.has_param("cursor")) {
    q.cursor = req.get_param_value("cursor");
    if (q.cursor.size() > kCursorBytesMax) return problem(res, 422, "cursor is not valid");
  }
  auto page = jobs_.list(q);
  if (!page.is_ok()) return problem(res, page.status());
  json jobs = json::array();
  for (const auto& r : page.value().records) jobs.push_back(job_summary(r));
  send_json(res, 200,
            {{"jobs", std::move(jobs)},
             {"next_cursor", page.value().next_cursor.empty() ? json(nullptr)
                                                              : json(page.value().next_cursor)}});
}

void ApiServer::cancel_job(const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1];
  if (!is_job_id(id)) return problem(res, 404, "'" + id.substr(0, 80) + "' is not a job id");
  auto rec = jobs_.cancel(id);
  if (!rec.is_ok()) return problem(res, rec.status());
  send_json(res, 200, job_view(rec.value()));
}

}  // namespace meshwork::api
