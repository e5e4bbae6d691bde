# certrollout — `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO          ?= go
BIN         := $(CURDIR)/bin
CLUSTER_DIR ?= $(CURDIR)/.cluster
export CLUSTER_DIR

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS := -X github.com/certrollout/certrollout/internal/version.gitVersion=$(VERSION) \
           -X github.com/certrollout/certrollout/internal/version.gitCommit=$(COMMIT) \
           -X github.com/certrollout/certrollout/internal/version.buildDate=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)

# Tools are installed from the Go module proxy into bin/, pinned here.
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
CONTROLLER_GEN_VERSION ?= v0.23.0
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)

# Integration packages each start a control plane; on 2 cores, two at a time is the useful limit.
TEST_FLAGS ?= -race -count=1 -timeout 45m -p 2

CLUSTER := $(GO) run ./hack/cluster

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/certrollout (and bin/kubectl-certrollout, the kubectl plugin name, with its completion shim).
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/certrollout ./cmd/certrollout
	ln -sf certrollout $(BIN)/kubectl-certrollout
	cp hack/release/kubectl_complete-certrollout $(BIN)/kubectl_complete-certrollout

# image and release run hack/release: no container engine, and reproducible (every timestamp, the
# binaries' build date included, is SOURCE_DATE_EPOCH or else the commit time).
.PHONY: image
image: ## Build the OCI image (linux/amd64, linux/arm64) into dist/image/ and dist/certrollout-<version>-image.oci.tar.
	$(GO) run ./hack/release --version "$(VERSION)" --ldflags "$(LDFLAGS)" image

.PHONY: release
release: ## Build a release into dist/<version>/: make release VERSION=v0.1.0 (archives, image, chart, krew, CRDs, checksums).
	$(GO) run ./hack/release --version "$(VERSION)" --ldflags "$(LDFLAGS)" release

.PHONY: components
components: ## Build the local cluster's components from Go modules (cached outside the checkout).
	$(CLUSTER) build >/dev/null

# Test tools come from Debian packages (headless Chromium for the HTML report, promtool and prometheus for
# the alerts); apt-get needs root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: tools-browser
tools-browser: ## Install headless Chromium (and a font) for the HTML report's browser tests, unless installed.
	@command -v chromium >/dev/null || ($(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-dejavu-core)

.PHONY: test
test: components tools-prometheus tools-browser ## Run unit and integration tests (each integration package starts its own cluster).
	@mkdir -p $(BIN)
	@$(GO) build -o $(BIN)/testreport ./hack/testreport
	@status=0; $(GO) test -json $(TEST_FLAGS) ./... 2>&1 | $(BIN)/testreport -failures $(BIN)/failures.txt | tee $(BIN)/test.log || status=$$?; \
	count() { grep -cE "^[[:space:]]*--- $$1:" $(BIN)/test.log || true; }; \
	echo; grep -E '^(ok|FAIL|---)[[:space:]]' $(BIN)/test.log | grep -v -- '--- PASS\|--- SKIP' || true; \
	echo "$$(count PASS) passed, $$(count FAIL) failed, $$(count SKIP) skipped"; \
	echo "Fuzzing each target for $(TEST_FUZZTIME) (make fuzz runs them longer):"; \
	bash hack/fuzz.sh $(TEST_FUZZTIME) 2>&1 | tee $(BIN)/fuzz.log | grep -E '^(==|FAIL|ok|---)' || status=1; \
	if [ -s $(BIN)/failures.txt ]; then echo; cat $(BIN)/failures.txt; fi; \
	exit $$status

# How long `make test` fuzzes each target, after the tests.
TEST_FUZZTIME ?= 10s
# How long `make fuzz` fuzzes each target.
FUZZTIME ?= 2m

.PHONY: fuzz
fuzz: ## Fuzz every target (schedules, Secret reduction, kubeconfigs, the rollout and cascade state machines) for FUZZTIME each (default 2m).
	bash hack/fuzz.sh $(FUZZTIME)

.PHONY: unit
unit: ## Run only the tests that need no cluster.
	$(GO) test -short -race -count=1 ./...

# `make bench BENCH_FLAGS="--deployments 200 --cert-secrets 400 --secrets 2000"` for a smaller run.
BENCH_FLAGS ?=

.PHONY: bench
bench: bench-restart bench-check bench-scrape ## Run the benchmarks: renewal→restart (bench-restart), check over 20,000 Secrets (bench-check), a /metrics scrape (bench-scrape).

.PHONY: bench-scrape
bench-scrape: ## Measure the certificate-expiry collector's scrape of 1,000 Secrets, parsing them all vs. parsing none.
	$(GO) test -short -run '^$$' -bench BenchmarkExpiryScrape -benchmem ./internal/controller/

.PHONY: bench-restart
bench-restart: build components ## Measure renewal→restart latency against a baseline, memory and API requests (see hack/bench).
	$(GO) run ./hack/bench --controller $(BIN)/certrollout $(BENCH_FLAGS)

# `make bench-check BENCH_CHECK_FLAGS="--check-helm 1500 --check-others 300"` for a smaller run.
BENCH_CHECK_FLAGS ?=

.PHONY: bench-check
bench-check: build components ## Measure `certrollout check -A -o json` over 20,000 Secrets (15,000 × 100 KB Helm): wall time, peak RSS.
	$(GO) run ./hack/bench --check --controller $(BIN)/certrollout $(BENCH_CHECK_FLAGS)

# `make chaos CHAOS_FLAGS="--only kill --kill-namespaces 5"` for a part of it.
CHAOS_FLAGS ?=

.PHONY: chaos
chaos: build components ## SIGKILL the controller, kill its leader, restart kube-apiserver, flap a Secret: prints the table, writes bench/results/chaos.json.
	$(GO) run ./hack/chaos --controller $(BIN)/certrollout $(CHAOS_FLAGS)

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/golangci-lint $@

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Regenerate the API's deep-copy functions and CRD manifests (config/crd/bases, copied into charts/certrollout/files/crds); copy the alert rules and the dashboard into the chart.
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	cp config/crd/bases/*.yaml charts/certrollout/files/crds/
	cp config/admission/admission_policy.yaml charts/certrollout/files/admission/
	cp config/node-agent/admission_policy.yaml charts/certrollout/files/admission/node_agent_policy.yaml
	cp config/rbac/tenant_roles.yaml charts/certrollout/files/rbac/
	cp deploy/prometheus/certrollout-alerts.yaml charts/certrollout/files/prometheus/
	cp deploy/grafana/certrollout-dashboard.json charts/certrollout/files/grafana/

# The Debian package prometheus has promtool, which checks the alert rules and runs their unit tests.

.PHONY: tools-prometheus
tools-prometheus: ## Install promtool and prometheus (the Debian package prometheus) unless they are on PATH.
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || ($(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus)

.PHONY: alerts-test
alerts-test: tools-prometheus ## Check the alert rules (deploy/prometheus) and run their unit tests (test/alerts) with promtool.
	promtool check rules deploy/prometheus/certrollout-alerts.yaml
	promtool test rules test/alerts/certrollout-alerts.test.yaml

.PHONY: dashboard
dashboard: ## Generate the Grafana dashboard deploy/grafana/certrollout-dashboard.json (hack/dashboard) and copy it into the chart.
	$(GO) run ./hack/dashboard -o deploy/grafana/certrollout-dashboard.json
	cp deploy/grafana/certrollout-dashboard.json charts/certrollout/files/grafana/

# Helm at the version go.mod pins (the chart's tests use the same version's Go packages).
HELM_VERSION ?= $(shell $(GO) list -m -f '{{.Version}}' helm.sh/helm/v4)

.PHONY: helm
helm: ## Build bin/helm from the Helm Go module at the version in go.mod.
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)

$(CONTROLLER_GEN):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/controller-gen $@

.PHONY: verify
verify: generate ## Fail if generated files, go mod tidy or gofmt would change the tree.
	@git diff --exit-code -- api config/crd || { echo "make generate changed the files above: commit them"; exit 1; }
	$(GO) mod tidy
	@for d in hack/cluster/components/*/; do (cd $$d && $(GO) mod tidy); done
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt would change:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@git diff --exit-code -- go.mod go.sum 'hack/cluster/components/*/go.mod' 'hack/cluster/components/*/go.sum' \
		|| { echo "go mod tidy changed the files above: run it and commit"; exit 1; }

.PHONY: cluster-up
cluster-up: ## Start the local cluster; kubeconfig in .cluster/kubeconfig (override with CLUSTER_DIR=).
	$(CLUSTER) up --dir "$(CLUSTER_DIR)"

.PHONY: cluster-down
cluster-down: ## Stop every process of the local cluster.
	$(CLUSTER) down --dir "$(CLUSTER_DIR)"

.PHONY: demo
demo: ## Start the cluster and a demo app whose certificate renews every ~30 s.
	$(CLUSTER) demo --dir "$(CLUSTER_DIR)"

.PHONY: clean
clean: cluster-down ## Stop the cluster and remove build output (the component cache stays).
	rm -rf $(BIN) $(CLUSTER_DIR)
