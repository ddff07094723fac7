# cairn: the commands people type. CMake does the building; this file only strings steps together.
#   make          build everything into build/
#   make run      install what is missing, build, start one member in the foreground (etcd defaults)
#   make test     install what is missing, build with -Werror, run unit + black-box tests, then
#                 the same again under AddressSanitizer+UBSan, then every fuzz target briefly
#   make fuzz     every libFuzzer target (fuzz/*/) for FUZZ_SECONDS each (fuzz/run.sh)
#   make bench    side-by-side benchmarks against etcd (when installed)
#   make bench-p99  the tail check: p50/p99/p99.9/max of PUT and GET at 16/64/256 connections,
#                 cairn and etcd, cn_loadgen and wrk, one busy core, median of 3 runs (~15 min)
#   make bench-cluster   3-member clusters: PUT through leader/follower, failover, vs etcd
#   make bench-v3 the v3 API (gRPC): Put and Range at 1-256 streams, RSS, restart, vs etcd
#   make chaos    the linearizability check under a nemesis for 10 minutes (CHAOS_SECONDS)
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
PYTHON ?= /usr/bin/python3
CMAKE_FLAGS ?=

.PHONY: all build run test test-unit test-integration test-asan deps bench bench-p99 bench-cluster fuzz sim-long chaos clean format

all: build

deps:
	@bash scripts/deps.sh

build:
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j $(JOBS)

run: deps build
	./build/cairn

test: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCN_WERROR=ON >/dev/null
	cmake --build build -j $(JOBS)
	cd build && ctest --output-on-failure -j $(JOBS)
	CAIRN_BIN=$(CURDIR)/build/cairn CAIRNCTL_BIN=$(CURDIR)/build/cairnctl \
		$(PYTHON) -m pytest -q -p no:cacheprovider -n $(PYTEST_JOBS) tests/integration
	$(MAKE) --no-print-directory test-asan
	fuzz/run.sh $(FUZZ_TEST_SECONDS) build-fuzz

test-asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCN_SANITIZE=ON -DCN_WERROR=ON >/dev/null
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		CN_SIM_SEEDS=300 ctest --output-on-failure -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		CAIRN_BIN=$(CURDIR)/build-asan/cairn CAIRNCTL_BIN=$(CURDIR)/build-asan/cairnctl CAIRN_SANITIZED=1 \
		$(PYTHON) -m pytest -q -p no:cacheprovider -n $(PYTEST_JOBS) $(ASAN_SUITES)

# Black-box tests run PYTEST_JOBS at a time (python3-pytest-xdist): they mostly wait
# on timers and sockets, so two at a time fit 2 cores. The sanitizer pass runs the suites that
# reach the most code; the two long scenarios (the linearizability check under a nemesis, 10,000
# watchers) run only in the plain pass and under `make chaos`.
PYTEST_JOBS ?= 2
ASAN_SKIP   := tests/integration/test_linearizability.py tests/integration/test_watch_scale.py
ASAN_SUITES ?= $(filter-out $(ASAN_SKIP),$(sort $(wildcard tests/integration/test_*.py)))

bench: deps build
	$(PYTHON) bench/bench.py --cairn build/cairn --loadgen build/bench/cn_loadgen

# Writes build/bench-p99.json and build/bench-p99.md (the Markdown for docs/benchmarks.md).
bench-p99: deps build
	$(PYTHON) bench/bench.py --cairn build/cairn --loadgen build/bench/cn_loadgen \
		--runs 3 --phases load --conns 16,64,256 --ops put,get --loadgens cn,wrk --busy 1 \
		--json build/bench-p99.json --markdown build/bench-p99.md

bench-cluster: deps build
	$(PYTHON) bench/cluster.py --cairn build/cairn --loadgen build/bench/cn_loadgen

# The v3 (gRPC) bench; writes build/bench-v3.json and build/bench-v3.md. etcd's own benchmark is
# the second load generator once scripts/etcd_benchmark.sh has built build/bench/etcd-benchmark.
.PHONY: bench-v3
bench-v3: deps build
	$(PYTHON) bench/bench_v3.py --cairn build/cairn --v3load build/bench/cn_v3load \
		--json build/bench-v3.json --markdown build/bench-v3.md

CHAOS_SECONDS ?= 600
chaos: deps build
	CAIRN_BIN=$(CURDIR)/build/cairn CAIRN_CHAOS_SECONDS=$(CHAOS_SECONDS) CAIRN_CHAOS_MAX_OPS_PER_KEY=1000000 \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/integration/test_linearizability.py

sim-long: deps build
	./build/tests/raft_sim --seeds 100000

# Seconds per fuzz target. make test's smoke run shares FUZZ_TEST_TOTAL among the targets
# (15 s each for four), at least 5 s each.
FUZZ_SECONDS ?= 600
FUZZ_TEST_TOTAL ?= 60
FUZZ_TEST_SECONDS ?= $(shell n=$$(ls fuzz/*/CMakeLists.txt | wc -l); s=$$(( $(FUZZ_TEST_TOTAL) / (n ? n : 1) )); echo $$(( s < 5 ? 5 : s )))
fuzz: deps
	fuzz/run.sh $(FUZZ_SECONDS) build-fuzz

clean:
	rm -rf build build-asan build-fuzz

format:
	clang-format -i $$(git ls-files '*.c' '*.h')
