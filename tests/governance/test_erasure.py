"""Erasure on a small lake whose rows are written out here: the person goes, nobody else moves."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from cardlake.governance.erasure import (
    AUDIT_SCHEMA,
    AUDIT_TABLE,
    ErasureError,
    ErasureRequest,
    erase,
)
from cardlake.governance.suppression import (
    BRONZE_IDENTIFIERS,
    REFERENCES,
    filter_suppressed,
    filter_suppressed_text,
    without_suppressed_references,
)
from cardlake.spark import delta_spark_loaded
from cardlake.tables import Tables
from tests.conftest import delta_spark_missing
from tests.governance.lake_scan import values_in_lake

KEY = b"k" * 32
# The person erased: every identifier distinctive enough to be found by a byte scan.
ZED = {
    "key": "CK00000000aa",
    "crm": "CRM0000777",
    "fin": "FIN0000777",
    "email": "Zed.Quix@mail.test",
    "phone": "+44 7700 900777",
    "first": "Zebulon",
    "last": "Quixoteson",
    "dob": dt.date(1961, 7, 23),
    "device": "DEV-ZED-777",
    "card": "tok_zed_card_0777",
    "wallet": "WAL-ZED-0777",
}
# Others: one whose ids contain Zed's as a prefix (CRM00007770), one plain.
AMY = {"key": "CK00000000bb", "crm": "CRM00007770", "email": "amy@mail.test"}
BOB = {"key": "CK00000000cc", "crm": "CRM0000888", "email": "bob@mail.test"}
AMY_WALLET, BOB_WALLET = "WAL-AMY-0001", "WAL-BOB-0888"
# The card feed's P2P transfer is one record, the receiver's: wallet_id theirs,
# counterparty_wallet the sender's.
P2P = (
    "transaction_id string, card_token string, wallet_id string, counterparty_wallet string, "
    "channel string, direction string, amount double"
)

CUSTOMERS = T.StructType(
    [
        T.StructField("customer_key", T.StringType()),
        T.StructField("first_name", T.StringType()),
        T.StructField("last_name", T.StringType()),
        T.StructField("date_of_birth", T.DateType()),
        T.StructField("email", T.StringType()),
        T.StructField("phone", T.StringType()),
        T.StructField("device_id", T.StringType()),
        T.StructField("crm_ids", T.StringType()),  # comma-separated, as in silver
    ]
)


def _write(
    tables: Tables,
    spark: SparkSession,
    name: str,
    rows: list[tuple[object, ...]],
    schema: T.StructType | str,
    partition_by: tuple[str, ...] = (),
) -> None:
    tables.overwrite(name, spark.createDataFrame(rows, schema), partition_by=partition_by)


@pytest.fixture
def lake(spark: SparkSession, rs_tables: Tables) -> Tables:
    t = rs_tables
    _write(
        t,
        spark,
        "silver.customers",
        [
            (
                ZED["key"],
                ZED["first"],
                ZED["last"],
                ZED["dob"],
                ZED["email"],
                ZED["phone"],
                ZED["device"],
                ZED["crm"],
            ),
            (AMY["key"], "Amy", "Ash", dt.date(1990, 1, 1), AMY["email"], None, None, AMY["crm"]),
            (BOB["key"], "Bob", None, None, BOB["email"], "+1 555 0100", None, None),
        ],
        CUSTOMERS,
    )
    _write(
        t,
        spark,
        "silver.crosswalk",
        [
            ("crm_customers", ZED["crm"], ZED["key"]),
            ("financial_records", ZED["fin"], ZED["key"]),
            ("crm_customers", AMY["crm"], AMY["key"]),
            ("crm_customers", BOB["crm"], BOB["key"]),
        ],
        "source string, source_record_id string, customer_key string",
    )
    # Bronze knows Zed only by source ids: the financial record has no customer key.
    _write(
        t,
        spark,
        "bronze.financial_records",
        [
            (ZED["fin"], f"{ZED['first']} {ZED['last']}", "1 Quiet Lane"),
            ("FIN0000888", "Bob", "2 Loud Road"),
        ],
        "fin_id string, holder string, address string",
    )
    # A card transaction names its payer only by card token or wallet id.
    _write(
        t,
        spark,
        "silver.cards",
        [(ZED["card"], ZED["key"]), ("tok_amy_card_0001", AMY["key"])],
        "card_id string, customer_key string",
    )
    _write(
        t,
        spark,
        "bronze.crm_customers",
        [(ZED["crm"], ZED["wallet"]), (AMY["crm"], None)],
        "crm_id string, wallet_id string",
    )
    _write(
        t,
        spark,
        "bronze.card_transactions",
        [
            ("TX1", ZED["card"], None, 5.0),
            ("TX2", None, ZED["wallet"], 6.0),
            ("TX3", "tok_amy_card_0001", None, 7.0),
        ],
        "transaction_id string, card_token string, wallet_id string, amount double",
    )
    _write(
        t,
        spark,
        "_quarantine.crm_customers",
        [
            (f"{ZED['crm']},{ZED['first']},{ZED['last']},1961-07-23,not-a-date", "bad date"),
            (f"{AMY['crm']},Amy,Ash,1990-01-01,x", "bad date"),
        ],
        "raw_text string, reason string",
    )
    _write(
        t,
        spark,
        "gold.fact_transactions",
        [
            ("T1", ZED["key"], 10.0, "2024-01"),
            ("T2", AMY["key"], 20.0, "2024-01"),
            ("T3", ZED["key"], 30.0, "2024-02"),
            ("T4", BOB["key"], 40.0, "2024-02"),
        ],
        "transaction_id string, customer_key string, amount_usd double, month string",
        partition_by=("month",),
    )
    logs = Path(t.lake_root) / "_ops" / "logs"
    logs.mkdir(parents=True)
    (logs / "run.jsonl").write_text(
        json.dumps({"msg": f"matched {ZED['email']}"}) + "\n" + json.dumps({"msg": "ok"}) + "\n"
    )
    return t


def _rows(tables: Tables, name: str) -> list[tuple[object, ...]]:
    return sorted(tuple(r) for r in tables.read(name).collect())


def test_erasure_by_email_leaves_no_trace_and_others_unchanged(spark: SparkSession, lake: Tables):
    root = Path(lake.lake_root)
    before = values_in_lake(root)
    assert ZED["last"] in before and ZED["fin"] in before  # the scan does see them
    others = {
        n: [
            r
            for r in _rows(lake, n)
            if not {ZED["key"], ZED["fin"], ZED["crm"], ZED["card"], ZED["wallet"]} & set(r)
            and not any(ZED["crm"] + "," in str(v) for v in r)
        ]
        for n in (
            "silver.customers",
            "silver.crosswalk",
            "bronze.financial_records",
            "_quarantine.crm_customers",
            "gold.fact_transactions",
            "silver.cards",
            "bronze.crm_customers",
            "bronze.card_transactions",
        )
    }

    result = erase(lake, ErasureRequest(email="zed.quix@MAIL.test"), key=KEY)

    after = values_in_lake(root)
    for value in (
        ZED["key"],
        ZED["crm"] + ",",
        ZED["fin"],
        ZED["email"],
        ZED["phone"],
        ZED["first"],
        ZED["last"],
        "1961-07-23",
        ZED["device"],
        ZED["card"],
        ZED["wallet"],
    ):
        assert value not in after, value
    assert ZED["email"].lower() not in after.lower()
    for name, rows in others.items():
        assert _rows(lake, name) == rows, name
    # customers 1, crosswalk 2, bronze 1 + crm 1 + card transactions 2, quarantine 1, facts 2,
    # cards 1
    assert result.rows_removed == 11
    assert result.files_redacted == ["_ops/logs/run.jsonl"]
    assert result.files_not_handled == []
    # Nothing to travel back to: the rewritten tables start at their latest version.
    assert lake.history("silver.customers")[-1]["version"] == lake.version("silver.customers")
    audit = lake.read(AUDIT_TABLE).collect()
    assert len(audit) == 1 and audit[0]["rows_removed"] == 11
    assert ZED["email"].lower() not in str(audit[0]).lower()


def test_erasure_rewrites_only_the_files_holding_the_person(spark: SparkSession, lake: Tables):
    # A month of facts without Zed, and a table that cannot hold anyone (numbers only): neither
    # is rewritten, nor is the table vacuumed or its history cut.
    lake.append(
        "gold.fact_transactions",
        spark.createDataFrame(
            [("T5", BOB["key"], 50.0, "2024-03")],
            "transaction_id string, customer_key string, amount_usd double, month string",
        ),
    )
    _write(lake, spark, "gold.kpi_numbers", [(1, 2.5), (2, None)], "n long, value double")
    _write(lake, spark, "gold.kpi_numbers", [(3, 7.0)], "n long, value double")
    march = {f for f in lake.read("gold.fact_transactions").inputFiles() if "2024-03" in f}
    numbers = (
        len(lake.history("gold.kpi_numbers")),
        set(lake.read("gold.kpi_numbers").inputFiles()),
    )

    result = erase(lake, ErasureRequest(customer_key=ZED["key"]), key=KEY)

    assert "gold.fact_transactions" in result.tables_changed
    assert "gold.kpi_numbers" not in result.tables_changed
    assert len(march) == 1 and march <= set(lake.read("gold.fact_transactions").inputFiles())
    assert (
        len(lake.history("gold.kpi_numbers")),
        set(lake.read("gold.kpi_numbers").inputFiles()),
    ) == numbers
    assert _rows(lake, "gold.fact_transactions") == [
        ("T2", AMY["key"], 20.0, "2024-01"),
        ("T4", BOB["key"], 40.0, "2024-02"),
        ("T5", BOB["key"], 50.0, "2024-03"),
    ]


def test_suppression_stops_a_redelivered_record(spark: SparkSession, lake: Tables):
    erase(lake, ErasureRequest(customer_key=ZED["key"]), key=KEY)
    redelivered = spark.createDataFrame(
        [
            (ZED["crm"], "Zebulon", ZED["email"].upper()),
            (AMY["crm"], "Amy", AMY["email"]),
            (None, "Nul", None),
            ("CRM0009999", "New", ZED["email"]),
        ],
        "crm_id string, first_name string, email string",
    )
    kept = filter_suppressed(
        redelivered, tables=lake, columns={"crm_id": "record", "email": "email"}, key=KEY
    )
    assert sorted(kept.collect(), key=str) == sorted(
        [(AMY["crm"], "Amy", AMY["email"]), (None, "Nul", None)], key=str
    )
    card_feed = spark.createDataFrame(
        [
            ("TX9", ZED["card"], None),
            ("TX8", None, ZED["wallet"]),
            ("TX7", "tok_amy_card_0001", None),
        ],
        "transaction_id string, card_token string, wallet_id string",
    )
    kept = filter_suppressed(card_feed, tables=lake, columns=BRONZE_IDENTIFIERS, key=KEY)
    assert [r["transaction_id"] for r in kept.collect()] == ["TX7"]


def test_suppression_stops_a_redelivered_quarantine_line_and_service_ref(
    spark: SparkSession, lake: Tables
):
    # A re-delivered file's bad line lands in quarantine as raw text, and the service log names
    # people only in its ref (a CRM id, an e-mail or a phone, spelt as the agent typed it).
    erase(lake, ErasureRequest(customer_key=ZED["key"]), key=KEY)
    quarantined = spark.createDataFrame(
        [
            (f"{ZED['crm']},{ZED['first']},{ZED['last']},1961-07-23,not-a-date",),
            (f'{{"fin_id":"{ZED["fin"]}","holder":{{"name":"QUIXOTESON, Zebulon"',),  # cut JSON
            (f"{AMY['crm']},Amy,Ash,1990-01-01,x",),  # Amy's id starts with Zed's
            (None,),
        ],
        "raw_text string",
    )
    kept = filter_suppressed_text(quarantined, tables=lake, columns=["raw_text"], key=KEY)
    assert sorted(kept.collect(), key=str) == sorted(
        [(f"{AMY['crm']},Amy,Ash,1990-01-01,x",), (None,)], key=str
    )
    service = spark.createDataFrame(
        [
            ("INT-1", ZED["crm"]),
            ("INT-2", ZED["email"].upper()),
            ("INT-3", "0044 7700 900777"),
            ("INT-4", AMY["crm"]),
            ("INT-5", BOB["email"]),
            ("INT-6", None),
        ],
        "interaction_id string, ref string",
    )
    kept = filter_suppressed_text(service, tables=lake, columns=["ref", "absent"], key=KEY)
    assert sorted(kept.collect(), key=str) == sorted(
        [("INT-4", AMY["crm"]), ("INT-5", BOB["email"]), ("INT-6", None)], key=str
    )


def test_erasure_by_a_source_record_id_finds_the_person_through_the_crosswalk(lake: Tables):
    # The finance record id is named nowhere but the crosswalk and bronze's financial records:
    # from it, erasure finds Zed's customer key, then his CRM id, e-mail, card and wallet.
    result = erase(lake, ErasureRequest(source_record_id=ZED["fin"]), key=KEY)

    def cells(name: str, *cols: str) -> set[tuple[object, ...]]:
        return {tuple(r) for r in lake.read(name).select(*cols).collect()}

    assert cells("silver.customers", "customer_key", "first_name", "crm_ids") == {
        (AMY["key"], "Amy", AMY["crm"]),
        (BOB["key"], "Bob", None),
    }
    assert cells("silver.crosswalk", "source_record_id", "customer_key") == {
        (AMY["crm"], AMY["key"]),
        (BOB["crm"], BOB["key"]),
    }
    assert cells("bronze.financial_records", "fin_id", "holder") == {("FIN0000888", "Bob")}
    assert cells("bronze.crm_customers", "crm_id", "wallet_id") == {(AMY["crm"], None)}
    assert cells("bronze.card_transactions", "transaction_id") == {("TX3",)}
    assert cells("silver.cards", "card_id") == {("tok_amy_card_0001",)}
    assert cells("_quarantine.crm_customers", "raw_text") == {
        (f"{AMY['crm']},Amy,Ash,1990-01-01,x",)
    }
    assert cells("gold.fact_transactions", "transaction_id", "customer_key") == {
        ("T2", AMY["key"]),
        ("T4", BOB["key"]),
    }
    # customers 1, crosswalk 2, bronze 1 + crm 1 + card transactions 2, quarantine 1, facts 2,
    # cards 1; the log line naming his e-mail is redacted
    assert result.rows_removed == 11
    assert result.files_redacted == ["_ops/logs/run.jsonl"]
    assert ZED["email"] not in (Path(lake.lake_root) / "_ops" / "logs" / "run.jsonl").read_text()


def test_an_audit_table_from_before_references_gains_the_column(spark: SparkSession, lake: Tables):
    # A lake that recorded an erasure before the audit counted references: the next erasure
    # adds the column, the old row keeps null (it was not counted then), the new row its count.
    before = T.StructType([f for f in AUDIT_SCHEMA.fields if f.name != "references_removed"])
    lake.append(
        AUDIT_TABLE,
        spark.createDataFrame(
            [
                (
                    "req-0",
                    "ticket-0",
                    dt.datetime(2026, 1, 5),
                    "digest-0",
                    ["silver.customers"],
                    3,
                    0,
                    0,
                )
            ],
            before,
        ),
    )

    erase(lake, ErasureRequest(customer_key=ZED["key"]), key=KEY)

    rows = {r["request_id"]: r for r in lake.read(AUDIT_TABLE).collect()}
    assert rows.pop("req-0")["references_removed"] is None
    ((_, new),) = rows.items()
    assert (new["rows_removed"], new["references_removed"]) == (11, 0)


def test_a_request_naming_nobody_is_refused(lake: Tables):
    with pytest.raises(ErasureError, match="nobody in the lake"):
        erase(lake, ErasureRequest(source_record_id="CRM_UNKNOWN"), key=KEY)
    with pytest.raises(ErasureError, match="needs a customer key"):
        ErasureRequest()


def test_a_card_known_only_to_the_bank_record_goes_with_its_transactions(
    spark: SparkSession, lake: Tables
):
    # A card the bank issued that silver never linked to a customer: the financial record lists
    # it, and only its token names the payer in the card feed.
    bank_only = "tok_zed_bank_only_0777"
    lake.overwrite(
        "bronze.financial_records",
        spark.createDataFrame(
            [
                (
                    ZED["fin"],
                    f"{ZED['first']} {ZED['last']}",
                    "1 Quiet Lane",
                    [(bank_only, "debit")],
                ),
                ("FIN0000888", "Bob", "2 Loud Road", [("tok_bob_card_0888", "credit")]),
            ],
            "fin_id string, holder string, address string, "
            "cards array<struct<card_token:string,kind:string>>",
        ),
        schema_mode="merge",
    )
    _write(
        lake,
        spark,
        "bronze.card_transactions",
        [
            ("TX1", bank_only, None, 5.0),
            ("TX2", "tok_bob_card_0888", None, 6.0),
            ("TX3", "tok_amy_card_0001", None, 7.0),
        ],
        "transaction_id string, card_token string, wallet_id string, amount double",
    )

    erase(lake, ErasureRequest(email=ZED["email"]), key=KEY)

    assert [r["transaction_id"] for r in _rows_dicts(lake, "bronze.card_transactions")] == [
        "TX2",
        "TX3",
    ]
    assert [r["fin_id"] for r in _rows_dicts(lake, "bronze.financial_records")] == ["FIN0000888"]
    assert bank_only not in values_in_lake(Path(lake.lake_root))
    # Redelivered, the card's transactions stay out.
    feed = spark.createDataFrame(
        [("TX9", bank_only, None), ("TX8", "tok_bob_card_0888", None)],
        "transaction_id string, card_token string, wallet_id string",
    )
    kept = filter_suppressed(feed, tables=lake, columns=BRONZE_IDENTIFIERS, key=KEY)
    assert [r["transaction_id"] for r in kept.collect()] == ["TX8"]


def _rows_dicts(tables: Tables, name: str) -> list[dict[str, object]]:
    return sorted(
        (r.asDict() for r in tables.read(name).collect()),
        key=lambda r: str(r.get("transaction_id") or r.get("fin_id")),
    )


def test_a_transfer_from_the_person_keeps_the_receivers_record_without_the_reference(
    spark: SparkSession, lake: Tables
):
    lake.overwrite(
        "bronze.card_transactions",
        spark.createDataFrame(
            [
                ("TX1", ZED["card"], None, None, "POS", "debit", 5.0),
                (
                    "TX2",
                    None,
                    ZED["wallet"],
                    AMY_WALLET,
                    "P2P",
                    "credit",
                    6.0,
                ),  # Zed's credit: goes
                (
                    "TX3",
                    None,
                    AMY_WALLET,
                    ZED["wallet"],
                    "P2P",
                    "credit",
                    7.0,
                ),  # Amy's credit from Zed
                ("TX4", None, AMY_WALLET, BOB_WALLET, "P2P", "credit", 8.0),
                ("TX5", "tok_amy_card_0001", None, None, "POS", "debit", None),
            ],
            P2P,
        ),
        schema_mode="merge",
    )

    result = erase(lake, ErasureRequest(customer_key=ZED["key"]), key=KEY)

    expected = spark.createDataFrame(
        [
            ("TX3", None, AMY_WALLET, None, "P2P", "credit", 7.0),
            ("TX4", None, AMY_WALLET, BOB_WALLET, "P2P", "credit", 8.0),
            ("TX5", "tok_amy_card_0001", None, None, "POS", "debit", None),
        ],
        P2P,
    )
    table = lake.read("bronze.card_transactions")
    assert sorted(table.columns) == sorted(expected.columns)
    assert_df_equality(
        table.select(*expected.columns), expected, ignore_row_order=True, ignore_nullable=True
    )
    # customers 1, crosswalk 2, bronze 1 + crm 1 + card transactions 2, quarantine 1, facts 2,
    # cards 1; Amy's TX3 is kept, only its reference to Zed removed
    assert (result.rows_removed, result.references_removed) == (11, 1)
    (audit,) = lake.read(AUDIT_TABLE).collect()
    assert (audit["rows_removed"], audit["references_removed"]) == (11, 1)
    # Old versions went too: no file of the lake holds the wallet any more.
    assert ZED["wallet"] not in values_in_lake(Path(lake.lake_root))


def test_erasure_on_the_delta_spark_engine_keeps_no_identifier_in_files_or_commits(
    spark: SparkSession, tmp_path: Path, clean_catalog: None
):
    # The engine whose MERGE writes its conditions into the commit: the person's identifiers
    # must reach neither the log nor a file left behind.
    if not delta_spark_loaded(spark):
        pytest.skip(delta_spark_missing())
    from cardlake.tables.delta_spark import DeltaSparkEngine

    t = Tables(
        spark=spark,
        lake_root=str(tmp_path / "lake"),
        engine=DeltaSparkEngine(spark=spark),
        register_sql=False,
    )
    _write(
        t,
        spark,
        "silver.customers",
        [
            (
                ZED["key"],
                ZED["first"],
                ZED["last"],
                ZED["dob"],
                ZED["email"],
                None,
                None,
                ZED["crm"],
            ),
            (AMY["key"], "Amy", "Ash", None, AMY["email"], None, None, AMY["crm"]),
        ],
        CUSTOMERS,
    )
    _write(
        t,
        spark,
        "bronze.crm_customers",
        [(ZED["crm"], ZED["wallet"]), (AMY["crm"], AMY_WALLET)],
        "crm_id string, wallet_id string",
    )
    _write(
        t,
        spark,
        "bronze.card_transactions",
        [
            ("TX2", None, ZED["wallet"], AMY_WALLET, "P2P", "credit", 6.0),
            ("TX3", None, AMY_WALLET, ZED["wallet"], "P2P", "credit", 7.0),
            ("TX4", None, AMY_WALLET, BOB_WALLET, "P2P", "credit", 8.0),
            ("TX5", "tok_amy_card_0001", None, None, "POS", "debit", None),
        ],
        P2P,
        partition_by=("channel",),
    )
    pos = {f for f in t.read("bronze.card_transactions").inputFiles() if "channel=POS" in f}

    result = erase(t, ErasureRequest(customer_key=ZED["key"]), key=KEY)

    assert (result.rows_removed, result.references_removed) == (3, 1)
    assert sorted(tuple(r) for r in t.read("bronze.card_transactions").collect()) == [
        ("TX3", None, AMY_WALLET, None, "P2P", "credit", 7.0),
        ("TX4", None, AMY_WALLET, BOB_WALLET, "P2P", "credit", 8.0),
        ("TX5", "tok_amy_card_0001", None, None, "POS", "debit", None),
    ]
    assert pos <= set(t.read("bronze.card_transactions").inputFiles())  # not rewritten
    after = values_in_lake(Path(t.lake_root))
    for value in (ZED["key"], ZED["wallet"], ZED["email"], ZED["last"]):
        assert value not in after, value
    assert not re.search(ZED["crm"] + r"(?![0-9])", after)  # Amy's CRM00007770 starts with it
    assert AMY["crm"] in after and AMY_WALLET in after  # the scan does see the others


def test_suppression_nulls_a_redelivered_reference_and_drops_the_persons_own_record(
    spark: SparkSession, lake: Tables
):
    erase(lake, ErasureRequest(customer_key=ZED["key"]), key=KEY)
    feed = spark.createDataFrame(
        [
            ("TX9", None, AMY_WALLET, ZED["wallet"], "P2P", "credit", 7.0),  # Zed to Amy: lands
            ("TX8", None, ZED["wallet"], AMY_WALLET, "P2P", "credit", 6.0),  # Amy to Zed: dropped
            ("TX7", None, AMY_WALLET, BOB_WALLET, "P2P", "credit", 8.0),
            ("TX6", None, None, None, None, None, None),
        ],
        P2P,
    )

    kept = without_suppressed_references(
        filter_suppressed(feed, tables=lake, columns=BRONZE_IDENTIFIERS, key=KEY),
        tables=lake,
        columns=REFERENCES,
        key=KEY,
    )

    expected = spark.createDataFrame(
        [
            ("TX9", None, AMY_WALLET, None, "P2P", "credit", 7.0),
            ("TX7", None, AMY_WALLET, BOB_WALLET, "P2P", "credit", 8.0),
            ("TX6", None, None, None, None, None, None),
        ],
        P2P,
    )
    assert_df_equality(kept, expected, ignore_row_order=True, ignore_nullable=True)
