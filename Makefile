# Two commands on a fresh machine: `make run` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEMO_DATA := cities/fixtures/demo/lisbon.json cities/fixtures/demo/rome.json
# What make starts runs in development mode (the app's own default is production): DEBUG on,
# the secret key made once in var/secret-key. DJANGO_DEBUG=0 in the environment wins.
DJANGO_DEBUG ?= 1
export DJANGO_DEBUG

.PHONY: run test setup venv dev-venv migrate demo model system-deps lint format bench demo-commons clean

## run: set up everything (venv, database, demo data, staff user, model) and start the app
run: setup
	@scripts/run.sh

setup: venv migrate demo model

## test: install what the tests need and run the whole suite, on TEST_WORKERS processes (tests
## that start clusters run one after another on one of them)
TEST_WORKERS ?= 3
test: dev-venv system-deps model
	scripts/with_postgres.sh $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.runtime-installed: requirements.txt | $(VENV)/bin/activate
	$(PIP) install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(VENV)/bin/activate
	$(PIP) install --quiet -r requirements-dev.txt
	@touch $@ $(VENV)/.runtime-installed

venv: $(VENV)/.runtime-installed
dev-venv: $(VENV)/.dev-installed

migrate: venv
	$(PY) manage.py migrate --noinput

demo: venv
	$(PY) manage.py import_city_export --no-progress $(DEMO_DATA)

model: venv
	@$(PY) manage.py install_scoring_model

system-deps:
	@scripts/install_system_deps.sh

lint: dev-venv
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

format: dev-venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: dev-venv model
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

## demo-commons: a Commons stand-in with real photos for the demo POIs (offline demo, see README)
demo-commons: dev-venv
	$(PY) scripts/demo_commons.py

clean:
	rm -rf $(VENV) var media staticfiles db.sqlite3*
