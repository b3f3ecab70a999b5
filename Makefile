# snapcdc: `make demo` and `make test` work on a fresh machine; they create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml devkit/pyproject.toml | cksum | cut -d' ' -f1)
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: install demo unit test test-all lint checkov format synth layers bench bench-sizing bench-spark soak deploy clean

# checkov pins boto3/botocore/packaging below the project's pins: it lives in its own venv, made here.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

$(STAMP): pyproject.toml devkit/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e ./devkit
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)
	rm -f $(CHECKOV_VENV)/.installed-*
	touch $(CHECKOV_STAMP)

demo: $(STAMP)
	$(BIN)/snapcdc demo --out demo-output

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/core/python/snapcdc devkit/snapcdc_dev lambdas stacks app.py
	$(MAKE) --no-print-directory checkov

# checkov's CloudFormation checks on the synthesized stack, offline; any failed check fails the target.
checkov: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/python -m stacks.checkov_scan --checkov $(CHECKOV_VENV)/bin/checkov

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The inner loop: ruff, mypy and the unit tier (no synthesis, no moto server, no Spark), in under a minute.
unit: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/core/python/snapcdc devkit/snapcdc_dev lambdas stacks app.py
	$(BIN)/pytest -q -n 2 tests/unit

test: lint
	$(BIN)/pytest -n 2 --dist loadfile tests

test-all: lint
	$(BIN)/pytest -n 2 --dist loadfile -m '' tests

synth: $(STAMP)
	rm -rf cdk.out
	CDK_OUTDIR=cdk.out $(BIN)/python app.py
	@echo "templates written to cdk.out/ (kaggle layer: placeholder; make deploy uses the built one)"

# The extract function's kaggle layer and the CDC function's iceberg layer: pip wheels for arm64/py3.12,
# no Docker; rebuilt only when layers/<name>/requirements.txt changes (cached in layers/<name>/build/<hash>/).
layers: $(STAMP)
	$(BIN)/python layers/build_layers.py

bench: $(STAMP)
	$(BIN)/python -m bench.cold_start_bench --strict
	$(BIN)/python -m bench.engine_bench

# The engine alone on a 10M-row table (peak memory against the CDC function's size); not in docs.
bench-sizing: $(STAMP)
	$(BIN)/python -m bench.engine_bench --rows 10000000 --repetitions 1 --only engine_first,engine_parquet,engine_csv

# One Iceberg run's bytes written and requests at 1M and 10M rows (docs/iceberg.md, "How rows get there,
# and what a run costs").
bench-iceberg: $(STAMP)
	$(BIN)/python -m bench.iceberg_bench --rows 1000000 --rows 10000000

# The Spark engine on a standalone cluster on 127.0.0.1 (2 workers x 1 core, 3 GB; driver 1 GB) at 1M, 10M
# and 50M rows, the Lambda engine's rows compared up to 10M; exit 1 if the driver's Python passes 600 MiB
# or rows differ (docs/scale.md).
bench-spark: $(STAMP)
	$(BIN)/python -m bench.spark_bench

soak: $(STAMP)
	$(BIN)/python -m bench.soak

# The pinned CDK CLI (package-lock.json); a stamp, since npm keeps the package's own file times.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

deploy: $(STAMP) node_modules/.installed layers
	node_modules/.bin/cdk deploy --app "$(BIN)/python app.py" -c build_layers=true

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) cdk.out demo-output node_modules layers/kaggle/build layers/iceberg/build
