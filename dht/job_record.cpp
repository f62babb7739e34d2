// The job record and its merge; see job_record.h for the order each part is merged by.
#include "dht/job_record.h"

#include "dht/verdict.h"

#include <algorithm>
#include <cassert>
#include <tuple>

namespace meshwork {
namespace {

constexpr std::array<std::string_view, 6> kStateNames = {"queued",    "running", "retry_wait",
                                                         "cancelled", "failed",  "succeeded"};

// (round, base), then terminal: (1, state, attempt); non-terminal: (0, attempt, state); then the
// tie-breakers.
auto status_key(const JobStatus& s) {
  const bool terminal = is_terminal(s.state);
  const uint32_t first = terminal ? static_cast<uint32_t>(s.state) : s.attempt;
  const uint32_t second = terminal ? s.attempt : static_cast<uint32_t>(s.state);
  return std::make_tuple(s.round, s.base, terminal, first, second, std::cref(s.node), s.at_ms,
                         std::cref(s.error), s.retry_at_ms);
}

auto claim_key(const Claim& c) {
  return std::tie(c.attempt, c.node, c.lease_until_ms);
}

auto result_key(const NodeResult& r) {
  return std::tie(r.attempt, r.outcome, r.at_ms, r.result, r.error, r.receipt.signature,
                  r.receipt.root, r.receipt.index, r.receipt.proof);
}

auto history_key(const HistoryEntry& h) {
  return std::tie(h.at_ms, h.attempt, h.state, h.node, h.reason);
}

bool history_less(const HistoryEntry& a, const HistoryEntry& b) {
  return history_key(a) < history_key(b);
}
bool history_equal(const HistoryEntry& a, const HistoryEntry& b) {
  return history_key(a) == history_key(b);
}

std::map<std::string, NodeResult> merge_results(const std::map<std::string, NodeResult>& a,
                                                const std::map<std::string, NodeResult>& b) {
  std::map<std::string, NodeResult> out = a;
  for (const auto& [node, r] : b) {
    auto [it, inserted] = out.try_emplace(node, r);
    if (!inserted && result_key(it->second) < result_key(r)) it->second = r;
  }
  while (out.size() > kResultsMax) {  // drop the least by (attempt, node)
    auto least = out.begin();
    for (auto it = out.begin(); it != out.end(); ++it)
      if (std::tie(it->second.attempt, it->first) < std::tie(least->second.attempt, least->first))
        least = it;
    out.erase(least);
  }
  return out;
}

std::vector<HistoryEntry> merge_history(const std::vector<HistoryEntry>& a,
                                        const std::vector<HistoryEntry>& b) {
  std::vector<HistoryEntry> out;
  out.reserve(a.size() + b.size());
  std::merge(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out), history_less);
  out.erase(std::unique(out.begin(), out.end(), history_equal), out.end());
  if (out.size() > kHistoryMax) out.erase(out.begin(), out.end() - kHistoryMax);
  return out;
}

}  // namespace

std::string_view state_name(JobState s) {
  return kStateNames[static_cast<size_t>(s)];
}

std::string_view public_state_name(JobState s) {
  return s == JobState::retry_wait ? "queued" : state_name(s);
}

bool is_public_state_name(std::string_view name) {
  if (name == kScheduledStateName) return true;
  auto s = parse_state(name);
  return s && *s != JobState::retry_wait;
}

std::string_view public_state(const JobRecord& r, uint64_t now_ms) {
  if (r.status.state == JobState::queued && now_ms < r.run_after_ms()) return kScheduledStateName;
  return public_state_name(r.status.state);
}

std::optional<JobState> parse_state(std::string_view name) {
  for (size_t i = 0; i < kStateNames.size(); ++i)
    if (kStateNames[i] == name) return static_cast<JobState>(i);
  return std::nullopt;
}

std::string Receipt::message() const {
  constexpr std::string_view kPrefix = "meshwork-receipt-v1|";
  const std::string n = std::to_string(attempt);
  std::string m;
  m.reserve(kPrefix.size() + job_id.size() + node.size() + n.size() + result_hash.size() + 3);
  m.append(kPrefix).append(job_id).append(1, '|').append(node).append(1, '|').append(n);
  return m.append(1, '|').append(result_hash);
}

std::string Receipt::signed_message() const {
  return root.empty() ? message() : root_message(node, root);
}

std::string root_message(const std::string& node, const std::string& root_hex) {
  constexpr std::string_view kPrefix = "meshwork-receipts-v2|";
  std::string m;
  m.reserve(kPrefix.size() + node.size() + 1 + root_hex.size());
  return m.append(kPrefix).append(node).append(1, '|').append(root_hex);
}

const NodeResult* JobRecord::final_result() const {
  if (!is_terminal(status.state)) return nullptr;
  if (redundancy > 1 && status.state != JobState::cancelled) {
    const Verdict v = final_verdict(*this);
    if (v.kind != Verdict::Kind::decided || v.agreeing.empty()) return nullptr;
    return &results.at(v.agreeing.front());
  }
  auto it = results.find(status.node);
  return it == results.end() ? nullptr : &it->second;
}

void JobRecord::add_history(JobState state, std::string node, uint32_t attempt, uint64_t at_ms,
                            std::string reason) {
  if (reason.size() > kReasonBytesMax) reason.resize(kReasonBytesMax);
  HistoryEntry e{state, std::move(node), attempt, at_ms, std::move(reason)};
  history = merge_history(history, {e});
}

JobRecord make_record(Envelope env, const JobSpec& spec, std::string entry_node, uint64_t now_ms) {
  JobRecord r;
  r.id = env.id();
  r.envelope = std::move(env);
  r.type = spec.type;
  r.max_attempts = spec.max_attempts;
  r.timeout_ms = spec.timeout_ms;
  r.created_at_ms = spec.created_at_ms;
  r.priority = spec.priority;
  r.delay_ms = spec.delay_ms;
  r.redundancy = spec.redundancy;
  r.status = JobStatus{JobState::queued, 0, entry_node, now_ms, {}, 0};
  r.add_history(JobState::queued, std::move(entry_node), 0, now_ms, kSubmittedReason);
  r.updated_at_ms = now_ms;
  return r;
}

std::optional<JobRecord> retried(const JobRecord& cur, const std::string& node, uint64_t now_ms) {
  if (cur.status.state != JobState::failed && cur.status.state != JobState::cancelled)
    return std::nullopt;
  if (cur.status.round == UINT32_MAX) return std::nullopt;
  JobRecord next = cur;
  next.status = JobStatus{JobState::queued, cur.status.attempt, node,
                          now_ms,           {},                 0,
                          cur.status.round + 1, cur.status.attempt};
  next.add_history(JobState::queued, node, cur.status.attempt, now_ms, kRetriedReason);
  next.updated_at_ms = std::max(next.updated_at_ms, now_ms);  // a max register: never back
  return next;
}

bool status_before(const JobStatus& a, const JobStatus& b) {
  return status_key(a) < status_key(b);
}

bool submitted_before(const JobRecord& held, const std::vector<HistoryEntry>& incoming) {
  auto submission = [](const HistoryEntry& e) {
    return e.state == JobState::queued && e.attempt == 0 && e.reason == kSubmittedReason;
  };
  for (const HistoryEntry& h : held.history) {
    if (!submission(h)) continue;
    const bool shared = std::any_of(incoming.begin(), incoming.end(), [&](const HistoryEntry& e) {
      return submission(e) && e.node == h.node && e.at_ms == h.at_ms;
    });
    if (!shared) return true;
  }
  return false;
}

bool envelope_before(const Envelope& a, const Envelope& b) {
  const bool a_batched = a.batched(), b_batched = b.batched();
  return std::tie(a_batched, a.signature, a.root, a.index, a.proof) <
         std::tie(b_batched, b.signature, b.root, b.index, b.proof);
}

JobRecord merge(const JobRecord& a, const JobRecord& b) {
  assert(a.id == b.id);
  JobRecord out = a;
  if (envelope_before(b.envelope, a.envelope)) out.envelope = b.envelope;
  if (status_key(a.status) < status_key(b.status)) out.status = b.status;
  if (claim_key(a.claim) < claim_key(b.claim)) out.claim = b.claim;
  out.cancel_round = std::max(a.cancel_round, b.cancel_round);
  out.results = merge_results(a.results, b.results);
  out.history = merge_history(a.history, b.history);
  out.updated_at_ms = std::max(a.updated_at_ms, b.updated_at_ms);
  return out;
}

bool same_state(const JobRecord& a, const JobRecord& b) {
  const auto same_envelope = [](const Envelope& x, const Envelope& y) {
    return x.signature == y.signature && x.root == y.root && x.index == y.index &&
           x.proof == y.proof;  // the text and key follow from the id
  };
  if (a.id != b.id || !same_envelope(a.envelope, b.envelope) ||
      status_key(a.status) != status_key(b.status) || claim_key(a.claim) != claim_key(b.claim) ||
      a.cancel_round != b.cancel_round || a.updated_at_ms != b.updated_at_ms ||
      a.results.size() != b.results.size() || a.history.size() != b.history.size())
    return false;
  for (auto ia = a.results.begin(), ib = b.results.begin(); ia != a.results.end(); ++ia, ++ib)
    if (ia->first != ib->first || result_key(ia->second) != result_key(ib->second)) return false;
  for (size_t i = 0; i < a.history.size(); ++i)
    if (!history_equal(a.history[i], b.history[i])) return false;
  return true;
}

}  // namespace meshwork
