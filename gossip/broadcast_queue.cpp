#include "gossip/broadcast_queue.h"

#include <cmath>

namespace meshwork::gossip {

uint32_t retransmit_limit(uint32_t mult, std::size_t members) {
  const double scale = std::ceil(std::log10(static_cast<double>(members) + 1.0));
  return mult * static_cast<uint32_t>(scale < 1.0 ? 1.0 : scale);
}

BroadcastQueue::Items::iterator BroadcastQueue::find(std::string_view member) {
  const auto key = keys_.find(std::string(member));
  if (key == keys_.end()) return items_.end();
  Item probe;
  probe.transmits = key->second.first;
  probe.id = key->second.second;
  return items_.find(probe);
}

void BroadcastQueue::push(std::string_view member, std::vector<uint8_t> message) {
  if (auto old = find(member); old != items_.end()) items_.erase(old);
  Item item;
  item.id = next_id_++;
  item.member = std::string(member);
  item.message = std::move(message);
  keys_[item.member] = {0, item.id};
  items_.insert(std::move(item));
  while (items_.size() > items_max_) {
    auto last = std::prev(items_.end());
    keys_.erase(last->member);
    items_.erase(last);
  }
}

std::size_t BroadcastQueue::fill(std::vector<uint8_t>& out, std::size_t budget_bytes,
                                 uint32_t transmit_limit) {
  std::size_t appended = 0;
  std::size_t skips = 0;
  sent_.clear();
  for (auto it = items_.begin(); it != items_.end() && skips < broadcast_fill_skips_max;) {
    if (it->message.size() > budget_bytes) {
      ++skips;
      ++it;
      continue;
    }
    out.insert(out.end(), it->message.begin(), it->message.end());
    budget_bytes -= it->message.size();
    ++appended;
    sent_.push_back(items_.extract(it++));
  }
  for (auto& node : sent_) {
    Item& item = node.value();
    if (++item.transmits >= transmit_limit) {
      keys_.erase(item.member);
      continue;
    }
    keys_[item.member].first = item.transmits;
    items_.insert(std::move(node));
  }
  sent_.clear();
  return appended;
}

std::size_t BroadcastQueue::erase_if(const std::function<bool(std::span<const uint8_t>)>& pred) {
  std::size_t erased = 0;
  for (auto it = items_.begin(); it != items_.end();) {
    if (!pred(it->message)) {
      ++it;
      continue;
    }
    keys_.erase(it->member);
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
