// What clients see of a job: the record rendered as the API's JSON. Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>

#include "dht/job_record.h"
#include "node/receipt_check.h"

namespace meshwork::api {

// `now_ms` (wall clock) decides whether a delayed job shows as `scheduled` (public_state).
// The full view: id, type, state, attempts, result, receipt, error, submitted_by, history, ...
[[nodiscard]] nlohmann::json job_view(const JobRecord& r, uint64_t now_ms);
// The list view: the same without payload, history and per-node results.
[[nodiscard]] nlohmann::json job_summary(const JobRecord& r, uint64_t now_ms);

// GET /v1/jobs/{id}/receipts: the job's redundancy and each node's receipt with its status
// (valid, invalid, unchecked) and why, checked against `keys` (node/receipt_check.h).
[[nodiscard]] nlohmann::json receipts_view(const JobRecord& r, const NodeKeys& keys);

}  // namespace meshwork::api
