"""Erasure on a lake the whole pipeline built: a person with records in every source leaves no
byte behind, and every other customer's rows stay as they were."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cardlake.config import PROJECT_ROOT
from cardlake.governance.erasure import lake_tables
from cardlake.silver.customers import PERSON_SOURCES
from tests.governance.lake_scan import values_in_lake
from tests.lake_fixture import BuiltLake, copy_lake

# Seen passing once (1,189 s for the test, on a machine also running the suite): the erasure job
# rewrites every table holding the person and the scans read every byte of the lake twice. Too
# slow for make test until that is faster; opt in meanwhile.
SLOW_VAR = "CARDLAKE_ERASURE_LAKE_TEST"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get(SLOW_VAR) != "1",
                       reason=f"erasure on a whole built lake takes ~20 minutes; set {SLOW_VAR}=1"),
]


def _job():
    spec = importlib.util.spec_from_file_location("erase_person",
                                                  PROJECT_ROOT / "jobs" / "erase_person.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _others(spark: SparkSession, lake: BuiltLake, key: str) -> dict[str, tuple[int, int]]:
    # Rows of every table with a customer_key that is not the person's: count and checksum.
    out = {}
    tables = lake.tables(spark)
    for name in lake_tables(str(lake.lake_root)):
        df = tables.read(name)
        if "customer_key" not in df.columns:
            continue
        rest = df.where(~F.col("customer_key").eqNullSafe(F.lit(key)))
        checksum = F.sum(F.xxhash64(F.to_json(F.struct(*df.columns))).cast("decimal(38,0)"))
        row = rest.select(F.count(F.lit(1)), checksum).first()
        out[name] = (int(row[0]), int(row[1] or 0))
    return out


def test_erasing_a_person_in_every_source(spark: SparkSession, built_lake: BuiltLake,
                                          tmp_path: Path):
    lake = copy_lake(built_lake, tmp_path)
    tables = lake.tables(spark)
    everywhere = (tables.read("silver.crosswalk").groupBy("customer_key")
                  .agg(F.countDistinct("source").alias("n"))
                  .where(F.col("n") == len(PERSON_SOURCES)).orderBy("customer_key").first())
    assert everywhere is not None, "the small world has nobody in every source"
    key = everywhere["customer_key"]
    person = tables.read("silver.customers").where(F.col("customer_key") == key).first()
    # The date of birth alone is not scanned for: other people and days share it.
    identifiers = [person[c] for c in ("email", "phone") if person[c]]
    assert identifiers, "the chosen person has neither e-mail nor phone"
    text = values_in_lake(lake.lake_root).lower()
    assert all(i.lower() in text for i in identifiers)  # the scan sees them before
    before = _others(spark, lake, key)

    code = _job().main(["--env", "test", "--lake-root", str(lake.lake_root),
                        "--customer-key", key, "--requested-by", "test-ticket-1"])

    assert code == 0
    text = values_in_lake(lake.lake_root).lower()
    found = [i for i in identifiers if i.lower() in text]
    assert found == [] and key.lower() not in text
    assert _others(spark, lake, key) == before
