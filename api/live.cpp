// Completion push: the long-poll of GET /v1/jobs/{id}?wait_s=N and the server-sent events of
// GET /v1/events (see server.h, docs/api.md).
//
// Both follow a job the same way. A node that holds a copy of the job (it is one of its replicas)
// hears of every change to it as its core persists it (EventHub), so it answers as soon as the
// change lands here; it reads the job again at least every kHeldRereadMs anyway. A node that
// holds no copy hears nothing of the job, so it reads it from the replicas every kRemotePollMs —
// the bound on how late a long-poll can answer there.
#include <chrono>

#include "api/params.h"
#include "api/problem.h"
#include "api/server.h"
#include "node/clock.h"

namespace meshwork::api {
namespace {

using std::chrono::milliseconds;

constexpr uint64_t kHeldRereadMs = 1'000;
constexpr uint64_t kRemotePollMs = 50;
constexpr uint64_t kStreamRemotePollMs = 250;  // a stream's job= filter on a node without a copy
// A comment line keeps an idle stream open through proxies, and is how the node learns that its
// reader has gone (the second write after the peer closed fails), which frees the stream's place.
constexpr uint64_t kPingMs = 5'000;
constexpr size_t kKindsBytesMax = 64;

bool terminal(JobState s) {
  return s == JobState::succeeded || s == JobState::failed || s == JobState::cancelled;
}

// Parses GET /v1/events' query; Code::invalid for anything it does not know.
Result<EventFilter> parse_filter(const httplib::Request& req) {
  EventFilter f;
  for (const auto& [key, value] : req.params) {
    if (key == "job") {
      if (!is_job_id(value)) return Status(Code::invalid, "job must be a job id");
      f.job = value;
    } else if (key == "kinds") {
      if (value.empty() || value.size() > kKindsBytesMax)
        return Status(Code::invalid, "kinds must be a comma-separated list of job, member");
      f.jobs = f.members = false;
      size_t at = 0;
      while (at <= value.size()) {
        size_t comma = value.find(',', at);
        if (comma == std::string::npos) comma = value.size();
        const std::string_view kind(value.data() + at, comma - at);
        if (kind == "job") {
          f.jobs = true;
        } else if (kind == "member") {
          f.members = true;
        } else {
          return Status(Code::invalid, "unknown event kind '" + std::string(kind.substr(0, 32)) +
                                           "'; kinds are job and member");
        }
        at = comma + 1;
      }
    } else {
      return Status(Code::invalid, "unknown parameter '" + key.substr(0, 32) +
                                       "'; GET /v1/events takes job and kinds");
    }
  }
  if (!f.job.empty() && !f.jobs)
    return Status(Code::invalid, "job= filters job events; kinds must include job");
  return f;
}

}  // namespace

Result<JobRecord> ApiServer::read_job_waiting(const std::string& id, bool local, uint64_t wait_ms) {
  InflightGuard waiting(waits_);
  std::unique_ptr<EventHub::Subscription> sub;
  if (waiting.value() <= options_.waits_max) {
    // Subscribed before the first read, so a change between the read and the wait is not missed.
    auto s = services_.events.subscribe(EventFilter{id, true, false}, false);
    if (s.is_ok()) sub = std::move(s).value();
  }
  const uint64_t deadline = mono_ms() + wait_ms;
  std::vector<std::string> frames;
  for (;;) {
    auto got = read_job(id, local);
    if (!got.is_ok() || terminal(got.value().status.state) || !sub) return got;
    const uint64_t now = mono_ms();
    if (now >= deadline) return got;
    const auto snap = services_.driver.snapshot();
    const bool held = snap.placement && snap.placement->is_replica(id, snap.placement->self());
    const uint64_t step = std::min(deadline - now, held ? kHeldRereadMs : kRemotePollMs);
    frames.clear();
    const auto why = sub->next(milliseconds(step), frames);
    if (why == EventHub::Wait::closed) return Status(Code::unavailable, "the node is stopping");
    // A long-poll's queue holds one job's changes, far below its bound; should it ever overflow,
    // the loop reads once more and answers with what it finds.
    if (why == EventHub::Wait::dropped) sub.reset();
  }
}

void ApiServer::events(const httplib::Request& req, httplib::Response& res) {
  auto filter = parse_filter(req);
  if (!filter.is_ok()) return problem(res, filter.status());
  auto sub = services_.events.subscribe(filter.value(), true);
  if (!sub.is_ok()) return problem(res, sub.status());

  // The stream's state, shared with the provider cpp-httplib calls until it returns false.
  struct Stream {
    std::unique_ptr<EventHub::Subscription> sub;
    bool started = false;
    uint64_t last_write_ms = 0;
    uint64_t next_read_ms = 0;
    std::string followed;  // job=: the data of the job event last sent
  };
  auto st = std::make_shared<Stream>();
  st->sub = std::move(sub).value();
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider("text/event-stream", [this, st](size_t,
                                                                   httplib::DataSink& sink) {
    const EventFilter& f = st->sub->filter();
    std::string out;
    if (!st->started) {
      st->started = true;
      out = ": meshwork events\nretry: 2000\n\n";
    }
    // job=: the job's state now, and again whenever a read finds it changed (a node without
    // a copy hears of the job no other way).
    const uint64_t now = mono_ms();
    if (!f.job.empty() && now >= st->next_read_ms) {
      const auto snap = services_.driver.snapshot();
      const bool held = snap.placement && snap.placement->is_replica(f.job, snap.placement->self());
      st->next_read_ms = now + (held ? kHeldRereadMs : kStreamRemotePollMs);
      auto got = read_job(f.job, false);
      if (got.is_ok()) {
        std::string data = job_event_json(got.value(), wall_ms());
        if (data != st->followed) {
          out += "event: job\ndata: " + data + "\n\n";
          st->followed = std::move(data);
        }
      }
    }
    // Wait for pushed events unless there is something to send now. Under job= a push only
    // says "read again": the read sends the merged state once, however many copies changed.
    std::vector<std::string> frames;
    const uint64_t wait =
        !out.empty()    ? 0
        : f.job.empty() ? kHeldRereadMs
                        : std::max<int64_t>(0, int64_t(st->next_read_ms) - int64_t(mono_ms()));
    switch (st->sub->next(milliseconds(wait), frames)) {
      case EventHub::Wait::closed:
        sink.done();
        return false;
      case EventHub::Wait::dropped:
        out += "event: dropped\ndata: {\"detail\":\"the reader fell behind\"}\n\n";
        (void)sink.write(out.data(), out.size());
        return false;
      case EventHub::Wait::events:
        if (!f.job.empty()) {
          st->next_read_ms = 0;
        } else {
          for (const std::string& fr : frames) out += fr;
        }
        break;
      case EventHub::Wait::timeout:
        break;
    }
    if (out.empty() && mono_ms() - st->last_write_ms >= kPingMs) out = ": ping\n\n";
    if (out.empty()) return true;
    st->last_write_ms = mono_ms();
    return sink.write(out.data(), out.size());
  });
}

}  // namespace meshwork::api
