# Two commands on a fresh machine (see README.md):
#   make quickstart   # install into .venv, then build builders/quickstart.yaml on the embedded defaults
#   make test         # install into .venv, then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.instructkit-installed

.PHONY: install quickstart test bench

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first: 2.13.0 is the CPU build on this machine's disk (a newer one pulls a CUDA build)
	$(PY) -m pip install --quiet torch==2.13.0
	# llama-cpp-python compiles from source once; pip's wheel cache keeps the build for later installs
	$(PY) -m pip install --quiet -e ".[all,test,bench]"
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/instructkit build quickstart --out quickstart-out

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest

bench: $(STAMP)
	for b in bench/*.py; do $(PY) $$b || exit 1; done
