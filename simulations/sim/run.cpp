// One simulated run; see run.h.
#include "simulations/sim/run.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "simulations/sim/checks.h"
#include "simulations/sim/cluster.h"
#include "simulations/sim/job_checks.h"
#include "simulations/sim/metrics.h"
#include "simulations/sim/random.h"

namespace meshwork::sim {
namespace {

constexpr uint64_t settle_step_ms = 1'000;
constexpr size_t failover_slowest = 5;  // samples printed per run

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

// A stall as it happened: the node whose core froze and the jobs its handlers were running.
struct StallRecord {
  uint32_t node = 0;
  uint64_t at_ms = 0;
  std::vector<std::string> jobs;
};

// The replica cores and their clients; absent in a gossip-only run (--jobs 0).
struct JobSide {
  JobSide(Cluster& c, const RunOptions& o, Random& rng)
      : replicas(c, o.replicas, rng.fork()), workload(c, replicas, o.workload, rng.fork()) {}
  ReplicaSim replicas;
  Workload workload;
  std::vector<StallRecord> stalls;
};

using Fail = std::function<void(const char* invariant, std::string detail)>;

// At each planned stall, freezes the core of the up, unstalled node running the most handlers.
void schedule_stalls(Cluster& c, JobSide& jobs, const Plan& plan) {
  for (const StallPlan& s : plan.stalls) {
    c.at(s.at_ms, [&c, &jobs, s] {
      ReplicaSim& r = jobs.replicas;
      uint32_t best = UINT32_MAX;
      for (uint32_t i = 0; i < c.size(); ++i) {
        if (!c.up(i) || r.stalled(i)) continue;
        if (best == UINT32_MAX || r.handlers_running(i) > r.handlers_running(best)) best = i;
      }
      if (best == UINT32_MAX) return;
      jobs.stalls.push_back({best, s.at_ms, r.running_jobs(best)});
      r.stall(best, s.at_ms + s.length_ms);
    });
  }
}

// Runs until every live node's view matches reality and the jobs are settled (invariants 4-6
// hold), or the budget ends.
uint64_t settle(Cluster& c, const JobSide* jobs, uint64_t from_ms, uint64_t budget_ms) {
  c.run_until(from_ms);
  for (uint64_t t = from_ms; t <= from_ms + budget_ms; t += settle_step_ms) {
    c.run_until(t);
    if (!views_converged(c)) continue;
    if (jobs == nullptr || jobs_settled(job_figures(c, jobs->replicas, jobs->workload))) return t;
  }
  return never_ms;
}

// Invariants 4-12.
void check_jobs(const JobSide& jobs, const JobFigures& f, const std::string& scenario,
                const Fail& fail) {
  const ReplicaSim& r = jobs.replicas;
  const ReplicaStats stats = r.stats();
  if (f.lost != 0) fail("no-lost-jobs", std::to_string(f.lost) + " lost; " + f.first_lost);
  if (f.unfinished != 0)
    fail("jobs-terminal", std::to_string(f.unfinished) + " unfinished; " + f.first_unfinished);
  if (f.diverged != 0)
    fail("jobs-converge", std::to_string(f.diverged) + " diverged; " + f.first_diverged);
  if (f.retry_undone != 0)
    fail("retry-kept", std::to_string(f.retry_undone) + " retries undone; " + f.first_retry_undone);
  if (f.dishonest != 0)
    fail("honest-result", std::to_string(f.dishonest) + " dishonest; " + f.first_dishonest);
  if (r.decode_failures() != 0)
    fail("jobs-converge", std::to_string(r.decode_failures()) + " messages failed to decode");
  if (r.superseded_starts() != 0)
    fail("no-superseded-start",
         std::to_string(r.superseded_starts()) + " starts; " + r.first_superseded_start());
  if (r.early_starts() != 0)
    fail("not-early", std::to_string(r.early_starts()) + " starts; " + r.first_early_start());
  if (r.resurrections() != 0)
    fail("no-resurrection", std::to_string(r.resurrections()) + "; " + r.first_resurrection());
  if (r.early_erasures() != 0)
    fail("not-erased-early", std::to_string(r.early_erasures()) + "; " + r.first_early_erasure());
  if (r.executor_overflows() != 0)
    fail("workers-bound", std::to_string(r.executor_overflows()) +
                              " starts while every worker of the node was busy");
  if (scenario == "stall") {
    if (jobs.stalls.empty() || jobs.stalls.front().jobs.empty())
      fail("stall-takeover", "no core was running a handler when the stall began");
    else if (stats.takeovers == 0)
      fail("stall-takeover", "n" + std::to_string(jobs.stalls.front().node) +
                                 " stalled with jobs running, and nobody took one over");
  }
  if (scenario == "hints" && stats.hints_replayed == 0)
    fail("hints-replayed", std::to_string(stats.hints_stored) + " hints stored, none replayed");
}

// Redundant jobs and liars, when the run has them (else nothing: older runs print as before).
void print_redundancy(std::ostream& out, const Cluster& c, const JobFigures& f,
                      const JobSide& jobs) {
  const ReplicaSim& replicas = jobs.replicas;
  if (jobs.workload.options().redundancy_fraction > 0) {
    const ReplicaStats s = replicas.stats();
    out << "redundancy: " << f.redundant << " acknowledged jobs at k=" << kSimRedundancy << " ("
        << f.redundant_succeeded << " succeeded, " << f.redundant_unshown
        << " without a majority left to show, " << f.redundant_later
        << " showing a later attempt's), " << s.co_runs_started << " co-runs, verdicts "
        << s.verdicts_decided << " decided " << s.verdicts_disagreed << " disagreed\n";
  }
  if (replicas.liars().empty()) return;
  out << "liars:";
  for (uint32_t liar : replicas.liars()) {
    size_t up = 0, distrusting = 0;
    for (uint32_t i = 0; i < c.size(); ++i) {
      if (i == liar || !c.up(i) || replicas.replica(i) == nullptr) continue;
      ++up;
      distrusting += replicas.replica(i)->placement().distrusted(node_name(liar)) ? 1 : 0;
    }
    out << " " << node_name(liar) << " distrusted by " << distrusting << " of " << up;
  }
  out << " other up nodes; " << f.stale_honest_copies << " honest copies differ from the merge\n";
}

void print_jobs(std::ostream& out, const JobFigures& f, const JobSide& jobs) {
  const ReplicaSim& replicas = jobs.replicas;
  const ReplicaStats s = replicas.stats();
  const WorkloadCounts& w = jobs.workload.counts();
  for (const StallRecord& st : jobs.stalls)
    out << "stalled n" << st.node << " with " << st.jobs.size() << " handlers running\n";
  out << "jobs: " << jobs.workload.jobs().size() << " submitted, " << f.acknowledged
      << " acknowledged, " << f.lost << " lost, " << f.terminal << " terminal (" << f.succeeded
      << " succeeded, " << f.failed << " failed, " << f.cancelled << " cancelled), "
      << f.unfinished << " unfinished; " << f.stored << " stored, " << f.diverged << " diverged\n";
  out << "executions: " << f.starts << " starts of " << f.jobs_started
      << " jobs; duplicate starts " << f.duplicate_starts << " (" << f.jobs_started_twice
      << " jobs), of an attempt already started " << f.same_attempt_starts
      << "; duplicate completions " << f.duplicate_completions << " (" << f.jobs_completed_twice
      << " jobs)\n";
  out << "core: takeovers " << s.takeovers << ", hints stored " << s.hints_stored
      << ", hints replayed " << s.hints_replayed << ", claims " << s.claims_confirmed
      << " confirmed " << s.claims_refused << " refused, outcomes with their claim "
      << s.outcomes_with_claim << " (" << s.outcomes_with_claim_taken << " taken, "
      << s.outcomes_refused_here << " refused by replicas), superseded stops " << s.superseded_stops
      << ", retried " << s.retried << ", quorum failures " << s.quorum_failures << ", read repairs "
      << s.read_repairs << ", anti-entropy " << s.anti_entropy_rounds << " rounds "
      << s.anti_entropy_pushed << " pushed " << s.anti_entropy_pulled << " pulled, refused "
      << s.refused_records << " records " << s.refused_messages << " messages, 429s "
      << s.backpressure_refusals << ", parked " << s.submissions_parked << " (" << s.parked_refusals
      << " refused)\n";
  out << "clients: " << w.submits << " submits (" << w.refused << " refused, "
      << w.unanswered_retries << " unanswered), " << w.cancels << " cancels (" << w.cancels_ok
      << " ok), " << w.reads << " reads (" << w.reads_ok << " ok, " << w.reads_not_found
      << " not found)";
  if (jobs.workload.options().retry_fraction > 0)  // else the line reads as before retries
    out << ", " << w.retries << " retries (" << w.retries_ok << " ok, " << w.retries_conflict
        << " conflict)";
  out << "\n";
  if (replicas.options().retain_ms > 0)
    out << "retention: " << f.expired << " acknowledged jobs expired, " << s.expired
        << " copies erased, " << s.tombstone_refusals << " copies refused by tombstones\n";
  out << "stand-ins dropped: " << s.stand_ins_dropped << "\n";
  out << "replica messages: " << replicas.messages() << " sent, " << replicas.undeliverable()
      << " undeliverable, " << replicas.decode_failures() << " failed to decode; "
      << replicas.member_events() << " member events handed to the cores\n";
}

// Every fault of the run that can catch a handler: crashes, stalls, nodes cut off.
std::vector<Fault> faults_of(const Plan& plan, const JobSide& jobs) {
  std::vector<Fault> faults;
  for (const CrashRecord& r : plan.crashes) faults.push_back({"crash", r.node, r.at_ms});
  for (const StallRecord& r : jobs.stalls) faults.push_back({"stall", r.node, r.at_ms});
  for (const CutRecord& r : plan.cuts) faults.push_back({r.kind, r.node, r.at_ms});
  return faults;
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
  std::unique_ptr<JobSide> jobs;
  if (o.workload.jobs > 0) {
    jobs = std::make_unique<JobSide>(c, o, rng);
    jobs->workload.schedule(plan.jobs_from_ms, plan.jobs_to_ms);
    schedule_stalls(c, *jobs, plan);
    if (o.verbose) {
      jobs->replicas.on_log([&](uint32_t i, const LogLine& l) {
        out << seconds(c.now_ms()) << " n" << i << " core " << l.event << " "
            << l.id.substr(0, 12) << " " << l.detail << "\n";
      });
    }
    if (!o.trace_job.empty()) jobs->replicas.trace_job(o.trace_job, &out);
  }
  Metrics metrics(c, plan);
  c.observe([&](uint64_t now, uint32_t v, const gossip::MemberEvent& e, bool first_hand) {
    metrics.on_event(now, v, e, first_hand);
    if (jobs) jobs->replicas.on_member(v, e);
    if (o.verbose) print_event(out, now, v, e, first_hand);
  });
  c.at(plan.steady_from_ms, [&metrics] { metrics.snapshot_traffic(true); });
  c.at(plan.steady_to_ms, [&metrics] { metrics.snapshot_traffic(false); });

  if (!o.quiet) {
    out << "meshwork-sim seed=" << o.seed << " nodes=" << o.nodes << " scenario=" << o.scenario.name
        << " loss=" << net.loss << " dup=" << net.duplicate << " reorder=" << net.reorder
        << " delay=" << net.delay_ms_min << ".." << net.delay_ms_max
        << "ms loss-bound=" << o.loss_bound << " jobs=" << o.workload.jobs
        << " workers=" << o.replicas.workers << " vnodes=" << o.replicas.vnodes << "\n";
    for (const std::string& line : plan.lines) out << "  " << line << "\n";
  }
  const uint64_t quiet_at = settle(c, jobs.get(), plan.faults_end_ms, o.settle_max_ms);

  RunReport report;
  std::vector<std::pair<std::string, std::string>> failures;  // every invariant that failed
  const Fail fail = [&](const char* invariant, std::string detail) {
    if (report.ok) report = RunReport{false, invariant, detail, 0, {}};
    failures.emplace_back(invariant, std::move(detail));
  };
  if (auto why = check_dead_detected(c, plan)) fail("dead-detected", *why);
  if (metrics.reachable_false_deaths != 0 && net.loss <= o.loss_bound)
    fail("no-false-deaths", metrics.first_false_death);
  uint64_t ring = 0;
  Random check_rng = rng.fork();
  if (auto why = check_agreement(c, check_rng, ring)) fail("agreement", *why);
  JobFigures f;
  if (jobs) {
    f = job_figures(c, jobs->replicas, jobs->workload);
    check_jobs(*jobs, f, o.scenario.name, fail);
  }
  std::vector<FailoverSample> failover;
  if (jobs) failover = failover_samples(jobs->replicas, faults_of(plan, *jobs), o.seed);
  // Last: a specific invariant explains a failure better than "did not settle".
  if (quiet_at == never_ms && !views_converged(c))
    fail("quiescence", "member views still differ from reality after " + seconds(o.settle_max_ms));

  report.digest = jobs ? fnv_mix(c.digest(), jobs->replicas.digest()) : c.digest();
  if (!o.quiet) {
    out << "quiescent at " << (quiet_at == never_ms ? "never" : seconds(quiet_at))
        << " (faults ended at " << seconds(plan.faults_end_ms) << "), " << c.up_count()
        << " nodes up\n";
    metrics.print(out, o.gossip);
    if (jobs) print_jobs(out, f, *jobs);
    if (jobs) print_redundancy(out, c, f, *jobs);
    if (jobs) print_failover(out, "failover", failover, failover_slowest, false);
    out << "ring digest " << hex(ring) << ", trace digest " << hex(report.digest) << "\n";
    if (jobs) out << "lost=" << f.lost << "\n";
  }
  const std::string tally = !jobs ? ""
                                  : " acknowledged=" + std::to_string(f.acknowledged) +
                                        " lost=" + std::to_string(f.lost) + " dup-starts=" +
                                        std::to_string(f.duplicate_starts) + " dup-completions=" +
                                        std::to_string(f.duplicate_completions);
  if (report.ok) {
    out << "PASS seed=" << o.seed << " nodes=" << o.nodes << " digest=" << hex(report.digest)
        << tally << "\n";
  }
  for (const auto& [invariant, detail] : failures) {
    out << "FAIL seed=" << o.seed << " nodes=" << o.nodes << " invariant=" << invariant << ": "
        << detail << "\n";
  }
  report.failover = std::move(failover);
  return report;
}

}  // namespace meshwork::sim
