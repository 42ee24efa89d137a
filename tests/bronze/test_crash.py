"""Crash safety: bronze killed at each step boundary, a new file lands, the re-run converges.

The issue's case (dead after the table commits, before the manifest's) runs in a real child
process killed with ``os._exit``; the other boundaries abort the run in-process at the same
hook, which leaves the lake exactly as a kill there would (every write before it committed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cardlake.bronze import ingest as I
from cardlake.bronze import run_bronze
from cardlake.bronze.ingest import CRASH_AT_ENV, INGEST_LOG, MANIFEST
from cardlake.tables import Tables
from cardlake.tables.delta_rs import DeltaRsEngine

KEY = b"crash-test-key-of-at-least-32-by"
HEADER = "merchant_id,name,mcc,category,country,city,online,opened_on"
FIRST = f"{HEADER}\nM000001,A,5411,grocery,GB,Leeds,false,2024-01-20\nM000002,B,5411,x,ZZ,L,no,\n"
LATE = f"{HEADER}\nM000003,C,5411,grocery,GB,York,true,2024-01-21\n"
POINTS = (
    "before_dq_results",
    "before_quarantine",
    "before_bronze",
    "before_ingest_log",
    "before_manifest",
)


class _Killed(BaseException):
    """Stands for the process dying: nothing after the hook runs, no handler catches it."""


def _landing(root: Path, *, late: bool) -> Path:
    folder = root / "merchants" / "2024-01"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "merchants_2024-01.csv").write_text(FIRST)
    if late:
        (folder / "merchants_2024-01_late.csv").write_text(LATE)
    return root


def _state(tables: Tables) -> dict[str, set[tuple]]:
    """What a reader sees, without the run-specific columns (batch ids, ingest times)."""

    def rows(name: str, cols: list[str]) -> set[tuple]:
        return {tuple(r) for r in tables.read(name).select(*cols).collect()}

    return {
        "bronze": rows(
            "bronze.merchants",
            ["merchant_id", "name", "country", "_source_file", "_line", "_record_hash"],
        ),
        "quarantine": rows(
            "_quarantine.merchants",
            ["source_file", "position", "reason_code", "raw_text", "record_hash"],
        ),
        "manifest": rows(
            MANIFEST,
            ["path", "status", "rows_read", "rows_accepted", "rows_quarantined", "rows_duplicate"],
        ),
        "log": rows(
            INGEST_LOG, ["path", "rows_read", "rows_accepted", "rows_quarantined", "rows_written"]
        ),
    }


def _ingest(spark, tables: Tables, settings, landing: Path) -> None:
    run_bronze(
        spark, tables, settings, landing_root=str(landing), token_key=KEY, sources=["merchants"]
    )


@pytest.fixture(scope="module")
def uninterrupted(spark, bronze_settings, tmp_path_factory) -> dict[str, set[tuple]]:
    root = tmp_path_factory.mktemp("uninterrupted")
    tables = Tables(spark=spark, lake_root=str(root / "lake"), engine=DeltaRsEngine(spark=spark))
    _ingest(spark, tables, bronze_settings, _landing(root / "landing", late=False))
    _ingest(spark, tables, bronze_settings, _landing(root / "landing", late=True))
    return _state(tables)


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS[:-1])
def test_abort_at_each_step_then_rerun_converges(
    spark,
    bronze_settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    point: str,
    uninterrupted: dict[str, set[tuple]],
) -> None:
    tables = Tables(
        spark=spark, lake_root=str(tmp_path / "lake"), engine=DeltaRsEngine(spark=spark)
    )

    def die(at: str) -> None:
        if at == point:
            raise _Killed(at)

    monkeypatch.setattr(I, "_step", die)
    with pytest.raises(_Killed):
        _ingest(spark, tables, bronze_settings, _landing(tmp_path / "landing", late=False))
    monkeypatch.undo()
    _ingest(spark, tables, bronze_settings, _landing(tmp_path / "landing", late=True))
    assert _state(tables) == uninterrupted


CHILD = textwrap.dedent("""
    import sys
    from cardlake.bronze import load_bronze_config, run_bronze
    from cardlake.config import load_config
    from cardlake.spark import build_session
    from cardlake.tables import Tables
    from cardlake.tables.delta_rs import DeltaRsEngine
    lake, landing = sys.argv[1], sys.argv[2]
    cfg = load_config("test", overrides={"paths.lake_root": lake})
    spark = build_session(cfg)
    tables = Tables(spark=spark, lake_root=lake, engine=DeltaRsEngine(spark=spark))
    run_bronze(spark, tables, load_bronze_config("test"), landing_root=landing,
               token_key=%r, sources=["merchants"])
""")


@pytest.mark.slow
def test_killed_between_table_and_manifest_commits_loses_no_late_file(
    spark, bronze_settings, tmp_path: Path, uninterrupted: dict[str, set[tuple]]
) -> None:
    lake, landing = tmp_path / "lake", _landing(tmp_path / "landing", late=False)
    env = {**os.environ, CRASH_AT_ENV: "before_manifest"}
    child = subprocess.run(
        [sys.executable, "-c", CHILD % KEY, str(lake), str(landing)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == 86, child.stderr[-2000:]
    tables = Tables(spark=spark, lake_root=str(lake), engine=DeltaRsEngine(spark=spark))
    assert tables.read("bronze.merchants").count() == 1  # committed before the kill
    assert not tables.exists(MANIFEST)
    _ingest(spark, tables, bronze_settings, _landing(landing, late=True))
    assert _state(tables) == uninterrupted


@pytest.mark.slow
def test_a_crash_after_a_clean_run_is_rolled_back_though_that_run_noted_its_versions(
    spark,
    bronze_settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    uninterrupted: dict[str, set[tuple]],
) -> None:
    tables = Tables(
        spark=spark, lake_root=str(tmp_path / "lake"), engine=DeltaRsEngine(spark=spark)
    )
    landing = _landing(tmp_path / "landing", late=False)
    _ingest(spark, tables, bronze_settings, landing)
    checked = {r["table"]: r["version"] for r in tables.read(I.CHECKED).collect()}
    assert checked == {
        "bronze.merchants": tables.version("bronze.merchants"),
        "_quarantine.merchants": tables.version("_quarantine.merchants"),
    }

    scanned: list[str] = []
    batches_of = I._batches_of

    def spy(tables_: Tables, table: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        scanned.append(table)
        return batches_of(tables_, table, *args, **kwargs)

    monkeypatch.setattr(I, "_batches_of", spy)
    _ingest(spark, tables, bronze_settings, landing)  # nothing new: the noted tables unscanned
    assert "bronze.merchants" not in scanned and "_quarantine.merchants" not in scanned
    assert INGEST_LOG in scanned  # a run of one source notes no _ops table's version

    def die(at: str) -> None:
        if at == "before_manifest":  # after the bronze table's commit
            raise _Killed(at)

    monkeypatch.setattr(I, "_step", die)
    with pytest.raises(_Killed):
        _ingest(spark, tables, bronze_settings, _landing(tmp_path / "landing", late=True))
    monkeypatch.setattr(I, "_step", lambda at: None)
    scanned.clear()
    _ingest(spark, tables, bronze_settings, landing)
    assert "bronze.merchants" in scanned  # written by the dead run: scanned again
    assert _state(tables) == uninterrupted
