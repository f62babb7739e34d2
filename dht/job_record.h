// The job record and its merge: the one data structure every node stores and ships.
//
// Replication, hinted handoff, read repair, anti-entropy and local state changes all reduce to
// "merge this record into what you have". `merge` is a join of a semilattice, so it is commutative,
// associative and idempotent, and copies converge whatever the order or repetition of delivery.
//
// The record is a product of independently merged parts:
//   envelope            the job text and key are equal in every copy (same id ⇒ same job text and
//                       key); only how they were signed may differ — alone, or in a batch
//                       (dht/envelope.h) — when one job was submitted in both forms. A min
//                       register by envelope_before, so copies converge on one envelope and
//                       anti-entropy stops seeing them differ; each form verifies on its own
//   status              a register ordered by status_key(): a higher retry round beats everything
//                       of a lower one (a retry starts the job afresh); within a round terminal
//                       beats non-terminal; among terminal states succeeded > failed > cancelled,
//                       then higher attempt; among non-terminal states higher attempt, then phase
//                       queued < running < retry_wait; remaining ties break on node id, time and
//                       error text (a total order)
//   claim               (attempt, node, lease) ordered lexicographically; a renewal raises the
//                       lease. Attempts keep counting across retry rounds, so claims need no round.
//   cancel_round        max register: 1 + the round a cancel was requested in (0: never). The
//                       cancel holds while it is newer than the status's round
//                       (cancel_requested()); a retry, which raises the round, ends it. So a retry
//                       and a concurrent cancel of the round it retries order as: the retry wins.
//   results             per producing node, the greatest (attempt, outcome, ...) — kept per
//                       node so a later quorum-of-receipts check can compare what different
//                       nodes produced; at most kResultsMax entries, the greatest by
//                       (attempt, node)
//   history             set union, keeping the kHistoryMax greatest entries by (at, attempt, ...)
//   updated_at_ms       max
// Bounded top-K of a union and lexicographic max are both semilattice joins, so the product is one.
//
// Thread-safety: a value type.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "dht/envelope.h"
#include "dht/result.h"

namespace meshwork {

inline constexpr size_t kHistoryMax = 32;
inline constexpr size_t kResultsMax = 8;
static_assert(kRedundancyMax <= kResultsMax, "every runner of an attempt keeps its result");
inline constexpr size_t kReasonBytesMax = 512;
inline constexpr const char* kSubmittedReason = "submitted";  // make_record's history entry
inline constexpr const char* kRetriedReason = "retried";      // retried()'s history entry

// Internal phase; retry_wait is shown to clients as "queued" with a `retry_at`, and a queued job
// whose delay has not run out as "scheduled" (public_state).
enum class JobState : uint8_t { queued, running, retry_wait, cancelled, failed, succeeded };

[[nodiscard]] std::string_view public_state_name(JobState s);  // queued|running|succeeded|...
[[nodiscard]] std::string_view state_name(JobState s);         // internal name, retry_wait included
[[nodiscard]] std::optional<JobState> parse_state(std::string_view name);
[[nodiscard]] inline bool is_terminal(JobState s) {
  return s >= JobState::cancelled;
}
// The names clients see and filter by: public_state_name's, and "scheduled".
inline constexpr const char* kScheduledStateName = "scheduled";
[[nodiscard]] bool is_public_state_name(std::string_view name);

struct JobStatus {
  JobState state = JobState::queued;
  uint32_t attempt = 0;      // attempts started so far (0 while first queued)
  std::string node;          // who wrote this status
  uint64_t at_ms = 0;        // wall clock when written
  std::string error;         // last error (failed, retry_wait, cancelled)
  uint64_t retry_at_ms = 0;  // retry_wait: when the next attempt may start
  // Retry rounds (POST /v1/jobs/{id}/retry): round 0 is the submission; each retry of a failed or
  // cancelled job starts round + 1 with base = the attempts used so far, so that the new round
  // gets max_attempts attempts of its own (attempt numbers keep growing across rounds).
  uint32_t round = 0;
  uint32_t base = 0;

  // The status that follows this one in the same round (every transition but a retry).
  [[nodiscard]] JobStatus next(JobState s, uint32_t attempt_, std::string node_, uint64_t at,
                               std::string error_, uint64_t retry_at) const {
    return JobStatus{s, attempt_, std::move(node_), at, std::move(error_), retry_at, round, base};
  }
};

struct Claim {
  uint32_t attempt = 0;
  std::string node;
  uint64_t lease_until_ms = 0;  // wall clock; the claimant renews it while it runs
};

struct Receipt {
  std::string job_id;
  std::string node;
  uint32_t attempt = 0;
  std::string result_hash;  // hex BLAKE2b-256 of the result text (or of the error text)
  std::string public_key;   // the node's key, base64
  std::string signature;    // base64 Ed25519 over signed_message()
  // A receipt signed in a batch (dht/merkle.h): the batch's Merkle root (hex), this receipt's leaf
  // index and the sibling hashes (hex, from the bottom) that lead from its leaf to the root. An
  // empty root is the form from before batches: the signature is then over message() itself.
  std::string root{};
  uint32_t index = 0;
  std::vector<std::string> proof{};

  // What the receipt vouches for: "meshwork-receipt-v1|job|node|attempt|result_hash" (a leaf of
  // the batch's tree when batched).
  [[nodiscard]] std::string message() const;
  // What the signature is over: message() without a root, else root_message(node, root).
  [[nodiscard]] std::string signed_message() const;
};

// The text a node signs for a batch of receipts: "meshwork-receipts-v2|<node>|<root hex>".
[[nodiscard]] std::string root_message(const std::string& node, const std::string& root_hex);

struct NodeResult {
  uint32_t attempt = 0;
  JobState outcome = JobState::failed;  // succeeded | failed | cancelled
  std::string result;                   // JSON text when succeeded
  std::string error;
  uint64_t at_ms = 0;
  Receipt receipt;
};

struct HistoryEntry {
  JobState state = JobState::queued;
  std::string node;
  uint32_t attempt = 0;
  uint64_t at_ms = 0;
  std::string reason;
};

struct JobRecord {
  std::string id;
  Envelope envelope;
  // Derived from the envelope when the record is built or decoded; not merged.
  std::string type;
  uint32_t max_attempts = kMaxAttemptsDefault;
  uint64_t timeout_ms = kTimeoutMsDefault;
  uint64_t created_at_ms = 0;
  uint32_t priority = kPriorityDefault;  // 0–9, higher runs first
  uint64_t delay_ms = 0;
  uint32_t redundancy = kRedundancyDefault;  // runners of each attempt (dht/verdict.h)

  JobStatus status;
  Claim claim;
  uint32_t cancel_round = 0;                  // 1 + the round a cancel was requested in; 0: never
  std::map<std::string, NodeResult> results;  // by producing node
  std::vector<HistoryEntry> history;          // sorted ascending, at most kHistoryMax
  uint64_t updated_at_ms = 0;

  // A cancel was requested in the current round (a retry ends an earlier round's cancel).
  [[nodiscard]] bool cancel_requested() const { return cancel_round > status.round; }
  // Attempts this round may use before the job fails: max_attempts after the round's base.
  [[nodiscard]] uint32_t attempt_limit() const { return status.base + max_attempts; }
  // The job's result once terminal: for redundancy 1, the result of the node whose status is the
  // winning terminal state; for redundancy k > 1, the result of a node in the majority of the
  // decided verdict of the final attempt (dht/verdict.h), never simply the claimant's (it may be
  // the liar); nullptr when there is none (not terminal, or no majority).
  [[nodiscard]] const NodeResult* final_result() const;
  // Wall ms before which no attempt starts: created_at + delay_ms for a delayed job, else 0. Both
  // are in the signed spec, so every replica (an owner that takes over included) reads the same.
  [[nodiscard]] uint64_t run_after_ms() const {
    return delay_ms > 0 ? created_at_ms + delay_ms : 0;
  }
  void add_history(JobState state, std::string node, uint32_t attempt, uint64_t at_ms,
                   std::string reason);
};

// The state a client sees of `r` at wall time `now_ms`: public_state_name(r.status.state), except
// "scheduled" for a queued job that is not yet due (now_ms < r.run_after_ms()). A view only: the
// record itself stays queued, so scheduling needs nothing new in the merge.
[[nodiscard]] std::string_view public_state(const JobRecord& r, uint64_t now_ms);

// A fresh queued record for a verified envelope and its parsed spec.
[[nodiscard]] JobRecord make_record(Envelope env, const JobSpec& spec, std::string entry_node,
                                    uint64_t now_ms);

// `cur` retried by `node` at `now_ms`: queued again in round + 1, with a fresh max_attempts
// counted from the attempts used so far, and the history entry "retried". nullopt unless `cur` is
// failed or cancelled (a retry of anything else is a conflict). Merged into the copies it wins
// over all of round `cur.status.round` (status_key) and ends its cancel (cancel_requested()).
[[nodiscard]] std::optional<JobRecord> retried(const JobRecord& cur, const std::string& node,
                                               uint64_t now_ms);

// True when `held` records a submission of the job that the history of the incoming copy
// (`incoming`) does not: a submission is the
// "submitted" history entry make_record writes (entry node, time). A replica that got a copy of
// the very same submission first (say, the owner's claim outran the entry node's write) does not
// count, so a new job is not mistaken for a resubmitted one. (A record whose bounded history has
// dropped its submission entries reads as not submitted before: the answer is then 202, not 200.)
[[nodiscard]] bool submitted_before(const JobRecord& held,
                                    const std::vector<HistoryEntry>& incoming);

// The order of the envelope register: an envelope signed alone before one signed in a batch (it
// proves itself without a proof), then by signature, root, index and proof. A total order over
// the envelopes of one job, so the lesser of two is a semilattice join.
[[nodiscard]] bool envelope_before(const Envelope& a, const Envelope& b);

// The status register's order (status_key in job_record.cpp): true when `b` beats `a`.
[[nodiscard]] bool status_before(const JobStatus& a, const JobStatus& b);

// The join. Precondition: a.id == b.id (asserted).
[[nodiscard]] JobRecord merge(const JobRecord& a, const JobRecord& b);

// True when `a` and `b` carry the same state (all merged parts equal).
[[nodiscard]] bool same_state(const JobRecord& a, const JobRecord& b);

// Storage and `replicate` form: binary, versioned (the layout is in record_codec.cpp and
// docs/architecture.md). decode_record takes that form or the JSON one (records stored before the
// binary form, and what fetch and older nodes send), tells them apart by the first byte, checks
// every field, its bounds and the envelope's signature-free invariants (id matches envelope); it
// never throws, whatever the bytes.
[[nodiscard]] std::string encode_record(const JobRecord& r);
[[nodiscard]] Result<JobRecord> decode_record(std::string_view bytes);
// Whether bytes that decode_record accepted are exactly encode_record of the record they decode
// to, without encoding it: true for the current binary form, whose decoder reads every field back
// as the encoder wrote it, in order, with nothing left over; false for the older binary forms and
// the JSON form, which encode_record writes as the current one. Precondition: decode_record(bytes)
// is ok (else the answer means nothing).
[[nodiscard]] bool is_encode_record_form(std::string_view decoded_bytes);
// JSON form: the `fetch` and `list` peer answers, and records stored before the binary form.
[[nodiscard]] nlohmann::json record_to_json(const JobRecord& r);
// A receipt as both JSON forms show it (records and job views): its six fields, and root, index
// and proof when it was signed in a batch.
[[nodiscard]] nlohmann::json receipt_to_json(const Receipt& r);
[[nodiscard]] Result<JobRecord> record_from_json(const nlohmann::json& j);

namespace detail {
// The spec fields decode_record derives from r.envelope.job (type, max_attempts, timeout_ms,
// created_at_ms, priority, delay_ms, redundancy), read by a SAX pass where it can, or (`dom`) by
// parsing the whole document, as before the SAX pass; throws nlohmann::json::exception for a text
// without them. Both ways give the same fields or the same exception (a differential test).
void fill_spec_fields(JobRecord& r, bool dom);
}  // namespace detail

}  // namespace meshwork
