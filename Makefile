# dream-api: `make run` serves on 127.0.0.1:8787 with the store in ./data;
# `make test` runs every test. Both work on a fresh machine with Go 1.26.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.Version=$(VERSION)

.PHONY: all build run test test-short vet fuzz bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/dream-api ./cmd/dream-api

run: build
	./bin/dream-api serve

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || (gofmt -l . && echo "gofmt: files above need formatting" && exit 1)
	$(GO) vet ./...

# The fuzz corpora under */testdata/fuzz run as ordinary tests here.
test: vet
	$(GO) test -race -count=1 -timeout 20m ./...

test-short:
	$(GO) test -count=1 -short ./...

# Longer fuzzing of the request bodies (not part of `make test`).
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzTrackBody -fuzztime=60s ./http/
	$(GO) test -run='^$$' -fuzz=FuzzCustomerBody -fuzztime=60s ./http/

bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=2s ./engine/ ./storage/ ./plugins/

clean:
	rm -rf bin
