// Coalescing, keep-alive calls to other nodes; see peer_client.h.
#include "node/peer_client.h"

#include <httplib.h>

#include <atomic>
#include <cassert>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <thread>
#include <type_traits>

#include "node/clock.h"
#include "node/envelope.h"
#include "node/json_bounded.h"
#include "node/peer_auth.h"

namespace meshwork {

using nlohmann::json;

namespace peer_detail {

struct ReplicateItem {
  std::string record;
  PeerClient::ReplicateDone done;
  uint64_t queued_at_ms = 0;  // monotonic
};

struct FetchItem {
  std::string id;
  PeerClient::FetchDone done;
};

struct Conn {
  uint64_t gen = 0;                         // the Peer::address_gen it was made for
  std::string address;                      // "host:port"
  std::unique_ptr<httplib::Client> client;  // null when the address is unusable
};

struct Batch {
  bool fetch = false;  // which of the two vectors is in use
  std::vector<ReplicateItem> replicate;
  std::vector<FetchItem> fetches;
};

// Items drained from a closed peer, to be failed outside its lock.
struct Drained {
  std::string peer;
  std::deque<ReplicateItem> replicate;
  std::deque<FetchItem> fetches;
};

struct Peer {
  explicit Peer(std::string n) : name(std::move(n)) {}
  [[nodiscard]] size_t queue_items() const { return replicate_q.size() + fetch_q.size(); }

  const std::string name;
  std::mutex mu;               // guards the fields up to the counters
  std::condition_variable cv;  // lanes wait here for items or close
  std::string address;
  uint64_t address_gen = 0;  // bumped when the address changes; stale connections are replaced
  bool closed = false;       // removed or stopped: no new items, lanes exit
  std::deque<ReplicateItem> replicate_q;
  std::deque<FetchItem> fetch_q;
  size_t queue_bytes = 0;
  bool fetch_turn = false;  // when both kinds wait, which goes next
  std::vector<std::thread> lanes;
  std::vector<std::shared_ptr<Conn>> lane_conns;  // one per lane, so stop() can interrupt them
  std::vector<std::shared_ptr<Conn>> idle_calls;  // call()'s pool
  std::atomic<size_t> lanes_running{0};
  std::atomic<uint64_t> requests{0}, requests_failed{0}, items{0}, items_failed{0}, rejected{0};
};

}  // namespace peer_detail

namespace {

using peer_detail::Batch;
using peer_detail::Conn;
using peer_detail::Drained;
using peer_detail::FetchItem;
using peer_detail::Peer;
using peer_detail::ReplicateItem;

constexpr size_t kReplicateBodyOverheadBytes = 1 + 4;  // version, count
constexpr size_t kReplicateItemOverheadBytes = 4;      // length
constexpr uint8_t kBinaryRecordVersion = 2;            // encode_record's first byte
constexpr size_t kFetchBodyOverheadBytes = sizeof(R"({"ids":[]})") - 1;
constexpr size_t kErrorDetailBytesMax = 200;  // of a peer's error text quoted in a Status
constexpr size_t kAddressBytesMax = 128;      // "host:port", as gossip bounds it
constexpr size_t kCallPathBytesMax = 256;

static_assert(PeerOptions{}.batch_bytes_max <= PeerOptions{}.queue_bytes_max);
static_assert(PeerOptions{}.batch_items_max <= PeerOptions{}.queue_items_max);

size_t item_bytes(const ReplicateItem& i) {
  return i.record.size() + kReplicateItemOverheadBytes;
}
size_t item_bytes(const FetchItem& i) {
  return i.id.size() + 3;
}  // + quotes and comma

template <typename Item>
std::deque<Item>& queue_of(Peer& p) {
  if constexpr (std::is_same_v<Item, ReplicateItem>) {
    return p.replicate_q;
  } else {
    return p.fetch_q;
  }
}

ReplicateAck failed_ack(Status s) {
  ReplicateAck a;
  a.status = std::move(s);
  return a;
}
void fail(ReplicateItem& i, const Status& s) {
  i.done(failed_ack(s));
}
void fail(FetchItem& i, const Status& s) {
  i.done(s);
}

// Up to `bytes_max` bytes of untrusted text, with anything but printable ASCII replaced.
std::string short_detail(std::string_view text, size_t bytes_max = kErrorDetailBytesMax) {
  std::string out(text.substr(0, bytes_max));
  for (char& c : out)
    if (c < 0x20 || c > 0x7e) c = '?';
  return text.size() > bytes_max ? out + "..." : out;
}

struct HostPort {
  std::string host;
  int port = 0;
};

// "host:port" or "[v6]:port"; nullopt for anything else.
std::optional<HostPort> parse_address(std::string_view a) {
  size_t colon = a.rfind(':');
  if (a.size() > kAddressBytesMax || colon == std::string_view::npos || colon == 0) return {};
  std::string_view host = a.substr(0, colon), port = a.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  for (char c : host)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_' &&
        c != ':')
      return {};
  int v = 0;
  for (char c : port) {
    if (c < '0' || c > '9' || v > 65535) return {};
    v = v * 10 + (c - '0');
  }
  if (port.empty() || v == 0 || v > 65535) return {};
  return HostPort{std::string(host), v};
}

// An absolute path of [A-Za-z0-9/_.-]: signed exactly as the receiver will see it.
bool is_plain_path(std::string_view path) {
  if (path.empty() || path.front() != '/' || path.size() > kCallPathBytesMax) return false;
  for (char c : path)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '/' && c != '_' && c != '.' &&
        c != '-')
      return false;
  return true;
}

Code code_for_http_status(int status) {
  if (status == 429) return Code::overloaded;
  if (status >= 500 && status <= 599) return Code::unavailable;
  return Code::io_error;
}

// Moves up to the batch limits from the front of `q` into `out`; returns the bytes taken.
template <typename Item>
size_t take_from(std::deque<Item>& q, std::vector<Item>& out, size_t body_bytes,
                 const PeerOptions& o) {
  size_t taken = 0;
  while (!q.empty() && out.size() < o.batch_items_max) {
    size_t n = item_bytes(q.front());
    if (!out.empty() && body_bytes + n > o.batch_bytes_max) break;
    body_bytes += n;
    taken += n;
    out.push_back(std::move(q.front()));
    q.pop_front();
  }
  return taken;
}

// Takes one batch of one kind, alternating kinds when both wait. Precondition: items queued.
void take_batch_locked(Peer& p, Batch& b, const PeerOptions& o) {
  b.fetch = !p.fetch_q.empty() && (p.replicate_q.empty() || p.fetch_turn);
  p.fetch_turn = !b.fetch;
  size_t taken = b.fetch ? take_from(p.fetch_q, b.fetches, kFetchBodyOverheadBytes, o)
                         : take_from(p.replicate_q, b.replicate, kReplicateBodyOverheadBytes, o);
  p.queue_bytes -= taken;
}

void append_u32(std::string& out, size_t v) {
  assert(v <= UINT32_MAX);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t read_u32(std::string_view in, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v |= uint32_t(static_cast<uint8_t>(in[at + i])) << (8 * i);
  return v;
}

std::string body_of(const std::vector<ReplicateItem>& items) {
  std::vector<std::string_view> records;
  records.reserve(items.size());
  for (const auto& i : items) records.emplace_back(i.record);
  return replicate_body(records);
}

std::string fetch_body(const std::vector<FetchItem>& items) {
  std::string body = R"({"ids":[)";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) body += ',';
    body += '"' + items[i].id + '"';  // ids are checked hex, nothing to escape
  }
  body += "]}";
  return body;
}

Status malformed_answer(const std::string& peer, const std::string& why) {
  return Status(Code::io_error, "malformed answer from peer " + peer + ": " + why);
}

// The `field` array of a 200 answer, checked to hold exactly `count` entries.
Result<json> answer_array(const std::string& peer, const Result<std::string>& response,
                          const char* field, size_t count) {
  if (!response.is_ok()) return response.status();
  auto doc = parse_json_bounded(response.value());
  if (!doc.is_ok()) return malformed_answer(peer, doc.status().message());
  auto it = doc.value().find(field);
  if (!doc.value().is_object() || it == doc.value().end() || !it->is_array())
    return malformed_answer(peer, std::string("no '") + field + "' array");
  if (it->size() != count)
    return malformed_answer(
        peer, std::to_string(it->size()) + " answers for " + std::to_string(count) + " items");
  return std::move(*it);
}

const json* member(const json& o, const char* key, json::value_t type) {
  auto it = o.find(key);
  return it != o.end() && it->type() == type ? &*it : nullptr;
}

ReplicateAck refused_ack(const std::string& peer, const json& item) {
  const json* error = member(item, "error", json::value_t::string);
  std::string why = error ? short_detail(error->get_ref<const std::string&>()) : "no reason given";
  return failed_ack(Status(Code::io_error, "peer " + peer + " refused the record: " + why));
}

// One item of a replicate answer; every field is checked.
ReplicateAck parse_ack(const std::string& peer, const json& item) {
  const json* ok = item.is_object() ? member(item, "ok", json::value_t::boolean) : nullptr;
  if (!ok) return failed_ack(malformed_answer(peer, "an item has no boolean 'ok'"));
  if (!ok->get<bool>()) return refused_ack(peer, item);
  const json* existed = member(item, "existed", json::value_t::boolean);
  const json* cancel = member(item, "cancel", json::value_t::boolean);
  const json* state = member(item, "state", json::value_t::string);
  const json* attempt = member(item, "attempt", json::value_t::number_unsigned);
  const json* node = member(item, "node", json::value_t::string);
  std::optional<JobState> parsed = state ? parse_state(state->get<std::string>()) : std::nullopt;
  if (!existed || !cancel || !parsed || !attempt || attempt->get<uint64_t>() > UINT32_MAX ||
      !node || node->get_ref<const std::string&>().size() > kPeerNodeNameBytesMax)
    return failed_ack(malformed_answer(peer,
                                       "an item lacks a valid existed, state, attempt, "
                                       "node or cancel"));
  ReplicateAck ack;
  ack.existed = existed->get<bool>();
  ack.state = *parsed;
  ack.attempt = static_cast<uint32_t>(attempt->get<uint64_t>());
  ack.node = node->get<std::string>();
  ack.cancel_requested = cancel->get<bool>();
  return ack;
}

// One entry of a fetch answer: null, or the record of the id asked for.
Result<std::optional<std::string>> parse_fetched(const std::string& peer, const json& rec,
                                                 const std::string& id) {
  if (rec.is_null()) return std::optional<std::string>();
  const json* rec_id = rec.is_object() ? member(rec, "id", json::value_t::string) : nullptr;
  if (!rec_id || rec_id->get_ref<const std::string&>() != id)
    return malformed_answer(peer, "a fetched record is not an object with the id asked for");
  return std::optional<std::string>(rec.dump());
}

// Runs each item's callback with its answer; returns how many failed.
size_t finish(const std::string& peer, std::vector<ReplicateItem>& items,
              const Result<std::string>& response) {
  auto results = answer_array(peer, response, "results", items.size());
  size_t failed = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    ReplicateAck ack =
        results.is_ok() ? parse_ack(peer, results.value()[i]) : failed_ack(results.status());
    failed += ack.status.is_ok() ? 0 : 1;
    items[i].done(std::move(ack));
  }
  return failed;
}

size_t finish(const std::string& peer, std::vector<FetchItem>& items,
              const Result<std::string>& response) {
  auto records = answer_array(peer, response, "records", items.size());
  size_t failed = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    Result<std::optional<std::string>> r =
        records.is_ok() ? parse_fetched(peer, records.value()[i], items[i].id)
                        : Result<std::optional<std::string>>(records.status());
    failed += r.is_ok() ? 0 : 1;
    items[i].done(std::move(r));
  }
  return failed;
}

// Marks `p` closed and takes its queued items; interrupts lane requests in flight if asked.
Drained close_peer(Peer& p, bool interrupt) {
  Drained d;
  d.peer = p.name;
  {
    std::lock_guard lk(p.mu);
    p.closed = true;
    d.replicate.swap(p.replicate_q);
    d.fetches.swap(p.fetch_q);
    p.queue_bytes = 0;
    p.idle_calls.clear();
    for (auto& c : p.lane_conns)
      if (interrupt && c && c->client) c->client->stop();
  }
  p.cv.notify_all();
  return d;
}

void fail_all(Drained& d, const Status& why) {
  for (auto& i : d.replicate) fail(i, why);
  for (auto& i : d.fetches) fail(i, why);
}

void join_lanes(Peer& p) {
  std::vector<std::thread> lanes;
  {
    std::lock_guard lk(p.mu);
    lanes.swap(p.lanes);
  }
  for (auto& t : lanes) {
    assert(t.get_id() != std::this_thread::get_id() && "stop() called from a callback");
    t.join();
  }
}

void set_address(Peer& p, std::string address) {
  std::lock_guard lk(p.mu);
  if (p.address == address) return;
  p.address = std::move(address);
  ++p.address_gen;
  p.idle_calls.clear();
}

PeerOptions checked(PeerOptions o) {
  o.lanes = std::max<size_t>(o.lanes, 1);
  o.batch_items_max = std::max<size_t>(o.batch_items_max, 1);
  return o;
}

}  // namespace

std::string replicate_body(const std::vector<std::string_view>& records) {
  size_t bytes = kReplicateBodyOverheadBytes;
  for (const auto& r : records) bytes += r.size() + kReplicateItemOverheadBytes;
  std::string body;
  body.reserve(bytes);
  body.push_back(static_cast<char>(kReplicateBodyVersion));
  append_u32(body, records.size());
  for (const auto& r : records) {
    append_u32(body, r.size());
    body.append(r);
  }
  return body;
}

Result<std::vector<std::string_view>> parse_replicate_body(std::string_view body,
                                                           size_t items_max) {
  auto malformed = [](const char* why) {
    return Status(Code::malformed, std::string("replicate body: ") + why);
  };
  if (body.size() < kReplicateBodyOverheadBytes ||
      static_cast<uint8_t>(body.front()) != kReplicateBodyVersion)
    return malformed("not a binary replicate body of a known version");
  const uint32_t count = read_u32(body, 1);
  if (count > items_max)
    return Status(Code::too_large,
                  "replicate body: more than " + std::to_string(items_max) + " records");
  std::vector<std::string_view> records;
  records.reserve(count);
  size_t at = kReplicateBodyOverheadBytes;
  for (uint32_t i = 0; i < count; ++i) {
    if (body.size() - at < kReplicateItemOverheadBytes) return malformed("truncated");
    const uint32_t n = read_u32(body, at);
    at += kReplicateItemOverheadBytes;
    if (body.size() - at < n) return malformed("truncated");
    records.push_back(body.substr(at, n));
    at += n;
  }
  if (at != body.size()) return malformed("bytes after the last record");
  return records;
}

PeerClient::PeerClient(const Identity& key, std::string self, PeerOptions options)
    : key_(key), self_(std::move(self)), options_(checked(options)) {}

PeerClient::~PeerClient() {
  stop();
}

Result<std::shared_ptr<Peer>> PeerClient::find_peer(const std::string& name) const {
  std::lock_guard lk(mu_);
  if (stopped_) return Status(Code::unavailable, "the peer client is stopped");
  auto it = peers_.find(name);
  if (it == peers_.end()) return Status(Code::unavailable, "unknown peer '" + name + "'");
  return it->second;
}

void PeerClient::set_peers(std::map<std::string, std::string> addresses) {
  std::vector<Drained> drained;
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
    for (auto it = peers_.begin(); it != peers_.end();) {
      if (addresses.contains(it->first)) {
        ++it;
        continue;
      }
      drained.push_back(close_peer(*it->second, /*interrupt=*/false));
      retired_.push_back(std::move(it->second));
      it = peers_.erase(it);
    }
    for (auto& [name, address] : addresses) {
      auto& p = peers_[name];
      if (!p) p = std::make_shared<Peer>(name);
      set_address(*p, std::move(address));
    }
  }
  for (auto& d : drained) fail_all(d, Status(Code::unavailable, "peer " + d.peer + " was removed"));
  reap_retired();
}

void PeerClient::reap_retired() {
  std::vector<std::shared_ptr<Peer>> finished;
  {
    std::lock_guard lk(mu_);
    std::erase_if(retired_, [&](const std::shared_ptr<Peer>& p) {
      if (p->lanes_running.load() != 0) return false;
      finished.push_back(p);
      return true;
    });
  }
  for (auto& p : finished) join_lanes(*p);
}

template <typename Item>
Status PeerClient::push(const std::shared_ptr<Peer>& p, Item& item) {
  const size_t bytes = item_bytes(item);
  {
    std::lock_guard lk(p->mu);
    if (p->closed) return Status(Code::unavailable, "peer " + p->name + " was removed");
    if (p->queue_items() >= options_.queue_items_max ||
        p->queue_bytes + bytes > options_.queue_bytes_max) {
      p->rejected++;
      return Status(Code::overloaded, "the queue to peer " + p->name + " is full (" +
                                          std::to_string(p->queue_items()) + " items)");
    }
    queue_of<Item>(*p).push_back(std::move(item));
    p->queue_bytes += bytes;
    if (p->lanes.empty()) start_lanes_locked(p);
  }
  p->cv.notify_one();
  return Status::ok();
}

void PeerClient::replicate(const std::string& peer, std::string record, ReplicateDone done) {
  ReplicateItem item{std::move(record), std::move(done), mono_ms()};
  const std::string& r = item.record;
  if (r.empty() || static_cast<uint8_t>(r.front()) != kBinaryRecordVersion || r.size() > UINT32_MAX)
    return fail(item, Status(Code::invalid, "a replicated record must be a binary record"));
  auto p = find_peer(peer);
  Status s = p.is_ok() ? push(p.value(), item) : p.status();
  if (!s.is_ok()) fail(item, s);
}

void PeerClient::fetch(const std::string& peer, std::string id, FetchDone done) {
  FetchItem item{std::move(id), std::move(done)};
  if (!is_job_id(item.id)) return fail(item, Status(Code::invalid, "not a job id"));
  auto p = find_peer(peer);
  Status s = p.is_ok() ? push(p.value(), item) : p.status();
  if (!s.is_ok()) fail(item, s);
}

void PeerClient::start_lanes_locked(const std::shared_ptr<Peer>& p) {
  p->lane_conns.resize(options_.lanes);
  for (size_t lane = 0; lane < options_.lanes; ++lane) {
    p->lanes_running++;
    p->lanes.emplace_back([this, p, lane] { lane_main(p, lane); });
  }
}

void PeerClient::lane_main(const std::shared_ptr<Peer>& p, size_t lane) {
  for (;;) {
    Batch batch;
    std::shared_ptr<Conn> conn;
    {
      std::unique_lock lk(p->mu);
      p->cv.wait(lk, [&] { return p->closed || p->queue_items() > 0; });
      if (p->closed) break;
      take_batch_locked(*p, batch, options_);
      auto& c = p->lane_conns[lane];
      if (!c || c->gen != p->address_gen) c = make_conn(*p, options_.io_timeout_ms);
      conn = c;
    }
    run_batch(*p, *conn, batch);
  }
  p->lanes_running--;
}

void PeerClient::run_batch(Peer& p, Conn& conn, Batch& batch) const {
  const size_t n = batch.fetch ? batch.fetches.size() : batch.replicate.size();
  auto response = batch.fetch ? post(conn, p.name, kFetchPath, fetch_body(batch.fetches))
                              : post(conn, p.name, kReplicatePath, body_of(batch.replicate));
  p.requests++;
  p.items += n;
  if (!response.is_ok()) p.requests_failed++;
  p.items_failed += batch.fetch ? finish(p.name, batch.fetches, response)
                                : finish(p.name, batch.replicate, response);
}

std::shared_ptr<Conn> PeerClient::make_conn(const Peer& p, uint64_t io_timeout_ms) const {
  auto c = std::make_shared<Conn>();
  c->gen = p.address_gen;
  c->address = p.address;
  auto hp = parse_address(p.address);
  if (!hp) return c;
  c->client = std::make_unique<httplib::Client>(hp->host, hp->port);
  c->client->set_tcp_nodelay(true);
  c->client->set_keep_alive(true);
  c->client->set_connection_timeout(std::chrono::milliseconds(options_.connect_timeout_ms));
  c->client->set_read_timeout(std::chrono::milliseconds(io_timeout_ms));
  c->client->set_write_timeout(std::chrono::milliseconds(io_timeout_ms));
  return c;
}

Result<std::string> PeerClient::post(Conn& conn, const std::string& peer, const std::string& path,
                                     std::string body) const {
  if (!conn.client)
    return Status(Code::unavailable,
                  "peer " + peer + " has an unusable address '" + short_detail(conn.address) + "'");
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.headers = peer_auth_headers(key_, self_, req.method, path, body, wall_ms());
  req.headers.emplace("Content-Type",
                      path == kReplicatePath ? "application/octet-stream" : "application/json");
  req.body = std::move(body);
  std::string answer;
  bool too_large = false;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    too_large = answer.size() + n > options_.response_bytes_max;
    if (!too_large) answer.append(data, n);
    return !too_large;
  };
  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  const bool answered = conn.client->send(req, res, error);
  if (too_large)
    return Status(Code::io_error, "peer " + peer + " sent more than " +
                                      std::to_string(options_.response_bytes_max) + " bytes");
  if (!answered)
    return Status(Code::unavailable, "request to peer " + peer + " (" + conn.address +
                                         ") failed: " + httplib::to_string(error));
  if (res.status != 200)
    return Status(code_for_http_status(res.status), "peer " + peer + " answered " +
                                                        std::to_string(res.status) + " to " + path +
                                                        ": " + short_detail(answer));
  return answer;
}

Result<std::string> PeerClient::call(const std::string& peer, const std::string& path,
                                     const std::string& body, uint64_t timeout_ms) {
  if (!is_plain_path(path)) return Status(Code::invalid, "a peer call path must be plain");
  auto found = find_peer(peer);
  if (!found.is_ok()) return found.status();
  Peer& p = *found.value();
  std::shared_ptr<Conn> conn;
  {
    std::lock_guard lk(p.mu);
    if (p.closed) return Status(Code::unavailable, "peer " + peer + " was removed");
    while (!conn && !p.idle_calls.empty()) {
      conn = std::move(p.idle_calls.back());
      p.idle_calls.pop_back();
      if (conn->gen != p.address_gen) conn.reset();
    }
    if (!conn) conn = make_conn(p, timeout_ms);
  }
  if (conn->client) {
    conn->client->set_read_timeout(std::chrono::milliseconds(std::max<uint64_t>(timeout_ms, 1)));
    conn->client->set_write_timeout(std::chrono::milliseconds(std::max<uint64_t>(timeout_ms, 1)));
  }
  auto r = post(*conn, p.name, path, body);
  std::lock_guard lk(p.mu);
  if (!p.closed && conn->client && conn->gen == p.address_gen &&
      p.idle_calls.size() < kPeerCallIdleMax)
    p.idle_calls.push_back(std::move(conn));
  return r;
}

void PeerClient::stop() {
  std::map<std::string, std::shared_ptr<Peer>> peers;
  std::vector<std::shared_ptr<Peer>> retired;
  std::vector<Drained> drained;
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
    stopped_ = true;
    peers.swap(peers_);
    retired.swap(retired_);
    for (auto& [name, p] : peers) drained.push_back(close_peer(*p, /*interrupt=*/true));
    for (auto& p : retired) (void)close_peer(*p, /*interrupt=*/true);
  }
  for (auto& d : drained) fail_all(d, Status(Code::unavailable, "the peer client stopped"));
  for (auto& [name, p] : peers) join_lanes(*p);
  for (auto& p : retired) join_lanes(*p);
}

uint64_t PeerClient::replicate_lag_ms(const std::string& peer) const {
  auto p = find_peer(peer);
  if (!p.is_ok()) return 0;
  std::lock_guard lk(p.value()->mu);
  const auto& q = p.value()->replicate_q;
  const uint64_t now = mono_ms();
  return q.empty() || q.front().queued_at_ms >= now ? 0 : now - q.front().queued_at_ms;
}

json PeerClient::stats_json() const {
  std::vector<std::shared_ptr<Peer>> peers;
  {
    std::lock_guard lk(mu_);
    for (const auto& [name, p] : peers_) peers.push_back(p);
  }
  json out = json::object();
  for (const auto& p : peers) {
    size_t queue_items = 0, queue_bytes = 0;
    {
      std::lock_guard lk(p->mu);
      queue_items = p->queue_items();
      queue_bytes = p->queue_bytes;
    }
    uint64_t requests = p->requests.load(), items = p->items.load();
    out[p->name] = {{"requests", requests},
                    {"requests_failed", p->requests_failed.load()},
                    {"items", items},
                    {"items_failed", p->items_failed.load()},
                    {"rejected", p->rejected.load()},
                    {"queue_items", queue_items},
                    {"queue_bytes", queue_bytes},
                    {"replicate_lag_ms", replicate_lag_ms(p->name)},
                    {"mean_batch", requests ? double(items) / double(requests) : 0.0}};
  }
  return out;
}

}  // namespace meshwork
