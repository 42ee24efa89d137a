"""SQL access: every lake table by name in the databases ``bronze``, ``silver`` and ``gold``.

Wherever the session has Delta's connector (the delta-spark engine, or the delta-rs engine in a
session that loaded it), tables are registered ``USING delta`` at their location: Delta's own
scan, with partition and column pruning and data skipping. Without the connector they are
registered through ``cardlake_delta``, a Spark Python data source that resolves the table's
latest snapshot with delta-rs each time a query is planned and prunes files by the partition
filters Spark pushes down, so ``select ... from gold.kpi_monthly`` always reads the latest
commit, even one made by another process after the table was registered.

The SQL server on the delta-rs engine reads instead through :func:`mirror_latest`: a folder of
links to exactly the latest snapshot's data files, which Spark scans as a plain Parquet table
(column pruning, vectorised decoding); the server re-links a table when its log has a new commit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql.datasource import (
    DataSource,
    DataSourceReader,
    EqualNullSafe,
    EqualTo,
    Filter,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    InputPartition,
    IsNotNull,
    IsNull,
    LessThan,
    LessThanOrEqual,
)
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType

from cardlake.config import is_object_store, local_path
from cardlake.tables.base import TableError

if TYPE_CHECKING:
    from deltalake import DeltaTable
    from pyspark.sql import SparkSession

SQL_LAYERS = ("bronze", "silver", "gold")
_COMMIT_FILE = re.compile(r"\d{20}\.json")
SOURCE_NAME = "cardlake_delta"
PATH_OPTION = "table_path"  # not "path": the catalog turns that one into a location


class _FilePartition(InputPartition):
    def __init__(self, file_path: str | None, partition: dict[str, Any]) -> None:
        super().__init__(file_path)
        self.file_path = file_path
        self.partition = partition


class _LatestSnapshotReader(DataSourceReader):
    def __init__(self, path: str, schema: StructType) -> None:
        from deltalake import DeltaTable

        from cardlake.tables.delta_rs import file_entries, local_dir, refuse_unsupported

        local = local_dir(path)
        table = DeltaTable(local)
        refuse_unsupported(table, path)
        self._schema = schema
        self._partition_columns = list(table.metadata().partition_columns)
        self._files = [(e.abs_path, e.partition) for e in file_entries(table, local)]

    def pushFilters(self, filters: list[Filter]) -> Iterator[Filter]:
        """Prunes files by partition value; every other filter is left to Spark."""
        for condition in filters:
            test = _partition_test(condition, self._partition_columns)
            if test is None:
                yield condition
            else:
                self._files = [(path, part) for path, part in self._files if test(part)]

    def partitions(self) -> Sequence[InputPartition]:
        if not self._files:
            return [_FilePartition(None, {})]
        return [_FilePartition(path, partition) for path, partition in self._files]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        assert isinstance(partition, _FilePartition)
        target = to_arrow_schema(self._schema)
        if partition.file_path is None:
            return
        parquet = pq.ParquetFile(partition.file_path)
        present = set(parquet.schema_arrow.names)
        data_columns = [
            f.name for f in target if f.name not in self._partition_columns and f.name in present
        ]
        for batch in parquet.iter_batches(columns=data_columns, batch_size=65536):
            columns = []
            for field in target:
                if field.name in self._partition_columns:
                    value = partition.partition.get(field.name)
                    columns.append(pa.array([value] * batch.num_rows).cast(field.type))
                elif field.name in present:
                    columns.append(batch.column(field.name).cast(field.type))
                else:  # added later by schema evolution: absent from older files
                    columns.append(pa.nulls(batch.num_rows, field.type))
            yield pa.RecordBatch.from_arrays(columns, schema=target)


def _partition_test(
    condition: Filter, partition_columns: list[str]
) -> Callable[[dict[str, Any]], bool] | None:
    # Comparisons of one partition column with literals; None for anything else.
    attribute = getattr(condition, "attribute", None)
    if not attribute or len(attribute) != 1 or attribute[0] not in partition_columns:
        return None
    column = attribute[0]
    value = getattr(condition, "value", None)

    def compare(op: Callable[[Any, Any], bool]) -> Callable[[dict[str, Any]], bool]:
        def test(part: dict[str, Any]) -> bool:
            have = part.get(column)
            if have is None or value is None:
                return False
            try:
                return op(have, value)
            except TypeError:
                return True  # incomparable types: keep the file, Spark filters the rows

        return test

    if isinstance(condition, EqualTo):
        return compare(lambda a, b: a == b)
    if isinstance(condition, EqualNullSafe):
        return lambda part: part.get(column) == value
    if isinstance(condition, In):
        wanted = list(condition.value)
        return lambda part: part.get(column) in wanted
    if isinstance(condition, GreaterThan):
        return compare(lambda a, b: a > b)
    if isinstance(condition, GreaterThanOrEqual):
        return compare(lambda a, b: a >= b)
    if isinstance(condition, LessThan):
        return compare(lambda a, b: a < b)
    if isinstance(condition, LessThanOrEqual):
        return compare(lambda a, b: a <= b)
    if isinstance(condition, IsNull):
        return lambda part: part.get(column) is None
    if isinstance(condition, IsNotNull):
        return lambda part: part.get(column) is not None
    return None


class CardlakeDeltaSource(DataSource):
    """``spark.read.format("cardlake_delta").option("table_path", ...)``: the latest commit.

    Spark 4.1 does not hand a catalog table's OPTIONS to a Python data source, so catalog tables
    use :func:`source_for`: a subclass per table that carries its path.
    """

    table_path: str | None = None

    @classmethod
    def name(cls) -> str:
        return SOURCE_NAME

    def _path(self) -> str:
        path = self.table_path or self.options.get(PATH_OPTION)
        if not path:
            raise ValueError(f"{SOURCE_NAME} needs the option {PATH_OPTION!r}")
        return path

    def schema(self) -> StructType:
        from deltalake import DeltaTable

        from cardlake.tables.delta_rs import spark_schema

        return spark_schema(DeltaTable(self._path()))

    def reader(self, schema: StructType) -> DataSourceReader:
        return _LatestSnapshotReader(self._path(), schema)


def source_for(layer: str, name: str, path: str) -> type[CardlakeDeltaSource]:
    """A data source class bound to one table (pickled by value into Spark's Python workers)."""
    short = f"{SOURCE_NAME}_{layer}_{name}"
    return type(
        f"CardlakeDeltaSource_{layer}_{name}",
        (CardlakeDeltaSource,),
        {"table_path": path, "name": classmethod(lambda cls: short)},
    )


def _quote(path: str) -> str:
    return path.replace("\\", "\\\\").replace("'", "\\'")


def _reads_delta_natively(spark: SparkSession) -> bool:
    from cardlake.spark import DELTA_CATALOG, delta_spark_loaded

    catalog_class = spark.conf.get("spark.sql.catalog.spark_catalog", "") or ""
    return catalog_class == DELTA_CATALOG and delta_spark_loaded(spark)


def _registers_delta(spark: SparkSession, engine: str) -> bool:
    """Whether tables go into the catalog ``USING delta`` (else through the Python source)."""
    return engine == "delta-spark" or _reads_delta_natively(spark)


def register_table(
    spark: SparkSession,
    *,
    layer: str,
    name: str,
    path: str,
    engine: str,
    registered: dict[str, tuple[str, str]] | None = None,
) -> None:
    """Makes ``layer.name`` queryable in Spark SQL at ``path`` (idempotent).

    A name the catalog already holds for another lake's table (a notebook or test that opened
    another lake in the same session) is pointed at ``path``: the old entry, an external table,
    is dropped (its files stay). ``registered``: the layer's entries as
    :func:`catalog_entries` gives them, when the caller has them already.
    """
    if layer not in SQL_LAYERS:
        return
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{layer}`")
    if _registers_delta(spark, engine):
        # Whichever engine commits, a session with Delta's catalog reads the table natively
        # (and Delta's catalog does not take Python data-source tables).
        if registered is None:
            registered = catalog_entries(spark, layer, name)
        entry = registered.get(name)
        if entry is not None:
            kind, location = entry
            if _same_location(location, path):
                return
            if kind != "EXTERNAL":
                what = {"MANAGED": "managed table", "VIEW": "view"}.get(kind, "table")
                raise TableError(
                    f"{layer}.{name}: the SQL catalog holds a {what} of that name, not this "
                    f"lake's table; not replacing it with {path} (drop it first)"
                )
            spark.sql(f"DROP TABLE `{layer}`.`{name}`")  # external: the catalog entry only
        spark.sql(
            f"CREATE TABLE IF NOT EXISTS `{layer}`.`{name}` USING delta LOCATION '{_quote(path)}'"
        )
        return
    source = source_for(layer, name, path)
    spark.dataSource.register(source)
    spark.sql(f"DROP TABLE IF EXISTS `{layer}`.`{name}`")  # picks up an evolved schema
    spark.sql(f"CREATE TABLE `{layer}`.`{name}` USING {source.name()}")


def catalog_entries(
    spark: SparkSession, layer: str, pattern: str = "*"
) -> dict[str, tuple[str, str]]:
    """``name -> (type, location)`` of the catalog's tables in ``layer`` matching ``pattern``
    (``EXTERNAL``, ``file:/...``), read from the catalog alone (no table is opened)."""
    if not spark.catalog.databaseExists(layer):
        return {}
    found = {}
    listed = spark.sql(f"SHOW TABLE EXTENDED IN `{layer}` LIKE '{pattern}'").collect()
    for row in listed:
        if row["isTemporary"]:
            continue
        fields = dict(
            line.split(": ", 1) for line in row["information"].splitlines() if ": " in line
        )
        found[row["tableName"]] = (fields.get("Type", ""), fields.get("Location", ""))
    return found


def _same_location(location: str, path: str) -> bool:
    return _plain(location) == _plain(path)


def _plain(where: str) -> str:
    # The catalog writes a local folder as a file: URI ("file:/tmp/lake/gold/x").
    for scheme in ("file://", "file:"):
        if where.startswith(scheme) and where[len(scheme) :].startswith("/"):
            return where[len(scheme) :].rstrip("/")
    return where.rstrip("/")


def _has_commit(path: str) -> bool:
    # A writer killed during a table's first commit leaves a log folder with no commit in it:
    # no table yet (Delta refuses to register it), and the next first write creates it.
    log_dir = os.path.join(path, "_delta_log")
    if not os.path.isdir(log_dir):
        return False
    return any(
        _COMMIT_FILE.fullmatch(name) or name == "_last_checkpoint" for name in os.listdir(log_dir)
    )


def register_lake(spark: SparkSession, *, lake_root: str, engine: str) -> list[str]:
    """Registers every Delta table found under ``<lake_root>/{bronze,silver,gold}``.

    Returns:
        The qualified names registered, e.g. ``["gold.kpi_monthly", ...]``.
    """
    names = []
    for layer in SQL_LAYERS:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{layer}`")
    native = _registers_delta(spark, engine)
    entries = {layer: catalog_entries(spark, layer) if native else {} for layer in SQL_LAYERS}
    for layer, name, path in committed_tables(lake_root, spark=spark):
        register_table(
            spark, layer=layer, name=name, path=path, engine=engine, registered=entries[layer]
        )
        names.append(f"{layer}.{name}")
    return names


def committed_tables(
    lake_root: str, layers: Sequence[str] = SQL_LAYERS, *, spark: SparkSession | None = None
) -> list[tuple[str, str, str]]:
    """``(layer, name, path)`` of every table of ``layers`` with a commit, sorted.

    The table layer has no list of tables: a local lake's folders are listed; an object
    store's (``s3a://``) tables are found by one glob of their log files through ``spark``'s
    Hadoop file system, which has the store's settings.
    """
    if is_object_store(lake_root):
        if spark is None:
            raise ValueError(f"{lake_root}: listing an object store's tables needs a session")
        return _committed_tables_on(spark, lake_root, layers)
    return _committed_tables(lake_root, layers)


def _committed_tables(lake_root: str, layers: Sequence[str]) -> list[tuple[str, str, str]]:
    root = local_path(lake_root)
    found = []
    for layer in layers:
        folder = os.path.join(root, layer)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if _has_commit(path):
                found.append((layer, name, path))
    return found


def _committed_tables_on(
    spark: SparkSession, lake_root: str, layers: Sequence[str]
) -> list[tuple[str, str, str]]:
    jvm = spark._jvm
    assert jvm is not None  # a classic session
    root = lake_root.rstrip("/")
    pattern = jvm.org.apache.hadoop.fs.Path(f"{root}/{{{','.join(layers)}}}/*/_delta_log/*")
    statuses = pattern.getFileSystem(spark._jsc.hadoopConfiguration()).globStatus(pattern) or []
    found = set()
    for status in statuses:
        *_, layer, name, _log, file = str(status.getPath().toString()).split("/")
        if _COMMIT_FILE.fullmatch(file) or file == "_last_checkpoint":
            found.add((layer, name, f"{root}/{layer}/{name}"))
    return sorted(found)


@dataclass(frozen=True)
class MirroredSnapshot:
    """One version of a table as a folder Spark's Parquet reader scans: links, Hive-style folders.

    Attributes:
        version: the Delta version linked.
        folder: ``<into>/v<version>``, holding a link per data file at the file's path in the table.
        schema: the table's schema (logical names, the log's column order).
        partition_columns: the table's partition columns, in the folders' order.
    """

    version: int
    folder: str
    schema: StructType
    partition_columns: tuple[str, ...]


def mirror_latest(table: DeltaTable, path: str, into: str) -> MirroredSnapshot | None:
    """Links every data file of ``table``'s loaded snapshot under ``into/v<version>``.

    Returns:
        The mirror, or None where a plain Parquet scan would read the table wrongly (deletion
        vectors, column mapping, folders that do not spell the logged partition values): such a
        table stays on :class:`CardlakeDeltaSource`, which refuses the first two with a clear error.
    """
    from cardlake.tables.base import UnsupportedTableFeatureError
    from cardlake.tables.delta_rs import (
        Snapshot,
        file_entries,
        folders_agree_with_log,
        local_dir,
        refuse_unsupported,
        spark_schema,
    )

    local = local_dir(path)
    try:
        refuse_unsupported(table, path)
    except UnsupportedTableFeatureError:
        return None
    snapshot = Snapshot(
        path=path,
        version=table.version(),
        schema=spark_schema(table),
        partition_columns=list(table.metadata().partition_columns),
        files=file_entries(table, local),
    )
    root = local + os.sep
    if not folders_agree_with_log(snapshot) or any(
        not f.abs_path.startswith(root) for f in snapshot.files
    ):
        return None
    folder = os.path.join(into, f"v{snapshot.version}")
    os.makedirs(folder, exist_ok=True)  # a table without files is an empty folder
    for entry in snapshot.files:
        link = os.path.join(folder, entry.abs_path[len(root) :])
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if not os.path.lexists(link):
            os.symlink(entry.abs_path, link)
    return MirroredSnapshot(
        snapshot.version, folder, snapshot.schema, tuple(snapshot.partition_columns)
    )
