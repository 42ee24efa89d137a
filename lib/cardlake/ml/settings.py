"""Model settings from ``conf/ml.yaml``: frozen dataclasses, unknown keys rejected.

The ``ml:`` section of ``conf/<env>.yaml`` overlays the file key by key, so the test overlay can
shrink grids without repeating the rest (:func:`cardlake.config.load_settings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cardlake.config import PROJECT_ROOT, load_settings
from cardlake.tracking import TrackingSettings  # below every layer; re-exported here

ML_CONF = PROJECT_ROOT / "conf" / "ml.yaml"  # the shipped file (CARDLAKE_CONF_DIR moves it)


@dataclass(frozen=True)
class LrGrid:
    reg_param: tuple[float, ...] = (0.01,)
    elastic_net: tuple[float, ...] = (0.0,)
    max_iter: tuple[int, ...] = (100,)  # L-BFGS iterations at most (Spark's default 100)


@dataclass(frozen=True)
class GbtGrid:
    max_depth: tuple[int, ...] = (3,)
    max_iter: tuple[int, ...] = (20,)


@dataclass(frozen=True)
class SegmentationSettings:
    model_name: str
    features: tuple[str, ...]
    log_features: tuple[str, ...]
    cap_quantiles: tuple[float, ...]
    naming_rules: Mapping[str, Mapping[str, float]]
    quantile_error: float = 0.001
    k: int = 5
    """The number of segments: fixed, the platform promises five named ones."""
    restarts: int = 4
    """Seeded K-means fits; the one with the lowest cost is kept."""
    window_months: int = 6
    """Behaviour of a month = the customer's transactions over this many months up to it."""
    k_min: int = 3
    """k_min..k_max: silhouette by k, logged as a diagnostic only (k does not follow it)."""
    k_max: int = 7
    max_iter: int = 25
    silhouette_sample: int = 8000


@dataclass(frozen=True)
class EngagementSettings:
    model_name: str
    dimensions: tuple[str, ...]
    features: tuple[str, ...]
    log_dimensions: tuple[str, ...] = ()
    rule_min_dimensions: int = 3
    lead_months: int = 2
    oot_gap_months: int = 2
    train_share: float = 0.8
    only_engaged_at_m: bool = True
    trend_features: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    lr_grid: LrGrid = LrGrid()
    gbt_grid: GbtGrid = GbtGrid()
    gbt_step_size: float = 0.1
    validation_share: float = 0.75


@dataclass(frozen=True)
class ExperimentSettings:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    top_share: float = 0.1
    test_share: float = 0.6
    strata: tuple[str, ...] = ()
    score_bins: int = 2
    alpha: float = 0.05
    smd_limit: float = 0.1
    draws: int = 1000
    min_level_count: int = 10


@dataclass(frozen=True)
class FraudSettings:
    model_name: str
    test_months: int = 2
    feedback_delay_days: int = 30
    validation_months: int = 1
    negative_sample: float = 1.0
    small_amount_usd: float | None = None  # None: learnt from the training months
    history_windows_hours: tuple[int, ...] = (1, 24, 168)
    lr_grid: LrGrid = LrGrid()
    gbt_grid: GbtGrid = GbtGrid()
    gbt_step_size: float = 0.1
    threshold_rule: Literal["precision", "cost"] = "precision"
    precision_target: float = 0.5
    cost_false_negative: float = 100.0
    cost_false_positive: float = 5.0
    card_precision_k: int = 50
    max_reasons: int = 3


@dataclass(frozen=True)
class BinSpec:
    edges: tuple[float, ...]
    reason: str


@dataclass(frozen=True)
class RiskSettings:
    model_name: str
    event_expression: str
    bins: Mapping[str, BinSpec]
    tier_shares: Mapping[str, float]
    """Share of the training population in each upper tier (``high``, ``medium``); the score
    cut-offs are read off the training scores once and fixed with the scorecard."""
    horizon_months: int = 3
    closure_is_event: bool = True
    oot_gap_months: int = 3
    train_share: float = 0.8
    pdo: float = 20.0
    base_score: float = 500.0
    base_odds: float = 0.1
    max_reasons: int = 3
    lr_grid: LrGrid = LrGrid()
    gbt_grid: GbtGrid = GbtGrid()
    gbt_step_size: float = 0.1


@dataclass(frozen=True)
class TextSettings:
    """Service-note topics (TF-IDF + logistic regression) and sentiment (VADER)."""

    test_months: int = 3
    hash_features: int = 4096
    min_doc_freq: int = 2
    reg_param: float = 0.01
    max_iter: int = 50
    positive_at: float = 0.05
    negative_at: float = -0.05
    lexicon_overrides: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ClvSettings:
    """Predictive lifetime value (BG/NBD + Gamma-Gamma, ``cardlake.analytics.clv``)."""

    holdout_months: int = 6
    horizon_months: int = 36
    fit_customers: int = 200_000


@dataclass(frozen=True)
class PropensitySettings:
    """Cross-sell propensity (``cardlake.ml.propensity``): products not yet held."""

    model_name: str = "cardlake-propensity"
    products: tuple[str, ...] = (
        "wallet",
        "virtual_card",
        "savings",
        "stocks",
        "crypto",
        "fx",
        "budgeting",
    )
    campaigns: Mapping[str, str] = field(default_factory=dict)
    """Campaign name -> the product it offers (``gold.campaign_targets``)."""
    numeric: tuple[str, ...] = ("tx_count", "spend_usd", "eng_count_3m", "eng_days_3m")
    categorical: tuple[str, ...] = ("plan_type",)
    lookback_months: int = 3
    """Held: used in any of this many months up to M."""
    horizon_months: int = 2
    """Response: first use in M+1..M+horizon."""
    train_share: float = 0.8
    validation_share: float = 0.75
    lr_grid: LrGrid = LrGrid()
    gbt_grid: GbtGrid = GbtGrid()
    gbt_step_size: float = 0.1


@dataclass(frozen=True)
class MlSettings:
    seed: int
    tracking: TrackingSettings
    segmentation: SegmentationSettings
    engagement: EngagementSettings
    experiment: ExperimentSettings
    fraud: FraudSettings
    risk: RiskSettings
    text: TextSettings = TextSettings()
    clv: ClvSettings = ClvSettings()
    propensity: PropensitySettings = PropensitySettings()
    models_at_once: int = 2
    """Models trained at the same time, each in its own thread (1: one after another)."""

    def __post_init__(self) -> None:
        if self.models_at_once < 1:
            raise ValueError(f"models_at_once must be at least 1, got {self.models_at_once}")


def load_ml_settings(env: str | None = None, path: Path | None = None) -> MlSettings:
    """Loads ``ml.yaml`` with the ``ml:`` section of ``<env>.yaml`` over it.

    A thin wrapper over :func:`cardlake.config.load_settings`; the harness loads it once.

    Raises:
        ConfigError: unknown or missing keys, wrong types; the message names the key and file.
    """
    return load_settings(MlSettings, "ml", env=env, file=path)
