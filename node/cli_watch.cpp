// `meshwork watch`: GET /v1/events (text/event-stream) and one line per event as it arrives.
// With --job it first prints the job's current state (a stream carries changes only, and the job
// may have finished before the subscription), and exits once the job is terminal: 0 succeeded,
// 1 failed or cancelled. Otherwise it runs until interrupted; a stream the node ends or that stays
// silent for three ping periods exits 4.
#include <iostream>

#include "dht/envelope.h"
#include "node/cli_common.h"
#include "node/clock.h"

namespace meshwork::cli {
namespace {

using nlohmann::json;

constexpr size_t kEventBytesMax = 1 << 20;  // a longer line ends the stream: not our node
constexpr time_t kSilenceS = 3 * 15;        // the node sends ": ping" every 15 s

// Splits an event stream into (event, data) pairs: "event:" and "data:" lines, a blank line ends
// an event, lines that start with ':' are comments (the node's pings).
class EventStream {
 public:
  // Feeds received bytes; calls on_event(name, data) per complete event while it returns true.
  // Returns false when on_event asked to stop or a line exceeds kEventBytesMax.
  template <typename OnEvent>
  bool feed(const char* bytes, size_t n, OnEvent&& on_event) {
    buf_.append(bytes, n);
    size_t start = 0;
    for (size_t nl; (nl = buf_.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(buf_.data() + start, nl - start);
      if (line.ends_with('\r')) line.remove_suffix(1);
      if (line.empty()) {
        const bool go_on = data_.empty() || on_event(event_.empty() ? "message" : event_, data_);
        event_.clear();
        data_.clear();
        if (!go_on) return false;
      } else if (line.starts_with("event:")) {
        event_ = trim(line.substr(6));
      } else if (line.starts_with("data:")) {
        data_ += (data_.empty() ? "" : "\n") + trim(line.substr(5));
      }
    }
    buf_.erase(0, start);
    return buf_.size() + data_.size() <= kEventBytesMax;
  }

 private:
  static std::string trim(std::string_view v) {
    return std::string(v.starts_with(' ') ? v.substr(1) : v);
  }
  std::string buf_, event_, data_;
};

std::string field(const json& d, const char* key) {
  if (!d.is_object() || !d.contains(key) || d[key].is_null()) return "-";
  return d[key].is_string() ? d[key].get<std::string>() : d[key].dump();
}

void print_event(const ClientArgs& a, const std::string& name, const json& d) {
  if (a.json) {
    std::cout << json{{"event", name}, {"data", d}}.dump() << std::endl;
    return;
  }
  const bool at = d.is_object() && d.contains("at_ms") && d["at_ms"].is_number_unsigned();
  std::cout << utc_time(at ? d["at_ms"].get<uint64_t>() : wall_ms()) << " " << name << " ";
  if (name == "job")
    std::cout << field(d, "id") << " " << field(d, "state") << " type=" << field(d, "type")
              << " node=" << field(d, "node") << " attempt=" << field(d, "attempt");
  else if (name == "member")
    std::cout << field(d, "name") << " " << field(d, "state")
              << " incarnation=" << field(d, "incarnation") << " " << field(d, "address");
  else
    std::cout << d.dump();
  std::cout << std::endl;
}

// The followed job's current state as an event (its node: the one that made the last change, as
// in the stream); nullopt when it cannot be read.
std::optional<json> job_now(const ClientArgs& a) {
  auto c = client_for(a);
  auto r = c.Get("/v1/jobs/" + a.id);
  if (!r || r->status != 200) return std::nullopt;
  json j = json::parse(r->body, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  const json history = j.value("history", json::array());
  const json last = history.is_array() && !history.empty() ? history.back() : json::object();
  return json{
      {"id", j.value("id", "")},           {"state", j.value("state", "")},
      {"type", j.value("type", "")},       {"node", last.is_object() ? last.value("node", "") : ""},
      {"attempt", j.value("attempts", 0)}, {"at_ms", j.value("updated_at", uint64_t{0})}};
}

}  // namespace

int watch(const ClientArgs& a) {
  if (!a.id.empty() && !is_job_id(a.id)) return fail("'" + a.id + "' is not a job id", kExitUsage);
  httplib::Params q;
  if (!a.id.empty()) q.emplace("job", a.id);
  if (!a.kinds.empty()) q.emplace("kinds", a.kinds);
  auto c = client_for(a);
  c.set_read_timeout(kSilenceS);
  int status = 0, exit_code = -1;
  std::string error_body;
  EventStream stream;
  // Ends the watch when the followed job is terminal.
  std::string last;  // the followed job's last state printed: its first event may repeat it
  auto seen = [&](const std::string& name, const json& d) {
    const bool followed = !a.id.empty() && name == "job" && field(d, "id") == a.id;
    const std::string now = field(d, "state") + "/" + field(d, "attempt");
    if (!followed || now != last) print_event(a, name, d);
    if (!followed) return true;
    last = now;
    if (!is_terminal(field(d, "state"))) return true;
    exit_code = field(d, "state") == "succeeded" ? kExitOk : kExitJobFailed;
    return false;
  };
  auto on_response = [&](const httplib::Response& res) {
    status = res.status;
    if (status != 200 || a.id.empty()) return true;
    const auto now = job_now(a);
    return !now || seen("job", *now);
  };
  auto on_bytes = [&](const char* bytes, size_t n) {
    if (status != 200) {
      if (error_body.size() < kEventBytesMax) error_body.append(bytes, n);
      return true;
    }
    return stream.feed(bytes, n, [&](const std::string& name, const std::string& data) {
      const json d = json::parse(data, nullptr, false);
      return seen(name, d.is_discarded() ? json(data) : d);
    });
  };
  auto r = c.Get("/v1/events", q, httplib::Headers{{"Accept", "text/event-stream"}}, on_response,
                 on_bytes);
  if (exit_code >= 0) return exit_code;
  if (status != 0 && status != 200) {
    httplib::Response res;
    res.status = status;
    res.body = error_body;
    return fail(problem_text(res), status >= 500 ? kExitDown : kExitRefused);
  }
  if (!r && r.error() != httplib::Error::Canceled) return fail_answer(r);
  return fail("the node ended the event stream", kExitDown);
}

}  // namespace meshwork::cli
