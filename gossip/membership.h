// SWIM + Lifeguard membership as a pure state machine (docs/protocol.md).
//
// The driver feeds in time (`now_ms`, monotonic milliseconds), received datagrams and a seed; the
// machine appends datagrams to send and member events to an Output. It never opens a socket,
// reads a clock, starts a thread or draws non-seeded randomness that affects a decision (only
// the nonces of sealed packets come from libsodium). The same seed and the same inputs give the
// same decisions, so a simulation replays from its seed.
//
// Driver contract: call tick() at least every config.tick_ms (or exactly at next_deadline_ms()),
// and hand every datagram that has already arrived to receive() *before* calling tick() for the
// same instant, so a late-scheduled process does not fail probes whose acks are waiting.
//
// Thread-safety: none. One thread (the node's io_context thread) owns a Membership.
// Invariants:
//   1. members() always holds self, first, never suspect or dead in its own view;
//   2. a member's incarnation never decreases; for one incarnation
//      alive < suspect < dead/left, and a higher incarnation always wins;
//   3. the member count never exceeds config.members_max;
//   4. every packet in Output is at most packet_bytes_max bytes (sealed when a keyring is set);
//   5. nothing that fails to open or decode changes any state but the drop counters;
//   6. only this node's own suspicion timer moves a member to dead: a `dead` heard from another
//      node is a suspicion here (docs/protocol.md, "Member state machine").
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "gossip/awareness.h"
#include "gossip/broadcast_queue.h"
#include "gossip/codec.h"
#include "gossip/config.h"
#include "gossip/name_index.h"
#include "gossip/rng.h"
#include "gossip/seal.h"
#include "gossip/suspicion.h"
#include "gossip/types.h"

namespace meshwork::gossip {

inline constexpr std::size_t indirect_pending_max = 64;  // ping-reqs we serve at once
inline constexpr std::size_t dead_probe_attempts_max = 8;
inline constexpr std::size_t suspect_checks_window = 16;           // suspects considered per round
inline constexpr uint32_t push_pull_replies_per_interval_max = 8;  // per probe interval
// Pings name their sender for this many probe rounds after join(): long enough for every member
// to be pinged by name twice while the join is news (on_sender), and no bytes after that.
inline constexpr uint32_t sender_probe_rounds = 2;
static_assert(indirect_checks_max <= indirect_pending_max,
              "a node can serve at least one prober's full set of ping-reqs");
static_assert(members_max_limit <= broadcast_queue_items_max * 16,
              "the broadcast queue holds a useful share of a full member list");
// A ping, the suspect or dead notice that may ride with it, and its sender's name.
inline constexpr std::size_t probe_bytes_max =
    1 + 3 * message_header_bytes + (4 + 1 + name_bytes_max) +
    (1 + name_bytes_max + 8 + 1 + name_bytes_max) + (1 + name_bytes_max);
static_assert(probe_bytes_max <= sealed_plaintext_bytes_max,
              "a ping with a buddy suspect or dead notice and its sender always fits one packet");
static_assert(name_bytes_max + alive_bytes_max < sealed_plaintext_bytes_max,
              "an alive refutation always fits one packet");

struct MemberInfo {
  std::string name;
  Address addr;
  MemberState state = MemberState::alive;
  uint64_t incarnation = 0;
  NodeMeta meta;
  uint64_t state_since_ms = 0;
};

struct MemberEvent {
  // joined: first seen, or back from dead/left; alive: a suspicion was refuted;
  // updated: address or metadata changed; suspect, dead, left: as named.
  enum class Kind { joined, updated, suspect, alive, dead, left };
  Kind kind;
  MemberInfo member;
};

std::string_view to_string(MemberEvent::Kind kind);

struct Packet {
  Address to;
  std::vector<uint8_t> bytes;
};

struct Output {
  std::vector<Packet> packets;
  std::vector<MemberEvent> events;
};

struct Stats {
  uint64_t packets_sent = 0;
  uint64_t bytes_sent = 0;
  uint64_t packets_received = 0;
  uint64_t bytes_received = 0;
  uint64_t dropped_oversize = 0;
  uint64_t dropped_unsealable = 0;  // failed to open with any key (never parsed)
  uint64_t dropped_malformed = 0;   // opened (or plaintext) but failed to decode
  uint64_t probes = 0;
  uint64_t probe_failures = 0;
  uint64_t indirect_probes_sent = 0;
  uint64_t nacks_received = 0;
  uint64_t suspicions = 0;       // members this node moved to suspect
  uint64_t deaths_declared = 0;  // suspicion timers that expired here
  uint64_t refutes = 0;
  uint64_t push_pulls = 0;       // exchanges this node started
  uint64_t members_refused = 0;  // new names refused because members_max was reached
};

class Membership {
 public:
  // `incarnation`: where self starts; pass something that grows across restarts (e.g. wall-clock
  // seconds) so a restarted node beats its old self at once. An empty keyring disables sealing;
  // a non-empty one seals every packet and drops every packet it cannot open.
  // Preconditions: !config_error(cfg) and !identity_error(name, meta).
  Membership(Config cfg, std::string name, Address self, NodeMeta meta, uint64_t incarnation,
             uint64_t rng_seed, Keyring keyring = {});

  // Why `name`/`meta` cannot be used for a node, or nullopt.
  static std::optional<std::string> identity_error(std::string_view name, const NodeMeta& meta);

  // Starts (or restarts) joining through `seeds`: a push-pull request to each, retried every
  // join_retry_ms until some member answers. With no seeds the node is a one-member mesh.
  void join(uint64_t now_ms, std::vector<Address> seeds, Output& out);
  void tick(uint64_t now_ms, Output& out);
  void receive(uint64_t now_ms, Address from, std::span<const uint8_t> bytes, Output& out);
  // Announces `left` to a few members at once and through gossip afterwards. After leave() the
  // node stops probing and pushing; keep ticking for a few gossip intervals so the news spreads.
  void leave(uint64_t now_ms, Output& out);
  // Re-announces self with incarnation + 1. Returns false (and changes nothing) if `meta` breaks
  // a codec limit.
  [[nodiscard]] bool set_meta(NodeMeta meta);

  // Earliest time at which tick() has work to do.
  uint64_t next_deadline_ms() const;
  std::vector<MemberInfo> members() const;                          // self first
  std::optional<MemberInfo> member(const std::string& name) const;  // nullopt if unknown
  std::size_t member_count() const { return members_.size(); }
  std::size_t live_count() const { return live_; }  // alive + suspect, self included
  const Stats& stats() const { return stats_; }
  // Updates still waiting to be piggybacked. After leave(), tick until this is 0 (or a deadline
  // of a few gossip intervals passes) so that `left` has been sent lambda * log(N) times.
  std::size_t pending_broadcasts() const { return broadcasts_.size(); }
  const std::string& name() const { return members_.front().name; }
  uint64_t incarnation() const { return members_.front().incarnation; }
  uint32_t awareness() const { return awareness_.score(); }
  bool joined() const { return joined_; }
  const Config& config() const { return cfg_; }

 private:
  struct Member {
    std::string name;
    Address addr;
    MemberState state = MemberState::alive;
    uint64_t incarnation = 0;
    uint64_t state_since_ms = 0;
    std::shared_ptr<const NodeMeta> meta;
  };
  struct Probe {
    bool active = false;
    bool indirect_sent = false;
    uint32_t seq = 0;
    std::string target;
    uint64_t indirect_at_ms = 0;  // direct timeout: send ping-reqs
    uint64_t deadline_ms = 0;     // end of the round: suspect if nothing answered
    uint32_t nacks_expected = 0;
    uint32_t nacks = 0;
  };
  struct Indirect {  // a ping we send on behalf of a ping-req
    uint32_t seq;
    uint32_t requester_seq;
    Address requester;
    uint64_t nack_at_ms;
  };
  struct Timer {  // suspicion expiry or reap; lazily invalidated
    uint64_t at_ms;
    std::string name;
    bool operator>(const Timer& o) const { return at_ms > o.at_ms; }
  };
  using TimerHeap = std::priority_queue<Timer, std::vector<Timer>, std::greater<>>;
  // receiving (membership.cpp)
  void handle(uint64_t now_ms, Address from, const Message& msg, bool in_push_pull, Output& out);
  void on_ping(uint64_t now_ms, Address from, const Ping& m, Output& out);
  void on_ping_req(uint64_t now_ms, Address from, const PingReq& m, Output& out);
  void on_ack(uint64_t now_ms, uint32_t seq, Output& out);
  void on_alive(uint64_t now_ms, Address from, const Alive& m, Output& out);
  void on_suspect(uint64_t now_ms, Address from, const Suspect& m, Output& out);
  void on_dead(uint64_t now_ms, Address from, const std::string& who, uint64_t incarnation,
               MemberState state, const std::string& accuser, Output& out);
  void on_hearsay(uint64_t now_ms, Address from, const std::string& who, uint64_t incarnation,
                  const std::string& accuser, Output& out);
  void on_push_pull(uint64_t now_ms, Address from, const PushPull& m, Output& out);
  void on_sender(uint64_t now_ms, Address from, const std::string& who, Output& out);
  // A suspect/dead/left message about self: refute it, or answer a stale one directly.
  void accused(uint64_t now_ms, uint64_t incarnation, Address from, Output& out);
  void refute(uint64_t now_ms, uint64_t accused_incarnation, Address accuser, Output& out);

  // periodic work and sending (membership_tick.cpp)
  void tick_probe(uint64_t now_ms, Output& out);
  void start_probe(uint64_t now_ms, Output& out);
  void tick_suspect_check(uint64_t now_ms, Output& out);
  void send_indirect(uint64_t now_ms, Output& out);
  void finish_probe(uint64_t now_ms, bool acked, Output& out);
  void tick_indirect(uint64_t now_ms, Output& out);
  void tick_gossip(uint64_t now_ms, Output& out);
  void tick_push_pull(uint64_t now_ms, Output& out);
  void tick_join(uint64_t now_ms, Output& out);
  void tick_dead_probe(uint64_t now_ms, Output& out);
  void tick_timers(uint64_t now_ms, Output& out);

  // helpers
  Member* find(const std::string& name);
  auto name_of() const {
    return [this](uint32_t idx) -> const std::string& { return members_[idx].name; };
  }
  bool held_dead(const std::string& accuser);
  Member& self() { return members_.front(); }
  const Member& self() const { return members_.front(); }
  Member* add_member(uint64_t now_ms, const Alive& m);
  void remove_member(const std::string& name);
  void set_state(Member& m, MemberState state, uint64_t now_ms);
  void start_suspicion(uint64_t now_ms, Member& m, const std::string& from);
  void emit(MemberEvent::Kind kind, const Member& m, Output& out) const;
  void broadcast(const std::string& about, const Message& msg);
  Alive alive_of(const Member& m) const;
  // Sends `head` plus as many piggybacked broadcasts as fit; with an empty head, sends only if
  // there is something to piggyback.
  void send(Address to, std::span<const Message> head, Output& out);
  void send_state(Address to, bool request, Output& out);
  void pull_state(uint64_t now_ms, Address from, Output& out);
  void flush(Address to, std::vector<uint8_t>& plain, Output& out);
  std::size_t plaintext_budget() const;
  std::vector<const Member*> random_members(std::size_t k, const std::string& exclude,
                                            uint64_t now_ms, bool include_dead);
  uint32_t next_seq() { return ++seq_; }
  // A ping to `target`, naming us while sender_rounds_left_ lasts, then `extra` if it is set.
  void send_ping(Address to, uint32_t seq, const std::string& target, const Message* extra,
                 Output& out);

  Config cfg_;
  Keyring keyring_;
  Rng rng_;
  Awareness awareness_;
  BroadcastQueue broadcasts_;
  Stats stats_;
  // [0] is self. A deque, not a vector: it grows in fixed blocks, where a vector doubling to a
  // few thousand members wastes up to half its capacity (N² of it in the simulator).
  std::deque<Member> members_;
  NameIndex<uint32_t> index_;  // name -> position in members_
  std::unordered_map<std::string, Suspicion> suspicions_;
  std::size_t live_ = 1;
  std::vector<uint32_t> probe_order_;
  std::size_t probe_next_ = 0;
  Probe probe_;
  std::vector<Indirect> indirect_;
  std::vector<std::string> recently_dead_;
  TimerHeap suspicion_timers_;
  TimerHeap reap_timers_;
  std::vector<Address> seeds_;
  bool joined_ = false;
  bool leaving_ = false;
  uint32_t seq_;
  uint32_t push_pull_replies_ = 0;
  uint32_t sender_rounds_left_ = 0;  // pings name us while > 0; each probe round takes one
  uint64_t push_pull_window_ms_ = 0;
  uint64_t next_pull_ms_ = 0;  // pull_state: at most once per dead_probe_interval_ms
  uint64_t next_probe_ms_ = 0;
  uint64_t next_gossip_ms_ = 0;
  uint64_t next_push_pull_ms_ = 0;
  uint64_t next_join_ms_ = 0;
  uint64_t next_dead_probe_ms_ = 0;
  uint64_t next_suspect_check_ms_ = 0;
  std::vector<Message> scratch_messages_;
};

}  // namespace meshwork::gossip
