"""The table-layer contract shared by both Delta engines: results, errors and schema checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol

from pyspark.sql import Column, DataFrame
from pyspark.sql.types import DataType, StructField, StructType

SchemaMode = Literal["strict", "merge"]
PartitionSpec = Mapping[str, Any]


class TableError(RuntimeError):
    """Base class of every table-layer error."""


PARAMETERS = "p"  # the struct a rewrite's conditions read their parameters from


def rewrite_conditions(
    rows: DataFrame,
    *,
    path: str,
    delete_where: str | None,
    update_where: str | None,
    assignments: Mapping[str, str] | None,
    parameters: Mapping[str, str] | None,
) -> tuple[DataFrame, Column, Column]:
    """What a ``rewrite_rows`` of either engine evaluates: the rows as ``t`` with the parameters
    bound as literals in a struct ``p`` beside them, and the delete and update conditions (false
    where absent or null; the update only with assignments)."""
    from pyspark.sql import functions as F

    target = rows.alias("t")
    if parameters:
        if PARAMETERS in rows.schema.fieldNames():
            raise TableError(f"{path} has a column named p, the name parameters are bound to")
        bound = F.struct(*[F.lit(v).alias(k) for k, v in parameters.items()])
        target = target.select("*", bound.alias(PARAMETERS))
    drop = F.coalesce(F.expr(delete_where), F.lit(False)) if delete_where else F.lit(False)
    change = (
        F.coalesce(F.expr(update_where), F.lit(False))
        if update_where and assignments
        else F.lit(False)
    )
    return target, drop, change


class TableNotFoundError(TableError):
    """The path holds no Delta table."""


class SchemaMismatchError(TableError):
    """Written data does not match the table's schema; the message names the columns."""


class ConcurrentModificationError(TableError):
    """A concurrent commit changed data this operation read or replaces; nothing was committed."""


class ConstraintViolationError(TableError):
    """Written rows break a NOT NULL, CHECK, invariant or generated-column rule of the table."""


class UnsupportedTableFeatureError(TableError):
    """The table uses a Delta feature this engine cannot honour; refused rather than misread."""


@dataclass(frozen=True)
class WriteResult:
    """What one write did.

    Attributes:
        committed: False when nothing was committed (an idempotent re-run, or nothing to change).
        version: the table version after the operation.
        files_added: data files added by the commit.
        files_removed: data files logically removed by the commit.
        rows_written: rows in the added files.
    """

    committed: bool
    version: int
    files_added: int = 0
    files_removed: int = 0
    rows_written: int = 0
    metrics: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Idempotency:
    """Delta's application transaction: ``(app_id, version)`` commits at most once.

    A write whose ``version`` is not above the last one committed for ``app_id`` is skipped.
    Jobs use ``app_id = "<job>/<table>/<month>"`` and ``version`` = a number that grows with the
    inputs (for example the input table's version), so a re-run with the same inputs commits
    nothing and a run over new inputs commits again.
    """

    app_id: str
    version: int


class DeltaEngine(Protocol):
    """Operations every engine provides on a table addressed by its path (URI or folder).

    ``append`` and ``overwrite`` create an absent table from the frame's schema (made
    nullable, column metadata kept), with ``properties`` as its table properties; for an
    existing table ``properties`` is ignored.
    """

    name: str

    def exists(self, path: str) -> bool: ...
    def create(
        self,
        path: str,
        schema: StructType,
        *,
        partition_by: Sequence[str] = (),
        description: str | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> bool: ...
    def schema(self, path: str) -> StructType: ...
    def partition_columns(self, path: str) -> list[str]: ...
    def version(self, path: str) -> int: ...
    def read(
        self,
        path: str,
        *,
        version: int | None = None,
        timestamp: datetime | str | None = None,
        partitions: PartitionSpec | None = None,
    ) -> DataFrame: ...
    def append(
        self,
        path: str,
        df: DataFrame,
        *,
        partition_by: Sequence[str] = (),
        idempotency: Idempotency | None = None,
        schema_mode: SchemaMode = "strict",
        properties: Mapping[str, str] | None = None,
    ) -> WriteResult: ...
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
    ) -> WriteResult: ...
    def merge(
        self,
        path: str,
        source: DataFrame,
        *,
        keys: Sequence[str],
        when_matched: Literal["update", "delete", "ignore"] = "update",
        when_not_matched: Literal["insert", "ignore"] = "insert",
        update_condition: str | None = None,
    ) -> WriteResult: ...
    def delete(self, path: str, predicate: str) -> WriteResult: ...
    def rewrite_rows(
        self,
        path: str,
        *,
        delete_where: str | None = None,
        update_where: str | None = None,
        assignments: Mapping[str, str] | None = None,
        parameters: Mapping[str, str] | None = None,
    ) -> WriteResult: ...
    def history(self, path: str, limit: int | None = None) -> list[dict[str, Any]]: ...
    def optimize(
        self, path: str, *, zorder_by: Sequence[str] = (), partitions: PartitionSpec | None = None
    ) -> dict[str, Any]: ...
    def vacuum(self, path: str, *, retention_hours: int, dry_run: bool = False) -> list[str]: ...
    def restore(self, path: str, version: int) -> WriteResult: ...


def _type_name(data_type: DataType) -> str:
    return data_type.simpleString()


def _strip_nullability(data_type: DataType) -> str:
    # Nullability and field metadata are not part of the contract: Spark's inferred nullability
    # is unreliable, and Delta columns are nullable unless declared otherwise.
    return _type_name(data_type)


def check_schema(
    table_schema: StructType, data_schema: StructType, *, path: str, mode: SchemaMode
) -> list[StructField]:
    """Checks data against the table schema by column name.

    Returns:
        The columns to add to the table (only in ``merge`` mode).

    Raises:
        SchemaMismatchError: a table column is missing from the data, a column's type differs,
            or (in ``strict`` mode) the data has columns the table lacks. The message names them.
    """
    table_fields = {f.name: f for f in table_schema.fields}
    data_fields = {f.name: f for f in data_schema.fields}
    missing = [name for name in table_fields if name not in data_fields]
    extra = [f for name, f in data_fields.items() if name not in table_fields]
    changed = [
        f"{name} (table: {_type_name(table_fields[name].dataType)}, "
        f"data: {_type_name(data_fields[name].dataType)})"
        for name in table_fields
        if name in data_fields
        and _strip_nullability(table_fields[name].dataType)
        != _strip_nullability(data_fields[name].dataType)
    ]
    problems = []
    if missing:
        problems.append(f"missing columns {missing}")
    if changed:
        problems.append(f"type changed: {', '.join(changed)}")
    if extra and mode == "strict":
        problems.append(
            f"unexpected columns {[f.name for f in extra]} "
            "(pass schema_mode='merge' to add them as new nullable columns)"
        )
    if problems:
        raise SchemaMismatchError(
            f"write to {path} does not match the table schema: {'; '.join(problems)}"
        )
    return [StructField(f.name, f.dataType, nullable=True) for f in extra]


def conform(df: DataFrame, schema: StructType) -> DataFrame:
    """Selects ``df``'s columns in the table's order (appends match columns by name)."""
    return df.select(*[df[f.name] for f in schema.fields])


def partition_value_string(value: Any) -> str | None:
    """Serialises a partition value as the Delta log stores it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def normalise_partitions(partitions: PartitionSpec | None) -> dict[str, list[Any]] | None:
    """``{"month": "2025-06"}`` or ``{"month": ["2025-05", "2025-06"]}`` to lists of values."""
    if partitions is None:
        return None
    return {
        col: list(values) if isinstance(values, list | tuple | set | frozenset) else [values]
        for col, values in partitions.items()
    }


def nullable(schema: StructType) -> StructType:
    """``schema`` with every top-level column nullable (metadata kept), as a new table takes it."""
    return StructType([StructField(f.name, f.dataType, True, f.metadata) for f in schema.fields])
