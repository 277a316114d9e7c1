# Two commands on a fresh machine: `make quickstart` and `make test`. Each installs what it
# needs into .venv (CPU torch pinned by constraints.txt; GPU servers install without it).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install quickstart test lint typecheck proto wheel clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[train,export,serve,dev]"
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/python -m lab.provenance runs/quickstart
	$(BIN)/mmrt quickstart --out runs/quickstart

test: $(STAMP)
	$(BIN)/ruff check .
	$(MAKE) --no-print-directory typecheck
	$(BIN)/python -m pytest

# mypy on the core (mmrt/), the command line (cli/) and the edge runtime (runtime/). The rooms map into one import
# namespace (package-dir), which mypy cannot follow, so it checks a tree of links laid out as
# the installed package; settings in pyproject.toml.
typecheck: $(STAMP)
	rm -rf .typecheck && mkdir .typecheck && cp -rs "$(CURDIR)/mmrt" .typecheck/mmrt
	for room in cli runtime training export benchmarks; do ln -s "$(CURDIR)/$$room" .typecheck/mmrt/$$room; done
	cd .typecheck && "$(CURDIR)/$(BIN)/mypy" --config-file "$(CURDIR)/pyproject.toml" mmrt/*.py mmrt/cli mmrt/runtime

lint: $(STAMP)
	$(BIN)/ruff check .

# Regenerate the committed gRPC stubs (runtime/protocol) from proto/*.proto.
proto: $(STAMP)
	$(BIN)/python proto/generate.py

# A wheel of the checkout (mmrt is not on a package index): pip install "dist/<wheel>[serve]".
wheel: $(STAMP)
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir dist .

clean:
	rm -rf $(VENV) runs dist build .pytest_cache .ruff_cache .mypy_cache .typecheck *.egg-info
