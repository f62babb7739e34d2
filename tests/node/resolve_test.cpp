// node/resolve.h: --join and --advertise hosts to IPv4 addresses.
#include "node/resolve.h"

#include <doctest/doctest.h>

namespace meshwork {

TEST_CASE("an IPv4 literal is taken as it is and a name resolves to IPv4") {
  CHECK(resolve_ipv4("10.0.0.7", "--advertise").value() == "10.0.0.7");
  CHECK(resolve_host_port("10.0.0.7:7001", "--join").value() == "10.0.0.7:7001");
  auto local = resolve_host_port("localhost:7001", "--join");
  REQUIRE(local.is_ok());
  CHECK(local.value().starts_with("127."));
  CHECK(local.value().ends_with(":7001"));
}

TEST_CASE("a host that cannot be used is an error that names the flag") {
  for (const char* bad : {"no-port", ":7001", "no-such-host.invalid:7001"}) {
    auto r = resolve_host_port(bad, "--join");
    CHECK_FALSE(r.is_ok());
    CHECK(r.status().code() == Code::invalid);
    CHECK(r.status().message().starts_with("--join"));
  }
  CHECK_FALSE(resolve_ipv4("", "--advertise").is_ok());
  CHECK_FALSE(resolve_ipv4(std::string(300, 'a'), "--advertise").is_ok());
}

TEST_CASE("the wildcard hosts are recognised") {
  for (const char* any : {"", "0.0.0.0", "::", "[::]"}) CHECK(is_wildcard_host(any));
  for (const char* one : {"127.0.0.1", "10.0.0.1", "localhost"}) CHECK_FALSE(is_wildcard_host(one));
}

}  // namespace meshwork
