// The load generator of simulations/bench/throughput.sh: keep-alive HTTP clients that post `echo`
// jobs to a set of meshwork nodes for a fixed time, one at a time (POST /v1/jobs) or in batches
// (POST /v1/jobs/batch), and count what the nodes accepted, item by item. Then, optionally, it
// polls GET /v1/node on every node until the owners report that many jobs succeeded.
//
// usage: meshwork-bench-load single|batch SECONDS CONNECTIONS BATCH PORT[,PORT...] [WAIT_S=0]
//        [JOBS=0] [REDUNDANCY=1] [POW_BITS=0]
//
//   CONNECTIONS threads, each with one keep-alive connection (TCP_NODELAY) to a node, nodes
//   taken round-robin; each thread sends its next request when the previous answer has arrived,
//   so at most CONNECTIONS requests (CONNECTIONS x BATCH jobs in batch mode) are in flight.
//   After SECONDS no thread starts a new request; the ones in flight are answered and counted, so
//   `accepted` is exact and the window closes at the last answer.
//   JOBS > 0: no thread starts a request once the nodes have stored JOBS jobs (202 or 200;
//   simulations/bench/soak.sh runs a fixed number through the mesh, and the jobs refused with 429
//   while the mesh is busy are sent again); SECONDS still bounds the run.
//   WAIT_S > 0: then wait up to WAIT_S seconds until the sum of stats.succeeded over the nodes
//   (minus its value before the load) reaches `stored` (below) and no node has a job left in
//   its backlog or running.
//   REDUNDANCY > 1: every job carries "redundancy": REDUNDANCY (that many replicas run it and a
//   majority of their results must agree; simulations/bench/redundancy.sh).
//   POW_BITS > 0: `pow` jobs of that difficulty instead of `echo` (work that costs CPU to run).
//
// Output: key=value lines on stdout (throughput.sh parses them); the first refusal, if any, on
// stderr. Every job carries a distinct (thread, sequence) pair in its payload, so no two jobs
// share an id even without the entry node's nonce: an answer 200 ("existing") can only be a job
// this run stored, e.g. through a retry inside the mesh. So `stored` = 202s + 200s is what
// accepted_per_s and the completion wait count; the 200s are also printed apart.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kConnectionsMax = 1'024;
constexpr size_t kBatchMax = 1'000;  // the API's limit on one batch
constexpr int kBackoffMs = 5;        // after a refused or failed request
constexpr int kBusyBackoffMs = 50;   // after a batch with items refused 429 (the mesh is full)
constexpr int kCompletionPollMs = 50;
constexpr time_t kReadTimeoutS = 120;
constexpr uint64_t kRedundancyMax = 7;  // dht/envelope.h kRedundancyMax: the node refuses more
constexpr uint64_t kPowBitsMax = 24;    // ~16 M hashes a job: seconds each, enough for a benchmark

struct Options {
  bool batch = false;
  double seconds = 10;
  size_t connections = 64;
  size_t batch_size = 64;
  std::vector<int> ports;
  double wait_s = 0;
  uint64_t jobs = 0;  // 0: no limit
  uint64_t redundancy = 1;
  uint64_t pow_bits = 0;  // 0: echo jobs
};

// What one thread saw. Requests are HTTP requests; items are jobs (one per request in single mode).
std::atomic<bool> g_refusal_shown{false};
std::atomic<uint64_t> g_jobs_stored{0};  // with Options::jobs

// The first answer that was not a full acceptance goes to stderr once, for diagnosis.
void show_first_refusal(const httplib::Result& res, double latency_ms) {
  if (g_refusal_shown.exchange(true)) return;
  if (!res) {
    std::cerr << "first refusal: transport error " << httplib::to_string(res.error());
  } else {
    std::cerr << "first refusal: HTTP " << res->status << " " << res->body.substr(0, 300);
  }
  std::cerr << " after " << latency_ms << " ms\n";
}

struct Tally {
  uint64_t requests = 0, items_accepted = 0, items_existing = 0, items_refused = 0;
  uint64_t requests_429 = 0, requests_503 = 0, requests_other = 0, transport_errors = 0;
  std::vector<double> latency_ms;
  Clock::time_point last_answer{};
};

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string job_json(const Options& o, size_t thread, uint64_t seq) {
  const std::string tail =
      o.redundancy > 1 ? R"(},"redundancy":)" + std::to_string(o.redundancy) + "}" : "}}";
  if (o.pow_bits > 0)
    return R"({"type":"pow","payload":{"data":"bench-)" + std::to_string(thread) + "-" +
           std::to_string(seq) + R"(","difficulty_bits":)" + std::to_string(o.pow_bits) + tail;
  return R"({"type":"echo","payload":{"bench":true,"t":)" + std::to_string(thread) + R"(,"seq":)" +
         std::to_string(seq) + R"(,"data":"0123456789abcdef0123456789abcdef")" + tail;
}

std::string batch_json(const Options& o, size_t thread, uint64_t& seq) {
  std::string body = R"({"jobs":[)";
  for (size_t i = 0; i < o.batch_size; ++i) {
    if (i) body += ',';
    body += job_json(o, thread, seq++);
  }
  return body + "]}";
}

// Counts the per-item statuses of a 200 batch answer; false when the body is not what the API
// promises (then the request counts under requests_other).
bool count_batch_items(const std::string& body, Tally& t) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("results") || !j["results"].is_array()) return false;
  bool busy = false;
  for (const auto& item : j["results"]) {
    const int status = item.value("status", 0);
    if (status == 202) {
      ++t.items_accepted;
    } else if (status == 200) {
      ++t.items_existing;
    } else {
      ++t.items_refused;
      busy = busy || status == 429;
      if (!g_refusal_shown.exchange(true))
        std::cerr << "first refused item: " << item.dump() << "\n";
    }
  }
  // A full backlog: sending the next batch at once would only be refused again, at the cost of
  // admitting (and signing) every job of it.
  if (busy) std::this_thread::sleep_for(std::chrono::milliseconds(kBusyBackoffMs));
  return true;
}

void record_answer(const Options& o, const httplib::Result& res, double latency_ms, Tally& t) {
  if (!res) {
    show_first_refusal(res, latency_ms);
    ++t.transport_errors;
    std::this_thread::sleep_for(std::chrono::milliseconds(kBackoffMs));
    return;
  }
  const int status = res->status;
  if (!o.batch && status == 202) {
    ++t.items_accepted;
  } else if (!o.batch && status == 200) {
    ++t.items_existing;
  } else if (o.batch && status == 200 && count_batch_items(res->body, t)) {
    // counted item by item
  } else {
    show_first_refusal(res, latency_ms);
    if (status == 429) {
      ++t.requests_429;
    } else if (status == 503) {
      ++t.requests_503;
    } else {
      ++t.requests_other;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(kBackoffMs));
  }
}

void load_thread(const Options& o, size_t index, Clock::time_point start, Clock::time_point stop,
                 Tally& t) {
  httplib::Client cli("127.0.0.1", o.ports[index % o.ports.size()]);
  cli.set_keep_alive(true);
  cli.set_tcp_nodelay(true);
  cli.set_connection_timeout(5, 0);
  cli.set_read_timeout(kReadTimeoutS, 0);
  const char* path = o.batch ? "/v1/jobs/batch" : "/v1/jobs";
  uint64_t seq = 0;
  std::this_thread::sleep_until(start);
  while (Clock::now() < stop) {
    if (o.jobs > 0 && g_jobs_stored.load() >= o.jobs) break;
    const std::string body = o.batch ? batch_json(o, index, seq) : job_json(o, index, seq++);
    const auto t0 = Clock::now();
    auto res = cli.Post(path, body, "application/json");
    t.last_answer = Clock::now();
    ++t.requests;
    t.latency_ms.push_back(seconds_between(t0, t.last_answer) * 1000.0);
    const uint64_t stored_before = t.items_accepted + t.items_existing;
    record_answer(o, res, t.latency_ms.back(), t);
    g_jobs_stored += t.items_accepted + t.items_existing - stored_before;
  }
}

// Over all nodes: stats.succeeded, and the jobs still to run (backlog + running); ok = false
// when a node does not answer.
struct MeshTotals {
  long long succeeded = 0, pending = 0;
  bool ok = true;
};

MeshTotals mesh_totals(std::vector<std::unique_ptr<httplib::Client>>& clients) {
  MeshTotals t;
  for (auto& c : clients) {
    auto res = c->Get("/v1/node");
    auto j = res && res->status == 200 ? nlohmann::json::parse(res->body, nullptr, false)
                                       : nlohmann::json();
    if (!j.is_object() || !j.contains("stats")) return MeshTotals{0, 0, false};
    t.succeeded += j["stats"].value("succeeded", 0LL);
    for (const char* k : {"backlog", "running"})
      if (j.contains(k) && j[k].is_number_integer()) t.pending += j[k].get<long long>();
  }
  return t;
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size()));
  return v[std::min(rank, v.size() - 1)];
}

bool parse_args(int argc, char** argv, Options& o) {
  if (argc < 6) return false;
  const std::string mode = argv[1];
  if (mode != "single" && mode != "batch") return false;
  o.batch = mode == "batch";
  o.seconds = std::atof(argv[2]);
  o.connections = static_cast<size_t>(std::atol(argv[3]));
  o.batch_size = o.batch ? static_cast<size_t>(std::atol(argv[4])) : 1;
  std::stringstream ports(argv[5]);
  for (std::string p; std::getline(ports, p, ',');) o.ports.push_back(std::atoi(p.c_str()));
  if (argc > 6) o.wait_s = std::atof(argv[6]);
  if (argc > 7) o.jobs = std::strtoull(argv[7], nullptr, 10);
  if (argc > 8) o.redundancy = std::strtoull(argv[8], nullptr, 10);
  if (argc > 9) o.pow_bits = std::strtoull(argv[9], nullptr, 10);
  const bool ports_ok =
      std::all_of(o.ports.begin(), o.ports.end(), [](int p) { return p > 0 && p < 65536; });
  return o.seconds > 0 && o.connections >= 1 && o.connections <= kConnectionsMax &&
         o.batch_size >= 1 && o.batch_size <= kBatchMax && !o.ports.empty() && ports_ok &&
         o.wait_s >= 0 && o.redundancy >= 1 && o.redundancy <= kRedundancyMax &&
         o.pow_bits <= kPowBitsMax;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse_args(argc, argv, o)) {
    std::cerr << "usage: meshwork-bench-load single|batch SECONDS CONNECTIONS BATCH "
                 "PORT[,PORT...] [WAIT_S=0] [JOBS=0] [REDUNDANCY=1] [POW_BITS=0]\n";
    return 2;
  }
  std::vector<std::unique_ptr<httplib::Client>> stat_clients;
  for (int p : o.ports) {
    stat_clients.push_back(std::make_unique<httplib::Client>("127.0.0.1", p));
    stat_clients.back()->set_keep_alive(true);
    stat_clients.back()->set_tcp_nodelay(true);
  }
  const MeshTotals before = o.wait_s > 0 ? mesh_totals(stat_clients) : MeshTotals{};
  if (!before.ok) {
    std::cerr << "meshwork-bench-load: GET /v1/node failed on a node\n";
    return 1;
  }

  std::vector<Tally> tallies(o.connections);
  std::vector<std::thread> threads;
  const auto start = Clock::now() + std::chrono::milliseconds(200);  // every thread started
  const auto stop =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  for (size_t i = 0; i < o.connections; ++i)
    threads.emplace_back(load_thread, std::cref(o), i, start, stop, std::ref(tallies[i]));
  for (auto& th : threads) th.join();

  Tally all;
  all.last_answer = start;
  for (auto& t : tallies) {
    all.requests += t.requests;
    all.items_accepted += t.items_accepted;
    all.items_existing += t.items_existing;
    all.items_refused += t.items_refused;
    all.requests_429 += t.requests_429;
    all.requests_503 += t.requests_503;
    all.requests_other += t.requests_other;
    all.transport_errors += t.transport_errors;
    all.latency_ms.insert(all.latency_ms.end(), t.latency_ms.begin(), t.latency_ms.end());
    all.last_answer = std::max(all.last_answer, t.last_answer);
  }
  const double window_s = seconds_between(start, all.last_answer);
  std::printf("mode=%s\nconnections=%zu\nbatch=%zu\nwindow_s=%.3f\nrequests=%llu\n",
              o.batch ? "batch" : "single", o.connections, o.batch_size, window_s,
              static_cast<unsigned long long>(all.requests));
  const uint64_t stored = all.items_accepted + all.items_existing;
  std::printf("stored=%llu\naccepted=%llu\nexisting=%llu\nitems_refused=%llu\n",
              static_cast<unsigned long long>(stored),
              static_cast<unsigned long long>(all.items_accepted),
              static_cast<unsigned long long>(all.items_existing),
              static_cast<unsigned long long>(all.items_refused));
  std::printf("requests_429=%llu\nrequests_503=%llu\nrequests_other=%llu\ntransport_errors=%llu\n",
              static_cast<unsigned long long>(all.requests_429),
              static_cast<unsigned long long>(all.requests_503),
              static_cast<unsigned long long>(all.requests_other),
              static_cast<unsigned long long>(all.transport_errors));
  std::printf("accepted_per_s=%.0f\np50_ms=%.2f\np99_ms=%.2f\n",
              window_s > 0 ? static_cast<double>(stored) / window_s : 0.0,
              percentile(all.latency_ms, 50), percentile(all.latency_ms, 99));
  std::fflush(stdout);
  if (o.wait_s <= 0) return 0;

  // Completion: the owners report at least `stored` successes and no node has a job left to
  // run. Both are needed: a job refused 503 may still have been stored on one replica and run,
  // and a duplicate execution counts twice, so the sum alone can pass `stored` early.
  const auto target = static_cast<long long>(stored);
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(o.wait_s));
  long long done = 0;
  bool reached = false, idle = false;
  auto reached_at = Clock::now(), done_at = reached_at;
  while (true) {
    const MeshTotals now_t = mesh_totals(stat_clients);
    done_at = Clock::now();
    if (now_t.ok) done = now_t.succeeded - before.succeeded;
    if (!reached && done >= target) {
      reached = true;
      reached_at = done_at;
    }
    idle = reached && now_t.ok && now_t.pending == 0;
    if (idle || done_at >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(kCompletionPollMs));
  }
  // Not idle by the deadline: the time the sum first reached `stored`, if it did.
  const double completed_s = seconds_between(start, idle || !reached ? done_at : reached_at);
  std::printf("completed=%lld\ncompleted_all=%s\nidle=%s\ncompleted_s=%.3f\ncompleted_per_s=%.0f\n",
              done, reached ? "yes" : "no", idle ? "yes" : "no", completed_s,
              static_cast<double>(std::min(done, target)) / completed_s);
  return 0;
}
