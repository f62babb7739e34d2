// Names the calling thread (at most 15 characters), so that top -H, perf and /proc show what each
// of a node's threads is (docs/architecture.md lists them).
#pragma once

#include <pthread.h>

namespace meshwork {

inline void name_this_thread(const char* name) {
  (void)pthread_setname_np(pthread_self(), name);
}

}  // namespace meshwork
