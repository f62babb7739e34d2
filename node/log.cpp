// Logging; see log.h.
#include "node/log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <nlohmann/json.hpp>

namespace meshwork {
namespace {

LogFormat g_format = LogFormat::text;

}  // namespace

void setup_logging(std::string_view node_name, spdlog::level::level_enum level, LogFormat format) {
  g_format = format;
  auto logger = spdlog::stderr_logger_mt("meshwork");
  const std::string name = nlohmann::json(std::string(node_name)).dump();  // quoted and escaped
  if (format == LogFormat::json) {
    logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","node":)" + name + ",%v}",
                        spdlog::pattern_time_type::utc);
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %L " + std::string(node_name) + " %v",
                        spdlog::pattern_time_type::utc);
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
}

void log_event(spdlog::level::level_enum level, std::string_view event, std::string_view job,
               std::string_view detail) {
  if (!spdlog::should_log(level)) return;
  if (g_format == LogFormat::json) {
    nlohmann::json j{{"event", event}};
    if (!job.empty()) j["job"] = job;
    if (!detail.empty()) j["detail"] = detail;
    std::string body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    spdlog::log(level, "{}", std::string_view(body).substr(1, body.size() - 2));
  } else if (job.empty()) {
    spdlog::log(level, "{} {}", event, detail);
  } else {
    spdlog::log(level, "{} job={} {}", event, job, detail);
  }
}

}  // namespace meshwork
