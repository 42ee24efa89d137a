"""Models on gold features, tracked in MLflow: segmentation, disengagement and the retention
experiment, fraud, and the explainable risk scorecard. Entry points are in :mod:`cardlake.ml.job`.

The entry points load on first use: importing :mod:`cardlake.ml.settings` (the harness does,
for every command) then costs nothing, where the models' modules take about 2 s (matplotlib,
scipy, MLflow).
"""

from typing import TYPE_CHECKING, Any

__all__ = ["MODELS", "run_all", "run_engagement", "run_fraud", "run_risk", "run_segmentation"]

if TYPE_CHECKING:
    from cardlake.ml.job import (
        MODELS,
        run_all,
        run_engagement,
        run_fraud,
        run_risk,
        run_segmentation,
    )


def __getattr__(name: str) -> Any:
    if name in __all__:
        from cardlake.ml import job

        return getattr(job, name)
    raise AttributeError(f"module 'cardlake.ml' has no attribute {name!r}")
