// RFC 9457 problem details; see problem.h.
#include "api/problem.h"

#include <nlohmann/json.hpp>

#include "api/json_text.h"

namespace meshwork::api {
namespace {

std::string_view title_of(int status) {
  switch (status) {
    case 400: return "Malformed request";
    case 401: return "Bad or missing signature";
    case 403: return "Key not allowed";
    case 404: return "Not found";
    case 405: return "Method not allowed";
    case 409: return "Conflict";
    case 413: return "Request too large";
    case 422: return "Invalid field";
    case 429: return "Overloaded";
    case 503: return "Service unavailable";
    default: return status >= 500 ? "Internal error" : "Request failed";
  }
}

}  // namespace

int http_status(Code code) {
  switch (code) {
    case Code::ok: return 200;
    case Code::malformed: return 400;
    case Code::unauthorized: return 401;
    case Code::forbidden: return 403;
    case Code::not_found: return 404;
    case Code::conflict: return 409;
    case Code::too_large: return 413;
    case Code::invalid: return 422;
    case Code::overloaded: return 429;
    case Code::unavailable: return 503;
    case Code::io_error:
    case Code::corruption: break;
  }
  return 500;
}

void problem(httplib::Response& res, int status, std::string_view detail,
             uint64_t retry_after_s) {
  nlohmann::json body{{"type", "about:blank"},
                      {"title", title_of(status)},
                      {"status", status},
                      {"detail", detail}};
  res.status = status;
  if (status == 429 || status == 503)
    res.set_header("Retry-After", std::to_string(retry_after_s));
  res.set_content(dump_json(body), "application/problem+json");
}

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  send_json_text(res, status, dump_json(body));
}

void send_json_text(httplib::Response& res, int status, std::string body) {
  res.status = status;
  res.body = std::move(body);  // no copy, where set_content would make one
  res.headers.erase("Content-Type");
  res.set_header("Content-Type", "application/json");
}

void problem(httplib::Response& res, const Status& s) { problem(res, http_status(s.code()), s.message()); }

}  // namespace meshwork::api
