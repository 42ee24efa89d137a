"""The embedded engine: Spark computes and writes Parquet, delta-rs commits and resolves snapshots.

Write: Spark writes the data files in parallel into a hidden staging folder inside the table
(``.cardlake-staging/<uuid>``), the driver moves them into their partition folders and commits
them to ``_delta_log`` as one delta-rs transaction (add actions with partition values and stats).
A crash before the commit leaves the table at its previous version; the files left behind are
orphans that :meth:`DeltaRsEngine.vacuum` removes.

Read: delta-rs resolves the snapshot (latest, a version or a timestamp; partition-pruned) and
Spark scans exactly those files, with typed partition values taken from the log.

delta-rs 1.6 behaviours this module designs around (each reproduced by tests/tables):
- a repeated ``(appId, version)`` is committed again: we check it under the table's commit lock;
- an append whose schema does not match is accepted: we check the schema under the lock;
- a partition overwrite from a stale snapshot does not see a concurrent append: we compare the
  commits since our read version with the partitions we replace, and refuse on overlap;
- an add action pointing at a missing file is accepted: we only add files we just wrote and
  checked, and reads check that every file exists before Spark plans the scan;
- a ``DeltaTable`` is not advanced by its own commit: we reload after every commit.

Commits are serialised per table with an exclusive lock file (``.cardlake.lock``), which holds
across threads and processes on one machine; this engine is for local lake folders. A lake on
object storage or HDFS runs on the delta-spark engine.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.transaction import AddAction, CommitProperties, RemoveAction, Transaction
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    ByteType,
    DateType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    StructType,
    TimestampType,
)

from cardlake.tables.base import (
    ConcurrentModificationError,
    Idempotency,
    PartitionSpec,
    SchemaMismatchError,
    SchemaMode,
    TableError,
    TableNotFoundError,
    UnsupportedTableFeatureError,
    WriteResult,
    check_schema,
    conform,
    normalise_partitions,
    nullable,
    partition_value_string,
    rewrite_conditions,
)
from cardlake.tables.delta_rs.log import (
    Snapshot,
    file_entries,
    folders_agree_with_log,
    local_dir,
    partition_values_from_dir,
    read_snapshot,
    typed_partition_value,
)
from cardlake.tables.delta_rs.schema import spark_schema, to_delta_field, to_delta_schema
from cardlake.tables.delta_rs.stats import file_stats, stats_columns
from cardlake.tables.features import (
    enforce_constraints,
    refuse_unwritable,
    with_generated_columns,
)

STAGING_DIR = ".cardlake-staging"
LOCK_FILE = ".cardlake.lock"
FILE_COLUMN = "_cardlake_file"
_ROW_INDEX = "_cardlake_row_index"

_PARTITION_TYPES = (
    StringType,
    IntegerType,
    LongType,
    ShortType,
    ByteType,
    DateType,
    BooleanType,
    TimestampType,
)
# Threads of one process share no flock (it is per open file): a process-wide lock per path too.
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


class DeltaRsEngine:
    """Delta tables committed by delta-rs, computed and scanned by Spark."""

    name = "delta-rs"

    def __init__(self, *, spark: SparkSession, commit_retries: int = 5) -> None:
        self._spark = spark
        self._commit_retries = commit_retries

    # ------------------------------------------------------------------ metadata

    def exists(self, path: str) -> bool:
        return DeltaTable.is_deltatable(local_dir(path))

    def create(
        self,
        path: str,
        schema: StructType,
        *,
        partition_by: Sequence[str] = (),
        description: str | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> bool:
        """Creates an empty table; returns False when it already exists (its schema is kept)."""
        local = local_dir(path)
        _check_partition_types(schema, partition_by, path)
        with self._commit_lock(local):
            if DeltaTable.is_deltatable(local):
                return False
            DeltaTable.create(
                local,
                schema=to_delta_schema(schema),
                partition_by=list(partition_by) or None,
                mode="ignore",
                description=description,
                configuration=dict(properties) if properties else None,
            )
        return True

    def _table(self, path: str, version: int | None = None) -> DeltaTable:
        local = local_dir(path)
        if not DeltaTable.is_deltatable(local):
            raise TableNotFoundError(f"no Delta table at {path}")
        try:
            return DeltaTable(local, version=version)
        except Exception as exc:
            if "unsupported" not in str(exc).lower():
                raise
            raise UnsupportedTableFeatureError(
                f"{path} uses a Delta feature delta-rs cannot read ({exc}); read it with the "
                "delta-spark engine"
            ) from exc

    def schema(self, path: str) -> StructType:
        return spark_schema(self._table(path))

    def partition_columns(self, path: str) -> list[str]:
        return list(self._table(path).metadata().partition_columns)

    def version(self, path: str) -> int:
        return self._table(path).version()

    def history(self, path: str, limit: int | None = None) -> list[dict[str, Any]]:
        return list(self._table(path).history(limit))

    # ------------------------------------------------------------------ read

    def _snapshot(
        self,
        path: str,
        *,
        version: int | None = None,
        timestamp: datetime | str | None = None,
        partitions: PartitionSpec | None = None,
    ) -> Snapshot:
        table = self._table(path, version)
        if timestamp is not None:
            table.load_as_version(timestamp)
        return read_snapshot(table, path, partitions=partitions)

    def read(
        self,
        path: str,
        *,
        version: int | None = None,
        timestamp: datetime | str | None = None,
        partitions: PartitionSpec | None = None,
    ) -> DataFrame:
        """Reads a snapshot (latest, ``version`` or ``timestamp``), pruned to ``partitions``."""
        return self._scan(
            self._snapshot(path, version=version, timestamp=timestamp, partitions=partitions)
        )

    def _scan(self, snapshot: Snapshot, *, with_file: bool = False) -> DataFrame:
        schema = snapshot.schema
        missing = [f.abs_path for f in snapshot.files if not os.path.exists(f.abs_path)]
        if missing:
            raise TableError(
                f"{snapshot.path} version {snapshot.version} references {len(missing)} data "
                f"file(s) that do not exist, e.g. {missing[0]}; refusing to return partial rows"
            )
        data_fields = [f for f in schema.fields if f.name not in snapshot.partition_columns]
        data_schema = StructType(data_fields)
        out_columns = [f.name for f in schema.fields] + ([FILE_COLUMN] if with_file else [])
        if not snapshot.files:
            empty = self._spark.createDataFrame([], schema)
            if with_file:
                empty = empty.withColumn(FILE_COLUMN, F.lit(None).cast("string"))
            return empty.select(*out_columns)
        if snapshot.physical_schema is not None or snapshot.deleted_rows:
            return self._scan_by_file_group(snapshot, with_file=with_file)
        if folders_agree_with_log(snapshot):
            # One scan: Spark reads the partition values from the folder names, which we just
            # checked are the log's values for every file, typed by the table schema.
            frame = (
                self._spark.read.schema(schema)
                .option("basePath", local_dir(snapshot.path))
                .parquet(*[_hadoop_glob_escape(f.abs_path) for f in snapshot.files])
            )
            if with_file:
                frame = frame.withColumn(FILE_COLUMN, F.col("_metadata.file_path"))
            return frame.select(*out_columns)
        groups: dict[tuple[Any, ...], list[str]] = {}
        for entry in snapshot.files:
            key = tuple(entry.partition.get(c) for c in snapshot.partition_columns)
            groups.setdefault(key, []).append(_hadoop_glob_escape(entry.abs_path))
        frames = []
        for key, paths in sorted(groups.items(), key=lambda kv: repr(kv[0])):
            frame = self._spark.read.schema(data_schema).parquet(*paths)
            if with_file:
                frame = frame.withColumn(FILE_COLUMN, F.col("_metadata.file_path"))
            for col, value in zip(snapshot.partition_columns, key, strict=True):
                frame = frame.withColumn(col, F.lit(value).cast(schema[col].dataType))
            frames.append(frame.select(*out_columns))
        return reduce(DataFrame.unionByName, frames)

    def _scan_by_file_group(self, snapshot: Snapshot, *, with_file: bool) -> DataFrame:
        """Scans tables whose files need more than a Parquet read: mapped names, deletion vectors.

        Files are grouped by partition (values from the log, as literals); data columns are read
        by their physical names and renamed (nested fields by position, through a cast); rows a
        deletion vector marks are dropped by their position in the file (``_metadata.row_index``).
        """
        schema = snapshot.schema
        physical = snapshot.physical_schema or schema
        partition_columns = snapshot.partition_columns
        read_fields = [
            physical.fields[i]
            for i, f in enumerate(schema.fields)
            if f.name not in partition_columns
        ]
        read_schema = StructType(read_fields)
        logical_of = {physical.fields[i].name: f for i, f in enumerate(schema.fields)}
        out_columns = [f.name for f in schema.fields] + ([FILE_COLUMN] if with_file else [])

        def finish(frame: DataFrame, key: tuple[Any, ...]) -> DataFrame:
            if with_file:
                frame = frame.withColumn(FILE_COLUMN, F.col("_metadata.file_path"))
            frame = frame.select(
                *[
                    F.col(f"`{p.name}`")
                    .cast(logical_of[p.name].dataType)
                    .alias(logical_of[p.name].name)
                    for p in read_fields
                ],
                *([F.col(FILE_COLUMN)] if with_file else []),
            )
            for col, value in zip(partition_columns, key, strict=True):
                frame = frame.withColumn(col, F.lit(value).cast(schema[col].dataType))
            return frame.select(*out_columns)

        groups: dict[tuple[Any, ...], list[str]] = {}
        frames = []
        for entry in snapshot.files:
            key = tuple(entry.partition.get(c) for c in partition_columns)
            deleted = snapshot.deleted_rows.get(entry.abs_path)
            if not deleted:
                groups.setdefault(key, []).append(_hadoop_glob_escape(entry.abs_path))
                continue
            frame = (
                self._spark.read.schema(read_schema)
                .parquet(_hadoop_glob_escape(entry.abs_path))
                .withColumn(_ROW_INDEX, F.col("_metadata.row_index"))
            )
            gone = self._spark.createDataFrame([(i,) for i in deleted], f"{_ROW_INDEX} long")
            frame = frame.join(F.broadcast(gone), _ROW_INDEX, how="left_anti")
            frames.append(finish(frame, key))
        for key, paths in sorted(groups.items(), key=lambda kv: repr(kv[0])):
            frames.append(finish(self._spark.read.schema(read_schema).parquet(*paths), key))
        return reduce(DataFrame.unionByName, frames)

    # ------------------------------------------------------------------ writes

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
        """Appends ``df``; creates the table (partitioned by ``partition_by``, with
        ``properties``) if it is absent."""
        return self._write(
            path,
            df,
            kind="append",
            partition_by=partition_by,
            idempotency=idempotency,
            schema_mode=schema_mode,
            properties=properties,
        )

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
        """Replaces the whole table, or only ``partitions`` (replaceWhere on partition columns).

        Every row of ``df`` must fall inside ``partitions``. The commit fails with
        :class:`ConcurrentModificationError` when a commit after ``read_version`` (default: the
        version when this call began) added or removed files in the replaced partitions.
        """
        return self._write(
            path,
            df,
            kind="overwrite",
            partition_by=partition_by,
            partitions=partitions,
            idempotency=idempotency,
            schema_mode=schema_mode,
            read_version=read_version,
            properties=properties,
        )

    def _write(
        self,
        path: str,
        df: DataFrame,
        *,
        kind: Literal["append", "overwrite"],
        partition_by: Sequence[str],
        partitions: PartitionSpec | None = None,
        idempotency: Idempotency | None = None,
        schema_mode: SchemaMode = "strict",
        read_version: int | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> WriteResult:
        local = local_dir(path)
        if not DeltaTable.is_deltatable(local):
            self.create(path, nullable(df.schema), partition_by=partition_by, properties=properties)
        table = DeltaTable(local)
        if read_version is None:
            read_version = table.version()
        if idempotency and _already_committed(table, idempotency):
            return WriteResult(committed=False, version=table.version())
        _refuse_unwritable(table, path, kind)
        table_schema = spark_schema(table)
        df = with_generated_columns(df, table_schema)
        new_columns = check_schema(table_schema, df.schema, path=path, mode=schema_mode)
        table_partitions = list(table.metadata().partition_columns)
        if partition_by and list(partition_by) != table_partitions:
            raise SchemaMismatchError(
                f"{path} is partitioned by {table_partitions}, not {list(partition_by)}"
            )
        wanted = normalise_partitions(partitions)
        if wanted is not None:
            _check_replace_partitions(df, wanted, table_partitions, table_schema, path)
        full_schema = StructType(table_schema.fields + new_columns)
        enforce_constraints(
            df,
            schema=table_schema,
            configuration=table.metadata().configuration or {},
            path=path,
        )
        staged = self._stage(
            local,
            conform(df, full_schema),
            table_partitions,
            full_schema,
            configuration=table.metadata().configuration or {},
        )

        def replaced(partition: dict[str, Any]) -> bool:
            if kind == "append":
                return False
            if wanted is None:
                return True
            return all(partition.get(c) in vs for c, vs in typed_wanted.items())

        typed_wanted = {
            c: [typed_partition_value(v, full_schema[c].dataType) for v in vs]
            for c, vs in (wanted or {}).items()
        }
        return self._commit(
            local,
            staged,
            replaced=replaced,
            read_version=read_version,
            kind=kind,
            idempotency=idempotency,
            new_columns=new_columns,
            full_schema=full_schema,
            schema_mode=schema_mode,
            conflict_on_any=kind == "overwrite" and wanted is None,
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
        """Upserts ``source`` on ``keys`` with null-safe key matching (copy-on-write).

        Matched rows are updated with all of the source's columns (only where
        ``update_condition``, a SQL expression over ``t.`` target and ``s.`` source columns,
        holds), deleted, or left alone; unmatched source rows are inserted or ignored. A target
        row matched by two source rows is an error, as in Delta.
        """
        local = local_dir(path)
        if not DeltaTable.is_deltatable(local):
            raise TableNotFoundError(f"no Delta table at {path}; create it before merging into it")
        _refuse_unwritable(DeltaTable(local), path, "merge")
        target_schema = self.schema(path)
        check_schema(target_schema, source.schema, path=path, mode="strict")
        source = conform(source, target_schema)
        partition_columns = self.partition_columns(path)
        prune: dict[str, list[Any]] | None = None
        if partition_columns and set(partition_columns) <= set(keys):
            # Keys fix the partition: only partitions the source touches can match.
            values = source.select(*partition_columns).distinct().collect()
            prune = {c: sorted({r[c] for r in values}, key=repr) for c in partition_columns}
        snapshot = self._snapshot(path, partitions=prune)
        target = self._scan(snapshot, with_file=True)

        duplicated = source.groupBy(*keys).count().filter(F.col("count") > 1).limit(1).collect()
        if duplicated:
            raise TableError(
                f"merge into {path}: several source rows share the key "
                f"{ {k: duplicated[0][k] for k in keys} }; a target row may match only one"
            )
        t, s = target.alias("t"), source.alias("s")
        on = reduce(Column.__and__, [F.col(f"t.{k}").eqNullSafe(F.col(f"s.{k}")) for k in keys])
        columns = [f.name for f in target_schema.fields]
        matched = t.join(s, on, how="inner")
        if when_matched == "update" and update_condition:
            matched = matched.filter(F.expr(update_condition))
        touched_files: list[str] = []
        if when_matched != "ignore":
            touched_files = sorted(
                r[FILE_COLUMN] for r in matched.select(f"t.{FILE_COLUMN}").distinct().collect()
            )
        parts: list[DataFrame] = []
        if touched_files:
            in_touched = F.col(f"t.{FILE_COLUMN}").isin(touched_files)
            touched = t.filter(in_touched)
            keys_matched = matched.select(*[F.col(f"t.{k}").alias(k) for k in keys])
            kept_on = reduce(
                Column.__and__, [F.col(f"t.{k}").eqNullSafe(F.col(f"m.{k}")) for k in keys]
            )
            parts.append(
                touched.join(keys_matched.alias("m"), kept_on, how="left_anti").select(
                    *[F.col(f"t.{c}").alias(c) for c in columns]
                )
            )
            if when_matched == "update":
                parts.append(matched.select(*[F.col(f"s.{c}").alias(c) for c in columns]))
        if when_not_matched == "insert":
            parts.append(s.join(t, on, how="left_anti").select(*columns))
        if not parts:
            return WriteResult(committed=False, version=snapshot.version)
        new_rows = reduce(DataFrame.unionByName, parts)
        configuration = DeltaTable(local).metadata().configuration or {}
        enforce_constraints(new_rows, schema=target_schema, configuration=configuration, path=path)
        removed = {_spark_file_to_abs(p) for p in touched_files}
        staged = self._stage(
            local, new_rows, partition_columns, target_schema, configuration=configuration
        )
        read_partitions = {
            tuple(f.partition.get(c) for c in partition_columns) for f in snapshot.files
        }
        staged_partitions = {
            tuple(a.partition.get(c) for c in partition_columns) for a in staged.entries
        }
        watched = read_partitions | staged_partitions

        def replaced(partition: dict[str, Any]) -> bool:
            return tuple(partition.get(c) for c in partition_columns) in watched

        return self._commit(
            local,
            staged,
            replaced=replaced,
            read_version=snapshot.version,
            kind="merge",
            remove_only=removed,
            conflict_on_any=not partition_columns,
            full_schema=target_schema,
        )

    def delete(self, path: str, predicate: str) -> WriteResult:
        """Deletes the rows where the SQL ``predicate`` is true (copy-on-write of their files)."""
        return self.rewrite_rows(path, delete_where=predicate)

    def rewrite_rows(
        self,
        path: str,
        *,
        delete_where: str | None = None,
        update_where: str | None = None,
        assignments: Mapping[str, str] | None = None,
        parameters: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Deletes and updates rows in one commit, copying on write only the files holding them.

        ``parameters`` become a struct of literals named ``p`` beside the rows: conditions read
        them as ``p.<name>``, and Spark folds them into constants (a pattern compiled once). The
        commit records the operation's kind and read version, never its conditions.
        """
        local = local_dir(path)
        table = self._table(path)
        _refuse_unwritable(table, path, "delete" if not assignments else "update")
        snapshot = self._snapshot(path)
        schema = snapshot.schema
        target, drop, change = rewrite_conditions(
            self._scan(snapshot, with_file=True),
            path=path,
            delete_where=delete_where,
            update_where=update_where,
            assignments=assignments,
            parameters=parameters,
        )
        touched_files = sorted(
            r[FILE_COLUMN]
            for r in target.filter(drop | change).select(FILE_COLUMN).distinct().collect()
        )
        if not touched_files:
            return WriteResult(committed=False, version=snapshot.version)
        new_values = dict(assignments or {})
        kept = target.filter(F.col(FILE_COLUMN).isin(touched_files) & ~drop).select(
            *[
                F.when(change, F.expr(new_values[f.name]).cast(f.dataType))
                .otherwise(F.col(f"t.`{f.name}`"))
                .alias(f.name)
                if f.name in new_values
                else F.col(f"t.`{f.name}`").alias(f.name)
                for f in schema.fields
            ]
        )
        configuration = table.metadata().configuration or {}
        if new_values:
            enforce_constraints(kept, schema=schema, configuration=configuration, path=path)
        staged = self._stage(
            local, kept, snapshot.partition_columns, schema, configuration=configuration
        )
        removed = {_spark_file_to_abs(p) for p in touched_files}
        removed_partitions = {
            tuple(f.partition.get(c) for c in snapshot.partition_columns)
            for f in snapshot.files
            if f.abs_path in removed
        }

        def replaced(partition: dict[str, Any]) -> bool:
            return tuple(partition.get(c) for c in snapshot.partition_columns) in removed_partitions

        return self._commit(
            local,
            staged,
            replaced=replaced,
            read_version=snapshot.version,
            kind="delete" if not new_values else "update",
            remove_only=removed,
            conflict_on_any=not snapshot.partition_columns,
            full_schema=schema,
        )

    # ------------------------------------------------------------------ maintenance

    def optimize(
        self, path: str, *, zorder_by: Sequence[str] = (), partitions: PartitionSpec | None = None
    ) -> dict[str, Any]:
        """Compacts small files (or z-orders by ``zorder_by``) with delta-rs's optimizer."""
        local = local_dir(path)
        filters = None
        wanted = normalise_partitions(partitions)
        if wanted:
            filters = [
                (c, "in", [partition_value_string(v) for v in vs]) for c, vs in wanted.items()
            ]
        with self._commit_lock(local):
            table = DeltaTable(local)
            if zorder_by:
                return dict(table.optimize.z_order(list(zorder_by), partition_filters=filters))
            return dict(table.optimize.compact(partition_filters=filters))

    def vacuum(self, path: str, *, retention_hours: int, dry_run: bool = False) -> list[str]:
        """Deletes files no version within ``retention_hours`` needs, orphans and stale staging.

        A full vacuum: files that no commit references (left by a crashed write) go too, once
        older than the retention.
        """
        local = local_dir(path)
        with self._commit_lock(local):
            table = DeltaTable(local)
            removed = list(
                table.vacuum(
                    retention_hours=retention_hours,
                    dry_run=dry_run,
                    enforce_retention_duration=False,
                    full=True,
                )
            )
            staging = Path(local) / STAGING_DIR
            cutoff = time.time() - retention_hours * 3600
            if staging.is_dir():
                for stage in staging.iterdir():
                    if stage.stat().st_mtime <= cutoff:
                        removed.append(str(stage.relative_to(local)))
                        if not dry_run:
                            shutil.rmtree(stage, ignore_errors=True)
        return removed

    def restore(self, path: str, version: int) -> WriteResult:
        """Restores the table to ``version`` as a new commit (history is kept)."""
        local = local_dir(path)
        with self._commit_lock(local):
            metrics = DeltaTable(local).restore(version)
            return WriteResult(
                committed=True, version=DeltaTable(local).version(), metrics=dict(metrics)
            )

    # ------------------------------------------------------------------ internals

    @contextlib.contextmanager
    def _commit_lock(self, local: str) -> Iterator[None]:
        os.makedirs(local, exist_ok=True)
        key = os.path.realpath(local)
        with _THREAD_LOCKS_GUARD:
            thread_lock = _THREAD_LOCKS.setdefault(key, threading.Lock())
        with thread_lock, open(os.path.join(local, LOCK_FILE), "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _stage(
        self,
        local: str,
        df: DataFrame,
        partition_columns: list[str],
        schema: StructType,
        *,
        configuration: Mapping[str, str | None],
    ) -> _Staged:
        indexed = stats_columns(configuration, schema, partition_columns)
        stage_id = uuid.uuid4().hex
        stage = os.path.join(local, STAGING_DIR, stage_id)
        writer = df.write.mode("errorifexists").option("compression", "snappy")
        if partition_columns:
            writer = writer.partitionBy(*partition_columns)
        writer.parquet(stage)
        entries: list[AddAction] = []
        moved: list[str] = []
        rows = 0
        now_ms = int(time.time() * 1000)
        for root, _dirs, names in os.walk(stage):
            for name in sorted(names):
                if not name.endswith(".parquet"):
                    continue
                source = os.path.join(root, name)
                relative = os.path.relpath(source, stage)
                stats, num_rows = file_stats(source, schema, partition_columns, indexed)
                if num_rows == 0:
                    continue
                destination = os.path.join(local, relative)
                os.makedirs(os.path.dirname(destination), exist_ok=True)
                os.replace(source, destination)
                moved.append(destination)
                rows += num_rows
                entries.append(
                    AddAction(
                        path=relative,
                        size=os.path.getsize(destination),
                        partition_values=partition_values_from_dir(relative, partition_columns),
                        modification_time=now_ms,
                        data_change=True,
                        stats=json.dumps(stats),
                    )
                )
        shutil.rmtree(stage, ignore_errors=True)
        typed = [
            _StagedEntry(
                action=a,
                partition={
                    c: typed_partition_value(a.partition_values[c], schema[c].dataType)
                    for c in partition_columns
                },
            )
            for a in entries
        ]
        return _Staged(entries=typed, files=moved, rows=rows)

    def _commit(
        self,
        local: str,
        staged: _Staged,
        *,
        replaced: Any,
        read_version: int,
        kind: str,
        idempotency: Idempotency | None = None,
        new_columns: Sequence[Any] = (),
        full_schema: StructType,
        schema_mode: SchemaMode = "strict",
        remove_only: set[str] | None = None,
        conflict_on_any: bool = False,
    ) -> WriteResult:
        committed = False
        try:
            with self._commit_lock(local):
                table = DeltaTable(local)
                if idempotency and _already_committed(table, idempotency):
                    return WriteResult(committed=False, version=table.version())
                _refuse_unwritable(table, local, kind)
                latest = table.version()
                if remove_only:
                    # A DELETE or MERGE rewrites the files it read. If a concurrent commit removed
                    # one of them (OPTIMIZE does so with dataChange false, which the partition
                    # check below skips), committing would resurrect deleted rows and duplicate
                    # kept ones: refuse instead.
                    live = {e.abs_path for e in file_entries(table, local)}
                    gone = sorted(remove_only - live)
                    if gone:
                        raise ConcurrentModificationError(
                            f"{local}: {len(gone)} file(s) this {kind} rewrites were removed by a "
                            f"commit after version {read_version} (e.g. OPTIMIZE); nothing was "
                            "committed, retry it"
                        )
                if kind != "append":
                    _check_conflicts(
                        local,
                        read_version,
                        latest,
                        replaced,
                        conflict_on_any,
                        kind,
                        spark_schema(table),
                    )
                # Re-check the schema against the latest version: it may have evolved since.
                latest_schema = spark_schema(table)
                check_schema(
                    latest_schema,
                    full_schema,
                    path=local,
                    mode="merge" if new_columns else schema_mode,
                )
                if new_columns:
                    added = [c for c in new_columns if c.name not in latest_schema.fieldNames()]
                    if added:
                        table.alter.add_columns([to_delta_field(c) for c in added])
                        table = DeltaTable(local)
                removes: list[RemoveAction] = []
                if kind != "append":
                    now_ms = int(time.time() * 1000)
                    for entry in file_entries(table, local):
                        chosen = (
                            entry.abs_path in remove_only
                            if remove_only is not None
                            else replaced(entry.partition)
                        )
                        if chosen:
                            removes.append(
                                RemoveAction(
                                    path=unquote(entry.log_path),
                                    data_change=True,
                                    deletion_timestamp=now_ms,
                                    size=entry.size,
                                    partition_values={
                                        c: partition_value_string(v)
                                        for c, v in entry.partition.items()
                                    },
                                )
                            )
                if not staged.entries and not removes:
                    return WriteResult(committed=False, version=latest)
                properties = CommitProperties(
                    custom_metadata={"cardlake.operation": kind, "readVersion": read_version},
                    max_commit_retries=self._commit_retries,
                    app_transactions=(
                        [
                            Transaction(
                                idempotency.app_id, idempotency.version, int(time.time() * 1000)
                            )
                        ]
                        if idempotency
                        else None
                    ),
                )
                table.create_write_transaction(
                    [e.action for e in staged.entries] + removes,
                    "append",
                    table.schema(),
                    partition_by=list(table.metadata().partition_columns) or None,
                    commit_properties=properties,
                )
                committed = True
                version = DeltaTable(local).version()
        finally:
            if not committed:
                for moved in staged.files:
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(moved)
        return WriteResult(
            committed=True,
            version=version,
            files_added=len(staged.entries),
            files_removed=len(removes),
            rows_written=staged.rows,
        )


@dataclass(frozen=True)
class _StagedEntry:
    action: AddAction
    partition: dict[str, Any]


@dataclass(frozen=True)
class _Staged:
    entries: list[_StagedEntry]
    files: list[str]
    rows: int


# ---------------------------------------------------------------------- helpers


def _check_partition_types(schema: StructType, partition_by: Sequence[str], path: str) -> None:
    for col in partition_by:
        if col not in schema.fieldNames():
            raise SchemaMismatchError(f"{path}: partition column {col!r} is not in the schema")
        if not isinstance(schema[col].dataType, _PARTITION_TYPES):
            raise SchemaMismatchError(
                f"{path}: partition column {col!r} has type {schema[col].dataType.simpleString()}; "
                "use string, integer, date, boolean or timestamp partitions"
            )


def _refuse_unwritable(table: DeltaTable, path: str, kind: str) -> None:
    protocol = table.protocol()
    has_dvs = (
        kind != "append"
        and "deletionVectors" in set(protocol.reader_features or [])
        and pa.table(table.deletion_vectors()).num_rows > 0
    )
    refuse_unwritable(
        path=path,
        kind=kind,
        writer_features=set(protocol.writer_features or []),
        configuration=table.metadata().configuration or {},
        schema=spark_schema(table),
        has_deletion_vectors=has_dvs,
    )


def _already_committed(table: DeltaTable, idempotency: Idempotency) -> bool:
    committed = table.transaction_version(idempotency.app_id)
    return committed is not None and committed >= idempotency.version


def _check_conflicts(
    local: str,
    read_version: int,
    latest: int,
    replaced: Any,
    conflict_on_any: bool,
    kind: str,
    schema: StructType,
) -> None:
    # delta-rs 1.6 does not detect these; replay the commits since our read ourselves.
    for version in range(read_version + 1, latest + 1):
        log = Path(local) / "_delta_log" / f"{version:020d}.json"
        if not log.exists():
            raise ConcurrentModificationError(
                f"{local}: commit {version} is no longer in the log; cannot check it against this "
                f"{kind}, so nothing was committed"
            )
        for line in log.read_text().splitlines():
            action = json.loads(line) if line.strip() else {}
            if "metaData" in action or "protocol" in action:
                raise ConcurrentModificationError(
                    f"{local}: the table's metadata changed in version {version} after this {kind} "
                    f"read version {read_version}; nothing was committed, retry it"
                )
            for kind_key in ("add", "remove"):
                change = action.get(kind_key)
                if not change or not change.get("dataChange", True):
                    continue
                values = change.get("partitionValues") or {}
                typed = {c: typed_partition_value(v, schema[c].dataType) for c, v in values.items()}
                if conflict_on_any or replaced(typed):
                    raise ConcurrentModificationError(
                        f"{local}: version {version} {'added' if kind_key == 'add' else 'removed'} "
                        f"data in partition {values or '(whole table)'} that this {kind} (read at "
                        f"version {read_version}) replaces; nothing was committed, retry it"
                    )


def _check_replace_partitions(
    df: DataFrame,
    wanted: dict[str, list[Any]],
    table_partitions: list[str],
    schema: StructType,
    path: str,
) -> None:
    unknown = sorted(set(wanted) - set(table_partitions))
    if unknown:
        raise TableError(f"{path}: {unknown} are not partition columns ({table_partitions})")
    inside = reduce(
        Column.__and__,
        [
            F.coalesce(
                F.col(c).isin([typed_partition_value(v, schema[c].dataType) for v in vs]),
                F.lit(False),
            )
            for c, vs in wanted.items()
        ],
    )
    outside = df.filter(~inside).select(*wanted).limit(1).collect()
    if outside:
        raise TableError(
            f"overwrite of {path} partitions {wanted}: the data has rows outside them, e.g. "
            f"{outside[0].asDict()}"
        )


def _hadoop_glob_escape(path: str) -> str:
    # Spark globs the paths it is given; a partition value with glob characters must not expand.
    return "".join("\\" + ch if ch in "[]{}*?\\" else ch for ch in path)


def _spark_file_to_abs(spark_path: str) -> str:
    return unquote(urlparse(spark_path).path)


__all__ = ["DeltaRsEngine"]
