# The front door. Each target bootstraps what it needs (the .venv, the data) and then
# does its job; a second run reuses what is already there.
#
#   make test                 unit tests, every notebook re-executed and compared, lint
#   make test-fast            the same without the slow tests (browser, torchrun), to iterate
#   make lab                  JupyterLab on notebooks/
#   make site [PROFILE=...]   execute the notebooks into build/, build the course site
#   make html                 build the site from the committed outputs, executing nothing

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.d2l-resnet-installed
DATA_STAMP := data/.verified
PROFILE ?= course
SITE_DIR ?= site
BUILD_DIR ?= build

export PYTHONDONTWRITEBYTECODE := 1

.PHONY: test test-fast lab data site html clean venv

venv: $(STAMP)

# Re-install only when the project's requirements change.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
	  { echo "d2l-resnet needs Python >= 3.10; found $$($(PYTHON) --version)"; exit 1; }
	@test -x $(PY) || { echo "==> creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "==> installing d2l-resnet and its dev/test extras into $(VENV) (first run: minutes)"
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	@touch $@

# Find Fashion-MNIST (project data/, $$D2L_RESNET_DATA, the Debian package, a download),
# verify it and unpack it into data/FashionMNIST/raw. scripts/get-data.sh falls back to
# `apt-get install dataset-fashion-mnist` when offline on Debian/Ubuntu as root.
data: $(DATA_STAMP)

$(DATA_STAMP): $(STAMP)
	@PY=$(PY) sh scripts/get-data.sh
	@touch $@

# Two pytest workers, one PyTorch thread each (more threads than cores slows every test);
# --dist loadscope keeps each notebook's cells, and each test module, on one worker;
# tests/conftest.py orders them longest first.
PYTEST := D2L_RESNET_PROFILE=quick TQDM_DISABLE=1 OMP_NUM_THREADS=1 $(PY) -m pytest --nbval \
	  --nbval-current-env --nbval-cell-timeout=600 -p no:cacheprovider --durations=5 \
	  -n 2 --dist loadscope --no-loadscope-reorder

test: $(DATA_STAMP)
	@echo "==> unit tests and notebooks (pytest --nbval, profile quick)"
	$(PYTEST)
	@echo "==> ruff check"
	$(PY) -m ruff check src tests tools notebooks

test-fast: $(DATA_STAMP)
	@echo "==> unit tests and notebooks, without the slow browser and torchrun tests"
	$(PYTEST) -m "not slow"
	$(PY) -m ruff check src tests tools notebooks

# The course site: Sphinx with myst-nb and sphinx-book-theme, configured in tools/course_site.
# `html` builds it from the notebooks' committed outputs and executes nothing; `site` first
# executes every notebook into $(BUILD_DIR)/notebooks (the committed notebooks are left
# alone), then builds it from those fresh outputs. Either one opens offline from
# $(SITE_DIR)/index.html.
site: $(DATA_STAMP)
	@echo "==> course site: execute the notebooks (profile $(PROFILE)) into $(BUILD_DIR)/notebooks, then build $(SITE_DIR)/"
	D2L_RESNET_PROFILE=$(PROFILE) TQDM_DISABLE=1 $(PY) -m jupyter nbconvert --to notebook \
	  --execute --ExecutePreprocessor.timeout=3600 --output-dir $(BUILD_DIR)/notebooks \
	  --ExecutePreprocessor.extra_arguments=--IPKernelApp.log_level=ERROR \
	  notebooks/[0-9][0-9]_*.ipynb
	$(PY) -m tools.course_site.build --executed $(BUILD_DIR)/notebooks --build $(BUILD_DIR) \
	  --out $(SITE_DIR)

html: $(STAMP)
	@echo "==> course site from the committed outputs (nothing is executed)"
	$(PY) -m tools.course_site.build --build $(BUILD_DIR) --out $(SITE_DIR)

lab: $(DATA_STAMP)
	@if [ "$$(id -u)" = 0 ]; then echo "You are root: JupyterLab refuses to run as root unless told to, so make lab adds --allow-root."; fi
	$(PY) -m jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root )notebooks

clean:
	rm -rf build site .pytest_cache .ruff_cache
