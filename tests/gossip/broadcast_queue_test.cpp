#include "gossip/broadcast_queue.h"

#include <doctest/doctest.h>

using namespace meshwork::gossip;

namespace {

std::vector<uint8_t> msg(uint8_t tag, std::size_t size) {
  return std::vector<uint8_t>(size, tag);
}

}  // namespace

TEST_CASE("retransmit limit is lambda * ceil(log10(N + 1))") {
  CHECK(retransmit_limit(4, 0) == 4);  // never below lambda
  CHECK(retransmit_limit(4, 1) == 4);
  CHECK(retransmit_limit(4, 9) == 4);
  CHECK(retransmit_limit(4, 10) == 8);
  CHECK(retransmit_limit(4, 99) == 8);
  CHECK(retransmit_limit(4, 100) == 12);
  CHECK(retransmit_limit(3, 10000) == 15);
}

TEST_CASE("each update is sent transmit_limit times, then dropped") {
  BroadcastQueue q;
  q.push("n1", msg(1, 10));
  std::vector<uint8_t> out;
  for (int i = 0; i < 3; ++i) {
    out.clear();
    CHECK(q.fill(out, 100, 3) == 1);
    CHECK(out == msg(1, 10));
  }
  CHECK(q.empty());
  out.clear();
  CHECK(q.fill(out, 100, 3) == 0);
  CHECK(out.empty());
}

TEST_CASE("a newer update about a member replaces the older one") {
  BroadcastQueue q;
  q.push("n1", msg(1, 10));
  std::vector<uint8_t> out;
  CHECK(q.fill(out, 100, 5) == 1);  // transmitted once already
  q.push("n1", msg(2, 10));
  CHECK(q.size() == 1);
  out.clear();
  CHECK(q.fill(out, 100, 5) == 1);
  CHECK(out == msg(2, 10));
}

TEST_CASE("least transmitted first, newest first among equals, and the budget is respected") {
  BroadcastQueue q;
  q.push("a", msg(1, 10));
  std::vector<uint8_t> out;
  CHECK(q.fill(out, 100, 10) == 1);  // a: 1 transmit
  q.push("b", msg(2, 10));
  q.push("c", msg(3, 10));
  out.clear();
  CHECK(q.fill(out, 25, 10) == 2);  // c (newest, 0), b (0); a does not fit
  CHECK(out == std::vector<uint8_t>{3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2});
  out.clear();
  CHECK(q.fill(out, 10, 10) == 1);  // all at 1 transmit now: newest first
  CHECK(out == msg(3, 10));
  out.clear();
  CHECK(q.fill(out, 9, 10) == 0);  // nothing small enough
}

TEST_CASE("the queue is bounded: the most transmitted, oldest updates go first") {
  BroadcastQueue q(3);
  q.push("a", msg(1, 1));
  std::vector<uint8_t> out;
  CHECK(q.fill(out, 1, 10) == 1);  // a has 1 transmit
  q.push("b", msg(2, 1));
  q.push("c", msg(3, 1));
  q.push("d", msg(4, 1));  // evicts a
  CHECK(q.size() == 3);
  out.clear();
  CHECK(q.fill(out, 10, 10) == 3);
  CHECK(out == std::vector<uint8_t>{4, 3, 2});
  q.push("a", msg(5, 1));  // a can come back; the key map stayed consistent
  out.clear();
  CHECK(q.fill(out, 1, 10) == 1);
  CHECK(out == msg(5, 1));
}

TEST_CASE("erase_if drops the matching updates only, and a member can be queued again") {
  BroadcastQueue q;
  q.push("n1", msg(6, 10));
  q.push("n2", msg(5, 10));
  q.push("n3", msg(7, 10));
  CHECK(q.erase_if([](std::span<const uint8_t> m) { return m[0] == 6 || m[0] == 7; }) == 2);
  CHECK(q.size() == 1);
  std::vector<uint8_t> out;
  CHECK(q.fill(out, 100, 10) == 1);
  CHECK(out == msg(5, 10));
  q.push("n1", msg(5, 10));
  CHECK(q.size() == 2);
}
