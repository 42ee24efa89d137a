"""The driver JVM's class archive: given to local drivers only, and valid for their class path."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from cardlake import class_archive
from cardlake.config import load_config
from cardlake.console import LOG_FILE_VAR
from cardlake.spark import find_java, profile_settings
from cardlake.stream.job import STREAM_JAVA_OPTIONS, StreamSettings, session_config

OPTIONS = "spark.driver.extraJavaOptions"


@pytest.fixture
def archive_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(class_archive.DIR_VAR, str(tmp_path))
    monkeypatch.setenv(class_archive.SWITCH_VAR, "on")
    return tmp_path


def test_a_local_driver_gets_the_archive_once_built_and_keeps_its_log_options(
    archive_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LOG_FILE_VAR, str(archive_dir / "run.log"))
    assert "SharedArchiveFile" not in profile_settings(load_config("test"))[OPTIONS]  # not built
    path = class_archive.archive_path()
    assert path.parent == archive_dir
    path.write_bytes(b"archive")
    options = profile_settings(load_config("test"))[OPTIONS]
    assert f"-XX:SharedArchiveFile={path}" in options.split()
    assert f"-Dcardlake.log.file={archive_dir / 'run.log'}" in options.split()
    monkeypatch.setenv(class_archive.SWITCH_VAR, "off")
    assert "SharedArchiveFile" not in profile_settings(load_config("test"))[OPTIONS]


def test_a_cluster_driver_never_gets_this_machines_archive(
    archive_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class_archive.archive_path().write_bytes(b"archive")
    monkeypatch.setenv("CARDLAKE_LAKE_ROOT", "hdfs://nn/lake")
    cluster = profile_settings(load_config("cluster"))
    assert "SharedArchiveFile" not in cluster.get(OPTIONS, "")
    on_a_master = profile_settings(
        load_config("test", overrides={"spark.master": "spark://127.0.0.1:7077"})
    )
    assert "SharedArchiveFile" not in on_a_master.get(OPTIONS, "")


def test_the_streams_own_jvm_options_and_the_archive_both_reach_the_driver(
    archive_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LOG_FILE_VAR, str(archive_dir / "run.log"))
    path = class_archive.archive_path()
    path.write_bytes(b"archive")
    cfg = session_config(load_config("test"), StreamSettings())
    options = profile_settings(cfg)[OPTIONS].split()
    assert set(STREAM_JAVA_OPTIONS.split()) <= set(options)
    assert "-XX:ReservedCodeCacheSize=240m" in options  # C1 alone would leave it 48 MB
    # The stream's cache size comes after the profile's, so the JVM takes the stream's.
    assert options.index("-XX:ReservedCodeCacheSize=240m") > options.index(
        "-XX:ReservedCodeCacheSize=512m"
    )
    assert options.count(f"-Dcardlake.log.file={archive_dir / 'run.log'}") == 1
    assert f"-XX:SharedArchiveFile={path}" in options


def test_archives_of_removed_installs_are_deleted_and_live_ones_kept(tmp_path: Path) -> None:
    ours = tmp_path / "spark-4.1.4-0000.jsa"  # this install's, from before .for files
    live_jars = tmp_path / "venv-a" / "jars"
    live_jars.mkdir(parents=True)
    live = tmp_path / "spark-4.1.4-aaaa.jsa"
    removed_install = tmp_path / "spark-4.1.4-bbbb.jsa"
    unknown = tmp_path / "spark-4.1.4-cccc.jsa"  # built before archives named their install
    # This install's jars before they were installed again at the same path (new times).
    superseded = tmp_path / "spark-4.1.4-dddd.jsa"
    for archive in (ours, live, removed_install, unknown, superseded):
        archive.write_bytes(b"archive")
    live.with_suffix(".for").write_text(f"{live_jars}\n")
    superseded.with_suffix(".for").write_text(f"{class_archive._jars_folder().resolve()}\n")
    removed_install.with_suffix(".for").write_text(f"{tmp_path / 'venv-b' / 'jars'}\n")
    other = tmp_path / "notes.txt"
    other.write_text("not an archive")

    gone = class_archive.remove_orphans(ours)

    assert sorted(gone) == [removed_install, unknown, superseded]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "notes.txt",
        "spark-4.1.4-0000.for",  # written now, naming this install's jars
        "spark-4.1.4-0000.jsa",
        "spark-4.1.4-aaaa.for",
        "spark-4.1.4-aaaa.jsa",
    ]
    assert Path(ours.with_suffix(".for").read_text().strip()).is_dir()


def test_jars_installed_again_at_the_same_path_need_an_archive_of_their_own(
    archive_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "spark-core.jar").write_bytes(b"jar")
    monkeypatch.setattr(class_archive, "_jars_folder", lambda: jars)
    class_archive._archive_name.cache_clear()
    try:
        first = class_archive.archive_path()
        class_archive._archive_name.cache_clear()
        assert class_archive.archive_path() == first  # nothing changed, the same archive
        os.utime(jars / "spark-core.jar", ns=(0, 1_000_000_000))  # the same jar, a new time
        class_archive._archive_name.cache_clear()
        assert class_archive.archive_path() != first
    finally:
        class_archive._archive_name.cache_clear()


def test_the_archive_setup_built_maps_into_a_jvm_with_the_drivers_class_path(
    spark: SparkSession,
) -> None:
    path = class_archive.archive_path()
    assert path.is_file(), f"no class archive at {path}: `make setup` builds it"
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    class_path = jvm.java.lang.System.getProperty("java.class.path")
    java = find_java().executable

    def start(cp: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [java, f"-XX:SharedArchiveFile={path}", "-Xshare:on", "-cp", cp, "-version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    mapped = start(class_path)
    assert mapped.returncode == 0, mapped.stderr
    # -Xshare:on refuses an archive that does not fit the class path, so the check can fail:
    elsewhere = start(str(path.parent))
    assert elsewhere.returncode != 0 and "shared class paths mismatch" in elsewhere.stderr
    # and the suite's own driver was started with it
    arguments = list(
        jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()
    )
    assert f"-XX:SharedArchiveFile={path}" in arguments
