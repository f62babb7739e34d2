// Failover time per (fault, job); see failover.h.
#include "simulations/sim/failover.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <tuple>

namespace meshwork::sim {
namespace {

constexpr uint64_t read_wait_reported_ms = 1'000;  // a takeover read this slow is named

std::string secs(int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
  return buf;
}

// Whether the run was going on at T: started by T, not ended before it (a crash at T ends the
// runs it kills at T).
bool running_at(const HandlerRun& r, uint64_t t) {
  return r.start_ms <= t && (r.end_ms > t || (r.crashed && r.end_ms == t));
}

// What the first takeover's logged reason says the taker waited for.
std::string takeover_kind(const std::string& detail) {
  if (detail.find("lease expired") != std::string::npos)
    return detail.starts_with("own lease") ? "own lease expired"
                                           : "waited for lease expiry (claimant alive)";
  if (detail.find(" suspect;") != std::string::npos) return "taken over on suspicion";
  return "waited for death detection";
}

const HandlerRun* succeeded_run(const JobLedger& l) {
  for (const HandlerRun& r : l.runs)
    if (r.node == l.succeeded_node && r.attempt == l.succeeded_attempt &&
        r.outcome == JobState::succeeded)
      return &r;
  return nullptr;
}

// Every handler run, by node: what kept a taker's workers busy.
using RunsByNode = std::map<uint32_t, std::vector<const HandlerRun*>>;

RunsByNode runs_by_node(const ReplicaSim& replicas) {
  RunsByNode by;
  for (const auto& [id, l] : replicas.ledger())
    for (const HandlerRun& r : l.runs) by[r.node].push_back(&r);
  return by;
}

// The first takeover read after the fault: when the taker sent it, and the replicas whose core
// never answered it before the takeover (the claimant itself, or one whose fetch was lost).
struct TakeoverRead {
  uint64_t from_ms = never_ms;
  std::string unanswered;
};

TakeoverRead takeover_read(const JobLedger& l, const Fault& f, const JobNote& takeover) {
  TakeoverRead read;
  for (const JobNote& n : l.notes)
    if (n.event == "fetch" && n.node == takeover.node && n.at_ms >= f.at_ms &&
        n.at_ms <= takeover.at_ms)
      read.from_ms = std::min(read.from_ms, n.at_ms);
  const std::string taker = "n" + std::to_string(takeover.node);
  for (const JobNote& n : l.notes) {
    if (n.event != "fetch" || n.node != takeover.node || n.at_ms != read.from_ms) continue;
    const bool answered = std::any_of(l.notes.begin(), l.notes.end(), [&](const JobNote& a) {
      return a.event == "fetch_answered" && "n" + std::to_string(a.node) == n.detail &&
             a.detail == taker && a.at_ms >= read.from_ms && a.at_ms <= takeover.at_ms;
    });
    if (answered) continue;
    const bool claimant = n.detail == "n" + std::to_string(f.node);
    read.unanswered += (read.unanswered.empty() ? "" : ", ") + n.detail +
                       (claimant ? " (the faulted claimant)" : " (its fetch was lost)");
  }
  return read;
}

// "waited … for a free worker" when every worker of the node that ran the job was busy when the
// job became runnable there, or "".
std::string worker_wait(const RunsByNode& runs, const HandlerRun& won, uint64_t runnable_ms,
                        uint32_t workers) {
  const auto it = runs.find(won.node);
  if (it == runs.end() || won.start_ms < runnable_ms + read_wait_reported_ms) return "";
  size_t busy = 0, ahead = 0;
  for (const HandlerRun* r : it->second) {
    if (r == &won) continue;
    busy += r->start_ms <= runnable_ms && r->end_ms > runnable_ms ? 1 : 0;
    ahead += r->start_ms > runnable_ms && r->start_ms <= won.start_ms ? 1 : 0;
  }
  if (busy < workers) return "";
  return "waited " + secs(static_cast<int64_t>(won.start_ms - runnable_ms)) +
         " for a free worker on n" + std::to_string(won.node) + " (" + std::to_string(busy) +
         " handlers running, " + std::to_string(ahead) + " started before it)";
}

// The reason and the phases of one sample (failover.h).
std::string explain(const JobLedger& l, const Fault& f, const HandlerRun& won,
                    const RunsByNode& runs, uint32_t workers) {
  const JobNote* takeover = nullptr;
  size_t refused = 0, crashed = 0, failed = 0, stopped = 0;
  for (const JobNote& n : l.notes) {
    if (n.at_ms < f.at_ms || n.at_ms > won.start_ms) continue;
    if (n.event == "takeover" && takeover == nullptr) takeover = &n;
    if (n.event == "claim_not_confirmed") ++refused;
  }
  for (const HandlerRun& r : l.runs) {
    if (&r == &won || r.start_ms < f.at_ms || r.start_ms > won.start_ms) continue;
    crashed += r.crashed ? 1 : 0;
    failed += !r.crashed && r.outcome == JobState::failed ? 1 : 0;
    stopped += !r.crashed && r.outcome == JobState::cancelled ? 1 : 0;
  }
  const TakeoverRead read = takeover != nullptr ? takeover_read(l, f, *takeover) : TakeoverRead{};
  const uint64_t read_ms = read.from_ms == never_ms ? 0 : takeover->at_ms - read.from_ms;
  const uint64_t runnable_ms = takeover != nullptr ? takeover->at_ms : f.at_ms;
  std::vector<std::string> why;
  why.push_back(takeover != nullptr ? takeover_kind(takeover->detail)
                                    : "no takeover: the run was ended another way");
  if (read_ms >= read_wait_reported_ms)
    why.push_back("takeover read waited " + secs(static_cast<int64_t>(read_ms)) + " for " +
                  (read.unanswered.empty() ? "an answer that was lost" : read.unanswered));
  if (crashed != 0) why.push_back("taker crashed in turn (" + std::to_string(crashed) + ")");
  if (refused != 0) why.push_back("claim refused " + std::to_string(refused) + " times");
  if (failed != 0) why.push_back("a retry failed (" + std::to_string(failed) + ")");
  if (stopped != 0) why.push_back("a later run was stopped (" + std::to_string(stopped) + ")");
  if (crashed + failed + stopped == 0)
    if (std::string w = worker_wait(runs, won, runnable_ms, workers); !w.empty()) why.push_back(w);
  std::string out;
  for (const std::string& w : why) out += (out.empty() ? "" : "; ") + w;
  out += " [";
  if (takeover != nullptr)
    out += "takeover by n" + std::to_string(takeover->node) + " after " +
           secs(static_cast<int64_t>(takeover->at_ms - f.at_ms)) + " (read " +
           secs(static_cast<int64_t>(read_ms)) + "), ";
  return out + "restart " +
         secs(static_cast<int64_t>(won.start_ms) - static_cast<int64_t>(runnable_ms)) + " on n" +
         std::to_string(won.node) + ", record " +
         secs(static_cast<int64_t>(l.succeeded_ms - won.end_ms)) + "]";
}

int64_t percentile(const std::vector<FailoverSample>& ascending, double q) {
  const size_t rank = static_cast<size_t>(q * static_cast<double>(ascending.size()) + 0.999999);
  return ascending[std::clamp<size_t>(rank, 1, ascending.size()) - 1].failover_ms;
}

}  // namespace

std::vector<FailoverSample> failover_samples(const ReplicaSim& replicas,
                                             const std::vector<Fault>& faults, uint64_t seed) {
  std::vector<FailoverSample> samples;
  const RunsByNode runs = runs_by_node(replicas);
  for (const auto& [id, l] : replicas.ledger()) {
    if (l.succeeded_ms == never_ms) continue;
    const HandlerRun* won = succeeded_run(l);
    if (won == nullptr) continue;
    for (const Fault& f : faults) {
      if (won->node == f.node || l.succeeded_ms < f.at_ms) continue;
      const bool caught = std::any_of(l.runs.begin(), l.runs.end(), [&](const HandlerRun& r) {
        return r.node == f.node && running_at(r, f.at_ms);
      });
      if (!caught) continue;
      const int64_t run_ms = static_cast<int64_t>(won->end_ms - won->start_ms);
      samples.push_back(FailoverSample{
          seed, id, f.kind, f.node, f.at_ms,
          static_cast<int64_t>(l.succeeded_ms) - static_cast<int64_t>(f.at_ms) - run_ms,
          explain(l, f, *won, runs, replicas.options().workers)});
    }
  }
  sort_slowest_first(samples);
  return samples;
}

void sort_slowest_first(std::vector<FailoverSample>& samples) {
  std::sort(samples.begin(), samples.end(), [](const FailoverSample& a, const FailoverSample& b) {
    return std::tie(b.failover_ms, a.seed, a.at_ms, a.node, a.id) <
           std::tie(a.failover_ms, b.seed, b.at_ms, b.node, b.id);
  });
}

void print_failover(std::ostream& out, const std::string& label,
                    const std::vector<FailoverSample>& samples, size_t slowest, bool with_seed) {
  out << label << ": " << samples.size() << " jobs caught by a fault and finished elsewhere";
  if (samples.empty()) {
    out << "\n";
    return;
  }
  const std::vector<FailoverSample> ascending(samples.rbegin(), samples.rend());
  out << ", failover beyond run time p50 " << secs(percentile(ascending, 0.5)) << ", p99 "
      << secs(percentile(ascending, 0.99)) << ", max " << secs(samples.front().failover_ms) << "\n";
  for (size_t k = 0; k < std::min(slowest, samples.size()); ++k) {
    const FailoverSample& s = samples[k];
    out << "  " << (with_seed ? "seed " + std::to_string(s.seed) + " " : "") << s.id.substr(0, 8)
        << " " << s.kind << " n" << s.node << " at " << secs(static_cast<int64_t>(s.at_ms)) << ": "
        << secs(s.failover_ms) << ": " << s.reason << "\n";
  }
}

}  // namespace meshwork::sim
