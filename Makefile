PYTHON ?= python3

.PHONY: test lint bench

test:
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check .

bench:
	$(PYTHON) bench/planner_sim.py --target 300 --days 30 --offline-days 3 --budget-mb 3000 --seed 1
	$(PYTHON) bench/footprint.py --minutes 10
	$(PYTHON) bench/ingest.py
	$(PYTHON) bench/report_scale.py
	$(PYTHON) bench/soak.py --kills 1000
	sudo $(PYTHON) bench/accuracy.py
