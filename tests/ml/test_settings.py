"""conf/ml.yaml: the shipped file loads; unknown keys are refused naming the key and file."""

from __future__ import annotations

import re

import pytest

from cardlake.config import ConfigError
from cardlake.ml.settings import ML_CONF, load_ml_settings


def test_shipped_settings_load_with_the_test_overlay():
    local, test = load_ml_settings("local"), load_ml_settings("test")
    assert local.segmentation.k_max > test.segmentation.k_max
    assert test.engagement.lead_months == local.engagement.lead_months == 2
    assert local.risk.bins["fraud_contacts_6m"].reason == "fraud history"


# segmentation's k_min line, whatever its value (a count of 1 is checked, so that a changed
# line fails here rather than leaving the file unchanged and the test vacuous)
K_MIN_LINE = re.compile(r"^  k_min: \d+", flags=re.MULTILINE)


def edited(replacement: str) -> str:
    text, count = K_MIN_LINE.subn(replacement, ML_CONF.read_text(), count=1)
    assert count == 1, "conf/ml.yaml has no segmentation k_min line"
    return text


def test_unknown_key_names_key_and_file(tmp_path):
    text = edited("  k_minn: 4\n  k_min: 4")
    path = tmp_path / "ml.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"ml\.yaml: segmentation\.k_minn: unknown key"):
        load_ml_settings("local", path)


def test_wrong_type_is_refused(tmp_path):
    path = tmp_path / "ml.yaml"
    path.write_text(edited("  k_min: three"))
    with pytest.raises(ConfigError, match=r"segmentation\.k_min: must be int"):
        load_ml_settings("local", path)
