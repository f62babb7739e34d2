// The simulated clients; see workload.h.
#include "simulations/sim/workload.h"

#include <nlohmann/json.hpp>

#include "dht/hash.h"

namespace meshwork::sim {
namespace {

constexpr std::string_view signer_key = "meshwork-sim-signer";
constexpr uint64_t cancel_after_ms_max = 3'000;
constexpr uint64_t read_after_ms_max = 10'000;
constexpr uint64_t retry_after_ms_max = 3'000;

std::string signature_for(const std::string& id) {
  const std::string h = blake2b(id, signer_key);
  return h + h;
}

std::string random_bytes(Random& rng, size_t n) {
  std::string s(n, '\0');
  for (char& ch : s) ch = static_cast<char>(rng.below(256));
  return s;
}

}  // namespace

bool sim_signature_ok(const JobRecord& r) {
  return r.envelope.signature == signature_for(r.id);
}

ReceiptCheck sim_receipt_check(const std::string& job_id, const NodeResult& r) {
  // No key: unknown_node when all but the signature holds.
  const ReceiptCheck c = check_result(job_id, r, std::nullopt).check;
  if (c != ReceiptCheck::unknown_node) return c;
  return r.receipt.public_key == "sim" && r.receipt.signature == "sim" ? ReceiptCheck::valid
                                                                       : ReceiptCheck::forged;
}

Workload::Workload(Cluster& cluster, ReplicaSim& replicas, WorkloadOptions o, Random rng)
    : c_(cluster), replicas_(replicas), o_(o), rng_(rng) {
  replicas_.on_reply([this](uint32_t node, const Reply& r) { on_reply(node, r); });
}

size_t Workload::acknowledged() const {
  size_t n = 0;
  for (const ClientJob& j : jobs_) n += j.acknowledged ? 1 : 0;
  return n;
}

void Workload::schedule(uint64_t from_ms, uint64_t to_ms) {
  const std::string client_key = random_bytes(rng_, kPublicKeyBytes);
  const uint64_t span = to_ms > from_ms ? to_ms - from_ms : 1;
  jobs_.resize(o_.jobs);
  for (uint32_t j = 0; j < o_.jobs; ++j) {
    const uint64_t at = from_ms + rng_.below(span + 1);
    ClientJob& job = jobs_[j];
    job.spec.type = "sim";
    job.spec.payload = {{"job", j}};
    job.spec.nonce = std::to_string(rng_.next());
    job.spec.created_at_ms = at;
    nlohmann::json text = {{"type", job.spec.type},
                           {"payload", job.spec.payload},
                           {"nonce", job.spec.nonce},
                           {"created_at", job.spec.created_at_ms}};
    // Both draw from the seed only when asked for, so that runs without them replay as before.
    if (o_.priorities) text["priority"] = job.spec.priority = static_cast<uint32_t>(rng_.below(10));
    if (o_.delayed_fraction > 0 && rng_.chance(o_.delayed_fraction)) {
      // A delay counts from created_at on the nodes' wall clocks (the entry node's, as plain
      // jobs are stamped), not from virtual time.
      text["created_at"] = job.spec.created_at_ms = wall_base_ms + at;
      text["delay_ms"] = job.spec.delay_ms = 1 + rng_.below(o_.delay_ms_max);
    }
    if (o_.redundancy_fraction > 0 && rng_.chance(o_.redundancy_fraction))
      text["redundancy"] = job.spec.redundancy = kSimRedundancy;
    job.envelope = Envelope{text.dump(), client_key, ""};
    job.id = job.envelope.id();
    job.envelope.signature = signature_for(job.id);
    c_.at(at, [this, j] { submit(j); });
  }
}

uint32_t Workload::random_up_node() {
  uint32_t i = static_cast<uint32_t>(rng_.below(c_.size()));
  while (!c_.up(i)) i = (i + 1) % c_.size();
  return i;
}

void Workload::submit(uint32_t j) {
  ClientJob& job = jobs_[j];
  if (job.acknowledged || c_.up_count() == 0) return;
  ++job.tries;
  ++counts_.submits;
  const uint32_t node = random_up_node();
  const uint64_t request = next_request_++;
  requests_[request] = Request{Kind::submit, j};
  JobRecord r = make_record(job.envelope, job.spec, node_name(node), replicas_.now_of(node).wall_ms);
  replicas_.submit(node, request, std::move(r));
  c_.at(c_.now_ms() + o_.reply_timeout_ms, [this, request] { on_timeout(request); });
}

void Workload::on_timeout(uint64_t request) {
  const Request& r = requests_.at(request);
  if (r.answered || jobs_[r.job].acknowledged) return;
  ++counts_.unanswered_retries;
  retry(r.job);
}

void Workload::retry(uint32_t j) {
  if (jobs_[j].tries >= o_.submit_tries_max) return;
  c_.at(c_.now_ms() + rng_.between(o_.retry_ms_min, o_.retry_ms_max), [this, j] { submit(j); });
}

void Workload::on_reply(uint32_t node, const Reply& reply) {
  (void)node;
  const auto it = requests_.find(reply.request);
  if (it == requests_.end() || it->second.answered || reply.items.empty()) return;
  Request& req = it->second;
  req.answered = true;
  ClientJob& job = jobs_[req.job];
  const Status& status = reply.items.front().status;
  switch (req.kind) {
    case Kind::submit:
      if (!status.is_ok()) {
        ++counts_.refused;
        retry(req.job);
      } else if (!job.acknowledged) {
        job.acknowledged = true;
        job.acknowledged_ms = c_.now_ms();
        follow_up(req.job);
      }
      break;
    case Kind::cancel:
      counts_.cancels_ok += status.is_ok() ? 1 : 0;
      if (status.is_ok()) maybe_retry(req.job);
      break;
    case Kind::retry:
      counts_.retries_ok += status.is_ok() ? 1 : 0;
      counts_.retries_conflict += status.code() == Code::conflict ? 1 : 0;
      job.retry_ok = job.retry_ok || status.is_ok();
      break;
    case Kind::read:
      counts_.reads_ok += status.is_ok() ? 1 : 0;
      counts_.reads_not_found += status.code() == Code::not_found ? 1 : 0;
      break;
  }
}

// After an acknowledgement: maybe a cancel, maybe a read, each at a random up node.
void Workload::follow_up(uint32_t j) {
  if (rng_.chance(o_.cancel_fraction)) later(Kind::cancel, j, rng_.below(cancel_after_ms_max + 1));
  if (rng_.chance(o_.read_fraction)) later(Kind::read, j, rng_.below(read_after_ms_max + 1));
}

void Workload::maybe_retry(uint32_t j) {
  // No draw at all without retries: runs without them replay as before.
  if (o_.retry_fraction <= 0 || !rng_.chance(o_.retry_fraction)) return;
  later(Kind::retry, j, rng_.below(retry_after_ms_max + 1));
}

void Workload::later(Kind kind, uint32_t j, uint64_t after_ms) {
  c_.at(c_.now_ms() + after_ms, [this, kind, j] {
    if (c_.up_count() == 0) return;
    const uint64_t request = next_request_++;
    requests_[request] = Request{kind, j};
    const std::string& id = jobs_[j].id;
    switch (kind) {
      case Kind::cancel:
        ++counts_.cancels;
        jobs_[j].cancel_sent = true;
        return replicas_.cancel(random_up_node(), request, id);
      case Kind::read:
        ++counts_.reads;
        return replicas_.read(random_up_node(), request, id);
      case Kind::retry:
        ++counts_.retries;
        return replicas_.retry(random_up_node(), request, id);
      case Kind::submit:
        return;  // submit() sends submissions
    }
  });
}

}  // namespace meshwork::sim
