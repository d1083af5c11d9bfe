# Two commands on a fresh machine with only Python 3.11 and make:
#   make demo   run the elevated-5xx runbook end to end against the simulator
#   make test   the whole suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
# Bytecode caches (__pycache__, ignored by git) are written even where the shell sets PYTHONDONTWRITEBYTECODE (this
# machine's does): without them every pytest process rewrites and compiles every test module again (collection ~12
# instead of ~5 CPU-seconds, paid by each xdist worker) and every subprocess compiles the project's modules again.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test unit-without-sim lint typecheck check clean

$(STAMP): pyproject.toml sim/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The simulator is its own distribution (sim/): the demo and the tests use it, production installs leave it out.
	$(BIN)/python -m pip install --quiet -e './sim[inprocess]' -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/remediate demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo
	# Two parts: everything else on three workers (a file stays on one worker), then the scenario tests that run the
	# simulator on the wall clock, alone, so that no other test's load changes what they observe. Files are handed out
	# slowest first (tests/conftest.py SLOW_FIRST), not by xdist's count of tests.
	$(BIN)/python -m pytest -q -n 3 --dist loadfile --no-loadscope-reorder -m "not wallclock"
	$(BIN)/python -m pytest -q -m wallclock

# The unit tests with the simulator made unimportable (tests/conftest.py), as on a production install without sim/:
# a test that needs it is skipped, any other import of it fails.
unit-without-sim: $(STAMP)
	REMEDIATE_TESTS_WITHOUT_SIM=1 $(BIN)/python -m pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .prefect .pytest_cache .mypy_cache .ruff_cache
