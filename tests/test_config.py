"""Config: overlays merge onto base, and every mistake names the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardlake.config import ConfigError, load_config

BASE = """
paths:
  lake_root: lake
  landing_root: data/landing
  truth_root: data/truth
spark:
  profile: local
  shuffle_partitions: 8
tables:
  engine: auto
synth: {}
"""


def conf(tmp_path: Path, overlay: str, base: str = BASE) -> Path:
    (tmp_path / "base.yaml").write_text(base)
    (tmp_path / "dev.yaml").write_text(overlay)
    return tmp_path


def test_overlay_replaces_only_the_keys_it_names(tmp_path: Path) -> None:
    cfg = load_config("dev", directory=conf(tmp_path, "spark:\n  shuffle_partitions: 3\n"))
    assert cfg.spark.shuffle_partitions == 3
    assert cfg.spark.profile == "local"
    assert cfg.tables.engine == "auto"
    assert cfg.env == "dev"


def test_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    directory = conf(tmp_path, "spark:\n  shufle_partitions: 3\n")
    with pytest.raises(ConfigError, match=r"dev\.yaml: spark\.shufle_partitions: unknown key"):
        load_config("dev", directory=directory)


def test_missing_required_key_is_named(tmp_path: Path) -> None:
    base = BASE.replace("  truth_root: data/truth\n", "")
    with pytest.raises(ConfigError, match=r"missing required key 'paths\.truth_root'"):
        load_config("dev", directory=conf(tmp_path, "{}\n", base))


def test_wrong_type_and_bad_choice_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"spark\.shuffle_partitions: must be int"):
        load_config("dev", directory=conf(tmp_path, "spark:\n  shuffle_partitions: many\n"))
    with pytest.raises(ConfigError, match=r"tables\.engine: must be one of"):
        load_config("dev", directory=conf(tmp_path, "tables:\n  engine: parquet\n"))


def test_environment_references_must_be_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = conf(tmp_path, "paths:\n  lake_root: ${CARDLAKE_TEST_LAKE}\n")
    monkeypatch.delenv("CARDLAKE_TEST_LAKE", raising=False)
    with pytest.raises(ConfigError, match="CARDLAKE_TEST_LAKE is not set"):
        load_config("dev", directory=directory)
    monkeypatch.setenv("CARDLAKE_TEST_LAKE", "s3a://bank/lake")
    assert load_config("dev", directory=directory).paths.lake_root == "s3a://bank/lake"


def test_unknown_environment_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no overlay for environment 'prod'.*'dev'"):
        load_config("prod", directory=conf(tmp_path, "{}\n"))


def test_env_variable_picks_the_overlay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDLAKE_ENV", "test")
    assert load_config().spark.profile == "test"
    monkeypatch.setenv("CARDLAKE_ENV", "cluster")
    monkeypatch.setenv("CARDLAKE_LAKE_ROOT", "hdfs://nn/lake")
    cluster = load_config()
    assert (cluster.spark.profile, cluster.tables.engine, cluster.paths.lake_root) == (
        "cluster", "delta-spark", "hdfs://nn/lake")


def test_config_is_frozen(tmp_path: Path) -> None:
    cfg = load_config("dev", directory=conf(tmp_path, "{}\n"))
    with pytest.raises(AttributeError):
        cfg.spark.profile = "cluster"  # type: ignore[misc]
