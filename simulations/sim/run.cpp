// One simulated run; see run.h.
#include "simulations/sim/run.h"

#include <cstdio>
#include <utility>
#include <vector>

#include "simulations/sim/checks.h"
#include "simulations/sim/cluster.h"
#include "simulations/sim/metrics.h"

namespace meshwork::sim {
namespace {

constexpr uint64_t settle_step_ms = 1'000;

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string seconds(uint64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
  return buf;
}

void print_event(std::ostream& out, uint64_t now_ms, uint32_t viewer, const gossip::MemberEvent& e,
                 bool first_hand) {
  out << seconds(now_ms) << " n" << viewer << " sees " << e.member.name << " "
      << gossip::to_string(e.kind) << " inc=" << e.member.incarnation
      << (first_hand ? " (own timer)" : "") << "\n";
}

// Runs until every live node's view matches reality and the job records agree, or the budget ends.
uint64_t settle(Cluster& c, const JobSim& jobs, uint64_t from_ms, uint64_t budget_ms) {
  c.run_until(from_ms);
  for (uint64_t t = from_ms; t <= from_ms + budget_ms; t += settle_step_ms) {
    c.run_until(t);
    if (views_converged(c) && !jobs.divergence()) return t;
  }
  return never_ms;
}

}  // namespace

RunReport run(const RunOptions& o, std::ostream& out) {
  Random rng(o.seed);
  NetworkParams net = o.net;
  net.loss = o.scenario.loss;
  Cluster c(o.gossip, net, o.nodes, rng.fork());
  Random scenario_rng = rng.fork();
  Plan plan;
  schedule(c, o.scenario, scenario_rng, plan);
  JobSim jobs(c, o.jobs, rng.fork());
  jobs.schedule(plan.boot_end_ms, plan.faults_end_ms);
  Metrics metrics(c, plan);
  c.observe([&](uint64_t now, uint32_t v, const gossip::MemberEvent& e, bool first_hand) {
    metrics.on_event(now, v, e, first_hand);
    if (o.verbose) print_event(out, now, v, e, first_hand);
  });
  c.at(plan.steady_from_ms, [&metrics] { metrics.snapshot_traffic(true); });
  c.at(plan.steady_to_ms, [&metrics] { metrics.snapshot_traffic(false); });

  if (!o.quiet) {
    out << "meshwork-sim seed=" << o.seed << " nodes=" << o.nodes << " scenario=" << o.scenario.name
        << " loss=" << net.loss << " dup=" << net.duplicate << " reorder=" << net.reorder
        << " delay=" << net.delay_ms_min << ".." << net.delay_ms_max
        << "ms loss-bound=" << o.loss_bound << " jobs=" << o.jobs.jobs << "\n";
    for (const std::string& line : plan.lines) out << "  " << line << "\n";
  }
  const uint64_t quiet_at = settle(c, jobs, plan.faults_end_ms, o.settle_max_ms);

  RunReport report;
  std::vector<std::pair<std::string, std::string>> failures;  // every invariant that failed
  const auto fail = [&](const char* invariant, std::string detail) {
    if (report.ok) report = RunReport{false, invariant, detail, 0};
    failures.emplace_back(invariant, std::move(detail));
  };
  if (auto why = check_dead_detected(c, plan)) fail("dead-detected", *why);
  if (metrics.reachable_false_deaths != 0 && net.loss <= o.loss_bound)
    fail("no-false-deaths", metrics.first_false_death);
  uint64_t ring = 0;
  Random check_rng = rng.fork();
  if (auto why = check_agreement(c, check_rng, ring)) fail("agreement", *why);
  if (auto why = jobs.divergence()) fail("jobs-converge", *why);
  if (auto why = jobs.order_independence(check_rng)) fail("jobs-converge", *why);
  // Last: a specific invariant explains a failure better than "did not settle".
  if (quiet_at == never_ms && !views_converged(c))
    fail("quiescence", "member views still differ from reality after " + seconds(o.settle_max_ms));

  report.digest = c.digest();
  if (!o.quiet) {
    out << "quiescent at " << (quiet_at == never_ms ? "never" : seconds(quiet_at))
        << " (faults ended at " << seconds(plan.faults_end_ms) << "), " << c.up_count()
        << " nodes up\n";
    metrics.print(out, o.gossip);
    out << "jobs: " << o.jobs.jobs << " records, " << jobs.messages() << " messages\n";
    out << "ring digest " << hex(ring) << ", trace digest " << hex(report.digest) << "\n";
  }
  if (report.ok) {
    out << "PASS seed=" << o.seed << " nodes=" << o.nodes << " digest=" << hex(report.digest)
        << "\n";
  }
  for (const auto& [invariant, detail] : failures) {
    out << "FAIL seed=" << o.seed << " nodes=" << o.nodes << " invariant=" << invariant << ": "
        << detail << "\n";
  }
  return report;
}

}  // namespace meshwork::sim
