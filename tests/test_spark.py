"""Java detection and session profiles, without starting Spark."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from cardlake.config import load_config
from cardlake.spark import JavaError, find_java, profile_settings

OPTIONS = "spark.driver.extraJavaOptions"


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
    large = profile_settings(load_config("local", overrides={"spark.profile": "large"}))
    assert (local["spark.master"], local["spark.sql.shuffle.partitions"]) == ("local[*]", "2")
    assert (test["spark.master"], test["spark.sql.shuffle.partitions"]) == ("local[2]", "2")
    assert (large["spark.sql.shuffle.partitions"], large["spark.sql.adaptive.enabled"]) == (
        "8",
        "true",
    )
    assert local["spark.driver.memory"] == large["spark.driver.memory"] == "4g"
    for settings in (local, test, large):
        assert settings["spark.sql.session.timeZone"] == "UTC"
        assert settings["spark.ui.enabled"] == "false"


def test_cluster_profile_hard_codes_no_master(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDLAKE_LAKE_ROOT", "hdfs://nn/lake")
    cluster = profile_settings(load_config("cluster"))
    assert "spark.master" not in cluster
    assert "spark.driver.memory" not in cluster
    assert cluster["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"


# -- the Delta connector ------------------------------------------------------------------------


def test_auto_and_delta_spark_ask_spark_for_the_pinned_connector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARDLAKE_IVY_DIR", str(tmp_path / "ivy"))
    for engine in ("auto", "delta-spark"):
        settings = profile_settings(load_config("test", overrides={"tables.engine": engine}))
        assert settings["spark.jars.packages"] == "io.delta:delta-spark_4.1_2.13:4.4.0"
        assert settings["spark.jars.ivy"] == str(tmp_path / "ivy")
        assert settings["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
        assert "splink" in settings["spark.jars"]  # Splink's jar rides beside the package
    embedded = profile_settings(load_config("test", overrides={"tables.engine": "delta-rs"}))
    assert "spark.jars.packages" not in embedded
    assert "spark.sql.extensions" not in embedded


def test_packages_from_spark_conf_come_beside_the_connector() -> None:
    cfg = load_config(
        "test",
        overrides={"spark.conf": {"spark.jars.packages": "org.example:extra_2.13:1.0"}},
    )
    packages = profile_settings(cfg)["spark.jars.packages"].split(",")
    assert packages == ["io.delta:delta-spark_4.1_2.13:4.4.0", "org.example:extra_2.13:1.0"]


def test_a_local_driver_gets_a_bigger_code_cache_and_the_configs_own_options_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for profile in ("local", "large", "test"):
        cfg = load_config("test", overrides={"spark.profile": profile})
        assert "-XX:ReservedCodeCacheSize=512m" in profile_settings(cfg)[OPTIONS].split()
    # The config's own driver options are kept beside it, after it: the JVM takes the last.
    mine = "-XX:ReservedCodeCacheSize=300m -Dmine=1"
    cfg = load_config("test", overrides={"spark.conf": {OPTIONS: mine}})
    options = profile_settings(cfg)[OPTIONS].split()
    assert options.index("-XX:ReservedCodeCacheSize=512m") < options.index(
        "-XX:ReservedCodeCacheSize=300m"
    )
    assert "-Dmine=1" in options
    # A cluster's driver is started by spark-submit there, with the cluster's options.
    monkeypatch.setenv("CARDLAKE_LAKE_ROOT", "hdfs://nn/lake")
    assert "ReservedCodeCacheSize" not in profile_settings(load_config("cluster")).get(OPTIONS, "")


def test_the_pinned_coordinates_match_the_installed_pyspark_and_delta_spark() -> None:
    import pyspark

    from cardlake.spark import DELTA_VERSION, delta_coordinates

    assert delta_coordinates("4.1.4") == "io.delta:delta-spark_4.1_2.13:4.4.0"
    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    assert delta_coordinates().startswith(f"io.delta:delta-spark_{spark_minor}_2.13:")
    assert importlib.metadata.version("delta-spark") == DELTA_VERSION


def test_the_session_loads_pyspark_delta_spark_and_splink_together(
    spark: SparkSession, tmp_path: Path
) -> None:
    from delta.tables import DeltaTable

    from cardlake.spark import connector_status

    status = connector_status()
    assert status is not None and status.loaded, status
    assert status.reason == "loaded io.delta:delta-spark_4.1_2.13:4.4.0"
    path = str(tmp_path / "t")
    spark.createDataFrame([(1, "a"), (2, "b"), (3, None)], "id long, s string").write.format(
        "delta"
    ).save(path)
    table = DeltaTable.forPath(spark, path)
    table.delete("id = 2")
    assert sorted(r.id for r in spark.read.format("delta").load(path).collect()) == [1, 3]
    assert [r.operation for r in table.history().orderBy("version").collect()] == [
        "WRITE",
        "DELETE",
    ]
    from splink.internals.spark.jar_location import get_scala_udfs

    for name, class_name, return_type in get_scala_udfs():
        spark.udf.registerJavaFunction(name, class_name, return_type)
    score = spark.sql("select jaro_winkler('MARTHA', 'MARHTA') as s").first()
    assert score is not None and round(score.s, 3) == 0.961  # the textbook value


OFFLINE_CHILD = """
import json, sys
from cardlake.config import load_config
from cardlake.spark import build_session, connector_status
from cardlake.tables import Tables

cfg = load_config("test", overrides={
    "paths.lake_root": sys.argv[1],
    "spark.conf": {"spark.jars.ivySettings": sys.argv[2]},
})
spark = build_session(cfg)
tables = Tables.from_config(spark, cfg)
tables.append("bronze.t", spark.createDataFrame([(1, "2025-06"), (2, "2025-07")],
              "id long, month string"), partition_by=["month"])
june = spark.sql("select id from bronze.t where month = '2025-06'").collect()
print(json.dumps({"engine": tables.engine.name, "rows": tables.read("bronze.t").count(),
                  "june": [r.id for r in june], "reason": connector_status().reason}))
spark.stop()
"""

# An Ivy setup whose only repository is a closed port on loopback: Maven cannot be reached.
NO_MAVEN = """<ivysettings>
  <settings defaultResolver="nowhere"/>
  <caches defaultCacheDir="{cache}"/>
  <resolvers><ibiblio name="nowhere" m2compatible="true" root="http://127.0.0.1:9/maven2/"/>
  </resolvers>
</ivysettings>
"""


@pytest.mark.slow
def test_without_maven_auto_starts_on_delta_rs_and_says_why_in_one_line(tmp_path: Path) -> None:
    settings = tmp_path / "ivysettings.xml"
    settings.write_text(NO_MAVEN.format(cache=tmp_path / "ivy-cache"))
    env = {**os.environ, "CARDLAKE_IVY_DIR": str(tmp_path / "ivy")}
    child = subprocess.run(
        [sys.executable, "-c", OFFLINE_CHILD, str(tmp_path / "lake"), str(settings)],
        capture_output=True,
        text=True,
        timeout=900,  # two JVM starts; minutes on a loaded two-core machine
        env=env,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["engine"] == "delta-rs"
    assert result["rows"] == 2
    assert result["june"] == [1]  # SQL over the Python data source, pruned by partition
    assert "could not resolve io.delta:delta-spark_4.1_2.13:4.4.0" in result["reason"]
    lines = [line for line in child.stderr.splitlines() if "embedded delta-rs engine" in line]
    assert len(lines) == 1, child.stderr[-3000:]
    assert "not downloadable from Maven Central" in lines[0]


def test_a_lake_on_s3_brings_hadoops_s3a_connector_at_the_hadoop_inside_pyspark() -> None:
    import pyspark

    (api,) = (Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar")
    wanted = f"org.apache.hadoop:hadoop-aws:{api.stem.removeprefix('hadoop-client-api-')}"
    on_s3 = profile_settings(load_config("test", overrides={"paths.lake_root": "s3a://b/lake"}))
    assert wanted in on_s3["spark.jars.packages"].split(",")
    assert any(p.startswith("io.delta:") for p in on_s3["spark.jars.packages"].split(","))
    local = profile_settings(load_config("test", overrides={"paths.lake_root": "/tmp/lake"}))
    assert "hadoop-aws" not in local.get("spark.jars.packages", "")
    offline = profile_settings(
        load_config(
            "test", overrides={"paths.lake_root": "s3a://b/lake", "tables.engine": "delta-rs"}
        )
    )
    assert offline["spark.jars.packages"] == wanted
    landing_only = profile_settings(
        load_config("test", overrides={"paths.landing_root": "s3a://b/landing"})
    )
    assert wanted in landing_only["spark.jars.packages"].split(",")
