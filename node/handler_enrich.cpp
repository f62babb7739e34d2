// `enrich`: enriches CDN/edge access-log records. For each record it derives the IP version and
// class, the user-agent family / device class / OS, the URL parts and content class, the status
// class and the UTC hour bucket; then it summarises the batch (counts by class, bytes by content
// class, top paths, time range). A bad record gets {"error": reason} in its slot; it never fails
// the job. The rules are listed in docs/job-types.md and mirror the tables below.
//
// Thread-safety: reentrant; the rule tables are constexpr and all other state is per call.
// Invariants: output records are index-aligned with the input; the result is a pure function of
// the payload (maps are ordered, ties in top_paths break by path); byte totals cannot overflow.
#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "node/handler_impl.h"

namespace meshwork::handler_impl {
namespace {

constexpr size_t kEnrichRecordsMax = 10'000;
constexpr size_t kIpBytesMax = 64;
constexpr size_t kUaBytesMax = 1'024;
constexpr size_t kUrlBytesMax = 8'192;
constexpr size_t kTsBytesMax = 64;
constexpr size_t kExtBytesMax = 10;
constexpr uint64_t kRecordBytesMax = uint64_t{1} << 40;  // 1 TiB per response
constexpr uint64_t kStatusMin = 100;
constexpr uint64_t kStatusMax = 599;
constexpr int64_t kEpochSecondsMax = 253'402'300'799;   // 9999-12-31T23:59:59Z
constexpr int64_t kEpochMsThreshold = 100'000'000'000;  // larger epoch numbers are milliseconds
constexpr size_t kTopPathsMax = 10;
constexpr size_t kEnrichCancelPollRecords = 256;
static_assert(kRecordBytesMax * kEnrichRecordsMax < std::numeric_limits<uint64_t>::max(),
              "bytes totals cannot overflow");
static_assert(kEpochMsThreshold > 0 && kEpochSecondsMax > kEpochMsThreshold);

using std::string_view;

std::string lower(string_view s) {
  std::string out(s);
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

bool has(string_view hay, string_view needle) {
  return hay.find(needle) != string_view::npos;
}

// ---- IP address class ----

struct IpInfo {
  int version = 0;
  string_view cls;
};

struct V4Rule {
  uint32_t prefix;
  unsigned bits;
  string_view cls;
};

// First match wins, so narrower ranges come before the ranges that contain them.
constexpr V4Rule kV4Rules[] = {
    {0x00000000, 32, "unspecified"},   {0xFFFFFFFF, 32, "broadcast"},
    {0x00000000, 8, "reserved"},       {0x0A000000, 8, "private"},
    {0x64400000, 10, "cgnat"},         {0x7F000000, 8, "loopback"},
    {0xA9FE0000, 16, "link-local"},    {0xAC100000, 12, "private"},
    {0xC0000200, 24, "documentation"}, {0xC6336400, 24, "documentation"},
    {0xCB007100, 24, "documentation"}, {0xC0000000, 24, "reserved"},
    {0xC0A80000, 16, "private"},       {0xC6120000, 15, "reserved"},
    {0xE0000000, 4, "multicast"},      {0xF0000000, 4, "reserved"},
};

string_view classify_v4(uint32_t addr) {
  for (const V4Rule& r : kV4Rules) {
    const uint32_t mask = r.bits == 32 ? ~uint32_t{0} : ~(~uint32_t{0} >> r.bits);
    if ((addr & mask) == r.prefix) return r.cls;
  }
  return "public";
}

struct V6Rule {
  std::array<uint8_t, 16> prefix;
  unsigned bits;
  string_view cls;
};

constexpr V6Rule kV6Rules[] = {
    {{}, 128, "unspecified"},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, "loopback"},
    {{0x01, 0x00}, 64, "reserved"},  // discard-only
    {{0xfe, 0x80}, 10, "link-local"},
    {{0xfc}, 7, "private"},  // unique local
    {{0xff}, 8, "multicast"},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "documentation"},
    {{0x3f, 0xff}, 20, "documentation"},
    {{0x20}, 3, "public"},  // global unicast
};

bool prefix_match(const uint8_t* addr, const std::array<uint8_t, 16>& prefix, unsigned bits) {
  const unsigned full = bits / 8;
  for (unsigned i = 0; i < full; ++i) {
    if (addr[i] != prefix[i]) return false;
  }
  if (bits % 8 == 0) return true;
  const auto mask = static_cast<uint8_t>(0xFF << (8 - bits % 8));
  return (addr[full] & mask) == prefix[full];
}

string_view classify_v6(const uint8_t* a) {
  // IPv4-mapped (::ffff:0:0/96) and NAT64 (64:ff9b::/96) addresses carry an IPv4 address.
  constexpr std::array<uint8_t, 16> kMapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  constexpr std::array<uint8_t, 16> kNat64 = {0x00, 0x64, 0xff, 0x9b};
  if (prefix_match(a, kMapped, 96) || prefix_match(a, kNat64, 96)) {
    return classify_v4(uint32_t{a[12]} << 24 | uint32_t{a[13]} << 16 | uint32_t{a[14]} << 8 |
                       a[15]);
  }
  for (const V6Rule& r : kV6Rules) {
    if (prefix_match(a, r.prefix, r.bits)) return r.cls;
  }
  return "reserved";
}

// Accepts dotted-quad IPv4 and IPv6 (optionally in [brackets], optionally with a %zone).
bool classify_ip(string_view text, IpInfo& out) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  if (const size_t zone = text.find('%'); zone != string_view::npos) text = text.substr(0, zone);
  const std::string s(text);
  uint8_t buf[16];
  if (s.find(':') != std::string::npos) {
    if (inet_pton(AF_INET6, s.c_str(), buf) != 1) return false;
    out = {6, classify_v6(buf)};
    return true;
  }
  if (inet_pton(AF_INET, s.c_str(), buf) != 1) return false;
  out = {4, classify_v4(uint32_t{buf[0]} << 24 | uint32_t{buf[1]} << 16 | uint32_t{buf[2]} << 8 |
                        buf[3])};
  return true;
}

// ---- user agent ----

struct UaInfo {
  string_view family = "unknown";
  string_view device = "unknown";
  string_view os = "other";
};

struct Token {
  string_view needle;
  string_view family;
};

// Matched as substrings of the lower-cased UA, first match wins.
constexpr Token kBots[] = {
    {"googlebot", "googlebot"},     {"bingbot", "bingbot"},
    {"yandexbot", "yandexbot"},     {"baiduspider", "baiduspider"},
    {"duckduckbot", "duckduckbot"}, {"applebot", "applebot"},
    {"ahrefsbot", "ahrefsbot"},     {"semrushbot", "semrushbot"},
    {"gptbot", "gptbot"},           {"facebookexternalhit", "facebook"},
    {"twitterbot", "twitterbot"},   {"slurp", "yahoo"},
    {"bot", "other-bot"},           {"crawler", "other-bot"},
    {"spider", "other-bot"},        {"headless", "other-bot"},
    {"lighthouse", "other-bot"},
};
// Matched as prefixes of the lower-cased UA (plus "powershell" anywhere).
constexpr Token kClis[] = {
    {"curl/", "curl"},
    {"wget/", "wget"},
    {"python-requests/", "python-requests"},
    {"python-urllib/", "python-urllib"},
    {"python-httpx/", "python-httpx"},
    {"aiohttp/", "aiohttp"},
    {"go-http-client/", "go-http-client"},
    {"okhttp/", "okhttp"},
    {"httpie/", "httpie"},
    {"java/", "java"},
    {"libwww-perl/", "libwww-perl"},
    {"postmanruntime/", "postman"},
    {"node-fetch", "node-fetch"},
    {"axios/", "axios"},
};
// Substrings, first match wins: Edge and Opera announce Chrome too, Chrome announces Safari.
constexpr Token kBrowsers[] = {
    {"edg/", "edge"},        {"edga/", "edge"},       {"edgios/", "edge"},
    {"opr/", "opera"},       {"opera", "opera"},      {"samsungbrowser/", "samsung"},
    {"firefox/", "firefox"}, {"fxios/", "firefox"},   {"crios/", "chrome"},
    {"chrome/", "chrome"},   {"chromium/", "chrome"}, {"msie ", "ie"},
    {"trident/", "ie"},      {"safari/", "safari"},
};
constexpr Token kOses[] = {
    {"windows phone", "windows-phone"},
    {"android", "android"},
    {"iphone", "ios"},
    {"ipad", "ios"},
    {"ipod", "ios"},
    {"cros ", "chromeos"},
    {"mac os x", "macos"},
    {"macintosh", "macos"},
    {"windows", "windows"},
    {"linux", "linux"},
};

string_view browser_device(string_view ua) {
  if (has(ua, "ipad") || has(ua, "tablet") || (has(ua, "android") && !has(ua, "mobi"))) {
    return "tablet";
  }
  if (has(ua, "mobi") || has(ua, "iphone") || has(ua, "ipod") || has(ua, "android") ||
      has(ua, "windows phone")) {
    return "mobile";
  }
  return ua.starts_with("mozilla/") ? "desktop" : "unknown";
}

UaInfo classify_ua(string_view raw) {
  UaInfo info;
  if (raw.empty()) return info;
  const std::string ua = lower(raw);
  for (const Token& t : kOses) {
    if (has(ua, t.needle)) {
      info.os = t.family;
      break;
    }
  }
  for (const Token& t : kBots) {
    if (has(ua, t.needle)) return {t.family, "bot", info.os};
  }
  for (const Token& t : kClis) {
    if (string_view(ua).starts_with(t.needle)) return {t.family, "cli", info.os};
  }
  if (has(ua, "powershell")) return {"powershell", "cli", info.os};
  info.family = "other";
  for (const Token& t : kBrowsers) {
    if (has(ua, t.needle)) {
      info.family = t.family;
      break;
    }
  }
  info.device = browser_device(ua);
  return info;
}

// ---- URL ----

struct UrlParts {
  std::string scheme;  // "" for a bare path
  std::string host;    // "" for a bare path
  int port = -1;       // -1 when not given
  std::string path;
  size_t query_params = 0;
  std::string ext;  // "" when none
  string_view content_class;
};

bool valid_scheme(string_view s) {
  if (s.empty() || !std::isalpha(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
  });
}

std::string parse_authority(string_view auth, UrlParts& u) {
  if (const size_t at = auth.rfind('@'); at != string_view::npos) auth = auth.substr(at + 1);
  string_view port;
  if (auth.starts_with('[')) {
    const size_t close = auth.find(']');
    if (close == string_view::npos) return "url has an unterminated [IPv6] host";
    u.host = lower(auth.substr(1, close - 1));
    if (close + 1 < auth.size()) {
      if (auth[close + 1] != ':') return "url has junk after its [IPv6] host";
      port = auth.substr(close + 2);
    }
  } else {
    const size_t colon = auth.find(':');
    u.host = lower(auth.substr(0, colon));
    if (colon != string_view::npos) port = auth.substr(colon + 1);
  }
  if (u.host.empty()) return "url has an empty host";
  if (!port.empty()) {
    if (port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        std::stoi(std::string(port)) > 65535) {
      return "url has an invalid port";
    }
    u.port = std::stoi(std::string(port));
  }
  return "";
}

std::string file_extension(string_view path) {
  const string_view seg = path.substr(path.rfind('/') + 1);
  const size_t dot = seg.rfind('.');
  if (dot == string_view::npos || dot == 0 || dot + 1 == seg.size()) return "";
  const string_view ext = seg.substr(dot + 1);
  if (ext.size() > kExtBytesMax || !std::all_of(ext.begin(), ext.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0;
      })) {
    return "";
  }
  return lower(ext);
}

struct ExtClass {
  string_view exts;  // space separated
  string_view cls;
};

constexpr ExtClass kExtClasses[] = {
    {"html htm xhtml shtml php asp aspx jsp", "page"},
    {"png jpg jpeg gif webp avif svg ico bmp tif tiff heic", "image"},
    {"mp4 webm mov mkv avi m4v m3u8 mpd ts m4s", "video"},
    {"mp3 aac ogg oga wav flac m4a opus", "audio"},
    {"js mjs", "script"},
    {"css", "style"},
    {"woff woff2 ttf otf eot", "font"},
    {"pdf doc docx xls xlsx ppt pptx odt rtf txt csv md", "document"},
    {"zip tar gz tgz bz2 xz zst 7z rar", "archive"},
    {"exe dmg pkg deb rpm apk msi iso bin img wasm", "binary"},
    {"json xml yaml yml rss atom map webmanifest", "data"},
};

string_view content_class(const UrlParts& u) {
  if (u.path == "/api" || u.path.starts_with("/api/") || u.host.starts_with("api.")) return "api";
  if (u.ext.empty()) return "page";
  for (const ExtClass& c : kExtClasses) {
    const std::string padded = " " + std::string(c.exts) + " ";
    if (has(padded, " " + u.ext + " ")) return c.cls;
  }
  return "other";
}

std::string parse_url(string_view url, UrlParts& u) {
  if (url.empty() || url.size() > kUrlBytesMax) {
    return "url must be a string of 1.." + std::to_string(kUrlBytesMax) + " bytes";
  }
  for (const char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return "url must not contain spaces or control characters";
    }
  }
  string_view rest = url;
  const size_t sep = url.find("://");
  if (sep != string_view::npos && valid_scheme(url.substr(0, sep))) {
    u.scheme = lower(url.substr(0, sep));
    rest = url.substr(sep + 3);
    const size_t auth_end = rest.find_first_of("/?#");
    if (auto r = parse_authority(rest.substr(0, auth_end), u); !r.empty()) return r;
    rest = auth_end == string_view::npos ? string_view() : rest.substr(auth_end);
  } else if (url.front() != '/') {
    return "url must be an absolute URL (scheme://host/...) or a path starting with '/'";
  }
  rest = rest.substr(0, rest.find('#'));
  const size_t q = rest.find('?');
  u.path = std::string(rest.substr(0, q));
  if (u.path.empty()) u.path = "/";
  if (q != string_view::npos) {
    string_view query = rest.substr(q + 1);
    while (!query.empty()) {
      const size_t amp = query.find('&');
      if (amp != 0) ++u.query_params;
      query = amp == string_view::npos ? string_view() : query.substr(amp + 1);
    }
  }
  u.ext = file_extension(u.path);
  u.content_class = content_class(u);
  return "";
}

// ---- time ----

bool digits(string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

// RFC 3339: YYYY-MM-DD(T|t| )HH:MM:SS[.frac](Z|z|+HH:MM|-HH:MM).
bool parse_rfc3339(string_view s, int64_t& epoch_s) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, oh = 0, om = 0;
  if (!digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' ||
      !digits(s, 17, 2, sec) || h > 23 || mi > 59 || sec > 60) {
    return false;
  }
  size_t pos = 19;
  if (s[pos] == '.') {
    const size_t start = ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start || pos - start > 9) return false;
  }
  int sign = 0;
  if (pos + 1 == s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    sign = 0;
  } else if (pos + 6 == s.size() && (s[pos] == '+' || s[pos] == '-') && digits(s, pos + 1, 2, oh) &&
             s[pos + 3] == ':' && digits(s, pos + 4, 2, om) && oh <= 23 && om <= 59) {
    sign = s[pos] == '+' ? 1 : -1;
  } else {
    return false;
  }
  const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month(mo),
                                        std::chrono::day(d)};
  if (!ymd.ok()) return false;
  const int64_t days = std::chrono::sys_days(ymd).time_since_epoch().count();
  epoch_s = days * 86'400 + h * 3'600 + mi * 60 + sec - sign * (oh * 3'600 + om * 60);
  return true;
}

std::string parse_ts(const json& v, int64_t& epoch_s) {
  const std::string reason =
      "ts must be an RFC 3339 string or epoch seconds/milliseconds between 1970 and 9999";
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (s.size() > kTsBytesMax || !parse_rfc3339(s, epoch_s)) return reason;
  } else if (v.is_number_integer()) {
    uint64_t t = 0;
    if (!json_u64(v, std::numeric_limits<uint64_t>::max(), t)) return reason;
    if (t >= static_cast<uint64_t>(kEpochMsThreshold)) t /= 1000;
    if (t > static_cast<uint64_t>(kEpochSecondsMax)) return reason;
    epoch_s = static_cast<int64_t>(t);
  } else if (v.is_number_float()) {
    double t = v.get<double>();
    if (!std::isfinite(t) || t < 0) return reason;
    if (t >= static_cast<double>(kEpochMsThreshold)) t /= 1000;
    if (t > static_cast<double>(kEpochSecondsMax)) return reason;
    epoch_s = static_cast<int64_t>(std::floor(t));
  } else {
    return reason;
  }
  if (epoch_s < 0 || epoch_s > kEpochSecondsMax) return reason;
  return "";
}

// "YYYY-MM-DDTHH:MM:SSZ", or "YYYY-MM-DDTHH:00:00Z" when `hour_only`.
std::string format_utc(int64_t epoch_s, bool hour_only) {
  const int64_t days = epoch_s / 86'400;
  const int64_t secs = epoch_s % 86'400;
  const std::chrono::year_month_day ymd{std::chrono::sys_days(std::chrono::days(days))};
  const int minute = hour_only ? 0 : static_cast<int>(secs % 3'600 / 60);
  const int second = hour_only ? 0 : static_cast<int>(secs % 60);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(secs / 3'600), minute, second);
  return buf;
}

// ---- records ----

struct Record {
  int64_t ts_s = 0;
  IpInfo ip;
  UaInfo ua;
  UrlParts url;
  uint64_t status = 0;
  uint64_t bytes = 0;
};

std::string parse_fields(const json& rec, Record& r) {
  const auto ip = rec.find("ip");
  if (ip == rec.end() || !ip->is_string() ||
      ip->get_ref<const std::string&>().size() > kIpBytesMax ||
      !classify_ip(ip->get_ref<const std::string&>(), r.ip)) {
    return "ip must be an IPv4 or IPv6 address";
  }
  const auto ua = rec.find("ua");
  if (ua != rec.end()) {
    if (!ua->is_string() || ua->get_ref<const std::string&>().size() > kUaBytesMax) {
      return "ua must be a string of at most " + std::to_string(kUaBytesMax) + " bytes";
    }
    r.ua = classify_ua(ua->get_ref<const std::string&>());
  }
  const auto url = rec.find("url");
  if (url == rec.end() || !url->is_string()) return "url must be a string";
  return parse_url(url->get_ref<const std::string&>(), r.url);
}

std::string parse_record(const json& rec, Record& r) {
  if (!rec.is_object()) return "record must be an object";
  const auto ts = rec.find("ts");
  if (ts == rec.end()) return "ts is missing";
  if (auto e = parse_ts(*ts, r.ts_s); !e.empty()) return e;
  if (auto e = parse_fields(rec, r); !e.empty()) return e;
  const auto status = rec.find("status");
  if (status == rec.end() || !json_u64(*status, kStatusMax, r.status) || r.status < kStatusMin) {
    return "status must be an integer " + std::to_string(kStatusMin) + ".." +
           std::to_string(kStatusMax);
  }
  const auto bytes = rec.find("bytes");
  if (bytes != rec.end() && !json_u64(*bytes, kRecordBytesMax, r.bytes)) {
    return "bytes must be an integer 0.." + std::to_string(kRecordBytesMax);
  }
  return "";
}

json enriched_json(const json& rec, const Record& r) {
  json out = json::object();
  for (const char* key : {"ts", "ip", "ua", "url", "status", "bytes"}) {
    if (const auto it = rec.find(key); it != rec.end()) out[key] = *it;
  }
  out["ts_utc"] = format_utc(r.ts_s, false);
  out["hour_bucket"] = format_utc(r.ts_s, true);
  out["ip_version"] = r.ip.version;
  out["ip_class"] = r.ip.cls;
  out["ua_family"] = r.ua.family;
  out["device_class"] = r.ua.device;
  out["os"] = r.ua.os;
  out["url_scheme"] = r.url.scheme.empty() ? json(nullptr) : json(r.url.scheme);
  out["url_host"] = r.url.host.empty() ? json(nullptr) : json(r.url.host);
  out["url_port"] = r.url.port < 0 ? json(nullptr) : json(r.url.port);
  out["url_path"] = r.url.path;
  out["url_query_params"] = r.url.query_params;
  out["url_ext"] = r.url.ext.empty() ? json(nullptr) : json(r.url.ext);
  out["content_class"] = r.url.content_class;
  out["status_class"] = std::to_string(r.status / 100) + "xx";
  return out;
}

// ---- summary ----

struct PathStat {
  uint64_t hits = 0;
  uint64_t bytes = 0;
};

struct Summary {
  uint64_t valid = 0;
  uint64_t invalid = 0;
  uint64_t bytes_total = 0;
  std::map<std::string, uint64_t, std::less<>> by_ip_class, by_device, by_ua_family, by_os,
      by_status_class, by_content_class, bytes_by_content_class;
  std::map<std::string, PathStat, std::less<>> paths;
  int64_t ts_min = std::numeric_limits<int64_t>::max();
  int64_t ts_max = std::numeric_limits<int64_t>::min();

  void add(const Record& r) {
    ++valid;
    bytes_total += r.bytes;
    ++by_ip_class[std::string(r.ip.cls)];
    ++by_device[std::string(r.ua.device)];
    ++by_ua_family[std::string(r.ua.family)];
    ++by_os[std::string(r.ua.os)];
    ++by_status_class[std::to_string(r.status / 100) + "xx"];
    ++by_content_class[std::string(r.url.content_class)];
    bytes_by_content_class[std::string(r.url.content_class)] += r.bytes;
    PathStat& p = paths[r.url.path];
    ++p.hits;
    p.bytes += r.bytes;
    ts_min = std::min(ts_min, r.ts_s);
    ts_max = std::max(ts_max, r.ts_s);
  }

  json top_paths() const {
    std::vector<std::pair<string_view, PathStat>> all(paths.begin(), paths.end());
    const size_t n = std::min(all.size(), kTopPathsMax);
    std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), all.end(),
                      [](const auto& a, const auto& b) {
                        if (a.second.hits != b.second.hits) return a.second.hits > b.second.hits;
                        if (a.second.bytes != b.second.bytes)
                          return a.second.bytes > b.second.bytes;
                        return a.first < b.first;
                      });
    json out = json::array();
    for (size_t i = 0; i < n; ++i) {
      out.push_back(
          {{"path", all[i].first}, {"hits", all[i].second.hits}, {"bytes", all[i].second.bytes}});
    }
    return out;
  }

  json to_json() const {
    json range = nullptr;
    if (valid > 0)
      range = {{"first", format_utc(ts_min, false)}, {"last", format_utc(ts_max, false)}};
    return {{"records", valid + invalid},
            {"valid", valid},
            {"invalid", invalid},
            {"bytes_total", bytes_total},
            {"by_ip_class", by_ip_class},
            {"by_device_class", by_device},
            {"by_ua_family", by_ua_family},
            {"by_os", by_os},
            {"by_status_class", by_status_class},
            {"by_content_class", by_content_class},
            {"bytes_by_content_class", bytes_by_content_class},
            {"top_paths", top_paths()},
            {"time_range", range}};
  }
};

std::string parse_payload(const json& p, bool& summary_only) {
  if (auto r = check_object(p, "payload", {"records", "summary_only"}); !r.empty()) return r;
  const auto records = p.find("records");
  if (records == p.end() || !records->is_array() || records->size() > kEnrichRecordsMax) {
    return "payload.records must be an array of at most " + std::to_string(kEnrichRecordsMax) +
           " records";
  }
  const auto flag = p.find("summary_only");
  if (flag != p.end() && !flag->is_boolean()) return "payload.summary_only must be a boolean";
  summary_only = flag != p.end() && flag->get<bool>();
  return "";
}

}  // namespace

std::string validate_enrich(const json& payload) {
  bool summary_only = false;
  return parse_payload(payload, summary_only);
}

HandlerOutcome run_enrich(const JobContext& ctx, CancelToken& cancel) {
  bool summary_only = false;
  if (auto r = parse_payload(ctx.payload, summary_only); !r.empty()) {
    return HandlerOutcome::failure(r);
  }
  const json& records = ctx.payload["records"];
  Summary summary;
  json out = json::array();
  for (size_t i = 0; i < records.size(); ++i) {
    if (i % kEnrichCancelPollRecords == 0 && cancel.cancelled()) {
      return HandlerOutcome::stopped("enrich cancelled after " + std::to_string(i) + " records");
    }
    Record r;
    if (auto e = parse_record(records[i], r); !e.empty()) {
      ++summary.invalid;
      if (!summary_only) out.push_back(json{{"error", std::move(e)}});
      continue;
    }
    summary.add(r);
    if (!summary_only) out.push_back(enriched_json(records[i], r));
  }
  json result{{"summary", summary.to_json()}};
  if (!summary_only) result["records"] = std::move(out);
  return HandlerOutcome::success(std::move(result));
}

}  // namespace meshwork::handler_impl
