from __future__ import annotations

from pathlib import Path

import pytest

from cardlake.bronze.contracts import BRONZE_CONF, DEV_TOKEN_KEY, load_bronze_config
from cardlake.config import ConfigError


def test_dev_key_only_where_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARDLAKE_TOKEN_KEY", raising=False)
    assert load_bronze_config("test").token_key("test") == DEV_TOKEN_KEY.encode()
    with pytest.raises(ConfigError, match="CARDLAKE_TOKEN_KEY"):
        load_bronze_config("cluster").token_key("cluster")
    monkeypatch.setenv("CARDLAKE_TOKEN_KEY", "s3cret-" + "x" * 32)
    assert load_bronze_config("cluster").token_key("cluster") == b"s3cret-" + b"x" * 32


def test_unknown_key_is_named_with_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bronze.yaml"
    bad.write_text(BRONZE_CONF.read_text().replace("min_corroboration:", "min_corroborate:"))
    with pytest.raises(ConfigError, match=r"bronze\.yaml: min_corroborate: unknown key"):
        load_bronze_config("test", bad)
