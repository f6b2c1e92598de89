# Top-level entry points (README "Quick start"). On a fresh Debian 12 machine,
# as root, each target installs the Debian packages it needs first.
PRESET   ?= default
BUILD    := build
JOBS     ?= $(shell nproc)
SHELL    := /bin/bash

.PHONY: all deps configure build test test-unit demo up bench fuzz clean help

all: build

help:
	@echo "make demo   - build, start both services on SQLite + scripted model, run a refinement end to end"
	@echo "make test   - build and run every test (starts a throwaway PostgreSQL and nats-server)"
	@echo "make up     - build, run both services with a seeded user; prints the web console URL (Ctrl-C stops)"
	@echo "make build  - install Debian packages if missing, configure and build (the web console too, with npm)"
	@echo "make bench  - build and run the benchmarks under bench/"
	@echo "make fuzz   - build the libFuzzer harnesses (fuzz/) and fuzz each for FUZZ_SECONDS (default 60)"

deps:
	@scripts/install-deps.sh

configure: deps
	@if [ ! -f $(BUILD)/build.ninja ]; then cmake --preset $(PRESET); fi

build: configure
	cmake --build --preset $(PRESET) -j $(JOBS)

test: build
	scripts/with-test-services.sh ctest --preset $(PRESET) -j $(JOBS)

# The demo needs only the two binaries, not the test suites.
demo: configure
	cmake --build --preset $(PRESET) -j $(JOBS) --target spec-engine ide-orchestrator
	scripts/demo.sh

# The two binaries and, when npm is available, the web console.
up: configure
	cmake --build --preset $(PRESET) -j $(JOBS) --target spec-engine ide-orchestrator $(if $(shell command -v npm),web_console)
	scripts/up.sh

bench: build
	cmake --build --preset $(PRESET) -j $(JOBS) --target benchmarks
	scripts/bench.sh

# libFuzzer harnesses (docs/fuzzing.md): FUZZ_SECONDS per harness, one at a time;
# FUZZ_TARGETS="fuzz_json fuzz_jwt" limits the run to some of them.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz: configure
	cmake --build --preset $(PRESET) -j $(JOBS) --target fuzz_harnesses
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_BUILD_DIR=$(CURDIR)/$(BUILD)/fuzz scripts/fuzz.sh run $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD)
