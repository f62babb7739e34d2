// One snapshot of members and ring; see topology.h.
#include "node/topology.h"

#include <algorithm>

namespace meshwork {

Topology::Topology(std::string self, const Peer& self_info, const std::vector<Peer>& members,
                   PlacementOptions options, uint64_t version)
    : self_(std::move(self)), options_(options), version_(version), ring_(options.vnodes) {
  for (const Peer& p : members)
    if (p.state != gossip::MemberState::left && p.name != self_) members_[p.name] = p;
  members_[self_] = self_info;
  members_[self_].state = gossip::MemberState::alive;
  std::vector<std::string> names;
  names.reserve(members_.size());
  for (const auto& [name, p] : members_) names.push_back(name);
  // Names come from gossip, which bounds and checks them; a name the ring refuses stays out.
  if (ring_.add_all(names) != dht::Status::ok)
    for (const std::string& n : names) (void)ring_.add(n);
}

bool Topology::usable(const std::string& name) const {
  auto it = members_.find(name);
  return it != members_.end() && (it->second.state == gossip::MemberState::alive ||
                                  it->second.state == gossip::MemberState::suspect);
}

std::vector<std::string> Topology::replicas(const std::string& id) const {
  const dht::Usable ok = [this](std::string_view n) { return usable(std::string(n)); };
  return ring_.preference_list(id, options_.replicas, ok);
}

std::optional<std::string> Topology::owner(const std::string& id) const {
  auto list = replicas(id);
  if (list.empty()) return std::nullopt;
  return list.front();
}

bool Topology::is_replica(const std::string& id, const std::string& name) const {
  auto list = replicas(id);
  return std::find(list.begin(), list.end(), name) != list.end();
}

size_t Topology::write_quorum() const {
  return std::min<size_t>(options_.write_quorum, ring_.member_count());
}

std::map<std::string, std::string> Topology::peer_addresses() const {
  std::map<std::string, std::string> out;
  for (const auto& [name, p] : members_)
    if (name != self_ && usable(name) && !p.api.empty()) out[name] = p.api;
  return out;
}

std::vector<std::string> Topology::usable_peers() const {
  std::vector<std::string> out;
  for (const auto& [name, p] : members_)
    if (name != self_ && usable(name)) out.push_back(name);
  return out;
}

std::optional<std::string> Topology::public_key(std::string_view name) const {
  auto it = members_.find(std::string(name));
  if (it == members_.end() || it->second.public_key.empty()) return std::nullopt;
  return it->second.public_key;
}

}  // namespace meshwork
