# dream-api: `make run` serves on 127.0.0.1:8787 with the store in ./data;
# `make test` runs every test. Both work on a fresh machine with Go 1.26.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.Version=$(VERSION)

.PHONY: stripe-mock chromium postgres all build run test test-short vet fuzz bench bench-scale bench-deps soak clean plugins plugins-bench sdk-js-test

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/dream-api ./cmd/dream-api

run: build
	./bin/dream-api serve

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || (gofmt -l . && echo "gofmt: files above need formatting" && exit 1)
	$(GO) vet ./...

# The fuzz corpora under */testdata/fuzz run as ordinary tests here.
test: vet stripe-mock chromium postgres
	$(GO) test -race -count=1 -timeout 20m ./...
	cd sdk/go && $(GO) vet ./... && $(GO) test -race -count=1 ./...
	$(MAKE) sdk-js-test

# The JS SDK (sdk/js) as a user gets it: npm ci, tsc build, npm pack, the
# tarball installed into a temp project, its tests type-checked there and
# run with node --test against the real program (Node >= 18 and npm).
sdk-js-test: stripe-mock
	GO=$(GO) sdk/js/scripts/test.sh

# Stripe's official mock server, which the billing tests start on a free
# port (they look in PATH and in $(go env GOPATH)/bin).
STRIPE_MOCK_VERSION := v0.203.0
stripe-mock:
	@command -v stripe-mock >/dev/null || test -x "$$($(GO) env GOPATH)/bin/stripe-mock" || \
		$(GO) install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION)

# Debian's Chromium, which the dashboard's browser test drives (chromedp);
# installed with apt when missing (needs root, as on CI).
chromium:
	@command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# PostgreSQL's initdb and postgres, which the storage/postgres tests run on
# a temp dir and a free port (they skip without it unless CI or
# DREAM_REQUIRE_POSTGRES=1 is set).
postgres:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql)

test-short:
	$(GO) test -count=1 -short ./...

# Longer fuzzing of the request bodies (not part of `make test`).
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzTrackBody -fuzztime=60s ./http/
	$(GO) test -run='^$$' -fuzz=FuzzCustomerBody -fuzztime=60s ./http/
	$(GO) test -run='^$$' -fuzz=FuzzDecodeBatchEvents -fuzztime=60s ./http/

# Go benchmarks in process (Meter.Track at 1/32/128 goroutines with and
# without a WASM policy, key authentication, track encoding, bytes per idle
# customer), then the HTTP run of cmd/dream-bench: the real binary against a
# bare net/http ceiling, Redis and PostgreSQL (docs/performance.md).
# BENCH_FLAGS passes flags to dream-bench, e.g. BENCH_FLAGS=-duration=30s.
BENCH_FLAGS ?=
bench:
	$(GO) build -o bin/dream-bench ./cmd/dream-bench
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=2s ./engine/ ./storage/ ./plugins/ ./http/ 2>&1 | bin/dream-bench gobench
	bin/dream-bench run $(BENCH_FLAGS)
	bin/dream-bench scale $(SCALE_FLAGS)

# A large store measured from outside (dream-bench scale -h): by default in
# `make bench` 100 000 customers; `make bench-scale` builds 1 000 000 (about
# 20 minutes on a 2-core machine).
SCALE_FLAGS ?= -customers 100000 -sample 5000
bench-scale:
	$(GO) build -o bin/dream-bench ./cmd/dream-bench
	bin/dream-bench scale -customers 1000000 -sample 20000 -duration 10s

# Installs the baselines' servers of `make bench` (Debian packages).
bench-deps:
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server postgresql

# 10 minutes of moderate load on the real binary; fails when goroutines or
# resident memory grow beyond the tolerance (cmd/dream-bench soak -h).
SOAK_FLAGS ?=
soak:
	$(GO) run ./cmd/dream-bench soak $(SOAK_FLAGS)

# Rebuilds the example policies in testdata/plugins (wat2wasm from wabt, the
# Go toolchain, npm for AssemblyScript). The built .wasm files are committed:
# tests and CI need none of these tools.
plugins:
	testdata/plugins/build.sh

# One decision: WASM builtin.wat against the Go built-in limits.
plugins-bench:
	$(GO) test -run '^$$' -bench 'Decide|Instantiate' -benchmem ./plugins/ | tee /dev/stderr | \
		awk '/^BenchmarkDecide-/ {w = $$3} /^BenchmarkDecideBuiltinGo-/ {g = $$3} \
		END {if (g > 0) printf "one decision: WASM builtin.wat %s ns, Go BuiltinLimits %s ns: %.0fx\n", w, g, w / g}'

clean:
	rm -rf bin
