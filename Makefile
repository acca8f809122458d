# skuflow — every developer entry point. `make help` lists them.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
DATA ?= ./data
PROTO_FILES := $(sort $(wildcard proto/skuflow/v1/*.proto))
OPENAPI := gateway/openapi
GOTEST_FLAGS ?=

.PHONY: help imports build test test-short takeover proto proto-check lint run bench tools clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

imports: ## the module's import graph: each package and the module packages it imports (tests excluded)
	@m="$$($(GO) list -m)/"; $(GO) list -f '{{.ImportPath}}{{range .Imports}} {{.}}{{end}}' ./... | \
		awk -v m="$$m" '$$1 !~ /\/proto\// { out = substr($$1, length(m) + 1) ":"; for (i = 2; i <= NF; i++) if (index($$i, m) == 1 && $$i !~ /\/proto\//) out = out " " substr($$i, length(m) + 1); print out }'

build: ## build bin/skuflow
	$(GO) build -o $(BIN)/skuflow ./cmd/skuflow

tools: ## build the pinned protoc plugins into bin/
	GOBIN=$(BIN) $(GO) install tool

# OpenAPI: protoc-gen-openapiv2 writes Swagger 2.0 into a temporary
# directory; internal/tools/openapimerge (a build tool) adds the hand-written routes
# ($(OPENAPI)/handwritten.swagger.json) and writes the served documents,
# skuflow.swagger.json and its OpenAPI 3 conversion skuflow.openapi.yaml.
proto: tools ## regenerate Go, gRPC, grpc-gateway and OpenAPI code from proto/
	PATH=$(BIN):$$PATH protoc -I proto -I proto/third_party \
		--go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative \
		--grpc-gateway_out=proto --grpc-gateway_opt=paths=source_relative \
		$(PROTO_FILES)
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	PATH=$(BIN):$$PATH protoc -I proto -I proto/third_party \
		--openapiv2_out=$$tmp --openapiv2_opt=allow_merge=true,merge_file_name=skuflow \
		$(PROTO_FILES) && \
	$(GO) run ./internal/tools/openapimerge -in $$tmp/skuflow.swagger.json -fragment $(OPENAPI)/handwritten.swagger.json \
		-out $(OPENAPI)/skuflow.swagger.json -v3 $(OPENAPI)/skuflow.openapi.yaml

proto-check: proto ## fail when committed generated code is stale
	@git diff --exit-code -- proto gateway/openapi || { echo "generated code is stale: run 'make proto' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- proto gateway/openapi)" || { git status --porcelain -- proto gateway/openapi; echo "untracked generated files: run 'make proto' and commit"; exit 1; }

lint: ## gofmt, go vet, layer boundaries
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) test -count=1 ./internal/archtest/

test: ## the default suite: lint, unit, property, integration tests with -race
	$(MAKE) lint
	$(GO) test -race -count=1 -timeout 15m $(GOTEST_FLAGS) ./...

takeover: ## the kill -9 takeover measurement, with and without --hot-standby (minutes; not in the default suite)
	SKUFLOW_TAKEOVER=1 $(GO) test -race -count=1 -v -timeout 20m -run TestTakeoverPauseWithAndWithoutHotStandby ./cmd/skuflow/

test-short: ## fast tests only (no embedded broker)
	$(GO) test -short -count=1 ./...

run: build ## start skuflow dev (embedded broker + processors + gateway) with sample data
	$(BIN)/skuflow dev --data $(DATA) --sample-data

bench: build ## throughput beside baselines measured in the same run (see BENCHMARKS.md)
	$(BIN)/skuflow bench --rounds 5
	$(BIN)/skuflow bench --scenarios feeds-sarama,feeds --messages 1000000
	$(BIN)/skuflow bench --scenarios orders,orders-flood --messages 300000 --keys 30000
	$(BIN)/skuflow bench --scenarios changelog-consume,serve-ready --keys 1000000 --messages 1000000 --rounds 3
	$(BIN)/skuflow bench --scenarios rest-hello,rest-get,grpc-hello,grpc-get,single-100,batch-100,watch-fanout,freshness --clients 50 --rounds 3

clean:
	rm -rf $(BIN) $(DATA)
