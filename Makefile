PYTHON ?= python3

.PHONY: test lint bench

test:
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check .

bench:
	$(PYTHON) bench/planner_sim.py --target 300 --days 30 --offline-days 3 --budget-mb 0 --seed 1
	$(PYTHON) bench/ingest.py
	sudo $(PYTHON) bench/accuracy.py
