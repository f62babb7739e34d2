# meshwork front door. `make demo` and `make test` work on a fresh Debian machine: they install
# whatever is missing with apt-get first (a no-op when everything is there).

PACKAGES := g++ libasio-dev libsodium-dev libleveldb-dev libsnappy-dev libcpp-httplib-dev \
            libspdlog-dev doctest-dev nlohmann-json3-dev libcli11-dev cmake ninja-build pkg-config \
            python3 curl procps iproute2 libssl-dev openssl nodejs python3-nacl python3-jsonschema \
            prometheus chromium chromium-driver python3-selenium
BENCH_PACKAGES := wrk serf nats-server libnats-dev gcc bc
JOBS ?= 2

.PHONY: all deps deps-bench build build-asan build-asan-pass test test-asan-all test-unit demo bench \
        chaos clean
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

# Only what the default sanitized pass runs (the `sanitized_pass` target, tests/CMakeLists.txt).
build-asan-pass: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS) --target sanitized_pass

# Every test on the release build, then under ASan+UBSan the tests labelled `sanitized`: the unit
# tests, the simulator replay and the five-process mesh test (docs/testing.md says why these).
# About 13–15 minutes from a clean clone on an idle 2-core machine (13 min 8 s measured; up to 20
# beside another build): the two unity builds ~7 min, then ~4 min of release tests and ~4 min
# sanitized (docs/testing.md).
# `make test-asan-all` builds everything sanitized and runs the whole suite under ASan+UBSan.
test: build build-asan-pass
	ctest --preset release -j $(JOBS)
	ctest --preset asan -j $(JOBS) -L sanitized
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
