"""Models on gold features, tracked in MLflow: segmentation, disengagement and the retention
experiment, fraud, and the explainable risk scorecard. Entry points are in :mod:`cardlake.ml.job`.
"""

from cardlake.ml.job import (
    MODELS,
    run_all,
    run_engagement,
    run_fraud,
    run_risk,
    run_segmentation,
)

__all__ = ["MODELS", "run_all", "run_engagement", "run_fraud", "run_risk", "run_segmentation"]
