// Transmit-limited queue of membership updates piggybacked on outgoing packets (memberlist's
// TransmitLimitedQueue).
//
// Each queued update is one encoded message about one member. Updates that have been sent the
// fewest times go first; among equals, the newest. An update is dropped after it has been sent
// retransmit_limit(mult, N) = mult * ceil(log10(N + 1)) times.
//
// Thread-safety: none; owned by one Membership.
// Invariants: at most one update per member (a newer one replaces the older); size() <= items_max
// (when full, the most-transmitted, then oldest, update is dropped); fill() appends whole
// messages only and never more than its byte budget.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gossip/name_index.h"

namespace meshwork::gossip {

inline constexpr std::size_t broadcast_queue_items_max = 4096;
inline constexpr std::size_t broadcast_fill_skips_max = 32;  // oversize items tried per fill

uint32_t retransmit_limit(uint32_t mult, std::size_t members);

class BroadcastQueue {
 public:
  explicit BroadcastQueue(std::size_t items_max = broadcast_queue_items_max)
      : items_max_(items_max == 0 ? 1 : items_max) {}

  // Queues `message` (already encoded) about `member`, replacing any older update about it.
  void push(std::string_view member, std::vector<uint8_t> message);
  // Appends queued messages to `out` while they fit in `budget_bytes`; counts one transmission
  // for each and drops those that reach `transmit_limit`. Returns the number appended.
  std::size_t fill(std::vector<uint8_t>& out, std::size_t budget_bytes, uint32_t transmit_limit);

  std::size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  void clear();
  // Drops every queued update whose encoded message satisfies `pred`; returns how many.
  std::size_t erase_if(const std::function<bool(std::span<const uint8_t>)>& pred);

 private:
  struct Item {
    uint64_t id = 0;  // insertion order; larger is newer
    uint32_t transmits = 0;
    uint32_t member_bytes = 0;
    std::vector<uint8_t> data;  // the member's name, then the message: one heap block per item

    std::string_view member() const {
      return {reinterpret_cast<const char*>(data.data()), member_bytes};
    }
    std::size_t message_bytes() const { return data.size() - member_bytes; }
  };
  struct Order {
    bool operator()(const Item& a, const Item& b) const {
      return a.transmits != b.transmits ? a.transmits < b.transmits : a.id > b.id;
    }
  };
  using Items = std::set<Item, Order>;

  Items::iterator find(std::string_view member);

  std::size_t items_max_;
  uint64_t next_id_ = 0;
  Items items_;
  // member -> its item. A set node keeps its address while fill() extracts and re-inserts it, so
  // the pointer stays valid until the item is erased.
  NameIndex<const Item*> keys_;
  std::vector<Items::node_type> sent_;  // scratch for fill()
};

}  // namespace meshwork::gossip
