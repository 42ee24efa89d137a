"""conf/ml.yaml: the shipped file loads; unknown keys are refused naming the key and file."""

from __future__ import annotations

import pytest

from cardlake.config import ConfigError
from cardlake.ml.settings import ML_CONF, load_ml_settings


def test_shipped_settings_load_with_the_test_overlay():
    local, test = load_ml_settings("local"), load_ml_settings("test")
    assert local.segmentation.k_max > test.segmentation.k_max
    assert test.engagement.lead_months == local.engagement.lead_months == 2
    assert local.risk.bins["fraud_contacts_6m"].reason == "fraud history"


def test_unknown_key_names_key_and_file(tmp_path):
    text = ML_CONF.read_text().replace("  k_min: 3", "  k_minn: 4\n  k_min: 3", 1)
    path = tmp_path / "ml.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"ml\.yaml: segmentation\.k_minn: unknown key"):
        load_ml_settings("local", path)


def test_wrong_type_is_refused(tmp_path):
    path = tmp_path / "ml.yaml"
    path.write_text(ML_CONF.read_text().replace("  k_min: 3", "  k_min: three", 1))
    with pytest.raises(ConfigError, match=r"segmentation\.k_min: must be int"):
        load_ml_settings("local", path)
