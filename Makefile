# Every target does its own set-up: a fresh clone needs only `make demo` or `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
# The embedded default server keeps its data inside the checkout (see docs/getting-started.md).
export PGCTI_HOME ?= $(CURDIR)/.pgcti
DURATION ?= 60

.PHONY: demo test test-asterisk test-pg15 lint schema bench bench-quick chaos clean

# pip's own output is long: its "Collecting" lines become one line of names, so the half
# a minute it takes shows progress; its warnings go to a log, shown when it fails.
$(BIN)/.installed: pyproject.toml
	@echo "==> creating $(VENV) and installing pgcti with its dependencies (first run only, about 30 s)"
	python3 -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade pip
	@bash -o pipefail -c "$(BIN)/pip install --progress-bar off -e '.[demo,test]' 2>$(VENV)/pip.log \
	  | awk '/^Collecting/ { printf \"%s \", \$$2; fflush() } /^Successfully installed/ { n = NF - 2 } \
	         END { print \"\"; if (n) print \"==> \" n \" packages installed\" }'" \
	  || { cat $(VENV)/pip.log; echo "==> pip could not install pgcti (its output is above)"; exit 1; }
	@touch $@

demo: $(BIN)/.installed
	$(BIN)/pgcti demo --duration $(DURATION)

# Real socket.io 0.9 peers (Node.js) for the onlinePBX API 2.0 interoperability tests.
INTEROP := tests/interop/node_modules/.installed
$(INTEROP): tests/interop/package-lock.json
	@echo "==> installing socket.io 0.9 test peers and node-postgres with npm (first run only)"
	npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error
	@touch $@

# A real browser for the browser tests (the report, the gateway's pages): Debian's chromium
# and chromedriver, and a real terminal (tmux) for the demo board's test, when we may
# install them (root, apt). Without them those tests skip and say why.
BROWSER := $(BIN)/.browser-checked
$(BROWSER): $(BIN)/.installed
	@command -v tmux >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && echo "==> installing Debian's tmux for the demo board's terminal test (first run only)" \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null; } || true
	@{ command -v chromium && command -v chromedriver; } >/dev/null \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && echo "==> installing Debian's chromium and chromedriver for the browser tests (first run only)" \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
	  || echo "==> no chromium: the browser tests will skip"
	@touch $@

# A live Asterisk 22 and SIP phones for the live tier (tests/live, docs/testing.md): built
# once per machine from the source tarballs in ../shared/reference/asterisk-src (about 6
# minutes; root installs the Debian packages it needs, baresip among them). Where it
# cannot be built, the live tests skip and say why; nothing else needs it.
LAB := $(BIN)/.asterisk-lab-checked
$(LAB): $(BIN)/.installed tests/lab/build-asterisk.sh
	@if bash tests/lab/build-asterisk.sh >/dev/null; then touch $@; \
	 else echo "==> no Asterisk lab: the live tests will skip"; fi

# The suite runs in TEST_JOBS processes (pytest-xdist), a test file to a process: most tests
# wait on sockets and subprocesses, so 3 on 2 cores take half the time of one. TEST_JOBS=0
# runs it in one process.
TEST_JOBS ?= 3
PYTEST := $(BIN)/pytest -n $(TEST_JOBS) --dist loadfile

test: $(BIN)/.installed $(INTEROP) $(BROWSER) $(LAB)
	$(PYTEST)

# The live tier alone: pgcti against a real Asterisk with SIP phones.
test-asterisk: $(BIN)/.installed
	bash tests/lab/build-asterisk.sh >/dev/null
	$(BIN)/pytest tests/live

lint: $(BIN)/.installed
	$(BIN)/ruff check ingester tests
	$(BIN)/ruff format --check ingester tests

# Regenerate db/schema.sql from a freshly migrated database on the embedded server (PostgreSQL 18).
schema: $(BIN)/.installed
	$(BIN)/pgcti schema > db/schema.sql

clean:
	-$(BIN)/pgcti db stop
	rm -rf $(VENV) .pgcti

# The same suite on Debian's PostgreSQL 15 (package postgresql-15), the oldest major we support,
# but for the live Asterisk tier (the tiers are named: pyproject's testpaths list them all):
# it tests the PBX side, which no PostgreSQL version changes, and `make test` runs it (a
# minute and a half the CI run spares).
# As root with apt, a machine without it gets Debian's current postgresql-15 first.
PG15 := /usr/lib/postgresql/15/bin/postgres
test-pg15: $(BIN)/.installed $(INTEROP) $(BROWSER) $(LAB)
	@[ -x $(PG15) ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && echo "==> installing Debian's postgresql-15 for the suite on PostgreSQL 15 (first run only)" \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null; } || true
	tests/with_debian_postgres.sh 15 $(PYTEST) tests/rules tests/edge tests/operations tests/interop

# Benchmarks: ratios measured in one run on one server (see docs/performance.md).
bench: $(BIN)/.installed
	$(BIN)/python -m tests.bench.run --json bench-results.json
	$(BIN)/python -m tests.bench.lone_frame --json bench-lone.json
	$(BIN)/python -m tests.bench.decoupled --json bench-decoupled.json
	$(BIN)/python -m tests.bench.latency --json bench-latency.json
	$(BIN)/python -m tests.bench.directory --json bench-directory.json
	$(BIN)/python -m tests.bench.analytics --json bench-analytics.json
	$(BIN)/python -m tests.bench.crm_writes --json bench-crm-writes.json
	$(BIN)/python -m tests.bench.routing --json bench-routing.json
	$(BIN)/python -m tests.bench.queues --json bench-queues.json

# A few minutes: the pipeline against the raw log alone; the last line is the ratio.
bench-quick: $(BIN)/.installed
	$(BIN)/python -m tests.bench.run --quick --json bench-quick.json

# The long fault cases, each ending with counts (docs/reliability.md); options in CHAOS,
# e.g. make chaos CHAOS='--only stall --hold 30' or CHAOS='--pbx asterisk'.
chaos: $(BIN)/.installed
	$(BIN)/python -m tests.chaos.cases $(CHAOS)
