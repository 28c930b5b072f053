# dicod-d2: `make test` and `make demo` set up everything they need (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dicod-d2-setup
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
PYTEST_WORKERS ?= 2
LOCK := requirements.lock
# the lock's resolver, in a throwaway venv; the package indexes and wheel folders of pip's own
# configuration (e.g. /etc/xdg/pip) are handed to it, so the lock has the wheels pip installs here
UV_VERSION := 0.13.9
LOCK_VENV := $(shell mktemp -u /tmp/dicod-d2-lock.XXXXXX)

.PHONY: setup lock test demo demo-quick lint clean-venv

setup: $(STAMP) $(FASHION_MNIST)

$(STAMP): $(LOCK) setup.py tools/install_detectron2.py $(wildcard tools/detectron2_patches/*.patch)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	$(PY) -m pip install -q --require-hashes -r $(LOCK)
	$(PY) tools/install_detectron2.py
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	$(PY) -c "import detectron2.modeling, dicod_d2; print('dicod-d2 environment ready')"
	touch $(STAMP)

# the exact versions and sha256 of every package, for x86_64 Linux and CPython 3.11, from requirements.txt
lock:
	$(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/python -m pip install -q uv==$(UV_VERSION)
	INDEXES="$$($(PYTHON) -m pip config get global.extra-index-url 2>/dev/null)"; \
	LINKS="$$($(PYTHON) -m pip config get global.find-links 2>/dev/null)"; \
	$(LOCK_VENV)/bin/uv pip compile requirements.txt --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --index-strategy unsafe-best-match \
	  $$(for u in $$INDEXES; do echo --extra-index-url $$u; done) $$(for u in $$LINKS; do echo --find-links $$u; done) \
	  --custom-compile-command "make lock" -o $(LOCK); status=$$?; rm -rf $(LOCK_VENV); exit $$status

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
