# napari-selfdenoise: the two quick-start targets and their helpers.
#   make demo   install everything into .venv and run the headless demo
#   make test   install everything (with test tools and Xvfb's libraries) and run the suite
#   make benchmarks  rerun every benchmark (about 3 h on 2 cores) and rewrite docs/benchmarks.md
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install install-test system-deps demo test lint docs screenshots benchmarks clean

install:
	bash scripts/setup.sh all

install-test:
	bash scripts/setup.sh testing

system-deps:
	bash scripts/system-deps.sh

demo: install
	$(VENV)/bin/selfdenoise demo --out demo_out

test: install-test system-deps
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts
	$(VENV)/bin/mypy src
	$(PY) -m pytest -q

docs: install-test
	$(VENV)/bin/mkdocs build --strict

screenshots: install-test system-deps
	$(PY) scripts/screenshots.py

benchmarks: install
	test -x benchmarks/_work/careamics-venv/bin/python || bash scripts/careamics-env.sh
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) site demo_out .pytest_cache
