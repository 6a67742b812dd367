# GRID — `make dev` runs a local GRID; `make test` runs every test. Both install what they need.
SHELL := /bin/bash
NPM_FLAGS := --no-audit --no-fund --loglevel=error
PROTOS := $(shell find proto -name '*.proto')
TS_SOURCES := $(shell find src cmd -name '*.ts' -not -path 'src/gen/*')
# command:package; chromium runs the dashboard's browser tests (never a browser download).
APT_PACKAGES := nats-server:nats-server etcd:etcd-server protoc:protobuf-compiler chromium:chromium

.PHONY: dev test build ui proto deps npm-deps sys-deps typecheck-tests clean unit integration

dev: build
	node dist/cmd/controller.js dev

test: build typecheck-tests
	@rm -f .test-results.json
	npx vitest run --reporter=default --reporter=json --outputFile.json=.test-results.json || true
	@node test/tools/summary.mjs .test-results.json

unit: build
	npx vitest run --project unit

integration: build
	npx vitest run --project integration

deps: npm-deps sys-deps

# npm packages, exactly as locked.
npm-deps: node_modules/.package-lock.json
node_modules/.package-lock.json: package.json package-lock.json
	npm ci $(NPM_FLAGS)
	@touch $@

# nats-server, etcd, protoc and chromium from Debian packages when missing.
sys-deps:
	@missing=""; for pair in $(APT_PACKAGES); do bin=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$bin >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# ts-proto output; never edit src/gen by hand.
proto: src/gen/.stamp
src/gen/.stamp: $(PROTOS) node_modules/.package-lock.json | sys-deps
	rm -rf src/gen && mkdir -p src/gen
	protoc --plugin=protoc-gen-ts_proto=node_modules/.bin/protoc-gen-ts_proto \
	  --ts_proto_out=src/gen \
	  --ts_proto_opt=outputServices=grpc-js,esModuleInterop=true,importSuffix=.js,forceLong=number,env=node,useOptionals=none,oneof=unions \
	  -I proto $(PROTOS)
	@touch $@

build: deps proto ui
	npx tsc -p tsconfig.json
	@chmod +x dist/cmd/*.js

# The dashboard (src/ui): type-checked with the DOM's types, bundled with preact and htm into
# dist/ui, which the controller serves at /ui/.
ui: npm-deps
	npx tsc -p src/ui/tsconfig.json
	npx esbuild src/ui/main.ts --bundle --minify --format=esm --target=es2022 --tsconfig=src/ui/tsconfig.json \
	  --outfile=dist/ui/app.js --log-level=warning
	cp src/ui/index.html dist/ui/index.html
	cp src/ui/style.css dist/ui/app.css

typecheck-tests: build
	npx tsc -p test/tsconfig.json --noEmit

clean:
	rm -rf dist src/gen

# Fault injection (issue 13): each scenario brings up its own nats-server, etcd, controller and
# executors, injects one fault under load, and checks what ran and what was recorded; one table
# at the end. `make test` runs the same scenarios at a small load (test/e2e/chaos.test.ts).
.PHONY: chaos
chaos: build
	@GRID_CHAOS=full npx vitest run --project integration --reporter=dot test/e2e/chaos.test.ts

# Benchmarks (issue 7): own nats-server, etcd and controller; table on stdout, JSON in .bench/.
# QUICK=1 scales everything down (≤ 2 minutes); the full run takes up to 15 minutes.
.PHONY: bench
# test/bench/tsconfig.json compiles src, cmd and the bench into dist (no separate build needed).
bench: deps proto
	npx tsc -p test/bench/tsconfig.json
	@chmod +x dist/cmd/*.js
	node dist/test/bench/run.js $(if $(QUICK),--quick,)
