"""Activity that links to no customer source: held back from the customers, kept and counted,
and let in once a later delivery links it (the 11,000-customer bench's silver failure).

The data: a tiny generated world (its CRM customers and every other source silver reads, two
months, no duplicates or shared households so that nothing else merges) through the real
bronze stage, plus a hand-made product-usage file per month for one app user the generator
does not know. In January the app user's rows carry neither an e-mail nor a CRM id: nothing
links them to a customer source, so entity resolution makes the app user an entity of its
own. In February a row of the same app user carries the e-mail of a January CRM customer.

Silver runs as the stage runs it (``job.run``, its quality gate on): a full build in January,
January's monthly run again (an unchanged resolution), then February's monthly run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cardlake.bronze import load_bronze_config, run_bronze
from cardlake.config import load_config
from cardlake.pipeline import settings_for
from cardlake.silver import job
from cardlake.synth import SynthParams, generate
from cardlake.tables import Tables
from cardlake.tables.delta_rs import DeltaRsEngine

# Three silver runs and two bronze runs on a small world: 8 to 10 minutes on two busy cores.
pytestmark = [pytest.mark.slow, pytest.mark.integration]

JAN, FEB = "2024-01", "2024-02"
WORLD = SynthParams(
    seed=7,
    n_customers=30,
    duplicate_identity_rate=0.0,
    shared_household_rate=0.0,
    missing_field_rate=0.0,
    bad_record_rate=0.0,
    duplicate_record_rate=0.0,
    redelivery_rate=0.0,
)
APP_USER = "u_9999999"  # not a generator id (those are u_ + 7 digits from 3,000,000 on)
USAGE_HEADER = (
    "usage_id,app_user_id,email,crm_id,month,product,sessions,minutes,last_seen,"
    "device_id,device_os,app_version"
)
HELD_JAN = ("USHELD0000001", "USHELD0000002")
LINKED_FEB = "USHELD0000003"
REASON = "no_customer_source"


def _usage_row(usage_id: str, month: str, email: str, product: str) -> str:
    return f"{usage_id},{APP_USER},{email},,{month},{product},3,12.5,{month}-20,dv_held,ios,3.1"


def _write_usage(landing: Path, month: str, rows: list[str]) -> None:
    folder = landing / "product_usage" / month
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"product_usage_{month}_app.csv").write_text("\n".join([USAGE_HEADER, *rows]) + "\n")


@dataclass
class World:
    spark: SparkSession
    root: Path
    tables: Tables

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    def bronze(self, month: str) -> None:
        run_bronze(
            self.spark,
            self.tables,
            load_bronze_config("test"),
            landing_root=str(self.landing),
            token_key=b"test-key",
            months=[month],
        )

    def silver(self, month: str | None) -> None:
        cfg = load_config(
            "test",
            overrides={
                "paths.lake_root": str(self.root / "lake"),
                "paths.landing_root": str(self.landing),
                "paths.truth_root": str(self.root / "no-truth"),
                "quality.stage_checks": True,  # the gate that stopped the bench
            },
        )
        previous = mlflow.get_tracking_uri()  # the run points MLflow at its lake
        try:
            job.run(self.tables, settings_for(cfg), month=month)
        finally:
            mlflow.set_tracking_uri(previous)

    def read(self, name: str) -> DataFrame:
        return self.tables.read(name)


@dataclass(frozen=True)
class Seen:
    """What the lake said after a run, collected before the next run changes it."""

    customer_keys: set[str]
    crosswalk: dict[tuple[str, str], str]
    usage: dict[str, str | None]
    held: list[tuple[str, str, str, str, str]]
    bronze_usage_ids: set[str]


def _seen(world: World) -> Seen:
    crosswalk = {
        (r.source, r.source_record_id): r.customer_key
        for r in world.read("silver.crosswalk").filter("is_current").collect()
    }
    held = world.read("silver.unresolved_activity").select(
        "source", "source_record_id", "row_id", "month", "reason"
    )
    return Seen(
        customer_keys={
            r[0] for r in world.read("silver.customers").select("customer_key").collect()
        },
        crosswalk=crosswalk,
        usage={
            r.usage_id: r.customer_key
            for r in world.read("silver.product_usage").select("usage_id", "customer_key").collect()
        },
        held=sorted(tuple(r) for r in held.collect()),  # type: ignore[misc]
        bronze_usage_ids={
            r[0] for r in world.read("bronze.product_usage").select("usage_id").collect()
        },
    )


@pytest.fixture(scope="module")
def world(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("unresolved-activity")
    tables = Tables(
        spark=spark,
        lake_root=str(root / "lake"),
        engine=DeltaRsEngine(spark=spark),
        register_sql=False,
    )
    generate(
        landing_root=root / "landing", truth_root=root / "truth", params=WORLD, months=[JAN, FEB]
    )
    return World(spark=spark, root=root, tables=tables)


@pytest.fixture(scope="module")
def january(world: World) -> Seen:
    _write_usage(
        world.landing,
        JAN,
        [_usage_row(HELD_JAN[0], JAN, "", "card"), _usage_row(HELD_JAN[1], JAN, "", "savings")],
    )
    world.bronze(JAN)
    world.silver(None)  # raised DataQualityError (foreign keys to silver.customers) before
    return _seen(world)


@pytest.fixture(scope="module")
def january_again(world: World, january: Seen) -> Seen:
    world.silver(JAN)  # nothing new: the resolution is unchanged, the held rows held again
    return _seen(world)


@pytest.fixture(scope="module")
def february(world: World, january: Seen, january_again: Seen) -> tuple[Seen, str, str]:
    crm = world.read("bronze.crm_customers").filter(F.col("email").isNotNull())
    crm_id, email = crm.orderBy("crm_id").select("crm_id", "email").first()  # type: ignore[misc]
    _write_usage(world.landing, FEB, [_usage_row(LINKED_FEB, FEB, email, "card")])
    world.bronze(FEB)
    world.silver(FEB)
    return _seen(world), crm_id, january.crosswalk[("crm_customers", crm_id)]


def test_an_app_user_linked_to_no_customer_source_is_held_back_not_a_customer(
    january: Seen,
) -> None:
    assert ("product_usage", APP_USER) not in january.crosswalk
    assert all(key in january.customer_keys for key in january.crosswalk.values())
    # Every usage row silver kept points at a golden record (or at none, never at a ghost).
    assert all(k is None or k in january.customer_keys for k in january.usage.values())
    assert january.held == [
        ("product_usage", APP_USER, HELD_JAN[0], JAN, REASON),
        ("product_usage", APP_USER, HELD_JAN[1], JAN, REASON),
    ]
    # Nothing lost: every usage row bronze holds is in silver or held back, never both.
    assert not set(january.usage) & set(HELD_JAN)
    assert set(january.usage) | set(HELD_JAN) == january.bronze_usage_ids
    # The generated customers are customers: each CRM record has one.
    assert {s for s, _ in january.crosswalk} >= {"crm_customers", "product_usage"}


def test_a_run_again_with_nothing_new_holds_the_same_rows_back(
    january: Seen, january_again: Seen
) -> None:
    assert january_again == january


def test_a_later_row_linking_the_app_user_lets_its_held_rows_join_that_customer(
    january: Seen, february: tuple[Seen, str, str]
) -> None:
    feb, crm_id, key = february
    assert feb.crosswalk[("crm_customers", crm_id)] == key  # the customer keeps its key
    assert feb.crosswalk[("product_usage", APP_USER)] == key
    assert feb.held == []
    # January's held rows are in January's partition now, under the customer's key.
    assert [feb.usage[u] for u in (*HELD_JAN, LINKED_FEB)] == [key, key, key]
    assert set(feb.usage) == feb.bronze_usage_ids
    assert all(k is None or k in feb.customer_keys for k in feb.usage.values())
    # Every January customer is still one, under the same key.
    assert january.customer_keys <= feb.customer_keys
    rekeyed = {r: k for r, k in january.crosswalk.items() if feb.crosswalk.get(r) != k}
    assert rekeyed == {}


def test_the_held_back_count_is_in_the_run_figures(world: World, january: Seen) -> None:
    figures = {
        (r.month, r.metric): r.value
        for r in world.read("silver.er_metrics")
        .filter(F.col("metric").startswith("held_back"))
        .collect()
    }
    assert figures[(JAN, "held_back_records")] == 1.0
    assert figures[(JAN, "held_back_rows")] == 2.0
