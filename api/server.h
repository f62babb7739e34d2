// The REST API (v1): thin routes over the node's services.
//
//   POST /v1/jobs               submit a signed envelope or a plain job → 202 (new) or 200 (known),
//                               once W replicas hold it; 503 + Retry-After when they cannot
//   POST /v1/jobs/batch         {"jobs":[...]} (at most 1000) → 200 with one answer per job
//   GET  /v1/jobs/{id}          one job, merged from its replicas (?scope=local: this node's copy;
//                               ?wait_s=N: long-poll, answers once it is terminal or after N s)
//   GET  /v1/jobs               ?state=&type=&limit=&cursor=&scope=, newest first, cluster-wide
//   GET  /v1/jobs/{id}/receipts each node's receipt with its status (valid, invalid, unchecked)
//                               against the node keys gossip knows (node/receipt_check.h)
//   POST /v1/jobs/{id}/cancel   cancel a queued job now, or a running one cooperatively; a job a
//                               client signed needs a request signed by its key or an admin key
//                               (node/client_auth.h), else 403
//   GET  /v1/events             text/event-stream of job and membership changes (api/live.cpp)
//   GET  /v1/node               this node: identity, counters, limits, job types
//   GET  /v1/cluster/members    the membership as this node sees it (gossip)
//   GET  /v1/cluster/ring       tokens, ranges and jobs held per member
//   GET  /healthz, /readyz      liveness, readiness
//   GET  /metrics               Prometheus text format 0.0.4 (api/metrics.h, api/http_metrics.h)
//   GET  /                      the live dashboard (api/dashboard.html, compiled into the binary)
// Nodes talk to each other only over the framed peer transport (node/peer_transport.h): there are
// no peer routes here.
// With a rate limit, each job a client submits (alone or in a batch) takes a token from its bucket
// (api/rate_limit.h) once admission has verified it: the client is the signing key of an envelope,
// or the sender's address for a plain job; a job over the limit gets 429 + Retry-After and is not
// stored.
// Errors are application/problem+json (api/problem.h). Every server socket has TCP_NODELAY. The
// same routes serve plain HTTP or HTTPS (api/tls.h), whichever server the node hands in.
//
// Thread-safety: routes run on cpp-httplib's workers (an ElasticTaskQueue: threads start on
// demand and the ones above a small floor exit when idle). A route parses and validates on its own
// thread — admission (signature checks, signing) included — hands the request to the replica
// driver's loop and waits for its reply, bounded; it never touches the core or holds shared state
// while it waits.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "api/http_metrics.h"
#include "api/metrics.h"
#include "api/rate_limit.h"
#include "node/admission.h"
#include "node/client_auth.h"
#include "node/cluster_view.h"
#include "node/event_hub.h"
#include "node/receipt_check.h"
#include "node/replica_driver.h"
#include "node/store.h"

namespace meshwork::api {

inline constexpr int kListenBacklog =
    1024;  // pending connections (the kernel caps it at somaxconn)

inline constexpr size_t kHttpThreadsIdle = 4;         // HTTP threads kept while idle
inline constexpr uint64_t kHttpThreadIdleMs = 5'000;  // an HTTP thread above that exits after this

struct ApiOptions {
  size_t threads = 64;                     // HTTP worker threads at most (one per connection)
  size_t body_bytes_max = 1024 * 1024;     // larger bodies get 413
  size_t inflight_submits_max = 4'096;     // concurrent submissions before 429
  size_t batch_body_bytes_max = 16 << 20;  // POST /v1/jobs/batch
  size_t waits_max = 64;             // long-polls (?wait_s) at once; beyond, they answer at once
  RateLimitOptions rate_limit;       // jobs per second per client; off by default
  std::set<std::string> admin_keys;  // raw Ed25519 keys that may cancel any job (--admin-keys)
  bool plain_jobs_open = true;       // anyone may cancel a plain job (false: --require-signed)
  // How long an Idempotency-Key is remembered (api/idempotency.h): the node's retention
  // (node.cpp sets it from --retain-s; at most UINT64_MAX / 2 so that at + window cannot overflow).
  uint64_t idempotency_window_ms = 7 * 24 * 3'600'000ull;
};

inline constexpr uint64_t kWaitSecondsMax = 60;  // the longest ?wait_s

class ApiServer {
 public:
  // What the API asks the rest of the node for; each is called on an HTTP thread.
  struct Providers {
    std::function<nlohmann::json()> node_info;  // GET /v1/node
    std::function<bool()> ready;                // GET /readyz
    std::function<nlohmann::json()> members;    // GET /v1/cluster/members
    // Is this raw public key a node's (this one's or a member's)? A job it signed is a plain job.
    std::function<bool(std::string_view)> is_node_key;
    // Member name → base64 public key of every node gossip knows, this one included.
    std::function<NodeKeys()> node_keys;
  };

  // What the routes call; all outlive the server.
  struct Services {
    Admission& admission;
    ReplicaDriver& driver;
    ClusterView& cluster;
    Store& store;
    EventHub& events;            // job and membership changes (GET /v1/events, ?wait_s)
    metrics::Registry& metrics;  // GET /metrics renders it; the API adds its own families
  };

  // Serves plain HTTP, or over `server` when given (an SSLServer: api/tls.h).
  ApiServer(Services services, ApiOptions options, Providers providers,
            std::unique_ptr<httplib::Server> server = nullptr);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds host:port (port 0 picks one); returns the bound port or -1.
  [[nodiscard]] int bind(const std::string& host, int port);
  // Serves until stop(); call on a thread of its own.
  void serve();
  void stop();

  // Peer message bodies refused as malformed or too large (400/413).
  // Jobs refused by the per-client rate limit (429), and the clients it tracks now.
  [[nodiscard]] uint64_t rate_limited() const { return rate_limited_.load(); }
  [[nodiscard]] size_t rate_clients() const;
  [[nodiscard]] const RateLimitOptions& rate_limit() const { return options_.rate_limit; }
  [[nodiscard]] uint32_t rate_burst() const { return rate_limiter_.burst(); }
  // Cancels refused for their signature or their signer (400, 401, 403).
  [[nodiscard]] uint64_t cancels_refused() const { return cancels_refused_.load(); }
  [[nodiscard]] uint64_t retries_refused() const { return retries_refused_.load(); }

 private:
  void routes();
  void post_job(const httplib::Request& req, httplib::Response& res);
  void post_batch(const httplib::Request& req, httplib::Response& res);
  void get_job(const httplib::Request& req, httplib::Response& res);
  void get_receipts(const httplib::Request& req, httplib::Response& res);
  [[nodiscard]] Result<JobRecord> read_job(const std::string& id, bool local);
  // Reads until the job is terminal or wait_ms passed (api/live.cpp).
  [[nodiscard]] Result<JobRecord> read_job_waiting(const std::string& id, bool local,
                                                   uint64_t wait_ms);
  void events(const httplib::Request& req, httplib::Response& res);  // api/live.cpp
  void list_jobs(const httplib::Request& req, httplib::Response& res);
  void cancel_job(const httplib::Request& req, httplib::Response& res);
  void retry_job(const httplib::Request& req, httplib::Response& res);
  void change_job(const httplib::Request& req, httplib::Response& res, std::string_view action);
  // 400/401/403 when the request may not `action` (cancel, retry) job `id`: its signature is
  // malformed, stale, forged or replayed, or its signer is neither the job's key nor an admin's
  // (unless the job is open). Reads the job to learn its key; the read's own error (404, 503)
  // otherwise.
  [[nodiscard]] Status authorize_change(const httplib::Request& req, std::string_view action,
                                        const std::string& id);
  // Takes a rate-limit token for an admitted job (a client-signed one counts against its key,
  // else against the address); nullopt when allowed, else the seconds to wait.
  [[nodiscard]] std::optional<uint64_t> take_token(const httplib::Request& req, bool client_signed,
                                                   const JobRecord& admitted);
  // A job's view with its placement (api/views.h), written directly.
  void send_job_view(httplib::Response& res, int status, const JobRecord& r) const;
  // A plain submission with an Idempotency-Key (api/idempotency.h). reuse: when the key has an
  // entry within the window, fills `body`'s nonce and created_at from it (true), or Code::invalid
  // when the entry is for another body; false when there is none. remember: writes the entry of
  // a newly admitted job, synced.
  [[nodiscard]] Result<bool> reuse_idempotency_key(const std::string& key_hash,
                                                   nlohmann::json& body);
  [[nodiscard]] Status remember_idempotency_key(const std::string& key_hash,
                                                const std::string& body_hash,
                                                const JobRecord& admitted);
  void observe(const httplib::Request& req, const httplib::Response& res);

  Services services_;
  ApiOptions options_;
  Providers providers_;
  HttpMetrics http_metrics_;
  std::unique_ptr<httplib::Server> owned_server_;  // HTTP, or HTTPS (api/tls.h)
  httplib::Server& server_;
  socket_t listen_fd_ = -1;  // the listening socket, seen in the socket-options callback
  std::atomic<size_t> inflight_submits_{0};
  std::atomic<size_t> waits_{0};  // long-polls in progress
  mutable std::mutex rate_mu_;
  RateLimiter rate_limiter_;  // guarded by rate_mu_
  std::mutex replay_mu_;
  ReplayGuard replays_;  // guarded by replay_mu_
  std::atomic<uint64_t> rate_limited_{0};
  std::atomic<uint64_t> cancels_refused_{0};
  std::atomic<uint64_t> retries_refused_{0};
  // Holds a key hash in idempotency_inflight_ while one request submits it.
  class IdempotencyClaim {
   public:
    IdempotencyClaim(ApiServer& server, std::string key_hash);
    ~IdempotencyClaim();
    IdempotencyClaim(const IdempotencyClaim&) = delete;
    IdempotencyClaim& operator=(const IdempotencyClaim&) = delete;
    [[nodiscard]] bool owned() const { return owned_; }

   private:
    ApiServer& server_;
    std::string key_;
    bool owned_ = false;
  };
  std::mutex idempotency_mu_;
  std::set<std::string> idempotency_inflight_;  // key hashes being submitted; idempotency_mu_
  std::atomic<uint64_t> idempotency_writes_{0};
};

}  // namespace meshwork::api
