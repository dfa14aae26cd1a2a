# The two commands of the README: `make test` and `make bench`. Each creates .venv when missing,
# installs torch (CPU, $(TORCH_SPEC)) only when the venv has none, builds moafast and runs.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
SOURCES := pyproject.toml CMakeLists.txt $(shell find csrc -type f 2>/dev/null)

.PHONY: test bench env clean

test: $(VENV)/.moafast-test
	$(PY) -m pytest -q

bench: $(VENV)/.moafast-bench
	$(VENV)/bin/moafast bench $(BENCH_ARGS)

env: $(VENV)/.moafast-built
	$(PY) -m moafast.env

$(VENV)/.torch:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)"
	touch $@

# The build links no libtorch, so it needs no isolated env holding torch: build against the venv.
$(VENV)/.moafast-built: $(VENV)/.torch $(SOURCES)
	$(PIP) install "scikit-build-core>=0.10" "pybind11>=2.13" ninja
	$(PIP) install --no-build-isolation -e .
	touch $@

$(VENV)/.moafast-test: $(VENV)/.moafast-built
	$(PIP) install -e ".[test]" --no-build-isolation
	touch $@

$(VENV)/.moafast-bench: $(VENV)/.moafast-built
	$(PIP) install -e ".[bench]" --no-build-isolation
	touch $@

clean:
	rm -rf build bench/results
