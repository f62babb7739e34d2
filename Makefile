# meshwork front door. `make demo` and `make test` work on a fresh Debian machine: they install
# whatever is missing with apt-get first (a no-op when everything is there).

PACKAGES := g++ libasio-dev libsodium-dev libleveldb-dev libsnappy-dev libcpp-httplib-dev \
            libspdlog-dev doctest-dev nlohmann-json3-dev libcli11-dev cmake ninja-build pkg-config \
            python3 curl procps iproute2
BENCH_PACKAGES := wrk serf nats-server libnats-dev gcc bc
JOBS ?= 2

.PHONY: all deps deps-bench build build-asan test test-asan-all test-unit demo bench chaos clean
SEED ?= 7

all: build

deps:
	@missing=$$(for p in $(PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

deps-bench: deps
	@missing=$$(for p in $(BENCH_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS)

build-asan: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)

# Every test on the release build, then again under ASan+UBSan except the two that only re-run
# code the sanitized suite already covers, at length: the 30 s chaos run (~150 s sanitized; the
# mesh test drives the same node paths under ASan) and the simulator seed batch (sim_replay runs
# the simulator under ASan). `make test-asan-all` runs the sanitized suite whole.
ASAN_SKIP := integration_chaos|sim_batch
test: build build-asan
	ctest --preset release -j $(JOBS)
	ctest --preset asan -j 1 -E '$(ASAN_SKIP)'
test-asan-all: build-asan
	ctest --preset asan -j 1

test-unit: build
	ctest --preset release -L unit -j $(JOBS)

demo: build
	simulations/demo.sh

# Benchmarks beside their anchors (see docs/benchmarks.md): about 12 minutes in all. submit.sh
# ~30 s, detect.sh ~6.5 min, throughput.sh ~2.2 min (3 nodes beside NATS JetStream R3), failover.sh
# ~2.2 min (20 kills of a running job's owner at 5 nodes).
bench: build deps-bench
	simulations/bench/submit.sh
	simulations/bench/detect.sh
	simulations/bench/throughput.sh
	simulations/bench/failover.sh

# A long chaos run over real nodes (docs/chaos.md): 7 nodes, 300 s of load with kills, pauses,
# restarts and network partitions, then the verdict; about 6 minutes. `make chaos SEED=3`.
# (make test already runs a 30 s chaos run as tests/integration/test_chaos.py.)
chaos: build
	simulations/chaos.sh --nodes 7 --duration 300 --seed $(SEED) --report run/chaos-report.json

clean:
	rm -rf build build-debug build-asan run
