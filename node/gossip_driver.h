// Drives the pure gossip state machine (gossip/membership.h) with a real UDP socket and timers.
//
// Everything here runs on the node's io_context thread, which owns the Membership: datagrams are
// received asynchronously and fed to receive(); a timer calls tick() every config.tick_ms, first
// draining datagrams that have already arrived (the Membership's driver contract); packets it
// emits are sent at once. Other threads ask for members or stats through members()/stats(), which
// post to the io thread and wait for the answer.
// Member events are logged and passed to listeners (the ring, later) on the io thread.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "dht/result.h"
#include "gossip/membership.h"

namespace meshwork {

struct GossipOptions {
  std::string name;
  std::string bind = "127.0.0.1:7001";  // HOST:PORT, IPv4
  std::string advertise;                // IPv4 announced instead of the bound host; empty: bound
  std::vector<std::string> seeds;       // HOST:PORT of members to join through
  gossip::Config config;
  gossip::Keyring keyring;  // empty: packets are not sealed
  gossip::NodeMeta meta;
};

// Reads a cluster key file: one 64-hex-character key per line ('#' comments); the first seals.
[[nodiscard]] Result<gossip::Keyring> load_cluster_keys(const std::string& path);

class GossipDriver {
 public:
  using Listener = std::function<void(const gossip::MemberEvent&)>;

  GossipDriver(asio::io_context& io, GossipOptions options);
  ~GossipDriver();
  GossipDriver(const GossipDriver&) = delete;
  GossipDriver& operator=(const GossipDriver&) = delete;

  // Binds the socket (from any thread, before or while the io thread runs) and starts joining.
  [[nodiscard]] Status start();
  // Announces `left`, keeps gossiping until that news has been retransmitted enough (at most
  // `grace_ms`), then closes the socket.
  // Blocks the caller (not the io thread) until done.
  void leave(uint64_t grace_ms);
  // Called on the io thread for every member event. Add listeners before start().
  void add_listener(Listener l) { listeners_.push_back(std::move(l)); }

  // Thread-safe snapshots (they wait for the io thread).
  [[nodiscard]] std::vector<gossip::MemberInfo> members();
  [[nodiscard]] nlohmann::json members_json();
  [[nodiscard]] nlohmann::json stats_json();
  [[nodiscard]] gossip::Stats stats();

 private:
  void receive_next();
  void on_tick();
  void arm();  // (re)sets the ticker to the state machine's next deadline
  void drain();
  void deliver(const asio::ip::udp::endpoint& from, std::span<const uint8_t> bytes);
  void flush();
  template <typename F>
  auto on_io(F f) -> decltype(f());

  asio::io_context& io_;
  GossipOptions options_;
  asio::ip::udp::socket socket_;
  asio::steady_timer ticker_;
  bool armed_ = false;
  uint64_t armed_at_ms_ = 0;  // mono: when the ticker fires
  std::optional<gossip::Membership> membership_;
  gossip::Output out_;
  // The pending asynchronous receive owns buffer_; drain() reads into drain_buffer_, so a datagram
  // received but not yet handled is never overwritten by one read synchronously.
  std::array<uint8_t, 2048> buffer_{};
  std::array<uint8_t, 2048> drain_buffer_{};
  asio::ip::udp::endpoint from_;
  std::vector<Listener> listeners_;
  uint64_t send_errors_ = 0;
  bool closed_ = false;
};

}  // namespace meshwork
