// RFC 9457 problem details: every error the API returns is application/problem+json with a
// human-readable `detail`. Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "dht/result.h"

namespace meshwork::api {

[[nodiscard]] int http_status(Code code);

// Fills `res` with a problem document for `status`.
// (429 and 503 carry Retry-After: retry_after_s.)
void problem(httplib::Response& res, int status, std::string_view detail,
             uint64_t retry_after_s = 1);
void problem(httplib::Response& res, const Status& s);
// A JSON answer (invalid UTF-8 in strings replaced, never thrown: dump_json, api/json_text.h).
void send_json(httplib::Response& res, int status, const nlohmann::json& body);
// A JSON answer already written as text (api/json_text.h).
void send_json_text(httplib::Response& res, int status, std::string body);

}  // namespace meshwork::api
