"""conf/gold.yaml: loads, and names the key and the file when something is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardlake.config import ConfigError
from cardlake.gold.config import default_gold_conf, load_gold_config


def test_repository_config_loads():
    gcfg = load_gold_config("test")
    assert gcfg.features.lookback_months == 12
    assert gcfg.sql_server.host == "127.0.0.1"
    assert "5812" in gcfg.discretionary_mccs


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("features:\n", "features:\n  surprise: 1\n"), "features.surprise: unknown key"),
        (("sql_server:\n", "typo_section: {}\nsql_server:\n"), "typo_section: unknown key"),
        (("  port: 10000", "  port: ten"), "sql_server.port: must be int"),
    ],
)
def test_bad_keys_are_named_with_the_file(tmp_path: Path, edit: tuple[str, str], message: str):
    text = default_gold_conf().read_text()
    assert edit[0] in text
    path = tmp_path / "gold.yaml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigError, match=message) as info:
        load_gold_config("test", path)
    assert str(path) in str(info.value)


def test_env_overlay_applies(tmp_path: Path):
    # The environment's overlay file overlays gold.yaml under its `gold:` section.
    path = tmp_path / "gold.yaml"
    path.write_text(default_gold_conf().read_text())
    (tmp_path / "test.yaml").write_text("gold:\n  sql_server: {port: 10099}\n")
    assert load_gold_config("test", path).sql_server.port == 10099
    assert load_gold_config("local", path).sql_server.port == 10000
