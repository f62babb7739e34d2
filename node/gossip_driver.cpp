// Drives the pure gossip state machine with a real UDP socket and timers; see gossip_driver.h.
#include "node/gossip_driver.h"

#include <asio/ip/address_v4.hpp>
#include <asio/post.hpp>

#include <fstream>
#include <future>
#include <random>
#include <thread>

#include "node/clock.h"
#include "node/log.h"

namespace meshwork {
namespace {

using asio::ip::udp;

constexpr uint64_t kIdleTickMaxMs = 1'000;  // the longest the ticker sleeps, whatever the deadline

udp::endpoint to_endpoint(gossip::Address a) {
  return udp::endpoint(asio::ip::address_v4(a.ip), a.port);
}

std::optional<gossip::Address> to_address(const udp::endpoint& e) {
  if (!e.address().is_v4()) return std::nullopt;
  return gossip::Address{e.address().to_v4().to_uint(), e.port()};
}

spdlog::level::level_enum level_of(gossip::MemberEvent::Kind k) {
  using K = gossip::MemberEvent::Kind;
  return k == K::dead || k == K::suspect ? spdlog::level::warn : spdlog::level::info;
}

}  // namespace

Result<gossip::Keyring> load_cluster_keys(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Result<gossip::Keyring>(Code::io_error, "cannot read cluster key file " + path);
  std::vector<gossip::Key> keys;
  std::string line;
  for (size_t n = 1; std::getline(in, line) && n <= 64; ++n) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto key = gossip::Keyring::key_from_hex(line);
    if (!key)
      return Result<gossip::Keyring>(
          Code::invalid, path + ":" + std::to_string(n) + ": not a 64-hex-character cluster key");
    keys.push_back(*key);
  }
  if (keys.empty()) return Result<gossip::Keyring>(Code::invalid, path + " holds no cluster key");
  return gossip::Keyring(std::move(keys));
}

GossipDriver::GossipDriver(asio::io_context& io, GossipOptions options)
    : io_(io), options_(std::move(options)), socket_(io), ticker_(io) {}

GossipDriver::~GossipDriver() = default;

template <typename F>
auto GossipDriver::on_io(F f) -> decltype(f()) {
  std::packaged_task<decltype(f())()> task(std::move(f));
  auto result = task.get_future();
  asio::post(io_, [&task] { task(); });
  return result.get();
}

Status GossipDriver::start() {
  auto self = gossip::parse_address(options_.bind);
  if (!self) return {Code::invalid, "--gossip must be IPv4 HOST:PORT, got " + options_.bind};
  // What other members are told: the advertised host (if any) with the port bound below.
  std::optional<gossip::Address> announced = self;
  if (!options_.advertise.empty())
    announced = gossip::parse_address(options_.advertise + ":" + std::to_string(self->port));
  if (!announced) return {Code::invalid, "--advertise must be IPv4, got " + options_.advertise};
  std::vector<gossip::Address> seeds;
  for (const auto& s : options_.seeds) {
    auto a = gossip::parse_address(s);
    if (!a) return {Code::invalid, "--join must be IPv4 HOST:PORT, got " + s};
    if (*a != *self && *a != *announced) seeds.push_back(*a);
  }
  if (auto why = gossip::config_error(options_.config)) return {Code::invalid, *why};
  if (auto why = gossip::Membership::identity_error(options_.name, options_.meta))
    return {Code::invalid, *why};
  std::error_code ec;
  socket_.open(udp::v4(), ec);
  if (!ec) socket_.bind(to_endpoint(*self), ec);
  if (!ec) socket_.non_blocking(true, ec);
  if (ec)
    return {Code::io_error, "cannot bind gossip socket " + options_.bind + ": " + ec.message()};
  if (self->port == 0) self->port = socket_.local_endpoint(ec).port();  // an ephemeral port
  announced->port = self->port;
  // A restarted node must beat its old incarnation at once: start from wall-clock seconds.
  membership_.emplace(options_.config, options_.name, *announced, options_.meta, wall_ms() / 1000,
                      std::random_device{}(), options_.keyring);
  asio::post(io_, [this, seeds = std::move(seeds)]() mutable {
    membership_->join(mono_ms(), std::move(seeds), out_);
    flush();
    receive_next();
    on_tick();  // ticks once, then arms at the next deadline
  });
  return Status::ok();
}

void GossipDriver::receive_next() {
  socket_.async_receive_from(asio::buffer(buffer_), from_, [this](std::error_code ec, size_t n) {
    if (closed_ || ec == asio::error::operation_aborted) return;
    if (!ec) deliver(from_, std::span<const uint8_t>(buffer_.data(), n));
    receive_next();
  });
}

void GossipDriver::deliver(const udp::endpoint& from, std::span<const uint8_t> bytes) {
  auto addr = to_address(from);
  if (!addr) return;
  membership_->receive(mono_ms(), *addr, bytes, out_);
  flush();
  arm();
}

// Reads every datagram already waiting, so that tick() never times out a probe whose ack arrived.
void GossipDriver::drain() {
  for (int i = 0; i < 1024; ++i) {
    std::error_code ec;
    udp::endpoint from;
    size_t n = socket_.receive_from(asio::buffer(drain_buffer_), from, 0, ec);
    if (ec) return;  // would_block: nothing more
    deliver(from, std::span<const uint8_t>(drain_buffer_.data(), n));
  }
}

void GossipDriver::on_tick() {
  if (closed_) return;
  drain();
  membership_->tick(mono_ms(), out_);
  flush();
  arm();
}

// The state machine is ticked exactly at its next deadline (the driver contract's alternative to
// a fixed tick_ms), so an idle node wakes a few times a second instead of every tick_ms. Input can
// move the deadline earlier (news to gossip), so every input re-arms when it did.
void GossipDriver::arm() {
  if (closed_) return;
  const uint64_t at = membership_->next_deadline_ms();
  if (armed_ && at >= armed_at_ms_) return;
  const uint64_t now = mono_ms();
  armed_ = true;
  armed_at_ms_ = at;
  ticker_.expires_after(
      std::chrono::milliseconds(at > now ? std::min<uint64_t>(at - now, kIdleTickMaxMs) : 0));
  ticker_.async_wait([this](std::error_code ec) {
    if (ec) return;  // cancelled by a re-arm, or closing
    armed_ = false;
    on_tick();
  });
}

void GossipDriver::flush() {
  for (const auto& p : out_.packets) {
    std::error_code ec;
    socket_.send_to(asio::buffer(p.bytes), to_endpoint(p.to), 0, ec);
    if (ec) ++send_errors_;
  }
  for (const auto& e : out_.events) {
    log_event(level_of(e.kind), "member_" + std::string(gossip::to_string(e.kind)), "",
              e.member.name + " at " + gossip::to_string(e.member.addr) + " incarnation " +
                  std::to_string(e.member.incarnation));
    for (const auto& l : listeners_) l(e);
  }
  out_.packets.clear();
  out_.events.clear();
}

void GossipDriver::leave(uint64_t grace_ms) {
  if (!membership_) return;
  on_io([this] {
    membership_->leave(mono_ms(), out_);
    flush();
    arm();
    return 0;
  });
  // Keep gossiping until the news of our leaving has been sent its full retransmit count.
  for (uint64_t waited = 0; waited < grace_ms; waited += 20) {
    // Done when the news went out enough times, or when there is nobody to tell.
    if (on_io([this] {
          return membership_->pending_broadcasts() == 0 || membership_->live_count() <= 1;
        }))
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  on_io([this] {
    closed_ = true;
    ticker_.cancel();
    std::error_code ec;
    socket_.close(ec);
    return 0;
  });
}

std::vector<gossip::MemberInfo> GossipDriver::members() {
  return on_io([this] { return membership_->members(); });
}

nlohmann::json GossipDriver::members_json() {
  return on_io([this] {
    const uint64_t mono = mono_ms(), wall = wall_ms();
    nlohmann::json list = nlohmann::json::array();
    for (const auto& m : membership_->members()) {
      list.push_back({{"name", m.name},
                      {"state", gossip::to_string(m.state)},
                      {"incarnation", m.incarnation},
                      {"gossip", gossip::to_string(m.addr)},
                      {"api", m.meta.api},
                      {"public_key", m.meta.public_key},
                      {"tags", m.meta.tags},
                      {"since", wall - std::min(wall, mono - std::min(mono, m.state_since_ms))}});
    }
    return nlohmann::json{{"self", membership_->name()}, {"members", std::move(list)}};
  });
}

gossip::Stats GossipDriver::stats() {
  return on_io([this] { return membership_->stats(); });
}

nlohmann::json GossipDriver::stats_json() {
  return on_io([this] {
    const auto& s = membership_->stats();
    return nlohmann::json{{"members", membership_->member_count()},
                          {"live", membership_->live_count()},
                          {"incarnation", membership_->incarnation()},
                          {"awareness", membership_->awareness()},
                          {"packets_sent", s.packets_sent},
                          {"bytes_sent", s.bytes_sent},
                          {"packets_received", s.packets_received},
                          {"bytes_received", s.bytes_received},
                          {"dropped_unsealable", s.dropped_unsealable},
                          {"dropped_malformed", s.dropped_malformed},
                          {"dropped_oversize", s.dropped_oversize},
                          {"probes", s.probes},
                          {"probe_failures", s.probe_failures},
                          {"suspicions", s.suspicions},
                          {"deaths_declared", s.deaths_declared},
                          {"refutes", s.refutes},
                          {"push_pulls", s.push_pulls},
                          {"send_errors", send_errors_}};
  });
}

}  // namespace meshwork
