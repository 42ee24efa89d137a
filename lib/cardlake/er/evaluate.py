"""Clustering quality against ground truth: pairwise precision/recall/F1 and B-cubed.

Pair counts come from cluster sizes (a cluster of n holds n·(n-1)/2 pairs) and from the
contingency table of (predicted entity, true entity) cell sizes, so no pair is ever
materialised: the cost is a few group-bys over the records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


@dataclass(frozen=True)
class ClusterMetrics:
    """Quality of a clustering; every rate is in [0, 1]."""

    records: int
    """Records both sides know."""
    missing_records: int
    """Records of the truth the prediction lacks: each counts as a singleton, its pairs missed."""
    unknown_records: int
    """Records of the prediction the truth does not know: left out of every figure."""
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    pairwise_precision: float
    pairwise_recall: float
    pairwise_f1: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _pairs(n: F.Column) -> F.Column:
    return (n * (n - 1) / 2).cast("long")


def evaluate_clusters(
    predicted_df: DataFrame,
    truth_df: DataFrame,
    *,
    id_col: str = "record_id",
    entity_col: str = "entity_id",
    true_col: str = "true_id",
) -> ClusterMetrics:
    """Compares predicted entities with true ones.

    Every record of the truth counts: one the prediction lacks is a singleton there, so the
    true pairs it belongs to are missed (recall) and it is its own cluster (B-cubed). Records
    only the prediction has are left out (nothing to compare them with) and counted.

    Args:
        predicted_df: ``(id_col, entity_col)``, one row per record.
        truth_df: ``(id_col, true_col)``, one row per record.
        id_col: the record key in both.
        entity_col: predicted cluster label.
        true_col: true cluster label.

    Returns:
        Pairwise precision, recall and F1 (a pair is two records in one cluster; with no
        predicted pairs precision is 1, with no true pairs recall is 1) and B-cubed precision,
        recall and F1 (per record, averaged over records).
    """
    # One outer join says which side knows each record; checkpointed, the groupings below
    # read it instead of recomputing both inputs (in silver, bronze and the truth files) for
    # each figure, as five separate jobs did.
    sides = (
        predicted_df.select(id_col, entity_col, F.lit(True).alias("_predicted"))
        .join(truth_df.select(id_col, true_col, F.lit(True).alias("_true")), on=id_col, how="full")
        .localCheckpoint(eager=True)
    )
    # A missing record is a cluster of its own: a label (NUL-prefixed) no predicted entity has.
    joined = sides.where(F.col("_true").isNotNull()).select(
        F.coalesce(F.col(entity_col), F.concat(F.lit("\u0000missing:"), F.col(id_col))).alias(
            entity_col
        ),
        true_col,
        F.col("_predicted").isNull().cast("long").alias("_missing"),
    )
    cells = joined.groupBy(entity_col, true_col).agg(
        F.count(F.lit(1)).alias("n_cell"), F.sum("_missing").alias("n_missing")
    )
    pred_sizes = cells.groupBy(entity_col).agg(F.sum("n_cell").alias("n_pred"))
    true_sizes = cells.groupBy(true_col).agg(F.sum("n_cell").alias("n_true"))
    # A cluster of n holds n(n-1)/2 pairs, and its cells' records sum to n: the sum over its
    # cells of n_cell(n-1) is twice its pairs, so both sides' pair counts come from the cells.
    cell_stats = (
        cells.join(pred_sizes, on=entity_col, how="inner")
        .join(true_sizes, on=true_col, how="inner")
        .agg(
            F.sum(_pairs(F.col("n_cell"))).alias("correct"),
            F.sum(F.col("n_cell") * (F.col("n_pred") - 1)).alias("pred_twice"),
            F.sum(F.col("n_cell") * (F.col("n_true") - 1)).alias("true_twice"),
            # B-cubed: each of the n_cell records in a cell has precision n_cell / n_pred.
            F.sum(F.col("n_cell") * F.col("n_cell") / F.col("n_pred")).alias("b3_p"),
            F.sum(F.col("n_cell") * F.col("n_cell") / F.col("n_true")).alias("b3_r"),
            F.sum("n_cell").alias("records"),
            F.sum("n_missing").alias("missing"),
        )
        .first()
    )
    unknown = sides.where(F.col("_true").isNull()).count()
    assert cell_stats is not None
    records = int(cell_stats["records"] or 0)
    missing_records = int(cell_stats["missing"] or 0)
    correct = int(cell_stats["correct"] or 0)
    n_pred = int(cell_stats["pred_twice"] or 0) // 2
    n_true = int(cell_stats["true_twice"] or 0) // 2
    precision = correct / n_pred if n_pred else 1.0
    recall = correct / n_true if n_true else 1.0
    b3_p = float(cell_stats["b3_p"] or 0) / records if records else 1.0
    b3_r = float(cell_stats["b3_r"] or 0) / records if records else 1.0
    return ClusterMetrics(
        records=records - missing_records,
        missing_records=missing_records,
        unknown_records=unknown,
        true_pairs=n_true,
        predicted_pairs=n_pred,
        correct_pairs=correct,
        pairwise_precision=precision,
        pairwise_recall=recall,
        pairwise_f1=_f1(precision, recall),
        bcubed_precision=b3_p,
        bcubed_recall=b3_r,
        bcubed_f1=_f1(b3_p, b3_r),
    )


def log_metrics_to_mlflow(
    metrics: ClusterMetrics,
    *,
    experiment: str,
    run_name: str,
    params: dict[str, object] | None = None,
    tracking_uri: str | None = None,
) -> str:
    """Logs the metrics (and any parameters) as one MLflow run; returns the run id.

    Args:
        metrics: from :func:`evaluate_clusters`.
        experiment: MLflow experiment name (created when missing).
        run_name: the run's name.
        params: run parameters, e.g. the threshold and the seed.
        tracking_uri: MLflow tracking URI; None keeps MLflow's own resolution
            (``MLFLOW_TRACKING_URI``).
    """
    import mlflow

    if tracking_uri is not None:
        mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name) as run:
        if params:
            mlflow.log_params({k: str(v) for k, v in params.items()})
        mlflow.log_metrics(metrics.as_dict())
        return str(run.info.run_id)
