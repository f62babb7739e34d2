// meshwork: the node and its command-line client.
//
//   meshwork node [flags]                 run a node (meshwork node --help lists every flag)
//   meshwork keygen --out FILE            an Ed25519 identity;  --cluster: a 32-byte cluster key
//   meshwork sign --key FILE --type T --payload JSON      print a signed envelope (no network)
//   meshwork submit --node URL (--type T --payload JSON [--key FILE] | --envelope FILE) [--wait]
//   meshwork status ID, cancel ID [--key FILE]    show a job; cancel it (signed with --key)
//   meshwork retry ID [--key FILE]                run a failed or cancelled job again
//   meshwork jobs [--state S] [--type T] [--limit N] [--cursor C]    list jobs, newest first
//   meshwork members, ring, info          the mesh, the ring, one node (--json: raw)
//   meshwork watch [--job ID] [--kinds job,member]                   events as they happen
//   meshwork verify ID | --file FILE      check a job's receipts against the mesh's node keys
// Every client command takes --node URL (alias --to; default http://127.0.0.1:8001) and
// --ca-file FILE; node/cli_client.h lists them.
// Exit codes: 0 ok; 1 the job failed or was cancelled (--wait, watch --job); 2 usage or local
// error; 3 the node refused the request (4xx); 4 the node was unreachable or failed (5xx).
// verify: 0 every receipt valid, 1 a receipt invalid, 2 could not check.
#include <CLI/CLI.hpp>

#include <csignal>
#include <fstream>
#include <iostream>
#include <thread>

#include "api/rate_limit.h"
#include "gossip/config.h"
#include "node/cli_client.h"
#include "node/clock.h"
#include "node/crypto.h"
#include "node/envelope.h"
#include "node/node.h"

namespace {

using meshwork::NodeConfig;

// --reap-after-s at most: ten years, beyond any outage worth waiting for (and far from overflow).
constexpr uint64_t kReapAfterSMax = 10ull * 365 * 86'400;
// --test-clock-offset-ms: at most a day either way.
constexpr int64_t kClockOffsetMsMax = 86'400'000;

int run_node(NodeConfig cfg, const std::string& level, const std::string& format) {
  auto lvl = spdlog::level::from_str(level);
  meshwork::setup_logging(cfg.name, lvl,
                          format == "json" ? meshwork::LogFormat::json : meshwork::LogFormat::text);
  cfg.log_level = lvl;
  auto node = meshwork::Node::start(std::move(cfg));
  if (!node.is_ok()) {
    meshwork::log_event(spdlog::level::critical, "node_failed", "", node.status().message());
    return 2;
  }
  node.value()->wait_for_signal();
  node.value()->stop();
  return 0;
}

int keygen(const std::string& out, bool cluster) {
  meshwork::init_crypto();
  // A cluster key file holds hex keys, one per line: add a new key on top to rotate.
  meshwork::Status s =
      cluster
          ? meshwork::write_secret_file(
                out, meshwork::to_hex(meshwork::random_bytes(meshwork::kClusterKeyBytes)) + "\n")
          : meshwork::Identity::generate().save(out);
  if (!s.is_ok()) {
    std::cerr << "meshwork keygen: " << s.message() << "\n";
    return 2;
  }
  if (!cluster) std::cout << meshwork::Identity::load(out).value().public_key_b64() << "\n";
  return 0;
}

struct GossipFlags {
  std::string profile = "lan";
  uint64_t probe_interval_ms = 0, probe_timeout_ms = 0, gossip_interval_ms = 0;
  uint32_t suspicion_mult = 0;
  std::vector<std::string> tags;
};

void add_gossip_flags(CLI::App* node, NodeConfig& cfg, GossipFlags& g) {
  node->add_option("--gossip", cfg.gossip_bind,
                   "gossip address HOST:PORT, IPv4: UDP for gossip, TCP for peer frames (default: "
                   "the API host, any free port)");
  node->add_option("--join", cfg.join, "HOST:PORT of a member to join through (repeatable)")
      ->delimiter(',');
  node->add_option("--cluster-key", cfg.cluster_key_file,
                   "seal gossip with these keys (meshwork keygen --cluster); the first seals")
      ->check(CLI::ExistingFile);
  node->add_option("--profile", g.profile, "gossip timing profile: local|lan|wan")
      ->capture_default_str()
      ->check(CLI::IsMember({"local", "lan", "wan"}));
  node->add_option("--probe-interval-ms", g.probe_interval_ms, "override: one probe round");
  node->add_option("--probe-timeout-ms", g.probe_timeout_ms, "override: direct ack timeout");
  node->add_option("--gossip-interval-ms", g.gossip_interval_ms, "override: gossip fan-out period");
  node->add_option("--suspicion-mult", g.suspicion_mult, "override: suspicion timeout multiplier");
  node->add_option("--tag", g.tags, "node tag KEY=VALUE, carried in gossip (repeatable)");
}

// The profile's timings with any overrides; an error names the bad flag.
std::optional<std::string> apply_gossip_flags(NodeConfig& cfg, const GossipFlags& g) {
  cfg.gossip = meshwork::gossip::config_for(*meshwork::gossip::parse_profile(g.profile));
  if (g.probe_interval_ms) cfg.gossip.probe_interval_ms = g.probe_interval_ms;
  if (g.probe_timeout_ms) cfg.gossip.probe_timeout_ms = g.probe_timeout_ms;
  if (g.gossip_interval_ms) cfg.gossip.gossip_interval_ms = g.gossip_interval_ms;
  if (g.suspicion_mult) cfg.gossip.suspicion_mult = g.suspicion_mult;
  for (const auto& t : g.tags) {
    auto eq = t.find('=');
    if (eq == std::string::npos || eq == 0) return "--tag must be KEY=VALUE, got " + t;
    cfg.tags[t.substr(0, eq)] = t.substr(eq + 1);
  }
  return meshwork::gossip::config_error(cfg.gossip);
}

CLI::App* add_node_command(CLI::App& app, NodeConfig& cfg, std::string& level, std::string& format,
                           std::string& api) {
  auto* node = app.add_subcommand("node", "run a meshwork node");
  node->add_option("--name", cfg.name, "node name, unique in the mesh")->capture_default_str();
  node->add_option("--api", api, "HTTP API address HOST:PORT")->capture_default_str();
  node->add_option("--advertise", cfg.advertise,
                   "host other nodes and clients reach this node at, announced for the API and "
                   "gossip (required when binding 0.0.0.0; default: the bound host)");
  auto* cert = node->add_option("--tls-cert", cfg.tls_cert_file,
                                "serve the API over HTTPS with this PEM certificate chain")
                   ->check(CLI::ExistingFile);
  auto* key = node->add_option("--tls-key", cfg.tls_key_file, "PEM private key of --tls-cert")
                  ->check(CLI::ExistingFile);
  cert->needs(key);
  key->needs(cert);
  node->add_option("--tls-ca", cfg.tls_ca_file,
                   "PEM CA certificates for the mesh's API certificates; checked at start only "
                   "(nodes talk to each other over the peer transport, not HTTPS)")
      ->check(CLI::ExistingFile)
      ->needs(cert);
  node->add_option("--data", cfg.data_dir, "data directory (default: data/<name>)");
  node->add_option("--workers", cfg.workers, "job worker threads (0: one per core)")
      ->capture_default_str();
  node->add_option("--receipt-linger-ms", cfg.receipt_linger_ms,
                   "sign finished jobs' receipts together at most once per this many ms (0: "
                   "each batch as it comes); more saves signatures, less saves latency")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{0}, meshwork::kReceiptLingerMsMax));
  node->add_option("--claim-hold-ms", cfg.claim_hold_ms,
                   "keep a job's claim here this many ms for its outcome to leave with it, one "
                   "record instead of two (0: send every claim at once)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{0}, meshwork::kClaimHoldMsMax));
  node->add_option("--admission-wait-ms", cfg.admission_wait_ms,
                   "a submission that would get 429 only because replication to a replica lags "
                   "waits up to this many ms, in arrival order, to be admitted (0: 429 at once)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{0}, meshwork::kAdmissionWaitMsMax));
  node->add_option("--sync-interval-ms", cfg.sync_interval_ms,
                   "0: a job is acknowledged only once fsync'd on W replicas; N: once written to "
                   "their OS (it survives kill -9, not a power loss), fsync'd at most N ms later, "
                   "as NATS JetStream's sync_interval (docs/operations.md)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{0}, meshwork::kSyncIntervalMsMax));
  node->add_option("--log-level", level, "trace|debug|info|warn|error|critical")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  node->add_option("--log-format", format, "text|json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  node->add_flag("--require-signed", cfg.require_signed,
                 "refuse plain jobs: clients must send signed envelopes");
  node->add_option("--allowed-keys", cfg.allowed_keys_file,
                   "file of base64 public keys allowed to submit (implies --require-signed)")
      ->check(CLI::ExistingFile);
  node->add_option("--admin-keys", cfg.admin_keys_file,
                   "file of base64 public keys that may cancel or retry any job, whoever signed it")
      ->check(CLI::ExistingFile);
  auto* rate =
      node->add_option("--rate-limit", cfg.rate_limit,
                       "jobs per second each client may submit (per signing key; per address for "
                       "plain jobs); 429 above; 0: no limit")
          ->capture_default_str()
          ->check(CLI::Range(0.0, meshwork::api::kRatePerSecondMax));
  node->add_option("--rate-burst", cfg.rate_burst,
                   "jobs a client may submit at once before the rate applies (default: the rate "
                   "rounded up)")
      ->check(CLI::Range(1u, meshwork::api::kRateBurstMax))
      ->needs(rate);
  node->add_option("--body-max", cfg.body_bytes_max, "largest request body in bytes (413 above)")
      ->capture_default_str();
  node->add_option("--payload-max", cfg.payload_bytes_max, "largest job payload in bytes")
      ->capture_default_str();
  node->add_option("--backlog-max", cfg.backlog_max, "queued jobs before submissions get 429")
      ->capture_default_str();
  node->add_option("--http-threads", cfg.http_threads,
                   "most HTTP worker threads (one per connection; idle ones above 4 exit)")
      ->capture_default_str();
  node->add_option("--events-max", cfg.events_max,
                   "most GET /v1/events streams at once (429 above)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{4096}));
  node->add_option("--replicas", cfg.placement.replicas, "R: nodes that store each job")
      ->capture_default_str()
      ->check(CLI::Range(1u, meshwork::dht::replicas_max));
  node->add_option("--write-quorum", cfg.placement.write_quorum,
                   "W: replicas that must store a job before it is acknowledged (<= R)")
      ->capture_default_str()
      ->check(CLI::Range(1u, meshwork::dht::replicas_max));
  node->add_option("--vnodes", cfg.placement.vnodes, "virtual nodes per member on the ring")
      ->capture_default_str()
      ->check(CLI::Range(meshwork::dht::vnodes_min, meshwork::dht::vnodes_max));
  node->add_option("--reap-after-s", cfg.reap_after_s,
                   "seconds a member stays dead before it gives up its ring tokens (its ranges "
                   "stay with their stand-ins)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, kReapAfterSMax));
  node->add_option("--retain-s", cfg.retain_s,
                   "seconds a finished job is kept before it is removed on every replica (0: for "
                   "ever)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{0}, uint64_t{10} * 365 * 24 * 3'600));
  node->add_option("--tombstone-s", cfg.tombstone_s,
                   "seconds a removed job's tombstone refuses copies that come back")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{10} * 365 * 24 * 3'600));
  node->add_option("--test-break", cfg.test_break,
                   "tests only: skip-takeover (no failover), lie (wrong results, validly signed), "
                   "forge (receipts with bad signatures)")
      ->check(CLI::IsMember({"skip-takeover", "lie", "forge"}))
      ->group("");  // hidden from --help
  node->add_option("--test-clock-offset-ms", cfg.test_clock_offset_ms,
                   "tests only: set the replica core's wall clock this many ms off (signed)")
      ->check(CLI::Range(-kClockOffsetMsMax, kClockOffsetMsMax))
      ->group("");  // hidden from --help
  return node;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  meshwork::init_crypto();
  CLI::App app{"meshwork: a leaderless job-processing mesh"};
  app.require_subcommand(1);

  NodeConfig cfg;
  std::string level = "info", format = "text", api = "127.0.0.1:8001";
  GossipFlags gossip_flags;
  add_gossip_flags(add_node_command(app, cfg, level, format, api), cfg, gossip_flags);

  std::string out;
  bool cluster = false;
  auto* kg = app.add_subcommand("keygen", "create an Ed25519 identity (or a cluster key)");
  kg->add_option("--out", out, "file to create (mode 0600; never overwritten)")->required();
  kg->add_flag("--cluster", cluster, "create a 32-byte cluster key for sealing gossip");

  meshwork::cli::ClientArgs client;
  meshwork::cli::add_client_commands(app, client);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (app.got_subcommand("node")) {
    auto colon = api.rfind(':');
    if (colon == std::string::npos) {
      std::cerr << "meshwork node: --api must be HOST:PORT\n";
      return 2;
    }
    cfg.api_host = api.substr(0, colon);
    try {
      cfg.api_port = std::stoi(api.substr(colon + 1));
    } catch (const std::exception&) {
      std::cerr << "meshwork node: --api must be HOST:PORT\n";
      return 2;
    }
    if (auto why = apply_gossip_flags(cfg, gossip_flags)) {
      std::cerr << "meshwork node: " << *why << "\n";
      return 2;
    }
    if (cfg.placement.write_quorum > cfg.placement.replicas) {
      std::cerr << "meshwork node: --write-quorum must not exceed --replicas\n";
      return 2;
    }
    return run_node(std::move(cfg), level, format);
  }
  if (app.got_subcommand("keygen")) return keygen(out, cluster);
  return meshwork::cli::run_client_command(app, client);
}
