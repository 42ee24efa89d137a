"""A resolution is recorded so that a crash at any step loses no key event and doubles none.

The resolution itself is written out here (a crosswalk, the records' keys, one merge event);
the crash is an exception at each step of :func:`commit_resolution`, then the run is repeated
from the state it started from, as the next `make silver` does.
"""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from cardlake.silver import resolution as R
from cardlake.tables import Tables

MONTH = "2025-06"


class Crash(RuntimeError):
    pass


def _resolution(spark: SparkSession, *, key: str, merged: str | None) -> R.CustomerResolution:
    crosswalk = spark.createDataFrame(
        [("crm_customers", "CRM-1", key, True), ("product_usage", "APP-7", key, True)],
        "source string, source_record_id string, customer_key string, is_current boolean",
    )
    events = spark.createDataFrame(
        [("merge", MONTH, key, merged, 2)] if merged else [],
        "event string, month string, customer_key string, other_key string, records long",
    )
    person_keys = spark.createDataFrame(
        [
            ("crm_customers|CRM-1", "crm_customers", "CRM-1", key),
            ("product_usage|APP-7", "product_usage", "APP-7", key),
        ],
        "uid string, source_dataset string, source_record_id string, customer_key string",
    )
    held_back = spark.createDataFrame(  # an app user linked to no customer source
        [("product_usage|APP-9", "product_usage", "APP-9")],
        "uid string, source_dataset string, source_record_id string",
    )
    return R.CustomerResolution(
        crosswalk=crosswalk,
        events=events,
        person_keys=person_keys,
        held_back=held_back,
        mode=R.INCREMENTAL,
        records=2,
        new_records=1,
        seconds=0.1,
        threshold=None,
        model=None,
    )


def _commit(spark: SparkSession, tables: Tables, result: R.CustomerResolution) -> None:
    R.commit_resolution(
        spark,
        tables,
        result,
        month=MONTH,
        write_crosswalk=lambda df: tables.overwrite("silver.crosswalk", df),
    )


def _events(tables: Tables) -> list[tuple[object, ...]]:
    if not tables.exists(R.KEY_EVENTS_TABLE):
        return []
    return sorted(tuple(r) for r in tables.read(R.KEY_EVENTS_TABLE).collect())


@pytest.mark.parametrize("step", ["crosswalk", "state"])
def test_a_crash_after_the_events_neither_loses_nor_doubles_them(
    spark: SparkSession, rs_tables: Tables, monkeypatch: pytest.MonkeyPatch, step: str
):
    first = _resolution(spark, key="CK000000000A", merged="CK000000000B")
    real_save, real_overwrite = R.save_state, rs_tables.overwrite

    def crash(*args: object, **kwargs: object) -> None:
        raise Crash(step)

    if step == "state":
        monkeypatch.setattr(R, "save_state", crash)
    else:
        monkeypatch.setattr(rs_tables, "overwrite", crash)
    with pytest.raises(Crash):
        _commit(spark, rs_tables, first)
    monkeypatch.setattr(R, "save_state", real_save)
    monkeypatch.setattr(rs_tables, "overwrite", real_overwrite)
    assert _events(rs_tables) == [("merge", MONTH, "CK000000000A", "CK000000000B", 2)]

    _commit(spark, rs_tables, first)  # the next run, from the same state

    assert _events(rs_tables) == [("merge", MONTH, "CK000000000A", "CK000000000B", 2)]
    # The held-back record was resolved too: the next run matches only new records against it.
    assert sorted(r["uid"] for r in rs_tables.read("silver.er_records").collect()) == [
        "crm_customers|CRM-1",
        "product_usage|APP-7",
        "product_usage|APP-9",
    ]
    assert {r["customer_key"] for r in rs_tables.read("silver.crosswalk").collect()} == {
        "CK000000000A"
    }


def test_a_later_resolution_records_its_own_events(spark: SparkSession, rs_tables: Tables):
    # Once a commit is complete the state moved on, so the next run's events are not skipped.
    _commit(spark, rs_tables, _resolution(spark, key="CK000000000A", merged="CK000000000B"))
    _commit(spark, rs_tables, _resolution(spark, key="CK000000000C", merged="CK000000000D"))
    _commit(spark, rs_tables, _resolution(spark, key="CK000000000C", merged=None))
    assert [(e[2], e[3]) for e in _events(rs_tables)] == [
        ("CK000000000A", "CK000000000B"),
        ("CK000000000C", "CK000000000D"),
    ]
