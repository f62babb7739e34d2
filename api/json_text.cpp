// Writing JSON text directly; see json_text.h.
#include "api/json_text.h"

#include <charconv>

#include "node/check.h"

namespace meshwork::api {
namespace {

using nlohmann::json;

// Bytes nlohmann writes as they are (ensure_ascii off): printable ASCII and DEL, but `"` and `\`.
bool plain_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') return false;
  return true;
}

bool is_hex_lower(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// A recursive scan of JSON text that accepts only what nlohmann's dump writes (json_text.h, rules
// 1–3), and only the subset of that it can prove without parsing numbers with a fraction.
class CanonicalScan {
 public:
  explicit CanonicalScan(std::string_view text) : s_(text) {}

  // The whole text is one canonical value.
  bool document() { return value(0) && i_ == s_.size(); }

  // The whole text is one canonical object; `member` receives the value text of `key`, if any.
  bool object_member(std::string_view key, std::optional<std::string_view>& member) {
    if (i_ >= s_.size() || s_[i_] != '{') return false;
    return object(0, key, &member) && i_ == s_.size();
  }

 private:
  bool value(size_t depth) {
    if (i_ >= s_.size() || depth >= kCanonicalDepthMax) return false;
    switch (s_[i_]) {
      case '{':
        return object(depth, {}, nullptr);
      case '[':
        return array(depth);
      case '"':
        return string(nullptr);
      case 't':
        return word("true");
      case 'f':
        return word("false");
      case 'n':
        return word("null");
      default:
        return number();
    }
  }

  bool object(size_t depth, std::string_view want, std::optional<std::string_view>* member) {
    ++i_;  // '{'
    if (peek('}')) return true;
    std::string_view previous;
    for (bool first = true;; first = false) {
      std::string_view key;
      if (!string(&key) || !peek(':')) return false;
      if (!first && !(previous < key)) return false;  // sorted, no duplicates (rule 1)
      previous = key;
      const size_t start = i_;
      if (!value(depth + 1)) return false;
      if (member != nullptr && key == want) *member = s_.substr(start, i_ - start);
      if (peek('}')) return true;
      if (!peek(',')) return false;
    }
  }

  bool array(size_t depth) {
    ++i_;  // '['
    if (peek(']')) return true;
    for (;;) {
      if (!value(depth + 1)) return false;
      if (peek(']')) return true;
      if (!peek(',')) return false;
    }
  }

  // `key`, when given, receives the raw content; a key with an escape is refused (its raw bytes
  // would not order like its value).
  bool string(std::string_view* key) {
    if (!peek('"')) return false;
    const size_t start = i_;
    while (i_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        if (key != nullptr) *key = s_.substr(start, i_ - start);
        ++i_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        if (key != nullptr || !escape()) return false;
      } else if (c >= 0x80) {
        if (!utf8()) return false;
      } else {
        ++i_;
      }
    }
    return false;
  }

  // The escapes nlohmann writes: \" \\ \b \f \n \r \t, and \u00xx for the other bytes below 0x20.
  bool escape() {
    if (i_ + 1 >= s_.size()) return false;
    const char e = s_[i_ + 1];
    if (e == '"' || e == '\\' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
      i_ += 2;
      return true;
    }
    if (e != 'u' || i_ + 6 > s_.size() || s_.substr(i_ + 2, 2) != "00" ||
        !is_hex_lower(s_[i_ + 4]) || !is_hex_lower(s_[i_ + 5]) || s_[i_ + 4] > '1')
      return false;
    const int code =
        (s_[i_ + 4] - '0') * 16 + (s_[i_ + 5] <= '9' ? s_[i_ + 5] - '0' : s_[i_ + 5] - 'a' + 10);
    if (code == 0x08 || code == 0x09 || code == 0x0a || code == 0x0c || code == 0x0d) return false;
    i_ += 6;
    return true;
  }

  // One well-formed UTF-8 sequence of two to four bytes (Unicode table 3-7: no overlong forms, no
  // surrogates, nothing above U+10FFFF).
  bool utf8() {
    const auto at = [&](size_t k) { return static_cast<unsigned char>(s_[i_ + k]); };
    const unsigned char c = at(0);
    size_t n = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // the second byte's range
    if (c >= 0xc2 && c <= 0xdf) {
      n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (i_ + n > s_.size() || at(1) < lo || at(1) > hi) return false;
    for (size_t k = 2; k < n; ++k)
      if (at(k) < 0x80 || at(k) > 0xbf) return false;
    i_ += n;
    return true;
  }

  // An integer as nlohmann writes it: no leading zero, no "-0", within int64 (negative) or
  // uint64, else nlohmann would have parsed a float. Anything with a fraction or exponent: false.
  bool number() {
    const size_t start = i_;
    if (peek('-') && (i_ >= s_.size() || s_[i_] == '0')) return false;
    const size_t digits = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    if (i_ == digits || (s_[digits] == '0' && i_ - digits > 1)) return false;
    if (i_ < s_.size() && (s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E')) return false;
    const char* first = s_.data() + start;
    const char* last = s_.data() + i_;
    if (digits > start) {
      int64_t v = 0;
      return std::from_chars(first, last, v).ec == std::errc();
    }
    uint64_t v = 0;
    return std::from_chars(first, last, v).ec == std::errc();
  }

  bool word(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }

  bool peek(char c) {
    if (i_ >= s_.size() || s_[i_] != c) return false;
    ++i_;
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

std::string dump_json(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void append_json_string(std::string& out, std::string_view s) {
  if (!plain_ascii(s)) {
    out += dump_json(json(s));
    return;
  }
  out += '"';
  out += s;
  out += '"';
}

void append_json_uint(std::string& out, uint64_t v) {
  char buf[20];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_json_string_or_null(std::string& out, std::string_view s) {
  if (s.empty())
    out += "null";
  else
    append_json_string(out, s);
}

void append_json_strings(std::string& out, const std::vector<std::string>& list) {
  out += '[';
  for (size_t i = 0; i < list.size(); ++i) {
    if (i > 0) out += ',';
    append_json_string(out, list[i]);
  }
  out += ']';
}

bool is_canonical_json(std::string_view text) {
  return CanonicalScan(text).document();
}

std::optional<std::string_view> canonical_member(std::string_view object_text,
                                                 std::string_view key) {
  std::optional<std::string_view> member;
  if (!CanonicalScan(object_text).object_member(key, member)) return std::nullopt;
  return member ? *member : std::string_view("null");
}

void append_json_text(std::string& out, std::string_view text) {
  if (is_canonical_json(text))
    out += text;
  else
    out += dump_json(json::parse(text, nullptr, /*allow_exceptions=*/false));
}

JsonObjectWriter::JsonObjectWriter(std::string& out) : out_(out) {
  out_ += '{';
}

std::string& JsonObjectWriter::key(std::string_view name) {
  MESHWORK_CHECK((first_ || last_ < name) && plain_ascii(name));
  out_ += first_ ? "\"" : ",\"";
  out_ += name;
  out_ += "\":";
  last_ = name;
  first_ = false;
  return out_;
}

void JsonObjectWriter::close() {
  out_ += '}';
}

}  // namespace meshwork::api
