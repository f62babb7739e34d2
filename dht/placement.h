// Placement: who holds which job — the members this node knows with their state, and the
// consistent-hash ring over them (dht/ring.h). The replica core (replica.h) owns one and updates it
// on every membership change: a state change (alive, suspect, dead) touches only the member table;
// a member joining, leaving or being reaped adds or removes its tokens (V hashes and one sorted
// insert), never a rebuild of the whole ring. version() grows with every change that can change a
// preference list or the ring: a member joining or leaving the ring, or becoming usable or
// unusable — not alive ↔ suspect (both usable), which a loaded mesh sees often and which moves
// nothing.
//
// Rules (docs/ring.md, docs/guarantees.md):
//   ring members  every known member that has not left and has not been reaped: alive, suspect
//                 and dead ones (a dead member keeps its tokens, so a crash and restart do not move
//                 data back and forth)
//   reaped        a dead member the replica core gave up on (dead for config.reap_after_ms in this
//                 node's view): its tokens are off the ring as if it had left, but it stays known
//                 as dead, so that gossip repeating `dead` changes nothing; `alive` or `suspect`
//                 puts its tokens back (a join), `left` forgets it
//   usable        alive or suspect (SWIM: a suspect keeps its role until confirmed dead), and not
//                 distrusted
//   distrusted    a member whose reputation in this node fell below the threshold (reputation.h,
//                 set by the replica core): treated like a dead one — not usable, so neither an
//                 owner, a replica nor a runner, its ranges held by stand-ins — but it keeps its
//                 tokens (a ring member), and its state is still tracked. This node is never
//                 distrusted in its own placement.
//   replicas(id)  the first R usable members clockwise of the id: the nodes that store the job.
//                 With everyone up this is the plain preference list; a dead member's place is
//                 taken by the next usable one (its stand-in) until it returns.
//   owner(id)     the first of replicas(id): the node that runs the job.
//   write quorum  min(W, ring members): a one-node mesh acknowledges on its own disk, but a mesh
//                 that has lost members still needs W live replicas — until they are reaped.
//
// Thread-safety: none (the core's thread). Pure: no I/O, no clock.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dht/ring.h"

namespace meshwork {

// A member's state as the membership layer reports it (gossip::MemberState, mapped by the node).
enum class MemberState : uint8_t { alive, suspect, dead, left };
[[nodiscard]] std::string_view member_state_name(MemberState s);

struct PlacementOptions {
  uint32_t replicas = 3;      // R
  uint32_t write_quorum = 2;  // W
  uint32_t vnodes = 512;      // V; see docs/ring.md for why not 128
};

class Placement {
 public:
  // `members` may or may not include `self`; it is always placed in the ring as alive.
  Placement(std::string self, const std::map<std::string, MemberState>& members,
            PlacementOptions options, uint64_t version);

  [[nodiscard]] const std::string& self() const { return self_; }
  [[nodiscard]] uint64_t version() const { return version_; }
  [[nodiscard]] const PlacementOptions& options() const { return options_; }
  [[nodiscard]] const dht::Ring& ring() const { return ring_; }
  // Known members (not left), this node included, with their state: the ring members and the
  // reaped ones (dead, without tokens).
  [[nodiscard]] const std::map<std::string, MemberState, std::less<>>& members() const {
    return members_;
  }
  // Members reaped and not back: dead, out of the ring.
  [[nodiscard]] const std::set<std::string, std::less<>>& reaped() const { return reaped_; }

  // `name` is now in `state` (left: out of the ring). False when nothing changed, or when the ring
  // refuses the name (gossip bounds names, so that is a name it should not have let through).
  // version() moves only when the lists or the ring may have (see above).
  bool set(const std::string& name, MemberState state);
  // `name`, dead and still on the ring, gives up its tokens (see "reaped" above); version() moves.
  // False, and nothing changes, for a member that is not dead or is already reaped.
  bool reap(const std::string& name);

  // `name` is distrusted (true) or trusted again (false); any name, member or not, so that a host
  // distrusted before it joins (or after it left and came back) stays so. False when nothing
  // changed or `name` is this node. version() moves when the member's usable() changed.
  bool set_distrusted(const std::string& name, bool distrusted);
  [[nodiscard]] bool distrusted(std::string_view name) const { return distrusted_.contains(name); }

  [[nodiscard]] bool usable(std::string_view name) const;
  [[nodiscard]] std::vector<std::string> replicas(std::string_view id) const;
  [[nodiscard]] std::optional<std::string> owner(std::string_view id) const;
  [[nodiscard]] bool is_replica(std::string_view id, std::string_view name) const;
  [[nodiscard]] size_t write_quorum() const;
  // Majority of a replica list of `n` members.
  [[nodiscard]] static size_t majority(size_t n) { return n / 2 + 1; }
  // Usable members other than this node, in name order.
  [[nodiscard]] std::vector<std::string> usable_peers() const;

 private:
  std::string self_;
  PlacementOptions options_;
  uint64_t version_;
  std::map<std::string, MemberState, std::less<>> members_;
  std::set<std::string, std::less<>> reaped_;  // ⊂ members_, all dead, none in ring_
  std::set<std::string, std::less<>> distrusted_;  // never self_; bounded by Reputation's hosts
  dht::Ring ring_;
};

}  // namespace meshwork
