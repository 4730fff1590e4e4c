# One command for the main job, one for the tests; both set up .venv (and the Debian dataset) first.
PY := .venv/bin/python

.PHONY: setup quick test test-slow lint format clean

setup:
	bash scripts/bootstrap.sh

quick: setup  ## the main job: the quick benchmark suite on Fashion-MNIST, report in runs/quick
	$(PY) -m robust_glo benchmark quick --out runs/quick

test: setup  ## the default test run (about 860 tests, about 7 minutes on 2 CPU cores)
	$(PY) -m pytest

test-slow: setup  ## the long end-to-end checks: SIGKILL and resume, Ray, the benchmark end to end
	$(PY) -m pytest -m slow

lint: setup  ## ruff: lint and format check (what CI runs before the tests)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: setup  ## apply ruff's fixes and formatting
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .
