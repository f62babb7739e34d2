// The node's metrics read at scrape time (docs/operations.md, "Metrics"): pure functions that turn
// snapshots the node takes — the store's job counts, the replica core's counters, the gossip
// membership and its counters — into families of the exposition (api/metrics.h).
//
//   meshwork_jobs{state}                          gauge: jobs this node holds a copy of
//   meshwork_hints_pending                        gauge: hints held for members that are away
//   meshwork_attempts_total, meshwork_retries_total, meshwork_takeovers_total,
//   meshwork_quorum_failures_total, meshwork_hints_stored_total,
//   meshwork_hints_replayed_total, meshwork_anti_entropy_rounds_total,
//   meshwork_retries_requested_total                                               counters
//   meshwork_cancels_refused_total, meshwork_retries_refused_total   counters: the API's refusals
//   meshwork_receipts_refused_total{reason}       counter: forged, too_large, unknown_node
//   meshwork_host_score{host}                     gauge: each host's score (at most kSeriesMax)
//   meshwork_members{state}                       gauge: alive, suspect, dead, left (self included)
//   meshwork_gossip_packets_total{direction}      counter: sent, received
//   meshwork_gossip_bytes_total{direction}        counter: sent, received
//   meshwork_gossip_packets_dropped_total{reason} counter: unsealable, malformed, oversize
//
// Thread-safety: plain functions of their arguments.
#pragma once

#include <span>

#include "api/metrics.h"
#include "gossip/membership.h"
#include "node/replica_driver.h"
#include "node/store.h"

namespace meshwork::api {

void write_job_metrics(metrics::Writer& w, const Store::StateCounts& jobs,
                       const ReplicaSnapshot& core);
// The receipt refusals and host scores (part of write_job_metrics).
void write_receipt_metrics(metrics::Writer& w, const ReplicaSnapshot& core);
// Cancels and retries the API refused for their signature or signer (ApiServer's counters).
void write_change_refusals(metrics::Writer& w, uint64_t cancels_refused, uint64_t retries_refused);
void write_gossip_metrics(metrics::Writer& w, const gossip::Stats& stats,
                          std::span<const gossip::MemberInfo> members);

}  // namespace meshwork::api
