# deepc — set-up, demo, tests. `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
JOBS ?= auto
STAMP := .deepc-cache/installed.stamp

.PHONY: install demo test test-fast bench bench-int8 bench-cuda bench-wasm bench-opencl zoo \
	bench-zoo bench-zoo-cuda lint format clean

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

# the int8 QDQ models (onnxruntime's quantize_static, built into .deepc-cache) beside their
# fp32 originals, one thread: deepc int8 vs fp32 and vs onnxruntime's int8
bench-int8: $(STAMP)
	deepc bench $$(python3 -m tests.e2e.quantized) --threads 1 --runs 50

# on a machine with an NVIDIA GPU, pycuda, torch and torchvision: the vision models against
# torch eager and torch.compile at batch 1 and 32, strict fp32 then TF32 (#7's table)
VISION := $(wildcard $(addprefix ../shared/models/,resnet18.onnx squeezenet1_1.onnx \
	mobilenet_v2.onnx shufflenet_v2_x1_0.onnx efficientnet_b0.onnx))
bench-cuda: $(STAMP)
	for b in 1 32; do for tf32 in "" --allow-tf32; do \
		deepc bench $(VISION) --target cuda-sm90 --compare torch --batch $$b $$tf32 --runs 50 \
		|| exit 1; done; done

# deepc vs onnxruntime-web (wasm SIMD, one thread) in one Node process, on the shared models
bench-wasm: $(STAMP)
	deepc bench $(wildcard ../shared/models/*.onnx) --target wasm32-simd \
		--compare onnxruntime-web --runs 30

# deepc's OpenCL kernels on PoCL's CPU device vs onnxruntime on the shared models (a ratio: PoCL
# on a CPU is not a GPU)
bench-opencl: $(STAMP)
	deepc bench $(wildcard ../shared/models/*.onnx) --target opencl-cpu --compare onnxruntime \
		--runs 20

# public architectures the defaults were not tuned on (tools/zoo.py: torchvision, timm,
# transformers with random weights) exported once into $(ZOO); ZOO_PYTHON has the zoo extra
ZOO := .deepc-cache/zoo
ZOO_PYTHON ?= $(PYTHON)
ZOO_PIP_FLAGS ?= --extra-index-url https://download.pytorch.org/whl/cpu  # CPU torch wheels
zoo:
	$(ZOO_PYTHON) -m pip show -q torch torchvision timm transformers >/dev/null 2>&1 \
		|| $(ZOO_PYTHON) -m pip install -q $(ZOO_PIP_FLAGS) -e '.[zoo]'
	$(ZOO_PYTHON) tools/zoo.py --out $(ZOO)

bench-zoo: $(STAMP) zoo
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE deepc bench $(ZOO)/*.onnx --threads 1 \
		--compare onnxruntime --runs 20

bench-zoo-cuda: $(STAMP) zoo
	deepc bench $(ZOO)/*.onnx --target cuda-sm90 --compare torch --batch 32 --allow-tf32 \
		--runs 50

lint: $(STAMP)
	ruff check src tests
	ruff format --check src tests || true

clean:
	rm -rf .deepc-cache build dist .pytest_cache .ruff_cache
