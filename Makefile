# TrackStat: `make run` runs the whole product on the embedded default; `make check` runs every
# check and the whole test suite (what CI runs).

# uv on PATH if it works, else the one installed for python3 (installed on first use).
UV := $(shell uv --version >/dev/null 2>&1 && echo uv || echo python3 -m uv)
export UV_PYTHON_DOWNLOADS := never
PORT ?= 8000
export PORT

.PHONY: install run test test-fast lint format migrations-check imports check bench bench-full

install:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet

## Migrate, seed the demo, then web + worker + beat together (Ctrl-C stops all three).
## DEBUG is off unless set: the embedded default is development, so it is turned on here.
run: export DEBUG = 1
## Links in messages, unsubscribe pages and invitations point at this server's own port.
run: export PUBLIC_BASE_URL ?= http://127.0.0.1:$(PORT)
run: install
	$(UV) run python manage.py migrate --noinput
	$(UV) run python manage.py seed_demo
	@echo
	@echo "TrackStat is starting at http://127.0.0.1:$(PORT)/  (sign in with a demo login above)"
	@echo
	$(UV) run honcho -f Procfile start

## The whole test suite (SQLite and no services with nothing set; Postgres/Redis from the env).
test: install
	$(UV) run pytest

## Daily work: the suite without the browser tests and the ones that start real processes.
test-fast: install
	$(UV) run pytest -n auto -m "not e2e and not integration"

lint: install
	$(UV) run ruff check .
	$(UV) run ruff format --check .

format: install
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

## Models and migrations agree (the test settings: no production secrets needed).
migrations-check: install
	DJANGO_SETTINGS_MODULE=tests.settings $(UV) run python manage.py makemigrations --check --dry-run

## The layers run one way and no app holds an import cycle ([tool.importlinter]).
imports: install
	$(UV) run lint-imports --no-cache

## Everything CI runs: lint, format, migrations, the import contract, then the whole suite.
check: lint migrations-check imports test

## Benchmarks against the local PostgreSQL (BENCH_DATABASE_URL); each writes BENCHMARKS.md.
## bench: a small size, under five minutes. bench-full: 1,000,000 patients, 200 practices.
bench: install
	$(UV) run python benchmarks/run.py --size small

bench-full: install
	$(UV) run python benchmarks/run.py --size full
