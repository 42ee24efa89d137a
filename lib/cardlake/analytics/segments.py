"""``gold.segment_monthly``: each segment's size, profile and month-to-month migration.

One row per month and segment (``inactive`` included): customers and their share of the
month's customers; the mean behaviour of its members (the segmentation's features, as written
by the model stage, when given); and migration against the previous month: members who were in
the same segment (``stayed``), came from another segment (``moved_in``), had no segment the
month before (``new``, joiners), left for another segment (``moved_out``), and the counts by
previous segment (``from_segments``, a map). Month-to-month for the first month in the data is
all ``new``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cardlake.ml.common import month_index


def segment_monthly(
    segments_df: DataFrame,
    *,
    behaviour_df: DataFrame | None = None,
    profile_columns: Sequence[str] = (),
) -> DataFrame:
    """Sizes, profiles and migration per month and segment from ``gold.customer_segments``."""
    seg = segments_df.select(
        "customer_key", "month", "segment", month_index(F.col("month")).alias("m_idx")
    )
    previous = seg.select(
        "customer_key", (F.col("m_idx") + 1).alias("m_idx"), F.col("segment").alias("prev_segment")
    )
    moves = seg.join(previous, on=["customer_key", "m_idx"], how="left")
    totals = seg.groupBy("month").agg(F.count(F.lit(1)).alias("_month_customers"))
    sizes = moves.groupBy("month", "segment").agg(
        F.count(F.lit(1)).alias("customers"),
        F.count(F.when(F.col("prev_segment") == F.col("segment"), 1)).alias("stayed"),
        F.count(F.when(F.col("prev_segment") != F.col("segment"), 1)).alias("moved_in"),
        F.count(F.when(F.col("prev_segment").isNull(), 1)).alias("new"),
    )
    from_counts = (
        moves.where(F.col("prev_segment").isNotNull())
        .groupBy("month", "segment", "prev_segment")
        .count()
        .groupBy("month", "segment")
        .agg(
            F.map_from_entries(
                F.array_sort(F.collect_list(F.struct("prev_segment", F.col("count").cast("long"))))
            ).alias("from_segments")
        )
    )
    # members of a segment last month who are in another one this month
    out_moves = (
        moves.where(F.col("prev_segment").isNotNull() & (F.col("prev_segment") != F.col("segment")))
        .groupBy("month", F.col("prev_segment").alias("segment"))
        .agg(F.count(F.lit(1)).alias("moved_out"))
    )
    profile_cols: list[str] = []
    out = sizes.join(totals, on="month", how="inner")
    if behaviour_df is not None and profile_columns:
        profile = (
            seg.join(
                behaviour_df.select("customer_key", "month", *profile_columns),
                on=["customer_key", "month"],
                how="left",
            )
            .groupBy("month", "segment")
            .agg(*[F.avg(c).alias(f"avg_{c}") for c in profile_columns])
        )
        out = out.join(profile, on=["month", "segment"], how="left")
        profile_cols = [f"avg_{c}" for c in profile_columns]
    out = out.join(from_counts, on=["month", "segment"], how="left").join(
        out_moves, on=["month", "segment"], how="left"
    )
    return out.select(
        "month",
        "segment",
        F.col("customers").cast("long").alias("customers"),
        (F.col("customers") / F.col("_month_customers")).alias("share"),
        F.col("stayed").cast("long").alias("stayed"),
        F.col("moved_in").cast("long").alias("moved_in"),
        F.col("new").cast("long").alias("new"),
        F.coalesce(F.col("moved_out"), F.lit(0)).cast("long").alias("moved_out"),
        F.coalesce(F.col("from_segments"), F.create_map().cast("map<string,bigint>")).alias(
            "from_segments"
        ),
        *profile_cols,
    )
