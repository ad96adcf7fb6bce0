# ferry: the two set-up commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
EXTRAS := xgboost,lightgbm,torch,tensorflow,pmml,postgres,s3,spark,optimize,test

.PHONY: install examples run test lint typecheck check-system system-and-examples serial-tests clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

# The Node.js and browser consumers of `ferry export` bundles (examples/, tested by
# tests/export/test_consumers.py): onnxruntime-node and onnxruntime-web from their lock files.
# onnxruntime-node's postinstall would download from a host CI cannot reach; its CPU binaries
# are in the npm package, so it is skipped.
EXAMPLE_MODULES := examples/node/node_modules examples/web/node_modules

examples: $(EXAMPLE_MODULES)

examples/%/node_modules: examples/%/package.json examples/%/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  echo "note: npm not found; the examples/$* consumer tests will be skipped"; exit 0; } ; \
	cd examples/$* && ONNXRUNTIME_NODE_INSTALL=skip npm ci --omit=dev --no-audit --no-fund \
	  --loglevel=error && touch node_modules

# PostgreSQL, Java (for Spark), Node.js and Chromium (for the bundle consumers in examples/)
# come from Debian's packages; the PostgreSQL tests start a throwaway cluster, the Spark tests
# one local[2] session, the consumer tests Node.js and headless Chromium.
check-system:
	@command -v pg_createcluster >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
	      || echo "note: could not install postgresql; its tests will be skipped"; \
	  else echo "note: pg_createcluster not found; PostgreSQL tests will be skipped"; fi; }
	@command -v java >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null) \
	      || echo "note: could not install Java; the Spark tests will be skipped"; \
	  else echo "note: java not found; the Spark tests will be skipped"; fi; }
	@command -v npm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null) \
	      || echo "note: could not install Node.js; the Node.js consumer tests will be skipped"; \
	  else echo "note: npm not found; the Node.js consumer tests will be skipped"; fi; }
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "note: could not install Chromium; the browser consumer tests will be skipped"; \
	  else echo "note: chromium not found; the browser consumer tests will be skipped"; fi; }

run: install
	$(PY) -m ferry.example
	$(VENV)/bin/ferry serve breast-cancer --host 127.0.0.1 --http-port 8000 --grpc-port 8001

lint: install
	$(VENV)/bin/ruff check ferry tests bench

typecheck: install
	$(VENV)/bin/mypy

# Debian's packages and npm's install while pip installs ferry (two independent downloads),
# then the suite on two pytest-xdist workers, each test module on one worker (so a module's
# Spark session or TensorFlow starts once; `--dist loadgroup` would group across modules, but
# pytest-xdist 3.8 cannot set its groups under pytest 9.2). The modules marked `serial`
# (schemathesis' generated cases, which pytest-xdist silently drops) run after, on one core,
# while ruff and mypy take the other: a minute less than running the checks first.
system-and-examples:
	@$(MAKE) --no-print-directory check-system
	@$(MAKE) --no-print-directory examples

serial-tests: install
	$(VENV)/bin/pytest -m serial

test:
	@$(MAKE) --no-print-directory -j2 --output-sync=target install system-and-examples
	$(VENV)/bin/pytest -n 2 --dist loadfile -m "not serial"
	@$(MAKE) --no-print-directory -j2 --output-sync=target serial-tests lint typecheck

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache $(EXAMPLE_MODULES)
