# The two commands of the README:  `make book`  and  `make test`.
# Both create the environment first (uv, pinned by uv.lock); nothing is done by hand before them.
PROFILE ?= default
PYTEST_ARGS ?=
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --frozen --no-sync

.PHONY: setup chromium book notebooks test test-slow bench clean

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

.venv/.derm-nb-synced: pyproject.toml uv.lock src/derm_nb/lab.py | $(UV)
	$(UV) sync --frozen --compile-bytecode   # .pyc files: kernels start in seconds even where PYTHONDONTWRITEBYTECODE is set
	$(RUN) python -m compileall -q src
	$(RUN) python -m derm_nb.lab   # JupyterLab: .py chapters open as notebooks; saving an unchanged one rewrites nothing
	@touch $@

# Headless Chromium for the book's browser test (Debian's package; needs root or sudo).
CHROMIUM := $(shell command -v chromium 2>/dev/null)
chromium:
ifeq ($(CHROMIUM),)
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; \
	else echo "warning: install Debian's chromium package for the browser test"; fi
endif

setup: .venv/.derm-nb-synced chromium ## create .venv from uv.lock (and install chromium for the browser test)

book: setup ## execute every notebook under $(PROFILE) (default) and build the HTML book
	$(RUN) derm-nb run --profile $(PROFILE)
	$(RUN) derm-nb book --profile $(PROFILE)

notebooks: setup ## regenerate each notebooks/*.ipynb from its reviewed .py, outputs stripped
	$(RUN) jupytext --to ipynb --update notebooks/[0-9]*.py
	$(RUN) python -m derm_nb.lab --strip notebooks/[0-9]*.ipynb

test: setup ## the test suite, with the smoke-profile notebook run
	$(RUN) pytest $(PYTEST_ARGS)

test-slow: setup ## the slow tests too (default-profile notebook run)
	$(RUN) pytest -m "slow or not slow" $(PYTEST_ARGS)

bench: setup ## the speed benchmark: the smoke book's notebooks, cache, loader, models, data wait (runs/benchmarks/bench.json)
	$(RUN) derm-nb bench --run-profile smoke

clean:
	rm -rf runs _build
