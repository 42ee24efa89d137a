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


def test_sources_wait_only_for_the_sources_their_references_read() -> None:
    from cardlake.bronze.contracts import INGEST_ORDER
    from cardlake.bronze.ingest import _referenced

    waits = {name: sorted(first) for name, first in _referenced(INGEST_ORDER).items() if first}
    assert waits == {
        "card_transactions": ["crm_customers", "financial_records"],
        "chargebacks": ["card_transactions"],
    }
    for name, first in waits.items():  # each after what it waits for: no thread waits forever
        assert all(INGEST_ORDER.index(f) < INGEST_ORDER.index(name) for f in first)
    # Only the chosen sources are waited for: chargebacks alone starts at once.
    assert _referenced(["chargebacks"]) == {"chargebacks": []}


def test_sources_at_once_must_be_positive(tmp_path: Path) -> None:
    bad = tmp_path / "bronze.yaml"
    bad.write_text(BRONZE_CONF.read_text().replace("sources_at_once: 2", "sources_at_once: 0"))
    with pytest.raises(ConfigError, match="sources_at_once must be >= 1"):
        load_bronze_config("test", bad)
