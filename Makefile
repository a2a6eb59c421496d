PYTHON ?= python3

.PHONY: dev test lint bench catalogs dist deb

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

# The probe's messages: extract every _() and N_() from the code, merge into the Vietnamese catalog,
# compile it into the package (core/locale/vi/LC_MESSAGES/xaprobe.mo). Translate the new entries in between.
catalogs:
	$(PYTHON) -m babel.messages.frontend extract -k _ -k N_ -k ngettext:1,2 --no-wrap --sort-by-file \
		-o core/locale/xaprobe.pot core agent uploader
	test -f core/locale/vi/LC_MESSAGES/xaprobe.po || $(PYTHON) -m babel.messages.frontend init \
		-i core/locale/xaprobe.pot -d core/locale -D xaprobe -l vi
	$(PYTHON) -m babel.messages.frontend update -i core/locale/xaprobe.pot -d core/locale -D xaprobe -l vi \
		--no-wrap --ignore-obsolete
	$(PYTHON) -m babel.messages.frontend compile -d core/locale -D xaprobe -l vi --statistics
