// The anchor for simulations/bench/submit.sh: a bare cpp-httplib server configured like meshwork's
// API (TCP_NODELAY, keep-alive, the same thread-pool size) whose POST /v1/jobs answers 202 with a
// small JSON body and does nothing else. What meshwork achieves relative to this is the cost of
// validating, signing, storing durably and running a job.
// usage: meshwork-bench-httplib PORT [THREADS=64]
#include <httplib.h>

#include <cstdlib>
#include <iostream>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: meshwork-bench-httplib PORT [THREADS]\n";
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const size_t threads = argc > 2 ? static_cast<size_t>(std::atoi(argv[2])) : 64;
  httplib::Server server;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(100'000);
  server.Post("/v1/jobs", [](const httplib::Request& req, httplib::Response& res) {
    res.status = 202;
    res.set_content(R"({"id":"0","state":"queued","bytes":)" + std::to_string(req.body.size()) + "}",
                    "application/json");
  });
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  return server.listen("127.0.0.1", port) ? 0 : 1;
}
