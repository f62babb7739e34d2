// What clients see of a job: the record rendered as the API's JSON. Thread-safety: pure functions.
//
// The answers on the request path (a job's view with its placement, a batch's items) have two
// forms that write the same bytes: a nlohmann document (job_view, placement_view,
// batch_answer_view), and a direct writer (append_job_view, append_batch_answer: api/json_text.h)
// that the routes use; tests/api/job_view_writer_test.cpp holds them equal.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dht/job_record.h"
#include "dht/replica.h"
#include "node/receipt_check.h"

namespace meshwork::api {

// `now_ms` (wall clock) decides whether a delayed job shows as `scheduled` (public_state).
// The full view: id, type, state, attempts, result, receipt, error, submitted_by, history, ...
[[nodiscard]] nlohmann::json job_view(const JobRecord& r, uint64_t now_ms);
// The list view: the same without payload, history and per-node results.
[[nodiscard]] nlohmann::json job_summary(const JobRecord& r, uint64_t now_ms);

// {"owner", "replicas"} of a job whose replicas are `replicas` (owner first; none: owner null).
[[nodiscard]] nlohmann::json placement_view(const std::vector<std::string>& replicas);
// Appends dump_json of job_view(r, now_ms) updated with placement_view(replicas).
void append_job_view(std::string& out, const JobRecord& r, uint64_t now_ms,
                     const std::vector<std::string>& replicas);

// POST /v1/jobs/batch: the HTTP status of one item's answer (202 new, 200 known, else its error).
[[nodiscard]] int batch_item_status(const ItemResult& r);
// POST /v1/jobs/batch's answer: {"accepted", "duplicates", "rejected", "results"}, the results one
// per item: its status and detail, or its status, id, state and placement (replicas[i]); with
// "retry_after" when retry_after_s[i] > 0 (refused by the rate limit).
// Precondition (asserted): the three vectors have one entry per item.
[[nodiscard]] nlohmann::json batch_answer_view(
    const std::vector<ItemResult>& items, const std::vector<uint64_t>& retry_after_s,
    const std::vector<std::vector<std::string>>& replicas, uint64_t now_ms);
// Appends dump_json of batch_answer_view(...).
void append_batch_answer(std::string& out, const std::vector<ItemResult>& items,
                         const std::vector<uint64_t>& retry_after_s,
                         const std::vector<std::vector<std::string>>& replicas, uint64_t now_ms);

// GET /v1/jobs/{id}/receipts: the job's redundancy and each node's receipt with its status
// (valid, invalid, unchecked) and why, checked against `keys` (node/receipt_check.h).
[[nodiscard]] nlohmann::json receipts_view(const JobRecord& r, const NodeKeys& keys);

}  // namespace meshwork::api
