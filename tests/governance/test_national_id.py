"""The national id as a personal datum: classified, out of file statistics, masked to its last
two characters for analysts, clear for privileged users, and gone after an erasure however it
was typed."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from cardlake.governance.erasure import ErasureRequest, erase
from cardlake.governance.settings import load_governance
from cardlake.governance.sql_access import publish_parquet
from cardlake.governance.statistics import STATS_COLUMNS, statistics_properties
from cardlake.serve.masking import mask_value
from cardlake.silver.schemas import CUSTOMERS
from cardlake.tables import Tables
from tests.governance.lake_scan import values_in_lake

GOVERNANCE = load_governance("test")
KEY = b"k" * 32
ZED_ID, AMY_ID = "SYN-GB-482193750-Y", "SYN-FR-000001234-J"


def test_the_national_id_is_personal_masked_to_two_characters_and_described() -> None:
    for table in ("silver.customers", "silver.customer_snapshots"):
        rule = GOVERNANCE.rule(table, "national_id")
        assert rule is not None
        assert (rule.classification, rule.mask) == ("personal", "last_two")
        assert "KYC" in rule.description


def test_no_file_statistics_of_the_national_id() -> None:
    schema = T.StructType([CUSTOMERS["customer_key"], CUSTOMERS["national_id"]])
    assert statistics_properties(GOVERNANCE, "silver.customers", schema) == {
        STATS_COLUMNS: "customer_key"
    }


def test_analysts_see_the_last_two_characters_privileged_users_all(
    spark: SparkSession,
    tmp_path: Path,
    clean_catalog: None,
) -> None:
    path = tmp_path / "customers"
    path.mkdir()
    pq.write_table(
        pa.table(
            {
                "customer_key": ["CK1", "CK2", "CK3"],
                "national_id": [ZED_ID, "syn gb 482193750 y", None],
            }
        ),
        path / "part-0.parquet",
    )
    for schema in ("silver", "silver_clear"):
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {schema}")
    publish_parquet(spark, GOVERNANCE, name="silver.customers", path=str(path))
    masked = spark.sql("SELECT customer_key, national_id FROM silver.customers").collect()
    clear = spark.sql("SELECT customer_key, national_id FROM silver_clear.customers").collect()
    assert sorted(tuple(r) for r in masked) == [("CK1", "***0Y"), ("CK2", "***0y"), ("CK3", None)]
    assert sorted(tuple(r) for r in clear) == [
        ("CK1", ZED_ID),
        ("CK2", "syn gb 482193750 y"),
        ("CK3", None),
    ]
    # The dashboard applies the same mask in Python.
    assert mask_value("national_id", ZED_ID, "analyst") == "•••0Y"
    assert mask_value("national_id", ZED_ID, "privileged") == ZED_ID


def test_erasure_removes_every_spelling_of_the_national_id(
    spark: SparkSession, rs_tables: Tables
) -> None:
    t = rs_tables
    t.overwrite(
        "silver.customers",
        spark.createDataFrame(
            [
                ("CK00000000aa", "zed@mail.test", None, None, ZED_ID, dt.date(1961, 7, 23), None),
                ("CK00000000bb", "amy@mail.test", None, None, AMY_ID, None, None),
            ],
            "customer_key string, email string, phone string, device_id string, "
            "national_id string, date_of_birth date, crm_ids string",
        ),
    )
    t.overwrite(
        "silver.crosswalk",
        spark.createDataFrame(
            [
                ("financial_records", "FIN0000777", "CK00000000aa"),
                ("financial_records", "FIN0000888", "CK00000000bb"),
            ],
            "source string, source_record_id string, customer_key string",
        ),
    )
    # Core banking typed Zed's id spaced in one delivery, with a wrong check letter in another.
    t.overwrite(
        "bronze.financial_records",
        spark.createDataFrame(
            [
                ("FIN0000777", ("Zed Quix", "syn gb 482193750 y")),
                ("FIN0000777", ("Zed Quix", "SYNGB482193750A")),
                ("FIN0000888", ("Amy Ash", AMY_ID)),
            ],
            "fin_id string, holder struct<name string, national_id string>",
        ),
    )
    # Copies with no other identifier next to them: a quality result, a log line.
    t.overwrite(
        "_ops.dq_results",
        spark.createDataFrame(
            [
                ("silver.customers", f"unexpected: {ZED_ID}"),
                ("silver.customers", "ok"),
            ],
            "suite_name string, observed string",
        ),
    )
    logs = Path(t.lake_root) / "_ops" / "logs"
    logs.mkdir(parents=True)
    (logs / "run.jsonl").write_text(
        json.dumps({"msg": "kyc SYNGB482193750A rejected"})
        + "\n"
        + json.dumps({"msg": f"kyc {AMY_ID} ok"})
        + "\n"
    )

    erase(t, ErasureRequest(customer_key="CK00000000aa"), key=KEY)

    after = values_in_lake(Path(t.lake_root))
    assert "482193750" not in after
    # Amy's stay: her golden record, her bank record, her log line (Zed's redacted in place).
    assert [(r.customer_key, r.national_id) for r in t.read("silver.customers").collect()] == [
        ("CK00000000bb", AMY_ID)
    ]
    assert [tuple(r) for r in t.read("bronze.financial_records").collect()] == [
        ("FIN0000888", ("Amy Ash", AMY_ID))
    ]
    assert (logs / "run.jsonl").read_text() == (
        '{"msg": "kyc [erased] rejected"}\n' + json.dumps({"msg": f"kyc {AMY_ID} ok"}) + "\n"
    )
    assert [tuple(r) for r in t.read("_ops.dq_results").collect()] == [("silver.customers", "ok")]
