"""The facade jobs use: tables by name (``layer.table``), the engine chosen once per session."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructField, StructType

from cardlake.config import Config
from cardlake.spark import DELTA_EXTENSION, delta_coordinates, delta_spark_loaded
from cardlake.tables import catalog
from cardlake.tables.base import (
    DeltaEngine,
    Idempotency,
    PartitionSpec,
    SchemaMode,
    TableError,
    WriteResult,
)

LAYERS = ("bronze", "silver", "gold", "_quarantine", "_ops")


@dataclass(frozen=True)
class TablePolicy:
    """What the lake's governance gives each table the layer creates.

    properties: (table, schema, partition columns) -> the Delta table properties it is created
        with (which columns file statistics may copy into the log).
    column_metadata: (table, column) -> the column's metadata (its comment, classification).
    """

    properties: Callable[[str, StructType, tuple[str, ...]], Mapping[str, str]]
    column_metadata: Callable[[str, str], Mapping[str, str]]


def _governed(cfg: Config) -> TablePolicy:
    # Governance decides what each column is; the table layer only applies what it says.
    from cardlake.governance.settings import load_governance
    from cardlake.governance.statistics import table_policy

    return table_policy(load_governance(cfg.env))


EngineName = Literal["auto", "delta-rs", "delta-spark"]


def choose_engine(
    spark: SparkSession, requested: EngineName, *, commit_retries: int = 5
) -> DeltaEngine:
    """Picks the engine: ``delta-spark`` where its classes load and the session is set up for it.

    ``auto`` falls back to the embedded delta-rs engine; asking for ``delta-spark`` on a session
    without the connector is an error that says why.
    """
    from cardlake.tables.delta_rs import DeltaRsEngine

    loaded = delta_spark_loaded(spark)
    configured = DELTA_EXTENSION in (spark.conf.get("spark.sql.extensions", "") or "")
    if requested == "delta-spark" or (requested == "auto" and loaded and configured):
        if not loaded:
            raise TableError(
                "tables.engine is delta-spark, but the Delta connector's classes are not on the "
                f"JVM classpath: submit with --packages {delta_coordinates()} (needs Maven "
                "access; `python -m cardlake.spark --submit-args` prints every argument)"
            )
        from cardlake.tables.delta_spark import DeltaSparkEngine

        return DeltaSparkEngine(spark=spark)
    return DeltaRsEngine(spark=spark, commit_retries=commit_retries)


@dataclass(frozen=True)
class Changes:
    """Data changes between two versions of a table.

    Attributes:
        since: the version the caller had read.
        latest: the table's version now.
        partitions: partition values (as the log spells them) with added or removed data;
            ``[{}]`` for an unpartitioned table that changed.
        whole_table: the schema or protocol changed, or the log no longer holds every commit.
    """

    since: int
    latest: int
    partitions: list[dict[str, str | None]]
    whole_table: bool


class Tables:
    """Delta tables under one lake root, addressed as ``"<layer>.<table>"``.

    Layers: ``bronze``, ``silver``, ``gold`` (visible in Spark SQL by the same names), and
    ``_quarantine`` and ``_ops`` for rejected rows and operational records.
    """

    def __init__(
        self,
        *,
        spark: SparkSession,
        lake_root: str,
        engine: DeltaEngine,
        vacuum_retention_hours: int = 168,
        register_sql: bool = True,
        policy: TablePolicy | None = None,
    ) -> None:
        self.spark = spark
        self.lake_root = lake_root.rstrip("/")
        self.engine = engine
        self._vacuum_retention_hours = vacuum_retention_hours
        self._register_sql = register_sql
        self._policy = policy

    @classmethod
    def from_config(cls, spark: SparkSession, cfg: Config) -> Tables:
        """The lake of ``cfg`` with the configured engine; registers its tables for SQL."""
        engine = choose_engine(spark, cfg.tables.engine, commit_retries=cfg.tables.commit_retries)
        tables = cls(
            spark=spark,
            lake_root=cfg.paths.lake_root,
            engine=engine,
            vacuum_retention_hours=cfg.tables.vacuum_retention_hours,
            policy=_governed(cfg),
        )
        tables.register_sql()
        return tables

    def register_sql(self) -> list[str]:
        """Registers every existing table of the lake in Spark SQL's catalog."""
        return catalog.register_lake(self.spark, lake_root=self.lake_root, engine=self.engine.name)

    def path(self, name: str) -> str:
        """``"gold.kpi_monthly"`` to its folder or URI under the lake root."""
        layer, _, table = name.partition(".")
        if layer not in LAYERS or not table or "/" in table:
            raise TableError(f"table names are '<layer>.<table>' with layer in {LAYERS}: {name!r}")
        return f"{self.lake_root}/{layer}/{table}"

    def _registered(self, name: str, created: bool) -> None:
        if created and self._register_sql:
            layer, _, table = name.partition(".")
            catalog.register_table(
                self.spark, layer=layer, name=table, path=self.path(name), engine=self.engine.name
            )

    # -- metadata ---------------------------------------------------------------------------

    def exists(self, name: str) -> bool:
        return self.engine.exists(self.path(name))

    def create(
        self,
        name: str,
        schema: StructType,
        *,
        partition_by: Sequence[str] = (),
        description: str | None = None,
    ) -> bool:
        """Creates an empty table if absent; returns whether it was created.

        With a :class:`TablePolicy`, the new table takes the properties it gives (which columns
        file statistics may copy into the log) and each column its metadata (comment,
        classification).
        """
        properties = None
        if self._policy:
            schema, properties = self._governed(name, schema, partition_by)
        created = self.engine.create(
            self.path(name),
            schema,
            partition_by=partition_by,
            description=description,
            properties=properties,
        )
        self._registered(name, created)
        return created

    def _governed(
        self, name: str, schema: StructType, partition_by: Sequence[str]
    ) -> tuple[StructType, Mapping[str, str]]:
        """``schema`` with the policy's column metadata, and the policy's table properties."""
        assert self._policy is not None
        properties = self._policy.properties(name, schema, tuple(partition_by))
        return StructType(
            [
                StructField(
                    f.name,
                    f.dataType,
                    f.nullable,
                    {**f.metadata, **self._policy.column_metadata(name, f.name)},
                )
                for f in schema.fields
            ]
        ), properties

    def _first_write(
        self, name: str, df: DataFrame, partition_by: Sequence[str]
    ) -> tuple[bool, DataFrame, Mapping[str, str] | None]:
        """Whether ``name`` existed, the frame to write and the properties the write gives a
        table it creates. With a policy, a write that creates the table carries the policy's
        properties and column metadata, so its first data files already follow them (one
        commit; creating the table first cost a second, ~0.3 s a table on delta-spark)."""
        if self.exists(name):
            return True, df, None
        if not self._policy:
            return False, df, None
        schema, properties = self._governed(name, df.schema, partition_by)
        return False, df.to(schema), properties

    def schema(self, name: str) -> StructType:
        return self.engine.schema(self.path(name))

    def version(self, name: str) -> int:
        return self.engine.version(self.path(name))

    def history(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Commits, newest first, as dictionaries (version, timestamp, operation, ...)."""
        return self.engine.history(self.path(name), limit)

    # -- read and write ---------------------------------------------------------------------

    def read(
        self,
        name: str,
        *,
        version: int | None = None,
        timestamp: datetime | str | None = None,
        partitions: PartitionSpec | None = None,
    ) -> DataFrame:
        """Reads the latest snapshot, or the one at ``version`` or ``timestamp``.

        Args:
            name: ``"<layer>.<table>"``.
            version: time travel to this version.
            timestamp: time travel to the version current at this instant.
            partitions: prune to these partition values, e.g. ``{"month": ["2025-05"]}``.
        """
        return self.engine.read(
            self.path(name), version=version, timestamp=timestamp, partitions=partitions
        )

    def append(
        self,
        name: str,
        df: DataFrame,
        *,
        partition_by: Sequence[str] = (),
        idempotency: Idempotency | None = None,
        schema_mode: SchemaMode = "strict",
    ) -> WriteResult:
        """Appends ``df``, creating the table on first write.

        Raises:
            SchemaMismatchError: the columns differ from the table's (named in the message);
                ``schema_mode="merge"`` adds new columns instead.
        """
        existed, df, properties = self._first_write(name, df, partition_by)
        result = self.engine.append(
            self.path(name),
            df,
            partition_by=partition_by,
            idempotency=idempotency,
            schema_mode=schema_mode,
            properties=properties,
        )
        self._registered(name, not existed or schema_mode == "merge")
        return result

    def overwrite(
        self,
        name: str,
        df: DataFrame,
        *,
        partition_by: Sequence[str] = (),
        idempotency: Idempotency | None = None,
        schema_mode: SchemaMode = "strict",
    ) -> WriteResult:
        """Replaces the whole table's contents with ``df``."""
        existed, df, properties = self._first_write(name, df, partition_by)
        result = self.engine.overwrite(
            self.path(name),
            df,
            partition_by=partition_by,
            idempotency=idempotency,
            schema_mode=schema_mode,
            properties=properties,
        )
        self._registered(name, not existed or schema_mode == "merge")
        return result

    def replace_partitions(
        self,
        name: str,
        df: DataFrame,
        *,
        partitions: PartitionSpec,
        partition_by: Sequence[str] = (),
        idempotency: Idempotency | None = None,
        schema_mode: SchemaMode = "strict",
        read_version: int | None = None,
    ) -> WriteResult:
        """Replaces only ``partitions`` (Delta's replaceWhere); other partitions stay as they are.

        Raises:
            ConcurrentModificationError: another commit since ``read_version`` changed one of
                these partitions; nothing was committed.
        """
        existed, df, properties = self._first_write(name, df, partition_by)
        result = self.engine.overwrite(
            self.path(name),
            df,
            partition_by=partition_by,
            partitions=partitions,
            idempotency=idempotency,
            schema_mode=schema_mode,
            read_version=read_version,
            properties=properties,
        )
        self._registered(name, not existed or schema_mode == "merge")
        return result

    def merge(
        self,
        name: str,
        source: DataFrame,
        *,
        keys: Sequence[str],
        when_matched: Literal["update", "delete", "ignore"] = "update",
        when_not_matched: Literal["insert", "ignore"] = "insert",
        update_condition: str | None = None,
    ) -> WriteResult:
        """Upserts ``source`` on ``keys``, matching keys null-safely (``<=>``)."""
        return self.engine.merge(
            self.path(name),
            source,
            keys=keys,
            when_matched=when_matched,
            when_not_matched=when_not_matched,
            update_condition=update_condition,
        )

    def delete(self, name: str, predicate: str) -> WriteResult:
        """Deletes the rows where the SQL ``predicate`` holds."""
        return self.engine.delete(self.path(name), predicate)

    def rewrite_rows(
        self,
        name: str,
        *,
        delete_where: str | None = None,
        update_where: str | None = None,
        assignments: Mapping[str, str] | None = None,
        parameters: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Deletes and updates rows in one commit that rewrites only the files holding them.

        Conditions and expressions are SQL naming the table's columns as ``t.<column>`` and
        the ``parameters`` as ``p.<name>``, deterministic functions of the row. The commit keeps
        no parameter's value (a ``DELETE`` keeps its whole condition): values that must not
        outlive the rows, such as an erasure's identifiers, go there. No live file keeps a
        deleted row or an old value (deletion vectors are purged); the replaced files stay for
        time travel until a vacuum.

        Args:
            name: ``"<layer>.<table>"``.
            delete_where: the rows to delete.
            update_where: the rows, among those kept, to update.
            assignments: column to its new value's SQL expression, in the rows updated.
            parameters: values the conditions and expressions read as ``p.<name>``.
        """
        return self.engine.rewrite_rows(
            self.path(name),
            delete_where=delete_where,
            update_where=update_where,
            assignments=assignments,
            parameters=parameters,
        )

    def changes_since(self, name: str, version: int) -> Changes:
        """What changed in ``name`` after ``version``, from the commit log (both engines).

        Incremental jobs keep the version they last read and recompute only the partitions
        listed here; compaction (``dataChange: false``) is not a change. A schema or protocol
        change, or a commit no longer in the log, sets ``whole_table``: recompute everything.
        """
        path = self.path(name)
        latest = self.version(name)
        if latest <= version:
            return Changes(since=version, latest=latest, partitions=[], whole_table=False)
        log_dir = f"{path}/_delta_log/"
        commits = [f"{log_dir}{v:020d}.json" for v in range(version + 1, latest + 1)]
        try:
            lines = [r.value for r in self.spark.read.text(commits).collect()]
        except Exception:  # a commit already cleaned up by log retention
            return Changes(since=version, latest=latest, partitions=[], whole_table=True)
        seen: dict[tuple[tuple[str, str | None], ...], dict[str, str | None]] = {}
        for line in lines:
            action = json.loads(line) if line.strip() else {}
            if "metaData" in action or "protocol" in action:
                return Changes(since=version, latest=latest, partitions=[], whole_table=True)
            for kind in ("add", "remove", "cdc"):
                change = action.get(kind)
                if change and (kind == "cdc" or change.get("dataChange", True)):
                    values = dict(change.get("partitionValues") or {})
                    seen[tuple(sorted(values.items()))] = values
        ordered = [seen[k] for k in sorted(seen, key=repr)]
        return Changes(since=version, latest=latest, partitions=ordered, whole_table=False)

    # -- maintenance ------------------------------------------------------------------------

    def optimize(
        self, name: str, *, zorder_by: Sequence[str] = (), partitions: PartitionSpec | None = None
    ) -> dict[str, Any]:
        """Compacts small files, or z-orders by ``zorder_by``."""
        return self.engine.optimize(self.path(name), zorder_by=zorder_by, partitions=partitions)

    def vacuum(
        self, name: str, *, retention_hours: int | None = None, dry_run: bool = False
    ) -> list[str]:
        """Deletes files older than the retention that no retained version needs."""
        hours = self._vacuum_retention_hours if retention_hours is None else retention_hours
        return self.engine.vacuum(self.path(name), retention_hours=hours, dry_run=dry_run)

    def restore(self, name: str, version: int) -> WriteResult:
        """Restores the table to ``version`` as a new commit."""
        return self.engine.restore(self.path(name), version)
