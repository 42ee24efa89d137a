"""PNG plots for MLflow runs (matplotlib's Agg backend: no display needed).

Each ``*_figure`` builds a figure from small driver-side inputs (curves, tables); ``log_png``
stores it as a run artifact under ``plots/`` and closes it.

Figures are made with ``matplotlib.figure.Figure``, not ``pyplot``: the ML stage trains models
from two threads at once (:func:`cardlake.ml.job.run`), and pyplot's registry of open figures is
global state that matplotlib does not make thread-safe. A bare ``Figure`` belongs to no registry.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cardlake.ml import metrics


def log_png(fig: Figure, file_name: str) -> None:
    import mlflow

    mlflow.log_figure(fig, f"plots/{file_name}")
    if fig.canvas.manager is not None:  # made through pyplot (a caller's own figure)
        plt.close(fig)


def _figure(figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def roc_figure(curves: Mapping[str, metrics.Curve], title: str = "ROC") -> Figure:
    fig, ax = _figure((5, 5))
    for label, curve in curves.items():
        fpr, tpr = metrics.roc_points(curve)
        ax.plot(fpr, tpr, label=f"{label} (AUC {metrics.auc(curve):.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def pr_figure(curves: Mapping[str, metrics.Curve], title: str = "Precision-recall") -> Figure:
    fig, ax = _figure((5, 5))
    for label, curve in curves.items():
        precision, recall = metrics.precision_recall(curve)
        ax.step(
            recall,
            precision,
            where="post",
            label=f"{label} (AP {metrics.average_precision(curve):.3f})",
        )
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper right", fontsize=8)
    return fig


def gains_figure(curves: Mapping[str, metrics.Curve], title: str = "Cumulative gains") -> Figure:
    fig, ax = _figure((5, 5))
    points = tuple(np.linspace(0.01, 1.0, 100))
    for label, curve in curves.items():
        table = metrics.gains_table(curve, points)
        ax.plot(table["population_share"], table["gain"], label=label)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="random")
    ax.set(xlabel="share of population (by score)", ylabel="share of positives", title=title)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def calibration_figure(tables: Mapping[str, pd.DataFrame], title: str = "Calibration") -> Figure:
    fig, ax = _figure((5, 5))
    for label, table in tables.items():
        ax.plot(table["mean_score"], table["observed_rate"], marker="o", label=label)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="mean predicted", ylabel="observed rate", title=title)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def importance_figure(weights: pd.Series, title: str, top: int = 20) -> Figure:
    """Horizontal bars of coefficients or importances, largest magnitude on top."""
    shown = weights.reindex(weights.abs().sort_values(ascending=False).index)[:top][::-1]
    fig, ax = _figure((6, max(3, 0.3 * len(shown) + 1)))
    ax.barh(shown.index, shown.to_numpy(), color=["C3" if v < 0 else "C0" for v in shown])
    ax.set(title=title)
    fig.tight_layout()
    return fig


def profile_figure(centroids: pd.DataFrame, title: str) -> Figure:
    """Heat map of cluster centroids (rows) by feature (columns), in z-scores."""
    fig, ax = _figure((1 + 0.7 * centroids.shape[1], 1.5 + 0.5 * len(centroids)))
    limit = float(np.nanmax(np.abs(centroids.to_numpy()))) or 1.0
    image = ax.imshow(centroids.to_numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(centroids.shape[1]), centroids.columns, rotation=60, ha="right")
    ax.set_yticks(range(len(centroids)), [str(i) for i in centroids.index])
    for (i, j), value in np.ndenumerate(centroids.to_numpy()):
        ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def side_by_side_figure(left: pd.DataFrame, right: pd.DataFrame, names: tuple[str, str]) -> Figure:
    """Centroids of two clusterings per dimension: one panel per feature."""
    features = list(left.columns)
    cols = min(4, len(features))
    rows = int(np.ceil(len(features) / cols))
    fig = Figure(figsize=(3.2 * cols, 2.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, feature in zip(axes.flat, features, strict=False):
        ax.bar(np.arange(len(left)) - 0.2, left[feature], width=0.4, label=names[0])
        ax.bar(np.arange(len(right)) + 0.2, right[feature], width=0.4, label=names[1])
        ax.set_title(feature, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(features) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def line_figure(x: list[float], ys: Mapping[str, list[float]], xlabel: str, title: str) -> Figure:
    fig, ax = _figure((5, 4))
    for label, y in ys.items():
        ax.plot(x, y, marker="o", label=label)
    ax.set(xlabel=xlabel, title=title)
    ax.legend(fontsize=8)
    return fig
