#include "gossip/awareness.h"

namespace meshwork::gossip {

void Awareness::apply_delta(int delta) {
  const int64_t next = static_cast<int64_t>(score_) + delta;
  if (next < 0) {
    score_ = 0;
  } else if (next >= static_cast<int64_t>(max_)) {
    score_ = max_ - 1;
  } else {
    score_ = static_cast<uint32_t>(next);
  }
}

}  // namespace meshwork::gossip
