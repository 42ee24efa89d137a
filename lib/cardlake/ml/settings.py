"""Model settings from ``conf/ml.yaml``: frozen dataclasses, unknown keys rejected.

``envs.<env>`` in the file overlays the top level key by key for one environment, so the test
overlay can shrink grids without repeating the rest.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from cardlake.config import PROJECT_ROOT, ConfigError

ML_CONF = PROJECT_ROOT / "conf" / "ml.yaml"


@dataclass(frozen=True)
class TrackingSettings:
    uri: str | None = None
    artifact_root: str | None = None
    experiment_prefix: str = "cardlake"
    min_improvement: float = 0.0


@dataclass(frozen=True)
class LrGrid:
    reg_param: tuple[float, ...] = (0.01,)
    elastic_net: tuple[float, ...] = (0.0,)


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
    k_min: int = 3
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


@dataclass(frozen=True)
class FraudSettings:
    model_name: str
    test_months: int = 2
    feedback_delay_days: int = 30
    validation_months: int = 1
    negative_sample: float = 1.0
    small_amount_usd: float = 5.0
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
class MlSettings:
    seed: int
    tracking: TrackingSettings
    segmentation: SegmentationSettings
    engagement: EngagementSettings
    experiment: ExperimentSettings
    fraud: FraudSettings
    risk: RiskSettings


def load_ml_settings(env: str, path: Path | None = None) -> MlSettings:
    """Loads ``conf/ml.yaml`` with its ``envs.<env>`` overlay.

    Raises:
        ConfigError: unknown or missing keys, wrong types; the message names the key and file.
    """
    path = path or ML_CONF
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    envs = data.pop("envs", {}) or {}
    merged = _merge(data, envs.get(env) or {})
    return _build(MlSettings, merged, "", path)


def _merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _build(cls: type, values: Any, where: str, path: Path) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{path}: {where or 'top level'}: must be a mapping")
    fields_by_name = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in values:
        if key not in fields_by_name:
            raise ConfigError(f"{path}: {where}{'.' if where else ''}{key}: unknown key {key!r}")
    kwargs = {}
    for name, fld in fields_by_name.items():
        dotted = f"{where}.{name}" if where else name
        if name not in values:
            if fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{path}: missing required key {dotted!r}")
            continue
        kwargs[name] = _value(values[name], hints[name], dotted, path)
    return cls(**kwargs)


def _value(value: Any, hint: Any, dotted: str, path: Path) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _value(value, inner, dotted, path)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, dotted, path)  # type: ignore[arg-type]
    if origin is Literal:
        if value in typing.get_args(hint):
            return value
        raise ConfigError(f"{path}: {dotted}: one of {list(typing.get_args(hint))}, not {value!r}")
    if origin in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: {dotted}: must be a mapping, got {value!r}")
        _, inner = typing.get_args(hint)
        return types.MappingProxyType(
            {str(k): _value(v, inner, f"{dotted}.{k}", path) for k, v in value.items()}
        )
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: {dotted}: must be a list, got {value!r}")
        inner = typing.get_args(hint)[0]
        return tuple(_value(v, inner, f"{dotted}[{i}]", path) for i, v in enumerate(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(hint, type) and (
        not isinstance(value, hint) or (hint is int and isinstance(value, bool))
    ):
        raise ConfigError(f"{path}: {dotted}: must be {hint.__name__}, got {value!r}")
    return value
