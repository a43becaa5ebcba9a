# bmcrypt: two commands matter on a fresh machine, `make demo` and `make test`.
SHELL := /bin/bash
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test bench fuzz install sysdeps crossdeps runtime sdk clean llm-tpu-example

## Install everything and run the main job end to end on a shipped fixture.
demo: install runtime
	@scripts/demo.sh

## Install everything and run the test suite against the real vendor runtime (the aarch64 SDK
## tests run under qemu-aarch64, hence the cross toolchain).
test: install runtime crossdeps
	$(VENV)/bin/pytest $(PYTEST_ARGS)

## Benchmarks against same-run baselines (cp + sync, openssl speed, the vendor flow); see docs/benchmarks.md.
bench: install runtime
	$(PY) -m pip install -q ".[bench]"
	$(PY) bench/run.py $(BENCH_ARGS)

## A longer fuzz campaign of the bmodel reader (hypothesis).
fuzz: install
	BMCRYPT_FUZZ_EXAMPLES=$${BMCRYPT_FUZZ_EXAMPLES:-50000} $(VENV)/bin/pytest -q tests/test_fuzz.py

sysdeps:
	@scripts/install-system-deps.sh

crossdeps:
	@scripts/install-cross-deps.sh

## The C SDK: dist/bmcrypt-sdk-<version>-{x86_64,aarch64}.tar.gz (docs/sdk.md).
sdk: sysdeps crossdeps
	@scripts/make-sdk.sh

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

## The package is installed (not run from the tree): tests import what users get.
install: sysdeps $(PY)
	$(PY) -m pip install -q ".[test,chat]"

runtime:
	@scripts/fetch-runtime.sh >/dev/null

## The `chat` module of examples/llm-tpu (LLM-TPU's share_cache_demo on bmcrypt files), built
## against the installed package; BMRT_LIB_DIR=/opt/sophon/libsophon-current/lib on a device.
LLM_TPU_BUILD := examples/llm-tpu/build
llm-tpu-example: install runtime
	$(PY) -m pip install -q "pybind11>=2.12"
	cmake -S examples/llm-tpu -B $(LLM_TPU_BUILD) -DCMAKE_BUILD_TYPE=Release \
	  -DPython_EXECUTABLE=$(abspath $(PY)) \
	  -Dbmcrypt_DIR="$$($(PY) -P -c 'import bmcrypt.plugin as p; print(p.cmake_dir())')" \
	  -Dpybind11_DIR="$$($(PY) -m pybind11 --cmakedir)" \
	  -DBMRT_LIB_DIR="$${BMRT_LIB_DIR:-$$(scripts/fetch-runtime.sh)/lib}"
	cmake --build $(LLM_TPU_BUILD) -j2
	@echo "built: $$(ls $(LLM_TPU_BUILD)/chat*.so) (PYTHONPATH=$(LLM_TPU_BUILD) python -c 'import chat')"

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis
