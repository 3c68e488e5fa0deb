# make test (= make test-all, then make test-avx2) | make run | make site | make student | make autograde | make export | make grading-demo | make lab
# (see README.md)
VENV ?= .venv
PY := $(VENV)/bin/python
CELL_TIMEOUT ?= 900
STAMP := $(VENV)/.installed

.PHONY: install test test-all test-avx2 unit run site student autograde export formgrader grading-demo lab lint clean checkpoints

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

## Unit tests, then every notebook under nbval in the fast profile; then the AVX2 leg.
test: test-all test-avx2

test-all: install
	XAI_PROFILE=fast XAI_STRICT_CHECKS=1 $(PY) -m pytest tests notebooks --nbval-lax \
		--nbval-cell-timeout=$(CELL_TIMEOUT) -p no:cacheprovider --durations=20

## The PyTorch tests that train or explain, once more on oneDNN's and ATen's AVX2 kernels (what a
## CPU without AVX-512 runs; oneDNN's AVX2 strided 1x1 weight gradient once hung the suite).
AVX2_LEG := tests/test_torch_*.py tests/test_metrics_sanity.py tests/test_quality_metrics.py
test-avx2: install
	ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 XAI_PROFILE=fast \
		$(PY) -m pytest $(AVX2_LEG) -p no:cacheprovider --durations=5

unit: install
	$(PY) -m pytest tests

## Execute every notebook (automatic profile) into build/, with HTML pages and build/run_<profile>.json.
run: install
	$(PY) tools/run_notebooks.py --out build

## The course site from the notebooks `make run` executed: build/site/index.html.
## Set XAI_COLAB_BASE (e.g. the Colab address of the repository's branch) for "Abrir en Colab".
site: install
	$(PY) tools/build_site.py --executed build --out build/site

## Student versions from nbgrader (course in build/nbgrader/, released notebooks in build/student/).
student: install
	$(PY) tools/grading.py release

## Autograde every new or changed submission in build/nbgrader/submitted/ on Dask (a local cluster,
## or ARGS="--scheduler tcp://host:8786"), with the integrity check and the feedback.
autograde: install
	$(PY) tools/grading.py autograde $(ARGS)

export: install
	$(PY) tools/grading.py export

## nbgrader's web grader of the course (open questions), venv on PATH (nbgrader calls alembic).
formgrader: install
	cd build/nbgrader && PATH="$(abspath $(VENV))/bin:$$PATH" nbgrader formgrader

## nbgrader round trip on every notebook: validate, solutions vs blank stubs, autograde, CSV.
grading-demo: install
	XAI_PROFILE=fast $(PY) tools/grading.py validate
	XAI_PROFILE=fast $(PY) tools/grading.py demo

## Trained checkpoints of the current profile (trains what is missing) + manifest, in build/checkpoints/.
checkpoints: install
	$(PY) tools/export_checkpoints.py --out build/checkpoints

lab: install
	$(VENV)/bin/jupyter lab notebooks/

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf build .pytest_cache
