"""Plots are PNGs made without pyplot, whose registry of open figures is not thread-safe (the
ML stage trains two models at once, each logging its plots)."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cardlake.ml import metrics, plots


def test_figures_render_as_png_and_stay_out_of_pyplot():
    curve = metrics.curve_from_arrays(
        np.array([0.9, 0.5, 0.1]), np.array([1, 1, 0]), np.array([0, 1, 2])
    )
    profile = pd.DataFrame([[1.0, -1.0], [0.5, 0.2]], columns=["atm_share", "pos_share"])
    open_before = plt.get_fignums()
    figures = [
        plots.roc_figure({"lr": curve}),
        plots.pr_figure({"lr": curve}),
        plots.gains_figure({"lr": curve}),
        plots.calibration_figure(
            {"lr": pd.DataFrame({"mean_score": [0.1, 0.5], "observed_rate": [0.2, 0.4]})}
        ),
        plots.importance_figure(pd.Series([1.0, -2.0], index=["x", "y"]), "drivers"),
        plots.profile_figure(profile, "profiles"),
        plots.side_by_side_figure(profile, profile, ("k-means", "bisecting")),
        plots.line_figure([3, 4], {"silhouette": [0.4, 0.5]}, "k", "silhouette by k"),
    ]
    assert plt.get_fignums() == open_before
    for figure in figures:
        png = io.BytesIO()
        figure.savefig(png, format="png")
        assert png.getvalue().startswith(b"\x89PNG"), figure
