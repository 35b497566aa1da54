# deepc — set-up, demo, tests. `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
JOBS ?= auto
STAMP := .deepc-cache/installed.stamp

.PHONY: install demo test test-fast bench lint format clean

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

# deepc vs onnxruntime on the shared models, 1 thread and all threads, interleaved runs;
# numpy's BLAS is let loose (OPENBLAS_CORETYPE pins an older kernel on some machines)
bench: $(STAMP)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE deepc bench $(wildcard ../shared/models/*.onnx) \
		--threads 1 --threads 0 --runs 30 --matmul 1024

lint: $(STAMP)
	ruff check src tests
	ruff format --check src tests || true

clean:
	rm -rf .deepc-cache build dist .pytest_cache .ruff_cache
