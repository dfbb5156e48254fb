# SLM-Copilot: certify an appliance and test this project. `make help` lists the targets.
# Targets are thin: the logic lives in Go (acceptance/, helpers/, fixtures/) and scripts.

SHELL := /bin/bash
.DEFAULT_GOAL := help

ENDPOINT      ?=
HTTP_ENDPOINT ?=
CA_CERT       ?=
MODEL         ?= devstral-small-2
# No ENDPOINT: the reference appliance's engine, llama-server (default) or localai (LocalAI v4.9.0's answers).
REFERENCE_ENGINE ?=
# Deadline of each request; a cold 24B model on CPU needs minutes for its first answer.
REQUEST_TIMEOUT ?= 5m
# The password travels in the environment, never on a command line others can read.
export SLM_COPILOT_PASSWORD ?= $(PASSWORD)
export SLM_COPILOT_CACHE    ?= /var/cache/slm-copilot

BIN := bin

# Deploy mode (see README): ONE_FLAGS='-one.image=URL -one.network=NET ...'; oned and the
# credentials come from -one.endpoint/-one.auth or $ONE_XMLRPC/$ONE_AUTH/~/.one/one_auth.
ONE_FLAGS ?=
ACTIONLINT := $(SLM_COPILOT_CACHE)/tools/actionlint-current/actionlint

# Build settings (see `go test ./build -args -h`): BUILD_FLAGS='-context-sha256=... -model-sha256=... -publish-url=...'
BUILD_FLAGS ?=
BUILD_DIR   ?= $(SLM_COPILOT_CACHE)/build
BUILD_TEST  := go test ./build -run 'TestBuild$$' -timeout 4h -v -count=1

CERTIFY_FLAGS := -model=$(MODEL) \
	$(if $(ENDPOINT),-endpoint=$(ENDPOINT)) \
	$(if $(HTTP_ENDPOINT),-http-endpoint=$(HTTP_ENDPOINT)) \
	$(if $(CA_CERT),-ca-cert=$(CA_CERT)) \
	$(if $(REFERENCE_ENGINE),-reference-engine=$(REFERENCE_ENGINE))

.PHONY: help deps deps-certify serve certify certify-one one-clean oned-sim test lint build checksum test-smoke-build clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## install everything the targets need: packages, llama-server, Node SDK, Packer, actionlint (idempotent, cached in $SLM_COPILOT_CACHE)
	@bash fixtures/deps.sh all

deps-certify: ## install only what certification needs (nginx, openssl, htpasswd, llama-server)
	@bash fixtures/deps.sh certify

serve: deps-certify ## run the embedded reference appliance until Ctrl-C, printing its endpoint and password
	@go build -o $(BIN)/serve ./fixtures/serve
	@exec $(BIN)/serve

# go test's -timeout, sized from REQUEST_TIMEOUT and the suite's model calls (acceptance/timeout).
# The suite is compiled and run as a binary (in its package directory, as go test does) so
# its exit code reaches the caller: 2 when the run ends before the checks (preflight, flags).
SUITE := $(CURDIR)/$(BIN)/acceptance.test
# Where certify and certify-one write the report (results.json, junit.xml, report.md, report.html).
REPORT ?= certification/$(shell date -u +%Y%m%dT%H%M%SZ)
# SLO gates (e.g. SLO=cpu) and an earlier results.json to compare with (BASELINE=path).
SLO      ?=
BASELINE ?=
# BENCH=1: after the checks, the load profile (-bench); BENCH_FLAGS for its bounds (-bench-concurrency=1,2 ...).
BENCH       ?=
BENCH_FLAGS ?=
REPORT_FLAGS = $(if $(BENCH),-bench $(BENCH_FLAGS)) -report=$(abspath $(REPORT)) $(if $(SLO),-slo=$(SLO)) $(if $(BASELINE),-baseline=$(abspath $(BASELINE)))

certify: deps-certify ## certify ENDPOINT with PASSWORD (no ENDPOINT: the embedded reference appliance)
	@go test -c -o $(SUITE) ./acceptance
	timeout="$$(go run ./acceptance/timeout -request-timeout $(REQUEST_TIMEOUT) $(if $(BENCH),-bench))" && cd acceptance && \
	  $(SUITE) -test.v -test.timeout "$$timeout" -request-timeout $(REQUEST_TIMEOUT) $(REPORT_FLAGS) $(CERTIFY_FLAGS)

certify-one: deps-certify ## deploy the image to OpenNebula (ONE_FLAGS), certify the VM, prove a reconfigure, tear everything down
	@go test -c -o $(SUITE) ./acceptance
	timeout="$$(go run ./acceptance/timeout -deploy -reconfigure -request-timeout $(REQUEST_TIMEOUT) $(if $(BENCH),-bench))" && cd acceptance && \
	  $(SUITE) -test.v -test.timeout "$$timeout" -request-timeout $(REQUEST_TIMEOUT) $(REPORT_FLAGS) -one.reconfigure $(ONE_FLAGS)

one-clean: ## remove your objects earlier deploy runs left in OpenNebula (named slm-copilot-acc-*, older than 6h; ONE_FLAGS=-one.clean-age=0 for all)
	go test ./acceptance -count=1 -run '^$$' -one.clean $(ONE_FLAGS)

oned-sim: ## run the oned SIMULATOR on 127.0.0.1:2633 until Ctrl-C (try deploy mode without OpenNebula)
	go run ./fixtures/oned -listen 127.0.0.1:2633

test: deps lint ## run the project's tests: every check, and proof that each one can fail
	SLM_COPILOT_REQUIRE_CHROMIUM=1 go test -count=1 -timeout 45m ./...

# Every tracked file that starts with a bash shebang, whatever its name.
SHELL_SCRIPTS = $$(git ls-files | xargs grep -lE '^\#!/usr/bin/env bash|^\#!/bin/bash' 2>/dev/null)

lint: deps ## gofmt, go vet, shellcheck on every shell script, yamllint (marketplace rules), actionlint
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	  if [[ -n "$$unformatted" ]]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	go vet ./...
	shellcheck -x $(SHELL_SCRIPTS)
	yamllint --strict -c .yamllint $$(git ls-files '*.yaml' '*.yml' .yamllint)
	$(ACTIONLINT) $$(git ls-files '.github/workflows/*.yml')

build: deps ## build the marketplace image on a build host (BUILD_FLAGS, BUILD_DIR)
	$(BUILD_TEST) -args -build -work-dir=$(BUILD_DIR) $(BUILD_FLAGS)

checksum: ## redo the finish stage on the last build: compress, checksums, manifest, marketplace YAML
	SKIP_preflight=1 SKIP_inputs=1 SKIP_packer=1 $(BUILD_TEST) -args -build -work-dir=$(BUILD_DIR) $(BUILD_FLAGS)

test-smoke-build: deps ## the Packer QEMU pipeline end to end under TCG, on a small Debian image made here
	go test ./build -run 'TestSmokeBuild$$' -timeout 60m -v -count=1 -args -smoke

clean: ## remove build outputs (not the cached inputs) and leftovers of killed reference appliances
	rm -rf $(BIN) $(BUILD_DIR)/output $(BUILD_DIR)/dist $(BUILD_DIR)/seed.iso
	go run ./fixtures/serve -sweep
