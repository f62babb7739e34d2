// Figures gathered from the member events while a run goes: failure detection times per crash,
// false suspicions and deaths about live nodes, and gossip traffic over the steady window.
//
// Thread-safety: none. Invariants: a detection time is only taken from an event about a node that
// is down at that moment; a false death is a dead event about an up node's current instance.
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "simulations/sim/cluster.h"
#include "simulations/sim/scenario.h"

namespace meshwork::sim {

struct Detection {
  uint64_t first_suspect_ms = never_ms;
  uint64_t first_dead_ms = never_ms;
  std::vector<uint64_t> dead_at_ms;  // per viewer
};

class Metrics {
 public:
  Metrics(const Cluster& c, const Plan& plan) : c_(c), plan_(plan) {}

  void on_event(uint64_t now_ms, uint32_t viewer, const gossip::MemberEvent& e, bool first_hand);
  void snapshot_traffic(bool start);
  void print(std::ostream& out, const gossip::Config& cfg) const;

  uint64_t reachable_false_deaths = 0;  // invariant 2: first-hand, both ends reachable
  std::string first_false_death;        // an example, for the failure message
  uint64_t false_deaths_first_hand = 0;
  uint64_t reachable_false_deaths_any_hand = 0;  // as reachable_false_deaths, second-hand too
  uint64_t false_deaths = 0;      // every dead event about a live node's current instance
  uint64_t false_suspicions = 0;  // first-hand suspicions of a live node's current instance
  uint64_t false_dead_nodes = 0;  // live nodes that some node declared dead at least once

 private:
  Detection& detection_of(std::size_t crash);

  const Cluster& c_;
  const Plan& plan_;
  std::map<std::size_t, Detection> detections_;  // by index into plan.crashes
  std::map<uint32_t, std::size_t> crash_of_;     // node -> its latest crash
  std::vector<uint8_t> falsely_dead_;
  uint64_t packets_at_start_ = 0, bytes_at_start_ = 0, start_ms_ = 0;
  double packets_per_node_s_ = 0, bytes_per_node_s_ = 0;
};

}  // namespace meshwork::sim
