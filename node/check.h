// MESHWORK_CHECK: an assertion that stays on in release builds (STYLE.md: TigerBeetle keeps its
// assertions on). A failed check is a bug in this process, never bad input: it logs the condition
// and where, then aborts. Bad input from outside gets an error value instead.
// Thread-safety: callable from any thread.
#pragma once

#include <cstdio>
#include <cstdlib>

#define MESHWORK_CHECK(cond)                                                        \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)
