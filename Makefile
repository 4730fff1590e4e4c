# One command for the main job, one for the tests; both set up .venv (and the Debian dataset) first.
PY := .venv/bin/python

.PHONY: setup quick test test-slow clean

setup:
	bash scripts/bootstrap.sh

quick: setup  ## the main job: the quick benchmark suite on Fashion-MNIST, report in runs/quick
	$(PY) -m robust_glo benchmark quick --out runs/quick

test: setup  ## the default test run (about 4 minutes on 2 CPU cores)
	$(PY) -m pytest

test-slow: setup  ## the long end-to-end checks
	$(PY) -m pytest -m slow
