// The verdict of a redundant job's attempt; see verdict.h.
#include "dht/verdict.h"

#include <map>
#include <utility>

namespace meshwork {

namespace {

// The verdict over the results `counts` accepts (succeeded or failed ones only).
template <typename Counts>
Verdict verdict_over(const JobRecord& r, Counts counts) {
  Verdict v;
  const uint32_t k = std::max<uint32_t>(r.redundancy, 1);
  v.majority = result_majority(k);
  std::map<std::pair<JobState, std::string>, std::vector<std::string>> groups;
  for (const auto& [node, res] : r.results) {
    if (!counts(res)) continue;
    if (res.outcome != JobState::succeeded && res.outcome != JobState::failed) continue;
    groups[{res.outcome, res.receipt.result_hash}].push_back(node);
    v.results++;
  }
  auto top = groups.end();
  size_t second = 0;
  for (auto it = groups.begin(); it != groups.end(); ++it) {
    const size_t n = it->second.size();
    if (top == groups.end() || n > top->second.size()) {
      if (top != groups.end()) second = top->second.size();
      top = it;
    } else {
      second = std::max(second, n);
    }
  }
  const size_t best = top == groups.end() ? 0 : top->second.size();
  if (best >= v.majority && best > second) {
    v.kind = Verdict::Kind::decided;
    v.outcome = top->first.first;
    v.result_hash = top->first.second;
    v.agreeing = top->second;
    for (auto it = groups.begin(); it != groups.end(); ++it)
      if (it != top) v.dissenting.insert(v.dissenting.end(), it->second.begin(), it->second.end());
    std::sort(v.dissenting.begin(), v.dissenting.end());
    return v;
  }
  const size_t missing = v.results < k ? k - v.results : 0;
  if (missing == 0 || best + missing < v.majority) v.kind = Verdict::Kind::disagree;
  return v;
}

}  // namespace

Verdict result_verdict(const JobRecord& r, uint32_t attempt) {
  return verdict_over(r, [attempt](const NodeResult& res) { return res.attempt == attempt; });
}

Verdict final_verdict(const JobRecord& r) {
  Verdict v = result_verdict(r, r.status.attempt);
  if (v.kind == Verdict::Kind::decided || r.status.state != JobState::succeeded) return v;
  Verdict any = verdict_over(
      r, [](const NodeResult& res) { return res.outcome == JobState::succeeded; });
  return any.kind == Verdict::Kind::decided ? any : v;
}

}  // namespace meshwork
