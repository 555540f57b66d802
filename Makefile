# claudecap Makefile. Every tool is pinned here and installed into ./bin by the
# targets that need it, so a clean clone needs only Go, make and (for Redis-backed
# tests) root or a redis-server on PATH.

# Image URL to use all building/pushing image targets.
IMG ?= ghcr.io/claudecap/claudecap:dev

## Tool versions (the one place they are pinned).
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
HELM_VERSION ?= v3.22.0
# kube-apiserver and kubectl come from k8s.io/kubernetes at this version (hack/envtest-bins/kube/go.mod);
# etcd from the version in hack/envtest-bins/etcd/go.mod.
ENVTEST_K8S_VERSION ?= 1.37.2
# KWOK (fake Nodes and Pod lifecycles) for internal/localcluster; hack/envtest-bins/kwok/go.mod pins the same.
KWOK_VERSION ?= v0.8.0

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint
HELM ?= $(LOCALBIN)/helm
export HELM
ENVTEST_ASSETS ?= $(LOCALBIN)/k8s/$(ENVTEST_K8S_VERSION)-linux-amd64
# A preset KUBEBUILDER_ASSETS wins over the binaries built here.
KUBEBUILDER_ASSETS ?= $(ENVTEST_ASSETS)
export KUBEBUILDER_ASSETS
# kubectl: the one built next to the envtest binaries when present, else the PATH's.
KUBECTL ?= $(shell if [ -x "$(ENVTEST_ASSETS)/kubectl" ]; then echo "$(ENVTEST_ASSETS)/kubectl"; else command -v kubectl || echo kubectl; fi)

GO_TEST_FLAGS ?= -count=1

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRD, RBAC and webhook manifests into config/.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd:allowDangerousTypes=true webhook paths="./api/...;./controllers/..." output:crd:artifacts:config=config/crd/bases
	@mkdir -p charts/claudecap/crds && cp config/crd/bases/*.yaml charts/claudecap/crds/

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run go fmt against code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet against code (the e2e tests too).
	go vet -tags e2e ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

.PHONY: lint-fix
lint-fix: golangci-lint ## Run golangci-lint and apply its fixes.
	$(GOLANGCI_LINT) run --fix ./...

.PHONY: test
test: manifests generate fmt vet envtest cluster-bins redis helm ## Run all tests: unit, envtest (real kube-apiserver + etcd), a local cluster with pods (KWOK), Redis-backed, Helm chart.
	go test $(GO_TEST_FLAGS) ./... -coverprofile cover.out

.PHONY: e2e
e2e: envtest cluster-bins redis helm ## End to end on a local cluster with pods: helm install, the operator under the chart's own RBAC, scaling phases, every job counted, an RBAC audit.
	go test -tags e2e -count=1 -timeout 15m -v ./test/e2e/

.PHONY: bench
bench: envtest redis ## Run the benchmarks; each prints ratios against a baseline measured in the same run.
	go test -run '^$$' -bench . ./pkg/...
	go test -run '^$$' -bench . -benchtime 1x -timeout 15m ./hack/bench/controller/

# SCENARIOS picks scenarios of bench-scenarios (comma-separated, e.g. SCENARIOS=a,g); empty runs all.
SCENARIOS ?=

.PHONY: bench-scenarios
bench-scenarios: envtest redis ## Run the closed-loop scenario lab (about 15 min; SCENARIOS=a,g picks some); report in bin/scenarios/.
	CLAUDECAP_SCENARIOS=1 go test -count=1 -v -run '^TestScenarios$$' -timeout 40m ./hack/bench/closedloop/ -args -scenario '$(SCENARIOS)'

# LIMITS picks rows of bench-limits: comma-separated regexps matched against row names
# (scenario/limiter/mode[/headroom], e.g. LIMITS='long-streams/,steady-requests/claudecap/actual/100'); empty runs all.
# LIMITS_JOBS is how many rows run at once (each has its own Redis, mock and proxies).
LIMITS ?=
LIMITS_JOBS ?= 3

.PHONY: bench-limits
bench-limits: redis ## Run the never-exceed suite (about 15 min; LIMITS=regexp,... picks rows); report in bin/limits/.
	CLAUDECAP_LIMITS=1 go test -count=1 -v -run '^TestLimits$$' -parallel $(LIMITS_JOBS) -timeout 60m ./hack/bench/limits/ -args -rows '$(LIMITS)'

.PHONY: bench-priority
bench-priority: redis ## Run the priority benchmark (about 90 s): interactive 429s and latency beside a batch flood, with and without a reserve; report in bin/priority/.
	CLAUDECAP_PRIORITY=1 go test -count=1 -v -run '^TestPriority$$' -timeout 5m ./hack/bench/priority/

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME (default 20s) each.
	@for pkg in $$(go list ./pkg/...); do \
	  for f in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; go test -run '^$$' -fuzz "^$$f\$$" -fuzztime $${FUZZTIME:-20s} $$pkg; \
	  done; \
	done

.PHONY: verify
verify: manifests generate fmt ## Regenerate code and manifests, fail if the tree changed.
	go mod tidy
	@if [ -n "$$(git status --porcelain -- . ':!bin' ':!cover.out')" ]; then \
	  echo "verify: generated files are out of date; run 'make manifests generate fmt' and 'go mod tidy' and commit:"; \
	  git status --porcelain -- . ':!bin' ':!cover.out'; git --no-pager diff --stat; exit 1; \
	fi

.PHONY: dev
dev: build envtest cluster-bins redis ## Run everything locally: control plane from the envtest binaries, CRDs, operator, samples.
	go run ./hack/devcluster

.PHONY: dev-smoke
dev-smoke: envtest cluster-bins redis ## Like dev, but exit once the samples are applied and their status printed (CI).
	go run ./hack/devcluster -smoke

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the manager and the claudecap CLI into bin/.
	go build -o $(LOCALBIN)/manager ./cmd/manager
	go build -o $(LOCALBIN)/claudecap ./cmd/claudecap

.PHONY: run
run: manifests generate fmt vet ## Run the controller from your host against the current kubeconfig.
	go run ./cmd/manager

.PHONY: docker-build
docker-build: ## Build the operator image IMG (needs a Docker engine).
	docker build -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the operator image IMG.
	docker push $(IMG)

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests ## Install the CRDs into the cluster of the current kubeconfig.
	$(KUBECTL) apply -k config/crd

.PHONY: uninstall
uninstall: manifests ## Remove the CRDs from the cluster. Call with ignore-not-found=true to ignore missing resources.
	$(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -k config/crd

.PHONY: deploy
deploy: manifests ## Deploy the controller (image IMG) to the cluster.
	$(KUBECTL) kustomize config/default | sed 's|controller:latest|$(IMG)|g' | $(KUBECTL) apply -f -

.PHONY: undeploy
undeploy: ## Remove the controller from the cluster. Call with ignore-not-found=true to ignore missing resources.
	$(KUBECTL) kustomize config/default | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

.PHONY: build-installer
build-installer: manifests generate ## Write dist/install.yaml with the CRDs and the deployment.
	mkdir -p dist
	$(KUBECTL) kustomize config/default | sed 's|controller:latest|$(IMG)|g' > dist/install.yaml

##@ Dependencies

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into bin/.
$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Install golangci-lint into bin/.
$(GOLANGCI_LINT):
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

.PHONY: helm
helm: $(HELM) ## Install helm into bin/ (built from the Go module proxy).
$(HELM):
	GOBIN=$(LOCALBIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

.PHONY: helm-lint
helm-lint: manifests helm envtest ## Lint the Helm chart and test that it renders and installs on a local control plane.
	$(HELM) lint --strict charts/claudecap
	$(HELM) lint --strict charts/claudecap --values charts/claudecap/ci/all-features-values.yaml
	go test $(GO_TEST_FLAGS) ./test/helm/...

.PHONY: envtest
envtest: ## Build kube-apiserver, etcd and kubectl for envtest into bin/k8s/ (once; cached).
	ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/setup-envtest.sh "$(ENVTEST_ASSETS)"

.PHONY: cluster-bins
cluster-bins: envtest ## Also build kube-controller-manager, kube-scheduler and KWOK's kwok into bin/k8s/ (once; cached) for internal/localcluster.
	ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) KWOK_VERSION=$(KWOK_VERSION) hack/setup-envtest.sh "$(ENVTEST_ASSETS)" cluster

.PHONY: redis
redis: ## Make sure redis-server is installed (Debian's package when root).
	hack/setup-redis.sh
