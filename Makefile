# sse-broker: `make run` serves on :5000 with a local Redis; `make test` runs the full suite.
# Both install what is missing first (Debian packages via apt-get, Flask-SSE via pip into a venv).

SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin

PORT ?= 5000
REDIS_PORT ?= 6379
REDIS_URL ?= redis://127.0.0.1:$(REDIS_PORT)/0
APT_PACKAGES := redis-server redis-tools libhiredis-dev pkg-config python3-venv
TEST_APT_PACKAGES := nginx-light chromium chromium-driver openssl nghttp2-client
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENV := .venv-interop
RUN_DIR := .run

.PHONY: all deps build release run run-tls test test-deps test-hummingbird example fuzz soak screenshots bench redis cluster cluster-down clean

all: build

## deps: install the Debian packages the broker and its tests need, if any is missing.
deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v redis-cli >/dev/null || missing="$$missing redis-tools"; \
	pkg-config --exists hiredis 2>/dev/null || missing="$$missing libhiredis-dev pkg-config"; \
	python3 -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

build: deps
	swift build

release: deps
	swift build -c release

## redis: start a local redis-server on REDIS_PORT unless one already answers there.
redis: deps
	@if redis-cli -p $(REDIS_PORT) ping 2>/dev/null | grep -q PONG; then \
		echo "redis already answering on port $(REDIS_PORT)"; \
	else \
		mkdir -p $(RUN_DIR); \
		redis-server --port $(REDIS_PORT) --bind 127.0.0.1 --save '' --appendonly no \
			--daemonize yes --pidfile $(CURDIR)/$(RUN_DIR)/redis.pid --logfile $(CURDIR)/$(RUN_DIR)/redis.log; \
		for i in $$(seq 50); do redis-cli -p $(REDIS_PORT) ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done; \
		echo "started redis-server on port $(REDIS_PORT) (pid $$(cat $(RUN_DIR)/redis.pid))"; \
	fi

## run: build and serve on PORT (5000) with the demo page, starting a local Redis when none answers.
## TLS=1 (or `make run-tls`): HTTPS and HTTP/2 on https://localhost:PORT/ with a certificate that
## scripts/dev-cert.sh makes once in .run/tls (signed by a local CA it tells you how to trust).
TLS ?=
RUN_TLS_ARGS = $(if $(filter 1 yes true,$(TLS)),--tls-cert $(RUN_DIR)/tls/localhost.pem --tls-key $(RUN_DIR)/tls/localhost-key.pem)
run: build redis
	@$(if $(RUN_TLS_ARGS),PORT=$(PORT) scripts/dev-cert.sh && echo "serving https://localhost:$(PORT)/",true)
	.build/debug/sse-broker --host 127.0.0.1 --port $(PORT) --redis-url $(REDIS_URL) --demo $(RUN_TLS_ARGS)

run-tls:
	$(MAKE) run TLS=1

## cluster: the docker-compose topology without Docker: redis on 6379, three nodes, nginx on 8080
## (HTTP/1.1) and 8443 (HTTPS + HTTP/2, LB_TLS_PORT; CA in .run/cluster/tls/ca.crt).
cluster: build
	@command -v nginx >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nginx-light >/dev/null; }
	scripts/cluster.sh up

## cluster-down: stop everything `make cluster` started.
cluster-down:
	scripts/cluster.sh down

## test-deps: everything the tests need: packages (nginx and Chromium for the browser test), and
## the real Flask-SSE, selenium and pytest in a venv.
test-deps: deps
	@missing=""; \
	command -v nginx >/dev/null || missing="$$missing nginx-light"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v nghttp >/dev/null || missing="$$missing nghttp2-client"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(TEST_APT_PACKAGES) >/dev/null; \
	fi
	@if ! $(VENV)/bin/python -c 'import flask_sse, selenium, pytest, yaml' 2>/dev/null; then \
		python3 -m venv $(VENV) && $(VENV)/bin/pip install -q -r Tests/Interop/requirements.txt; \
	fi

## TEST_WIDTH: tests run at once. Each integration test starts its own redis-server and nodes; on
## 2 cores an unbounded width starts them all at once and they starve each other.
TEST_WIDTH ?= 6

## test: the full suite. Each test starts its own throwaway redis-server (or cluster) and stops it after:
## the Swift tests, then the real-browser demo tests (through nginx; three tabs over HTTP/1.1 and
## HTTP/2) and the compose-file check.
test: test-deps
	@# The standalone broker must not even resolve Hummingbird (it is behind the package trait).
	@if swift package show-dependencies 2>/dev/null | grep -qi hummingbird; then \
		echo "error: the package without traits resolves Hummingbird"; exit 1; fi
	swift build --traits Hummingbird --build-tests
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider Tests/Browser
	SSE_TEST_PYTHON=$(CURDIR)/$(VENV)/bin/python swift test --skip-build --traits Hummingbird --experimental-maximum-parallelization-width $(TEST_WIDTH)
	python3 Tests/Soak/soak.py --seconds $(SOAK_TEST_SECONDS)
	FUZZ_SCRATCH=.build FUZZ_VECTORS="$(FUZZ_VECTORS)" Fuzz/run.sh $(FUZZ_TEST_SECONDS)

## test-hummingbird: the Hummingbird host's tests, with the package trait `Hummingbird` (which builds
## Hummingbird 2). Switching traits in one .build recompiles every module of this package once.
test-hummingbird: deps
	swift build --traits Hummingbird --build-tests
	swift test --skip-build --traits Hummingbird --filter 'SSEStreamCoreTests|SSEHummingbirdTests|HummingbirdMountTests'

## example: the Hummingbird example app (its own routes plus the mounted broker) on :8080,
## against REDIS_URL, starting a local Redis when none answers.
example: deps redis
	REDIS_URL=$(REDIS_URL) swift run --traits Hummingbird hummingbird-example

## fuzz: libFuzzer with AddressSanitizer on each target in Fuzz/ for FUZZ_SECONDS (in .build-fuzz),
## seeded with the golden vectors, Fuzz/Corpus and every past crash (Fuzz/Regressions).
FUZZ_SECONDS ?= 60
FUZZ_TEST_SECONDS ?= 4
FUZZ_VECTORS ?= $(wildcard /work/shared/flask-sse-vectors.jsonl)
fuzz: deps
	FUZZ_VECTORS="$(FUZZ_VECTORS)" Fuzz/run.sh $(FUZZ_SECONDS)

## screenshots: refresh docs/screenshots/demo.png from the browser test.
screenshots: test-deps
	swift build
	SSE_SCREENSHOT=$(CURDIR)/docs/screenshots/demo.png $(VENV)/bin/python -m pytest -q -p no:cacheprovider Tests/Browser/test_demo_browser.py

## bench-deps: the load tool's TLS and HTTP/2 libraries (OpenSSL, nghttp2) and openssl for S1-TLS's certificates.
.PHONY: bench-deps
bench-deps: deps
	@missing=""; \
	pkg-config --exists openssl 2>/dev/null || missing="$$missing libssl-dev"; \
	pkg-config --exists libnghttp2 2>/dev/null || missing="$$missing libnghttp2-dev"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

## bench: release build, the load tool, then scenarios P1, S1-S4 and S5 against sse-broker, Nchan and Flask-SSE;
## then S1-TLS (S1 over plaintext, TLS and HTTP/2); prints a table and writes BENCHMARKS.md (BENCH_QUICK=1 for a
## short run; BENCH_ONLY=p1, tls, s5 or s1tls for one part).
bench: bench-deps
	swift build -c release --product sse-broker
	swift build -c release --product sse-publish-bench
	mkdir -p .build/bench
	cc -O2 -Wall -o .build/bench/sse-load Benchmarks/loadgen/sse-load.c -lhiredis -lssl -lcrypto -lnghttp2
	cc -O2 -Wall -o .build/bench/sse-trivial Benchmarks/loadgen/sse-trivial.c -lpthread
	python3 Benchmarks/bench.py

## soak: the fault soak (Tests/Soak/soak.py): 3 nodes on a Redis with AOF, 30 reconnecting clients,
## ~100 publishes/s, node and Redis faults in turn for SOAK_SECONDS; fails on any loss, duplicate,
## reordering or history-gap. `make test` runs a short one (SOAK_TEST_SECONDS).
SOAK_SECONDS ?= 300
SOAK_TEST_SECONDS ?= 60
soak: deps
	swift build --product sse-broker
	python3 Tests/Soak/soak.py --seconds $(SOAK_SECONDS)

clean:
	rm -rf .build $(VENV) $(RUN_DIR)
