// NameIndex: an open-addressing hash index from a member name to a small value (a slot number, a
// pointer) whose name the owner can produce. It stores no names — only a 32-bit hash and the value
// per slot — so an index over N names costs 1.3–2.7 slots of sizeof(Slot) bytes each, instead of a
// heap node holding a copy of the name per entry as std::unordered_map<std::string, V> does.
// In the simulator every node indexes every other (N² entries), so this is most of its memory;
// the probe sequence also stays in one cache line or two, where a node-based map misses on every
// step (LevelDB's cache and Abseil's flat tables make the same trade).
//
// Linear probing, load factor at most 3/4, backward-shift deletion (no tombstones), so a lookup
// for an absent name stops at the first empty slot. The caller passes `key_of(value)`, which must
// return the name the value stands for while it is in the index.
//
// Thread-safety: none. Invariants: at most one entry per name; size() <= capacity * 3 / 4; an empty
// slot has hash 0 and every occupied slot a non-zero hash; no iteration order is exposed, so the
// index never affects a decision (simulations replay identically whatever the hash function).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

namespace meshwork::gossip {

template <typename V>
class NameIndex {
 public:
  template <typename KeyOf>
  std::optional<V> find(std::string_view name, KeyOf&& key_of) const {
    const std::size_t at = locate(name, hash_of(name), key_of);
    if (at == npos) return std::nullopt;
    return slots_[at].value;
  }

  // Adds `name` -> `value`, or replaces the value if `name` is present.
  template <typename KeyOf>
  void put(std::string_view name, V value, KeyOf&& key_of) {
    const uint32_t h = hash_of(name);
    if (const std::size_t at = locate(name, h, key_of); at != npos) {
      slots_[at].value = value;
      return;
    }
    if ((size_ + 1) * 4 > slots_.size() * 3) grow();
    std::size_t i = h & mask();
    while (slots_[i].hash != 0) i = (i + 1) & mask();
    slots_[i] = Slot{h, value};
    ++size_;
  }

  // Removes `name`; false if it was absent.
  template <typename KeyOf>
  bool erase(std::string_view name, KeyOf&& key_of) {
    std::size_t hole = locate(name, hash_of(name), key_of);
    if (hole == npos) return false;
    // Backward shift: pull later members of the probe run into the hole while they may live there.
    for (std::size_t i = (hole + 1) & mask(); slots_[i].hash != 0; i = (i + 1) & mask()) {
      const std::size_t home = slots_[i].hash & mask();
      if (((i - home) & mask()) >= ((i - hole) & mask())) {
        slots_[hole] = slots_[i];
        hole = i;
      }
    }
    slots_[hole] = Slot{};
    --size_;
    return true;
  }

  std::size_t size() const { return size_; }
  void clear() {
    slots_.clear();
    size_ = 0;
  }

 private:
  struct Slot {
    uint32_t hash = 0;
    V value{};
  };
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  static constexpr std::size_t initial_slots = 16;

  static uint32_t hash_of(std::string_view name) {
    const uint64_t h = std::hash<std::string_view>{}(name);
    const auto folded = static_cast<uint32_t>(h ^ (h >> 32));
    return folded == 0 ? 1 : folded;
  }
  std::size_t mask() const { return slots_.size() - 1; }

  template <typename KeyOf>
  std::size_t locate(std::string_view name, uint32_t h, KeyOf& key_of) const {
    if (slots_.empty()) return npos;
    for (std::size_t i = h & mask(); slots_[i].hash != 0; i = (i + 1) & mask()) {
      if (slots_[i].hash == h && std::string_view(key_of(slots_[i].value)) == name) return i;
    }
    return npos;
  }

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? initial_slots : old.size() * 2, Slot{});
    for (const Slot& s : old) {
      if (s.hash == 0) continue;
      std::size_t i = s.hash & mask();
      while (slots_[i].hash != 0) i = (i + 1) & mask();
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;  // a power of two in size, or empty
  std::size_t size_ = 0;
};

}  // namespace meshwork::gossip
