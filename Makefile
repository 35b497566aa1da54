# deepc — set-up, demo, tests. `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
JOBS ?= auto
STAMP := .deepc-cache/installed.stamp

.PHONY: install demo test test-fast lint format clean

$(STAMP): pyproject.toml
	$(PIP) install -q -e '.[test]'
	@mkdir -p $(dir $@) && touch $@

install: $(STAMP)

demo: $(STAMP)
	$(PYTHON) -m deepc.demo

test: $(STAMP)
	$(PYTHON) -m pytest -q -n $(JOBS) --dist loadgroup tests

test-fast: $(STAMP)
	$(PYTHON) -m pytest -q -n $(JOBS) -m "not slow and not models" tests

lint: $(STAMP)
	ruff check src tests
	ruff format --check src tests || true

clean:
	rm -rf .deepc-cache build dist .pytest_cache .ruff_cache
