PYTHON ?= python3

.PHONY: dev test lint bench dist deb

# An editable install whose imports resolve to this working tree (setuptools' strict mode links each
# file, so mypy and pytest see the checkout). Run it again after adding a module.
dev:
	$(PYTHON) -m pip install -e '.[test]' --config-settings editable_mode=strict

test:
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy -p xaprobe

# wheel and sdist in dist/
dist:
	rm -rf dist
	$(PYTHON) -m build --outdir dist .

# xaprobe_<v>_all.deb and xaprobe-collector_<v>_amd64.deb in dist/, from the wheel, with their dependencies'
# wheels (fetched with pip download into build/deb) inside
deb: dist
	$(PYTHON) packaging/build_deb.py --dist dist --out dist --build build/deb

bench:
	$(PYTHON) bench/planner_sim.py --target 300 --days 30 --offline-days 3 --budget-mb 3000 --seed 1
	$(PYTHON) bench/footprint.py --minutes 10
	$(PYTHON) bench/ingest.py
	$(PYTHON) bench/report_scale.py
	$(PYTHON) bench/soak.py --kills 1000
	sudo $(PYTHON) bench/accuracy.py
