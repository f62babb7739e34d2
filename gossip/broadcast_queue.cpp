#include "gossip/broadcast_queue.h"

#include <cmath>

namespace meshwork::gossip {

uint32_t retransmit_limit(uint32_t mult, std::size_t members) {
  const double scale = std::ceil(std::log10(static_cast<double>(members) + 1.0));
  return mult * static_cast<uint32_t>(scale < 1.0 ? 1.0 : scale);
}

namespace {
constexpr auto member_of = [](const auto* item) { return item->member(); };
}  // namespace

BroadcastQueue::Items::iterator BroadcastQueue::find(std::string_view member) {
  const auto item = keys_.find(member, member_of);
  return item ? items_.find(**item) : items_.end();
}

void BroadcastQueue::push(std::string_view member, std::vector<uint8_t> message) {
  if (auto old = find(member); old != items_.end()) {
    keys_.erase(member, member_of);
    items_.erase(old);
  }
  Item item;
  item.id = next_id_++;
  item.member_bytes = static_cast<uint32_t>(member.size());
  item.data.reserve(member.size() + message.size());
  item.data.insert(item.data.end(), member.begin(), member.end());
  item.data.insert(item.data.end(), message.begin(), message.end());
  const auto at = items_.insert(std::move(item)).first;
  keys_.put(at->member(), &*at, member_of);
  while (items_.size() > items_max_) {
    auto last = std::prev(items_.end());
    keys_.erase(last->member(), member_of);
    items_.erase(last);
  }
}

std::size_t BroadcastQueue::fill(std::vector<uint8_t>& out, std::size_t budget_bytes,
                                 uint32_t transmit_limit) {
  std::size_t appended = 0;
  std::size_t skips = 0;
  sent_.clear();
  for (auto it = items_.begin(); it != items_.end() && skips < broadcast_fill_skips_max;) {
    const std::size_t bytes = it->message_bytes();
    if (bytes > budget_bytes) {
      ++skips;
      ++it;
      continue;
    }
    out.insert(out.end(), it->data.begin() + it->member_bytes, it->data.end());
    budget_bytes -= bytes;
    ++appended;
    sent_.push_back(items_.extract(it++));
  }
  for (auto& node : sent_) {
    Item& item = node.value();
    if (++item.transmits >= transmit_limit) {
      keys_.erase(item.member(), member_of);
      continue;  // the node handle frees the item when sent_ is cleared
    }
    items_.insert(std::move(node));
  }
  sent_.clear();
  return appended;
}

std::size_t BroadcastQueue::erase_if(const std::function<bool(std::span<const uint8_t>)>& pred) {
  std::size_t erased = 0;
  for (auto it = items_.begin(); it != items_.end();) {
    if (!pred({it->data.data() + it->member_bytes, it->message_bytes()})) {
      ++it;
      continue;
    }
    keys_.erase(it->member(), member_of);
    it = items_.erase(it);
    ++erased;
  }
  return erased;
}

void BroadcastQueue::clear() {
  items_.clear();
  keys_.clear();
}

}  // namespace meshwork::gossip
