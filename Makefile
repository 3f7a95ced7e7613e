# The README's commands. Each creates the virtual environment (.venv) on first use.
#   make          train a DCGAN headlessly with the training CLI (the main job), into
#                 runs/DATASET/MODEL; ARGS=--resume continues it, ARGS=--overwrite replaces it
#   make test     every notebook executed by nbmake in smoke mode, then the tests
#   make lessons  execute every lesson in full mode; executed copies go to runs/executed/
#   make site     the lessons as a static web site in site/ (executes changed lessons first)
#   make bench    the loader, speed and dashboard benchmarks (print figures; minutes)
#   make colab-check  every lesson in both Colab-like runtimes (Colab's default, Python 3.13,
#                 and its previous 26.07 runtime, Python 3.12); `make test` runs the default one
#   make lint     ruff

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
EPOCHS ?= 5
ARGS ?=
MODEL ?= dcgan

.PHONY: train test lessons site bench lint colab-check clean-venv

train: $(STAMP)
	$(PY) -m gan_helpers train --model $(MODEL) --epochs $(EPOCHS) $(ARGS)

# nbmake executes copies of the lessons in the site's smoke folder and saves their outputs there
# (--overwrite), so tests/harness/test_site.py builds the site from these executions, not new ones.
SMOKE_EXECUTED := build/site-smoke/executed

test: $(STAMP)
	$(PY) -m ruff check .
	rm -rf $(SMOKE_EXECUTED) && mkdir -p $(SMOKE_EXECUTED)
	cp notebooks/[0-9][0-9]_*.ipynb $(SMOKE_EXECUTED)/
	GAN_SMOKE=1 $(PY) -m pytest --nbmake --overwrite --nbmake-timeout=900 -p no:cacheprovider \
		$(SMOKE_EXECUTED)
	GAN_SMOKE=1 $(PY) -m pytest tests

lessons: $(STAMP)
	mkdir -p runs/executed
	$(PY) -m jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=-1 \
		--output-dir runs/executed notebooks/*.ipynb

site: $(STAMP)
	$(PY) tools/site.py

bench: $(STAMP)
	$(PY) benchmarks/bench_loader.py
	$(PY) benchmarks/bench_speed.py --explore
	$(PY) benchmarks/bench_dashboard.py

colab-check: $(STAMP)
	COLAB_RUNTIMES=all $(PY) -m pytest -p no:cacheprovider tests/harness/test_colab_runtime.py

lint: $(STAMP)
	$(PY) -m ruff check .

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
