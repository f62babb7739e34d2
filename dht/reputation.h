// Host reputation: what this node has seen of every other host's work (Edge's host scoring).
//
// Evidence comes from the replica core (replica.h), never from what a host says of itself:
//   agreed     a host's result was in the majority of a redundant job's decided attempt
//   disagreed  a host's result was outside that majority (a wrong answer with a valid receipt)
//   forged     a host sent a receipt that did not verify (bad signature, or a result_hash that is
//              not the hash of the result it vouches for)
// The score is a Laplace estimate of the chance that the host's next answer is honest, with a
// forgery weighing kForgedWeight disagreements:
//     score = (agreed + 1) / (agreed + disagreed + kForgedWeight·forged + 2)      ∈ (0, 1]
// A host nobody has seen work scores 0.5. A host is trusted while its score is at least the
// threshold (default 0.3): one wrong answer leaves a new host trusted (1/3), two distrust it (1/4),
// one forgery distrusts it at once (1/6); each agreement earns back a little.
//
// Scores are local: each node scores from the records it merged, so two nodes' scores differ by
// what each has seen, as their membership views do. A distrusted host is treated by placement like
// a dead one (placement.h): its ranges go to stand-ins and it neither owns nor runs jobs in this
// node's view.
//
// Invariants: 1. counts only grow; 2. trusted(name) == (score(name) >= threshold), decided on
// integers so that every platform and the simulator decide alike; 3. at most kHostsMax hosts are
// kept (the oldest-seen beyond that are forgotten, back to 0.5).
// Thread-safety: none (the replica core's thread). Pure: no I/O, no clock.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace meshwork {

struct HostScore {
  uint64_t agreed = 0, disagreed = 0, forged = 0;
  [[nodiscard]] double score() const;
};

class Reputation {
 public:
  static constexpr uint64_t kForgedWeight = 4;
  static constexpr size_t kHostsMax = 4'096;
  // Thresholds are in hundredths, so that trusted() compares integers.
  static constexpr uint32_t kThresholdPercentDefault = 30;

  explicit Reputation(uint32_t threshold_percent = kThresholdPercentDefault)
      : threshold_percent_(threshold_percent) {}

  // Evidence. Each returns true when the host's trusted() changed.
  bool agreed(const std::string& host);
  bool disagreed(const std::string& host);
  bool forged(const std::string& host);

  [[nodiscard]] double score(const std::string& host) const;
  [[nodiscard]] bool trusted(const std::string& host) const;
  [[nodiscard]] HostScore counts(const std::string& host) const;
  [[nodiscard]] uint32_t threshold_percent() const { return threshold_percent_; }
  [[nodiscard]] const std::map<std::string, HostScore>& hosts() const { return hosts_; }
  // Pieces of evidence taken so far: grows with every call above, so a reader can tell a copy is
  // current without comparing hosts.
  [[nodiscard]] uint64_t evidence() const { return evidence_; }

 private:
  bool add(const std::string& host, uint64_t HostScore::*field);
  [[nodiscard]] static bool trusted(const HostScore& s, uint32_t threshold_percent);

  uint32_t threshold_percent_;
  std::map<std::string, HostScore> hosts_;
  std::map<uint64_t, std::string> seen_order_;  // first evidence (sequence) → host, for the bound
  std::map<std::string, uint64_t> seen_at_;
  uint64_t next_seen_ = 0;
  uint64_t evidence_ = 0;
};

}  // namespace meshwork
