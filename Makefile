# Two commands for a fresh machine: `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PORT ?= 8000
MODEL ?= small
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck install proto bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch is pinned to the CPU build lying on this kind of machine; a plain `torch` would pull CUDA.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet -e ".[test]"
	@command -v redis-server >/dev/null || $(MAKE) --no-print-directory redis-server
	touch $(STAMP)

install: $(STAMP)

redis-server:
	@echo "redis-server not on PATH; installing Debian's package"
	apt-get update -qq && apt-get install -y -qq redis-server >/dev/null

run: install
	$(VENV)/bin/laneway serve --model $(MODEL) --port $(PORT)

# The checkers run first: a lint or type error fails `make test` like a failing test.
test: lint typecheck
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy gateway lanes telemetry workers laneway

proto: install
	$(PY) scripts/gen_proto.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
