#include "gossip/types.h"

#include <doctest/doctest.h>

using namespace meshwork::gossip;

TEST_CASE("addresses print and parse") {
  const Address a{0x7f000001, 7001};
  CHECK(to_string(a) == "127.0.0.1:7001");
  CHECK(parse_address("127.0.0.1:7001") == a);
  CHECK(parse_address("255.255.255.255:65535") == Address{0xffffffff, 65535});
  CHECK(parse_address("0.0.0.0:0") == Address{0, 0});
  for (const char* bad :
       {"", "127.0.0.1", "127.0.0.1:", "127.0.0:1", "127.0.0.1.1:1", "256.0.0.1:1", "1.2.3.4:65536",
        "a.b.c.d:1", "1..2.3:4", "1.2.3.4:-1", "localhost:7001", "1.2.3.4:7001x", " 1.2.3.4:1"}) {
    CHECK_MESSAGE(!parse_address(bad), bad);
  }
}

TEST_CASE("member states have names") {
  CHECK(to_string(MemberState::alive) == "alive");
  CHECK(to_string(MemberState::suspect) == "suspect");
  CHECK(to_string(MemberState::dead) == "dead");
  CHECK(to_string(MemberState::left) == "left");
}
