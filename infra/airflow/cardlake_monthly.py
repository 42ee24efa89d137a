"""Airflow DAG: Cardlake's monthly pipeline on a Spark cluster, one task per stage.

Each task spark-submits the stage's job (``jobs/<stage>.py``, the same ``cardlake.cli`` entry
point as ``make monthly``, the cron/systemd timer and the Databricks bundle) through
``infra/standalone/submit.py``, which ships the project wheel, its Python environment and the
Delta jars. Put this file in the DAGs folder; set the Airflow Variables ``cardlake_home`` (a
checkout with its .venv), ``cardlake_spark_master`` and ``cardlake_lake_root``.

Exit codes: 0 done; 1 the data failed a check and 2 a usage error fail the task for a person to
look at; 5 (another run holds the lake's lock) fails it too, and the retries run it again later.
"""

from __future__ import annotations

import datetime as dt

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG  # type: ignore[no-redef]
    from airflow.operators.bash import BashOperator  # type: ignore[no-redef]

# The month just ended, from the run's logical date (the schedule fires on the 2nd).
MONTH = "{{ (logical_date.replace(day=1) - macros.timedelta(days=1)).strftime('%Y-%m') }}"
SUBMIT = (
    "cd {{ var.value.cardlake_home }} && "
    "CARDLAKE_LAKE_ROOT={{ var.value.cardlake_lake_root }} "
    ".venv/bin/python infra/standalone/submit.py "
    "--master {{ var.value.cardlake_spark_master }} "
)
STAGES = (
    ("bronze", "jobs/bronze_ingest.py"),
    ("silver", "jobs/build_silver.py"),
    ("gold", "jobs/build_gold.py"),
    ("ml", "jobs/run_pipeline.py --only ml"),
    ("analytics", "jobs/run_pipeline.py --only analytics"),
)

with DAG(
    dag_id="cardlake_monthly",
    description="Landing to gold and the models for the month just ended",
    schedule="0 6 2 * *",
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,  # one run writes the lake at a time
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=15)},
    tags=["cardlake"],
) as dag:
    previous = None
    for stage, job in STAGES:
        task = BashOperator(
            task_id=stage,
            bash_command=f"{SUBMIT}{job} --env cluster --month {MONTH}",
        )
        if previous is not None:
            previous >> task
        previous = task
