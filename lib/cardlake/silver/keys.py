"""Stable customer keys: clusters from each resolution run inherit the keys of the last run.

A cluster whose records were keyed before keeps the key most of them had. When one cluster
holds records of two old keys (a merge), the key with most records survives and the other is
retired; when the records of one old key fall into several clusters (a split), the cluster with
most of them keeps it and the others get new keys. Both are written to ``silver.key_events``.
A cluster with no keyed record gets ``CK`` + the first 10 hex digits of the SHA-256 of its
smallest record id, so a full rebuild from scratch gives the same keys; when that key was given
out before (a part split off the cluster that record keyed), the hash also covers that key.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

KEY_PREFIX = "CK"
KEY_EVENTS_COLUMNS = ("event", "month", "customer_key", "other_key", "records")


def new_key(record_ref: Column) -> Column:
    """``CK`` + 10 hex digits of SHA-256 of a record reference (``source:record_id``)."""
    return F.concat(F.lit(KEY_PREFIX), F.upper(F.substring(F.sha2(record_ref, 256), 1, 10)))


def assign_keys(
    members_df: DataFrame, previous_df: DataFrame | None
) -> tuple[DataFrame, DataFrame]:
    """Keys every cluster, inheriting from the previous crosswalk.

    Args:
        members_df: ``(cluster, source, source_record_id)``, one row per source record.
        previous_df: the current rows of the previous crosswalk
            ``(source, source_record_id, customer_key)``, or None on the first run.

    Returns:
        ``(keyed_df, events_df)``: ``(cluster, source, source_record_id, customer_key)`` and
        ``(event, customer_key, other_key, records)`` for merges and splits.
    """
    ref = F.concat_ws(":", "source", "source_record_id")
    smallest = members_df.groupBy("cluster").agg(F.min(ref).alias("_ref"))
    fresh = smallest.select("cluster", new_key(F.col("_ref")).alias("fresh_key"))
    if previous_df is None:
        keyed = members_df.join(fresh, on="cluster", how="inner").select(
            "cluster", "source", "source_record_id", F.col("fresh_key").alias("customer_key")
        )
        return keyed, empty_events(members_df.sparkSession)

    # A part split off a cluster may hold the record whose hash keyed the whole: its fresh key
    # would be the key the rest keeps. A fresh key never reuses one already given out.
    given = (
        previous_df.select(F.col("customer_key").alias("fresh_key"))
        .distinct()
        .withColumn("_given", F.lit(True))
    )
    fresh = (
        smallest.select("cluster", "_ref", new_key(F.col("_ref")).alias("fresh_key"))
        .join(given, on="fresh_key", how="left")
        .select(
            "cluster",
            F.when(F.col("_given"), new_key(F.concat_ws("|", "_ref", "fresh_key")))
            .otherwise(F.col("fresh_key"))
            .alias("fresh_key"),
        )
    )
    old = members_df.join(
        previous_df.select("source", "source_record_id", F.col("customer_key").alias("old_key")),
        on=["source", "source_record_id"],
        how="inner",
    )
    votes = old.groupBy("cluster", "old_key").agg(F.count("*").alias("records"))
    # Each old key goes to the cluster holding most of its records (ties: smallest cluster id).
    by_key = Window.partitionBy("old_key").orderBy(F.desc("records"), F.asc("cluster"))
    owners = votes.withColumn("rank", F.row_number().over(by_key)).filter("rank = 1")
    # Each cluster keeps the old key it owns with most records (ties: smallest key).
    by_cluster = Window.partitionBy("cluster").orderBy(F.desc("records"), F.asc("old_key"))
    kept = (
        owners.withColumn("rank", F.row_number().over(by_cluster))
        .filter("rank = 1")
        .select("cluster", F.col("old_key").alias("kept_key"))
    )
    keyed = (
        members_df.join(kept, on="cluster", how="left")
        .join(fresh, on="cluster", how="inner")
        .select(
            "cluster",
            "source",
            "source_record_id",
            F.coalesce("kept_key", "fresh_key").alias("customer_key"),
        )
    )
    cluster_key = keyed.select("cluster", "customer_key").distinct()
    merges = (
        owners.join(kept, on="cluster", how="inner")
        .filter(F.col("old_key") != F.col("kept_key"))
        .select(
            F.lit("merge").alias("event"),
            F.col("kept_key").alias("customer_key"),
            F.col("old_key").alias("other_key"),
            F.col("records").cast("long").alias("records"),
        )
    )
    splits = (
        votes.join(owners.select("cluster", "old_key"), on=["cluster", "old_key"], how="left_anti")
        .join(cluster_key, on="cluster", how="inner")
        .filter(F.col("customer_key") != F.col("old_key"))
        .select(
            F.lit("split").alias("event"),
            "customer_key",
            F.col("old_key").alias("other_key"),
            F.col("records").cast("long").alias("records"),
        )
    )
    return keyed, merges.unionByName(splits)


def empty_events(spark: SparkSession) -> DataFrame:
    """No merge or split: an empty ``(event, customer_key, other_key, records)`` frame."""
    return spark.createDataFrame(
        [], "event string, customer_key string, other_key string, records long"
    )


def updated_crosswalk(
    keyed_df: DataFrame,
    previous_all_df: DataFrame | None,
    *,
    month: str,
    methods_df: DataFrame,
) -> DataFrame:
    """The crosswalk after this run: changed or new records close their old row, open a new one.

    Args:
        keyed_df: ``(source, source_record_id, customer_key)`` of this run.
        previous_all_df: every row of the previous crosswalk (history included), or None.
        month: the run's month; validity starts (and ends) at month boundaries.
        methods_df: ``(source, source_record_id, match_method, match_probability)``.

    Returns:
        The full crosswalk (silver.crosswalk schema).
    """
    current = keyed_df.join(methods_df, on=["source", "source_record_id"], how="left")
    if previous_all_df is None:
        return current.select(
            "source",
            "source_record_id",
            "customer_key",
            "match_method",
            "match_probability",
            F.lit(month).alias("valid_from"),
            F.lit(None).cast("string").alias("valid_to"),
            F.lit(True).alias("is_current"),
        )
    open_rows = previous_all_df.filter("is_current")
    closed_rows = previous_all_df.filter(~F.col("is_current"))
    same = open_rows.join(
        current.select("source", "source_record_id", F.col("customer_key").alias("now_key")),
        on=["source", "source_record_id"],
        how="left",
    )
    unchanged = same.filter(F.col("customer_key").eqNullSafe(F.col("now_key"))).drop("now_key")
    closing = (
        same.filter(~F.col("customer_key").eqNullSafe(F.col("now_key")))
        .drop("now_key")
        .withColumn("valid_to", F.lit(month))
        .withColumn("is_current", F.lit(False))
    )
    kept_ids = unchanged.select("source", "source_record_id")
    opening = current.join(kept_ids, on=["source", "source_record_id"], how="left_anti").select(
        "source",
        "source_record_id",
        "customer_key",
        "match_method",
        "match_probability",
        F.lit(month).alias("valid_from"),
        F.lit(None).cast("string").alias("valid_to"),
        F.lit(True).alias("is_current"),
    )
    columns = [
        "source",
        "source_record_id",
        "customer_key",
        "match_method",
        "match_probability",
        "valid_from",
        "valid_to",
        "is_current",
    ]
    return (
        closed_rows.select(*columns)
        .unionByName(unchanged.select(*columns))
        .unionByName(closing.select(*columns))
        .unionByName(opening.select(*columns))
    )
