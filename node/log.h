// Logging: one line per event, with the node's name and, where there is one, the job id; as text or
// as JSON objects (one per line) for log pipelines.
//
// Call setup_logging() once at start; afterwards log_event() may be called from any thread.
#pragma once

#include <string_view>

#include <spdlog/spdlog.h>

namespace meshwork {

enum class LogFormat { text, json };

void setup_logging(std::string_view node_name, spdlog::level::level_enum level, LogFormat format);

// event: a short snake_case name ("job_succeeded"); job: a job id or ""; detail: free text.
void log_event(spdlog::level::level_enum level, std::string_view event, std::string_view job,
               std::string_view detail = {});

}  // namespace meshwork
