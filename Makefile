# Two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.brainlike-installed
OUT    ?= brainlike-demo
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: demo test install clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip

# torch first, from its pinned CPU wheel, so nothing else pulls a CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/brainlike demo --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# benchmarks/RESULTS.md: the commands behind each table (ridge ~12 min, extraction ~25 min, scaling ~15 min)
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ridge.py --cases b --ref-targets 10000 --sk-targets 2000 --backends numpy
	$(BIN)/python benchmarks/bench_ridge.py --cases a c sweep --ref-targets 2000
	$(BIN)/python benchmarks/bench_extract.py --words 2000 --repeats 7 --mem-repeats 2
	$(BIN)/python benchmarks/bench_scaling.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
