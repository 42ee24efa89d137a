# Cardlake's command line. `make help` lists the targets.
# Every target that runs Python sets up .venv first (rebuilt when pyproject.toml changes).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ENV ?= local
MONTH ?=
MONTH_ARG := $(if $(MONTH),--month $(MONTH),)
PYTEST_ARGS ?=

.PHONY: help setup run test test-services test-heavy check lint format typecheck generate bronze silver gold ml sql sql-server \
        mlflow-ui train-segmentation train-engagement train-fraud train-risk train-propensity bench-tables \
        bench-bronze bench-bronze-1gb bench-er bench-gold bench-synth clean clean-lake java-check

help: ## List every target with a one-line description
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo ""
	@echo "  Variables: ENV=local|test|cluster  MONTH=YYYY-MM  PYTEST_ARGS=...  TEST_WORKERS=0"

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "cardlake: $(PYTHON) not found; install Python 3.11+"; exit 3; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) java-check ## Create .venv from pyproject.toml (reused while unchanged) and check Java

java-check: $(STAMP)
	@$(PY) -m cardlake.spark
	@$(PY) -m cardlake.class_archive

run: setup ## Run the whole pipeline end to end on the embedded default (local Spark, ./lake)
	$(PY) jobs/run_pipeline.py --env $(ENV) $(MONTH_ARG)

# TEST_WORKERS=N: N pytest-xdist workers, each with its own SparkSession; tests are grouped so
# that one worker builds the shared lake and each module's brokers and servers start once
# (tests/conftest.py). 0, one process, on two cores: two workers took 41 min against 33 there.
TEST_WORKERS ?= 0
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)

# What the real-service tests need on a fresh machine (Debian's slapd, Chromium and poppler,
# Kafka's jars, the dashboard's Plotly bundle): each .ci/setup.d script installs its part when
# missing and does nothing otherwise. A part that cannot be installed (no root or sudo, no
# registry) is named in one line; its tests then skip, saying what is missing.
test-services: ## Install what the broker, directory and browser tests need (.ci/setup.d, idempotent)
	@for step in .ci/setup.d/*.sh; do \
		bash "$$step" || echo "test-services: $$step failed; the tests that need it will skip"; \
	done

test: setup test-services dashboard-assets ## Run the test suite (TEST_WORKERS=N: on N workers; delta-spark tests skip with a reason where its jars can't load)
	$(PY) -m pytest -m "not heavy" --durations=25 $(XDIST) $(PYTEST_ARGS)

test-heavy: setup ## The tests marked heavy: ER on a whole world, the contract on S3, gold races on delta-rs, the analysts' figures on the default data
	$(PY) -m pytest -m heavy $(PYTEST_ARGS)

check: lint typecheck ## Lint (ruff) and type-check (mypy) the code

CODE = lib jobs tests bench notebooks infra

lint: setup
	$(VENV)/bin/ruff check $(CODE)
	$(VENV)/bin/ruff format --check $(CODE)

format: setup ## Lay the code out with ruff format (make check fails on any other layout)
	$(VENV)/bin/ruff format $(CODE)

typecheck: setup
	$(VENV)/bin/mypy

generate: setup ## Generate the synthetic landing zone and ground truth (MONTH= for one drop)
	$(PY) jobs/generate_data.py --env $(ENV) $(MONTH_ARG)

bronze: setup ## Ingest the landing zone into bronze (MONTH= for one month)
	$(PY) jobs/bronze_ingest.py --env $(ENV) $(MONTH_ARG)

silver: setup ## Build silver from bronze: cleaned tables, resolved customers, stable keys
	$(PY) jobs/build_silver.py --env $(ENV) $(MONTH_ARG)

gold: setup ## Build gold from silver: star schema, monthly features, KPIs (MONTH= for one month)
	$(PY) jobs/build_gold.py --env $(ENV) $(MONTH_ARG)

ml: setup ## Train and score every model (segments, engagement, fraud, risk), tracked in MLflow
	$(PY) jobs/run_pipeline.py --env $(ENV) --only ml

train-segmentation: setup ## K-means segments (bisecting K-means compared) into gold.customer_segments
	$(PY) jobs/train_segmentation.py --env $(ENV)

train-engagement: setup ## Disengagement models, scores and the test/control experiment
	$(PY) jobs/train_engagement.py --env $(ENV)

train-fraud: setup ## Fraud models and gold.fraud_alerts
	$(PY) jobs/train_fraud.py --env $(ENV)

train-risk: setup ## Risk scorecard with reason codes and gold.customer_risk
	$(PY) jobs/train_risk.py --env $(ENV)

train-propensity: setup ## Cross-sell propensity, gold.customer_propensity and gold.campaign_targets
	$(PY) jobs/train_propensity.py --env $(ENV)

mlflow-ui: setup ## Browse and compare MLflow runs on http://127.0.0.1:5000
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(abspath lake)/_ops/mlflow.db \
		--default-artifact-root $(abspath lake)/_ops/mlartifacts --host 127.0.0.1 --port 5000

sql-server: setup ## JDBC/ODBC server on 127.0.0.1:10000, LDAP login, masked views by role (Ctrl-C stops it)
	$(PY) jobs/sql_server.py --env $(ENV) $(if $(LDAP_URL),--ldap-url $(LDAP_URL))

.PHONY: sql-directory
sql-directory: setup ## A throwaway LDAP directory on 127.0.0.1:3890 with one user per SQL role, to try sql-server
	$(PY) jobs/sql_directory.py --env $(ENV)

.PHONY: bench-sql
bench-sql: setup ## BI query over JDBC (beeline): gold on Delta vs plain Parquet, ratio per engine
	$(PY) bench/bench_sql.py --transactions 10000000 --repeat 5

sql: setup ## Interactive Spark SQL shell with bronze, silver and gold tables by name
	$(PY) jobs/sql_shell.py --env $(ENV)

bench-tables: setup ## Table layer write/read vs plain Parquet with Spark (ratio)
	$(PY) bench/bench_tables.py

bench-bronze: setup ## Bronze ingest throughput per format vs plain Spark reads (ratio)
	$(PY) bench/bench_bronze.py

bench-bronze-1gb: setup ## Bronze vs a plain Spark read per format at ~1 GB of landing data (issue 18: within 2x)
	$(PY) bench/bench_bronze.py --size-gb 1 --profile large

bench-er: setup ## Resolve 100,000 person records (scored in DuckDB and on Spark) vs plain Splink on both
	$(PY) bench/bench_er.py --records 100000 --peer spark --peer-timeout 1800
	$(PY) bench/bench_er.py --records 100000 --peer duckdb --scoring duckdb

bench-gold: setup ## Monthly features for 10M transactions vs DuckDB (ratio), incremental vs full
	$(PY) bench/bench_gold.py --transactions 10000000

bench-synth: setup ## Generator time and peak memory for 10 million transactions
	$(PY) bench/bench_synth.py --transactions 10000000

clean-lake: ## Delete the local lake (./lake) and generated data (./data)
	rm -rf lake data spark-warehouse metastore_db derby.log

clean: clean-lake ## Also delete .venv, caches and this install's class archive
	-@test -x $(PY) && $(PY) -c "from cardlake import class_archive; class_archive.remove()"
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(PACKED_ENV)

# --- Fraud stream (issue 12): Kafka broker, the streaming job, its benchmark ---------------
KAFKA_DIR ?= $(abspath lake)/_kafka
KAFKA_PORT ?= 9092
.PHONY: kafka-up kafka-down

kafka-up: setup ## Kafka (KRaft, one node) on 127.0.0.1:9092 from Maven-resolved jars
	$(PY) -m cardlake.stream.broker up --dir $(KAFKA_DIR) --port $(KAFKA_PORT)

kafka-down: setup ## Stop the broker started by kafka-up
	$(PY) -m cardlake.stream.broker down --dir $(KAFKA_DIR)

# --- Off the laptop (issue 16): standalone cluster, tracking server ------------------------
CLUSTER_STATE ?= /tmp/cardlake-cluster
CLUSTER_WORKERS ?= 2
WORKER_MEMORY ?= 2g
SPARK_MASTER ?= spark://127.0.0.1:7077
MLFLOW_PORT ?= 5000
# shared: executors use this machine's .venv (same path on every node); packed: a venv-pack
# archive of the project's dependencies travels with the job (built on first use).
PYTHON_ENV ?= shared
PACKED_ENV ?= $(HOME)/.cache/cardlake/executor-env.tar.gz
MLFLOW_STORE ?= $(abspath lake)/_ops/mlflow-server
.PHONY: cluster-up cluster-down run-cluster mlflow-server

cluster-up: setup ## Spark standalone master and 2 workers on 127.0.0.1:7077 (pyspark's spark-class)
	$(PY) infra/standalone/cluster.py up --state $(CLUSTER_STATE) --workers $(CLUSTER_WORKERS) \
		--worker-memory $(WORKER_MEMORY)

cluster-down: setup ## Stop the master and workers started by cluster-up
	$(PY) infra/standalone/cluster.py down --state $(CLUSTER_STATE)

run-cluster: setup ## spark-submit the pipeline to $(SPARK_MASTER): project wheel, env, Delta jars
	CARDLAKE_LAKE_ROOT=$${CARDLAKE_LAKE_ROOT:-$(abspath lake)} \
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-http://127.0.0.1:$(MLFLOW_PORT)} \
	$(PY) infra/standalone/submit.py --master $(SPARK_MASTER) --executor-memory 1g \
		--python-env $(PYTHON_ENV) $(if $(filter packed,$(PYTHON_ENV)),--packed-env $(PACKED_ENV)) \
		jobs/run_pipeline.py --env cluster $(MONTH_ARG)

mlflow-server: setup ## MLflow tracking server on 127.0.0.1:5000 (SQLite, proxied artefacts)
	$(PY) infra/mlflow/server.py --store $(MLFLOW_STORE) --port $(MLFLOW_PORT)

S3_STATE ?= /tmp/cardlake-s3
S3_PORT ?= 9000
.PHONY: s3-up s3-down

s3-up: setup ## Local S3-compatible server (moto) on 127.0.0.1:9000 with bucket cardlake
	$(PY) infra/s3/server.py up --state $(S3_STATE) --port $(S3_PORT)

s3-down: setup ## Stop the S3 server started by s3-up
	$(PY) infra/s3/server.py down --state $(S3_STATE)

.PHONY: bench-cluster
bench-cluster: setup ## Gold features for 10M transactions on local[2] vs a 2-worker cluster (ratio)
	$(PY) bench/bench_cluster.py --transactions 10000000

.PHONY: bench-scale
bench-scale: setup ## Landing to gold at growing sizes: time and peak memory per size (hours at the top)
	$(PY) bench/bench_scale.py --customers 2000 11000 55000

# --- Notebooks (issue 19) -------------------------------------------------------------------
NOTEBOOK_PORT ?= 8888
.PHONY: notebooks

notebooks: setup ## Jupyter on 127.0.0.1:8888 with the project's environment as the kernel
	@test -x $(VENV)/bin/jupyter-lab || $(PY) -m pip install --quiet -c constraints.txt -e '.[dev,notebooks]'
	$(VENV)/bin/jupyter lab --ip 127.0.0.1 --port $(NOTEBOOK_PORT) --no-browser \
		--notebook-dir notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

# --- Dashboard and reports (issue 13) -------------------------------------------------------
DASHBOARD_HOST ?= 127.0.0.1
DASHBOARD_PORT ?= 8050
DASHBOARD_ROLE ?= analyst
.PHONY: dashboard dashboard-assets report bench-dashboard

# the dashboard's Plotly.js, only the trace types it draws (infra/plotly); offline, the dashboard
# falls back to Dash's own bundle, so a failed build is reported and does not stop the target
dashboard-assets: ## Build the dashboard's Plotly.js bundle from npm into ~/.cache/cardlake/plotly
	@bash infra/plotly/build.sh || echo "dashboard-assets: not built; the dashboard uses Dash's own Plotly.js"

dashboard: setup dashboard-assets ## Dashboard on http://127.0.0.1:8050 over the lake (ROLE: DASHBOARD_ROLE=analyst|privileged)
	$(PY) jobs/dashboard.py --env $(ENV) --host $(DASHBOARD_HOST) --port $(DASHBOARD_PORT) \
		--role $(DASHBOARD_ROLE)

report: setup ## Monthly executive report (HTML + PDF) and source profiles under reports/ (MONTH=YYYY-MM)
	$(PY) jobs/report.py --env $(ENV) $(MONTH_ARG)

bench-dashboard: setup dashboard-assets ## Time to first render of each dashboard page (goal <= 1.5 s)
	$(PY) bench/bench_dashboard.py
.PHONY: stream stream-produce bench-stream
STREAM_SOURCE ?= files

stream: setup ## Fraud stream: events (files, or STREAM_SOURCE=kafka) to gold.fraud_alerts_live
	STREAM_SOURCE=$(STREAM_SOURCE) $(PY) jobs/stream.py --env $(ENV)

stream-produce: setup ## Replay a month as card events (RATE=, EVENTS=) to files or the topic
	$(PY) jobs/stream_produce.py --env $(ENV) --source $(STREAM_SOURCE) --rate $(or $(RATE),100) \
		--max-events $(or $(EVENTS),2000)

bench-stream: setup ## Event-sent to alert-committed latency p50/p95/p99 and top rate (Kafka)
	$(PY) bench/bench_stream.py

# --- the harness: every stage of one month, one run at a time (issues #16, #18) ---------------
.PHONY: monthly
WAIT ?=
monthly: setup ## Every stage for one month (MONTH=YYYY-MM; WAIT=seconds waits for a running run)
	@test -n "$(MONTH)" || { echo "cardlake: usage: make monthly MONTH=YYYY-MM"; exit 2; }
	$(VENV)/bin/cardlake run --env $(ENV) --month $(MONTH) $(if $(WAIT),--wait $(WAIT),)

# -- governance (issue 14): maintenance, dictionary ------------------------------------------
.PHONY: maintain dictionary

maintain: setup ## Compact every table and VACUUM it with its layer's retention (conf/governance.yaml; WAIT=seconds)
	$(PY) jobs/maintain.py --env $(ENV) $(if $(WAIT),--wait $(WAIT),)

dictionary: setup ## Write _ops.data_dictionary and docs/data_dictionary.md from conf/governance.yaml
	$(PY) jobs/maintain.py --env $(ENV) --dictionary $(if $(WAIT),--wait $(WAIT),)

.PHONY: lineage
lineage: setup ## Upstream lineage graph of a table from _ops.lineage (TABLE=gold.x)
	@test -n "$(TABLE)" || { echo "cardlake: usage: make lineage TABLE=gold.kpi_monthly"; exit 2; }
	$(PY) -m cardlake.governance.lineage --env $(ENV) $(TABLE)
