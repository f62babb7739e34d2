// Errors as values: a Status (ok, or a code plus a human-readable message) and Result<T>.
//
// Operating errors cross module boundaries as these values, never as exceptions. A Status code maps
// onto an HTTP status in api/ (see api/problem.h), so the names follow what a client sees.
// Thread-safety: plain value types.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace meshwork {

enum class Code {
  ok,
  malformed,     // input could not be parsed (HTTP 400)
  unauthorized,  // missing or bad signature (401)
  forbidden,     // signed by a key that is not allowed (403)
  not_found,     // (404)
  conflict,      // the request contradicts the current state (409)
  too_large,     // (413)
  invalid,       // parsed, but a field is invalid or unknown (422)
  overloaded,    // (429)
  unavailable,   // not ready, or not enough replicas (503)
  io_error,      // disk or network failure (500)
  corruption,    // stored data failed its checks (500)
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return {}; }

  [[nodiscard]] bool is_ok() const { return code_ == Code::ok; }
  [[nodiscard]] Code code() const { return code_; }
  [[nodiscard]] const std::string& message() const { return message_; }

 private:
  Code code_ = Code::ok;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}       // NOLINT(google-explicit-constructor)
  Result(Status error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  Result(Code code, std::string message) : v_(Status(code, std::move(message))) {}

  [[nodiscard]] bool is_ok() const { return std::holds_alternative<T>(v_); }
  [[nodiscard]] T& value() & { return std::get<T>(v_); }
  [[nodiscard]] const T& value() const& { return std::get<T>(v_); }
  [[nodiscard]] T&& value() && { return std::get<T>(std::move(v_)); }
  [[nodiscard]] Status status() const { return is_ok() ? Status::ok() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace meshwork
