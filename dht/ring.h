// Consistent-hash ring: where a job lives. Each member owns `vnodes` tokens on a 64-bit circle;
// a key (job id) lands on the first token at or clockwise after its position, and its preference
// list is the first r distinct members met walking clockwise from there.
//
// Placement is by membership: the plain preference list depends only on who is in the ring. The
// owner of a key is the first member of its plain list that the caller's `usable` predicate
// accepts (the node passes "not dead/left in my view"; suspects stay usable).
//
// Thread-safety: none. Ring is a value type: the node's cluster thread owns one, builds a new copy
// on a membership change and diffs the two with moved_ranges(). Const methods allocate nothing
// shared and may run concurrently on the same ring only if nobody mutates it.
//
// Pure: no sockets, threads, clocks or randomness; BLAKE2b comes from libsodium and needs no
// sodium_init() (tokens are identical with or without it).
//
// Invariants (checked by tests, relied on by every query):
//   1. tokens_ is sorted by (token, member name); it holds exactly vnodes() entries per member.
//   2. Token i of member m is the first 8 bytes, big-endian, of BLAKE2b-256(m || be32(i)), so the
//      ring is a function of (vnodes, set of member names) — insertion order never matters.
//   3. A position p belongs to the segment (token[j-1], token[j]] of the first token >= p (wrapping
//      to token[0] past the last one). Segments of zero width (equal tokens) own nothing.
//   4. A Range (start, end] with start == end is the whole circle; no empty Range is ever returned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meshwork::dht {

// A point on the 64-bit circle.
using Position = std::uint64_t;

inline constexpr std::uint32_t vnodes_default = 128;
inline constexpr std::uint32_t vnodes_min = 1;
inline constexpr std::uint32_t vnodes_max = 1024;
inline constexpr std::size_t members_max = 16384;
inline constexpr std::size_t member_name_bytes_max = 255;
inline constexpr std::uint32_t replicas_max = 16;  // r in every query; config validates against it
inline constexpr std::size_t tokens_max = members_max * vnodes_max;  // 16 Mi tokens, 256 MiB
inline constexpr std::size_t job_id_hex_chars = 64;

static_assert(vnodes_default >= vnodes_min && vnodes_default <= vnodes_max);
static_assert(tokens_max <= UINT32_MAX, "member slots and token indexes fit in uint32");
static_assert(members_max <= UINT32_MAX);

// Outcome of a membership edit. Names come from gossip, so bad ones are errors, not bugs.
enum class [[nodiscard]] Status : std::uint8_t{
    ok,
    name_empty,
    name_too_long,   // more than member_name_bytes_max bytes
    member_exists,   // add() of a name already in the ring (or twice in one add_all())
    member_unknown,  // remove() of a name not in the ring
    members_full,    // would exceed members_max
};
std::string_view to_string(Status status);

// Half-open arc (start, end] on the circle, wrapping past UINT64_MAX when start > end.
// start == end means the whole circle.
struct Range {
  Position start = 0;
  Position end = 0;

  bool full() const { return start == end; }
  bool contains(Position p) const;
  // Fraction of the circle covered, in (0, 1].
  double fraction() const;
  bool operator==(const Range&) const = default;
};

// A range whose preference list differs between two rings.
struct MovedRange {
  Range range;
  std::vector<std::string> before;  // plain preference list in the old ring
  std::vector<std::string> after;   // plain preference list in the new ring
};

// One member's slice of the circle, for GET /v1/cluster/ring.
struct MemberShare {
  std::string name;
  std::uint32_t tokens = 0;
  double primary_fraction = 0;  // fraction of the circle where it heads the preference list
  double replica_fraction = 0;  // fraction where it is anywhere in the first r
};

// Where a key sits on the circle. A job id (exactly 64 lowercase hex chars) maps to its first 8
// bytes, big-endian; any other string maps to the first 8 bytes of BLAKE2b-256(key).
Position key_position(std::string_view key);

// Token `index` of `member`: first 8 bytes, big-endian, of BLAKE2b-256(member || be32(index)).
Position member_token(std::string_view member, std::uint32_t index);

// Predicate over member names; nullptr (the default) accepts everyone.
using Usable = std::function<bool(std::string_view)>;

class Ring {
 public:
  // Precondition: vnodes_min <= vnodes <= vnodes_max (aborts otherwise; config validates first).
  explicit Ring(std::uint32_t vnodes = vnodes_default);

  // Adds one member: O(T + V log V). Changes nothing unless the result is Status::ok.
  Status add(std::string_view name);
  // Adds many members with one sort: O(T log T). All or nothing: one bad name adds none.
  Status add_all(std::span<const std::string> names);
  // Removes a member and its tokens: O(T).
  Status remove(std::string_view name);

  bool contains(std::string_view name) const;
  std::vector<std::string> members() const;  // sorted by name
  std::size_t member_count() const { return slot_of_.size(); }
  bool empty() const { return slot_of_.empty(); }
  std::uint32_t vnodes() const { return vnodes_; }
  std::size_t token_count() const { return tokens_.size(); }

  // The first min(r, members) distinct members clockwise from the key, skipping those `usable`
  // rejects (then possibly fewer than r). Without `usable` this is the plain list that places
  // data. O(log T + r * skips). Precondition: r <= replicas_max.
  std::vector<std::string> preference_list(Position p, std::uint32_t r,
                                           const Usable& usable = nullptr) const;
  std::vector<std::string> preference_list(std::string_view key, std::uint32_t r,
                                           const Usable& usable = nullptr) const {
    return preference_list(key_position(key), r, usable);
  }

  // The owner: the first member of the plain r-list that `usable` accepts; nullopt when none is
  // (or the ring is empty). Without `usable` it is the primary.
  std::optional<std::string> owner(Position p, std::uint32_t r,
                                   const Usable& usable = nullptr) const;
  std::optional<std::string> owner(std::string_view key, std::uint32_t r,
                                   const Usable& usable = nullptr) const {
    return owner(key_position(key), r, usable);
  }

  // Arcs where `name` is in the plain r-list (r = 1: where it is primary), adjacent arcs merged,
  // in clockwise order of their ends. Empty if `name` is not a member. O(T * r).
  std::vector<Range> ranges_of(std::string_view name, std::uint32_t r = 1) const;

  // Every member's token count and share of the circle, sorted by name. O(T * r).
  std::vector<MemberShare> shares(std::uint32_t r) const;

 private:
  struct Token {
    Position token;
    std::uint32_t slot;  // index into names_
  };

  std::size_t index_at(Position p) const;  // first token >= p, wrapping to 0
  // Slots of the first r distinct members clockwise from token index `start`.
  void walk(std::size_t start, std::uint32_t r, const Usable* usable,
            std::vector<std::uint32_t>& out) const;
  std::vector<std::string> names_for(const std::vector<std::uint32_t>& slots) const;
  Status check_new_name(std::string_view name) const;
  std::uint32_t take_slot(std::string_view name);
  void append_tokens(std::uint32_t slot);
  bool token_less(const Token& a, const Token& b) const;
  void for_each_segment(const std::function<void(std::size_t, Range)>& visit) const;

  friend std::vector<MovedRange> moved_ranges(const Ring& before, const Ring& after,
                                              std::uint32_t r);

  std::uint32_t vnodes_;
  std::vector<Token> tokens_;                                  // invariant 1
  std::vector<std::string> names_;                             // by slot; "" marks a free slot
  std::vector<std::uint32_t> free_slots_;                      // reused by the next add
  std::map<std::string, std::uint32_t, std::less<>> slot_of_;  // member name -> slot
};

// Every range whose plain r-list differs between `before` and `after`, with both lists; adjacent
// ranges with the same pair of lists merged, in clockwise order. Computed on the merged boundaries
// of both token sets: O(T log T) at most, T = total tokens. The rings may differ in vnodes.
std::vector<MovedRange> moved_ranges(const Ring& before, const Ring& after, std::uint32_t r);

}  // namespace meshwork::dht
