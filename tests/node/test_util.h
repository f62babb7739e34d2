// Helpers shared by the node unit tests: a temporary directory and record builders.
#pragma once

#include <filesystem>
#include <random>
#include <string>

#include "node/clock.h"
#include "node/crypto.h"
#include "node/envelope.h"
#include "dht/job_record.h"

namespace meshwork::test {

// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("meshwork-test-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// A signed, queued record of type `type` with `payload`.
inline JobRecord queued_record(const Identity& key, const std::string& type = "echo",
                               nlohmann::json payload = {{"x", 1}}, uint64_t now = 1000) {
  nlohmann::json body{{"type", type}, {"payload", std::move(payload)}};
  auto env = sign_plain_job(body, key, now, Limits{});
  auto spec = parse_spec(nlohmann::json::parse(env.value().job), Limits{});
  return make_record(env.value(), spec.value(), "n1", now);
}

}  // namespace meshwork::test
