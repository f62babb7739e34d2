// The REST API (v1); see server.h.
#include "api/server.h"

#include <sys/socket.h>

#include <chrono>
#include <optional>
#include <sstream>

#include "api/dashboard.h"
#include "api/idempotency.h"
#include "api/json_text.h"
#include "api/openapi.h"
#include "api/params.h"
#include "api/problem.h"
#include "api/task_queue.h"
#include "api/views.h"
#include "node/clock.h"
#include "node/json_bounded.h"

namespace meshwork::api {
namespace {

using nlohmann::json;

constexpr uint64_t kIdempotencyExpireEvery = 1'024;  // new keys between sweeps of expired ones

constexpr size_t kListLimitDefault = 50;
// What an answer's text reserves up front: a job's view (about 700 bytes for a job just queued),
// a batch's item (about 250).
constexpr size_t kJobViewBytesReserve = 1'024;
constexpr size_t kBatchItemBytesReserve = 256;
// The peers' list requests carry the same bounds (dht/messages.h).
constexpr size_t kCursorBytesMax = kListCursorBytesMax;

// Counts a submission's outcome (api/http_metrics.h) from the status its response ends with. A
// batch answered 200 counts its items instead, in post_batch.
class SubmissionOutcome {
 public:
  SubmissionOutcome(HttpMetrics& m, const httplib::Response& res, bool batch)
      : m_(m), res_(res), batch_(batch) {}
  ~SubmissionOutcome() {
    if (!batch_ || res_.status != 200) m_.submission(res_.status);
  }
  SubmissionOutcome(const SubmissionOutcome&) = delete;
  SubmissionOutcome& operator=(const SubmissionOutcome&) = delete;

 private:
  HttpMetrics& m_;
  const httplib::Response& res_;
  bool batch_;
};

// When the request this HTTP thread serves began routing (cpp-httplib serves a connection's
// requests one after another on one thread); unset for one it refused before routing.
thread_local std::optional<std::chrono::steady_clock::time_point> request_started;

// The detail of a 429 from the rate limit.
std::string rate_limited_detail(const RateLimitOptions& o, uint32_t burst, uint64_t wait_s) {
  std::ostringstream rate;
  rate << o.rate_per_s;
  return "rate limit: this client may submit " + rate.str() + " jobs per second (bursts of " +
         std::to_string(burst) + "); retry in " + std::to_string(wait_s) + " s";
}

bool local_scope(const httplib::Request& req, httplib::Response& res, bool& local) {
  local = false;
  if (!req.has_param("scope")) return true;
  const std::string scope = req.get_param_value("scope");
  if (scope != "local" && scope != "cluster") {
    problem(res, 422, "scope must be local or cluster");
    return false;
  }
  local = scope == "local";
  return true;
}

}  // namespace

ApiServer::ApiServer(Services services, ApiOptions options, Providers providers,
                     std::unique_ptr<httplib::Server> server)
    : services_(services),
      options_(options),
      providers_(std::move(providers)),
      http_metrics_(services_.metrics),
      owned_server_(server ? std::move(server) : std::make_unique<httplib::Server>()),
      server_(*owned_server_),
      rate_limiter_(options_.rate_limit) {
  // Every event stream (GET /v1/events, at most EventHub::Options::streams_max) and long-poll
  // holds its connection's thread while it waits; the pool grows by both bounds, so that they
  // cannot take the threads that submissions need.
  server_.new_task_queue = [n = options_.threads + services_.events.options().streams_max +
                                options_.waits_max] {
    return new ElasticTaskQueue(n, kHttpThreadsIdle, kHttpThreadIdleMs);
  };
  server_.set_tcp_nodelay(true);
  // cpp-httplib's default sets SO_REUSEPORT, which lets a second node bind a port in use and take
  // half its connections; SO_REUSEADDR alone still allows a quick restart (TIME_WAIT).
  server_.set_socket_options([this](socket_t s) {
    int on = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    listen_fd_ = s;
  });
  server_.set_keep_alive_max_count(100'000);
  // The largest body any route takes; each route checks its own limit.
  server_.set_payload_max_length(std::max(options_.body_bytes_max, options_.batch_body_bytes_max));
  routes();
}

ApiServer::~ApiServer() {
  stop();
}

int ApiServer::bind(const std::string& host, int port) {
  const int bound =
      port == 0 ? server_.bind_to_any_port(host) : (server_.bind_to_port(host, port) ? port : -1);
  // Debian's compiled cpp-httplib listens with a backlog of 5: a burst of clients and peers
  // connecting at once (a load test, a mesh starting) overflows it, the kernel drops SYNs and
  // the connects stall for the 1 s SYN retry. Listening again on the bound socket raises it.
  if (bound > 0 && listen_fd_ >= 0) (void)::listen(listen_fd_, kListenBacklog);
  return bound;
}

void ApiServer::serve() {
  server_.listen_after_bind();
}

void ApiServer::stop() {
  if (server_.is_running()) server_.stop();
}

void ApiServer::routes() {
  // Nothing here is a byte-addressable file, so Range is ignored (RFC 9110 allows it). cpp-httplib
  // 0.11 would otherwise cut any answer, a 202 included, to the requested bytes. The request object
  // is the server's own, mutable one; the handler only sees it through a const reference.
  //
  // A request that announces a larger body than any route takes is refused before the body is
  // read (this runs before cpp-httplib reads it).
  server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    request_started = std::chrono::steady_clock::now();
    const_cast<httplib::Request&>(req).ranges.clear();
    const size_t public_max = std::max(options_.body_bytes_max, options_.batch_body_bytes_max);
    if (req.has_header("Content-Length") &&
        req.get_header_value<uint64_t>("Content-Length") > public_max) {
      problem(res, 413, "the request body exceeds the node's limit");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server_.Post("/v1/jobs", [this](const auto& req, auto& res) { post_job(req, res); });
  server_.Post("/v1/jobs/batch", [this](const auto& req, auto& res) { post_batch(req, res); });
  server_.Get("/v1/cluster/ring", [this](const auto&, auto& res) {
    send_json(res, 200, services_.cluster.ring_json());
  });
  server_.Get(R"(/v1/jobs/([^/]+))", [this](const auto& req, auto& res) { get_job(req, res); });
  server_.Get("/v1/jobs", [this](const auto& req, auto& res) { list_jobs(req, res); });
  server_.Get(R"(/v1/jobs/([^/]+)/receipts)",
              [this](const auto& req, auto& res) { get_receipts(req, res); });
  server_.Post(R"(/v1/jobs/([^/]+)/cancel)",
               [this](const auto& req, auto& res) { cancel_job(req, res); });
  server_.Post(R"(/v1/jobs/([^/]+)/retry)",
               [this](const auto& req, auto& res) { retry_job(req, res); });
  server_.Get("/v1/events", [this](const auto& req, auto& res) { events(req, res); });
  server_.Get("/", [](const auto&, auto& res) {
    res.set_content(dashboard_html(), "text/html; charset=utf-8");
  });
  server_.Get("/v1/node",
              [this](const auto&, auto& res) { send_json(res, 200, providers_.node_info()); });
  server_.Get("/v1/cluster/members",
              [this](const auto&, auto& res) { send_json(res, 200, providers_.members()); });
  server_.Get("/metrics", [this](const auto&, auto& res) {
    res.status = 200;
    res.set_content(services_.metrics.render(), std::string(metrics::kContentType));
  });
  server_.Get("/healthz", [](const auto&, auto& res) { send_json(res, 200, {{"status", "ok"}}); });
  server_.Get("/readyz", [this](const auto&, auto& res) {
    if (providers_.ready()) return send_json(res, 200, {{"status", "ready"}});
    problem(res, 503, "the node is not ready to accept jobs");
  });
  server_.Get("/v1/openapi.json", [](const auto&, auto& res) {
    res.status = 200;
    res.set_content(openapi_json().data(), openapi_json().size(), "application/json");
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
  // Runs after each response is written, with its final status.
  server_.set_logger([this](const auto& req, const auto& res) { observe(req, res); });
  server_.set_exception_handler(
      [](const auto&, auto& res, std::exception_ptr) { problem(res, 500, "internal error"); });
}

void ApiServer::observe(const httplib::Request& req, const httplib::Response& res) {
  if (!request_started) return;
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - *request_started;
  request_started.reset();
  http_metrics_.request(req.method, req.path, res.status, took.count());
}

void ApiServer::post_job(const httplib::Request& req, httplib::Response& res) {
  SubmissionOutcome outcome(http_metrics_, res, /*batch=*/false);
  InflightGuard inflight(inflight_submits_);
  if (inflight.value() > options_.inflight_submits_max)
    return problem(res, 429, "too many submissions in flight; retry later");
  if (req.body.size() > options_.body_bytes_max)
    return problem(res, 413, "the request body exceeds the node's limit");
  auto body = parse_json_bounded(req.body);
  if (!body.is_ok()) return problem(res, body.status());
  if (!body.value().is_object()) return problem(res, 400, "the body must be a JSON object");
  auto idem = parse_idempotency_key(
      req.has_header(kIdempotencyKeyHeader)
          ? std::optional<std::string_view>(req.get_header_value(kIdempotencyKeyHeader))
          : std::nullopt,
      req.get_header_value_count(kIdempotencyKeyHeader));
  if (!idem.is_ok()) return problem(res, idem.status());
  // A signed envelope's id does not depend on the node: it is idempotent already.
  std::optional<IdempotencyClaim> claim;
  std::string body_hash;  // of the client's body, before a reused key fills nonce and created_at
  bool reused = false;
  if (idem.value() && !is_signed_envelope(body.value())) {
    claim.emplace(*this, *idem.value());
    if (!claim->owned())
      return problem(res, 409, "a request with this Idempotency-Key is being submitted; retry");
    body_hash = blake2b_hex(body.value().dump());
    auto got = reuse_idempotency_key(*idem.value(), body.value());
    if (!got.is_ok()) return problem(res, got.status());
    reused = got.value();
  }
  auto admitted = services_.admission.admit(body.value());
  if (!admitted.is_ok()) return problem(res, admitted.status());
  if (auto wait_s = take_token(req, is_signed_envelope(body.value()), admitted.value()))
    return problem(res, 429, rate_limited_detail(options_.rate_limit, rate_burst(), *wait_s),
                   *wait_s);
  // A new key is remembered, synced, before the job is submitted: a crash between the two
  // cannot make a second job. Only an admitted body gets an entry.
  if (claim && !reused) {
    if (Status s = remember_idempotency_key(*idem.value(), body_hash, admitted.value());
        !s.is_ok())
      return problem(res, s);
  }
  std::vector<JobRecord> one;
  one.push_back(std::move(admitted).value());
  auto items = services_.driver.submit(std::move(one));
  if (!items.is_ok()) return problem(res, items.status());
  ItemResult& r = items.value().front();
  if (!r.status.is_ok()) return problem(res, r.status);
  if (!r.record) return problem(res, 500, "the mesh answered without the job");
  res.set_header("Location", "/v1/jobs/" + r.record->id);
  send_job_view(res, r.created ? 202 : 200, *r.record);
}

void ApiServer::send_job_view(httplib::Response& res, int status, const JobRecord& r) const {
  std::string body;
  body.reserve(kJobViewBytesReserve);
  append_job_view(body, r, wall_ms(), services_.cluster.replicas_of(r.id));
  send_json_text(res, status, std::move(body));
}

ApiServer::IdempotencyClaim::IdempotencyClaim(ApiServer& server, std::string key_hash)
    : server_(server), key_(std::move(key_hash)) {
  std::lock_guard lock(server_.idempotency_mu_);
  owned_ = server_.idempotency_inflight_.insert(key_).second;
}

ApiServer::IdempotencyClaim::~IdempotencyClaim() {
  if (!owned_) return;
  std::lock_guard lock(server_.idempotency_mu_);
  server_.idempotency_inflight_.erase(key_);
}

Result<bool> ApiServer::reuse_idempotency_key(const std::string& key_hash, json& body) {
  auto stored = services_.store.get_idempotency(key_hash);
  if (!stored.is_ok()) return stored.status();
  std::optional<IdempotencyEntry> entry;
  if (stored.value()) entry = decode_idempotency_entry(*stored.value());
  if (!entry || entry->at_ms + options_.idempotency_window_ms <= wall_ms()) return false;
  if (entry->body_hash != blake2b_hex(body.dump()))
    return Status(Code::invalid, "this Idempotency-Key was used with a different body");
  body["nonce"] = entry->nonce;
  body["created_at"] = entry->created_at_ms;
  return true;
}

Status ApiServer::remember_idempotency_key(const std::string& key_hash,
                                           const std::string& body_hash,
                                           const JobRecord& admitted) {
  const uint64_t now = wall_ms();
  const json spec = json::parse(admitted.envelope.job, nullptr, /*allow_exceptions=*/false);
  if (!spec.is_object() || !spec.contains("nonce") || !spec["nonce"].is_string())
    return Status(Code::corruption, "the admitted job has no nonce");
  const IdempotencyEntry entry{body_hash, spec["nonce"].get<std::string>(), admitted.created_at_ms,
                               now};
  if (Status s =
          services_.store.put_idempotency(key_hash, encode_idempotency_entry(entry), now);
      !s.is_ok())
    return s;
  // Now and then, forget the keys whose window has passed: the store reads only those, oldest
  // first, so the work is proportional to what expired, not to every key held.
  if (++idempotency_writes_ % kIdempotencyExpireEvery == 0 &&
      now > options_.idempotency_window_ms) {
    const uint64_t window = options_.idempotency_window_ms;
    services_.store.expire_idempotency(now - window, [&](std::string_view v) {
      auto e = decode_idempotency_entry(v);
      return !e || e->at_ms + window <= now;
    });
  }
  return Status::ok();
}

// A batch body signed once is one Merkle tree (dht/envelope.h).
static_assert(kBatchJobsMax <= kJobBatchMax);

void ApiServer::post_batch(const httplib::Request& req, httplib::Response& res) {
  SubmissionOutcome outcome(http_metrics_, res, /*batch=*/true);
  InflightGuard inflight(inflight_submits_);
  if (inflight.value() > options_.inflight_submits_max)
    return problem(res, 429, "too many submissions in flight; retry later");
  if (req.body.size() > options_.batch_body_bytes_max)
    return problem(res, 413, "the batch exceeds the node's limit");
  auto body = parse_json_bounded(req.body);
  if (!body.is_ok()) return problem(res, body.status());
  const json& b = body.value();
  if (!b.is_object() || !b.contains("jobs") || !b["jobs"].is_array())
    return problem(res, 400, "the body must be {\"jobs\": [job, ...]}");
  if (b["jobs"].empty() || b["jobs"].size() > kBatchJobsMax)
    return problem(res, 422, "a batch holds 1 to " + std::to_string(kBatchJobsMax) + " jobs");
  // Admission on this thread (a batch signed once is verified once, whole; plain jobs are signed
  // together); the admitted ones go to the core together.
  const json& list = b["jobs"];
  const bool signed_once = b.contains("signature") || b.contains("public_key");
  std::vector<Result<JobRecord>> recs;
  if (signed_once) {
    auto all = services_.admission.admit_signed_batch(b);
    if (!all.is_ok()) return problem(res, all.status());
    recs = std::move(all).value();
  } else {
    recs = services_.admission.admit_batch(list);
  }
  std::vector<ItemResult> results(list.size());
  std::vector<uint64_t> retry_after_s(list.size(), 0);  // > 0: refused by the rate limit
  std::vector<JobRecord> admitted;
  std::vector<size_t> index;  // admitted[k] answers results[index[k]]
  for (size_t i = 0; i < list.size(); ++i) {
    Result<JobRecord>& rec = recs[i];
    if (!rec.is_ok()) {
      results[i].status = rec.status();
      continue;
    }
    if (auto wait_s = take_token(req, signed_once || is_signed_envelope(list[i]), rec.value())) {
      results[i].status =
          Status(Code::overloaded, rate_limited_detail(options_.rate_limit, rate_burst(), *wait_s));
      retry_after_s[i] = *wait_s;
      continue;
    }
    admitted.push_back(std::move(rec).value());
    index.push_back(i);
  }
  if (!admitted.empty()) {
    auto stored = services_.driver.submit(std::move(admitted));
    for (size_t k = 0; k < index.size(); ++k)
      results[index[k]] = stored.is_ok() ? std::move(stored.value()[k])
                                         : ItemResult{stored.status(), false, std::nullopt};
  }
  std::vector<std::vector<std::string>> replicas(results.size());
  for (size_t i = 0; i < results.size(); ++i) {
    const ItemResult& r = results[i];
    if (r.status.is_ok() && r.record) replicas[i] = services_.cluster.replicas_of(r.record->id);
    http_metrics_.submission(batch_item_status(r));
  }
  std::string answer;
  answer.reserve(kBatchItemBytesReserve * results.size());
  append_batch_answer(answer, results, retry_after_s, replicas, wall_ms());
  send_json_text(res, 200, std::move(answer));
}

void ApiServer::get_job(const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1];
  if (!is_job_id(id)) return problem(res, 404, "'" + id.substr(0, 80) + "' is not a job id");
  bool local = false;
  if (!local_scope(req, res, local)) return;
  uint64_t wait_ms = 0;
  if (req.has_param("wait_s")) {
    auto w = parse_uint(req.get_param_value("wait_s"), 0, kWaitSecondsMax);
    if (!w)
      return problem(res, 422,
                     "wait_s must be an integer from 0 to " + std::to_string(kWaitSecondsMax));
    wait_ms = *w * 1'000;
  }
  auto got = wait_ms > 0 ? read_job_waiting(id, local, wait_ms) : read_job(id, local);
  if (!got.is_ok()) return problem(res, got.status());
  send_job_view(res, 200, got.value());
}

// Each receipt of the job, merged from its replicas, checked against the keys gossip knows.
void ApiServer::get_receipts(const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1];
  if (!is_job_id(id)) return problem(res, 404, "'" + id.substr(0, 80) + "' is not a job id");
  auto got = read_job(id, /*local=*/false);
  if (!got.is_ok()) return problem(res, got.status());
  send_json(res, 200, receipts_view(got.value(), providers_.node_keys()));
}

Result<JobRecord> ApiServer::read_job(const std::string& id, bool local) {
  std::optional<JobRecord> rec;
  if (local) {
    services_.store.wait_written(kListWaitWrittenMs);  // what a read through the core saw
    auto got = services_.store.get(id);
    if (!got.is_ok()) return got.status();
    rec = std::move(got).value();
  } else {
    auto got = services_.driver.read(id);
    if (!got.is_ok()) return got.status();
    if (!got.value().status.is_ok()) return got.value().status;
    rec = std::move(got.value().record);
  }
  if (!rec) return Status(Code::not_found, "no job with id " + id);
  return std::move(*rec);
}

void ApiServer::list_jobs(const httplib::Request& req, httplib::Response& res) {
  ListQuery q;
  q.limit = kListLimitDefault;
  if (req.has_param("state")) {
    q.state = req.get_param_value("state");
    if (!is_public_state_name(q.state))
      return problem(res, 422,
                     "state must be one of queued, scheduled, running, succeeded, failed, "
                     "cancelled");
  }
  if (req.has_param("type")) q.type = req.get_param_value("type");
  if (req.has_param("limit")) {
    auto limit = parse_uint(req.get_param_value("limit"), 1, kListLimitMax);
    if (!limit)
      return problem(res, 422,
                     "limit must be an integer from 1 to " + std::to_string(kListLimitMax));
    q.limit = *limit;
  }
  if (req.has_param("cursor")) {
    q.cursor = req.get_param_value("cursor");
    if (q.cursor.size() > kCursorBytesMax) return problem(res, 422, "cursor is not valid");
  }
  bool local = false;
  if (!local_scope(req, res, local)) return;
  auto page = services_.cluster.list(q, local);
  if (!page.is_ok()) return problem(res, page.status());
  json jobs = json::array();
  const uint64_t now = wall_ms();
  for (const auto& r : page.value().records) jobs.push_back(job_summary(r, now));
  send_json(res, 200,
            {{"jobs", std::move(jobs)},
             {"next_cursor",
              page.value().next_cursor.empty() ? json(nullptr) : json(page.value().next_cursor)}});
}

std::optional<uint64_t> ApiServer::take_token(const httplib::Request& req, bool client_signed,
                                              const JobRecord& admitted) {
  if (!rate_limiter_.enabled()) return std::nullopt;
  const std::string client =
      client_signed ? "key:" + admitted.envelope.public_key : "ip:" + req.remote_addr;
  RateDecision d;
  {
    std::lock_guard lock(rate_mu_);
    d = rate_limiter_.take(client, mono_ms());
  }
  if (d.allowed) return std::nullopt;
  rate_limited_++;
  return retry_after_seconds(d.retry_after_ms);
}

size_t ApiServer::rate_clients() const {
  std::lock_guard lock(rate_mu_);
  return rate_limiter_.clients();
}

Status ApiServer::authorize_change(const httplib::Request& req, std::string_view action,
                                   const std::string& id) {
  auto parsed = parse_client_signature(client_auth_headers(req));
  if (!parsed.is_ok()) return parsed.status();
  const std::optional<ClientSignature>& sig = parsed.value();
  if (sig) {
    if (Status s = verify_client_signature(*sig, action, id, wall_ms()); !s.is_ok()) return s;
  }
  auto got = services_.driver.read(id);
  if (!got.is_ok()) return got.status();
  if (!got.value().status.is_ok()) return got.value().status;
  if (!got.value().record) return {Code::not_found, "no job with id " + id};
  const std::string& job_key = got.value().record->envelope.public_key;
  const bool open = options_.plain_jobs_open && providers_.is_node_key(job_key);
  if (Status s = authorize_job_request(sig, job_key, open, options_.admin_keys); !s.is_ok())
    return s;
  if (sig) {
    std::lock_guard lock(replay_mu_);
    if (!replays_.first_use(*sig, action, id, wall_ms()))
      return {Code::unauthorized,
              "signed request: this signature was used before; sign the request again"};
  }
  return Status::ok();
}

void ApiServer::cancel_job(const httplib::Request& req, httplib::Response& res) {
  change_job(req, res, kCancelAction);
}

void ApiServer::retry_job(const httplib::Request& req, httplib::Response& res) {
  change_job(req, res, kRetryAction);
}

// A cancel or a retry: authorised (client_auth.h), then made on a quorum of the job's replicas.
void ApiServer::change_job(const httplib::Request& req, httplib::Response& res,
                           std::string_view action) {
  const bool cancel = action == kCancelAction;
  const std::string id = req.matches[1];
  if (!is_job_id(id)) return problem(res, 404, "'" + id.substr(0, 80) + "' is not a job id");
  if (Status s = authorize_change(req, action, id); !s.is_ok()) {
    if (s.code() == Code::malformed || s.code() == Code::unauthorized ||
        s.code() == Code::forbidden)
      (cancel ? cancels_refused_ : retries_refused_)++;
    return problem(res, s);
  }
  auto got = cancel ? services_.driver.cancel(id) : services_.driver.retry(id);
  if (!got.is_ok()) return problem(res, got.status());
  if (!got.value().status.is_ok()) return problem(res, got.value().status);
  if (!got.value().record) return problem(res, 404, "no job with id " + id);
  send_job_view(res, 200, *got.value().record);
}

}  // namespace meshwork::api
