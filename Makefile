# Two commands matter on a fresh machine: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test check draw bench clean

$(STAMP): setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,diagram,embedded]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) run.py demo

test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

check: $(STAMP)
	$(PY) run.py check flows

draw: $(STAMP)
	for f in flows/*.yaml; do $(PY) run.py draw $$f --format markdown --output docs/diagrams/$$(basename $$f .yaml).md; done

bench: $(STAMP)
	$(PY) scripts/bench_engine.py

clean:
	rm -rf $(VENV) *.egg-info
