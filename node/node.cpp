// A running meshwork node; see node.h.
#include "node/node.h"

#include <asio/signal_set.hpp>

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>

#include "api/node_metrics.h"
#include "api/tls.h"
#include "node/clock.h"
#include "node/receipt_check.h"
#include "node/resolve.h"
#include "node/test_break.h"
#include "node/thread_name.h"

namespace meshwork {
namespace {

constexpr size_t kAllowedKeysMax = 100'000;
constexpr uint64_t kLeaveGraceMs = 2'000;  // longest a stopping node gossips its leaving
constexpr int kEphemeralBindTries = 8;
// Synced group writes: 1.3–3 ms per batch on the benchmark machine (docs/benchmarks.md), far less
// on a fast SSD, far more on a busy disk.
constexpr std::array kFsyncBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                     0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   2.5};

nlohmann::json counts_json(const Store::StateCounts& c) {
  nlohmann::json j = nlohmann::json::object();
  for (size_t i = 0; i < c.size(); ++i) j[std::string(state_name(JobState(i)))] = c[i];
  return j;
}

// GET /v1/node's `reputation`: the threshold and every host this node has evidence on.
nlohmann::json reputation_json(const ReplicaSnapshot& snap, uint32_t threshold_percent) {
  nlohmann::json hosts = nlohmann::json::object();
  if (snap.reputation)
    for (const auto& [host, c] : snap.reputation->hosts())
      hosts[host] = {{"score", c.score()},
                     {"trusted", snap.reputation->trusted(host)},
                     {"agreed", c.agreed},
                     {"disagreed", c.disagreed},
                     {"forged", c.forged}};
  return {{"threshold", threshold_percent / 100.0}, {"hosts", std::move(hosts)}};
}

// The HTTPS server of --tls-cert and --tls-key (api/tls.h); nullptr without them.
Result<std::unique_ptr<httplib::Server>> https_server_for(const NodeConfig& c) {
  if (c.tls_cert_file.empty() != c.tls_key_file.empty())
    return Status(Code::invalid, "--tls-cert and --tls-key go together: give both or neither");
  if (c.tls_cert_file.empty()) return std::unique_ptr<httplib::Server>();
  if (!c.tls_ca_file.empty())
    if (Status s = api::check_ca_file(c.tls_ca_file); !s.is_ok()) return s;
  return api::https_server(c.tls_cert_file, c.tls_key_file);
}

}  // namespace

Result<std::set<std::string>> load_allowed_keys(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Result<std::set<std::string>>(Code::io_error, "cannot read " + path);
  std::set<std::string> keys;
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    line.erase(0, line.find_first_not_of(" \t\r"));
    line.erase(line.find_last_not_of(" \t\r") + 1);
    if (line.empty()) continue;
    auto key = from_base64(line);
    if (!key || key->size() != kPublicKeyBytes || keys.size() == kAllowedKeysMax)
      return Result<std::set<std::string>>(
          Code::invalid, path + ":" + std::to_string(n) + ": not a base64 Ed25519 public key");
    keys.insert(*key);
  }
  return keys;
}

Node::Node(NodeConfig config)
    : config_(std::move(config)), events_(EventHub::Options{config_.events_max, 1'024}) {}

Node::~Node() {
  stop();
}

Result<std::unique_ptr<Node>> Node::start(NodeConfig config) {
  std::unique_ptr<Node> node(new Node(std::move(config)));
  if (Status s = node->open(); !s.is_ok()) return s;
  return node;
}

ReplicaConfig Node::replica_config() const {
  ReplicaConfig rc;
  rc.placement = config_.placement;
  rc.workers = static_cast<uint32_t>(
      config_.workers ? config_.workers : std::max(1u, std::thread::hardware_concurrency()));
  rc.backlog_max = config_.backlog_max;
  rc.reap_after_ms = config_.reap_after_s * 1000;
  // A seed that is this node's own address (bound or announced) is no other member.
  const std::string port = config_.gossip_bind.substr(config_.gossip_bind.rfind(':') + 1);
  for (const std::string& seed : config_.join)
    if (seed != config_.gossip_bind && seed != advertise_ip_ + ":" + port) rc.joining = true;
  rc.take_over = config_.test_break != "skip-takeover";
  rc.retain_ms = config_.retain_s * 1'000;
  rc.tombstone_ms = config_.tombstone_s * 1'000;
  rc.claim_hold_ms = config_.claim_hold_ms;
  rc.admission_wait_ms = config_.admission_wait_ms;
  // Receipts are checked against the keys gossip announced (this node's own for its results).
  rc.receipt_check = receipt_checker([this](const std::string& node) -> std::optional<std::string> {
    if (node == config_.name) return identity_->public_key();
    return driver_ ? driver_->public_key_of(node) : std::nullopt;
  });
  const std::string seed = random_bytes(sizeof rc.seed);
  std::memcpy(&rc.seed, seed.data(), sizeof rc.seed);
  return rc;
}

// Which host this node announces, and the --join hosts as IPv4 addresses (node/resolve.h).
Status Node::resolve_addresses() {
  const std::string gossip_host =
      config_.gossip_bind.empty() ? config_.api_host
                                  : config_.gossip_bind.substr(0, config_.gossip_bind.rfind(':'));
  if (config_.advertise.empty()) {
    if (is_wildcard_host(config_.api_host) || is_wildcard_host(gossip_host))
      return {Code::invalid,
              "--advertise HOST is required when binding 0.0.0.0: it is the address other nodes "
              "and clients reach this node at"};
    advertise_ = config_.api_host;
  } else {
    if (is_wildcard_host(config_.advertise))
      return {Code::invalid, "--advertise must be an address other nodes can reach, not '" +
                                 config_.advertise + "'"};
    auto ip = resolve_ipv4(config_.advertise, "--advertise");
    if (!ip.is_ok()) return ip.status();
    advertise_ = config_.advertise;
    advertise_ip_ = std::move(ip).value();
  }
  for (std::string& seed : config_.join) {
    auto at = resolve_host_port(seed, "--join");
    if (!at.is_ok()) return at.status();
    seed = std::move(at).value();
  }
  return Status::ok();
}

std::string Node::advertised_api() const {
  return advertise_ + ":" + std::to_string(api_port_ > 0 ? api_port_ : config_.api_port);
}

Status Node::open() {
  started_ms_ = wall_ms();
  if (Status s = resolve_addresses(); !s.is_ok()) return s;
  auto made = https_server_for(config_);  // read before anything is opened: a bad file fails fast
  if (!made.is_ok()) return made.status();
  std::unique_ptr<httplib::Server> https = std::move(made).value();
  const bool tls = https != nullptr;
  if (config_.data_dir.empty()) config_.data_dir = "data/" + config_.name;
  std::error_code ec;
  std::filesystem::create_directories(config_.data_dir, ec);
  if (ec)
    return {Code::io_error, "cannot create data dir " + config_.data_dir + ": " + ec.message()};
  auto id = Identity::load_or_create(config_.data_dir + "/node.key");
  if (!id.is_ok()) return id.status();
  identity_ = std::move(id).value();

  AdmissionOptions ao;
  ao.limits.payload_bytes_max = config_.payload_bytes_max;
  ao.require_signed = config_.require_signed;
  ao.redundancy_max = config_.placement.replicas;
  if (!config_.allowed_keys_file.empty()) {
    auto keys = load_allowed_keys(config_.allowed_keys_file);
    if (!keys.is_ok()) return keys.status();
    ao.allowed_keys = std::move(keys).value();
  }
  std::set<std::string> admin_keys;
  if (!config_.admin_keys_file.empty()) {
    auto keys = load_allowed_keys(config_.admin_keys_file);
    if (!keys.is_ok()) return keys.status();
    admin_keys = std::move(keys).value();
  }
  admission_ = std::make_unique<Admission>(*identity_, config_.name, std::move(ao));
  auto& fsync = metrics_
                    .histogram("meshwork_store_fsync_seconds",
                               "Duration of the store's synced writes (LevelDB Write with "
                               "sync=true: one fsync per group, or per --sync-interval-ms).",
                               {kFsyncBounds.begin(), kFsyncBounds.end()})
                    .with({});
  auto store = Store::open(config_.data_dir + "/jobs",
                           StoreOptions{.sync = config_.fsync,
                                        .sync_interval_ms = config_.sync_interval_ms,
                                        .observe_sync = [&fsync](double s) { fsync.observe(s); }});
  if (!store.is_ok()) return store.status();
  store_ = std::move(store).value();

  work_.emplace(io_.get_executor());
  io_thread_ = std::thread([this] {
    name_this_thread("mw-loop");
    io_.run();
  });
  auto key_of = [this](std::string_view n) -> std::optional<std::string> {
    return driver_ ? driver_->public_key_of(n) : std::nullopt;
  };
  // Nothing reaches the transport before start_gossip() listens, after the driver and the
  // cluster view exist. The cluster view's requests and answers never reach the replica core.
  transport_ = std::make_unique<PeerTransport>(
      io_, *identity_, config_.name, TransportOptions{}, key_of,
      [this](const std::string& from, std::vector<Message>&& messages) {
        std::vector<Message> core;
        core.reserve(messages.size());
        for (Message& m : messages) {
          if (is_replica_message(m)) {
            core.push_back(std::move(m));
          } else {
            cluster_->receive(from, std::move(m));
          }
        }
        if (!core.empty()) driver_->receive(from, std::move(core));
      });
  const ReplicaConfig rc = replica_config();
  driver_ = std::make_unique<ReplicaDriver>(
      io_, config_.name, rc, *store_, *transport_, *identity_,
      [admission = admission_.get()](const JobRecord& r) { return admission->check(r); },
      config_.test_clock_offset_ms, result_signer(config_.test_break));
  driver_->set_events(&events_);
  driver_->set_receipt_linger_ms(config_.receipt_linger_ms);
  if (Status s = driver_->boot(); !s.is_ok()) return s;
  metrics_.add_collector([this](api::metrics::Writer& w) {
    api::write_job_metrics(w, store_->counts(), driver_->snapshot());
  });
  cluster_ = std::make_unique<ClusterView>(io_, *store_, *transport_, *driver_, advertised_api(),
                                           rc.peer_timeout_ms);

  if (Status s = start_api(std::move(https), std::move(admin_keys)); !s.is_ok()) return s;
  metrics_.add_collector([this](api::metrics::Writer& w) {
    api::write_change_refusals(w, api_->cancels_refused(), api_->retries_refused());
  });
  if (Status s = start_gossip(); !s.is_ok()) return s;
  metrics_.add_collector([this](api::metrics::Writer& w) {
    const std::vector<gossip::MemberInfo> members = gossip_->members();
    api::write_gossip_metrics(w, gossip_->stats(), members);
  });
  log_event(spdlog::level::info, "node_started", "",
            "api=" + std::string(tls ? "https://" : "http://") + config_.api_host + ":" +
                std::to_string(api_port_) + " advertised=" + advertised_api() +
                " gossip+peers=" + gossip_bind_ + " data=" + config_.data_dir +
                " workers=" + std::to_string(rc.workers) + " key=" + identity_->public_key_b64());
  return Status::ok();
}

// The HTTP API on its own thread, bound to --api.
Status Node::start_api(std::unique_ptr<httplib::Server> https, std::set<std::string> admin_keys) {
  api::ApiOptions api_options;
  api_options.threads = config_.http_threads;
  api_options.body_bytes_max = config_.body_bytes_max;
  api_options.rate_limit = {.rate_per_s = config_.rate_limit, .burst = config_.rate_burst};
  if (std::string why = api::rate_limit_error(api_options.rate_limit); !why.empty())
    return {Code::invalid, "--rate-limit/--rate-burst: " + why};
  api_options.admin_keys = std::move(admin_keys);
  api_options.plain_jobs_open = !config_.require_signed && config_.allowed_keys_file.empty();
  // An Idempotency-Key lasts as long as the jobs do (--retain-s; 0 keeps both for ever).
  api_options.idempotency_window_ms =
      config_.retain_s == 0 ? UINT64_MAX / 2 : config_.retain_s * 1000;
  api::ApiServer::Providers providers;
  providers.node_info = [this] { return info(); };
  providers.ready = [this] {
    const ReplicaSnapshot s = driver_->snapshot();
    return s.ready && s.backlog < config_.backlog_max;
  };
  providers.members = [this] { return members_json(); };
  providers.is_node_key = [this](std::string_view key) { return is_node_key(key); };
  providers.node_keys = [this] {
    NodeKeys keys{{config_.name, identity_->public_key_b64()}};
    for (const auto& [name, m] : driver_->members())
      if (!m.public_key.empty()) keys.emplace(name, to_base64(m.public_key));
    return keys;
  };
  api_ = std::make_unique<api::ApiServer>(
      api::ApiServer::Services{*admission_, *driver_, *cluster_, *store_, events_, metrics_},
      api_options, std::move(providers), std::move(https));
  api_port_ = api_->bind(config_.api_host, config_.api_port);
  if (api_port_ < 0)
    return {Code::io_error,
            "cannot listen on " + config_.api_host + ":" + std::to_string(config_.api_port)};
  api_thread_ = std::thread([this] {
    name_this_thread("mw-accept");
    api_->serve();
  });
  return Status::ok();
}

// Gossip's members, each with the score this node gives it and whether it trusts it (itself
// always: a node never distrusts itself in its own placement).
nlohmann::json Node::members_json() const {
  nlohmann::json view = gossip_->members_json();
  const ReplicaSnapshot snap = driver_->snapshot();
  for (auto& m : view["members"]) {
    const std::string name = m.value("name", "");
    const bool self = name == config_.name;
    m["score"] = snap.reputation ? snap.reputation->score(name) : HostScore{}.score();
    m["trusted"] = self || !snap.reputation || snap.reputation->trusted(name);
  }
  return view;
}

// A plain job is signed by the node that took it: this one or a member gossip knows.
bool Node::is_node_key(std::string_view key) const {
  if (key == identity_->public_key()) return true;
  for (const auto& [name, m] : driver_->members())
    if (!m.public_key.empty() && m.public_key == key) return true;
  return false;
}

Status Node::start_gossip() {
  GossipOptions go;
  go.name = config_.name;
  go.bind = config_.gossip_bind.empty() ? config_.api_host + ":0" : config_.gossip_bind;
  go.seeds = config_.join;
  go.advertise = advertise_ip_;
  go.config = config_.gossip;
  go.meta = gossip::NodeMeta{advertised_api(), identity_->public_key_b64(), config_.tags};
  if (!config_.cluster_key_file.empty()) {
    auto keys = load_cluster_keys(config_.cluster_key_file);
    if (!keys.is_ok()) return keys.status();
    go.keyring = std::move(keys).value();
  }
  // The peer transport listens on TCP at the gossip address; with an ephemeral gossip port, the
  // UDP socket takes the port TCP got, which on a rare clash is taken again.
  const bool ephemeral = go.bind.ends_with(":0");
  for (int tries = 1;; ++tries) {
    if (Status s = listen_for_peers(go); !s.is_ok()) return s;
    gossip_ = std::make_unique<GossipDriver>(io_, go);
    gossip_->add_listener([this](const gossip::MemberEvent& e) { driver_->on_member(e.member); });
    Status started = gossip_->start();
    if (started.is_ok()) gossip_bind_ = go.bind;
    if (started.is_ok() || !ephemeral || tries == kEphemeralBindTries) return started;
    gossip_.reset();
    transport_->unlisten();
    go.bind = go.bind.substr(0, go.bind.rfind(':')) + ":0";
  }
}

// Binds the peer listener at go.bind (TCP) and points go.bind at the port it got.
Status Node::listen_for_peers(GossipOptions& go) {
  const size_t colon = go.bind.rfind(':');
  const auto at = gossip::parse_address(go.bind);
  if (colon == std::string::npos || !at)
    return {Code::invalid, "--gossip must be IPv4 HOST:PORT, got " + go.bind};
  const std::string host = go.bind.substr(0, colon);
  auto port = transport_->listen(host, at->port);
  if (!port.is_ok()) return port.status();
  go.bind = host + ":" + std::to_string(port.value());
  return Status::ok();
}

void Node::wait_for_signal() {
  asio::signal_set signals(io_, SIGINT, SIGTERM);
  std::promise<int> got;
  signals.async_wait([&](std::error_code ec, int sig) { got.set_value(ec ? 0 : sig); });
  int sig = got.get_future().get();
  log_event(spdlog::level::info, "node_stopping", "", "signal " + std::to_string(sig));
}

void Node::stop() {
  if (stopped_) return;
  stopped_ = true;
  events_.close();  // wakes the event streams and long-polls, so the API's threads can end
  if (api_) api_->stop();
  if (api_thread_.joinable()) api_thread_.join();
  if (cluster_) cluster_->stop();  // no HTTP thread asks any more; it must not read a stopped store
  if (driver_) driver_->stop();
  // Leaving gracefully tells the mesh at once instead of after a suspicion timeout.
  if (gossip_) gossip_->leave(kLeaveGraceMs);
  if (transport_) transport_->stop();
  work_.reset();
  io_.stop();
  if (io_thread_.joinable()) io_thread_.join();
  if (store_) store_->stop();  // writes what the core queued before it stopped
  gossip_.reset();
  api_.reset();
  cluster_.reset();
  driver_.reset();
  transport_.reset();
  store_.reset();
}

nlohmann::json Node::info() const {
  const ReplicaSnapshot snap = driver_->snapshot();
  const ReplicaStats& s = snap.stats;
  const Placement& p = *snap.placement;
  const nlohmann::json transport = transport_->stats_json();
  return {{"name", config_.name},
          {"version", "0.1.0"},
          {"public_key", identity_->public_key_b64()},
          {"api", advertised_api()},
          {"uptime_s", (wall_ms() - started_ms_) / 1000},
          {"workers", driver_->workers()},
          {"backlog", snap.backlog},
          {"running", snap.running},
          {"jobs", counts_json(store_->counts())},
          {"stats",
           {{"submitted", s.submitted},
            {"duplicates", s.duplicates},
            {"rejected", s.rejected + admission_->rejected()},
            {"attempts_started", s.attempts_started},
            {"succeeded", s.succeeded},
            {"failed", s.failed},
            {"retried", s.retried},
            {"cancelled", s.cancelled},
            {"rate_limited", api_->rate_limited()},
            {"rate_clients", api_->rate_clients()},
            {"cancels_refused", api_->cancels_refused()},
            {"retries_requested", s.retries_requested},
            {"retries_refused", api_->retries_refused()},
            {"receipts_refused", s.receipts_refused},
            {"receipts_forged", s.receipts_forged},
            {"receipts_unknown_node", s.receipts_unknown_node},
            {"receipts_too_large", s.receipts_too_large},
            {"receipts_unchecked", s.receipts_unchecked},
            {"receipt_batches", driver_->signed_batches()},
            {"job_root_verifications", admission_->root_verifications()}}},
          {"reputation", reputation_json(snap, driver_->config().score_threshold_percent)},
          {"store",
           {{"batches", store_->batches_written()},
            {"updates", store_->persists_written()},
            {"queue_depth", store_->queue_depth()},
            {"corrupt_records", store_->corrupt_records()},
            {"compactions", store_->compactions()},
            {"syncs", store_->syncs()},
            {"sync_interval_ms", config_.fsync ? config_.sync_interval_ms : 0}}},
          {"gossip", gossip_->stats_json()},
          {"events",
           {{"streams", events_.streams()},
            {"streams_max", events_.options().streams_max},
            {"published", events_.published()},
            {"readers_dropped", events_.dropped()}}},
          {"mesh",
           {{"replicas", p.options().replicas},
            {"write_quorum", p.write_quorum()},
            {"vnodes", p.options().vnodes},
            {"ring_members", p.ring().member_count()},
            {"held", snap.held},
            {"unfinished", snap.unfinished},
            {"hints", snap.hints},
            {"tombstones", snap.tombstones},
            {"expired", s.expired},
            {"tombstone_refusals", s.tombstone_refusals},
            {"stand_ins_dropped", s.stand_ins_dropped},
            {"replicate_sent", s.replicate_sent},
            {"replicate_failed", s.replicate_failed},
            {"replicate_received", s.replicate_received},
            {"quorum_failures", s.quorum_failures},
            {"claims_confirmed", s.claims_confirmed},
            {"claims_refused", s.claims_refused},
            {"outcomes_with_claim", s.outcomes_with_claim},
            {"outcomes_with_claim_taken", s.outcomes_with_claim_taken},
            {"outcomes_refused_here", s.outcomes_refused_here},
            {"takeovers", s.takeovers},
            {"hints_stored", s.hints_stored},
            {"hints_replayed", s.hints_replayed},
            {"anti_entropy_rounds", s.anti_entropy_rounds},
            {"anti_entropy_pushed", s.anti_entropy_pushed},
            {"anti_entropy_pulled", s.anti_entropy_pulled},
            {"read_repairs", s.read_repairs},
            {"backpressure_refusals", s.backpressure_refusals},
            {"submissions_parked", s.submissions_parked},
            {"parked_refusals", s.parked_refusals},
            {"superseded_stops", s.superseded_stops},
            {"refused_records", s.refused_records},
            {"refused_messages", s.refused_messages},
            {"peer_lists_dropped", cluster_->lists_dropped()},
            {"bad_peer_frames", transport["bad_frames"]},
            {"peer_handshakes_refused", transport["handshakes_refused"]},
            {"peer_connections_in", transport["inbound"]},
            {"peer_frames_received", transport["frames_received"]},
            {"peer_messages_received", transport["messages_received"]},
            {"peers", transport["peers"]}}},
          {"limits",
           {{"body_bytes_max", config_.body_bytes_max},
            {"payload_bytes_max", config_.payload_bytes_max},
            {"backlog_max", config_.backlog_max},
            {"require_signed", config_.require_signed},
            {"allowed_keys", !config_.allowed_keys_file.empty()},
            {"admin_keys", !config_.admin_keys_file.empty()},
            {"rate_limit", api_->rate_limit().rate_per_s},
            {"rate_burst", api_->rate_limit().rate_per_s > 0 ? api_->rate_burst() : 0},
            {"rate_clients_max", api_->rate_limit().clients_max},
            {"reap_after_s", config_.reap_after_s},
            {"retain_s", config_.retain_s},
            {"tombstone_s", config_.tombstone_s}}},
          {"job_types", [] {
             nlohmann::json t = nlohmann::json::array();
             for (const auto& h : all_handlers())
               t.push_back({{"type", h.type}, {"summary", h.summary}});
             return t;
           }()}};
}

}  // namespace meshwork
