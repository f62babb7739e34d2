// Consistent-hash ring: see ring.h for the contract and invariants.
#include "dht/ring.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <utility>

#include "dht/require.h"

namespace meshwork::dht {
namespace {

constexpr std::size_t hash_bytes = 32;  // BLAKE2b-256
constexpr std::size_t index_bytes = 4;  // be32 vnode index appended to the member name
constexpr std::size_t position_hex_chars = 16;
constexpr double circle_fraction_per_unit = 0x1p-64;

static_assert(hash_bytes >= sizeof(Position));
static_assert(position_hex_chars == 2 * sizeof(Position));
static_assert(job_id_hex_chars == 2 * hash_bytes);

Position first8_big_endian(const unsigned char* bytes) {
  Position p = 0;
  for (std::size_t i = 0; i < sizeof(Position); ++i) p = (p << 8) | bytes[i];
  return p;
}

Position hash_position(const unsigned char* data, std::size_t len) {
  std::array<unsigned char, hash_bytes> out{};
  crypto_generichash(out.data(), out.size(), data, len, nullptr, 0);
  return first8_big_endian(out.data());
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool is_job_id(std::string_view key) {
  return key.size() == job_id_hex_chars &&
         std::all_of(key.begin(), key.end(), [](char c) { return hex_value(c) >= 0; });
}

bool holds(const std::vector<std::uint32_t>& slots, std::uint32_t slot) {
  return std::find(slots.begin(), slots.end(), slot) != slots.end();
}

template <class Names>
bool same_names(const std::vector<std::string>& a, const Names& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

Range& range_of(Range& r) {
  return r;
}
Range& range_of(MovedRange& m) {
  return m.range;
}

// Appends `item` to `out`, extending the last item instead when the two are adjacent and `same`.
template <class Item, class Same>
void append_or_extend(std::vector<Item>& out, Item item, Same same) {
  if (!out.empty() && range_of(out.back()).end == range_of(item).start && same(out.back(), item)) {
    range_of(out.back()).end = range_of(item).end;
    return;
  }
  out.push_back(std::move(item));
}

// Joins the last item onto the first when they meet across the end of the circle.
template <class Item, class Same>
void close_circle(std::vector<Item>& out, Same same) {
  if (out.size() < 2) return;
  if (range_of(out.back()).end != range_of(out.front()).start || !same(out.back(), out.front())) {
    return;
  }
  range_of(out.front()).start = range_of(out.back()).start;
  out.pop_back();
}

}  // namespace

std::string_view to_string(Status status) {
  switch (status) {
    case Status::ok:
      return "ok";
    case Status::name_empty:
      return "member name is empty";
    case Status::name_too_long:
      return "member name is longer than member_name_bytes_max";
    case Status::member_exists:
      return "member is already in the ring";
    case Status::member_unknown:
      return "member is not in the ring";
    case Status::members_full:
      return "ring already holds members_max members";
  }
  return "unknown status";
}

bool Range::contains(Position p) const {
  if (start < end) return p > start && p <= end;
  if (start > end) return p > start || p <= end;
  return true;
}

double Range::fraction() const {
  if (full()) return 1.0;
  return static_cast<double>(end - start) * circle_fraction_per_unit;  // unsigned wrap is intended
}

Position key_position(std::string_view key) {
  if (is_job_id(key)) {
    Position p = 0;
    for (std::size_t i = 0; i < position_hex_chars; ++i) {
      p = (p << 4) | static_cast<Position>(hex_value(key[i]));
    }
    return p;
  }
  return hash_position(reinterpret_cast<const unsigned char*>(key.data()), key.size());
}

Position member_token(std::string_view member, std::uint32_t index) {
  std::vector<unsigned char> buf(member.begin(), member.end());
  for (int shift = 24; shift >= 0; shift -= 8)
    buf.push_back(static_cast<unsigned char>(index >> shift));
  return hash_position(buf.data(), buf.size());
}

Ring::Ring(std::uint32_t vnodes) : vnodes_(vnodes) {
  require(vnodes >= vnodes_min && vnodes <= vnodes_max, "vnodes within [vnodes_min, vnodes_max]");
}

bool Ring::token_less(const Token& a, const Token& b) const {
  if (a.token != b.token) return a.token < b.token;
  return names_[a.slot] < names_[b.slot];
}

Status Ring::check_new_name(std::string_view name) const {
  if (name.empty()) return Status::name_empty;
  if (name.size() > member_name_bytes_max) return Status::name_too_long;
  if (contains(name)) return Status::member_exists;
  if (member_count() >= members_max) return Status::members_full;
  return Status::ok;
}

std::uint32_t Ring::take_slot(std::string_view name) {
  std::uint32_t slot = 0;
  if (free_slots_.empty()) {
    slot = static_cast<std::uint32_t>(names_.size());
    names_.emplace_back(name);
  } else {
    slot = free_slots_.back();
    free_slots_.pop_back();
    names_[slot] = name;
  }
  slot_of_.emplace(std::string(name), slot);
  return slot;
}

void Ring::append_tokens(std::uint32_t slot) {
  const std::string& name = names_[slot];
  std::vector<unsigned char> buf(name.begin(), name.end());
  buf.resize(name.size() + index_bytes);
  unsigned char* index_be = buf.data() + name.size();
  for (std::uint32_t i = 0; i < vnodes_; ++i) {
    index_be[0] = static_cast<unsigned char>(i >> 24);
    index_be[1] = static_cast<unsigned char>(i >> 16);
    index_be[2] = static_cast<unsigned char>(i >> 8);
    index_be[3] = static_cast<unsigned char>(i);
    tokens_.push_back(Token{hash_position(buf.data(), buf.size()), slot});
  }
}

Status Ring::add(std::string_view name) {
  const std::string owned(name);
  return add_all(std::span<const std::string>(&owned, 1));
}

Status Ring::add_all(std::span<const std::string> names) {
  for (const std::string& name : names) {
    if (Status s = check_new_name(name); s != Status::ok) return s;
  }
  std::vector<std::string_view> sorted(names.begin(), names.end());
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    return Status::member_exists;
  }
  if (member_count() + names.size() > members_max) return Status::members_full;

  const auto old_count = static_cast<std::ptrdiff_t>(tokens_.size());
  tokens_.reserve(tokens_.size() + names.size() * vnodes_);
  for (const std::string& name : names) append_tokens(take_slot(name));
  auto less = [this](const Token& a, const Token& b) { return token_less(a, b); };
  std::sort(tokens_.begin() + old_count, tokens_.end(), less);
  std::inplace_merge(tokens_.begin(), tokens_.begin() + old_count, tokens_.end(), less);
  return Status::ok;
}

Status Ring::remove(std::string_view name) {
  auto it = slot_of_.find(name);
  if (it == slot_of_.end()) return Status::member_unknown;
  const std::uint32_t slot = it->second;
  std::erase_if(tokens_, [slot](const Token& t) { return t.slot == slot; });
  names_[slot].clear();
  free_slots_.push_back(slot);
  slot_of_.erase(it);
  return Status::ok;
}

bool Ring::contains(std::string_view name) const {
  return slot_of_.find(name) != slot_of_.end();
}

std::vector<std::string> Ring::members() const {
  std::vector<std::string> out;
  out.reserve(slot_of_.size());
  for (const auto& [name, slot] : slot_of_) out.push_back(name);
  return out;
}

std::size_t Ring::index_at(Position p) const {
  auto it = std::lower_bound(tokens_.begin(), tokens_.end(), p,
                             [](const Token& t, Position value) { return t.token < value; });
  return it == tokens_.end() ? 0 : static_cast<std::size_t>(it - tokens_.begin());
}

void Ring::walk(std::size_t start, std::uint32_t r, const Usable* usable,
                std::vector<std::uint32_t>& out) const {
  require(r <= replicas_max, "r <= replicas_max");
  out.clear();
  const std::size_t want = std::min<std::size_t>(r, member_count());
  std::vector<std::uint32_t> rejected;
  std::size_t i = start;
  for (std::size_t steps = 0; steps < tokens_.size() && out.size() < want; ++steps) {
    const std::uint32_t slot = tokens_[i].slot;
    i = (i + 1 == tokens_.size()) ? 0 : i + 1;
    if (holds(out, slot) || holds(rejected, slot)) continue;
    if (usable != nullptr && *usable && !(*usable)(names_[slot])) {
      rejected.push_back(slot);
      if (out.size() + rejected.size() == member_count()) break;
      continue;
    }
    out.push_back(slot);
  }
}

std::vector<std::string> Ring::names_for(const std::vector<std::uint32_t>& slots) const {
  std::vector<std::string> out;
  out.reserve(slots.size());
  for (std::uint32_t slot : slots) out.push_back(names_[slot]);
  return out;
}

std::vector<std::string> Ring::preference_list(Position p, std::uint32_t r,
                                               const Usable& usable) const {
  std::vector<std::uint32_t> slots;
  walk(index_at(p), r, &usable, slots);
  return names_for(slots);
}

std::optional<std::string> Ring::owner(Position p, std::uint32_t r, const Usable& usable) const {
  std::vector<std::uint32_t> slots;
  walk(index_at(p), r, nullptr, slots);
  for (std::uint32_t slot : slots) {
    if (!usable || usable(names_[slot])) return names_[slot];
  }
  return std::nullopt;
}

void Ring::for_each_segment(const std::function<void(std::size_t, Range)>& visit) const {
  if (tokens_.empty()) return;
  if (tokens_.front().token == tokens_.back().token) {  // sorted, so every token is equal
    visit(0, Range{tokens_.front().token, tokens_.front().token});
    return;
  }
  for (std::size_t i = 0; i < tokens_.size(); ++i) {
    const Position prev = tokens_[i == 0 ? tokens_.size() - 1 : i - 1].token;
    if (prev == tokens_[i].token) continue;  // zero width: the first equal token owns the point
    visit(i, Range{prev, tokens_[i].token});
  }
}

std::vector<Range> Ring::ranges_of(std::string_view name, std::uint32_t r) const {
  std::vector<Range> out;
  auto it = slot_of_.find(name);
  if (it == slot_of_.end() || r == 0) return out;
  const std::uint32_t slot = it->second;
  auto always = [](const Range&, const Range&) { return true; };
  std::vector<std::uint32_t> list;
  for_each_segment([&](std::size_t i, Range range) {
    walk(i, r, nullptr, list);
    if (holds(list, slot)) append_or_extend(out, range, always);
  });
  close_circle(out, always);
  return out;
}

std::vector<MemberShare> Ring::shares(std::uint32_t r) const {
  std::vector<double> primary(names_.size(), 0.0);
  std::vector<double> replica(names_.size(), 0.0);
  std::vector<std::uint32_t> list;
  for_each_segment([&](std::size_t i, Range range) {
    const double fraction = range.fraction();
    primary[tokens_[i].slot] += fraction;
    walk(i, r, nullptr, list);
    for (std::uint32_t slot : list) replica[slot] += fraction;
  });
  std::vector<MemberShare> out;
  out.reserve(slot_of_.size());
  for (const auto& [name, slot] : slot_of_) {
    // A sum of many doubles can round past 1 (1.0000000000000002 seen); a share never exceeds it.
    out.push_back(
        MemberShare{name, vnodes_, std::min(primary[slot], 1.0), std::min(replica[slot], 1.0)});
  }
  return out;
}

namespace {

// Sorted, deduplicated union of two sorted token sequences: the boundaries at which either
// ring's preference lists can change.
template <class Tokens>
std::vector<Position> merged_boundaries(const Tokens& a, const Tokens& b) {
  std::vector<Position> out;
  out.reserve(a.size() + b.size());
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < a.size() || j < b.size()) {
    Position next = 0;
    if (j == b.size() || (i < a.size() && a[i].token <= b[j].token)) {
      next = a[i++].token;
    } else {
      next = b[j++].token;
    }
    if (out.empty() || out.back() != next) out.push_back(next);
  }
  return out;
}

}  // namespace

std::vector<MovedRange> moved_ranges(const Ring& before, const Ring& after, std::uint32_t r) {
  require(r <= replicas_max, "r <= replicas_max");
  std::vector<MovedRange> out;
  const std::vector<Position> bounds = merged_boundaries(before.tokens_, after.tokens_);
  if (r == 0 || bounds.empty()) return out;

  struct Side {
    const Ring& ring;
    std::size_t next = 0;              // first token >= the current boundary
    std::size_t listed_at = SIZE_MAX;  // token index `list` was walked from
    std::vector<std::uint32_t> slots{};
    std::vector<std::string_view> list{};

    // Plain r-list of the segment ending at boundary u; boundaries arrive in increasing order.
    void advance_to(Position u, std::uint32_t r_) {
      while (next < ring.tokens_.size() && ring.tokens_[next].token < u) ++next;
      const std::size_t at = next == ring.tokens_.size() ? 0 : next;
      if (at == listed_at) return;
      listed_at = at;
      ring.walk(at, r_, nullptr, slots);
      list.clear();
      for (std::uint32_t slot : slots) list.emplace_back(ring.names_[slot]);
    }
  };
  Side old_side{before};
  Side new_side{after};
  auto same = [](const MovedRange& a, const MovedRange& b) {
    return a.before == b.before && a.after == b.after;
  };
  for (std::size_t k = 0; k < bounds.size(); ++k) {
    const Position u = bounds[k];
    old_side.advance_to(u, r);
    new_side.advance_to(u, r);
    if (old_side.list == new_side.list) continue;
    const Range range{bounds[k == 0 ? bounds.size() - 1 : k - 1], u};
    if (!out.empty() && out.back().range.end == range.start &&
        same_names(out.back().before, old_side.list) &&
        same_names(out.back().after, new_side.list)) {
      out.back().range.end = u;
      continue;
    }
    out.push_back(MovedRange{range,
                             {old_side.list.begin(), old_side.list.end()},
                             {new_side.list.begin(), new_side.list.end()}});
  }
  close_circle(out, same);
  return out;
}

}  // namespace meshwork::dht
