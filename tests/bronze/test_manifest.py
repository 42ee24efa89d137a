"""The ingest manifest's file digest: keyed, never the plain SHA-256 of a file that held a card
number, and still the way each file is ingested once, on lakes written before it was keyed."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from pyspark.sql import functions as F

from cardlake.bronze import run_bronze
from cardlake.bronze.contracts import DEV_TOKEN_KEY
from cardlake.bronze.ingest import INGEST_LOG, MANIFEST
from cardlake.tables import Tables
from tests.governance.lake_scan import digests_in, values_in_lake

KEY = DEV_TOKEN_KEY.encode()  # the test env's key: the scan also checks it is not written
HEADER = "merchant_id,name,mcc,category,country,city,online,opened_on"
PAN = "4539578763621486"  # Luhn-valid; bronze writes it only as its token
# A landing file that holds a card number in clear (in a free-text field).
HOLDS_PAN = (
    f"{HEADER}\nM000001,Shop {PAN[:4]} {PAN[4:8]} {PAN[8:12]} {PAN[12:]},5411,grocery,"
    "GB,Leeds,false,2024-01-20\nM000002,Cafe,5812,food,GB,York,true,2024-01-21\n"
)
LATE = f"{HEADER}\nM000003,Late Shop,5411,grocery,GB,Hull,false,2024-01-22\n"


def _land(root: Path, name: str, text: str) -> bytes:
    path = root / "merchants" / "2024-01" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path.read_bytes()


def _ingest(spark, tables: Tables, settings, root: Path):
    (report,) = run_bronze(
        spark, tables, settings, landing_root=str(root), token_key=KEY, sources=["merchants"]
    )
    return report


def _manifest(tables: Tables) -> dict[str, tuple[str, str, str | None]]:
    return {
        r["path"].rsplit("/", 1)[1]: (r["status"], r["sha256"], r["duplicate_of"])
        for r in tables.read(MANIFEST).collect()
    }


def test_the_file_digest_is_keyed_and_no_plain_one_or_key_is_in_the_lake(
    spark, rs_tables: Tables, bronze_settings, tmp_path: Path
) -> None:
    root = tmp_path / "landing"
    data = _land(root, "merchants_a.csv", HOLDS_PAN)
    _land(root, "merchants_b.csv", HOLDS_PAN)  # re-delivered, same bytes
    keyed = hmac.new(KEY, data, hashlib.sha256).hexdigest()
    plain = hashlib.sha256(data).hexdigest()
    assert keyed != plain

    report = _ingest(spark, rs_tables, bronze_settings, root)

    assert (report.files_ingested, report.files_skipped, report.rows_accepted) == (1, 1, 2)
    assert _manifest(rs_tables) == {
        "merchants_a.csv": ("ingested", keyed, None),
        "merchants_b.csv": ("skipped_duplicate_file", keyed, "merchants/2024-01/merchants_a.csv"),
    }
    lake_text = values_in_lake(Path(rs_tables.lake_root))
    assert keyed in digests_in(lake_text)  # the scan sees the manifest's digests
    assert plain not in digests_in(lake_text)
    assert PAN not in lake_text
    assert DEV_TOKEN_KEY not in lake_text


def test_a_lake_whose_manifest_holds_plain_digests_ingests_nothing_twice(
    spark, rs_tables: Tables, bronze_settings, tmp_path: Path
) -> None:
    root = tmp_path / "landing"
    data = _land(root, "merchants_a.csv", HOLDS_PAN)
    _ingest(spark, rs_tables, bronze_settings, root)
    # The manifest as bronze wrote it before file digests were keyed.
    plain = hashlib.sha256(data).hexdigest()
    legacy = rs_tables.read(MANIFEST).withColumn("sha256", F.lit(plain))
    rs_tables.overwrite(MANIFEST, legacy.localCheckpoint(eager=True))

    # One run sees the old file, a re-delivery of it and a new file (one run: CI minutes).
    _land(root, "merchants_b.csv", HOLDS_PAN)
    late = _land(root, "merchants_c.csv", LATE)
    report = _ingest(spark, rs_tables, bronze_settings, root)
    assert (report.files_ingested, report.files_skipped, report.rows_accepted) == (1, 1, 1)
    assert _manifest(rs_tables) == {
        "merchants_a.csv": ("ingested", plain, None),  # old rows are left as they are
        "merchants_b.csv": (
            "skipped_duplicate_file",
            hmac.new(KEY, data, hashlib.sha256).hexdigest(),
            "merchants/2024-01/merchants_a.csv",
        ),
        "merchants_c.csv": ("ingested", hmac.new(KEY, late, hashlib.sha256).hexdigest(), None),
    }
    ids = sorted(r[0] for r in rs_tables.read("bronze.merchants").select("merchant_id").collect())
    assert ids == ["M000001", "M000002", "M000003"]
    logged = sorted(
        r[0].rsplit("/", 1)[1] for r in rs_tables.read(INGEST_LOG).select("path").collect()
    )
    assert logged == ["merchants_a.csv", "merchants_c.csv"]
