# Tandem: every set-up step lives here, so a fresh machine needs only `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.PHONY: demo test deps lint fmt build build-release certs sd-setup clean fuzz install fleet

# Cargo profile for the binaries that `demo`, `certs` and `sd-setup` run.
PROFILE ?= release
BIN_DIR := target/$(if $(filter release,$(PROFILE)),release,debug)
CARGO_PROFILE_FLAG := $(if $(filter release,$(PROFILE)),--release,)
# Which dev directory content `sd-setup` loads after the certificates (settings/dev/directory/$(SD)).
SD ?= default
# Settings of the operator that signs directory records (hd-1 is the dev `sd-admin`).
SIGNER ?= settings/dev/roles/hd-1

## demo: the seed scenario on the embedded defaults (builds, makes certificates, runs, stops).
demo: build-release certs
	BIN_DIR=$(BIN_DIR) scripts/demo.sh

## test: installs what the tests need, then fmt check, clippy -D warnings and the whole suite.
## Incremental compilation is off here (CARGO_INCREMENTAL=0 unless set): a one-shot build gains
## nothing from it and its cache would take gigabytes of a CI machine's disk.
test: export CARGO_INCREMENTAL ?= 0
test: deps
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	scripts/check-crate-graph.sh
	scripts/test.sh

## fleet: the fleet test bed alone (run as root: it makes network namespaces with `ip netns`): three
## proxy nodes of one operator, Redis primary + replica + three Sentinels, two sd, hd-1 and hd-2,
## each in a namespace of its own on a private bridge; prints the node-failure numbers. `make test`
## runs it too.
fleet: deps
	if command -v cargo-nextest >/dev/null 2>&1; then \
	  cargo nextest run -p tandem --test integration --no-capture -E 'test(/^fleet/)'; \
	else \
	  cargo test -p tandem --test integration fleet -- --nocapture --test-threads 1; \
	fi

## deps: system packages the tests use (Redis for the Redis datastore suite).
deps:
	scripts/install-deps.sh

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

## build: the binaries of the default members (proto, engine, control, bench; not the fuzz targets).
build:
	cargo build --bins

build-release:
	cargo build --bins $(CARGO_PROFILE_FLAG)

## certs: the dev PKI under settings/dev/certs and the pinned fingerprints (idempotent).
certs: build-release
	$(BIN_DIR)/hyper certs --certs-dir settings/dev/certs --directory-dir settings/dev/directory

## sd-setup: signs and loads the dev directory into a running `sd` (SD_SETTINGS=settings/dev/roles/sd-1 sd run).
sd-setup: build-release
	SIGNER=$(SIGNER) BIN_DIR=$(BIN_DIR) scripts/sd-setup.sh settings/dev/directory --reset
	SIGNER=$(SIGNER) BIN_DIR=$(BIN_DIR) scripts/sd-setup.sh settings/dev/directory/$(SD)

## install: binaries to $(PREFIX)/bin, systemd units, the `tandem` system user (run as root).
PREFIX ?= /usr/local
DESTDIR ?=
install: build-release
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/systemd/system $(DESTDIR)/etc/tandem
	for bin in sd hyper proxy; do \
	  if [ -x $(BIN_DIR)/$$bin ]; then install -m 0755 $(BIN_DIR)/$$bin $(DESTDIR)$(PREFIX)/bin/$$bin; fi; \
	done
	install -m 0644 deploy/systemd/*.service $(DESTDIR)/etc/systemd/system/
	if [ -z "$(DESTDIR)" ] && ! id tandem >/dev/null 2>&1; then \
	  useradd --system --home-dir /var/lib/tandem --shell /usr/sbin/nologin tandem; \
	fi
	@echo "installed; put settings under /etc/tandem and run: systemctl daemon-reload"

## fuzz: runs each cargo-fuzz target (libFuzzer, stable toolchain: --sanitizer none) for FUZZ_SECONDS from the
## committed corpus in fuzz/corpus/<target>; new inputs go to target-fuzz/corpus/<target>, crashes to
## fuzz/artifacts/<target>. Installs cargo-fuzz when missing. `make test` replays the committed corpus.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?= token_preamble client_hello pair_table jsonrpc_request directory_record proxy_header handover_frame hyper_message
fuzz:
	command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p target-fuzz/corpus/$$t; \
	  CARGO_TARGET_DIR=target-fuzz cargo fuzz run --sanitizer none $$t target-fuzz/corpus/$$t fuzz/corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=70000; \
	done

clean:
	cargo clean
	rm -rf settings/dev/data settings/test/data

.PHONY: bench bench-quick bench-broker bench-ratelimit
## bench: tandem-bench compare with the defaults against direct TCP, Tandem and the baselines
## (installed with apt when missing); writes bench/results/<date>-<commit>.{json,svg,txt};
## bench-broker runs first.
bench: bench-broker
	bench/scripts/install-baselines.sh
	cargo build --release -p tandem-bench
	mkdir -p bench/results
	out=bench/results/$$(date -u +%Y-%m-%d)-$$(git rev-parse --short HEAD); \
	target/release/tandem-bench compare --json $$out.json --svg $$out.svg | tee $$out.txt

## bench-broker: tandem-bench broker (JSON-RPC calls through hd-1's gateway to hd-2 with the real
## sd, hyper and proxy binaries: direct, proxied warm and cold, async respond; tonic and axum
## floors); writes bench/results/<date>-<commit>-broker.{json,svg,txt}.
bench-broker:
	cargo build --release -p tandem-bench -p tandem --bins
	mkdir -p bench/results
	out=bench/results/$$(date -u +%Y-%m-%d)-$$(git rev-parse --short HEAD)-broker; \
	target/release/tandem-bench broker --json $$out.json --svg $$out.svg | tee $$out.txt

## bench-ratelimit: a bandwidth-limited pair at 1 Mbit/s .. 5 Gbit/s (achieved / configured,
## target 5 %) and the unlimited flood with limits off and never binding, same run, both drivers;
## writes bench/results/<date>-<commit>-ratelimit.{json,txt}.
bench-ratelimit:
	cargo build --release -p tandem-bench
	mkdir -p bench/results
	out=bench/results/$$(date -u +%Y-%m-%d)-$$(git rev-parse --short HEAD)-ratelimit; \
	target/release/tandem-bench ratelimit --json $$out.json | tee $$out.txt

## bench-quick: the same comparison with small sizes (under 60 s on 2 cores), table only.
bench-quick:
	cargo build --release -p tandem-bench
	target/release/tandem-bench compare --quick
