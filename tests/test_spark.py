"""Java detection and session profiles, without starting Spark."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cardlake.config import load_config
from cardlake.spark import JavaError, find_java, profile_settings


def fake_java(tmp_path: Path, version_line: str) -> Path:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(0o755)
    return home


def test_too_old_java_is_one_sentence_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(fake_java(tmp_path, 'openjdk version "11.0.2" 2019')))
    with pytest.raises(JavaError, match=r"is Java 11\.0\.2\. Install a Java 17 or 21 runtime"):
        find_java()


def test_old_style_version_strings_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(fake_java(tmp_path, 'java version "1.8.0_392"')))
    with pytest.raises(JavaError, match=r"Java 1\.8\.0_392"):
        find_java()


def test_missing_java_names_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(JavaError, match="has no bin/java"):
        find_java()


def test_supported_java_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(fake_java(tmp_path, 'openjdk version "21.0.4" 2024')))
    java = find_java()
    assert (java.major, java.version) == (21, "21.0.4")
    assert java.executable == os.path.join(os.environ["JAVA_HOME"], "bin", "java")


def test_profiles_differ_where_they_should() -> None:
    local = profile_settings(load_config("local"))
    test = profile_settings(load_config("test"))
    assert (local["spark.master"], local["spark.sql.shuffle.partitions"]) == ("local[*]", "8")
    assert (test["spark.master"], test["spark.sql.shuffle.partitions"]) == ("local[2]", "2")
    for settings in (local, test):
        assert settings["spark.sql.session.timeZone"] == "UTC"
        assert settings["spark.ui.enabled"] == "false"


def test_cluster_profile_hard_codes_no_master(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDLAKE_LAKE_ROOT", "hdfs://nn/lake")
    cluster = profile_settings(load_config("cluster"))
    assert "spark.master" not in cluster
    assert "spark.driver.memory" not in cluster
    assert cluster["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
