// Writing JSON text directly, byte for byte as nlohmann's dump_json() (below) writes it, for the
// answers on the request path that are worth building without a nlohmann document (api/views.h).
//
// The bytes are a contract with clients, so every writer here has one reference: what dump_json
// writes for the same value. That means:
//   1. object members in increasing byte order of their keys (nlohmann keeps objects in a
//      std::map); the caller writes them in that order (JsonObjectWriter asserts it)
//   2. no whitespace; integers in decimal
//   3. strings as nlohmann escapes them: `"`, `\`, \b \f \n \r \t, other bytes below 0x20 as
//      \u00xx (lowercase hex), UTF-8 as is, invalid UTF-8 replaced by U+FFFD (error_handler
//      replace). Only plain ASCII is written here; any other string goes through nlohmann itself
//   4. embedded JSON text (a job's payload, a result) is parsed and dumped again unless it is
//      already canonical (is_canonical_json): then it is copied as it is
// tests/api/job_view_writer_test.cpp compares these writers with the nlohmann path.
//
// Thread-safety: pure functions; a JsonObjectWriter belongs to one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace meshwork::api {

// The API's JSON text of `j`: no indentation, UTF-8 as is, invalid UTF-8 replaced (never throws).
[[nodiscard]] std::string dump_json(const nlohmann::json& j);

// Appends `s` as a JSON string (rule 3).
void append_json_string(std::string& out, std::string_view s);
void append_json_uint(std::string& out, uint64_t v);
// A JSON string, or null when `s` is empty.
void append_json_string_or_null(std::string& out, std::string_view s);
// ["a","b",...]
void append_json_strings(std::string& out, const std::vector<std::string>& list);

// True when dump_json(nlohmann::json::parse(text)) == text, proven by a scan without allocation.
// Conservative: false for some texts that are canonical (any number with a fraction or exponent,
// an object key with an escape, nesting deeper than kCanonicalDepthMax), never true for one that
// is not.
inline constexpr size_t kCanonicalDepthMax = 64;
[[nodiscard]] bool is_canonical_json(std::string_view text);
// When `object_text` is a canonical JSON object: the text of its member `key`'s value, or "null"
// when it has none (what nlohmann's value(key, json()) dumps). nullopt when the text is not
// proven canonical, or not an object.
[[nodiscard]] std::optional<std::string_view> canonical_member(std::string_view object_text,
                                                               std::string_view key);
// Appends what dump_json(nlohmann::json::parse(text, nullptr, false)) writes: `text` itself when
// canonical, else the parse and dump.
void append_json_text(std::string& out, std::string_view text);

// Writes the members of one object in the order they are given, with their commas.
// Precondition (asserted): keys are given in increasing byte order and need no escaping; each
// outlives the next call (string literals do: the writer keeps a view of the last key).
class JsonObjectWriter {
 public:
  explicit JsonObjectWriter(std::string& out);  // writes `{`
  JsonObjectWriter(const JsonObjectWriter&) = delete;
  JsonObjectWriter& operator=(const JsonObjectWriter&) = delete;

  // Writes `"key":` (after a comma unless first) and returns the text to write its value into.
  std::string& key(std::string_view name);
  void string(std::string_view name, std::string_view value) {
    append_json_string(key(name), value);
  }
  void uint(std::string_view name, uint64_t value) { append_json_uint(key(name), value); }
  void literal(std::string_view name, std::string_view value) { key(name) += value; }
  void close();  // writes `}`

 private:
  std::string& out_;
  std::string_view last_;  // the previous key ("" before the first)
  bool first_ = true;
};

}  // namespace meshwork::api
