// meshwork-sim: the deterministic simulator (docs/simulation.md). Runs one seed, or a batch of
// seeds, of a scenario over N simulated nodes — the real gossip and replica cores — checks the
// invariants and exits non-zero if any seed failed (printing each failing seed and invariant).
#include <CLI/CLI.hpp>

#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "simulations/sim/run.h"

namespace {

using meshwork::sim::RunOptions;

// "A..B" -> [A, B]; nullopt on anything else or B < A.
std::optional<std::pair<uint64_t, uint64_t>> parse_seed_range(const std::string& text) {
  const auto dots = text.find("..");
  if (dots == std::string::npos) return std::nullopt;
  try {
    std::size_t used_a = 0, used_b = 0;
    const uint64_t a = std::stoull(text.substr(0, dots), &used_a);
    const uint64_t b = std::stoull(text.substr(dots + 2), &used_b);
    if (used_a != dots || used_b != text.size() - dots - 2 || b < a) return std::nullopt;
    return std::pair{a, b};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

constexpr uint64_t seeds_per_batch_max = 100'000;
constexpr double settle_s_max = 3'600;
constexpr size_t failover_slowest_batch = 10;  // slowest failovers printed after a batch

// What the flags say, before it is checked and turned into RunOptions.
struct Flags {
  RunOptions o;
  std::string seeds, profile = "lan", breaks;
  uint32_t runs = 1;
  double duration_s = 60, settle_s = 300, stall_s = 30, lease_s = 15, reap_after_s = 86'400,
         retain_s = 0;
};

void add_flags(CLI::App& app, Flags& f) {
  RunOptions& o = f.o;
  app.add_option("--nodes", o.nodes, "simulated nodes (2..16384)")->capture_default_str();
  app.add_option("--seed", o.seed, "seed of the run (or the first of --runs)")
      ->capture_default_str();
  app.add_option("--seeds", f.seeds, "a batch of seeds, A..B inclusive");
  app.add_option("--runs", f.runs, "a batch of K seeds from --seed on")->capture_default_str();
  app.add_option("--scenario", o.scenario.name, "mixed | detect | calm | heal | stall | hints")
      ->capture_default_str();
  app.add_option("--loss", o.scenario.loss, "per-datagram loss probability")->capture_default_str();
  app.add_option("--loss-bound", o.loss_bound,
                 "at or below this loss a false death fails the run; above it is only counted")
      ->capture_default_str();
  app.add_option("--duplicate", o.net.duplicate, "per-datagram duplication probability")
      ->capture_default_str();
  app.add_option("--reorder", o.net.reorder, "probability of an extra delay that reorders")
      ->capture_default_str();
  app.add_option("--delay-min", o.net.delay_ms_min, "ms")->capture_default_str();
  app.add_option("--delay-max", o.net.delay_ms_max, "ms")->capture_default_str();
  app.add_option("--duration", f.duration_s, "fault window, virtual seconds (10..3600)")
      ->capture_default_str();
  app.add_option("--settle-max", f.settle_s, "virtual seconds allowed for quiescence (<= 3600)")
      ->capture_default_str();
  app.add_option("--crashes", o.scenario.crashes,
                 "crashes in mixed (0: N/100, 2..50), heal and hints (0: N/20, 1..50)")
      ->capture_default_str();
  app.add_option("--jobs", o.workload.jobs,
                 "jobs the clients submit over the run (0: gossip only, no replica cores)")
      ->capture_default_str();
  app.add_flag("--priorities", o.workload.priorities, "give each job a random priority 0..9");
  app.add_option("--delayed", o.workload.delayed_fraction,
                 "fraction of jobs with a delay_ms of up to 20 s (0..1)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--cancels", o.workload.cancel_fraction,
                 "fraction of acknowledged jobs cancelled 0..3 s after the ack (0..1)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--retries", o.workload.retry_fraction,
                 "fraction of cancels answered ok followed by a retry 0..3 s later (0..1)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--redundancy", o.workload.redundancy_fraction,
                 "fraction of jobs run on 3 replicas, the majority's result winning (0..1)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--liars", o.replicas.liars,
                 "nodes (chosen by the seed) whose handlers return wrong, validly signed results")
      ->capture_default_str();
  app.add_option("--workers", o.replicas.workers, "handlers running at once per node (1..64)")
      ->capture_default_str();
  app.add_option("--record-cache", o.replicas.record_cache,
                 "durable records each replica core keeps in memory (0: none); the trace must not "
                 "change with it")
      ->capture_default_str()
      ->check(CLI::Range(size_t{0}, size_t{1} << 20));
  app.add_option("--vnodes", o.replicas.vnodes, "ring tokens per member in the replica cores")
      ->capture_default_str();
  app.add_option("--lease", f.lease_s, "a claim's lease, virtual seconds (1..600)")
      ->capture_default_str();
  app.add_option("--reap-after-s", f.reap_after_s,
                 "a member dead this long gives up its ring tokens, virtual seconds (1..86400)")
      ->capture_default_str();
  app.add_option("--clock-skew", o.replicas.clock_skew_ms_max,
                 "each node's wall clock runs 0..this many ms ahead of virtual time")
      ->capture_default_str();
  app.add_option("--clock-offset", o.replicas.clock_offset_ms,
                 "the first node's wall clock runs this many ms further ahead, the second's this "
                 "many behind (signed, at most a day)")
      ->capture_default_str();
  app.add_option("--retain", f.retain_s,
                 "finished jobs are erased this many virtual seconds after they finished (0: the "
                 "node's default, 7 days)")
      ->capture_default_str();
  app.add_option("--stall", f.stall_s, "stall: how long the core gets no input, virtual seconds")
      ->capture_default_str();
  app.add_option("--profile", f.profile, "gossip timing profile: local | lan | wan")
      ->capture_default_str();
  app.add_option("--break", f.breaks,
                 "deliberately break something to show the checker fails: deaf-node | "
                 "no-takeover | drop-round");
  app.add_option("--trace-job", o.trace_job, "print every core action on jobs with this id prefix");
  app.add_flag("--quiet", o.quiet, "one line per seed");
  app.add_flag("--verbose", o.verbose, "print every member event and core log line");
}

// Completes f.o and the seed range from the flags; the reason they are unusable, or nullopt.
std::optional<std::string> resolve(Flags& f, uint64_t& first, uint64_t& last) {
  RunOptions& o = f.o;
  const auto prof = meshwork::gossip::parse_profile(f.profile);
  if (!prof) return "--profile must be local, lan or wan";
  o.gossip = meshwork::gossip::config_for(*prof);
  if (!(f.duration_s >= 0 && f.duration_s <= 3'600) ||
      !(f.settle_s >= 0 && f.settle_s <= settle_s_max))
    return "--duration and --settle-max must be 0..3600 s";
  o.scenario.duration_ms = static_cast<uint64_t>(f.duration_s * 1000);
  if (!(f.stall_s >= 0 && f.stall_s <= 3'600)) return "--stall must be 0..3600 s";
  o.scenario.stall_ms = static_cast<uint64_t>(f.stall_s * 1000);
  if (!(f.lease_s >= 1 && f.lease_s <= 600)) return "--lease must be 1..600 s";
  o.replicas.lease_ms = static_cast<uint64_t>(f.lease_s * 1000);
  if (!(f.reap_after_s >= 1 && f.reap_after_s <= 86'400)) return "--reap-after-s must be 1..86400";
  o.replicas.reap_after_ms = static_cast<uint64_t>(f.reap_after_s * 1000);
  if (!(f.retain_s >= 0 && f.retain_s <= 3'600)) return "--retain must be 0..3600 s";
  o.replicas.retain_ms = static_cast<uint64_t>(f.retain_s * 1000);
  if (o.replicas.workers < 1 || o.replicas.workers > 64) return "--workers must be 1..64";
  if (o.replicas.vnodes < 1 || o.replicas.vnodes > 1024) return "--vnodes must be 1..1024";
  if (o.replicas.clock_skew_ms_max > 60'000) return "--clock-skew must be 0..60000 ms";
  if (o.replicas.clock_offset_ms < -86'400'000 || o.replicas.clock_offset_ms > 86'400'000)
    return "--clock-offset must be -86400000..86400000 ms";
  o.settle_max_ms = static_cast<uint64_t>(f.settle_s * 1000);
  if (f.breaks == "deaf-node")
    o.scenario.deaf_node = true;
  else if (f.breaks == "no-takeover")
    o.replicas.take_over = false;
  else if (f.breaks == "drop-round")
    o.replicas.keep_round = false;
  else if (!f.breaks.empty())
    return "--break must be deaf-node, no-takeover or drop-round";
  if (f.runs == 0 || f.runs > seeds_per_batch_max) return "--runs must be 1..100000";
  first = o.seed;
  last = o.seed + (f.runs - 1);
  if (!f.seeds.empty()) {
    const auto range = parse_seed_range(f.seeds);
    if (!range || range->second - range->first >= seeds_per_batch_max)
      return "--seeds must be A..B with A <= B and at most 100000 seeds";
    std::tie(first, last) = *range;
  }
  if (o.nodes < meshwork::sim::nodes_min || o.nodes > meshwork::sim::nodes_max)
    return "--nodes must be 2..16384";
  if (o.replicas.liars >= o.nodes) return "--liars must be fewer than --nodes";
  if (auto why = meshwork::gossip::config_error(o.gossip)) return *why;
  if (auto why = meshwork::sim::network_error(o.net)) return *why;
  if (auto why = meshwork::sim::scenario_error(o.scenario)) return *why;
  if (o.workload.jobs > meshwork::sim::jobs_max) return "--jobs must be at most 100000";
  if (o.workload.jobs == 0 && (o.scenario.name == "stall" || o.scenario.name == "hints"))
    return "--scenario stall and hints need jobs";
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"meshwork-sim: the deterministic simulator of the gossip and replica cores"};
  Flags flags;
  add_flags(app, flags);
  CLI11_PARSE(app, argc, argv);
  uint64_t first = 0, last = 0;
  if (auto why = resolve(flags, first, last)) {
    std::cerr << *why << "\n";
    return 2;
  }
  RunOptions& o = flags.o;
  std::vector<uint64_t> failed;
  std::vector<meshwork::sim::FailoverSample> failover;  // of every seed
  for (uint64_t seed = first; seed <= last; ++seed) {
    o.seed = seed;
    meshwork::sim::RunReport report = meshwork::sim::run(o, std::cout);
    if (!report.ok) failed.push_back(seed);
    failover.insert(failover.end(), report.failover.begin(), report.failover.end());
  }
  if (last > first && o.workload.jobs > 0) {
    meshwork::sim::sort_slowest_first(failover);
    meshwork::sim::print_failover(std::cout,
                                  "failover over " + std::to_string(last - first + 1) + " seeds",
                                  failover, failover_slowest_batch, true);
  }
  if (last > first) {
    std::cout << (last - first + 1 - failed.size()) << " of " << (last - first + 1)
              << " seeds passed";
    for (const uint64_t s : failed)
      std::cout << (s == failed.front() ? "; failed:" : "") << " " << s;
    std::cout << "\n";
  }
  return failed.empty() ? 0 : 1;
}
