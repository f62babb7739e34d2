// Admission of client jobs; see admission.h.
#include "node/admission.h"

#include "node/clock.h"
#include "node/envelope.h"

namespace meshwork {

bool is_signed_envelope(const nlohmann::json& body) {
  return body.is_object() && body.contains("job") && body.contains("signature");
}

Admission::Admission(const Identity& key, std::string node_name, AdmissionOptions options)
    : key_(key), node_(std::move(node_name)), options_(std::move(options)) {}

// The verified (or freshly signed) envelope of `body`, and its parsed spec in `spec`.
Result<Envelope> Admission::envelope_for(const nlohmann::json& body, JobSpec& spec) const {
  if (!is_signed_envelope(body)) {
    if (options_.require_signed || options_.allowed_keys)
      return Result<Envelope>(Code::unauthorized,
                              "this node accepts only signed jobs: send a signed envelope");
    return sign_plain_job(body, key_, wall_ms(), options_.limits, &spec);
  }
  auto env = parse_envelope(body);
  if (!env.is_ok()) return env;
  auto opened = open_envelope(env.value(), options_.limits);
  if (!opened.is_ok()) return opened.status();
  if (options_.allowed_keys && !options_.allowed_keys->contains(env.value().public_key))
    return Result<Envelope>(Code::forbidden, "the signing key is not allowed to submit jobs here");
  spec = std::move(opened).value();
  return env;
}

Result<JobRecord> Admission::admit(const nlohmann::json& body) {
  JobSpec spec;
  auto env = envelope_for(body, spec);
  if (!env.is_ok()) {
    rejected_++;
    return env.status();
  }
  uint64_t at;
  {
    std::lock_guard lock(mu_);
    at = last_submission_ms_ = std::max(wall_ms(), last_submission_ms_ + 1);
  }
  // A delay counts from the signed created_at (the entry node's clock for a plain job): a signed
  // job dated ahead must not be due further off than the longest delay.
  if (spec.delay_ms > 0 && spec.created_at_ms + spec.delay_ms > at + kDelayMsMax) {
    rejected_++;
    return Status(Code::invalid, "created_at + delay_ms is more than 30 days (" +
                                     std::to_string(kDelayMsMax) +
                                     " ms) after now: created_at is ahead of this node's clock");
  }
  if (spec.redundancy > options_.redundancy_max) {
    rejected_++;
    return Status(Code::invalid, "redundancy " + std::to_string(spec.redundancy) + " exceeds the " +
                                     std::to_string(options_.redundancy_max) +
                                     " replicas (--replicas) that store a job here");
  }
  return make_record(std::move(env).value(), spec, node_, at);
}

bool Admission::check(const JobRecord& r) const {
  return open_envelope(r.envelope, options_.limits).is_ok();
}

}  // namespace meshwork
