"""Masks over inline rows whose masked values are written out by hand."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from cardlake.governance.masking import mask_sql

SCHEMA = T.StructType(
    [
        T.StructField("name", T.StringType()),
        T.StructField("email", T.StringType()),
        T.StructField("phone", T.StringType()),
        T.StructField("date_of_birth", T.DateType()),
        T.StructField("note", T.StringType()),
        T.StructField("credit_score", T.IntegerType()),
    ]
)
ROWS = [
    (
        "Ada  mary Lovelace",
        "ada.lovelace@example.org",
        "+44 (20) 7946-0018",
        dt.date(1815, 12, 10),
        "called about card 4111",
        710,
    ),
    (None, None, None, None, None, None),
    ("Ö", "noatsign", "12", dt.date(2000, 1, 1), "", 0),
]


def _masked(spark: SparkSession, masks: dict[str, str | None]) -> list[tuple[object, ...]]:
    df = spark.createDataFrame(ROWS, SCHEMA)
    df.createOrReplaceTempView("people_to_mask")
    columns = ", ".join(
        mask_sql(f.name, masks.get(f.name), f.dataType)  # type: ignore[arg-type]
        for f in SCHEMA.fields
    )
    out = spark.sql(f"SELECT {columns} FROM people_to_mask").collect()
    return [tuple(row) for row in out]


def test_each_mask_on_known_values(spark: SparkSession):
    rows = _masked(
        spark,
        {
            "name": "initials",
            "email": "email",
            "phone": "phone",
            "date_of_birth": "year",
            "note": "redact",
            "credit_score": "keep",
        },
    )
    assert rows == [
        ("A. M. L.", "a***@example.org", "***0018", 1815, "[redacted]", 710),
        (None, None, None, None, None, None),
        ("Ö.", "[redacted]", "***12", 2000, "[redacted]", 0),
    ]


def test_unclassified_and_nullified_columns_show_null_of_their_type(spark: SparkSession):
    rows = _masked(
        spark,
        {
            "name": "nullify",
            "email": "keep",
            "phone": "keep",
            "date_of_birth": "redact",
            "note": "keep",
        },
    )
    assert [(r[0], r[3], r[5]) for r in rows] == [(None, None, None)] * 3
