# One command per habit; CI (.ci/run) calls `make test`, `make test-pgbouncer`, `make cluster-test` (bounded),
# `make lint` and `make image-test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The full suite runs against the real services; the smoke part against the embedded defaults.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
PYTEST_ARGS ?=


.PHONY: install run test test-full test-smoke test-pgbouncer test-sentinel image-test cluster-test lint bench chaos messages clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The sandbox stands in for WeChat unless WECHAT_API_BASE says otherwise. `make run PORT=8001 SANDBOX_PORT=8101`
# moves both servers (a second checkout can run beside the first).
PORT ?= 8000
SANDBOX_PORT ?= 8100
SANDBOX := http://127.0.0.1:$(SANDBOX_PORT)
# `make run VERBOSE=1` shows every log line of the children (INFO, Celery's banners, the access log); without it
# only warnings and errors, so that the summary with the demo key stays on the screen.
VERBOSE ?=
# DEV_ENV_FILE= : run_stack writes var/dev.env afresh from this environment instead of reading the last one.
run: install
	DEBUG=$${DEBUG:-true} DEV_ENV_FILE= \
	WECHAT_API_BASE=$${WECHAT_API_BASE:-$(SANDBOX)} WECHAT_MP_BASE=$${WECHAT_MP_BASE:-$(SANDBOX)} \
	WECHAT_OPEN_BASE=$${WECHAT_OPEN_BASE:-$(SANDBOX)} \
	$(PY) manage.py run_stack --port $(PORT) --sandbox-port $(SANDBOX_PORT) $(if $(VERBOSE),--verbose)

test: install
	./scripts/ensure-test-tools.sh
	$(MAKE) --no-print-directory test-full
	$(MAKE) --no-print-directory test-smoke

test-full:
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest $(PYTEST_ARGS)

# SQLite file + filesystem broker: what `make run` uses on a bare machine.
test-smoke:
	env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest -m smoke $(PYTEST_ARGS)

# Builds the production image with a private Docker engine (root; installs docker.io and debootstrap) and runs
# migrate, web, worker and beat from it against the machine's PostgreSQL and Redis (tests/deploy/test_image.py).
image-test: install
	./scripts/ensure-image-tools.sh
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest -m image -s -o timeout=3600 $(PYTEST_ARGS) tests/deploy/test_image.py
# The database tests of the sync, the merchant API, token single-flight, reconciliation and webhooks (real
# workers included), every connection through a private pgbouncer in transaction mode (tests/fixtures/pgbouncer.py,
# docs/deploy/pgbouncer.md), with the settings a deployment behind it uses.
PGBOUNCER_TESTS := tests/ha/test_pgbouncer.py tests/drafts/test_sync.py tests/api/test_api.py \
	tests/drafts/test_workers.py tests/drafts/test_on_demand.py tests/tenants/test_tokens.py \
	tests/authority/test_single_flight.py tests/tenants/test_reconcile.py tests/webhooks/test_delivery.py \
	tests/webhooks/test_outbox.py
test-pgbouncer: install
	./scripts/ensure-test-tools.sh
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) DATABASE_TRANSACTION_POOLING=true \
	$(PY) -m pytest --pgbouncer $(PGBOUNCER_TESTS) $(PYTEST_ARGS)

# Redis Sentinel failovers (tests/ha/test_sentinel.py, docs/deploy/redis-sentinel.md): one master, one replica and
# three sentinels of the test's own; SENTINEL FAILOVER and a SIGKILLed master in the middle of a sync.
test-sentinel: install
	./scripts/ensure-test-tools.sh
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest -m sentinel tests/ha $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DEBUG=true $(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

bench: install
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m bench

# The long fault-injection suite: WeChat faults, a killed worker, Redis and PostgreSQL restarts, token storms
# and the fuzzers, at CHAOS_SCALE=long, with the report table at the end. `make test` runs the same scenarios
# bounded. The scenarios start their own redis-server and database proxy; the shared services stay up.
chaos: install
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) CHAOS_SCALE=long \
	$(PY) -m pytest -m chaos -o timeout=3600 $(PYTEST_ARGS) tests/chaos tests/tenants/test_event_fuzz.py

# Several hosts on a private network of Linux network namespaces (tests/cluster; root and iproute2): a data
# host (its own PostgreSQL and Redis), the WeChat emulator, three worker hosts and a web host. A run synced
# across the workers, a worker host killed, one cut off for 60 s, two beats. CI runs it with 20,000 accounts.
# Needs neither the shared PostgreSQL nor the shared Redis.
CLUSTER_ACCOUNTS ?= 50000
cluster-test: install
	./scripts/ensure-test-tools.sh
	CLUSTER_ACCOUNTS=$(CLUSTER_ACCOUNTS) $(PY) -m pytest -m cluster -o timeout=1800 tests/cluster $(PYTEST_ARGS)

# Extract user-facing strings into locale/zh_Hans (then translate the .po) and compile them.
messages: install
	DEBUG=true $(PY) manage.py makemessages -l zh_Hans --no-obsolete --ignore='.venv/*' --ignore='var/*' --ignore='tests/*' --ignore='bench/*'
	DEBUG=true $(PY) manage.py compilemessages --ignore='.venv/*' 

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
