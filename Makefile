# flowbox Makefile. `make help` lists the targets.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO      ?= go
TAGS    := netgo osusergo sqlite_omit_load_extension
FUZZTIME ?= 30s
BIN     := bin/flowbox

.PHONY: help build demo run test test-race test-short test-integration fuzz bench lint fmt clean version

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## build the static binary into bin/flowbox
	CGO_ENABLED=1 $(GO) build -trimpath -tags '$(TAGS)' \
		-ldflags '-s -w -linkmode external -extldflags -static -X main.version=$(VERSION)' \
		-o $(BIN) ./cmd/flowbox

bin/flowbox-dev: FORCE
	CGO_ENABLED=1 $(GO) build -tags '$(TAGS)' -ldflags '-X main.version=$(VERSION)' -o $@ ./cmd/flowbox

demo: bin/flowbox-dev ## run flowbox with a simulated MikroTik fleet (data in ./demo-data)
	./bin/flowbox-dev demo --data-dir demo-data

run: bin/flowbox-dev ## run flowbox serve with configs/dev.yaml
	./bin/flowbox-dev serve --config configs/dev.yaml

test: ## run every test (what the README and CI run)
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...

test-race: test ## same as test (which already runs -race)

test-short: ## quick tests
	CGO_ENABLED=1 $(GO) test -short ./...

test-integration: ## tests with optional tools required (no skips)
	FLOWBOX_FUNCTIONAL_TESTS=1 CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...

fuzz: ## fuzz the decoder for FUZZTIME (default 30s)
	$(GO) test -run '^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./collector/netflow

bench: ## run the benchmarks, output in bench.out
	$(GO) test -run '^$$' -bench . -benchmem ./... | tee bench.out

lint: ## go vet
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || (gofmt -l .; echo 'gofmt needed'; exit 1)

fmt: ## gofmt the tree
	gofmt -w .

clean: ## remove build outputs
	rm -rf bin bench.out

version: ## print the version
	@echo $(VERSION)

FORCE:
