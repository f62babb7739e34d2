// Running the handlers the core starts; see job_runner.h.
#include "node/job_runner.h"

#include "dht/merkle.h"
#include "dht/receipt.h"
#include "node/clock.h"
#include "node/log.h"

namespace meshwork {
namespace {

JobState outcome_state(HandlerOutcome::Kind k) {
  switch (k) {
    case HandlerOutcome::Kind::succeeded:
      return JobState::succeeded;
    case HandlerOutcome::Kind::cancelled:
      return JobState::cancelled;
    case HandlerOutcome::Kind::failed:
      break;
  }
  return JobState::failed;
}

}  // namespace

JobRunner::JobRunner(std::string node_name, size_t workers, Done done, EnvelopeCheck check)
    : node_(std::move(node_name)),
      done_(std::move(done)),
      check_(std::move(check)),
      executor_(workers) {
  executor_.start();
}

JobRunner::~JobRunner() {
  shutdown();
}

void JobRunner::start(const Start& s) {
  auto running = std::make_shared<Running>();
  running->attempt = s.attempt;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    running_[s.id] = running;
  }
  if (s.record->cancel_requested()) running->token.cancel();
  log_event(spdlog::level::debug, "job_started", s.id, "attempt " + std::to_string(s.attempt));
  if (!executor_.post(
          [this, rec = s.record, attempt = s.attempt, running] { run(rec, attempt, running); })) {
    std::lock_guard lock(mu_);
    running_.erase(s.id);
  }
}

void JobRunner::stop(const Stop& s) {
  std::lock_guard lock(mu_);
  auto it = running_.find(s.id);
  if (it == running_.end() || it->second->attempt != s.attempt) return;
  if (s.why == Stop::Why::timed_out) it->second->timed_out = true;
  it->second->token.cancel();
}

void JobRunner::shutdown() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& [id, r] : running_) r->token.cancel();
  }
  executor_.stop();
}

void JobRunner::run(const std::shared_ptr<const JobRecord>& rec, uint32_t attempt,
                    const std::shared_ptr<Running>& running) {
  HandlerOutcome out = check_ && !check_(*rec)
                           ? HandlerOutcome::failure("the job's envelope does not verify on " + node_)
                           : execute(*rec, attempt, running->token);
  if (running->timed_out && out.kind != HandlerOutcome::Kind::succeeded)
    out = HandlerOutcome::failure("timed out after " + std::to_string(rec->timeout_ms) + " ms");
  {
    std::lock_guard lock(mu_);
    if (auto it = running_.find(rec->id); it != running_.end() && it->second == running)
      running_.erase(it);
    if (stopping_) return;  // the attempt stays running on disk; the next boot recovers it
  }
  Outcome o;
  o.id = rec->id;
  o.attempt = attempt;
  o.result = result_of(node_, rec->id, attempt, out, wall_ms());
  done_(std::move(o));
}

HandlerOutcome JobRunner::execute(const JobRecord& rec, uint32_t attempt, CancelToken& token) {
  const Handler* handler = find_handler(rec.type);
  if (handler == nullptr) return HandlerOutcome::failure("no handler for type " + rec.type);
  auto spec = nlohmann::json::parse(rec.envelope.job, nullptr, false);
  if (spec.is_discarded() || !spec.is_object())
    return HandlerOutcome::failure("the signed job text is not a JSON object");
  const nlohmann::json payload = spec.value("payload", nlohmann::json::object());
  try {
    return handler->run(JobContext{rec.id, payload, attempt}, token);
  } catch (const std::exception& e) {
    return HandlerOutcome::failure(std::string("handler threw: ") + e.what());
  }
}

NodeResult JobRunner::result_of(const std::string& node, const std::string& id,
                                uint32_t attempt, const HandlerOutcome& outcome, uint64_t now_ms) {
  NodeResult r;
  r.attempt = attempt;
  r.outcome = outcome_state(outcome.kind);
  r.result = outcome.kind == HandlerOutcome::Kind::succeeded ? outcome.result.dump() : "";
  r.error = outcome.error;
  if (r.result.size() + r.error.size() > kResultBytesMax) {  // every replica would refuse it
    r.outcome = JobState::failed;
    r.result.clear();
    r.error = "the result is larger than " + std::to_string(kResultBytesMax) + " bytes";
  }
  r.at_ms = now_ms;
  r.receipt.job_id = id;
  r.receipt.node = node;
  r.receipt.attempt = attempt;
  r.receipt.result_hash = blake2b_hex(r.outcome == JobState::succeeded ? r.result : r.error);
  return r;
}

void JobRunner::sign_batch(const Identity& key, std::vector<Outcome>& batch) {
  std::vector<std::string> leaves;
  leaves.reserve(batch.size());
  for (size_t i = 0; i < batch.size(); ++i)
    leaves.push_back(merkle_leaf(static_cast<uint32_t>(i), batch[i].result.receipt.message()));
  MerkleTree tree = merkle_tree(leaves);  // requires 1 to kReceiptBatchMax leaves
  const std::string root = to_hex(tree.root);
  const std::string public_key = key.public_key_b64();
  std::string signature;
  for (size_t i = 0; i < batch.size(); ++i) {
    Receipt& rc = batch[i].result.receipt;
    if (signature.empty()) signature = to_base64(key.sign(root_message(rc.node, root)));
    rc.public_key = public_key;
    rc.root = root;
    rc.index = static_cast<uint32_t>(i);
    rc.proof.clear();
    for (const std::string& sibling : tree.proofs[i]) rc.proof.push_back(to_hex(sibling));
    rc.signature = signature;
  }
}

NodeResult JobRunner::sign_result(const Identity& key, const std::string& node,
                                  const std::string& id, uint32_t attempt,
                                  const HandlerOutcome& outcome, uint64_t now_ms) {
  std::vector<Outcome> one{Outcome{id, attempt, result_of(node, id, attempt, outcome, now_ms)}};
  sign_batch(key, one);
  return std::move(one.front().result);
}

}  // namespace meshwork
