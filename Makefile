# TrackStat: `make run` runs the whole product on the embedded default; `make test` runs the tests.

# uv on PATH if it works, else the one installed for python3 (installed on first use).
UV := $(shell uv --version >/dev/null 2>&1 && echo uv || echo python3 -m uv)
export UV_PYTHON_DOWNLOADS := never
PORT ?= 8000
export PORT

.PHONY: install run test lint format check bench bench-full

install:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet

## Migrate, seed the demo, then web + worker + beat together (Ctrl-C stops all three).
## DEBUG is off unless set: the embedded default is development, so it is turned on here.
run: export DEBUG = 1
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

lint: install
	$(UV) run ruff check .
	$(UV) run ruff format --check .

format: install
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

check: lint test

## Benchmarks against the local PostgreSQL (BENCH_DATABASE_URL); each writes BENCHMARKS.md.
## bench: a small size, under five minutes. bench-full: 1,000,000 patients, 200 practices.
bench: install
	$(UV) run python benchmarks/run.py --size small

bench-full: install
	$(UV) run python benchmarks/run.py --size full
