"""The JVM engine: Delta Lake's own connector (``delta-spark``) and its ``DeltaTable`` API.

Chosen on clusters and wherever the connector's jars load. The session must be built with
Delta's SQL extension and catalog (``cardlake.spark`` does this when ``tables.engine`` is
``delta-spark``). Everything here is Delta's native behaviour: optimistic concurrency, schema
enforcement, idempotent writes through ``txnAppId``/``txnVersion``, ``MERGE``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from functools import reduce
from typing import Any, Literal

from py4j.protocol import Py4JError
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from cardlake.config import is_object_store
from cardlake.tables.base import (
    ConcurrentModificationError,
    Idempotency,
    PartitionSpec,
    SchemaMode,
    TableError,
    TableNotFoundError,
    WriteResult,
    check_schema,
    conform,
    normalise_partitions,
    partition_value_string,
    rewrite_conditions,
)
from cardlake.tables.features import GENERATION_KEY


def _sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def replace_where_clause(partitions: PartitionSpec) -> str:
    """``{"month": ["2025-05", "2025-06"]}`` as Delta's ``replaceWhere`` predicate."""
    wanted = normalise_partitions(partitions) or {}
    clauses = []
    for column, values in wanted.items():
        non_null = [v for v in values if v is not None]
        parts = []
        if non_null:
            parts.append(f"`{column}` IN ({', '.join(_sql_literal(v) for v in non_null)})")
        if len(non_null) < len(values):
            parts.append(f"`{column}` IS NULL")
        clauses.append("(" + " OR ".join(parts) + ")")
    return " AND ".join(clauses)


def _generated_columns(path: str) -> set[str]:
    # Spark's view of a Delta schema drops the generation expressions; the log keeps them.
    # Read with deltalake where the table is a local folder (elsewhere every column is required).
    if is_object_store(path):
        return set()
    from deltalake import DeltaTable as RsTable

    try:
        fields = json.loads(RsTable(path).schema().to_json())["fields"]
    except Exception:  # a feature delta-rs cannot load: require every column
        return set()
    return {f["name"] for f in fields if GENERATION_KEY in (f.get("metadata") or {})}


@contextlib.contextmanager
def _conflicts_as_ours(path: str) -> Iterator[None]:
    """Delta's concurrent-commit exceptions, raised through Py4J, as our own."""
    try:
        yield
    except Exception as exc:
        text = f"{type(exc).__name__} {str(exc)[:300]}"
        if "Concurrent" in text or "DELTA_CONCURRENT" in text:
            raise ConcurrentModificationError(
                f"{path}: a concurrent commit conflicts with this operation; nothing was "
                f"committed, retry it ({str(exc).splitlines()[0][:300]})"
            ) from exc
        raise


class DeltaSparkEngine:
    """Delta tables through the delta-spark connector."""

    name = "delta-spark"

    def __init__(self, *, spark: SparkSession) -> None:
        from delta.tables import DeltaTable  # imported here: needs the connector's jars

        self._spark = spark
        self._delta_table = DeltaTable

    def _table(self, path: str) -> Any:
        if not self.exists(path):
            raise TableNotFoundError(f"no Delta table at {path}")
        return self._delta_table.forPath(self._spark, path)

    def exists(self, path: str) -> bool:
        return bool(self._delta_table.isDeltaTable(self._spark, path))

    def create(
        self,
        path: str,
        schema: StructType,
        *,
        partition_by: Sequence[str] = (),
        description: str | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> bool:
        if self.exists(path):
            return False
        builder = self._delta_table.createIfNotExists(self._spark).location(path).addColumns(schema)
        if partition_by:
            builder = builder.partitionedBy(*partition_by)
        if description:
            builder = builder.comment(description)
        for key, value in (properties or {}).items():
            builder = builder.property(key, value)
        builder.execute()
        return True

    def schema(self, path: str) -> StructType:
        return self._table(path).toDF().schema

    def _writable_schema(self, path: str, df: DataFrame) -> StructType:
        """The columns a write must supply: generated columns the data lacks Delta computes."""
        schema = self.schema(path)
        generated = _generated_columns(path)
        return StructType(
            [f for f in schema.fields if f.name in df.columns or f.name not in generated]
        )

    def partition_columns(self, path: str) -> list[str]:
        detail = self._table(path).detail().select("partitionColumns").first()
        return list(detail[0]) if detail else []

    def version(self, path: str) -> int:
        """The latest committed version, from the connector's cached log (an update lists the
        log folder: ~10 ms here), not ``history(1)``, a Spark job over the commit files that
        cost ~330 ms a call and was called 159 times in one pipeline run of the test world.
        ``DeltaLog`` is the connector's internal entry point; should a later release change it,
        the public history query answers instead."""
        if not self.exists(path):
            raise TableNotFoundError(f"no Delta table at {path}")
        jvm = self._spark._jvm
        assert jvm is not None  # a classic session's gateway
        try:
            delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(
                self._spark._jsparkSession, path
            )
            defaults = [getattr(delta_log, f"update$default${i}")() for i in (1, 2, 3)]
            return int(delta_log.update(*defaults).version())
        except Py4JError:
            return int(self._table(path).history(1).select("version").first()[0])

    def history(self, path: str, limit: int | None = None) -> list[dict[str, Any]]:
        frame = self._table(path).history(limit) if limit else self._table(path).history()
        return [row.asDict(recursive=True) for row in frame.collect()]

    def read(
        self,
        path: str,
        *,
        version: int | None = None,
        timestamp: datetime | str | None = None,
        partitions: PartitionSpec | None = None,
    ) -> DataFrame:
        if not self.exists(path):
            raise TableNotFoundError(f"no Delta table at {path}")
        reader = self._spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        if timestamp is not None:
            reader = reader.option("timestampAsOf", str(timestamp))
        frame = reader.load(path)
        if partitions:
            frame = frame.filter(replace_where_clause(partitions))
        return frame

    def _writer(
        self,
        df: DataFrame,
        mode: str,
        idempotency: Idempotency | None,
        schema_mode: SchemaMode,
        partition_by: Sequence[str],
        properties: Mapping[str, str] | None = None,
    ) -> Any:
        writer = df.write.format("delta").mode(mode)
        # A write that creates the table takes options named delta.* as its table properties.
        for key, value in (properties or {}).items():
            writer = writer.option(key, value)
        if idempotency:
            writer = writer.option("txnAppId", idempotency.app_id).option(
                "txnVersion", idempotency.version
            )
        if schema_mode == "merge":
            writer = writer.option("mergeSchema", "true")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        return writer

    def _result(self, path: str, before: int | None) -> WriteResult:
        after = self.version(path)
        return WriteResult(committed=before is None or after != before, version=after)

    def append(
        self,
        path: str,
        df: DataFrame,
        *,
        partition_by: Sequence[str] = (),
        idempotency: Idempotency | None = None,
        schema_mode: SchemaMode = "strict",
        properties: Mapping[str, str] | None = None,
    ) -> WriteResult:
        before = self.version(path) if self.exists(path) else None
        if before is not None:
            # Delta fills absent columns with nulls; our contract refuses them, naming them.
            check_schema(self._writable_schema(path, df), df.schema, path=path, mode=schema_mode)
        new = properties if before is None else None
        with _conflicts_as_ours(path):
            self._writer(df, "append", idempotency, schema_mode, partition_by, new).save(path)
        return self._result(path, before)

    def overwrite(
        self,
        path: str,
        df: DataFrame,
        *,
        partition_by: Sequence[str] = (),
        partitions: PartitionSpec | None = None,
        idempotency: Idempotency | None = None,
        schema_mode: SchemaMode = "strict",
        read_version: int | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> WriteResult:
        before = self.version(path) if self.exists(path) else None
        if before is not None:
            check_schema(self._writable_schema(path, df), df.schema, path=path, mode=schema_mode)
            if read_version is not None and before != read_version:
                self._check_since(path, read_version, partitions)
        new = properties if before is None else None
        writer = self._writer(df, "overwrite", idempotency, schema_mode, partition_by, new)
        if partitions:
            writer = writer.option("replaceWhere", replace_where_clause(partitions))
        with _conflicts_as_ours(path):
            writer.save(path)
        return self._result(path, before)

    def _check_since(self, path: str, read_version: int, partitions: PartitionSpec | None) -> None:
        """Refuses when a commit after ``read_version`` changed data this overwrite replaces.

        Delta checks conflicts only from the snapshot its own transaction starts at; the caller's
        ``read_version`` may be older, so the commits in between are replayed here: a metadata
        change, or an added or removed file in a replaced partition (any, for a whole-table
        overwrite), is a conflict. Compaction (``dataChange: false``) is not.
        """
        latest = self.version(path)
        if latest <= read_version:
            return
        wanted = {
            column: {partition_value_string(v) for v in values}
            for column, values in (normalise_partitions(partitions) or {}).items()
        }
        log_dir = path.rstrip("/") + "/_delta_log/"
        commits = [f"{log_dir}{v:020d}.json" for v in range(read_version + 1, latest + 1)]
        try:
            lines = self._spark.read.text(commits).select(F.input_file_name(), "value").collect()
        except Exception as exc:  # a commit file already cleaned up by log retention
            raise ConcurrentModificationError(
                f"{path}: cannot replay commits {read_version + 1}..{latest} to check this "
                f"overwrite against them ({type(exc).__name__}); nothing was committed, retry it"
            ) from exc
        for file_name, line in sorted(lines):
            version = int(file_name.rsplit("/", 1)[-1].split(".")[0])
            action = json.loads(line) if line.strip() else {}
            if "metaData" in action or "protocol" in action:
                raise ConcurrentModificationError(
                    f"{path}: the table's metadata changed in version {version} after version "
                    f"{read_version}; nothing was committed, retry it"
                )
            for kind in ("add", "remove"):
                change = action.get(kind)
                if not change or not change.get("dataChange", True):
                    continue
                values = change.get("partitionValues") or {}
                if all(values.get(c) in vs for c, vs in wanted.items()):
                    raise ConcurrentModificationError(
                        f"{path}: version {version} {'added' if kind == 'add' else 'removed'} data "
                        f"in partition {values or '(whole table)'} that this overwrite (read at "
                        f"version {read_version}) replaces; nothing was committed, retry it"
                    )

    def merge(
        self,
        path: str,
        source: DataFrame,
        *,
        keys: Sequence[str],
        when_matched: Literal["update", "delete", "ignore"] = "update",
        when_not_matched: Literal["insert", "ignore"] = "insert",
        update_condition: str | None = None,
    ) -> WriteResult:
        table = self._table(path)
        schema = self.schema(path)
        check_schema(schema, source.schema, path=path, mode="strict")
        before = self.version(path)
        on = reduce(Column.__and__, [F.col(f"t.{k}").eqNullSafe(F.col(f"s.{k}")) for k in keys])
        builder = table.alias("t").merge(conform(source, schema).alias("s"), on)
        if when_matched == "update":
            builder = builder.whenMatchedUpdateAll(condition=update_condition)
        elif when_matched == "delete":
            builder = builder.whenMatchedDelete()
        if when_not_matched == "insert":
            builder = builder.whenNotMatchedInsertAll()
        with _conflicts_as_ours(path):
            builder.execute()
        return self._result(path, before)

    def delete(self, path: str, predicate: str) -> WriteResult:
        before = self.version(path)
        with _conflicts_as_ours(path):
            self._table(path).delete(predicate)
        return self._result(path, before)

    def rewrite_rows(
        self,
        path: str,
        *,
        delete_where: str | None = None,
        update_where: str | None = None,
        assignments: Mapping[str, str] | None = None,
        parameters: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Deletes and updates rows in one ``MERGE`` that names neither conditions nor values.

        A ``DELETE`` or ``UPDATE`` writes its condition, values included, into the commit. Here
        Spark evaluates the conditions on the latest snapshot, the parameters bound as constants
        (a pattern compiled once, not per row as a column would be), and the ``MERGE`` matches
        the rows chosen by a digest of their values (SHA-256 of the row as JSON): its commit
        keeps that expression, not the digests or the new values. Conditions must depend on the
        row's values alone. With deletion vectors enabled on the table, the files they mark are
        rewritten (``REORG ... APPLY (PURGE)``): no live file keeps a deleted row or old value.
        """
        table = self._table(path)
        before = self.version(path)
        new_values = dict(assignments or {}) if update_where else {}
        if not (delete_where or new_values):
            return WriteResult(committed=False, version=before)
        frame = self.read(path)
        schema = frame.schema
        target, drop, change = rewrite_conditions(
            frame,
            path=path,
            delete_where=delete_where,
            update_where=update_where,
            assignments=new_values,
            parameters=parameters,
        )
        fields = ", ".join("t.`" + f.name.replace("`", "``") + "`" for f in schema.fields)
        digest = f"sha2(to_json(struct({fields})), 256)"
        updated = {c: f"_new_{i}" for i, c in enumerate(new_values)}
        chosen = target.where(drop | change).select(
            F.expr(digest).alias("_row"),
            drop.alias("_drop"),
            *[
                F.expr(new_values[c]).cast(schema[c].dataType).alias(alias)
                for c, alias in updated.items()
            ],
        )
        # Identical rows share a digest and were chosen alike: one source row for them all (a
        # MERGE refuses two source rows matching one target row). Materialised, so the MERGE
        # reads the rows chosen on this snapshot.
        source = (
            chosen.groupBy("_row")
            .agg(*[F.first(c).alias(c) for c in chosen.columns if c != "_row"])
            .localCheckpoint(eager=True)
        )
        if source.isEmpty():
            return WriteResult(committed=False, version=before)
        builder = table.alias("t").merge(source.alias("s"), f"{digest} = s._row")
        if delete_where:
            builder = builder.whenMatchedDelete(condition="s._drop")
        if updated:
            builder = builder.whenMatchedUpdate(
                condition="NOT s._drop", set={c: f"s.{alias}" for c, alias in updated.items()}
            )
        with _conflicts_as_ours(path):
            builder.execute()
            properties = table.detail().select("properties").first()[0] or {}
            if str(properties.get("delta.enableDeletionVectors", "false")).lower() == "true":
                self._spark.sql(f"REORG TABLE delta.`{path}` APPLY (PURGE)")
        return self._result(path, before)

    def optimize(
        self, path: str, *, zorder_by: Sequence[str] = (), partitions: PartitionSpec | None = None
    ) -> dict[str, Any]:
        builder = self._table(path).optimize()
        if partitions:
            builder = builder.where(replace_where_clause(partitions))
        with _conflicts_as_ours(path):
            frame = (
                builder.executeZOrderBy(*zorder_by) if zorder_by else builder.executeCompaction()
            )
        row = frame.first()
        return row.asDict(recursive=True) if row else {}

    def vacuum(self, path: str, *, retention_hours: int, dry_run: bool = False) -> list[str]:
        if dry_run:
            raise TableError("the delta-spark engine's vacuum has no dry run in the Python API")
        self._spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
        self._table(path).vacuum(float(retention_hours))
        return []

    def restore(self, path: str, version: int) -> WriteResult:
        self._table(path).restoreToVersion(version)
        return WriteResult(committed=True, version=self.version(path))
