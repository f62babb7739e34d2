// The outgoing peer transport; see peer_client.h.
#include "node/peer_client.h"

#include <httplib.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <optional>
#include <thread>

#include "node/check.h"
#include "node/clock.h"
#include "node/peer_auth.h"
#include "node/thread_name.h"

namespace meshwork {

using nlohmann::json;

namespace peer_detail {

struct Item {
  std::string message;
  PeerClient::Failed failed;
};

struct Conn {
  uint64_t gen = 0;                         // the Peer::address_gen it was made for
  std::string address;                      // "host:port"
  std::unique_ptr<httplib::Client> client;  // null when the address is unusable
};

struct Peer {
  Peer(std::string n, size_t lanes)
      : name(std::move(n)), threads(lanes), live(lanes, false), conns(lanes) {}

  const std::string name;
  std::mutex mu;               // guards the fields up to the counters
  std::condition_variable cv;  // lanes wait here for messages or close
  std::string address;
  uint64_t address_gen = 0;  // bumped when the address changes; stale connections are replaced
  bool closed = false;       // removed or stopped: no new messages, lanes exit
  std::deque<Item> queue;
  size_t queue_bytes = 0;
  std::vector<std::thread> threads;  // one slot per lane; an exited lane's thread waits for join
  std::vector<bool> live;            // the lane's thread is in its loop
  size_t live_lanes = 0, idle_lanes = 0;
  std::vector<std::shared_ptr<Conn>> conns;       // per lane, so stop() can interrupt them
  std::vector<std::shared_ptr<Conn>> idle_calls;  // call()'s pool
  std::atomic<uint64_t> requests{0}, requests_failed{0}, messages{0}, messages_failed{0},
      rejected{0};
};

}  // namespace peer_detail

namespace {

using peer_detail::Conn;
using peer_detail::Item;
using peer_detail::Peer;

constexpr size_t kItemOverheadBytes = 4;      // the u32 length
constexpr size_t kErrorDetailBytesMax = 200;  // of a peer's error text quoted in a Status
constexpr size_t kAddressBytesMax = 128;      // "host:port", as gossip bounds it
constexpr size_t kCallPathBytesMax = 256;

static_assert(PeerOptions{}.batch_bytes_max <= PeerOptions{}.queue_bytes_max);
static_assert(PeerOptions{}.batch_items_max <= PeerOptions{}.queue_items_max);
static_assert(PeerOptions{}.batch_items_max <= kMessageBodyItemsMax);

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

void append_u32(std::string& out, size_t v) {
  MESHWORK_CHECK(v <= UINT32_MAX);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t read_u32(std::string_view in, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v |= uint32_t(static_cast<uint8_t>(in[at + i])) << (8 * i);
  return v;
}

size_t item_bytes(const Item& i) {
  return i.message.size() + kItemOverheadBytes;
}

// Moves up to the batch limits from the front of the peer's queue into `out`.
void take_batch_locked(Peer& p, std::vector<Item>& out, const PeerOptions& o) {
  size_t body_bytes = 0;
  while (!p.queue.empty() && out.size() < o.batch_items_max) {
    const size_t n = item_bytes(p.queue.front());
    if (!out.empty() && body_bytes + n > o.batch_bytes_max) break;
    body_bytes += n;
    p.queue_bytes -= n;
    out.push_back(std::move(p.queue.front()));
    p.queue.pop_front();
  }
}

void fail_all(std::vector<Item>& items, const Status& why) {
  for (Item& i : items) i.failed(why);
}

// Marks `p` closed and takes its queued messages; interrupts lane requests in flight if asked.
std::vector<Item> close_peer(Peer& p, bool interrupt) {
  std::vector<Item> drained;
  {
    std::lock_guard lk(p.mu);
    p.closed = true;
    drained.assign(std::make_move_iterator(p.queue.begin()),
                   std::make_move_iterator(p.queue.end()));
    p.queue.clear();
    p.queue_bytes = 0;
    p.idle_calls.clear();
    for (auto& c : p.conns)
      if (interrupt && c && c->client) c->client->stop();
  }
  p.cv.notify_all();
  return drained;
}

// Joins the lane threads of a closed peer (or those that have exited, when `exited_only`).
void join_lanes(Peer& p, bool exited_only) {
  std::vector<std::thread> done;
  {
    std::lock_guard lk(p.mu);
    for (size_t i = 0; i < p.threads.size(); ++i)
      if (p.threads[i].joinable() && (!exited_only || !p.live[i]))
        done.push_back(std::move(p.threads[i]));
  }
  for (auto& t : done) {
    MESHWORK_CHECK(t.get_id() != std::this_thread::get_id());
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
  o.batch_items_max = std::clamp<size_t>(o.batch_items_max, 1, kMessageBodyItemsMax);
  return o;
}

}  // namespace

std::string message_body(const std::vector<std::string_view>& messages) {
  size_t bytes = 0;
  for (const auto& m : messages) bytes += m.size() + kItemOverheadBytes;
  std::string body;
  body.reserve(bytes);
  for (const auto& m : messages) {
    append_u32(body, m.size());
    body.append(m);
  }
  return body;
}

Result<std::vector<std::string_view>> parse_message_body(std::string_view body, size_t items_max) {
  auto malformed = [](const char* why) {
    return Status(Code::malformed, std::string("message body: ") + why);
  };
  if (body.empty()) return malformed("no messages");
  std::vector<std::string_view> items;
  size_t at = 0;
  while (at < body.size()) {
    if (items.size() == items_max)
      return Status(Code::too_large,
                    "message body: more than " + std::to_string(items_max) + " messages");
    if (body.size() - at < kItemOverheadBytes) return malformed("truncated length");
    const uint32_t n = read_u32(body, at);
    at += kItemOverheadBytes;
    if (body.size() - at < n) return malformed("truncated message");
    items.push_back(body.substr(at, n));
    at += n;
  }
  return items;
}

PeerClient::PeerClient(const Identity& key, std::string self, PeerOptions options,
                       const PeerMacKeys* macs, PeerKeyLookup key_of)
    : key_(key),
      self_(std::move(self)),
      options_(checked(options)),
      macs_(macs),
      key_of_(std::move(key_of)) {}

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
  std::vector<std::pair<std::string, std::vector<Item>>> drained;
  std::vector<std::shared_ptr<Peer>> finished;
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
    for (auto it = peers_.begin(); it != peers_.end();) {
      if (addresses.contains(it->first)) {
        ++it;
        continue;
      }
      drained.emplace_back(it->first, close_peer(*it->second, /*interrupt=*/false));
      retired_.push_back(std::move(it->second));
      it = peers_.erase(it);
    }
    for (auto& [name, address] : addresses) {
      auto& p = peers_[name];
      if (!p) p = std::make_shared<Peer>(name, options_.lanes);
      set_address(*p, std::move(address));
    }
    std::erase_if(retired_, [&](const std::shared_ptr<Peer>& p) {
      std::lock_guard plk(p->mu);
      if (p->live_lanes != 0) return false;
      finished.push_back(p);
      return true;
    });
  }
  for (auto& [name, items] : drained)
    fail_all(items, Status(Code::unavailable, "peer " + name + " was removed"));
  for (auto& p : finished) join_lanes(*p, /*exited_only=*/false);
}

void PeerClient::send(const std::string& peer, std::string message, Failed failed) {
  auto found = find_peer(peer);
  if (!found.is_ok()) return failed(found.status());
  Peer& p = *found.value();
  Item item{std::move(message), std::move(failed)};
  const size_t bytes = item_bytes(item);
  std::thread stale;  // an exited lane's thread, joined outside the lock
  std::optional<Status> refused;
  {
    std::lock_guard lk(p.mu);
    if (p.closed) {
      refused = Status(Code::unavailable, "peer " + p.name + " was removed");
    } else if (p.queue.size() >= options_.queue_items_max ||
               p.queue_bytes + bytes > options_.queue_bytes_max) {
      p.rejected++;
      refused = Status(Code::overloaded, "the queue to peer " + p.name + " is full (" +
                                             std::to_string(p.queue.size()) + " messages)");
    } else {
      p.queue.push_back(std::move(item));
      p.queue_bytes += bytes;
      if (p.idle_lanes == 0 && p.live_lanes < options_.lanes) {
        size_t lane = 0;
        while (p.live[lane]) ++lane;
        stale = std::move(p.threads[lane]);
        p.live[lane] = true;
        p.live_lanes++;
        p.threads[lane] =
            std::thread([this, peer = found.value(), lane] { lane_main(peer, lane); });
      }
    }
  }
  if (refused) return item.failed(*refused);
  p.cv.notify_one();
  if (stale.joinable()) stale.join();
}

void PeerClient::lane_main(const std::shared_ptr<Peer>& p, size_t lane) {
  name_this_thread("mw-peer");
  const auto idle = std::chrono::milliseconds(options_.lane_idle_ms);
  std::unique_lock lk(p->mu);
  for (;;) {
    p->idle_lanes++;
    const bool work = p->cv.wait_for(lk, idle, [&] { return p->closed || !p->queue.empty(); });
    p->idle_lanes--;
    if (p->closed || !work) break;
    std::vector<Item> batch;
    take_batch_locked(*p, batch, options_);
    auto& c = p->conns[lane];
    if (!c || c->gen != p->address_gen) c = make_conn(*p, options_.io_timeout_ms);
    std::shared_ptr<Conn> conn = c;
    lk.unlock();
    std::vector<std::string_view> views;
    views.reserve(batch.size());
    for (const Item& i : batch) views.emplace_back(i.message);
    auto response =
        post(*conn, p->name, kMessagePath, message_body(views), "application/octet-stream");
    p->requests++;
    p->messages += batch.size();
    if (!response.is_ok()) {
      p->requests_failed++;
      p->messages_failed += batch.size();
      fail_all(batch, response.status());
    }
    batch.clear();
    lk.lock();
  }
  p->live[lane] = false;
  p->live_lanes--;
  p->conns[lane].reset();
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
                                     std::string body, const char* content_type) const {
  if (!conn.client)
    return Status(Code::unavailable,
                  "peer " + peer + " has an unusable address '" + short_detail(conn.address) + "'");
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  std::optional<std::string> pair;
  if (macs_ && key_of_)
    if (auto pk = key_of_(peer)) pair = macs_->key_for(*pk);
  req.headers = pair ? peer_mac_headers(*pair, self_, peer, req.method, path, body, wall_ms())
                     : peer_auth_headers(key_, self_, req.method, path, body, wall_ms());
  req.headers.emplace("Content-Type", content_type);
  req.body = std::move(body);
  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  if (!conn.client->send(req, res, error))
    return Status(Code::unavailable, "request to peer " + peer + " (" + conn.address +
                                         ") failed: " + httplib::to_string(error));
  if (res.status != 200 && res.status != 204)
    return Status(code_for_http_status(res.status), "peer " + peer + " answered " +
                                                        std::to_string(res.status) + " to " + path +
                                                        ": " + short_detail(res.body));
  return std::move(res.body);
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
  auto r = post(*conn, p.name, path, body, "application/json");
  std::lock_guard lk(p.mu);
  if (!p.closed && conn->client && conn->gen == p.address_gen &&
      p.idle_calls.size() < kPeerCallIdleMax)
    p.idle_calls.push_back(std::move(conn));
  return r;
}

void PeerClient::stop() {
  std::vector<std::shared_ptr<Peer>> all;
  std::vector<std::pair<std::string, std::vector<Item>>> drained;
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
    stopped_ = true;
    for (auto& [name, p] : peers_) {
      drained.emplace_back(name, close_peer(*p, /*interrupt=*/true));
      all.push_back(p);
    }
    for (auto& p : retired_) {
      (void)close_peer(*p, /*interrupt=*/true);
      all.push_back(p);
    }
    peers_.clear();
    retired_.clear();
  }
  for (auto& [name, items] : drained)
    fail_all(items, Status(Code::unavailable, "the peer client stopped"));
  for (auto& p : all) join_lanes(*p, /*exited_only=*/false);
}

json PeerClient::stats_json() const {
  std::vector<std::shared_ptr<Peer>> peers;
  {
    std::lock_guard lk(mu_);
    for (const auto& [name, p] : peers_) peers.push_back(p);
  }
  json out = json::object();
  for (const auto& p : peers) {
    size_t queue_items = 0, queue_bytes = 0, lanes = 0;
    {
      std::lock_guard lk(p->mu);
      queue_items = p->queue.size();
      queue_bytes = p->queue_bytes;
      lanes = p->live_lanes;
    }
    const uint64_t requests = p->requests.load(), messages = p->messages.load();
    out[p->name] = {{"requests", requests},
                    {"requests_failed", p->requests_failed.load()},
                    {"messages", messages},
                    {"messages_failed", p->messages_failed.load()},
                    {"rejected", p->rejected.load()},
                    {"queue_items", queue_items},
                    {"queue_bytes", queue_bytes},
                    {"lanes", lanes},
                    {"mean_batch", requests ? double(messages) / double(requests) : 0.0}};
  }
  return out;
}

}  // namespace meshwork
