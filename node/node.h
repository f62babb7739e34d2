// A running meshwork node: identity, store, replica core and its driver, membership, peer
// transport, HTTP API and the loop thread, wired together.
//
// Node::start() opens everything in order (data dir, identity key, store, loop thread, the replica
// core booted from the store, API socket, gossip socket and join) and returns once both sockets are
// bound, or an error. stop() tears down in reverse: API, handlers and the core's inputs, a graceful
// gossip leave, peer transport, loop thread, and last the store, which writes what is queued.
// Thread-safety: start/stop/wait from one thread.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include "api/server.h"
#include "node/admission.h"
#include "node/cluster_view.h"
#include "node/crypto.h"
#include "node/event_hub.h"
#include "node/gossip_driver.h"
#include "node/log.h"
#include "node/peer_transport.h"
#include "node/replica_driver.h"
#include "node/store.h"

namespace meshwork {

struct NodeConfig {
  std::string name = "n1";
  std::string api_host = "127.0.0.1";
  int api_port = 8001;
  // The host other nodes and clients reach this node at: its API address and gossip address as
  // announced. Empty: each announces the host it binds; then neither may bind 0.0.0.0.
  std::string advertise;
  // HTTPS on the API (api/tls.h): both files or neither. tls_ca_file is only checked at start:
  // nodes do not call each other's APIs (the peer transport carries their traffic).
  std::string tls_cert_file, tls_key_file, tls_ca_file;
  std::string data_dir;  // default: ./data/<name>
  size_t workers = 0;    // 0: one per core
  // Outcomes are signed together at most once per this many ms (node/replica_driver.h).
  uint64_t receipt_linger_ms = kReceiptLingerMsDefault;
  // A claim waits this long for its handler's outcome to leave with it (dht/replica.h).
  uint64_t claim_hold_ms = kClaimHoldMsDefault;
  // A submission refused only for a lagging replica waits this long to be admitted (dht/replica.h).
  uint64_t admission_wait_ms = kAdmissionWaitMsDefault;
  spdlog::level::level_enum log_level = spdlog::level::info;
  LogFormat log_format = LogFormat::text;
  bool require_signed = false;
  std::string allowed_keys_file;  // one base64 public key per line; '#' starts a comment
  std::string admin_keys_file;    // keys that may cancel any job; the same format
  double rate_limit = 0;          // jobs per second per client (api/rate_limit.h); 0: off
  uint32_t rate_burst = 0;        // a client's bucket; 0: rate_limit rounded up
  size_t body_bytes_max = 1024 * 1024;
  size_t payload_bytes_max = 256 * 1024;
  size_t backlog_max = 10'000;
  size_t http_threads = 64;
  size_t events_max = 32;  // GET /v1/events streams at once
  bool fsync = true;
  // 0: every store group is synced before it counts as durable; N: periodic sync (node/store.h).
  uint64_t sync_interval_ms = 0;
  // Membership (gossip/): where to listen, whom to join, how to seal, how fast to detect.
  std::string gossip_bind;  // HOST:PORT; empty: the API host with an ephemeral port
  std::vector<std::string> join;
  std::string cluster_key_file;  // empty: gossip is not sealed
  gossip::Config gossip;         // from --profile, then the timing flags
  std::map<std::string, std::string> tags;
  // Placement and replication (dht/replica.h).
  PlacementOptions placement;
  uint64_t reap_after_s = 86'400;  // a member dead this long gives up its ring tokens
  // Hidden --test-break: "skip-takeover" breaks failover (chaos test); "lie" and "forge" break
  // this node's results (node/test_break.h).
  std::string test_break;
  // Hidden --test-clock-offset-ms: the replica core's wall clock set off by this much (signed), to
  // test a mesh where one node's clock is wrong (tests/integration/test_clock.py).
  int64_t test_clock_offset_ms = 0;
  // Retention (dht/replica_retention.cpp): finished jobs kept this long (0: for ever), and the
  // tombstones of removed ones.
  uint64_t retain_s = 7 * 24 * 3'600;
  uint64_t tombstone_s = 10 * 24 * 3'600;
};

// Reads an allowed-keys (or admin-keys) file; Code::invalid names the first bad line.
[[nodiscard]] Result<std::set<std::string>> load_allowed_keys(const std::string& path);

class Node {
 public:
  static Result<std::unique_ptr<Node>> start(NodeConfig config);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Blocks until SIGINT or SIGTERM, or until stop() from another thread.
  void wait_for_signal();
  void stop();

  [[nodiscard]] int api_port() const { return api_port_; }
  [[nodiscard]] nlohmann::json info() const;

 private:
  explicit Node(NodeConfig config);
  Status open();
  Status resolve_addresses();
  [[nodiscard]] std::string advertised_api() const;
  Status start_api(std::unique_ptr<httplib::Server> https, std::set<std::string> admin_keys);
  [[nodiscard]] bool is_node_key(std::string_view key) const;
  [[nodiscard]] nlohmann::json members_json() const;  // GET /v1/cluster/members
  Status start_gossip();
  Status listen_for_peers(GossipOptions& go);
  [[nodiscard]] ReplicaConfig replica_config() const;

  NodeConfig config_;
  api::metrics::Registry metrics_;  // GET /metrics; outlives everything that updates it
  std::optional<Identity> identity_;
  std::unique_ptr<Store> store_;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread io_thread_;
  std::unique_ptr<Admission> admission_;
  std::unique_ptr<PeerTransport> transport_;  // peer messages (framed TCP)
  EventHub events_;  // outlives the driver and the API, which publish to and read from it
  std::unique_ptr<ReplicaDriver> driver_;
  std::unique_ptr<ClusterView> cluster_;
  std::unique_ptr<GossipDriver> gossip_;
  std::unique_ptr<api::ApiServer> api_;
  std::thread api_thread_;
  int api_port_ = -1;
  std::string gossip_bind_;   // HOST:PORT of the gossip socket and the peer listener
  std::string advertise_;     // host announced for the API (as given: a name or an address)
  std::string advertise_ip_;  // the same as IPv4, announced for gossip; empty: the bound one
  uint64_t started_ms_ = 0;
  bool stopped_ = false;
};

}  // namespace meshwork
