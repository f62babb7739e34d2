// Signed client requests: the headers a client sends verify; every malformed header is a 400 that
// names it; a stale time, a wrong signature or a replay is a 401; the job's key and admin keys are
// authorised, any other key or none is a 403 unless the job is open. The header parser survives
// random bytes.
#include <doctest/doctest.h>

#include <random>

#include "api/problem.h"
#include "node/client_auth.h"

namespace meshwork {
namespace {

const std::string kJob(64, 'a');
const std::string kOtherJob(64, 'b');
constexpr uint64_t kNow = 1'800'000'000'000;

ClientAuthHeaders headers_of(const httplib::Headers& h) {
  httplib::Request req;
  req.headers = h;
  return client_auth_headers(req);
}

Result<std::optional<ClientSignature>> parse(const httplib::Headers& h) {
  return parse_client_signature(headers_of(h));
}

ClientSignature signed_by(const Identity& key, std::string_view job, uint64_t at,
                          std::string_view action = kCancelAction) {
  auto s = parse(client_request_headers(key, action, job, at));
  REQUIRE(s.is_ok());
  REQUIRE(s.value().has_value());
  return *s.value();
}

httplib::Headers with(httplib::Headers h, const char* name, std::string value) {
  h.erase(name);
  h.emplace(name, std::move(value));
  return h;
}

}  // namespace

TEST_CASE("the headers a client signs parse and verify for that action and job only") {
  const Identity key = Identity::generate();
  const ClientSignature s = signed_by(key, kJob, kNow);
  CHECK(s.public_key == key.public_key());
  CHECK(s.time_ms == kNow);
  CHECK(verify_client_signature(s, kCancelAction, kJob, kNow).is_ok());
  CHECK(verify_client_signature(s, kCancelAction, kJob, kNow + kClientRequestSkewMsMax).is_ok());
  CHECK(verify_client_signature(s, kCancelAction, kJob, kNow - kClientRequestSkewMsMax).is_ok());
  CHECK(verify_client_signature(s, kCancelAction, kOtherJob, kNow).code() == Code::unauthorized);
  CHECK(verify_client_signature(s, "retry", kJob, kNow).code() == Code::unauthorized);
  CHECK(client_request_message("cancel", kJob, 7) ==
        "meshwork-request-v1\ncancel\n" + kJob + "\n7");
}

TEST_CASE("a time outside the window, a changed time or a forged signature is 401") {
  const Identity key = Identity::generate(), other = Identity::generate();
  ClientSignature s = signed_by(key, kJob, kNow);
  CHECK(
      verify_client_signature(s, kCancelAction, kJob, kNow + kClientRequestSkewMsMax + 1).code() ==
      Code::unauthorized);
  CHECK(
      verify_client_signature(s, kCancelAction, kJob, kNow - kClientRequestSkewMsMax - 1).code() ==
      Code::unauthorized);
  ClientSignature moved = s;
  moved.time_ms += 1;
  CHECK(verify_client_signature(moved, kCancelAction, kJob, kNow).code() == Code::unauthorized);
  ClientSignature swapped = s;
  swapped.public_key = other.public_key();
  CHECK(verify_client_signature(swapped, kCancelAction, kJob, kNow).code() == Code::unauthorized);
  ClientSignature flipped = s;
  flipped.signature[10] ^= 1;
  CHECK(verify_client_signature(flipped, kCancelAction, kJob, kNow).code() == Code::unauthorized);
}

TEST_CASE("no header at all is an unsigned request; a partial or malformed set is 400") {
  auto none = parse({});
  REQUIRE(none.is_ok());
  CHECK_FALSE(none.value().has_value());
  CHECK(parse({{"Other", "x"}}).is_ok());

  const Identity key = Identity::generate();
  const httplib::Headers good = client_request_headers(key, kCancelAction, kJob, kNow);
  CHECK(parse(good).is_ok());
  auto code = [](const httplib::Headers& h) { return parse(h).status().code(); };
  for (const char* name : {kClientKeyHeader, kClientTimeHeader, kClientSignatureHeader}) {
    httplib::Headers missing = good;
    missing.erase(name);
    CHECK(code(missing) == Code::malformed);
    httplib::Headers twice = good;
    twice.emplace(name, good.find(name)->second);
    CHECK(code(twice) == Code::malformed);
    CHECK(code(with(good, name, "")) == Code::malformed);
    CHECK(code(with(good, name, std::string(5'000, 'A'))) == Code::malformed);
    CHECK(code(with(good, name, "!!not base64 or digits!!")) == Code::malformed);
  }
  // Base64 of the wrong length, trailing garbage, unpadded, the other key's field.
  const std::string key_b64 = key.public_key_b64();
  CHECK(code(with(good, kClientKeyHeader, to_base64(std::string(31, 'k')))) == Code::malformed);
  CHECK(code(with(good, kClientKeyHeader, key_b64 + "AAAA")) == Code::malformed);
  CHECK(code(with(good, kClientKeyHeader, key_b64.substr(0, 43))) == Code::malformed);
  CHECK(code(with(good, kClientSignatureHeader, key_b64)) == Code::malformed);
  // Times: a sign, spaces, a fraction, a number past 2^64.
  for (const char* t : {"-1", " 1", "1 ", "1.5", "0x10", "18446744073709551616", "1e12"})
    CHECK(code(with(good, kClientTimeHeader, t)) == Code::malformed);
  CHECK(code(with(good, kClientTimeHeader, "18446744073709551615")) == Code::ok);
  // Header names are case-insensitive, as HTTP says.
  httplib::Headers lower;
  for (const auto& [k, v] : good) {
    std::string name = k;
    for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
    lower.emplace(name, v);
  }
  CHECK(parse(lower).is_ok());
  // A malformed set is a problem document with status 400 and the header's name.
  httplib::Response res;
  api::problem(res, parse(with(good, kClientTimeHeader, "soon")).status());
  CHECK(res.status == 400);
  CHECK(res.body.find(kClientTimeHeader) != std::string::npos);
}

TEST_CASE("random header values never crash the parser and never pass as signed") {
  std::mt19937_64 rng(7);
  const Identity key = Identity::generate();
  const httplib::Headers good = client_request_headers(key, kCancelAction, kJob, kNow);
  const std::string original = signed_by(key, kJob, kNow).signature;
  const char* names[] = {kClientKeyHeader, kClientTimeHeader, kClientSignatureHeader};
  size_t parsed = 0;
  for (int i = 0; i < 20'000; ++i) {
    httplib::Headers h = good;
    const int mutations = 1 + int(rng() % 3);
    for (int m = 0; m < mutations; ++m) {
      const char* name = names[rng() % 3];
      std::string v = h.count(name) ? h.find(name)->second : "";
      switch (rng() % 5) {
        case 0:
          v.assign(rng() % 200, char(rng()));
          break;  // random bytes
        case 1:
          if (!v.empty()) v[rng() % v.size()] = char(rng());
          break;  // one byte changed
        case 2:
          v.resize(rng() % (v.size() + 2));
          break;  // cut or one NUL more
        case 3:
          h.erase(name);
          continue;
        default:
          v += char(rng());
          break;
      }
      h = with(h, name, v);
    }
    auto r = parse(h);
    if (!r.is_ok()) {
      CHECK(r.status().code() == Code::malformed);
      continue;
    }
    if (!r.value()) continue;
    ++parsed;
    // Whatever parsed must still fail to verify unless it is the original request.
    const bool same = r.value()->public_key == key.public_key() && r.value()->time_ms == kNow &&
                      r.value()->signature == original;
    CHECK(verify_client_signature(*r.value(), kCancelAction, kJob, kNow).is_ok() == same);
  }
  CHECK(parsed > 0);  // some mutations keep the shape (a time digit changed), and fail to verify
}

TEST_CASE("the job's key and admin keys may act on a job; others may not unless it is open") {
  const Identity owner = Identity::generate(), admin = Identity::generate(),
                 stranger = Identity::generate();
  const std::set<std::string> admins{admin.public_key()};
  const std::string job_key = owner.public_key();
  const auto by = [&](const Identity& k) { return std::optional(signed_by(k, kJob, kNow)); };
  CHECK(authorize_job_request(by(owner), job_key, false, admins).is_ok());
  CHECK(authorize_job_request(by(admin), job_key, false, admins).is_ok());
  CHECK(authorize_job_request(by(stranger), job_key, false, admins).code() == Code::forbidden);
  CHECK(authorize_job_request(std::nullopt, job_key, false, admins).code() == Code::forbidden);
  CHECK(authorize_job_request(by(admin), job_key, false, {}).code() == Code::forbidden);
  // An open job (plain, on a node that takes plain jobs): anyone, signed or not.
  CHECK(authorize_job_request(std::nullopt, job_key, true, {}).is_ok());
  CHECK(authorize_job_request(by(stranger), job_key, true, {}).is_ok());
}

TEST_CASE("a signed request is accepted once while it is fresh") {
  const Identity key = Identity::generate();
  ReplayGuard guard;
  const ClientSignature s = signed_by(key, kJob, kNow);
  CHECK(guard.first_use(s, kCancelAction, kJob, kNow));
  CHECK_FALSE(guard.first_use(s, kCancelAction, kJob, kNow + 1));
  CHECK_FALSE(guard.first_use(s, kCancelAction, kJob, kNow + kClientRequestSkewMsMax));
  // The same key, another job or another time: a different request.
  CHECK(guard.first_use(signed_by(key, kOtherJob, kNow), kCancelAction, kOtherJob, kNow));
  CHECK(guard.first_use(signed_by(key, kJob, kNow + 1), kCancelAction, kJob, kNow));
  // Past its expiry it is forgotten (and the time check refuses it from then on).
  CHECK(guard.first_use(signed_by(key, kJob, kNow + 2), kCancelAction, kJob, kNow));
  CHECK(guard.size() == 4);
  CHECK(guard.first_use(s, kCancelAction, kJob, kNow + kClientRequestSkewMsMax + 10));
  CHECK(guard.size() == 1);
}

TEST_CASE("a full replay guard drops the entry that expires first") {
  const Identity key = Identity::generate();
  ReplayGuard guard(3);
  for (uint64_t t : {kNow + 30, kNow + 10, kNow + 20})
    CHECK(guard.first_use(signed_by(key, kJob, t), kCancelAction, kJob, kNow));
  CHECK(guard.first_use(signed_by(key, kJob, kNow + 40), kCancelAction, kJob, kNow));
  CHECK(guard.size() == 3);
  CHECK(guard.first_use(signed_by(key, kJob, kNow + 10), kCancelAction, kJob, kNow));  // dropped
  CHECK_FALSE(guard.first_use(signed_by(key, kJob, kNow + 30), kCancelAction, kJob, kNow));
}

}  // namespace meshwork
