# pitwall: every target is one line a newcomer can read. Run from the repository root.
# Python 3.11 (pyproject requires it); plain python3 where that is 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
DBT := $(BIN)/dbt --no-use-colors
DBT_ARGS := --project-dir dbt_project --profiles-dir .

.PHONY: setup venv data build refresh test test-fast lint docs docs-serve sql bench train ablation mlflow-ui clean

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

refresh:                        ## weekly: fetch the sources, validate, rebuild atomically, print what changed
	$(BIN)/python -m scripts.refresh

test-fast:                      ## unit tests and dbt unit tests, no real-data build (under a minute)
	$(BIN)/pytest -m "not slow" -n 2

test: lint                      ## everything: lint, then every test on the real data (under 5 minutes)
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder

lint:                           ## ruff, sqlfluff (SQL style, .sqlfluff) and dbt's deprecation check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint dbt_project --processes 2
	$(DBT) parse $(DBT_ARGS) --show-all-deprecations --warn-error

docs:                           ## dbt docs (lineage from raw CSVs to the model); serve with `make docs-serve`
	$(DBT) docs generate $(DBT_ARGS)

docs-serve: docs
	$(DBT) docs serve $(DBT_ARGS) --host 127.0.0.1 --port 8080

export Q OUT
sql:                            ## make sql Q="select ..." [OUT=file.csv|.parquet]: sandboxed read-only SQL; OUT saves the result
	$(BIN)/python scripts/sql.py $${OUT:+--output "$$OUT"} "$$Q"

bench:                          ## timings: dbt build, training CV, the study, serving (side by side)
	$(BIN)/python -m scripts.bench_features
	$(BIN)/python -m scripts.bench_train
	$(BIN)/python -m scripts.bench_tune
	$(BIN)/python -m scripts.bench_serve

train:                          ## rolling CV + baselines + holdout, tracked in MLflow (see --help)
	$(BIN)/python train.py

ablation:                       ## the forecast-quality levers one at a time, tracked in MLflow
	$(BIN)/python train.py ablation

mlflow-ui:                      ## browse runs at http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns.db --host 127.0.0.1 --port 5000

clean:                          ## remove the warehouse, dbt artefacts and caches (keeps raw data)
	rm -rf pitwall.duckdb pitwall.duckdb.wal dbt_project/target dbt_project/logs .pytest_cache
