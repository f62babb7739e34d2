// Run figures; see metrics.h.
#include "simulations/sim/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace meshwork::sim {
namespace {

using Kind = gossip::MemberEvent::Kind;

constexpr uint64_t late_ms = 10'000;  // longer than any heal-scenario partition

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

struct Summary {
  double mean = 0;
  uint64_t max = 0;
  std::size_t count = 0;
};

Summary summarise(const std::vector<uint64_t>& v) {
  Summary s;
  for (const uint64_t x : v) {
    s.mean += static_cast<double>(x);
    s.max = std::max(s.max, x);
  }
  s.count = v.size();
  if (!v.empty()) s.mean /= static_cast<double>(v.size());
  return s;
}

}  // namespace

Detection& Metrics::detection_of(std::size_t crash) {
  Detection& d = detections_[crash];
  if (d.dead_at_ms.empty()) d.dead_at_ms.assign(c_.size(), never_ms);
  return d;
}

void Metrics::on_event(uint64_t now_ms, uint32_t viewer, const gossip::MemberEvent& e,
                       bool first_hand) {
  const uint32_t s = node_index(e.member.name);
  if (s >= c_.size() || (e.kind != Kind::suspect && e.kind != Kind::dead)) return;
  if (!c_.up(s)) {  // about a crashed node: detection
    if (crash_of_.size() < plan_.crashes.size()) {
      for (std::size_t i = 0; i < plan_.crashes.size(); ++i) crash_of_[plan_.crashes[i].node] = i;
    }
    const auto it = crash_of_.find(s);
    if (it == crash_of_.end()) return;
    Detection& d = detection_of(it->second);
    if (e.kind == Kind::suspect) d.first_suspect_ms = std::min(d.first_suspect_ms, now_ms);
    if (e.kind == Kind::dead) {
      d.first_dead_ms = std::min(d.first_dead_ms, now_ms);
      d.dead_at_ms[viewer] = std::min(d.dead_at_ms[viewer], now_ms);
    }
    return;
  }
  if (e.member.incarnation < c_.first_incarnation(s)) return;  // about an earlier instance
  if (e.kind == Kind::suspect) {
    if (first_hand) ++false_suspicions;
    return;
  }
  ++false_deaths;
  if (falsely_dead_.empty()) falsely_dead_.assign(c_.size(), 0);
  if (falsely_dead_[s] == 0) ++false_dead_nodes;
  falsely_dead_[s] = 1;
  const bool reachable = plan_.unreachable[viewer] == 0 && plan_.unreachable[s] == 0;
  if (reachable) ++reachable_false_deaths_any_hand;
  if (!first_hand) return;
  ++false_deaths_first_hand;
  if (!reachable) return;
  if (reachable_false_deaths++ == 0) {
    first_false_death = "n" + std::to_string(viewer) + " declared live, reachable n" +
                        std::to_string(s) + " dead at " + std::to_string(now_ms) + " ms";
  }
}

void Metrics::snapshot_traffic(bool start) {
  const Traffic& t = c_.traffic();
  if (start) {
    packets_at_start_ = t.packets_sent;
    bytes_at_start_ = t.bytes_sent;
    start_ms_ = c_.now_ms();
    return;
  }
  const double node_s =
      static_cast<double>(c_.up_count()) * static_cast<double>(c_.now_ms() - start_ms_) / 1000.0;
  if (node_s <= 0) return;
  packets_per_node_s_ = static_cast<double>(t.packets_sent - packets_at_start_) / node_s;
  bytes_per_node_s_ = static_cast<double>(t.bytes_sent - bytes_at_start_) / node_s;
}

void Metrics::print(std::ostream& out, const gossip::Config& cfg) const {
  const double period = static_cast<double>(cfg.probe_interval_ms);
  std::vector<uint64_t> suspect, dead, full;
  std::size_t incomplete = 0, late = 0;
  for (const auto& [i, d] : detections_) {
    const CrashRecord& r = plan_.crashes[i];
    for (const uint64_t at : d.dead_at_ms) late += at != never_ms && at - d.first_dead_ms > late_ms;
    if (d.first_suspect_ms != never_ms) suspect.push_back(d.first_suspect_ms - r.at_ms);
    if (d.first_dead_ms != never_ms) dead.push_back(d.first_dead_ms - r.at_ms);
    uint64_t last = 0;
    bool all = !r.restarted;
    for (uint32_t v = 0; v < c_.size() && all; ++v) {
      if (!c_.up(v) || c_.started_ms(v) > r.at_ms) continue;
      const View seen = c_.view(v, r.node);
      if (d.dead_at_ms[v] != never_ms) {
        last = std::max(last, d.dead_at_ms[v]);
      } else if (seen != View::dead && seen != View::left) {
        // (Dead in its view without an event since the crash: it had declared the node dead from
        // behind a partition or a clog before the crash, so it knew at once.)
        all = false;
      }
    }
    if (all)
      full.push_back(last - r.at_ms);
    else if (!r.restarted)
      ++incomplete;
  }
  const auto line = [&](const char* what, const std::vector<uint64_t>& v) {
    const Summary s = summarise(v);
    out << "  " << what << ": mean " << fixed(s.mean, 0) << " ms (" << fixed(s.mean / period, 2)
        << " periods), max " << s.max << " ms, over " << s.count << " crashes\n";
  };
  out << "detection (protocol period " << cfg.probe_interval_ms << " ms):\n";
  line("crash -> first suspicion  ", suspect);
  line("crash -> first dead       ", dead);
  line("crash -> dead everywhere  ", full);
  if (incomplete != 0) out << "  not dead everywhere: " << incomplete << " crashes\n";
  out << "  learned a death more than " << late_ms / 1000 << " s after the first dead: " << late
      << " (node, crash) pairs\n";
  out << "traffic (steady window): " << fixed(packets_per_node_s_, 1) << " packets and "
      << fixed(bytes_per_node_s_, 0) << " bytes sent per node per second\n";
  out << "false positives about live nodes: " << false_suspicions << " suspicions, "
      << false_deaths_first_hand << " first-hand deaths (" << reachable_false_deaths
      << " between reachable nodes), " << false_deaths << " dead events ("
      << reachable_false_deaths_any_hand << " between reachable nodes), " << false_dead_nodes
      << " nodes ever marked dead\n";
}

}  // namespace meshwork::sim
