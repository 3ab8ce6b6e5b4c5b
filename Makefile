# Parley developer targets. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help venv web-vendor doc-schemas infra redis-cluster browser compose coturn nginx images run rabbit-cluster stop test test-repeat lint unit screenshots docs bench bench-upload profile chaos soak capacity clean

help:
	@echo "make run    set up .venv, RabbitMQ, Redis; start the embedded MongoDB-wire server and every service (GATEWAYS=2 CHATS=3 CALLS=2 PUSHES=2 to scale: gateways on consecutive ports from 8000)"
	@echo "           crashed processes are restarted; closing the terminal or Ctrl-C stops everything; one stack per checkout (.run/stack.lock)"
	@echo "make rabbit-cluster  'make run' on a three-node RabbitMQ cluster of its own (loopback ports 5681-5683, quorum queues on all three;"
	@echo "           it prints each node's kill -9 command; Ctrl-C stops the stack, then the cluster; docs/reliability.md \"RabbitMQ cluster\")"
	@echo "make stop   stop the stack 'make run' started (from another terminal, or one left running)"
	@echo "make test   run the whole suite against real RabbitMQ, Redis and a MongoDB-wire server (PYTEST_ARGS='...' to pass options)"
	@echo "make test-repeat N=3  the whole suite N times, each from a fresh clone of HEAD (venv install included): each run's counts and time, the tests that failed"
	@echo "make lint   ruff (pyflakes, bugbear, simplify rules) over the repo and mypy --strict over shared/, services/ and the client library; make test runs it first"
	@echo "make unit   run only tests/unit"
	@echo "make screenshots  run the browser tests, saving the web client's main screens to docs/screenshots/"
	@echo "make docs   regenerate docs/asyncapi.json and the reference section of docs/protocol.md from shared/contracts/"
	@echo "make bench  users chatting in pairs and groups over real WebSockets, offline sync, idle-socket memory, with aio-pika and uvicorn-echo ceilings (ARGS='--users 20 --rate 200 --seconds 10 --json out.json')"
	@echo "           a sweep: latency against offered load, a row per rate and a PNG, chat load only (ARGS='--sweep 100,200,500,1000 --seconds 5 --plot bench-sweep.png')"
	@echo "           issue 12: pairs with W outstanding and acks on a prefilled, reusable store (ARGS='--pairs 100 --window 10 --ack-every 0.5 --seconds 20 --prefill 100000 --store .run/bench-store'; --private-infra: a RabbitMQ and Redis of its own)"
	@echo "           the same pairs beside Debian's ejabberd, routing only and with mod_mam on PostgreSQL, one table (ARGS='--peer ejabberd --pairs 100 --window 10 --seconds 20 --prefill 100000 --private-infra'; installs ejabberd when root)"
	@echo "           one device's burst to an offline friend, offline sync, decay table (ARGS='--burst 2000 --sync-messages 10000'; ARGS='--decay 0,100000,1000000 --pairs 100 --store .run/bench-store')"
	@echo "           issue 26: p50/p99 per operation (send, ack, read, edit, react, open, history, sync) under a moderate mixed load; fails past 50 ms p99 (ARGS='--ops 20 --ops-rate 40 --seconds 30 --prefill 100000 --store .run/bench-store --private-infra')"
	@echo "make capacity  issue 27's capacity model: replicas, nodes and shards for 10k/100k/1M connected people (docs/scaling.md, bench/capacity_inputs.json)"
	@echo "           one measured run beside it: 3 gateways, 3 chats (ARGS='--check --private-infra'; clustered engines: ARGS='--check --amqp-url URL1,URL2,URL3 --redis-url URL --redis-cluster')"
	@echo "make profile  py-spy profiles of chat, gateway and database under the chat load, into .run/profile/ (ARGS='--rate 300')"
	@echo "make bench-upload  stream a 1 GiB upload and download through a stack of its own, printing gateway/files RSS (ARGS='--mib 256')"
	@echo "make chaos  the fault suite, longer: RabbitMQ stopped, Redis emptied, MongoDB and replicas killed -9 under load, a table per fault (ARGS='--only gateway,chat --repeat 3 --rate 40'; docs/reliability.md); then the tests marked chaos"
	@echo "make soak   30 min at moderate load on a stack of its own: RSS per process and delivery p50/p99 every 30 s, JSON and PNG (ARGS='--minutes 10 --users 100 --rate 30')"
	@echo "make web-vendor  the web client's pinned npm files (libolm as WebAssembly, a QR encoder) into services/gateway/web/vendor/dist (needs npm; make run and make test call it)"
	@echo "make venv   create .venv and install '.[dev,local]' and the client library (clients/python) when either pyproject.toml changed"
	@echo "make browser  make sure Debian's Chromium is there for tests/browser (apt-get when root; else they are skipped, loudly)"
	@echo "make compose  make sure docker-compose is there for the docker-compose.yml check in tests/deploy (apt-get when root; else that check is skipped, loudly)"
	@echo "make coturn  make sure Debian's coturn (turnserver) is there for the TURN tests, its system service left off (apt-get when root; else they are skipped, loudly)"
	@echo "make nginx  make sure nginx is there for the proxy checks in tests/deploy (apt-get when root; else they are skipped, loudly)"
	@echo "make images  build the service images here without a registry: starts dockerd (root), a Debian base from debootstrap, parley/<service>:local (deploy/README.md)"
	@echo "make infra  make sure RabbitMQ (127.0.0.1:5672) and Redis (127.0.0.1:6379) answer"
	@echo "make redis-cluster  a 6-node Redis Cluster on loopback (3 primaries + a replica each, ports 7300-7305 or the next free block), printing the PARLEY_REDIS_* settings to use; Ctrl-C stops it (ARGS='--base-port 7400 --node-timeout-ms 1500')"
	@echo "make clean  remove .venv, .run and .pytest_cache"

venv: $(STAMP)

# The client library (clients/python, its own distribution) is installed editable beside the
# project: the tests, the benchmarks and the fault suite use it, and `parley` (its CLI) lands in .venv/bin.
$(STAMP): pyproject.toml clients/python/pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "installing Python dependencies into $(VENV) ..."
	$(VENV)/bin/pip install -e '.[dev,local]' -e 'clients/python[e2e]'
	@touch $@

# The web client's olm.js/olm.wasm and QR encoder: npm ci from package-lock.json, copied into
# services/gateway/web/vendor/dist (end-to-end encryption, docs/security.md). Fails clearly without npm.
web-vendor:
	@bash deploy/local/web-vendor.sh

# The AsyncAPI 3.0.0 JSON Schema that tests/unit/test_docs.py checks docs/asyncapi.json against
# (npm's @asyncapi/specs, pinned by docs/generate/schemas/package-lock.json). Without npm that
# one test skips, saying so; nothing else needs it.
doc-schemas:
	@if command -v npm >/dev/null 2>&1; then \
		test -d docs/generate/schemas/node_modules/@asyncapi/specs || npm ci --prefix docs/generate/schemas --no-audit --no-fund --loglevel=error; \
	else echo "doc-schemas: npm is not installed: the AsyncAPI schema check will skip (apt-get install npm)"; fi

infra:
	bash deploy/local/ensure-infra.sh

# A Redis Cluster for `make run` (in another terminal, with the printed exports) or a benchmark.
redis-cluster: venv
	$(PY) -m deploy.local.redis_cluster $(ARGS)

# exec: the launcher is make's own child, so it dies (stopping the stack) when make does.
run: venv web-vendor infra
	exec env $(if $(GATEWAYS),PARLEY_DEV_GATEWAYS=$(GATEWAYS) )$(if $(CHATS),PARLEY_DEV_CHATS=$(CHATS) )$(if $(CALLS),PARLEY_DEV_CALLS=$(CALLS) )$(if $(PUSHES),PARLEY_DEV_PUSHES=$(PUSHES) )$(PY) -m deploy.local.devstack run

# The cluster (deploy/local/rabbit_cluster.py) runs the stack as its child, PARLEY_AMQP_URL set to its three nodes.
rabbit-cluster: venv web-vendor infra
	exec $(PY) -m deploy.local.rabbit_cluster -- env $(if $(GATEWAYS),PARLEY_DEV_GATEWAYS=$(GATEWAYS) )$(if $(CHATS),PARLEY_DEV_CHATS=$(CHATS) )$(PY) -m deploy.local.devstack run

stop: venv
	$(PY) -m deploy.local.devstack stop

test: venv web-vendor doc-schemas lint infra browser compose coturn nginx
	$(PY) -m pytest $(PYTEST_ARGS)

N ?= 3
test-repeat: venv
	$(PY) -m tests.repeat --runs $(N) $(if $(PYTEST_ARGS),"--pytest-args=$(PYTEST_ARGS)")

lint: venv
	@echo "ruff check ..."
	$(VENV)/bin/ruff check .
	@echo "mypy (strict, shared/, services/ and clients/python) ..."
	$(VENV)/bin/mypy

browser:
	@bash deploy/local/ensure-browser.sh

compose:
	@bash deploy/local/ensure-compose.sh

coturn:
	@bash deploy/local/ensure-coturn.sh

nginx:
	@bash deploy/local/ensure-nginx.sh

# A Docker engine (Debian's docker.io started with --bridge=none, as root), a Debian base image made
# with debootstrap, and the four service images plus the MongoDB-wire stand-in built on it.
images:
	@bash deploy/local/ensure-docker.sh
	@bash deploy/local/build-images.sh

unit: venv
	$(PY) -m pytest tests/unit

screenshots: venv web-vendor infra browser
	PARLEY_SCREENSHOTS_DIR=docs/screenshots $(PY) -m pytest tests/browser $(PYTEST_ARGS)

docs: venv
	$(PY) -m docs.generate.asyncapi

bench: venv infra
	$(PY) -m bench.parley_bench $(ARGS)

# The model alone needs nothing running; --check starts a stack of its own.
capacity: venv
	$(PY) -m bench.capacity $(ARGS)

profile: venv infra
	$(PY) -m bench.parley_bench --rate 200 --seconds 10 --sync-messages 0 --idle 0 --no-ceilings --profile .run/profile $(ARGS)

bench-upload: venv infra
	$(PY) -m bench.upload_memory $(ARGS)

# Then the fault tests marked `chaos` (kept out of make test, which has a representative of each).
chaos: venv infra
	$(PY) -m bench.chaos $(ARGS)
	$(PY) -m pytest -m chaos tests/integration

soak: venv infra
	$(PY) -m bench.soak $(ARGS)

clean:
	rm -rf $(VENV) .run .pytest_cache
