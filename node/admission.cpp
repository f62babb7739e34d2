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

// The spec of a client's envelope once it verifies (a batch's root through verified_) and its key
// is allowed here.
Result<JobSpec> Admission::open_signed(const Envelope& env) const {
  auto opened = open_envelope(env, options_.limits, &verified_, &verified_jobs_);
  if (!opened.is_ok()) return opened;
  if (options_.allowed_keys && !options_.allowed_keys->contains(env.public_key))
    return Result<JobSpec>(Code::forbidden, "the signing key is not allowed to submit jobs here");
  return opened;
}

// The verified (or freshly signed) envelope of `body`, and its parsed spec in `spec`.
Result<Envelope> Admission::envelope_for(const nlohmann::json& body, JobSpec& spec) const {
  if (!is_signed_envelope(body)) {
    if (options_.require_signed || options_.allowed_keys)
      return Result<Envelope>(Code::unauthorized,
                              "this node accepts only signed jobs: send a signed envelope");
    auto env = sign_plain_job(body, key_, wall_ms(), options_.limits, &spec);
    if (env.is_ok()) remember_signed(env.value());
    return env;
  }
  auto env = parse_envelope(body);
  if (!env.is_ok()) return env;
  auto opened = open_signed(env.value());
  if (!opened.is_ok()) return opened.status();
  spec = std::move(opened).value();
  return env;
}

Result<JobRecord> Admission::counted(Result<JobRecord> r) {
  if (!r.is_ok()) rejected_++;
  return r;
}

Result<JobRecord> Admission::record_for(Envelope env, const JobSpec& spec) {
  uint64_t at;
  {
    std::lock_guard lock(mu_);
    at = last_submission_ms_ = std::max(wall_ms(), last_submission_ms_ + 1);
  }
  // A delay counts from the signed created_at (the entry node's clock for a plain job): a signed
  // job dated ahead must not be due further off than the longest delay.
  if (spec.delay_ms > 0 && spec.created_at_ms + spec.delay_ms > at + kDelayMsMax)
    return Status(Code::invalid, "created_at + delay_ms is more than 30 days (" +
                                     std::to_string(kDelayMsMax) +
                                     " ms) after now: created_at is ahead of this node's clock");
  if (spec.redundancy > options_.redundancy_max)
    return Status(Code::invalid, "redundancy " + std::to_string(spec.redundancy) + " exceeds the " +
                                     std::to_string(options_.redundancy_max) +
                                     " replicas (--replicas) that store a job here");
  return make_record(std::move(env), spec, node_, at);
}

Result<JobRecord> Admission::admit(const nlohmann::json& body) {
  JobSpec spec;
  auto env = envelope_for(body, spec);
  if (!env.is_ok()) return counted(env.status());
  return counted(record_for(std::move(env).value(), spec));
}

std::vector<Result<JobRecord>> Admission::admit_batch(const nlohmann::json& items) {
  std::vector<Result<JobRecord>> out;
  out.reserve(items.size());
  std::vector<size_t> plain;  // out[plain[k]] waits for texts[k], specs[k]
  std::vector<std::string> texts;
  std::vector<JobSpec> specs;
  const bool signs_plain = !options_.require_signed && !options_.allowed_keys;
  for (size_t i = 0; i < items.size(); ++i) {
    const nlohmann::json& item = items[i];
    if (!item.is_object()) {
      out.push_back(counted(Status(Code::malformed, "each job must be a JSON object")));
    } else if (is_signed_envelope(item) || !signs_plain) {
      out.push_back(admit(item));
    } else {
      JobSpec spec;
      auto text = plain_job_text(item, wall_ms(), options_.limits, &spec);
      if (!text.is_ok()) {
        out.push_back(counted(text.status()));
        continue;
      }
      out.push_back(Status(Code::io_error, "not signed yet"));  // replaced below
      plain.push_back(i);
      texts.push_back(std::move(text).value());
      specs.push_back(std::move(spec));
    }
  }
  if (texts.empty()) return out;
  std::vector<Envelope> envs;
  if (texts.size() == 1) {  // one plain job is signed as POST /v1/jobs signs it
    Envelope env{texts.front(), key_.public_key(), key_.sign(texts.front())};
    envs.push_back(std::move(env));
  } else {
    envs = sign_job_batch(texts, key_);
  }
  remember_signed(envs.front());
  for (size_t k = 0; k < plain.size(); ++k)
    out[plain[k]] = counted(record_for(std::move(envs[k]), specs[k]));
  return out;
}

Result<std::vector<Result<JobRecord>>> Admission::admit_signed_batch(const nlohmann::json& body) {
  using Batch = Result<std::vector<Result<JobRecord>>>;
  const auto refuse = [this](Code code, std::string why) {
    rejected_++;
    return Batch(code, std::move(why));
  };
  if (!body.is_object() || !body.contains("jobs") || !body["jobs"].is_array())
    return refuse(Code::malformed,
                  "a signed batch is {\"jobs\": [{\"job\": \"<text>\"}, ...], "
                  "\"public_key\", \"signature\"}");
  for (const char* f : {"public_key", "signature"})
    if (!body.contains(f) || !body[f].is_string())
      return refuse(Code::malformed, std::string("a signed batch needs '") + f + "' as a string");
  const nlohmann::json& jobs = body["jobs"];
  if (jobs.empty() || jobs.size() > kJobBatchMax)
    return refuse(Code::invalid,
                  "a signed batch holds 1 to " + std::to_string(kJobBatchMax) + " jobs");
  std::vector<std::string> texts;
  texts.reserve(jobs.size());
  for (const nlohmann::json& item : jobs) {
    if (!item.is_object() || item.size() != 1 || !item.contains("job") || !item["job"].is_string())
      return refuse(Code::invalid,
                    "in a batch signed once every item is {\"job\": \"<job text>\"} and nothing "
                    "else: send envelopes (or plain jobs) in a batch without a signature");
    texts.push_back(item["job"].get<std::string>());
  }
  auto pk = from_base64(body["public_key"].get<std::string>());
  if (!pk || pk->size() != kPublicKeyBytes)
    return refuse(Code::unauthorized, "public_key must be 32 bytes of base64");
  auto sig = from_base64(body["signature"].get<std::string>());
  if (!sig || sig->size() != kSignatureBytes)
    return refuse(Code::unauthorized, "signature must be 64 bytes of base64");
  std::vector<Envelope> envs = batch_envelopes(texts, *pk);
  if (!verified_.verify(jobs_root_message(envs.front().root), *sig, *pk))
    return refuse(Code::unauthorized,
                  "the signature does not match the root of these jobs (in this order) and key: "
                  "sign \"meshwork-jobs-v1|<root hex>\"");
  std::vector<Result<JobRecord>> out;
  out.reserve(envs.size());
  for (Envelope& env : envs) {
    env.signature = *sig;
    if (env.job.size() > kJobTextBytesMax) {
      out.push_back(
          counted(Status(Code::too_large, "the signed job text exceeds " +
                                              std::to_string(kJobTextBytesMax) + " bytes")));
      continue;
    }
    auto opened = open_signed(env);  // the root verified above: a leaf hash and a proof fold
    if (!opened.is_ok()) {
      out.push_back(counted(opened.status()));
      continue;
    }
    out.push_back(counted(record_for(std::move(env), opened.value())));
  }
  return out;
}

bool Admission::check(const JobRecord& r) const {
  return open_envelope(r.envelope, options_.limits, &verified_, &verified_jobs_).is_ok();
}

// What this node signed verifies by construction: its check here is a lookup.
void Admission::remember_signed(const Envelope& env) const {
  if (env.batched()) {
    verified_.remember(env.signed_message(), env.signature, env.public_key);
  } else {
    verified_jobs_.remember(env.job, env.signature, env.public_key);
  }
}

}  // namespace meshwork
