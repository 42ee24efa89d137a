"""Hostile deliveries: every line accounted for, one bad file stops nothing, changes refused."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from cardlake.bronze import ingest as I
from cardlake.bronze import run_bronze
from cardlake.bronze.ingest import MANIFEST, FilesFailedError

KEY = b"bad-files-test-key-of-32-bytes!!"
HEADER = "merchant_id,name,mcc,category,country,city,online,opened_on"


def _row(n: int, name: str = "Shop") -> str:
    return f"M{n:06d},{name},5411,grocery,GB,Leeds,false,2024-01-20"


def _write(root: Path, source: str, name: str, data: bytes) -> None:
    path = root / source / "2024-01" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def hostile_landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    m = "merchants"
    # The case: a bad quote and an over-long field must not end the file (6 lines).
    _write(
        root,
        m,
        "merchants_a.csv",
        "\n".join(
            [
                HEADER,
                _row(1),
                '"x"y,3',
                _row(2),
                _row(3, "L" + "o" * 200_000 + "ng"),
                _row(4),
            ]
        ).encode()
        + b"\n",
    )
    _write(root, m, "merchants_b.csv", ("\ufeff" + HEADER + "\r\n" + _row(5) + "\r\n").encode())
    _write(root, m, "merchants_c.csv", (HEADER + "\r" + _row(6) + "\r" + _row(7)).encode())
    _write(
        root,
        m,
        "merchants_d.csv",
        (HEADER + "\n" + _row(8, "Caf\xe9") + "\n" + _row(9)).encode("latin-1"),
    )  # one line not UTF-8
    _write(root, m, "merchants_e.csv", (HEADER + "\n" + _row(10) + "\n" + _row(11)[:20]).encode())
    _write(root, m, "merchants_f.csv", b"")
    _write(root, m, "merchants_g.csv", gzip.compress((HEADER + "\n" + _row(12)).encode()))
    _write(root, m, "merchants_h.csv", b'{"merchant_id": "M000013", "name": "Json"}\n')
    _write(
        root,
        "fx_rates",
        "fx_rates_2024-01.csv",
        b"date,currency,units_per_usd\n2024-01-01,EUR,0.9\n",
    )
    return root


def test_hostile_files_are_accounted_for_and_do_not_stop_the_others(
    spark, rs_tables, bronze_settings, hostile_landing: Path
) -> None:
    def ingest() -> None:
        run_bronze(
            spark,
            rs_tables,
            bronze_settings,
            landing_root=str(hostile_landing),
            token_key=KEY,
            sources=["merchants", "fx_rates"],
        )

    with pytest.raises(FilesFailedError) as failed:
        ingest()
    message = str(failed.value)
    assert "merchants/2024-01/merchants_g.csv: the file is gzip-compressed data" in message
    assert "merchants/2024-01/merchants_h.csv: line 1: the header lacks the required" in message
    assert len(failed.value.failures) == 2

    ids = {r[0] for r in rs_tables.read("bronze.merchants").select("merchant_id").collect()}
    assert ids == {f"M{n:06d}" for n in (1, 2, 4, 5, 6, 7, 9, 10)}
    assert rs_tables.read("bronze.fx_rates").count() == 1  # the other source went in
    quarantined = {
        (r["source_file"].rsplit("/", 1)[1], r["position"], r["reason_code"])
        for r in rs_tables.read("_quarantine.merchants").collect()
    }
    assert quarantined == {
        ("merchants_a.csv", 3, "malformed_csv"),
        ("merchants_a.csv", 5, "malformed_csv"),
        ("merchants_d.csv", 2, "bad_encoding"),
        ("merchants_e.csv", 3, "malformed_csv"),
    }
    reasons = {
        r["position"]: r["reason"]
        for r in rs_tables.read("_quarantine.merchants")
        .filter(F.col("source_file").endswith("merchants_a.csv"))
        .collect()
    }
    assert "field larger than field limit" in reasons[5]
    assert "\ufffd" not in "".join(
        r["raw_text"] for r in rs_tables.read("_quarantine.merchants").collect()
    )

    manifest = {
        r["path"].rsplit("/", 1)[1]: (r["status"], r["rows_read"], r["reason"])
        for r in rs_tables.read(MANIFEST).collect()
    }
    assert manifest["merchants_a.csv"] == ("ingested", 5, None)
    assert manifest["merchants_f.csv"][:2] == ("empty", 0)
    assert manifest["merchants_g.csv"][0] == "failed"
    assert manifest["fx_rates_2024-01.csv"][0] == "ingested"

    # The next run retries the failed files (and only them); fixed, one goes in.
    _write(hostile_landing, "merchants", "merchants_h.csv", f"{HEADER}\n{_row(13)}\n".encode())
    with pytest.raises(FilesFailedError) as again:
        ingest()
    assert [p.rsplit("/", 1)[1] for p, _ in again.value.failures] == ["merchants_g.csv"]
    assert rs_tables.read("bronze.merchants").filter("merchant_id = 'M000013'").count() == 1
    assert rs_tables.read("bronze.merchants").count() == 9


def test_a_file_that_changes_while_read_is_refused(
    spark, rs_tables, bronze_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "landing"
    _write(root, "merchants", "merchants_a.csv", f"{HEADER}\n{_row(1)}\n".encode())
    _write(root, "merchants", "merchants_b.csv", f"{HEADER}\n{_row(2)}\n".encode())
    changing = root / "merchants" / "2024-01" / "merchants_b.csv"

    def step(point: str) -> None:
        if point == "after_read":
            changing.write_bytes(f"{HEADER}\n{_row(2)}\n{_row(3)}\n".encode())

    monkeypatch.setattr(I, "_step", step)
    with pytest.raises(FilesFailedError, match=r"merchants_b\.csv: the file changed while"):
        run_bronze(
            spark,
            rs_tables,
            bronze_settings,
            landing_root=str(root),
            token_key=KEY,
            sources=["merchants"],
        )
    ids = [r[0] for r in rs_tables.read("bronze.merchants").select("merchant_id").collect()]
    assert ids == ["M000001"]
