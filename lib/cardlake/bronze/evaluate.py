"""Quarantine against the generator's truth (evaluation only: the pipeline never reads truth).

Precision: of the quarantined records, how many the truth lists as bad. Recall: of the bad
records in files bronze ingested (an identical re-delivery is skipped as a whole, so its copies
of bad records are not expected in quarantine), how many were quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cardlake.bronze.contracts import CONTRACTS
from cardlake.bronze.ingest import MANIFEST, STATUS_INGESTED
from cardlake.tables import Tables


@dataclass(frozen=True)
class QuarantineScore:
    precision: float
    recall: float
    quarantined: int
    expected: int
    true_positive: int
    by_kind: list[tuple[str, str, int]]  # (truth kind, reason code, records)


def score_quarantine(spark: SparkSession, tables: Tables, truth_root: str) -> QuarantineScore:
    truth = spark.read.parquet(f"{truth_root}/bad_records").select(
        F.col("file").alias("source_file"), F.col("line").cast("int").alias("position"), "kind"
    )
    ingested = (
        tables.read(MANIFEST)
        .filter(F.col("status") == STATUS_INGESTED)
        .select(F.col("path").alias("source_file"))
    )
    expected = truth.join(ingested, "source_file", how="left_semi")
    parts = [
        tables.read(f"_quarantine.{n}").select("source_file", "position", "reason_code")
        for n in CONTRACTS
        if tables.exists(f"_quarantine.{n}")
    ]
    quarantined = parts[0]
    for p in parts[1:]:
        quarantined = quarantined.unionByName(p)
    joined = quarantined.join(expected, ["source_file", "position"], how="full_outer")
    rows = joined.groupBy("kind", "reason_code").count().collect()
    tp = sum(r["count"] for r in rows if r["kind"] and r["reason_code"])
    n_q = sum(r["count"] for r in rows if r["reason_code"])
    n_e = sum(r["count"] for r in rows if r["kind"])
    by_kind = sorted((r["kind"] or "-", r["reason_code"] or "-", r["count"]) for r in rows)
    return QuarantineScore(
        precision=tp / n_q if n_q else 1.0,
        recall=tp / n_e if n_e else 1.0,
        quarantined=n_q,
        expected=n_e,
        true_positive=tp,
        by_kind=by_kind,
    )
