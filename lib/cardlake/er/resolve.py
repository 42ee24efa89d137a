"""The matcher: deterministic pass, probabilistic pass, threshold, clusters.

``resolve_entities`` is what the silver job and ``jobs/resolve_entities.py`` call. It takes
person records (:func:`cardlake.er.records.to_person_records`) and returns one row per record
with its entity, plus the links that justify it and the trained model (for matching new
records incrementally against existing people later).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cardlake.er.conflicts import birth_dates_apart, without_fillers
from cardlake.er.deterministic import deterministic_edges
from cardlake.er.graph import DEFAULT_MAX_ITERATIONS, connected_components, split_conflicting
from cardlake.er.probabilistic import (
    NEW_FLAG,
    ModelSettings,
    score_new_pairs,
    score_pairs,
)

log = logging.getLogger(__name__)

DETERMINISTIC = "deterministic"
PROBABILISTIC = "probabilistic"


def without_bridges(
    components_df: DataFrame, links_df: DataFrame, records_df: DataFrame
) -> DataFrame:
    """Components split where links bridged people with different birth dates
    (:func:`cardlake.er.graph.split_conflicting`)."""
    dobs = records_df.select(F.col("uid").alias("node"), F.col("dob").alias("value"))
    return split_conflicting(components_df, links_df, dobs, conflict=birth_dates_apart)


@dataclass(frozen=True)
class ResolverSettings:
    """How to resolve; the defaults suit any person data (nothing here is fitted to one set)."""

    model: ModelSettings = field(default_factory=ModelSettings)
    threshold_match_probability: float = 0.5
    """Two records are linked when the model's match probability is at least this.

    The probability is the Fellegi-Sunter posterior: the estimated prior (probability two
    random records match) times the Bayes factors of the comparison levels, so the threshold
    follows from the model estimated on the data, not from the shape of a score histogram.
    0.5 links a pair when it is likelier the same person than not (the Bayes decision when a
    false link and a missed one cost the same)."""
    max_cluster_iterations: int = DEFAULT_MAX_ITERATIONS


@dataclass
class Resolution:
    """What :func:`resolve_entities` found."""

    entities_df: DataFrame
    """``(uid, record_id, source_dataset, entity_id, match_probability)``, one row per record."""
    links_df: DataFrame
    """``(uid_l, uid_r, match_probability, method)``: the accepted links."""
    threshold_match_probability: float
    model: dict[str, Any]
    fuzzy: bool


def choose_threshold(*, settings: ResolverSettings) -> float:
    """The link threshold on the model's match probability (see ``ResolverSettings``).

    Raises:
        ValueError: the configured probability is not in (0, 1].
    """
    threshold = settings.threshold_match_probability
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold_match_probability must be in (0, 1], got {threshold}")
    return threshold


def resolve_entities(
    spark: SparkSession,
    records: Sequence[DataFrame],
    *,
    settings: ResolverSettings | None = None,
) -> Resolution:
    """Resolves person records into entities.

    One input deduplicates; two inputs link (only links between the inputs are made, though a
    cluster may hold several records of one input through them).

    Args:
        spark: the session; build it with :func:`cardlake.er.splink_spark_conf` settings.
        records: one or two DataFrames from :func:`cardlake.er.records.to_person_records`,
            with distinct ``source_dataset`` labels when there are two.
        settings: seeds, bounds and the threshold policy.

    Returns:
        A :class:`Resolution`; ``entities_df`` has exactly one row per input record.
    """
    settings = settings or ResolverSettings()
    link_only = len(records) == 2
    union = without_fillers(reduce(DataFrame.unionByName, records)).localCheckpoint(eager=True)
    inputs = (
        [union]
        if not link_only
        else [
            union.where(F.col("source_dataset") == label)
            for label in (r.select("source_dataset").first()[0] for r in records)  # type: ignore[index]
        ]
    )

    det_df = _deterministic_links(deterministic_edges(union, link_only=link_only))
    started = time.perf_counter()
    scored = score_pairs(spark, inputs, settings=settings.model)
    pairs_df = scored.pairs_df.localCheckpoint(eager=True)
    log.info("probabilistic pass: %.1fs", time.perf_counter() - started)
    threshold = choose_threshold(settings=settings)
    log.info(
        "link threshold: match probability >= %.8f (match weight %.1f)",
        threshold,
        math.log2(threshold / (1.0 - threshold)) if threshold < 1.0 else math.inf,
    )
    links_df = det_df.unionByName(_probabilistic_links(pairs_df, threshold)).localCheckpoint(
        eager=True
    )

    started = time.perf_counter()
    components = without_bridges(
        connected_components(links_df, max_iterations=settings.max_cluster_iterations),
        links_df,
        union,
    ).localCheckpoint(eager=True)
    log.info("clustering: %.1fs", time.perf_counter() - started)
    ends = links_df.select(F.col("uid_l").alias("uid"), "match_probability").unionByName(
        links_df.select(F.col("uid_r").alias("uid"), "match_probability")
    )
    best = ends.groupBy("uid").agg(F.max("match_probability").alias("match_probability"))
    entity = F.coalesce(F.col("component"), F.col("uid"))
    if not link_only:  # one input: the uid prefix is the same everywhere, drop it
        entity = F.expr(
            "substring(coalesce(component, uid), instr(coalesce(component, uid), '|') + 1)"
        )
    entities_df = (
        union.select("uid", "record_id", "source_dataset")
        .join(components, union["uid"] == components["node"], how="left")
        .join(best, on="uid", how="left")
        .select(
            "uid", "record_id", "source_dataset", entity.alias("entity_id"), "match_probability"
        )
    )
    return Resolution(
        entities_df=entities_df,
        links_df=links_df,
        threshold_match_probability=threshold,
        model=scored.model,
        fuzzy=scored.fuzzy,
    )


def match_new_records(
    spark: SparkSession,
    records_df: DataFrame,
    *,
    model: dict[str, Any],
    threshold_match_probability: float,
    settings: ModelSettings | None = None,
) -> DataFrame:
    """Links new records to known ones (and to each other) with a saved model.

    The incremental step of a resolution: pairs of two known records were settled by an
    earlier run and are not looked at again. Deterministic edges (a shared strong identifier)
    and probabilistic links at or above the earlier run's threshold are returned; the caller
    clusters them together with the known records' entities.

    Args:
        spark: the session.
        records_df: every person record (one input), with a boolean ``is_new`` column.
        model: :attr:`Resolution.model` of the run that resolved the known records.
        threshold_match_probability: that run's link threshold.
        settings: lineage and candidate floor of the scoring (defaults as in the full pass).

    Returns:
        ``(uid_l, uid_r, match_probability, method)``, every edge touching a new record.
    """
    settings = settings or ModelSettings()
    # Fillers counted over every record, known and new, as the full pass counts them.
    records_df = without_fillers(records_df).localCheckpoint(eager=True)
    new_uids = records_df.where(F.col(NEW_FLAG)).select("uid")

    def touching_new(edges: DataFrame) -> DataFrame:
        ends = new_uids.select(F.col("uid").alias("_n"))
        left = edges.join(ends, on=edges["uid_l"] == ends["_n"], how="left_semi")
        right = edges.join(ends, on=edges["uid_r"] == ends["_n"], how="left_semi")
        return left.unionByName(right).dropDuplicates(["uid_l", "uid_r"])

    det_df = _deterministic_links(touching_new(deterministic_edges(records_df)))
    started = time.perf_counter()
    pairs_df = score_new_pairs(spark, records_df, model=model, settings=settings)
    log.info("incremental probabilistic pass: %.1fs", time.perf_counter() - started)
    prob_df = _probabilistic_links(pairs_df, threshold_match_probability)
    return det_df.unionByName(prob_df).localCheckpoint(eager=True)


def _deterministic_links(edges_df: DataFrame) -> DataFrame:
    return edges_df.select(
        "uid_l",
        "uid_r",
        F.lit(1.0).alias("match_probability"),
        F.lit(DETERMINISTIC).alias("method"),
    )


def _probabilistic_links(pairs_df: DataFrame, threshold: float) -> DataFrame:
    return pairs_df.where(F.col("match_probability") >= threshold).select(
        "uid_l", "uid_r", "match_probability", F.lit(PROBABILISTIC).alias("method")
    )
