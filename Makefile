# StatelessKit: the developer's entry points. `make demo` and `make test` do
# all the set-up on a fresh machine (Swift present, nothing else).
SHELL := /bin/bash
.DEFAULT_GOAL := demo

# Debian packages the build and the tests need; installed when missing.
DEBIAN_PACKAGES := libdpdk-dev dpdk dpdk-dev libhiredis-dev redis-server pkg-config iproute2 ethtool python3
# SwiftPM cannot parse Debian's libdpdk.pc (its Description runs over several
# lines); corrected copies go here and PKG_CONFIG_PATH points at them.
PKGCONFIG_FIX := .build/pkgconfig
export PKG_CONFIG_PATH := $(CURDIR)/$(PKGCONFIG_FIX)
SHARED ?= $(CURDIR)/../shared
EVAL ?= /tmp/statelessnf-evaluation
export STATELESSKIT_SHARED := $(SHARED)
SWIFT_BUILD_FLAGS ?=

.PHONY: evaluation demo test deps pkgconfig build release fuzz fuzz-short fuzz-build bench-parser bench-nat bench-dpdk bench-nat-redis bench-redis bench-lb bench-firewall fixtures clean

deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

pkgconfig: deps
	@mkdir -p $(PKGCONFIG_FIX)
	@src=$$(PKG_CONFIG_PATH= pkg-config --variable=pcfiledir libdpdk); \
	test -s "$$src/libdpdk.pc" || { echo "libdpdk.pc not found: is libdpdk-dev installed?"; exit 1; }; \
	sed -e '/^Note that CFLAGS/d' -e '/^This is required for/d' "$$src/libdpdk.pc" > $(PKGCONFIG_FIX)/libdpdk.pc.new; \
	sed -e '/^Use libdpdk.pc instead/d' "$$src/libdpdk-libs.pc" > $(PKGCONFIG_FIX)/libdpdk-libs.pc.new; \
	cmp -s $(PKGCONFIG_FIX)/libdpdk.pc.new $(PKGCONFIG_FIX)/libdpdk.pc || mv $(PKGCONFIG_FIX)/libdpdk.pc.new $(PKGCONFIG_FIX)/libdpdk.pc; \
	cmp -s $(PKGCONFIG_FIX)/libdpdk-libs.pc.new $(PKGCONFIG_FIX)/libdpdk-libs.pc || mv $(PKGCONFIG_FIX)/libdpdk-libs.pc.new $(PKGCONFIG_FIX)/libdpdk-libs.pc; \
	rm -f $(PKGCONFIG_FIX)/*.new

build: pkgconfig
	swift build $(SWIFT_BUILD_FLAGS)

release: pkgconfig
	swift build -c release $(SWIFT_BUILD_FLAGS)

# The main job: two NAT instances share the embedded store and carry
# thousands of flows; one fails halfway; beside the traditional design.
demo: release
	.build/release/statelessnf demo

# Every orchestration scenario for every NF, on the shared store and on a
# store per instance, with plots (Documentation/Evaluation.md). Root.
evaluation: release
	@dpkg-query -W -f='$${Status}' python3-matplotlib 2>/dev/null | grep -q "ok installed" || \
	  { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; $$SUDO apt-get install -y -qq --no-install-recommends python3-matplotlib >/dev/null; }
	PATH=/usr/bin:$$PATH Scripts/evaluate.sh .build/release/statelessnf $(EVAL)

# The whole suite: unit and trace tests (a redis-server and DPDK virtual
# devices are started by the tests themselves), the check that a
# StatelessKit-only consumer needs neither DPDK nor hiredis, and a short
# bounded fuzz run.
test: pkgconfig
	@test -d "$(SHARED)/traces" || echo "note: $(SHARED)/traces is absent: the tests that read captures will say they are skipped."
	Scripts/check-consumer.sh
	$(MAKE) --no-print-directory fuzz-short
	swift build --build-tests $(SWIFT_BUILD_FLAGS)
	swift test --skip-build --skip OrchestrationScenarioTests $(SWIFT_BUILD_FLAGS)
	@# The fleet scenarios last, on a quiet machine: they measure a fleet of
	@# busy-polling instances on two cores.
	swift test --skip-build --filter OrchestrationScenarioTests $(SWIFT_BUILD_FLAGS)

# The fuzz targets (the parser, and the capture reader), built with
# libFuzzer and AddressSanitizer; seeded from the captures.
FUZZ_SECONDS ?= 300
FUZZ_BUILD := .build-fuzz
FUZZ_FLAGS := -max_len=8192 -timeout=10 -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/artifacts/
fuzz-build: pkgconfig
	swift build --product ParserFuzzer --scratch-path $(FUZZ_BUILD) -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING
	swift build --product CaptureFuzzer --scratch-path $(FUZZ_BUILD) -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING
	@mkdir -p $(FUZZ_BUILD)/corpus $(FUZZ_BUILD)/capture-corpus $(FUZZ_BUILD)/artifacts
	@if [ -d "$(SHARED)/traces" ]; then \
	  python3 Scripts/seed-fuzz-corpus.py $(FUZZ_BUILD)/corpus $(SHARED)/traces/*/*.pcap; \
	  find $(SHARED)/traces -name '*.pcap' -size -64k -exec cp {} $(FUZZ_BUILD)/capture-corpus/ \; ; \
	fi

fuzz: fuzz-build
	SWIFT_BACKTRACE=enable=no $(FUZZ_BUILD)/debug/ParserFuzzer -max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS) $(FUZZ_BUILD)/corpus
	SWIFT_BACKTRACE=enable=no $(FUZZ_BUILD)/debug/CaptureFuzzer -max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS) $(FUZZ_BUILD)/capture-corpus

# The short bounded runs that `make test` includes; libFuzzer's output goes to
# logs, of which the last lines are shown.
fuzz-short: fuzz-build
	@for target in ParserFuzzer:corpus:25 CaptureFuzzer:capture-corpus:15; do \
	  name=$${target%%:*}; rest=$${target#*:}; corpus=$${rest%%:*}; seconds=$${rest#*:}; \
	  echo "fuzzing $$name for $$seconds s (log: $(FUZZ_BUILD)/$$name.log)"; \
	  SWIFT_BACKTRACE=enable=no $(FUZZ_BUILD)/debug/$$name -max_total_time=$$seconds $(FUZZ_FLAGS) \
	    $(FUZZ_BUILD)/$$corpus > $(FUZZ_BUILD)/$$name.log 2>&1 || { tail -40 $(FUZZ_BUILD)/$$name.log; exit 1; }; \
	  grep -E '^Done|new_units_added' $(FUZZ_BUILD)/$$name.log; \
	done

# The parser's cost: ns per packet timed, and instructions per packet
# counted by callgrind (Scripts/instructions-per-packet.sh).
BENCH_TRACES ?= $(wildcard $(SHARED)/traces/*/*.pcap)
bench-parser: release
	@.build/release/statelessnf bench parser $(BENCH_TRACES)
	@Scripts/instructions-per-packet.sh .build/release/statelessnf parse $(BENCH_TRACES)
	@Scripts/instructions-per-packet.sh .build/release/statelessnf parse+key $(BENCH_TRACES)

# The NAT on the embedded store: Mpps, ns and allocations per packet, then
# instructions per packet counted by callgrind.
# An NF (NF=nat, lb or firewall) on a throwaway redis-server, beside the
# store's own read limit (Documentation/Performance.md).
NF ?= nat
bench-redis: release
	@dir=$$(mktemp -d); port=16390; \
	redis-server --port $$port --bind 127.0.0.1 --save "" --appendonly no --dir $$dir --daemonize yes \
	  --pidfile $$dir/redis.pid --logfile $$dir/redis.log; sleep 0.5; \
	.build/release/statelessnf bench $(NF) --seconds 3 --store redis://127.0.0.1:$$port; status=$$?; \
	redis-cli -p $$port shutdown nosave >/dev/null 2>&1; rm -rf $$dir; exit $$status

bench-nat-redis:
	@$(MAKE) --no-print-directory bench-redis NF=nat

# The load balancer and the firewall on the embedded store, then their
# instructions per packet counted by callgrind.
bench-lb bench-firewall: bench-%: release
	@.build/release/statelessnf bench $* --seconds 3
	@.build/release/statelessnf bench $* --seconds 3 --flows 1000
	@Scripts/nf-instructions-per-packet.sh .build/release/statelessnf $* 100000

bench-nat: release
	@.build/release/statelessnf bench nat --seconds 5
	@.build/release/statelessnf bench nat --seconds 5 --flows 1000000
	@.build/release/statelessnf bench nat --seconds 5 --new-flow-ratio 0.1
	@.build/release/statelessnf bench nat --seconds 5 --workers 2
	@Scripts/nf-instructions-per-packet.sh .build/release/statelessnf nat 100000
	@.build/release/statelessnf bench nat --seconds 5 --flow-cache 65536
	@Scripts/nf-instructions-per-packet.sh .build/release/statelessnf nat 100000 --flow-cache 65536

# Each NF on DPDK's net_null and net_ring beside dpdk-testpmd in the same
# run: through the store, then (NAT and load balancer) from the flow cache.
bench-dpdk: release
	@for nf in nat lb firewall; do .build/release/statelessnf bench $$nf --dpdk --seconds 3 || exit 1; done
	@for nf in nat lb; do .build/release/statelessnf bench $$nf --dpdk --seconds 3 --flow-cache 65536 || exit 1; done
	@Scripts/nf-instructions-per-packet.sh .build/release/statelessnf nat 100000 --dpdk --flow-cache 65536

# Regenerates the decode fixtures with tshark (the tests do not need tshark).
fixtures:
	@command -v tshark >/dev/null || { echo "tshark is not installed: apt-get install tshark"; exit 1; }
	python3 Scripts/make-tshark-fixtures.py $(SHARED)

clean:
	rm -rf .build $(FUZZ_BUILD)
