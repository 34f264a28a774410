# StatelessKit: the developer's entry points. `make demo` and `make test` do
# all the set-up on a fresh machine (Swift present, nothing else).
SHELL := /bin/bash
.DEFAULT_GOAL := demo

# Debian packages the build and the tests need; installed when missing.
DEBIAN_PACKAGES := libdpdk-dev dpdk dpdk-dev libhiredis-dev redis-server pkg-config
# SwiftPM cannot parse Debian's libdpdk.pc (its Description runs over several
# lines); corrected copies go here and PKG_CONFIG_PATH points at them.
PKGCONFIG_FIX := .build/pkgconfig
export PKG_CONFIG_PATH := $(CURDIR)/$(PKGCONFIG_FIX)
SHARED ?= $(CURDIR)/../shared
export STATELESSKIT_SHARED := $(SHARED)
SWIFT_BUILD_FLAGS ?=

.PHONY: demo test deps pkgconfig build release fuzz fuzz-short bench fixtures clean

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
	@src=$$(pkg-config --variable=pcfiledir libdpdk 2>/dev/null || echo /usr/lib/x86_64-linux-gnu/pkgconfig); \
	sed -e '/^Note that CFLAGS/d' -e '/^This is required for/d' $$src/libdpdk.pc > $(PKGCONFIG_FIX)/libdpdk.pc; \
	sed -e '/^Use libdpdk.pc instead/d' $$src/libdpdk-libs.pc > $(PKGCONFIG_FIX)/libdpdk-libs.pc

build: pkgconfig
	swift build $(SWIFT_BUILD_FLAGS)

release: pkgconfig
	swift build -c release $(SWIFT_BUILD_FLAGS)

demo: release
	.build/release/statelessnf dissect $(SHARED)/traces/PcapPlusPlus/example.pcap $(SHARED)/traces/tcpreplay/test.pcap $(SHARED)/traces/PcapPlusPlus/ipv4-malformed.pcap $(SHARED)/traces/PcapPlusPlus/tcp-malformed.pcap

test: pkgconfig
	@test -d "$(SHARED)/traces" || echo "note: $(SHARED)/traces is absent: the tests that read captures will say they are skipped."
	swift build --build-tests $(SWIFT_BUILD_FLAGS)
	swift test --skip-build $(SWIFT_BUILD_FLAGS)
	$(MAKE) --no-print-directory fuzz-short

clean:
	rm -rf .build .build-fuzz
