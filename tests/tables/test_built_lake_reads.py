"""Every Delta table of the built lake reads the same with plain ``deltalake`` as with Spark.

The pipeline writes the lake with the default engine, delta-spark. A reader outside the JVM (the
delta-rs engine, a notebook, DuckDB through Arrow) must see the same rows, so each table is read
twice, by Spark's Delta reader and by ``deltalake.DeltaTable(path).to_pyarrow_table()`` with no
help from Cardlake, both brought to Arrow and compared by one function, :func:`differences`:

- columns: the same names in the same order, of the same types up to Arrow's spellings of one
  type (``string``, ``large_string`` and ``string_view``; the name of a list's item field);
- rows: the same number, and the same multiset of rows, each row a tuple of canonical values:
  timestamps and dates in ISO 8601 keeping their zone (a UTC instant never equals a zoneless
  one), decimals by their exact digits at the column's scale, floats by ``repr`` (so NaN equals
  NaN and -0.0 differs from 0.0), maps as their entries sorted by key (a map has no order),
  arrays in their order, structs field by field.

A difference names the table, the row counts and the columns whose values differ, never a value:
the lake holds (synthetic) personal data and card numbers.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from tests.lake_fixture import BuiltLake

from cardlake.spark import delta_spark_loaded

Canonical = Callable[[Any], Hashable]
READERS = 3  # tables read at once


def type_name(data_type: pa.DataType) -> str:
    """The type with Arrow's alternative spellings of one logical type made the same."""
    if (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or (pa.types.is_string_view(data_type))
    ):
        return "string"
    if pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type):
        return "binary"
    if pa.types.is_map(data_type):
        return f"map<{type_name(data_type.key_type)}, {type_name(data_type.item_type)}>"
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return f"array<{type_name(data_type.value_type)}>"
    if pa.types.is_struct(data_type):
        return "struct<" + ", ".join(f"{f.name}: {type_name(f.type)}" for f in data_type) + ">"
    return str(data_type)


def canonical(data_type: pa.DataType) -> Canonical | None:
    """How a value of ``data_type`` becomes hashable and comparable; None: as it is."""
    if pa.types.is_map(data_type):
        key, item = canonical(data_type.key_type), canonical(data_type.item_type)

        def entries(value: Any) -> Hashable:
            pairs = [(key(k) if key else k, item(v) if item else v) for k, v in value]
            return ("map", tuple(sorted(pairs, key=repr)))

        return _or_none(entries)
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        element = canonical(data_type.value_type)
        return _or_none(lambda value: tuple(element(v) if element else v for v in value))
    if pa.types.is_struct(data_type):
        fields = [(f.name, canonical(f.type)) for f in data_type]
        return _or_none(lambda value: tuple(c(value[n]) if c else value[n] for n, c in fields))
    if pa.types.is_floating(data_type):
        return _or_none(repr)
    if pa.types.is_timestamp(data_type) or pa.types.is_date(data_type):
        return _or_none(lambda value: value.isoformat())
    if pa.types.is_decimal(data_type):
        return _or_none(str)
    if pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type):
        return _or_none(bytes.hex)
    return None  # integers, strings, booleans: Python's values compare exactly


def _or_none(convert: Callable[[Any], Hashable]) -> Canonical:
    return lambda value: None if value is None else convert(value)


def column_values(table: pa.Table, name: str) -> list[Hashable]:
    column = table.column(name)
    convert = canonical(column.type)
    values = column.to_pylist()
    return values if convert is None else [convert(v) for v in values]


def differences(spark_read: pa.Table, rs_read: pa.Table) -> list[str]:
    """What differs between two reads of one table: column names, types, counts, rows.

    Names columns and counts only, never values.
    """
    if spark_read.column_names != rs_read.column_names:
        return [f"columns differ: Spark {spark_read.column_names}, delta-rs {rs_read.column_names}"]
    problems = [
        f"column {name!r} is {type_name(a.type)} in Spark, {type_name(b.type)} in delta-rs"
        for name, a, b in zip(spark_read.column_names, spark_read.schema, rs_read.schema,
                              strict=True)
        if type_name(a.type) != type_name(b.type)
    ]  # fmt: skip
    if spark_read.num_rows != rs_read.num_rows:
        problems.append(f"{spark_read.num_rows} rows in Spark, {rs_read.num_rows} in delta-rs")
    names = spark_read.column_names
    spark_columns = {n: column_values(spark_read, n) for n in names}
    rs_columns = {n: column_values(rs_read, n) for n in names}
    spark_rows = Counter(zip(*spark_columns.values(), strict=True))
    rs_rows = Counter(zip(*rs_columns.values(), strict=True))
    if spark_rows != rs_rows:
        changed = [n for n in names if Counter(spark_columns[n]) != Counter(rs_columns[n])]
        problems.append(
            f"{(spark_rows - rs_rows).total()} row(s) only in Spark's read and "
            f"{(rs_rows - spark_rows).total()} only in delta-rs's; values differ in columns "
            f"{changed or '(none alone: only their combinations in rows)'}"
        )
    return problems


def delta_tables(lake_root: Path) -> list[Path]:
    """Every folder under ``lake_root`` holding a ``_delta_log`` (not looking inside tables)."""
    found = []
    for folder, subfolders, _files in os.walk(lake_root):
        if "_delta_log" in subfolders:
            found.append(Path(folder))
            subfolders.clear()
    return sorted(found)


# ---------------------------------------------------------------------- the comparison itself

_TS = datetime(2025, 6, 30, 23, 59, 59, 123456, tzinfo=UTC)
_TYPES = pa.schema(
    [
        ("id", pa.int64()),
        ("amount", pa.decimal128(18, 2)),
        ("score", pa.float64()),
        ("at", pa.timestamp("us", tz="UTC")),
        ("day", pa.date32()),
        ("lineage", pa.map_(pa.string(), pa.string())),
        ("reasons", pa.list_(pa.string())),
        ("card", pa.struct([("brand", pa.string()), ("last4", pa.string())])),
    ]
)
_ROWS = [
    {"id": 1, "amount": Decimal("10.50"), "score": float("nan"), "at": _TS,
     "day": date(2025, 6, 30), "lineage": [("crm", "c1"), ("bank", "b1")],
     "reasons": ["late", "high"], "card": {"brand": "visa", "last4": "0001"}},
    {"id": None, "amount": None, "score": None, "at": None, "day": None, "lineage": None,
     "reasons": None, "card": None},
    {"id": 3, "amount": Decimal("-0.01"), "score": 0.5, "at": _TS, "day": date(2024, 1, 1),
     "lineage": [], "reasons": [], "card": {"brand": None, "last4": "0003"}},
]  # fmt: skip


def _table(rows: list[dict[str, Any]], schema: pa.Schema = _TYPES) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def test_reads_with_rows_in_another_order_and_map_entries_reordered_are_the_same() -> None:
    reordered = [dict(r) for r in reversed(_ROWS)]
    reordered[-1]["lineage"] = [("bank", "b1"), ("crm", "c1")]
    other_spelling = _TYPES.set(_TYPES.get_field_index("reasons"),
                                pa.field("reasons", pa.large_list(pa.large_string())))  # fmt: skip
    assert differences(_table(_ROWS), _table(reordered, other_spelling)) == []


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("amount", Decimal("10.51"), "['amount']"),
        ("score", 0.0, "['score']"),  # NaN is not 0.0
        ("lineage", [("crm", "c1"), ("bank", "b2")], "['lineage']"),
        ("reasons", ["high", "late"], "['reasons']"),  # an array's order is its value
        ("card", {"brand": "visa", "last4": "0002"}, "['card']"),
        ("at", _TS.replace(microsecond=123457), "['at']"),
    ],
)
def test_one_changed_value_in_one_row_is_a_difference_naming_only_its_column(
    column: str, value: Any, expected: str
) -> None:
    changed = [dict(r) for r in _ROWS]
    changed[0][column] = value
    assert differences(_table(_ROWS), _table(changed)) == [
        f"1 row(s) only in Spark's read and 1 only in delta-rs's; values differ in columns "
        f"{expected}"
    ]


def test_a_zoneless_timestamp_a_missing_row_or_a_swapped_pair_is_a_difference() -> None:
    zoneless = _TYPES.set(3, pa.field("at", pa.timestamp("us")))
    naive = [{**r, "at": r["at"].replace(tzinfo=None) if r["at"] else None} for r in _ROWS]
    assert differences(_table(_ROWS), _table(naive, zoneless)) == [
        "column 'at' is timestamp[us, tz=UTC] in Spark, timestamp[us] in delta-rs",
        "2 row(s) only in Spark's read and 2 only in delta-rs's; values differ in columns "
        "['at']",  # the two rows with a timestamp
    ]
    assert differences(_table(_ROWS), _table(_ROWS[:2])) == [
        "3 rows in Spark, 2 in delta-rs",
        "1 row(s) only in Spark's read and 0 only in delta-rs's; values differ in columns "
        "['id', 'amount', 'score', 'at', 'day', 'lineage', 'reasons', 'card']",
    ]
    # Two rows trading their amounts: every column holds the same values, the rows differ.
    swapped = [dict(r) for r in _ROWS]
    swapped[0]["amount"], swapped[2]["amount"] = _ROWS[2]["amount"], _ROWS[0]["amount"]
    assert differences(_table(_ROWS), _table(swapped)) == [
        "2 row(s) only in Spark's read and 2 only in delta-rs's; values differ in columns "
        "(none alone: only their combinations in rows)"
    ]


# ---------------------------------------------------------------------- the built lake


@pytest.mark.slow
def test_every_table_of_the_built_lake_reads_the_same_with_deltalake_as_with_spark(
    built_lake: BuiltLake, spark: SparkSession
) -> None:
    if not delta_spark_loaded(spark):
        from tests.conftest import delta_spark_missing

        pytest.skip(delta_spark_missing())
    tables = delta_tables(built_lake.lake_root)
    # What the pipeline writes: the three layers and the operational tables beside them.
    layers = {t.relative_to(built_lake.lake_root).parts[0] for t in tables}
    assert {"bronze", "silver", "gold", "_ops"} <= layers, layers

    def compare(path: Path) -> tuple[int, list[str]]:
        spark_read = spark.read.format("delta").load(str(path)).toArrow()
        rs_read = DeltaTable(str(path)).to_pyarrow_table()
        return spark_read.num_rows, differences(spark_read, rs_read)

    # Each Spark read is three small jobs (Delta's log replay, then the scan) whose time is
    # mostly waiting; reading a few tables at once took 59 s where one at a time took 86 s
    # (35 tables, the same busy machine).
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        results = dict(zip(tables, pool.map(compare, tables), strict=True))
    problems = {
        str(path.relative_to(built_lake.lake_root)): found
        for path, (_rows, found) in results.items()
        if found
    }
    assert problems == {}
    assert sum(rows for rows, _found in results.values()) > 0
