// Scenario schedules; see scenario.h.
#include "simulations/sim/scenario.h"

#include <algorithm>
#include <numeric>

namespace meshwork::sim {
namespace {

constexpr uint64_t boot_base_ms = 2'000;
constexpr uint64_t boot_per_node_ms = 2;  // 1,000 nodes join over 4 s, 10,000 over 22 s
constexpr uint64_t quiet_ms = 15'000;     // after bootstrap, before the first fault
constexpr uint64_t detect_every_ms = 20'000;
constexpr uint64_t detect_quiet_ms = 60'000;  // detect: a longer quiet start
constexpr uint64_t clog_step_ms = 300;
constexpr uint32_t join_seeds = 3;
constexpr uint64_t heal_cut_ms_min = 3'000;  // heal: partitions last 3..10 s, as in chaos.sh
constexpr uint64_t heal_cut_ms_max = 10'000;
constexpr uint64_t heal_gap_ms_min = 1'000;  // ...with 1..4 s between one heal and the next cut
constexpr uint64_t heal_gap_ms_max = 4'000;

std::string at_s(uint64_t ms) {
  return std::to_string(ms / 1000) + "." + std::to_string(ms % 1000 / 100) + "s";
}

// k distinct nodes drawn from those `free` marks, marked taken.
std::vector<uint32_t> draw(std::vector<uint8_t>& free, uint32_t k, Random& rng) {
  std::vector<uint32_t> pool;
  for (uint32_t i = 0; i < free.size(); ++i)
    if (free[i] != 0) pool.push_back(i);
  std::vector<uint32_t> out;
  while (out.size() < k && !pool.empty()) {
    const std::size_t j = rng.below(pool.size());
    out.push_back(pool[j]);
    free[pool[j]] = 0;
    pool[j] = pool.back();
    pool.pop_back();
  }
  return out;
}

void bootstrap(Cluster& c, Random& rng, Plan& plan) {
  const uint32_t n = c.size();
  plan.boot_end_ms = boot_base_ms + boot_per_node_ms * n;
  for (uint32_t i = 0; i < n; ++i) {
    std::vector<uint32_t> seeds;
    for (uint32_t s = 0; s < join_seeds && i > 0; ++s) seeds.push_back(rng.below(i));
    c.at(plan.boot_end_ms * i / n, [&c, i, seeds] { c.start(i, seeds); });
  }
  plan.lines.push_back("bootstrap: " + std::to_string(n) + " nodes join over " +
                       at_s(plan.boot_end_ms) + " through 3 earlier nodes each");
}

void crash_at(Cluster& c, Plan& plan, uint32_t node, uint64_t at_ms) {
  c.at(at_ms, [&c, &plan, node] {
    plan.crashes.push_back({node, c.now_ms(), c.membership(node)->incarnation()});
    c.crash(node);
  });
  plan.lines.push_back("crash n" + std::to_string(node) + " at " + at_s(at_ms));
}

void restart_at(Cluster& c, Random& rng, Plan& plan, uint32_t node, uint64_t at_ms) {
  c.at(at_ms, [&c, &rng, &plan, node] {
    uint32_t seed = static_cast<uint32_t>(rng.below(c.size()));
    while (!c.up(seed)) seed = (seed + 1) % c.size();
    for (CrashRecord& r : plan.crashes) r.restarted = r.restarted || r.node == node;
    c.start(node, {seed});
  });
  plan.lines.push_back("restart n" + std::to_string(node) + " at " + at_s(at_ms));
}

void partition(Cluster& c, Plan& plan, std::vector<uint32_t> side, uint64_t at, uint64_t len) {
  for (const uint32_t n : side) {
    plan.unreachable[n] = 1;
    plan.cuts.push_back({"partition", n, at});
  }
  plan.lines.push_back("partition " + std::to_string(side.size()) + " nodes from " + at_s(at) +
                       " to " + at_s(at + len));
  c.at(at, [&c, side = std::move(side)] { c.network().partition(side); });
  c.at(at + len, [&c] { c.network().heal(); });
}

// FoundationDB's swizzle-clog: clog the nodes one at a time, then unclog them in random order.
void swizzle(Cluster& c, Random& rng, Plan& plan, std::vector<uint32_t> nodes, uint64_t at) {
  std::vector<uint32_t> order(nodes);
  for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  const uint64_t unclog_from = at + clog_step_ms * nodes.size() + 1'000;
  for (std::size_t j = 0; j < nodes.size(); ++j) {
    const auto k =
        static_cast<std::size_t>(std::find(order.begin(), order.end(), nodes[j]) - order.begin());
    const uint64_t until = unclog_from + clog_step_ms * k;
    const uint32_t n = nodes[j];
    plan.unreachable[n] = 1;
    plan.cuts.push_back({"clog", n, at + clog_step_ms * j});
    c.at(at + clog_step_ms * j, [&c, n, until] { c.network().clog(n, until); });
  }
  plan.lines.push_back("swizzle-clog " + std::to_string(nodes.size()) + " nodes from " + at_s(at) +
                       " to " + at_s(unclog_from + clog_step_ms * nodes.size()));
}

void mixed(Cluster& c, const ScenarioOptions& o, Random& rng, Plan& plan) {
  const uint32_t n = c.size();
  const uint64_t start = plan.faults_start_ms, d = o.duration_ms;
  std::vector<uint8_t> free(n, 1);
  const uint32_t crashes = o.crashes != 0 ? o.crashes : std::clamp<uint32_t>(n / 100, 2, 50);
  const std::vector<uint32_t> victims = draw(free, std::min(crashes, n / 4), rng);
  for (std::size_t i = 0; i < victims.size(); ++i) {
    crash_at(c, plan, victims[i], start + rng.below(d / 2));
  }
  if (!victims.empty()) {  // restart the first victim once it is surely down
    restart_at(c, rng, plan, victims[0], start + d / 2 + d / 8);
  }
  partition(c, plan, draw(free, std::max<uint32_t>(1, n / 10), rng), start + d / 4, d / 5);
  swizzle(c, rng, plan, draw(free, std::max<uint32_t>(1, n / 20), rng), start + d / 2);
}

// One partition at a time, back to back, cutting 1..max(1, N/10) nodes for 3..10 s, like the
// chaos runs (docs/chaos.md); in every other one a node on the main side crashes while it lasts,
// so the cut-off side misses its death. What it shows: false deaths right after a heal, and
// deaths announced during a partition that the healed side learns late.
void heal(Cluster& c, const ScenarioOptions& o, Random& rng, Plan& plan) {
  const uint32_t n = c.size();
  std::vector<uint8_t> alive(n, 1);  // not crashed by this plan
  const uint32_t cut_max = std::max<uint32_t>(1, n / 10);
  uint32_t crashes = o.crashes != 0 ? o.crashes : std::clamp<uint32_t>(n / 20, 1, 50);
  const uint64_t end = plan.faults_start_ms + o.duration_ms;
  for (uint64_t t = plan.faults_start_ms;;) {
    const uint64_t len = heal_cut_ms_min + rng.below(heal_cut_ms_max - heal_cut_ms_min + 1);
    if (t + len > end) break;
    std::vector<uint8_t> free(alive);
    const std::vector<uint32_t> side =
        draw(free, 1 + static_cast<uint32_t>(rng.below(cut_max)), rng);
    if (crashes > 0 && rng.below(2) == 0) {
      for (const uint32_t v : draw(free, 1, rng)) {
        alive[v] = 0;
        --crashes;
        crash_at(c, plan, v, t + 1'000 + rng.below(len / 2));
      }
    }
    partition(c, plan, side, t, len);
    t += len + heal_gap_ms_min + rng.below(heal_gap_ms_max - heal_gap_ms_min + 1);
  }
}

// Crashes max(1, min(50, N/20)) nodes as the window opens and restarts them halfway; jobs are
// submitted only while they are down.
void hints(Cluster& c, const ScenarioOptions& o, Random& rng, Plan& plan) {
  const uint32_t n = c.size();
  std::vector<uint8_t> free(n, 1);
  const uint32_t crashes = o.crashes != 0 ? o.crashes : std::clamp<uint32_t>(n / 20, 1, 50);
  const uint64_t back_ms = plan.faults_start_ms + o.duration_ms / 2;
  for (const uint32_t v : draw(free, std::min(crashes, n / 4 + 1), rng)) {
    crash_at(c, plan, v, plan.faults_start_ms);
    restart_at(c, rng, plan, v, back_ms);
  }
  plan.jobs_from_ms = plan.faults_start_ms + 1'000;
  plan.jobs_to_ms = back_ms - 1'000;
}

}  // namespace

std::optional<std::string> scenario_error(const ScenarioOptions& o) {
  if (o.name != "mixed" && o.name != "detect" && o.name != "calm" && o.name != "heal" &&
      o.name != "stall" && o.name != "hints")
    return "scenario must be mixed, detect, calm, heal, stall or hints";
  if (o.name == "stall" && (o.stall_ms < 1'000 || o.stall_ms > o.duration_ms))
    return "--stall must be 1 s..--duration";
  if (o.duration_ms < 10'000 || o.duration_ms > 3'600'000) return "duration must be 10..3600 s";
  if (o.crashes > 1'000) return "at most 1000 crashes";
  return std::nullopt;
}

void schedule(Cluster& c, const ScenarioOptions& o, Random& rng, Plan& plan) {
  const uint32_t n = c.size();
  plan.unreachable.assign(n, 0);
  bootstrap(c, rng, plan);
  plan.faults_start_ms = plan.boot_end_ms + quiet_ms;
  plan.faults_end_ms = plan.faults_start_ms + o.duration_ms;
  plan.steady_from_ms = plan.boot_end_ms + quiet_ms / 3;
  plan.steady_to_ms = plan.faults_start_ms;
  plan.jobs_from_ms = plan.boot_end_ms;
  plan.jobs_to_ms = plan.faults_end_ms;
  if (o.deaf_node) {
    c.network().make_deaf(1);  // and not marked unreachable: the checker must object
    plan.lines.push_back("break: n1 never receives a datagram");
  }
  if (o.name == "calm") {
    c.network().set_loss(0);
    c.at(plan.faults_start_ms, [&c, loss = o.loss] { c.network().set_loss(loss); });
    c.at(plan.faults_end_ms, [&c] { c.network().set_loss(0); });
    plan.steady_from_ms = plan.faults_start_ms;
    plan.steady_to_ms = plan.faults_end_ms;
    plan.lines.push_back("loss " + std::to_string(o.loss) + " from " + at_s(plan.faults_start_ms) +
                         " to " + at_s(plan.faults_end_ms));
  } else if (o.name == "detect") {
    // Traffic is measured once the join chatter has died down: 20 s before the first crash.
    plan.faults_start_ms = plan.boot_end_ms + detect_quiet_ms;
    plan.faults_end_ms = plan.faults_start_ms + o.duration_ms;
    plan.jobs_to_ms = plan.faults_end_ms;
    plan.steady_from_ms = plan.faults_start_ms - 20'000;
    plan.steady_to_ms = plan.faults_start_ms;
    std::vector<uint8_t> free(n, 1);
    const uint32_t k =
        std::min<uint32_t>(std::max<uint64_t>(1, o.duration_ms / detect_every_ms), n / 4);
    const std::vector<uint32_t> victims = draw(free, std::max<uint32_t>(1, k), rng);
    for (std::size_t i = 0; i < victims.size(); ++i)
      crash_at(c, plan, victims[i], plan.faults_start_ms + detect_every_ms * i);
  } else if (o.name == "heal") {
    heal(c, o, rng, plan);
  } else if (o.name == "stall") {
    plan.stalls.push_back({plan.faults_start_ms + o.duration_ms / 3, o.stall_ms});
    plan.lines.push_back("stall the busiest core from " + at_s(plan.stalls.back().at_ms) + " for " +
                         at_s(o.stall_ms));
  } else if (o.name == "hints") {
    hints(c, o, rng, plan);
  } else {
    mixed(c, o, rng, plan);
  }
}

}  // namespace meshwork::sim
