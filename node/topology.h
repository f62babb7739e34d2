// Topology: one immutable snapshot of where jobs live — the members this node knows, their state
// and API address, and the consistent-hash ring over them (dht/ring.h).
//
// Placement rules (docs/ring.md, DESIGN.md §5):
//   ring members  every known member that has not left: alive, suspect and dead ones (a dead
//                 member keeps its tokens, so a crash and restart do not move data back and
//                 forth; gossip forgets it after reap_timeout_ms without telling the mesh, so
//                 today it keeps them for good — README, "Known limitations")
//   usable        alive or suspect (SWIM: a suspect keeps its role until confirmed dead)
//   replicas(id)  the first R usable members clockwise of the id: the nodes that store the job.
//                 With everyone up this is the plain preference list; a dead member's place is
//                 taken by the next usable one (its stand-in) until it returns.
//   owner(id)     the first of replicas(id): the node that runs the job.
//   write quorum  min(W, ring members): a one-node mesh acknowledges on its own disk, but a mesh
//                 that has lost members still needs W live replicas.
//
// Thread-safety: immutable after construction; shared between threads as shared_ptr<const>.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dht/ring.h"
#include "gossip/types.h"

namespace meshwork {

struct PlacementOptions {
  uint32_t replicas = 3;      // R
  uint32_t write_quorum = 2;  // W
  uint32_t vnodes = 512;      // V; see docs/ring.md for why not 128
};

struct Peer {
  std::string name;
  std::string api;         // host:port of its API
  std::string public_key;  // raw Ed25519 key, 32 bytes ("" when unknown)
  gossip::MemberState state = gossip::MemberState::alive;
};

class Topology {
 public:
  // `members` may or may not include this node; it is always placed in the ring as alive.
  Topology(std::string self, const Peer& self_info, const std::vector<Peer>& members,
           PlacementOptions options, uint64_t version);

  [[nodiscard]] const std::string& self() const { return self_; }
  [[nodiscard]] uint64_t version() const { return version_; }
  [[nodiscard]] const PlacementOptions& options() const { return options_; }
  [[nodiscard]] const dht::Ring& ring() const { return ring_; }
  [[nodiscard]] const std::map<std::string, Peer>& members() const { return members_; }

  [[nodiscard]] bool usable(const std::string& name) const;
  [[nodiscard]] std::vector<std::string> replicas(const std::string& id) const;
  [[nodiscard]] std::optional<std::string> owner(const std::string& id) const;
  [[nodiscard]] bool is_replica(const std::string& id, const std::string& name) const;
  [[nodiscard]] size_t write_quorum() const;
  // Majority of a replica list of `n` members.
  [[nodiscard]] static size_t majority(size_t n) { return n / 2 + 1; }
  // Usable members other than this node, with their API addresses.
  [[nodiscard]] std::map<std::string, std::string> peer_addresses() const;
  [[nodiscard]] std::vector<std::string> usable_peers() const;
  // Raw public key of a ring member; nullopt when unknown.
  [[nodiscard]] std::optional<std::string> public_key(std::string_view name) const;

 private:
  std::string self_;
  PlacementOptions options_;
  uint64_t version_;
  std::map<std::string, Peer> members_;  // ring members (not left), this node included
  dht::Ring ring_;
};

}  // namespace meshwork
