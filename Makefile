# dicod-d2: `make test` and `make demo` set up everything they need (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dicod-d2-setup
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
PYTEST_WORKERS ?= 2

.PHONY: setup test demo demo-quick lint clean-venv

setup: $(STAMP) $(FASHION_MNIST)

$(STAMP): requirements.txt setup.py tools/install_detectron2.py $(wildcard tools/detectron2_patches/*.patch)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=77.0.3,<81" wheel
	$(PY) -m pip install -q -r requirements.txt
	$(PY) tools/install_detectron2.py
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	$(PY) -c "import detectron2.modeling, dicod_d2; print('dicod-d2 environment ready')"
	touch $(STAMP)

# Fashion-MNIST objects for the built-in FashionDet dataset (Debian package, MIT licence).
$(FASHION_MNIST):
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	(test -n "$$(find /var/lib/apt/lists -name '*Packages*' -newermt '-1 day' 2>/dev/null | head -1)" || $$SUDO apt-get update -qq) && \
	$$SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null || \
	{ echo "could not install the Debian package dataset-fashion-mnist: run 'sudo apt-get update && sudo apt-get install dataset-fashion-mnist'" >&2; exit 1; }

test: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) tests

demo: setup
	$(PY) tools/demo.py

demo-quick: setup
	$(PY) tools/demo.py --quick

lint: setup
	$(PY) -m ruff check dicod_d2 tools tests configs

clean-venv:
	rm -rf $(VENV)
