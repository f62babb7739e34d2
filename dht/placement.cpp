// The members and the ring over them; see placement.h.
#include "dht/placement.h"

#include <algorithm>

namespace meshwork {

std::string_view member_state_name(MemberState s) {
  switch (s) {
    case MemberState::alive:
      return "alive";
    case MemberState::suspect:
      return "suspect";
    case MemberState::dead:
      return "dead";
    case MemberState::left:
      return "left";
  }
  return "unknown";
}

Placement::Placement(std::string self, const std::map<std::string, MemberState>& members,
                     PlacementOptions options, uint64_t version)
    : self_(std::move(self)), options_(options), version_(version), ring_(options.vnodes) {
  for (const auto& [name, state] : members)
    if (state != MemberState::left && name != self_) members_.emplace(name, state);
  members_[self_] = MemberState::alive;
  std::vector<std::string> names;
  names.reserve(members_.size());
  for (const auto& [name, state] : members_) names.push_back(name);
  // Names come from gossip, which bounds and checks them; a name the ring refuses stays out.
  if (ring_.add_all(names) != dht::Status::ok)
    for (const std::string& n : names) (void)ring_.add(n);
}

bool Placement::set(const std::string& name, MemberState state) {
  if (name == self_) return false;
  auto it = members_.find(name);
  const bool was_reaped = reaped_.contains(name);
  if (state == MemberState::left) {
    if (it == members_.end()) return false;
    members_.erase(it);
    reaped_.erase(name);
    (void)ring_.remove(name);  // member_unknown for a reaped one: its tokens are gone already
  } else if (it == members_.end()) {
    if (ring_.add(name) != dht::Status::ok) return false;
    members_.emplace(name, state);
  } else if (was_reaped) {
    // Still dead: stays off the ring. Back: its tokens return, as on a join.
    if (state == MemberState::dead || ring_.add(name) != dht::Status::ok) return false;
    reaped_.erase(name);
    it->second = state;
  } else {
    if (it->second == state) return false;
    const bool was_usable = usable(name);
    it->second = state;
    if (usable(name) == was_usable) return true;  // alive <-> suspect: every list stays the same
  }
  ++version_;
  return true;
}

bool Placement::reap(const std::string& name) {
  auto it = members_.find(name);
  if (it == members_.end() || it->second != MemberState::dead || reaped_.contains(name))
    return false;
  (void)ring_.remove(name);
  reaped_.insert(name);
  ++version_;
  return true;
}

bool Placement::set_distrusted(const std::string& name, bool distrusted) {
  if (name == self_ || distrusted_.contains(name) == distrusted) return false;
  const bool was_usable = usable(name);
  if (distrusted) {
    distrusted_.insert(name);
  } else {
    distrusted_.erase(name);
  }
  if (usable(name) != was_usable) ++version_;
  return true;
}

bool Placement::usable(std::string_view name) const {
  auto it = members_.find(name);
  return it != members_.end() &&
         (it->second == MemberState::alive || it->second == MemberState::suspect) &&
         !distrusted_.contains(name);
}

std::vector<std::string> Placement::replicas(std::string_view id) const {
  const dht::Usable ok = [this](std::string_view n) { return usable(n); };
  return ring_.preference_list(id, options_.replicas, ok);
}

std::optional<std::string> Placement::owner(std::string_view id) const {
  auto list = replicas(id);
  if (list.empty()) return std::nullopt;
  return list.front();
}

bool Placement::is_replica(std::string_view id, std::string_view name) const {
  auto list = replicas(id);
  return std::find(list.begin(), list.end(), name) != list.end();
}

size_t Placement::write_quorum() const {
  return std::min<size_t>(options_.write_quorum, ring_.member_count());
}

std::vector<std::string> Placement::usable_peers() const {
  std::vector<std::string> out;
  for (const auto& [name, state] : members_)
    if (name != self_ && usable(name)) out.push_back(name);
  return out;
}

}  // namespace meshwork
