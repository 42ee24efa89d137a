"""Config: overlays merge onto base, and every mistake names the key and the file."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from cardlake.config import ConfigError, known_envs, load_all, load_config, load_settings

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
        "cluster",
        "delta-spark",
        "hdfs://nn/lake",
    )


def test_config_is_frozen(tmp_path: Path) -> None:
    cfg = load_config("dev", directory=conf(tmp_path, "{}\n"))
    with pytest.raises(AttributeError):
        cfg.spark.profile = "cluster"  # type: ignore[misc]


# ---------------------------------------------------------------- load_settings on any file


@dataclass(frozen=True)
class Window:
    start: dt.date
    end: dt.date


@dataclass(frozen=True)
class Model:
    name: str
    grid: tuple[int, ...]
    weights: Mapping[str, float]
    window: Window
    mode: Literal["fast", "exact"] = "fast"
    secret: str | None = None

    def __post_init__(self) -> None:
        if not self.grid:
            raise ValueError("grid must not be empty")


MODEL = """
name: m1
grid: [1, 2, 3]
weights: {a: 1, b: 0.5}
window: {start: 2024-01-01, end: "2024-12-31"}
"""


def model_conf(tmp_path: Path, text: str = MODEL, overlay: str | None = None) -> Path:
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "model.yaml").write_text(text)
    (tmp_path / "dev.yaml").write_text(overlay or "{}\n")
    return tmp_path


def test_settings_build_nested_dataclasses_tuples_and_dates(tmp_path: Path) -> None:
    m = load_settings(Model, "model", env="dev", directory=model_conf(tmp_path))
    assert m == Model(
        name="m1",
        grid=(1, 2, 3),
        weights={"a": 1.0, "b": 0.5},
        window=Window(dt.date(2024, 1, 1), dt.date(2024, 12, 31)),
    )
    assert isinstance(m.weights["a"], float)
    with pytest.raises(TypeError):
        m.weights["c"] = 1.0  # type: ignore[index]


def test_env_overlay_section_overlays_the_file_and_is_named(tmp_path: Path) -> None:
    directory = model_conf(
        tmp_path,
        overlay="spark:\n  shuffle_partitions: 3\nmodel:\n"
        "  window: {end: 2025-06-30}\n  mode: exact\n",
    )
    m = load_settings(Model, "model", env="dev", directory=directory)
    assert (m.mode, m.window.start, m.window.end) == (
        "exact",
        dt.date(2024, 1, 1),
        dt.date(2025, 6, 30),
    )
    # the same overlay file overlays base.yaml with its other sections
    assert load_config("dev", directory=directory).spark.shuffle_partitions == 3
    bad = model_conf(tmp_path, overlay="model:\n  mode: slow\n")
    with pytest.raises(ConfigError, match=r"dev\.yaml: model\.mode: must be one of"):
        load_settings(Model, "model", env="dev", directory=bad)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("name: m1", "name: m1\nnmae: m2"), r"model\.yaml: nmae: unknown key"),
        (("name: m1\n", ""), r"missing required key 'name'"),
        (("grid: [1, 2, 3]", "grid: [1, two]"), r"model\.yaml: grid\[1\]: must be int"),
        (("grid: [1, 2, 3]", "grid: 3"), r"model\.yaml: grid: must be a list"),
        (("b: 0.5", "b: half"), r"model\.yaml: weights\.b: must be float"),
        (('end: "2024-12-31"', "end: someday"), r"model\.yaml: window\.end: must be a date"),
        (
            ("start: 2024-01-01, ", "start: 2024-01-01, middle: 1, "),
            r"model\.yaml: window\.middle: unknown key",
        ),
        (("grid: [1, 2, 3]", "grid: []"), r"model\.yaml: .*grid must not be empty"),
        (("name: m1", "name: true"), r"model\.yaml: name: must be str, got bool"),
    ],
)
def test_every_mistake_names_file_and_key(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    assert edit[0] in MODEL
    directory = model_conf(tmp_path, MODEL.replace(*edit))
    with pytest.raises(ConfigError, match=message):
        load_settings(Model, "model", env="dev", directory=directory)


def test_env_references_in_any_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = model_conf(tmp_path, MODEL + "secret: ${CARDLAKE_TEST_SECRET}\n")
    monkeypatch.delenv("CARDLAKE_TEST_SECRET", raising=False)
    with pytest.raises(
        ConfigError,
        match=r"model\.yaml: secret: environment variable "
        r"CARDLAKE_TEST_SECRET is not set",
    ):
        load_settings(Model, "model", env="dev", directory=directory)
    monkeypatch.setenv("CARDLAKE_TEST_SECRET", "s3cret")
    assert load_settings(Model, "model", env="dev", directory=directory).secret == "s3cret"


def test_conf_dir_variable_moves_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_conf(tmp_path, overlay="model:\n  name: from-overlay\n")
    monkeypatch.setenv("CARDLAKE_CONF_DIR", str(tmp_path))
    assert load_settings(Model, "model", env="dev").name == "from-overlay"
    assert load_config("dev").env == "dev"
    assert known_envs() == ["dev"]  # model.yaml is a settings file, not an environment


def test_load_all_routes_overrides_to_their_file(tmp_path: Path) -> None:
    settings = load_all(
        "dev",
        sections={Model: "model"},
        directory=model_conf(tmp_path),
        overrides={"model.name": "m9", "paths.lake_root": "/tmp/x"},
    )
    assert settings.of(Model).name == "m9"
    assert settings.config.paths.lake_root == "/tmp/x"
    with pytest.raises(ConfigError, match="settings Window were not loaded"):
        settings.of(Window)


def test_shipped_files_load_for_every_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from cardlake.bronze.contracts import BronzeConfig
    from cardlake.gold.config import GoldConfig
    from cardlake.ml.settings import MlSettings
    from cardlake.synth.params import SynthParams

    monkeypatch.setenv("CARDLAKE_LAKE_ROOT", "/tmp/lake")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    sections = {
        BronzeConfig: "bronze",
        GoldConfig: "gold",
        MlSettings: "ml",
        SynthParams: "base.synth",
    }
    for env in ("local", "test", "cluster"):
        settings = load_all(env, sections=sections)
        assert settings.of(BronzeConfig).allow_dev_key is (env != "cluster")
    test = load_all("test", sections=sections)
    assert test.of(MlSettings).segmentation.k_max == 4  # from test.yaml's ml: section


def test_a_section_of_another_file_sees_that_files_overrides(tmp_path: Path) -> None:
    directory = model_conf(tmp_path)
    settings = load_all(
        "dev",
        sections={Model: "model", Window: "model.window"},
        directory=directory,
        overrides={"model.window.end": "2030-01-31"},
    )
    assert settings.of(Window).end == settings.of(Model).window.end == dt.date(2030, 1, 31)


@pytest.mark.parametrize(
    ("root", "store", "local"),
    [
        ("/data/lake", False, "/data/lake"),
        ("lake", False, "lake"),
        ("file:///data/lake", False, "/data/lake"),
        ("file:/data/lake", False, "/data/lake"),
        ("s3a://bucket/lake", True, None),
        ("gs://bucket/lake", True, None),
    ],
)
def test_a_root_is_an_object_store_or_a_local_folder(root, store, local) -> None:
    from cardlake.config import is_object_store, local_path

    assert is_object_store(root) is store
    if local is None:
        with pytest.raises(ValueError, match="object store"):
            local_path(root)
    else:
        assert local_path(root) == local
