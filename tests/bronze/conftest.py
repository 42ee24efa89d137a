"""Bronze fixtures: a lake per test and a helper to write tiny landing files by hand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cardlake.bronze import BronzeConfig, load_bronze_config


@pytest.fixture(scope="session")
def bronze_settings() -> BronzeConfig:
    return load_bronze_config("test")


@pytest.fixture
def landing(tmp_path: Path) -> Callable[[str, str, str, str], Path]:
    """``landing(source, month, file_name, text)`` writes one landing file and returns it."""

    def write(source: str, month: str, name: str, text: str) -> Path:
        path = tmp_path / "landing" / source / month / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write
