// Broken result signers for tests only (`meshwork node --test-break lie|forge`, hidden): a node
// that lies about its results, or forges its receipts, so that the mesh's defences (redundant
// runs with a result quorum, receipt checks on merge, host reputation) can be exercised with real
// processes (tests/integration/test_redundancy.py, simulations/chaos.sh --faults ...,lie).
//
//   lie    each handler's result is altered (result_lie below), then signed validly by this node:
//          a wrong answer with a good receipt, which only a quorum of other runners can catch.
//   forge  the honest results, their batch's signature with one bit flipped: receipts that no
//          node may accept.
// The node picks its signer once, at start-up (result_signer); the honest path runs no test check.
// Thread-safety: pure functions.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "node/job_runner.h"

namespace meshwork {

// The signer for a --test-break value: `lie` and `forge` break results; anything else (empty,
// skip-takeover) is the honest JobRunner::sign_batch.
[[nodiscard]] JobRunner::Signer result_signer(std::string_view test_break);

// The lie told about `honest`: every top-level integer of an object with its lowest bit flipped
// (pow: a nonce that is not the proof, a wrong hash count); an object without one gets its first
// field wrapped as {"lie": value}; anything else is wrapped the same way. Never equal to `honest`.
[[nodiscard]] nlohmann::json result_lie(const nlohmann::json& honest);

}  // namespace meshwork
