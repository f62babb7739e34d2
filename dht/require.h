// dht::require: a precondition that stays on in release builds. A broken one is a bug in the
// caller (never bad input, which gets an error value): it prints what broke and aborts before
// anything wrong is sent or stored.
// Thread-safety: callable from any thread.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace meshwork::dht {

inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "meshwork::dht: precondition failed: %s\n", what);
    std::abort();
  }
}

}  // namespace meshwork::dht
