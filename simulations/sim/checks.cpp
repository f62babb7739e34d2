// Invariants 1 and 3; see checks.h.
#include "simulations/sim/checks.h"

#include <algorithm>
#include <map>

#include "dht/ring.h"

namespace meshwork::sim {
namespace {

constexpr uint32_t ring_sample_keys = 256;

uint64_t fnv(uint64_t h, std::string_view s) {
  for (const char ch : s) {
    h ^= static_cast<uint8_t>(ch);
    h *= 0x100000001b3ull;
  }
  return h ^ 0xff;
}

// Digest of the preference lists (R = 3) of sample keys on the ring of `names`.
uint64_t ring_digest_of(const std::vector<std::string>& names) {
  dht::Ring ring;
  if (ring.add_all(names) != dht::Status::ok) return 0;
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint32_t k = 0; k < ring_sample_keys; ++k) {
    for (const std::string& n : ring.preference_list("key-" + std::to_string(k), 3)) h = fnv(h, n);
  }
  return h;
}

}  // namespace

bool views_converged(const Cluster& c) {
  for (uint32_t v = 0; v < c.size(); ++v) {
    if (!c.up(v)) continue;
    for (uint32_t s = 0; s < c.size(); ++s) {
      const View seen = c.view(v, s);
      if (c.up(s) ? seen != View::alive : (seen == View::alive || seen == View::suspect))
        return false;
    }
  }
  return true;
}

std::optional<std::string> check_dead_detected(const Cluster& c, const Plan& plan) {
  for (const CrashRecord& r : plan.crashes) {
    if (c.up(r.node)) continue;
    for (uint32_t v = 0; v < c.size(); ++v) {
      if (!c.up(v)) continue;
      const View seen = c.view(v, r.node);
      // A node (re)started after the crash may never have heard of the dead one: that is fine.
      const bool never_knew = seen == View::unknown && c.started_ms(v) > r.at_ms;
      if (seen != View::dead && seen != View::left && !never_knew) {
        std::string listed = "absent from its member list";
        for (const gossip::MemberInfo& m : c.membership(v)->members())
          if (m.name == node_name(r.node))
            listed = "listed as " + std::string(gossip::to_string(m.state));
        return "n" + std::to_string(v) + " still sees crashed n" + std::to_string(r.node) +
               (seen == View::unknown ? " as unknown" : " as live") + " (" + listed + ")";
      }
    }
  }
  return std::nullopt;
}

std::optional<std::string> check_agreement(const Cluster& c, Random& rng, uint64_t& ring_digest) {
  std::vector<std::string> truth;
  for (uint32_t i = 0; i < c.size(); ++i)
    if (c.up(i)) truth.push_back(node_name(i));
  std::sort(truth.begin(), truth.end());
  std::vector<uint32_t> viewers;
  for (uint32_t i = 0; i < c.size(); ++i)
    if (c.up(i)) viewers.push_back(i);
  if (viewers.size() > full_member_lists_max) {
    for (std::size_t i = 0; i < member_list_sample; ++i)
      std::swap(viewers[i], viewers[i + rng.below(viewers.size() - i)]);
    viewers.resize(member_list_sample);
  }
  std::map<std::vector<std::string>, uint32_t> distinct;  // live-name set -> one viewer holding it
  for (const uint32_t v : viewers) {
    std::vector<std::string> live;
    for (const gossip::MemberInfo& m : c.membership(v)->members()) {
      if (m.state == gossip::MemberState::alive || m.state == gossip::MemberState::suspect)
        live.push_back(m.name);
    }
    std::sort(live.begin(), live.end());
    distinct.emplace(std::move(live), v);
  }
  std::map<uint64_t, uint32_t> rings;
  for (const auto& [names, v] : distinct) rings.emplace(ring_digest_of(names), v);
  ring_digest = rings.empty() ? 0 : rings.begin()->first;
  if (rings.size() > 1) {
    return std::to_string(rings.size()) + " different rings among live nodes (e.g. n" +
           std::to_string(rings.begin()->second) + " and n" +
           std::to_string(std::next(rings.begin())->second) + ")";
  }
  for (const auto& [names, v] : distinct) {
    if (names != truth) {
      return "n" + std::to_string(v) + " sees " + std::to_string(names.size()) +
             " live members, but " + std::to_string(truth.size()) + " nodes are up";
    }
  }
  return std::nullopt;
}

}  // namespace meshwork::sim
