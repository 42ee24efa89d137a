"""Lineage: OpenLineage run events (the ``openlineage-python`` client's model) in ``_ops.lineage``.

Work is wrapped in :func:`track`::

    with lineage.track(tables, "gold", inputs=["silver.*"]):
        ...

which records a START event, then COMPLETE (or FAIL) with the inputs' Delta versions as the run
found them, the outputs' versions after it, and column-level lineage for the outputs that have
it (:data:`COLUMN_LINEAGE`). Without ``outputs``, the outputs are the lake's tables whose version
changed during the run. :func:`cardlake.pipeline.run_stages` wraps every stage that needs the
lake this way. ``python -m cardlake.governance.lineage gold.x`` (``make lineage TABLE=gold.x``)
prints the upstream graph of a table from the recorded events; it reads the Delta table with
delta-rs, so it needs no Spark.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import DatasetFacet
from openlineage.client.facet_v2 import column_lineage_dataset as cl
from openlineage.client.facet_v2 import dataset_version_dataset as dv
from openlineage.client.serde import Serde
from pyspark.sql import types as T

from cardlake.tables.base import TableError
from cardlake.tables.catalog import committed_tables
from cardlake.tables.layer import LAYERS

if TYPE_CHECKING:
    from cardlake.tables import Tables

log = logging.getLogger("cardlake.lineage")
LINEAGE_TABLE = "_ops.lineage"
NAMESPACE = "cardlake"
PRODUCER = "https://github.com/cardlake/cardlake/tree/main/lib/cardlake/governance"
_DATASETS = T.ArrayType(
    T.StructType(
        [
            T.StructField("name", T.StringType()),
            T.StructField("version", T.LongType()),
        ]
    )
)
SCHEMA = T.StructType(
    [
        T.StructField("event_time", T.TimestampType(), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("job_name", T.StringType(), False),
        T.StructField("event_type", T.StringType(), False),
        T.StructField("inputs", _DATASETS, False),
        T.StructField("outputs", _DATASETS, False),
        T.StructField("event", T.StringType(), False),  # the OpenLineage event as JSON
    ]
)

# Column-level lineage of gold features: output column -> (input table, input columns).
_TX = "silver.transactions"
_SNAP = "silver.customer_snapshots"
COLUMN_LINEAGE: Mapping[str, Mapping[str, tuple[tuple[str, tuple[str, ...]], ...]]] = {
    "gold.customer_monthly_features": {
        "tx_count": ((_TX, ("transaction_id", "ts")),),
        "completed_count": ((_TX, ("transaction_id", "state")),),
        "failed_count": ((_TX, ("transaction_id", "state")),),
        "spend_usd": ((_TX, ("amount_usd", "state", "direction")),),
        "avg_spend_usd": ((_TX, ("amount_usd", "state", "direction")),),
        "atm_rate": ((_TX, ("channel",)),),
        "online_rate": ((_TX, ("channel",)),),
        "cross_border_rate": ((_TX, ("is_cross_border",)),),
        "night_rate": ((_TX, ("is_night",)),),
        "discretionary_share": ((_TX, ("amount_usd", "mcc")),),
        "recency_days": ((_TX, ("ts", "state")),),
        "monetary_12m_usd": ((_TX, ("amount_usd", "state")),),
        "age": ((_SNAP, ("date_of_birth",)),),
        "tenure_months": ((_SNAP, ("join_date",)),),
        "plan_type": ((_SNAP, ("plan_type",)),),
        "country": ((_SNAP, ("country",)),),
        "credit_score": ((_SNAP, ("credit_score",)),),
        "notifications_sent": (("silver.marketing_monthly", ("notifications_sent",)),),
        "service_contacts": (("silver.interactions", ("interaction_id", "opened_at")),),
    },
}


def _version(tables: Tables, name: str) -> int | None:
    # Datasets outside the lake's layers (landing files) have no Delta version.
    if not _in_lake(name) or not tables.exists(name):
        return None
    return tables.version(name)


def _in_lake(name: str) -> bool:
    return name.partition(".")[0] in LAYERS


def lake_versions(tables: Tables) -> dict[str, int]:
    """Every Delta table of the lake (``_ops.lineage`` aside) with its latest version (the
    catalog's listing of a local folder or an object store; the layer gives each version)."""
    versions: dict[str, int] = {}
    for layer, table, _path in committed_tables(tables.lake_root, LAYERS, spark=tables.spark):
        name = f"{layer}.{table}"
        if name == LINEAGE_TABLE:
            continue
        try:
            versions[name] = tables.version(name)
        except TableError:  # committed, but not a table this engine opens: no version to note
            continue
    return versions


def _datasets(names: Sequence[str], versions: Mapping[str, int]) -> dict[str, int | None]:
    """``names`` as datasets: ``layer.*`` is every table of the layer; tables not in
    ``versions`` (absent) are left out; names outside the lake (landing files) have no version.
    """
    out: dict[str, int | None] = {}
    for name in names:
        layer, _, table = name.partition(".")
        if not _in_lake(name):
            out[name] = None
        elif table == "*":
            out.update({n: v for n, v in versions.items() if n.partition(".")[0] == layer})
        elif name in versions:
            out[name] = versions[name]
    return out


def _facets(version: int | None) -> dict[str, DatasetFacet]:
    return {} if version is None else {"version": dv.DatasetVersionDatasetFacet(str(version))}


def _column_lineage(output: str) -> dict[str, DatasetFacet]:
    mapping = COLUMN_LINEAGE.get(output)
    if not mapping:
        return {}
    fields = {
        column: cl.Fields(
            inputFields=[
                cl.InputField(NAMESPACE, table, c) for table, columns in sources for c in columns
            ]
        )
        for column, sources in mapping.items()
    }
    return {"columnLineage": cl.ColumnLineageDatasetFacet(fields=fields)}


def event(
    *,
    job: str,
    run_id: str,
    state: RunState,
    inputs: Mapping[str, int | None],
    outputs: Mapping[str, int | None],
    at: dt.datetime,
) -> RunEvent:
    """One OpenLineage run event over Delta tables named ``layer.table`` with their versions."""
    return RunEvent(
        eventTime=at.isoformat(),
        producer=PRODUCER,
        eventType=state,
        run=Run(runId=run_id),
        job=Job(namespace=NAMESPACE, name=job),
        inputs=[InputDataset(NAMESPACE, n, facets=_facets(v)) for n, v in sorted(inputs.items())],
        outputs=[
            OutputDataset(NAMESPACE, n, facets={**_facets(v), **_column_lineage(n)})
            for n, v in sorted(outputs.items())
        ],
    )


def record(tables: Tables, run_event: RunEvent) -> None:
    """Appends the event to ``_ops.lineage``."""

    def datasets(
        items: Sequence[InputDataset] | Sequence[OutputDataset] | None,
    ) -> list[tuple[str, int | None]]:
        out = []
        for d in items or []:
            facet = (d.facets or {}).get("version")
            version = (
                int(facet.datasetVersion)
                if isinstance(facet, dv.DatasetVersionDatasetFacet)
                else None
            )
            out.append((d.name, version))
        return out

    at = dt.datetime.fromisoformat(run_event.eventTime).astimezone(dt.UTC).replace(tzinfo=None)
    row = (
        at,
        run_event.run.runId,
        run_event.job.name,
        str(run_event.eventType.value) if run_event.eventType else "OTHER",
        datasets(run_event.inputs),
        datasets(run_event.outputs),
        Serde.to_json(run_event),
    )
    tables.append(LINEAGE_TABLE, tables.spark.createDataFrame([row], SCHEMA))


@contextmanager
def track(
    tables: Tables, job: str, *, inputs: Sequence[str], outputs: Sequence[str] | None = None
) -> Iterator[str]:
    """Records START, then COMPLETE or FAIL, around the body; yields the run id.

    Two appends to ``_ops.lineage`` per run, whatever the number of tables.

    Args:
        tables: the lake the events go to.
        job: the job's name (a stage's name).
        inputs: what the job reads: ``layer.table``, ``layer.*`` (every table of the layer)
            or a dataset outside the lake (``landing.<source>``, recorded without a version).
            Tables absent when the run starts are left out; each table's version is the one
            the run started from.
        outputs: what the job writes, with their versions after the run; None for the tables
            whose Delta version changed during the run (another process writing the lake
            meanwhile would be counted too; the lake lock keeps runs apart).

    A FAIL event is recorded for an exception out of the body, with the tables the run had
    written by then; the exception then propagates unchanged, even when the FAIL event
    cannot be recorded (that is logged). A KeyboardInterrupt records nothing more.
    """
    run_id = str(uuid.uuid4())
    whole_lake = outputs is None or any(n.partition(".")[2] == "*" for n in inputs)
    if whole_lake:
        before = lake_versions(tables)
    else:
        before = {n: v for n in inputs if (v := _version(tables, n)) is not None}
    read = _datasets(inputs, before)

    def finished(state: RunState) -> RunEvent:
        written: dict[str, int | None]
        if outputs is None:
            after = lake_versions(tables)
            written = {n: v for n, v in after.items() if before.get(n) != v}
        else:
            written = {n: _version(tables, n) for n in outputs}
        return event(
            job=job,
            run_id=run_id,
            state=state,
            inputs=read,
            outputs=written,
            at=dt.datetime.now(dt.UTC),
        )

    record(
        tables,
        event(
            job=job,
            run_id=run_id,
            state=RunState.START,
            inputs=read,
            outputs={},
            at=dt.datetime.now(dt.UTC),
        ),
    )
    try:
        yield run_id
    except Exception:
        try:
            record(tables, finished(RunState.FAIL))
        except Exception:
            log.warning("%s failed, and its FAIL event could not be recorded", job, exc_info=True)
        raise
    record(tables, finished(RunState.COMPLETE))


def upstream(rows: Sequence[Mapping[str, object]], table: str) -> dict[str, set[str]]:
    """``table``'s upstream graph from completed events: each dataset to its direct inputs."""
    parents: dict[str, set[str]] = {}
    for row in rows:
        if row["event_type"] != "COMPLETE":
            continue
        for output in row["outputs"]:  # type: ignore[attr-defined]
            parents.setdefault(output["name"], set()).update(i["name"] for i in row["inputs"])  # type: ignore[attr-defined]
    graph: dict[str, set[str]] = {}
    todo = [table]
    while todo:
        name = todo.pop()
        if name in graph:
            continue
        graph[name] = parents.get(name, set())
        todo.extend(sorted(graph[name]))
    return graph


def render(graph: Mapping[str, set[str]], table: str) -> str:
    """The graph as an indented tree, ``table`` at the top, each dataset's inputs below it."""
    lines: list[str] = []
    expanded: set[str] = set()

    def walk(name: str, depth: int, path: frozenset[str]) -> None:
        again = name in expanded or name in path
        lines.append(
            f"{'  ' * depth}{'<- ' if depth else ''}{name}{' (see above)' if again else ''}"
        )
        if again:
            return
        expanded.add(name)
        for parent in sorted(graph.get(name, ())):
            walk(parent, depth + 1, path | {name})

    walk(table, 0, frozenset())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m cardlake.governance.lineage gold.x [--env local] [--lake-root DIR]``."""
    from deltalake import DeltaTable

    from cardlake.config import load_config

    parser = argparse.ArgumentParser(description="Print the upstream lineage graph of a table")
    parser.add_argument("table")
    parser.add_argument("--env")
    parser.add_argument("--lake-root")
    args = parser.parse_args(argv)
    root = args.lake_root or load_config(args.env).paths.lake_root
    path = f"{root.rstrip('/')}/_ops/lineage"
    try:
        rows = (
            DeltaTable(path)
            .to_pyarrow_table(columns=["event_type", "inputs", "outputs"])
            .to_pylist()
        )
    except Exception as exc:  # no table yet: say so in one line
        print(f"cardlake: no lineage recorded at {path} ({type(exc).__name__})", file=sys.stderr)
        return 1
    print(render(upstream(rows, args.table), args.table))
    return 0


if __name__ == "__main__":
    from cardlake.cli import exit_now

    exit_now(main())  # reads through delta-rs and pyarrow only: see exit_now
