# flowbox Makefile. `make help` lists the targets.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO      ?= go
TAGS    := netgo osusergo sqlite_omit_load_extension
FUZZTIME ?= 30s
BIN     := bin/flowbox

.PHONY: help build demo run test test-race test-short test-integration fuzz bench bench-ingest bench-ingest-1cpu lint fmt clean version chdb
.PHONY: build-arm64 deb deb-arm64 image image-arm64 deb-test image-test systemd-test arm64-test packages

# Packaging (packaging/README.md): the host's architecture and arm64.
PKG_ARCH    ?= $(shell $(GO) env GOARCH)
ifeq ($(origin DEB_VERSION),undefined)
DEB_VERSION := $(shell packaging/version.sh)
endif
ARM64_CC    ?= aarch64-linux-gnu-gcc
DEB         := dist/flowbox_$(DEB_VERSION)-1_$(PKG_ARCH).deb
IMAGE       := dist/flowbox-image_$(DEB_VERSION)_$(PKG_ARCH).tar
LDFLAGS     := -s -w -linkmode external -extldflags -static -X main.version=$(VERSION)

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## build the static binary into bin/flowbox
	CGO_ENABLED=1 $(GO) build -trimpath -tags '$(TAGS)' \
		-ldflags '$(LDFLAGS)' \
		-o $(BIN) ./cmd/flowbox

build-arm64: ## build the static arm64 binary into bin/flowbox-arm64 (needs gcc-aarch64-linux-gnu)
	CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=$(ARM64_CC) $(GO) build -trimpath -tags '$(TAGS)' \
		-ldflags '$(LDFLAGS)' \
		-o bin/flowbox-arm64 ./cmd/flowbox

deb: build ## build dist/flowbox_VERSION-1_ARCH.deb with nfpm
	DEB_VERSION='$(DEB_VERSION)' packaging/build-deb.sh $(PKG_ARCH) $(BIN)

deb-arm64: build-arm64 ## build the arm64 .deb
	DEB_VERSION='$(DEB_VERSION)' packaging/build-deb.sh arm64 bin/flowbox-arm64

image: build ## build the container image with buildah into dist/flowbox-image_VERSION_ARCH.tar
	DEB_VERSION='$(DEB_VERSION)' packaging/build-image.sh $(PKG_ARCH) $(BIN)

image-arm64: build-arm64 ## build the arm64 container image
	DEB_VERSION='$(DEB_VERSION)' packaging/build-image.sh arm64 bin/flowbox-arm64

packages: deb deb-arm64 image image-arm64 ## every package: .deb and image, amd64 and arm64

deb-test: deb ## as root: lintian, install, run, upgrade, purge the .deb on this machine
	packaging/test-deb.sh $(DEB) $(BIN)

image-test: image ## as root: run the image with podman, send flows, restart on its volume
	packaging/test-image.sh $(IMAGE) $(BIN)

systemd-test: deb ## as root: boot systemd in a container (debootstrap, podman) and run the .deb's service
	packaging/test-systemd.sh $(DEB) $(BIN)

arm64-test: deb-arm64 image-arm64 ## the arm64 binary runs (qemu-user), lintian on its .deb, image architecture
	DEB_VERSION='$(DEB_VERSION)' packaging/test-arm64.sh bin/flowbox-arm64

bin/flowbox-dev: FORCE
	CGO_ENABLED=1 $(GO) build -tags '$(TAGS)' -ldflags '-X main.version=$(VERSION)' -o $@ ./cmd/flowbox

demo: bin/flowbox-dev ## run flowbox with a simulated MikroTik fleet (data in ./demo-data)
	./bin/flowbox-dev demo --data-dir demo-data

run: bin/flowbox-dev ## run flowbox serve with configs/dev.yaml
	./bin/flowbox-dev serve --config configs/dev.yaml

test: ## run every test (what the README and CI run), then the console's API tests on the ClickHouse store, and those and the ClickHouse store's on a cluster (Distributed tables)
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...
	FLOWBOX_TEST_BACKEND=clickhouse CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./web
	FLOWBOX_TEST_BACKEND=clickhouse FLOWBOX_CLICKHOUSE_CLUSTER=flowbox_test CGO_ENABLED=1 $(GO) test -race -count=1 -p 1 -timeout 20m ./web ./store/clickhouse

test-race: test ## same as test (which already runs -race)

test-short: ## quick tests
	CGO_ENABLED=1 $(GO) test -short ./...

test-integration: ## tests with optional tools required (no skips)
	FLOWBOX_FUNCTIONAL_TESTS=1 CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...

# chDB (ClickHouse as a library) for the ClickHouse store's tests
# (store/clickhouse/chtest): libchdb.so of the npm package chdb.
CHDB_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/flowbox/chdb
chdb: ## install chDB (npm chdb 3.4.0, ClickHouse 26.7, ~550 MB) where the ClickHouse tests find it (needs npm)
	mkdir -p $(CHDB_DIR)
	cd $(CHDB_DIR) && npm install --no-audit --no-fund --loglevel=error chdb@3.4.0
	test -f $(CHDB_DIR)/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so

fuzz: ## fuzz the decoder for FUZZTIME (default 30s)
	$(GO) test -run '^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./collector/netflow

bench: ## run the benchmarks, output in bench.out
	$(GO) test -run '^$$' -bench . -benchmem ./... | tee bench.out

bench-ingest: ## end-to-end ingest benchmark: simulate -> serve at 200,000 flows/s for 60 s, loss and memory
	FLOWBOX_BENCH_INGEST_DURATION=$${FLOWBOX_BENCH_INGEST_DURATION:-60s} CGO_ENABLED=1 $(GO) test -run '^$$' \
		-bench BenchmarkIngestEndToEnd -benchtime 1x -timeout 30m ./cmd/flowbox

bench-ingest-1cpu: ## the same with serve pinned to CPU 1 and the simulator to CPU 0 (FLOWBOX_BENCH_INGEST_RATE sets the load)
	FLOWBOX_BENCH_SERVE_CPUS=1 FLOWBOX_BENCH_SIM_CPUS=0 FLOWBOX_BENCH_INGEST_DURATION=$${FLOWBOX_BENCH_INGEST_DURATION:-60s} \
		CGO_ENABLED=1 $(GO) test -run '^$$' -bench BenchmarkIngestEndToEnd -benchtime 1x -timeout 30m ./cmd/flowbox

lint: ## go vet
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || (gofmt -l .; echo 'gofmt needed'; exit 1)

fmt: ## gofmt the tree
	gofmt -w .

clean: ## remove build outputs
	rm -rf bin bench.out dist

version: ## print the version
	@echo $(VERSION)

FORCE:
