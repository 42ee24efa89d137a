"""File statistics the delta-rs engine writes into the log, read from the Parquet footer."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

from cardlake.tables.delta_rs.stats import file_stats


def test_a_column_after_a_struct_gets_its_own_statistics(tmp_path: Path) -> None:
    # The footer numbers leaf columns: `name` is the third leaf (after s.a and s.b), not the
    # second top-level field; taking the second leaf gave it s.b's statistics (a double).
    path = tmp_path / "part-0.parquet"
    pq.write_table(
        pa.table(
            {
                "s": [{"a": 1.0, "b": 2.5}, {"a": None, "b": 7.0}, None],
                "name": ["kim", None, "ann"],
            }
        ),
        path,
    )
    schema = StructType(
        [
            StructField(
                "s", StructType([StructField("a", DoubleType()), StructField("b", DoubleType())])
            ),
            StructField("name", StringType()),
        ]
    )
    stats, rows = file_stats(str(path), schema, [], {"s", "name"})
    assert rows == 3
    assert stats["minValues"] == {"name": "ann"}
    assert stats["maxValues"] == {"name": "kim"}
    assert stats["nullCount"] == {"name": 1}
