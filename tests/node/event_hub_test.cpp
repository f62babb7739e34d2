// EventHub: filters, the change rule, the bound on streams, dropping a reader that falls behind,
// and close() waking waiters.
#include <doctest/doctest.h>

#include <thread>

#include "node/event_hub.h"

namespace meshwork {
namespace {

using std::chrono::milliseconds;

JobRecord job(const std::string& id, JobState state, uint32_t attempt, const std::string& node) {
  JobRecord r;
  r.id = id;
  r.type = "echo";
  r.status.state = state;
  r.status.attempt = attempt;
  r.status.node = node;
  r.add_history(state, node, attempt, 1'000 + attempt,
                attempt > 1 ? "owner n1 dead; n2 takes over" : "");
  return r;
}

std::vector<std::string> drain(EventHub::Subscription& s) {
  std::vector<std::string> out;
  while (s.next(milliseconds(0), out) == EventHub::Wait::events) {
  }
  return out;
}

TEST_CASE("nothing is rendered while nobody listens; a change reaches matching filters once") {
  EventHub hub;
  CHECK_FALSE(hub.wanted());
  hub.publish_job(job("a", JobState::queued, 0, "n1"));
  CHECK(hub.published() == 0);

  auto all = hub.subscribe(EventFilter{}, true).value();
  auto only_b = hub.subscribe(EventFilter{"b", true, false}, false).value();
  auto members = hub.subscribe(EventFilter{"", false, true}, true).value();
  CHECK(hub.wanted());
  CHECK(hub.streams() == 2);

  hub.publish_job(job("a", JobState::queued, 0, "n1"));
  hub.publish_job(job("a", JobState::queued, 0, "n1"));  // the same state again: no event
  hub.publish_job(job("b", JobState::running, 1, "n1"));
  hub.publish_job(job("b", JobState::running, 2, "n2"));  // a takeover: a new attempt
  hub.publish_member("n1", "dead", 7, "127.0.0.1:8001");

  auto got = drain(*all);
  REQUIRE(got.size() == 4);
  CHECK(got[0].rfind("event: job\ndata: {", 0) == 0);
  CHECK(got[0].find("\"id\":\"a\"") != std::string::npos);
  CHECK(got[0].size() > 2);
  CHECK(got[0].substr(got[0].size() - 2) == "\n\n");
  CHECK(got[2].find("takes over") != std::string::npos);
  CHECK(got[3].find("event: member") == 0);
  CHECK(got[3].find("\"state\":\"dead\"") != std::string::npos);

  auto b = drain(*only_b);
  REQUIRE(b.size() == 2);
  for (const auto& f : b) CHECK(f.find("\"id\":\"b\"") != std::string::npos);

  auto m = drain(*members);
  REQUIRE(m.size() == 1);
  CHECK(m[0].find("\"name\":\"n1\"") != std::string::npos);
}

TEST_CASE("streams are bounded; long-polls are not counted; leaving frees a place") {
  EventHub hub(EventHub::Options{2, 16});
  auto s1 = hub.subscribe(EventFilter{}, true);
  auto s2 = hub.subscribe(EventFilter{}, true);
  REQUIRE(s1.is_ok());
  REQUIRE(s2.is_ok());
  auto s3 = hub.subscribe(EventFilter{}, true);
  REQUIRE_FALSE(s3.is_ok());
  CHECK(s3.status().code() == Code::overloaded);
  CHECK(hub.subscribe(EventFilter{"x", true, false}, false).is_ok());
  s1.value().reset();
  CHECK(hub.streams() == 1);
  CHECK(hub.subscribe(EventFilter{}, true).is_ok());
}

TEST_CASE("a reader that falls behind is dropped, not buffered") {
  EventHub hub(EventHub::Options{4, 8});
  auto slow = hub.subscribe(EventFilter{}, true).value();
  auto fast = hub.subscribe(EventFilter{}, true).value();
  std::vector<std::string> seen;
  for (uint32_t i = 1; i <= 20; ++i) {
    hub.publish_job(job("j", JobState::running, i, "n1"));
    REQUIRE(fast->next(milliseconds(0), seen) == EventHub::Wait::events);
  }
  CHECK(seen.size() == 20);
  std::vector<std::string> none;
  CHECK(slow->next(milliseconds(0), none) == EventHub::Wait::dropped);
  CHECK(none.empty());
  CHECK(hub.dropped() == 1);
  hub.publish_job(job("j", JobState::succeeded, 21, "n1"));  // nothing more for a dropped reader
  CHECK(slow->next(milliseconds(0), none) == EventHub::Wait::dropped);
}

TEST_CASE("next() waits for an event and close() wakes every waiter") {
  EventHub hub;
  auto s = hub.subscribe(EventFilter{}, true).value();
  std::vector<std::string> out;
  CHECK(s->next(milliseconds(1), out) == EventHub::Wait::timeout);
  std::thread publisher([&] {
    std::this_thread::sleep_for(milliseconds(20));
    hub.publish_member("n2", "alive", 1, "127.0.0.1:8002");
  });
  CHECK(s->next(milliseconds(10'000), out) == EventHub::Wait::events);
  publisher.join();
  CHECK(out.size() == 1);
  std::thread closer([&] {
    std::this_thread::sleep_for(milliseconds(20));
    hub.close();
  });
  CHECK(s->next(milliseconds(10'000), out) == EventHub::Wait::closed);
  closer.join();
  CHECK_FALSE(hub.subscribe(EventFilter{}, false).is_ok());
}

}  // namespace
}  // namespace meshwork
