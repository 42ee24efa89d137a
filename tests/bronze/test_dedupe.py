"""Exact duplicate records: counted per file, the first (by file and line) written, repeats of a
record already in bronze not written again, quarantined lines never duplicates; and every
record's digest is the keyed HMAC of its raw text."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from cardlake.bronze import run_bronze
from cardlake.bronze.contracts import DEV_TOKEN_KEY
from cardlake.tables import Tables

KEY = DEV_TOKEN_KEY.encode()
HEADER = "merchant_id,name,mcc,category,country,city,online,opened_on"
SHOP = "M000001,Shop,5411,grocery,GB,Leeds,false,2024-01-20"
CAFE = "M000002,Cafe,5812,food,GB,York,true,2024-01-21"
BAR = "M000003,Bar,5813,food,GB,Hull,false,2024-01-22"
INN = "M000004,Inn,7011,travel,GB,Bath,false,2024-01-23"
BROKEN = "M000009,only three,fields"


def _hmac(text: str) -> str:
    return hmac.new(KEY, text.encode(), hashlib.sha256).hexdigest()


def _run(spark, tables: Tables, settings, root: Path) -> dict[str, tuple[int, int, int, int]]:
    (report,) = run_bronze(
        spark, tables, settings, landing_root=str(root), token_key=KEY, sources=["merchants"]
    )
    return {
        r["path"].rsplit("/", 1)[1]: (
            r["rows_read"],
            r["rows_accepted"],
            r["rows_quarantined"],
            r["rows_duplicate"],
        )
        for r in report.per_file
    }


def test_duplicates_within_a_batch_and_against_bronze(
    spark, rs_tables: Tables, bronze_settings, landing
) -> None:
    text = f"{HEADER}\n{SHOP}\n{SHOP}\n{BROKEN}\n{BROKEN}\n{CAFE}\n"
    a = landing("merchants", "2024-01", "merchants_a.csv", text)
    landing("merchants", "2024-01", "merchants_b.csv", f"{HEADER}\n{CAFE}\n{BAR}\n")
    root = a.parents[2]

    assert _run(spark, rs_tables, bronze_settings, root) == {
        "merchants_a.csv": (5, 3, 2, 1),  # line 3 repeats line 2; the broken lines are not dups
        "merchants_b.csv": (2, 2, 0, 1),  # line 2 repeats a's line 6
    }
    landing("merchants", "2024-02", "merchants_c.csv", f"{HEADER}\n{BAR}\n{INN}\n")
    assert _run(spark, rs_tables, bronze_settings, root) == {
        "merchants_c.csv": (2, 2, 0, 1),  # BAR is in bronze already
    }

    bronze = {
        (r["merchant_id"], r["_source_file"].rsplit("/", 1)[1], r["_line"], r["_record_hash"])
        for r in rs_tables.read("bronze.merchants").collect()
    }
    assert bronze == {
        ("M000001", "merchants_a.csv", 2, _hmac(SHOP)),
        ("M000002", "merchants_a.csv", 6, _hmac(CAFE)),
        ("M000003", "merchants_b.csv", 3, _hmac(BAR)),
        ("M000004", "merchants_c.csv", 3, _hmac(INN)),
    }
    quarantined = sorted(
        (r["position"], r["reason_code"], r["record_hash"])
        for r in rs_tables.read("_quarantine.merchants").collect()
    )
    assert quarantined == [
        (4, "malformed_csv", _hmac(BROKEN)),
        (5, "malformed_csv", _hmac(BROKEN)),
    ]
