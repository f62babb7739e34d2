// The mesh: topology, ownership and the glue to the store and the job service; see mesh.h.
#include "node/mesh.h"

#include "node/clock.h"
#include "node/crypto.h"
#include "node/log.h"

namespace meshwork {
namespace {

constexpr uint64_t kAloneAfterMs = 10'000;  // seeds never answered: run as a mesh of one

Peer peer_of(const gossip::MemberInfo& m) {
  auto key = from_base64(m.meta.public_key);
  return Peer{m.name, m.meta.api, key && key->size() == kPublicKeyBytes ? *key : "", m.state};
}

}  // namespace

Mesh::Mesh(Store& store, Jobs& jobs, const Identity& key, std::string self, std::string self_api,
           MeshOptions options)
    : store_(store),
      jobs_(jobs),
      key_(key),
      self_(std::move(self)),
      self_api_(std::move(self_api)),
      options_(std::move(options)),
      peers_(key, self_, options_.peer) {
  rebuild_topology();
}

Mesh::~Mesh() {
  stop();
}

Status Mesh::attach() {
  store_.set_observer(
      [this](const JobRecord& r, std::string_view encoded) { on_stored(r, encoded); });
  Status scanned =
      store_.scan([this](JobRecord&& r) { catalog_.put(r, record_fingerprint(encode_record(r))); });
  if (!scanned.is_ok()) return scanned;
  JobHooks hooks;
  hooks.owns = [this](const JobRecord& r) { return owns(r); };
  hooks.confirm_claim = [this](const JobRecord& r, std::function<void(bool)> done) {
    confirm_claim(r, std::move(done));
  };
  hooks.replicate = [this](const JobRecord& r) { replicate_async(r); };
  jobs_.set_hooks(std::move(hooks));
  return Status::ok();
}

void Mesh::start() {
  started_mono_ms_ = mono_ms();
  maintenance_ = std::thread([this] { maintenance_loop(); });
}

void Mesh::stop() {
  {
    std::lock_guard lock(wake_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_cv_.notify_all();
  if (maintenance_.joinable()) maintenance_.join();
  peers_.stop();
}

std::shared_ptr<const Topology> Mesh::topology() const {
  std::lock_guard lock(topo_mu_);
  return topology_;
}

void Mesh::rebuild_topology() {
  std::shared_ptr<const Topology> next;
  {
    std::lock_guard lock(topo_mu_);
    std::vector<Peer> members;
    members.reserve(members_.size());
    for (const auto& [name, p] : members_) members.push_back(p);
    Peer me{self_, self_api_, key_.public_key(), gossip::MemberState::alive};
    topology_ = std::make_shared<const Topology>(self_, me, members, options_.placement,
                                                 ++topology_version_);
    next = topology_;
  }
  peers_.set_peers(next->peer_addresses());
}

void Mesh::on_member(const gossip::MemberInfo& m) {
  if (m.name == self_) return;
  const bool back = m.state == gossip::MemberState::alive;
  {
    std::lock_guard lock(topo_mu_);
    members_[m.name] = peer_of(m);
  }
  if (back) seen_peer_ = true;
  rebuild_topology();
  {
    std::lock_guard lock(wake_mu_);
    if (back) ae_soon_.insert(m.name);
    wake_ = true;
  }
  wake_cv_.notify_all();
}

bool Mesh::ready() const {
  if (!options_.joining || seen_peer_) return true;
  return started_mono_ms_ != 0 && mono_ms() >= started_mono_ms_ + kAloneAfterMs;
}

// A node that just joined waits a moment before running jobs, so that it first learns the
// membership (and with it who owns what) instead of running everything it holds as a mesh of one.
bool Mesh::owns(const JobRecord& r) const {
  if (!ready() || mono_ms() < started_mono_ms_ + (options_.joining ? options_.settle_ms : 0))
    return false;
  auto owner = topology()->owner(r.id);
  return owner && *owner == self_;
}

// On the store's writer thread, for every durable change: index it, and act on it if it is ours.
void Mesh::on_stored(const JobRecord& r, std::string_view encoded) {
  catalog_.put(r, record_fingerprint(encoded));
  consider(r);
}

void Mesh::consider(const JobRecord& r) {
  if (r.cancel_requested && r.status.state == JobState::running && r.status.node == self_)
    jobs_.cancel_running(r.id);
  if (r.status.state != JobState::queued && r.status.state != JobState::retry_wait) return;
  if (!owns(r)) return;
  if (r.status.state == JobState::queued) {
    jobs_.enqueue(r.id);
  } else {
    jobs_.schedule(r.id, r.status.retry_at_ms);
  }
}

nlohmann::json Mesh::placement_json(const std::string& id) const {
  auto topo = topology();
  auto list = topo->replicas(id);
  return {{"owner", list.empty() ? nlohmann::json(nullptr) : nlohmann::json(list.front())},
          {"replicas", list}};
}

std::optional<std::string> Mesh::public_key_of(std::string_view name) const {
  return topology()->public_key(name);
}

nlohmann::json Mesh::stats_json() const {
  MeshStats s;
  {
    std::lock_guard lock(stats_mu_);
    s = stats_;
  }
  auto topo = topology();
  return {{"replicas", options_.placement.replicas},
          {"write_quorum", topo->write_quorum()},
          {"vnodes", options_.placement.vnodes},
          {"ring_members", topo->ring().member_count()},
          {"held", catalog_.size()},
          {"unfinished", catalog_.unfinished_count()},
          {"replicate_sent", s.replicate_sent},
          {"replicate_failed", s.replicate_failed},
          {"replicate_received", s.replicate_received},
          {"quorum_failures", s.quorum_failures},
          {"claims_confirmed", s.claims_confirmed},
          {"claims_refused", s.claims_refused},
          {"takeovers", s.takeovers},
          {"hints_stored", s.hints_stored},
          {"hints_replayed", s.hints_replayed},
          {"anti_entropy_rounds", s.anti_entropy_rounds},
          {"anti_entropy_pushed", s.anti_entropy_pushed},
          {"anti_entropy_pulled", s.anti_entropy_pulled},
          {"read_repairs", s.read_repairs},
          {"backpressure_refusals", s.backpressure_refusals},
          {"peers", peers_.stats_json()}};
}

}  // namespace meshwork
