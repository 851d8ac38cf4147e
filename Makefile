# Everything installs into ./.venv on first use; `make run` and `make test` need nothing else.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: install run test test-postgres lint format openapi bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install  ## migrate the database, then serve on 127.0.0.1:8000
	$(BIN)/flask --app wsgi db upgrade
	exec $(BIN)/gunicorn --config gunicorn.conf.py wsgi:app

test: install  ## the whole suite (SQLite; PostgreSQL/Redis when TEST_DATABASE_URL/TEST_REDIS_URL are set)
	$(BIN)/pytest -n auto -p no:cacheprovider --ignore=tests/system
	@# The system tests run real gunicorn processes, one at a time, against PostgreSQL and Redis.
	@if [ -n "$$TEST_DATABASE_URL" ] && [ -n "$$TEST_REDIS_URL" ]; then \
	  echo "$(BIN)/pytest -p no:cacheprovider tests/system"; \
	  $(BIN)/pytest -p no:cacheprovider tests/system; \
	else \
	  echo "tests/system not run: they need TEST_DATABASE_URL and TEST_REDIS_URL (make test-postgres)"; \
	fi

test-postgres: install
	TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \
	TEST_REDIS_URL=redis://127.0.0.1:6379/0 $(MAKE) test

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install  ## Coffer against the bare-Flask ceiling under wrk (SQLite and PostgreSQL)
	$(BIN)/python bench/http_bench.py

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache .hypothesis

openapi: install  ## regenerate openapi.yaml from the routes and their declarations (api/http/spec.py)
	$(BIN)/flask --app wsgi openapi > openapi.yaml.tmp
	mv openapi.yaml.tmp openapi.yaml
