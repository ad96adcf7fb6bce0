# ferry: the two set-up commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
EXTRAS := xgboost,lightgbm,torch,tensorflow,pmml,postgres,s3,spark,optimize,test

.PHONY: install run test lint typecheck check-system clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

# PostgreSQL and Java (for Spark) come from Debian's packages; the PostgreSQL tests start a
# throwaway cluster, the Spark tests one local[2] session.
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

run: install
	$(PY) -m ferry.example
	$(VENV)/bin/ferry serve breast-cancer --host 127.0.0.1 --http-port 8000 --grpc-port 8001

lint: install
	$(VENV)/bin/ruff check ferry tests bench

typecheck: install
	$(VENV)/bin/mypy

test: install check-system lint typecheck
	$(VENV)/bin/pytest

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
