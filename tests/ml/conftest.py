"""Fixtures the model tests share."""

from __future__ import annotations

from collections.abc import Iterator

import mlflow
import pytest

from cardlake.ml import tracking
from cardlake.ml.settings import TrackingSettings


@pytest.fixture
def tracker(tmp_path) -> Iterator[tracking.Tracker]:
    """A real MLflow store (SQLite and local artefacts) under the test's lake folder."""
    previous = mlflow.get_tracking_uri()
    yield tracking.Tracker.configure(str(tmp_path / "lake"), TrackingSettings())
    mlflow.set_tracking_uri(previous)
