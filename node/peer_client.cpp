// The peer client for scatter-gather calls; see peer_client.h.
#include "node/peer_client.h"

#include <httplib.h>

#include <cctype>
#include <chrono>
#include <optional>

#include "node/check.h"
#include "node/clock.h"
#include "node/peer_auth.h"

namespace meshwork {

namespace peer_detail {

struct Conn {
  uint64_t gen = 0;                         // the Peer::address_gen it was made for
  std::string address;                      // "host:port"
  std::unique_ptr<httplib::Client> client;  // null when the address is unusable
};

struct Peer {
  explicit Peer(std::string n) : name(std::move(n)) {}
  const std::string name;
  std::mutex mu;  // guards the fields below
  std::string address;
  uint64_t address_gen = 0;  // bumped when the address changes; stale connections are replaced
  bool closed = false;       // removed or stopped
  std::vector<std::shared_ptr<Conn>> idle_calls;
};

}  // namespace peer_detail

namespace {

using peer_detail::Conn;

constexpr size_t kErrorDetailBytesMax = 200;  // of a peer's error text quoted in a Status
constexpr size_t kAddressBytesMax = 128;      // "host:port", as gossip bounds it
constexpr size_t kCallPathBytesMax = 256;

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

void set_address(peer_detail::Peer& p, std::string address) {
  std::lock_guard lk(p.mu);
  if (p.address == address) return;
  p.address = std::move(address);
  ++p.address_gen;
  p.idle_calls.clear();
}

void close_peer(peer_detail::Peer& p) {
  std::lock_guard lk(p.mu);
  p.closed = true;
  p.idle_calls.clear();
}

}  // namespace

PeerClient::PeerClient(const Identity& key, std::string self, PeerOptions options,
                       const PeerMacKeys* macs, PeerKeyLookup key_of)
    : key_(key),
      self_(std::move(self)),
      options_(options),
      macs_(macs),
      key_of_(std::move(key_of)) {}

PeerClient::~PeerClient() {
  stop();
}

Result<std::shared_ptr<peer_detail::Peer>> PeerClient::find_peer(const std::string& name) const {
  std::lock_guard lk(mu_);
  if (stopped_) return Status(Code::unavailable, "the peer client is stopped");
  auto it = peers_.find(name);
  if (it == peers_.end()) return Status(Code::unavailable, "unknown peer '" + name + "'");
  return it->second;
}

void PeerClient::set_peers(std::map<std::string, std::string> addresses) {
  std::lock_guard lk(mu_);
  if (stopped_) return;
  for (auto it = peers_.begin(); it != peers_.end();) {
    if (addresses.contains(it->first)) {
      ++it;
      continue;
    }
    close_peer(*it->second);
    it = peers_.erase(it);
  }
  for (auto& [name, address] : addresses) {
    auto& p = peers_[name];
    if (!p) p = std::make_shared<peer_detail::Peer>(name);
    set_address(*p, std::move(address));
  }
}

std::shared_ptr<Conn> PeerClient::make_conn(const peer_detail::Peer& p,
                                            uint64_t io_timeout_ms) const {
  auto c = std::make_shared<Conn>();
  c->gen = p.address_gen;
  c->address = p.address;
  auto hp = parse_address(p.address);
  if (!hp) return c;
  if (options_.tls) {
    const std::string host =
        hp->host.find(':') == std::string::npos ? hp->host : "[" + hp->host + "]";
    c->client =
        std::make_unique<httplib::Client>("https://" + host + ":" + std::to_string(hp->port));
    if (!options_.ca_file.empty()) c->client->set_ca_cert_path(options_.ca_file);
  } else {
    c->client = std::make_unique<httplib::Client>(hp->host, hp->port);
  }
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
  peer_detail::Peer& p = *found.value();
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
  std::lock_guard lk(mu_);
  if (stopped_) return;
  stopped_ = true;
  for (auto& [name, p] : peers_) close_peer(*p);
  peers_.clear();
}

}  // namespace meshwork
