// The replica protocol's peer messages, and their binary codec.
//
// Messages are one-way: a request carries a correlation id (`corr`, chosen by the sender, never 0)
// and its answer echoes it; the transport (node/: signed HTTP today, framed TCP later; the
// simulator: its virtual network) only moves bytes between named members and reports what it
// could not deliver. Records travel in encode_record's binary form and are shared between the
// messages that carry the same record (SharedRecord), so a record is encoded once however many
// peers get it.
//
//   Replicate     records to merge; answered by ReplicateAck once they are durable there
//   ReplicateAck  per record: did it merge, what status the replica now holds, whether it held a
//                 submission of the job before (then also its merged copy), whether it erased the
//                 job (retention: the record was refused, and the sender erases its copy too)
//   Fetch         ids whose copies the sender wants; answered by FetchReply (absent: no copy)
//   Digest        the sender's per-arc digests over the records both should hold; answered by
//                 DigestReply with the arcs that differ and the receiver's (id, fingerprint) there
//
// Four more kinds are not the replica core's: the node's cluster view (node/cluster_view.h) asks
// and answers them, read-only, and they never reach Replica::receive (is_replica_message):
//   ListRequest   one page of the receiver's own records (filter, limit, cursor); answered by
//                 ListReply with the records (at most limit, at most kListReplyBytesMax of them
//                 past the first) and the cursor where the receiver stopped
//   HeldRequest   how many records the receiver holds; answered by HeldReply
//
// Wire form (little-endian): u8 kMessageVersion, u8 kind, u64 corr, then the kind's fields —
// strings and records as u32 length + bytes, lists as u32 count + items. decode_message checks
// every length against the bytes left and the limits below before it allocates, decodes and
// checks every record (decode_record), and never throws or reads past the input.
//
// Thread-safety: value types and pure functions.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "dht/job_record.h"
#include "dht/result.h"

namespace meshwork {

inline constexpr uint8_t kMessageVersion = 3;          // 2: ItemAck::deleted; 3: if_claimed
inline constexpr size_t kMessageItemsMax = 4'096;      // records, ids, acks or entries per message
inline constexpr size_t kMessageBytesMax = 64u << 20;  // a larger message is refused whole
inline constexpr unsigned kDigestBits = 8;             // 256 arcs per anti-entropy digest
inline constexpr size_t kDigestBuckets = size_t{1} << kDigestBits;
inline constexpr size_t kNodeNameBytesMax = 255;
static_assert(kDigestBuckets <= kMessageItemsMax);
// Cluster-wide listing (ListRequest/ListReply): the same bounds as GET /v1/jobs.
inline constexpr size_t kListLimitMax = 1'000;           // records per page
inline constexpr size_t kListStateBytesMax = 16;         // a public state name, or ""
inline constexpr size_t kListTypeBytesMax = 64;          // a job type filter (longer ones are cut)
inline constexpr size_t kListCursorBytesMax = 128;       // "<created_at 16 hex>/<id>" fits
inline constexpr size_t kListReplyBytesMax = 16u << 20;  // records per reply past the first
static_assert(kListLimitMax <= kMessageItemsMax);
static_assert(2 * kListReplyBytesMax < kMessageBytesMax, "a full page and its last record fit");

// A record with its encoding, both immutable and shared.
struct SharedRecord {
  std::shared_ptr<const JobRecord> record;
  std::shared_ptr<const std::string> bytes;  // encode_record(*record)

  [[nodiscard]] static SharedRecord of(JobRecord r);  // encodes it
  [[nodiscard]] const JobRecord& operator*() const { return *record; }
  [[nodiscard]] const JobRecord* operator->() const { return record.get(); }
};

// An outcome shipped together with the claim it ends (dht/replica_run.cpp, ship_outcome): the
// receiver merges records[index] only when its copy, merged with the claim's status, would still
// hold that claim (status_before); otherwise it keeps its copy and its ack says what it holds.
struct IfClaimed {
  uint32_t index = 0;  // into Replicate::records; strictly increasing within a message
  JobStatus claim;     // state running
};

struct Replicate {
  uint64_t corr = 0;
  std::vector<SharedRecord> records;
  std::vector<IfClaimed> if_claimed;  // conditions on some of the records (usually none)
};

struct ItemAck {
  bool ok = false;       // merged and durable there
  bool existed = false;  // the replica held a submission of the job before (submitted_before)
  JobState state = JobState::queued;  // the replica's status after the merge
  uint32_t attempt = 0;
  std::string node;
  bool cancel_requested = false;
  std::optional<SharedRecord> copy;  // the replica's merged copy, when `existed`
  bool deleted = false;  // the replica erased the job (retention) and refused the record
};

struct ReplicateAck {
  uint64_t corr = 0;
  std::vector<ItemAck> items;  // one per record, in order
};

struct Fetch {
  uint64_t corr = 0;
  std::vector<std::string> ids;
};

struct FetchReply {
  uint64_t corr = 0;
  std::vector<std::optional<SharedRecord>> records;  // one per id, in order
};

struct Digest {
  uint64_t corr = 0;
  std::vector<uint64_t> buckets;  // exactly kDigestBuckets
};

struct DigestReply {
  uint64_t corr = 0;
  std::vector<uint32_t> differ;                           // bucket numbers
  std::vector<std::pair<std::string, uint64_t>> entries;  // (id, fingerprint) in those buckets
};

struct ListRequest {
  uint64_t corr = 0;
  std::string state;   // "" or a public state name (is_public_state_name)
  std::string type;    // "" for any
  uint32_t limit = 1;  // 1..kListLimitMax
  std::string cursor;  // "" from the newest
};

struct ListReply {
  uint64_t corr = 0;
  std::vector<SharedRecord> records;  // newest first
  std::string next_cursor;            // "" when the receiver has nothing further
};

struct HeldRequest {
  uint64_t corr = 0;
};

struct HeldReply {
  uint64_t corr = 0;
  uint64_t held = 0;
  uint64_t unfinished = 0;
};

using Message = std::variant<Replicate, ReplicateAck, Fetch, FetchReply, Digest, DigestReply,
                             ListRequest, ListReply, HeldRequest, HeldReply>;

// The replica core's kinds (the first six); the others are the cluster view's.
[[nodiscard]] bool is_replica_message(const Message& m);
[[nodiscard]] uint64_t corr_of(const Message& m);
[[nodiscard]] std::string_view message_name(const Message& m);

[[nodiscard]] std::string encode_message(const Message& m);
// Code::malformed for bytes that are not exactly one message of this version; Code::too_large
// past the limits above. Every record inside is checked by decode_record.
[[nodiscard]] Result<Message> decode_message(std::string_view bytes);

}  // namespace meshwork
