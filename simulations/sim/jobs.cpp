// Job records over the simulated network; see jobs.h.
#include "simulations/sim/jobs.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "dht/ring.h"

namespace meshwork::sim {
namespace {

constexpr uint64_t lease_ms = 30'000;

std::string random_bytes(Random& rng, std::size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng.below(256));
  return s;
}

// A signed-looking envelope: the merge never checks signatures, only that id matches envelope.
Envelope envelope_for(uint32_t job, uint64_t now_ms, Random& rng, JobSpec& spec) {
  spec.type = "pow";
  spec.payload = {{"data", "sim-" + std::to_string(job)}, {"difficulty_bits", 8}};
  spec.nonce = std::to_string(rng.next());
  spec.created_at_ms = now_ms;
  const nlohmann::json text = {{"type", spec.type},
                               {"payload", spec.payload},
                               {"nonce", spec.nonce},
                               {"created_at_ms", spec.created_at_ms}};
  return Envelope{text.dump(), random_bytes(rng, 32), random_bytes(rng, 64)};
}

// One replica's local change to `r`, as the node's job runner would make it.
JobRecord changed(const JobRecord& r, const std::string& me, uint64_t now, Random& rng) {
  JobRecord d = r;
  const uint32_t attempt = r.status.attempt;
  switch (rng.below(5)) {
    case 0:  // claim the next attempt and start running it
      d.claim = Claim{r.claim.attempt + 1, me, now + lease_ms};
      d.status = JobStatus{JobState::running, attempt + 1, me, now, {}, 0};
      d.add_history(JobState::running, me, attempt + 1, now, "claimed");
      break;
    case 1:  // renew the lease of whoever holds the claim
      d.claim.lease_until_ms = now + lease_ms;
      break;
    case 2:  // finish the current attempt with a receipt
      d.results[me] = NodeResult{attempt,
                                 JobState::succeeded,
                                 "{\"v\":" + std::to_string(rng.below(3)) + "}",
                                 {},
                                 now,
                                 Receipt{r.id, me, attempt, "h", "k", "s"}};
      d.status = JobStatus{JobState::succeeded, attempt, me, now, {}, 0};
      d.add_history(JobState::succeeded, me, attempt, now, "done");
      break;
    case 3:  // fail the attempt and wait to retry
      d.status = JobStatus{JobState::retry_wait, attempt, me, now, "boom", now + 1'000};
      d.add_history(JobState::retry_wait, me, attempt, now, "boom");
      break;
    default:
      d.cancel_requested = true;
      d.add_history(r.status.state, me, attempt, now, "cancel requested");
      break;
  }
  d.updated_at_ms = now;
  return merge(r, d);
}

}  // namespace

JobSim::JobSim(Cluster& cluster, JobOptions o, Random rng)
    : cluster_(cluster), o_(o), rng_(rng), stores_(cluster.size()) {
  cluster_.receive_app([this](uint32_t to, uint32_t from, const std::string& bytes) {
    on_message(to, from, bytes);
  });
}

void JobSim::schedule(uint64_t from_ms, uint64_t to_ms) {
  std::vector<std::string> names;
  for (uint32_t i = 0; i < cluster_.size(); ++i) names.push_back(node_name(i));
  dht::Ring ring;
  if (ring.add_all(names) != dht::Status::ok) return;
  const uint64_t span = to_ms > from_ms ? to_ms - from_ms : 1;
  for (uint32_t j = 0; j < o_.jobs; ++j) {
    const uint64_t born = from_ms + rng_.below(span / 2);
    jobs_.push_back(Job{});
    cluster_.at(born, [this, j] { create(j); });
    for (uint32_t k = 0; k < o_.changes_per_job; ++k)
      cluster_.at(born + rng_.below(span / 2), [this, j] { change(j); });
  }
  // Ids and replicas are fixed now, from a fork, so the schedule above does not depend on them.
  Random ids = rng_.fork();
  for (uint32_t j = 0; j < o_.jobs; ++j) {
    JobSpec spec;
    const Envelope env = envelope_for(j, from_ms, ids, spec);
    jobs_[j].id = env.id();
    job_by_id_[jobs_[j].id] = j;
    for (const std::string& n : ring.preference_list(jobs_[j].id, job_replicas))
      jobs_[j].replicas.push_back(node_index(n));
    jobs_[j].versions.push_back(make_record(env, spec, node_name(jobs_[j].replicas[0]), from_ms));
  }
  if (o_.anti_entropy) cluster_.at(from_ms, [this] { anti_entropy(); });
}

JobRecord* JobSim::held(uint32_t node, uint32_t job) {
  const auto it = stores_[node].find(job);
  return it == stores_[node].end() ? nullptr : &it->second;
}

void JobSim::create(uint32_t j) {
  // The submission lands on the first up replica (an entry node forwarding to the owner).
  for (const uint32_t r : jobs_[j].replicas) {
    if (!cluster_.up(r)) continue;
    jobs_[j].created = true;
    stores_[r].emplace(j, jobs_[j].versions.front());
    for (const uint32_t other : jobs_[j].replicas)
      if (other != r) ship(r, other, jobs_[j].versions.front(), false);
    return;
  }
}

void JobSim::change(uint32_t j) {
  const std::vector<uint32_t>& reps = jobs_[j].replicas;
  const uint32_t r = reps[rng_.below(reps.size())];
  JobRecord* mine = held(r, j);
  if (!cluster_.up(r) || mine == nullptr) return;
  *mine = changed(*mine, node_name(r), cluster_.now_ms(), rng_);
  jobs_[j].versions.push_back(*mine);
  for (const uint32_t other : reps)
    if (other != r) ship(r, other, *mine, false);
}

void JobSim::anti_entropy() {
  for (uint32_t j = 0; j < jobs_.size(); ++j) {
    const std::vector<uint32_t>& reps = jobs_[j].replicas;
    for (const uint32_t r : reps) {
      const JobRecord* mine = held(r, j);
      if (mine == nullptr || !cluster_.up(r)) continue;
      uint32_t peer = reps[rng_.below(reps.size())];
      if (peer == r)
        peer = reps[(std::find(reps.begin(), reps.end(), r) - reps.begin() + 1) % reps.size()];
      ship(r, peer, *mine, true);
    }
  }
  cluster_.at(cluster_.now_ms() + o_.anti_entropy_ms, [this] { anti_entropy(); });
}

void JobSim::ship(uint32_t from, uint32_t to, const JobRecord& r, bool want_reply) {
  ++messages_;
  cluster_.send_app(from, to, (want_reply ? "P" : "R") + encode_record(r));
}

void JobSim::on_message(uint32_t to, uint32_t from, const std::string& bytes) {
  Result<JobRecord> in = decode_record(std::string_view(bytes).substr(1));
  const auto it = in.is_ok() ? job_by_id_.find(in.value().id) : job_by_id_.end();
  if (it == job_by_id_.end()) {
    ++decode_errors_;
    return;
  }
  const JobRecord& incoming = in.value();
  JobRecord* mine = held(to, it->second);
  if (mine == nullptr)
    mine = &stores_[to].emplace(it->second, incoming).first->second;
  else
    *mine = merge(*mine, incoming);
  if (bytes[0] == 'P' && !same_state(*mine, incoming)) ship(to, from, *mine, false);
}

std::optional<std::string> JobSim::divergence() const {
  if (decode_errors_ != 0) return std::to_string(decode_errors_) + " job messages failed to decode";
  for (uint32_t j = 0; j < jobs_.size(); ++j) {
    if (!jobs_[j].created) continue;
    const JobRecord* first = nullptr;
    for (const uint32_t r : jobs_[j].replicas) {
      if (!cluster_.up(r)) continue;
      const auto it = stores_[r].find(j);
      if (it == stores_[r].end())
        return "job " + jobs_[j].id + " is missing on n" + std::to_string(r);
      if (first == nullptr)
        first = &it->second;
      else if (!same_state(*first, it->second))
        return "job " + jobs_[j].id + " differs on n" + std::to_string(r);
    }
  }
  return std::nullopt;
}

std::optional<std::string> JobSim::order_independence(Random& rng) const {
  for (const Job& job : jobs_) {
    std::vector<JobRecord> v = job.versions;
    std::optional<JobRecord> folds[3];
    for (auto& fold : folds) {
      for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
      for (const JobRecord& r : v) fold = fold ? merge(*fold, r) : r;
    }
    if (!same_state(*folds[0], *folds[1]) || !same_state(*folds[0], *folds[2]))
      return "job " + job.id + ": merging its copies in another order gives another record";
    bool all_up = true;
    for (const uint32_t r : job.replicas) all_up = all_up && cluster_.up(r);
    const auto it = stores_[job.replicas[0]].find(static_cast<uint32_t>(&job - jobs_.data()));
    if (all_up && it != stores_[job.replicas[0]].end() && !same_state(it->second, *folds[0]))
      return "job " + job.id + ": replicas hold something other than the merge of every copy";
  }
  return std::nullopt;
}

}  // namespace meshwork::sim
