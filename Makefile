# pitwall: every target is one line a newcomer can read. Run from the repository root.
# Python 3.11 (pyproject requires it); plain python3 where that is 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
DBT := $(BIN)/dbt --no-use-colors
DBT_ARGS := --project-dir dbt_project --profiles-dir .

.PHONY: setup venv data build test lint docs docs-serve sql bench train ablation mlflow-ui clean

setup: venv data build          ## environment, raw data, warehouse

venv: $(BIN)/.installed         ## virtual environment from pyproject.toml

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

data:                           ## load raw CSVs from $$PITWALL_DATA_SOURCE, practice from $$PITWALL_PRACTICE_SOURCE
	$(BIN)/python scripts/load_data.py
	$(BIN)/python -m scripts.load_practice

build:                          ## dbt build into a fresh file, swapped in only if everything passes
	$(BIN)/python -m scripts.build_warehouse

test: lint                      ## every test: ruff, dbt parse, pytest (loader, dbt build, point-in-time)
	$(BIN)/pytest

lint:                           ## ruff and dbt's deprecation check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(DBT) parse $(DBT_ARGS) --show-all-deprecations --warn-error

docs:                           ## dbt docs (lineage from raw CSVs to the model); serve with `make docs-serve`
	$(DBT) docs generate $(DBT_ARGS)

docs-serve: docs
	$(DBT) docs serve $(DBT_ARGS) --host 127.0.0.1 --port 8080

export Q
sql:                            ## make sql Q="select ..." runs read-only SQL on the warehouse
	$(BIN)/python scripts/sql.py "$$Q"

bench:                          ## timings: dbt build, feature SQL, training CV
	$(BIN)/python -m scripts.bench_features
	$(BIN)/python -m scripts.bench_train

train:                          ## rolling CV + baselines + holdout, tracked in MLflow (see --help)
	$(BIN)/python train.py

ablation:                       ## the forecast-quality levers one at a time, tracked in MLflow
	$(BIN)/python train.py ablation

mlflow-ui:                      ## browse runs at http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns.db --host 127.0.0.1 --port 5000

clean:                          ## remove the warehouse, dbt artefacts and caches (keeps raw data)
	rm -rf pitwall.duckdb pitwall.duckdb.wal dbt_project/target dbt_project/logs .pytest_cache
