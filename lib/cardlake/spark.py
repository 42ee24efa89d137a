"""SparkSession profiles: ``local`` (a small machine), ``test`` (fast start) and ``cluster``.

Nothing here runs at import time. :func:`build_session` checks the JVM first, so a missing or
too-old Java is one sentence, not a Py4J stack trace.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cardlake.config import Config

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MIN_JAVA = 17  # Spark 4.x runs on Java 17 and 21
DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
DELTA_TABLE_CLASS = "io.delta.tables.DeltaTable"

# Local profile, measured with bench/bench_session_profile.py (3M rows, gold-like aggregates,
# 2 cores, median of 3): Spark's default 200 shuffle partitions 6.13 s; 32 partitions 2.97 s;
# 8 partitions with adaptive execution 2.00 s; 8 without 1.68 s; 2 without 1.54 s. We keep 8
# with adaptive execution on: within 20% of the fastest here, and it coalesces or splits
# partitions for the larger benchmark data and skewed joins where 2 fixed partitions would spill.
_PROFILES: dict[str, dict[str, str]] = {
    "local": {
        "spark.master": "local[*]",
        "spark.driver.memory": "4g",
        "spark.sql.shuffle.partitions": "8",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    },
    "test": {
        "spark.master": "local[2]",
        "spark.driver.memory": "2g",
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.sql.adaptive.enabled": "false",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # Tiny data: compiling generated code costs more than it saves.
        "spark.sql.codegen.wholeStage": "false",
        "spark.rdd.compress": "false",
        "spark.shuffle.compress": "false",
    },
    "cluster": {},  # master, executors and memory come from spark-submit
}

# Every profile: the same instants everywhere, Parquet that any Delta reader understands.
_COMMON = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.sources.partitionOverwriteMode": "static",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


class JavaError(RuntimeError):
    """No usable JVM for Spark."""


@dataclass(frozen=True)
class JavaInfo:
    executable: str
    major: int
    version: str


def find_java() -> JavaInfo:
    """Finds the JVM Spark will use (``$JAVA_HOME/bin/java``, else ``java`` on PATH).

    Raises:
        JavaError: none found, or older than Java 17; the message says what to install.
    """
    java_home = os.environ.get("JAVA_HOME")
    candidate = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    install = (
        f"Install a Java {MIN_JAVA} or 21 runtime (Debian/Ubuntu: "
        f"`apt-get install openjdk-{MIN_JAVA}-jre-headless`; "
        f"macOS: `brew install openjdk@{MIN_JAVA}`) "
        "and put it on PATH or set JAVA_HOME."
    )
    if not candidate or not Path(candidate).exists():
        where = f"JAVA_HOME={java_home} has no bin/java" if java_home else "no java on PATH"
        raise JavaError(f"Spark needs Java {MIN_JAVA}+, but {where}. {install}")
    try:
        out = subprocess.run(
            [candidate, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as exc:
        raise JavaError(
            f"Spark needs Java {MIN_JAVA}+, but {candidate} did not run ({exc}). {install}"
        ) from exc
    text = out.stderr + out.stdout
    match = re.search(r'version "([^"]+)"', text)
    if not match:
        raise JavaError(f"Could not read the Java version from `{candidate} -version`. {install}")
    version = match.group(1)
    parts = version.split(".")
    major = int(parts[1]) if parts[0] == "1" else int(re.match(r"\d+", parts[0]).group())  # type: ignore[union-attr]
    if major < MIN_JAVA:
        raise JavaError(
            f"Spark 4 needs Java {MIN_JAVA}+, but {candidate} is Java {version}. {install}"
        )
    return JavaInfo(executable=candidate, major=major, version=version)


def profile_settings(cfg: Config) -> dict[str, str]:
    """The Spark settings of the configured profile with the config's own settings on top."""
    settings = {**_COMMON, **_PROFILES[cfg.spark.profile]}
    if cfg.spark.master:
        settings["spark.master"] = cfg.spark.master
    if cfg.spark.driver_memory:
        settings["spark.driver.memory"] = cfg.spark.driver_memory
    if cfg.spark.shuffle_partitions:
        settings["spark.sql.shuffle.partitions"] = str(cfg.spark.shuffle_partitions)
    if cfg.tables.engine == "delta-spark":
        settings["spark.sql.extensions"] = DELTA_EXTENSION
        settings["spark.sql.catalog.spark_catalog"] = DELTA_CATALOG
    jars = [j for j in (settings.get("spark.jars", ""), _splink_jar()) if j]
    if jars:
        settings["spark.jars"] = ",".join(jars)
    from cardlake.console import jvm_log_settings  # the driver JVM logs into the run's log file

    settings.update(jvm_log_settings())
    settings.update({k: str(v) for k, v in cfg.spark.conf.items()})
    return settings


def _splink_jar() -> str:
    # Splink's Jaro-Winkler and Damerau-Levenshtein UDFs ship as a jar inside the package;
    # Spark loads jars only at start-up, so every profile carries it.
    try:
        from splink.backends.spark import similarity_jar_location
    except ImportError:
        return ""
    return str(similarity_jar_location())


def build_session(cfg: Config) -> SparkSession:
    """Builds (or returns the running) SparkSession for ``cfg``'s profile.

    The Python workers use this interpreter, so they see the same packages as the driver.
    """
    find_java()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(cfg.spark.app_name)
    for key, value in profile_settings(cfg).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(cfg.spark.log_level)
    return spark


def delta_spark_loaded(spark: SparkSession) -> bool:
    """Whether the Delta JVM connector's classes are on this session's classpath."""
    jvm = spark.sparkContext._jvm
    if jvm is None:
        return False
    try:
        loader = jvm.Thread.currentThread().getContextClassLoader()
        jvm.java.lang.Class.forName(DELTA_TABLE_CLASS, False, loader)
    except Exception:
        return False
    return True


def main() -> int:
    """``python -m cardlake.spark``: report the JVM Spark will use, or say what to install."""
    try:
        java = find_java()
    except JavaError as exc:
        print(f"cardlake: {exc}", file=sys.stderr)
        return 3
    print(f"java: {java.version} ({java.executable})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
