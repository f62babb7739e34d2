// The node's scrape-time metrics; see node_metrics.h.
#include "api/node_metrics.h"

#include <array>

namespace meshwork::api {
namespace {

using metrics::Label;
using metrics::Type;

void counter(metrics::Writer& w, std::string_view name, std::string_view help, uint64_t value) {
  w.single(name, help, Type::counter, value);
}

// A counter family with one label and a sample per value.
void labelled(metrics::Writer& w, std::string_view name, std::string_view help, Type type,
              std::string_view label,
              std::span<const std::pair<std::string_view, uint64_t>> values) {
  w.family(name, help, type);
  for (const auto& [value, n] : values) {
    const Label l[] = {{label, value}};
    w.sample(l, n);
  }
}

}  // namespace

void write_job_metrics(metrics::Writer& w, const Store::StateCounts& jobs,
                       const ReplicaSnapshot& core) {
  w.family("meshwork_jobs", "Jobs this node holds a copy of, by state.", Type::gauge);
  for (size_t i = 0; i < jobs.size(); ++i) {
    const Label l[] = {{"state", state_name(JobState(i))}};
    w.sample(l, jobs[i]);
  }
  w.single("meshwork_hints_pending", "Hints this node holds for replicas that are away.",
           Type::gauge, core.hints);
  const ReplicaStats& s = core.stats;
  counter(w, "meshwork_attempts_total", "Attempts this node started to run a job.",
          s.attempts_started);
  counter(w, "meshwork_retries_total", "Jobs this node put back to run again after a failure.",
          s.retried);
  counter(w, "meshwork_retries_requested_total",
          "Failed or cancelled jobs this node queued again in a new round on a client's retry "
          "(POST /v1/jobs/{id}/retry) that reached its write quorum.",
          s.retries_requested);
  counter(w, "meshwork_takeovers_total",
          "Jobs this node took over from an owner declared dead or whose lease ran out.",
          s.takeovers);
  counter(
      w, "meshwork_quorum_failures_total",
      "Submitted jobs that did not reach their write quorum (W replicas) in time: answered 503.",
      s.quorum_failures);
  counter(w, "meshwork_hints_stored_total",
          "Hints this node stored for a replica that could not be reached.", s.hints_stored);
  counter(w, "meshwork_hints_replayed_total", "Hints this node replayed to a returning replica.",
          s.hints_replayed);
  counter(w, "meshwork_anti_entropy_rounds_total",
          "Anti-entropy rounds (digest exchanges with a replica) this node started.",
          s.anti_entropy_rounds);
  counter(w, "meshwork_jobs_expired_total",
          "Finished jobs this node removed after --retain-s (each leaves a tombstone).", s.expired);
  w.single("meshwork_tombstones", "Tombstones of removed jobs this node keeps (--tombstone-s).",
           Type::gauge, core.tombstones);
  write_receipt_metrics(w, core);
}

void write_receipt_metrics(metrics::Writer& w, const ReplicaSnapshot& core) {
  const ReplicaStats& s = core.stats;
  const std::pair<std::string_view, uint64_t> refused[] = {
      {"forged", s.receipts_forged},
      {"too_large", s.receipts_too_large},
      {"unknown_node", s.receipts_unknown_node}};
  labelled(w, "meshwork_receipts_refused_total",
           "Peer records refused for a receipt: forged (bad signature or hash), too_large, "
           "unknown_node (no key known for its node).",
           Type::counter, "reason", refused);
  if (!core.reputation) return;
  w.family("meshwork_host_score",
           "Each host's score on this node (dht/reputation.h): the estimated chance its next "
           "answer is honest; trusted at or above the threshold. The first hosts by name, at most "
           "the series limit.",
           Type::gauge);
  size_t n = 0;
  for (const auto& [host, counts] : core.reputation->hosts()) {
    if (n++ == metrics::kSeriesMax) break;
    const Label l[] = {{"host", host}};
    w.sample(l, counts.score());
  }
}

void write_change_refusals(metrics::Writer& w, uint64_t cancels_refused,
                           uint64_t retries_refused) {
  counter(w, "meshwork_cancels_refused_total",
          "Cancels refused for their signature or their signer (400, 401, 403).", cancels_refused);
  counter(w, "meshwork_retries_refused_total",
          "Retries refused for their signature or their signer (400, 401, 403).", retries_refused);
}

void write_gossip_metrics(metrics::Writer& w, const gossip::Stats& stats,
                          std::span<const gossip::MemberInfo> members) {
  std::array<uint64_t, 4> by_state{};  // indexed by gossip::MemberState
  for (const gossip::MemberInfo& m : members) by_state[static_cast<size_t>(m.state)]++;
  using S = gossip::MemberState;
  const std::pair<std::string_view, uint64_t> states[] = {{"alive", by_state[size_t(S::alive)]},
                                                          {"suspect", by_state[size_t(S::suspect)]},
                                                          {"dead", by_state[size_t(S::dead)]},
                                                          {"left", by_state[size_t(S::left)]}};
  labelled(w, "meshwork_members", "Members of the mesh as this node sees them (itself included).",
           Type::gauge, "state", states);
  const std::pair<std::string_view, uint64_t> packets[] = {{"received", stats.packets_received},
                                                           {"sent", stats.packets_sent}};
  labelled(w, "meshwork_gossip_packets_total", "Gossip (UDP) packets.", Type::counter, "direction",
           packets);
  const std::pair<std::string_view, uint64_t> bytes[] = {{"received", stats.bytes_received},
                                                         {"sent", stats.bytes_sent}};
  labelled(w, "meshwork_gossip_bytes_total", "Gossip (UDP) bytes, sealing included.", Type::counter,
           "direction", bytes);
  const std::pair<std::string_view, uint64_t> dropped[] = {
      {"malformed", stats.dropped_malformed},
      {"oversize", stats.dropped_oversize},
      {"unsealable", stats.dropped_unsealable}};
  labelled(w, "meshwork_gossip_packets_dropped_total",
           "Gossip packets dropped unread: unsealable (another cluster key), malformed, oversize.",
           Type::counter, "reason", dropped);
}

}  // namespace meshwork::api
