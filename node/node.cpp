// A running meshwork node; see node.h.
#include "node/node.h"

#include <asio/signal_set.hpp>

#include <filesystem>
#include <fstream>

#include "node/clock.h"

namespace meshwork {
namespace {

constexpr size_t kAllowedKeysMax = 100'000;
constexpr uint64_t kLeaveGraceMs = 2'000;  // longest a stopping node gossips its leaving

nlohmann::json counts_json(const Store::StateCounts& c) {
  nlohmann::json j = nlohmann::json::object();
  for (size_t i = 0; i < c.size(); ++i) j[std::string(state_name(JobState(i)))] = c[i];
  return j;
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

Node::Node(NodeConfig config) : config_(std::move(config)) {}

Node::~Node() {
  stop();
}

Result<std::unique_ptr<Node>> Node::start(NodeConfig config) {
  std::unique_ptr<Node> node(new Node(std::move(config)));
  if (Status s = node->open(); !s.is_ok()) return s;
  return node;
}

Status Node::open() {
  started_ms_ = wall_ms();
  if (config_.data_dir.empty()) config_.data_dir = "data/" + config_.name;
  std::error_code ec;
  std::filesystem::create_directories(config_.data_dir, ec);
  if (ec)
    return {Code::io_error, "cannot create data dir " + config_.data_dir + ": " + ec.message()};
  auto id = Identity::load_or_create(config_.data_dir + "/node.key");
  if (!id.is_ok()) return id.status();
  identity_ = std::move(id).value();

  JobsOptions jo;
  jo.workers =
      config_.workers ? config_.workers : std::max(1u, std::thread::hardware_concurrency());
  jo.backlog_max = config_.backlog_max;
  jo.limits.payload_bytes_max = config_.payload_bytes_max;
  jo.require_signed = config_.require_signed;
  if (!config_.allowed_keys_file.empty()) {
    auto keys = load_allowed_keys(config_.allowed_keys_file);
    if (!keys.is_ok()) return keys.status();
    jo.allowed_keys = std::move(keys).value();
  }
  auto store = Store::open(config_.data_dir + "/jobs", StoreOptions{.sync = config_.fsync});
  if (!store.is_ok()) return store.status();
  store_ = std::move(store).value();

  work_.emplace(io_.get_executor());
  io_thread_ = std::thread([this] { io_.run(); });
  jobs_ = std::make_unique<Jobs>(io_, *store_, *identity_, config_.name, jo);
  MeshOptions mo;
  mo.placement = config_.placement;
  mo.test_skip_takeover = config_.test_break == "skip-takeover";
  for (const std::string& seed : config_.join)
    if (seed != config_.gossip_bind) mo.joining = true;
  mesh_ = std::make_unique<Mesh>(*store_, *jobs_, *identity_, config_.name,
                                 config_.api_host + ":" + std::to_string(config_.api_port), mo);
  if (Status s = mesh_->attach(); !s.is_ok()) return s;
  if (Status s = jobs_->start(); !s.is_ok()) return s;

  api::ApiOptions ao;
  ao.threads = config_.http_threads;
  ao.body_bytes_max = config_.body_bytes_max;
  api::ApiServer::Providers providers;
  providers.node_info = [this] { return info(); };
  providers.ready = [this] { return mesh_->ready() && jobs_->backlog() < config_.backlog_max; };
  providers.members = [this] { return gossip_->members_json(); };
  api_ = std::make_unique<api::ApiServer>(*mesh_, ao, std::move(providers));
  api_port_ = api_->bind(config_.api_host, config_.api_port);
  if (api_port_ < 0)
    return {Code::io_error,
            "cannot listen on " + config_.api_host + ":" + std::to_string(config_.api_port)};
  api_thread_ = std::thread([this] { api_->serve(); });
  if (Status s = start_gossip(); !s.is_ok()) return s;
  mesh_->start();
  log_event(spdlog::level::info, "node_started", "",
            "api=" + config_.api_host + ":" + std::to_string(api_port_) +
                " data=" + config_.data_dir + " workers=" + std::to_string(jo.workers) +
                " key=" + identity_->public_key_b64());
  return Status::ok();
}

Status Node::start_gossip() {
  GossipOptions go;
  go.name = config_.name;
  go.bind = config_.gossip_bind.empty() ? config_.api_host + ":0" : config_.gossip_bind;
  go.seeds = config_.join;
  go.config = config_.gossip;
  go.meta = gossip::NodeMeta{config_.api_host + ":" + std::to_string(api_port_),
                             identity_->public_key_b64(), config_.tags};
  if (!config_.cluster_key_file.empty()) {
    auto keys = load_cluster_keys(config_.cluster_key_file);
    if (!keys.is_ok()) return keys.status();
    go.keyring = std::move(keys).value();
  }
  gossip_ = std::make_unique<GossipDriver>(io_, std::move(go));
  gossip_->add_listener([this](const gossip::MemberEvent& e) { mesh_->on_member(e.member); });
  return gossip_->start();
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
  if (api_) api_->stop();
  if (api_thread_.joinable()) api_thread_.join();
  if (jobs_) jobs_->stop();
  if (mesh_) mesh_->stop();
  // Leaving gracefully tells the mesh at once instead of after a suspicion timeout.
  if (gossip_) gossip_->leave(kLeaveGraceMs);
  work_.reset();
  io_.stop();
  if (io_thread_.joinable()) io_thread_.join();
  if (store_) {
    store_->flush();
    store_->set_observer(nullptr);
  }
  gossip_.reset();
  mesh_.reset();
  jobs_.reset();
  store_.reset();
}

nlohmann::json Node::info() const {
  const JobsStats s = jobs_->stats();
  return {{"name", config_.name},
          {"version", "0.1.0"},
          {"public_key", identity_->public_key_b64()},
          {"api", config_.api_host + ":" + std::to_string(api_port_)},
          {"uptime_s", (wall_ms() - started_ms_) / 1000},
          {"workers", jobs_->options().workers},
          {"backlog", jobs_->backlog()},
          {"running", jobs_->running()},
          {"jobs", counts_json(store_->counts())},
          {"stats",
           {{"submitted", s.submitted},
            {"duplicates", s.duplicates},
            {"rejected", s.rejected},
            {"attempts_started", s.attempts_started},
            {"succeeded", s.succeeded},
            {"failed", s.failed},
            {"retried", s.retried},
            {"cancelled", s.cancelled}}},
          {"store",
           {{"batches", store_->batches_written()},
            {"updates", store_->updates_written()},
            {"queue_depth", store_->queue_depth()},
            {"corrupt_records", store_->corrupt_records()}}},
          {"gossip", gossip_->stats_json()},
          {"mesh", mesh_->stats_json()},
          {"limits",
           {{"body_bytes_max", config_.body_bytes_max},
            {"payload_bytes_max", config_.payload_bytes_max},
            {"backlog_max", config_.backlog_max},
            {"require_signed", config_.require_signed},
            {"allowed_keys", !config_.allowed_keys_file.empty()}}},
          {"job_types", [] {
             nlohmann::json t = nlohmann::json::array();
             for (const auto& h : all_handlers())
               t.push_back({{"type", h.type}, {"summary", h.summary}});
             return t;
           }()}};
}

}  // namespace meshwork
