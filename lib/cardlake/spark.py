"""SparkSession profiles: ``local`` (small data, a small machine), ``large`` (millions of rows on
one machine), ``test`` (fast start) and ``cluster``.

Nothing here runs at import time. :func:`build_session` checks the JVM first, so a missing or
too-old Java is one sentence, not a Py4J stack trace.

The Delta connector comes from Maven through Spark's own resolver (``spark.jars.packages``)
whenever ``tables.engine`` is ``auto`` or ``delta-spark``; its Ivy cache lives in
``~/.cache/cardlake/ivy`` (``$CARDLAKE_IVY_DIR`` or ``spark.jars.ivy`` in ``spark.conf``
override it). Where the jars cannot be resolved (no network and nothing cached), ``auto``
starts the session without them and says so in one line; ``delta-spark`` is an error.
"""

from __future__ import annotations

import logging
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

# The Delta connector, pinned. Delta 4.2+ publishes one artifact per Spark minor version
# (delta-spark_<spark>_<scala>); the unsuffixed delta-spark_2.13 is built for the newest Spark
# and does not load on another. 4.4.0 is the newest release published for Spark 4.1 (4.4.1
# exists on PyPI but not as delta-spark_4.1_2.13 on Maven Central), so pyproject.toml pins the
# Python package to the same 4.4.0. tests/test_spark.py and tests/tables prove they load.
DELTA_VERSION = "4.4.0"
SCALA_BINARY = "2.13"
# Transitive dependencies of the connector that Spark 4.1 already ships (newer versions):
# excluded so Spark's resolver downloads ~80 MB less and no second copy lands on the classpath.
DELTA_EXCLUDES = (
    "org.apache.hadoop:hadoop-client-api",
    "org.apache.hadoop:hadoop-client-runtime",
    "org.apache.parquet:parquet-hadoop",
    "org.apache.parquet:parquet-column",
    "org.apache.parquet:parquet-common",
    "org.apache.parquet:parquet-encoding",
    "org.apache.parquet:parquet-format-structures",
    "org.apache.parquet:parquet-jackson",
    "com.fasterxml.jackson.core:jackson-databind",
    "com.fasterxml.jackson.core:jackson-core",
    "com.fasterxml.jackson.core:jackson-annotations",
    "org.apache.logging.log4j:log4j-api",
    "org.apache.logging.log4j:log4j-core",
    "org.apache.logging.log4j:log4j-slf4j2-impl",
    "org.slf4j:slf4j-api",
    "org.xerial.snappy:snappy-java",
    "com.github.luben:zstd-jni",
    "io.airlift:aircompressor",
    "commons-logging:commons-logging",
    "com.google.code.findbugs:jsr305",
    "org.locationtech.jts:jts-core",
)
PACKAGES_KEY = "spark.jars.packages"
IVY_KEY = "spark.jars.ivy"

log = logging.getLogger(__name__)

# Delta's VACUUM lists a table's folders in a Spark job of this many tasks (Spark's default
# 10,000, for clusters listing object stores): on two local cores a table of two files took 28-40 s
# to vacuum, 2.7-5 s with 1, 8 or 64 tasks (2026-12-07, /tmp script: a 2-partition table, one
# overwrite, vacuum(0) twice). Also caps Spark's own listing jobs (over the threshold below).
_FEW_LISTING_TASKS = {"spark.sql.sources.parallelPartitionDiscovery.parallelism": "8"}
# Small data on a small machine: the embedded default (2,000 customers, 18 months) and the
# tests. A run there is hundreds of small queries and Delta commits, so fixed costs per query
# dominate: few shuffle partitions, no adaptive re-planning, no whole-stage code generation
# (compiling it costs more than it saves on thousands of rows), Delta's log replayed in one task.
# Bronze of the embedded default (1,286 files, 280k records), 2026-12-02, idle machine: 426 s in
# `make run` with the former local settings (now `large`); 280 s for the same stage run alone
# with these (the script that became bench/bench_bronze_stage.py, `--profile test`).
_SMALL_DATA = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.databricks.delta.snapshotPartitions": "1",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.rdd.compress": "false",
    "spark.shuffle.compress": "false",
    # Listing a month of daily landing files (a thousand paths) is quicker in the driver than
    # as a Spark job, which Spark starts from 32 paths on.
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "4096",
    **_FEW_LISTING_TASKS,
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}
# Large data on one machine (bench/ at millions of rows): measured with
# bench/bench_session_profile.py (3M rows, gold-like aggregates, 2 cores, median of 3): Spark's
# default 200 shuffle partitions 6.13 s; 32 partitions 2.97 s; 8 partitions with adaptive
# execution 2.00 s; 8 without 1.68 s; 2 without 1.54 s. 8 with adaptive execution is within 20%
# of the fastest and coalesces or splits partitions where 2 fixed partitions would spill.
_PROFILES: dict[str, dict[str, str]] = {
    "local": {"spark.master": "local[*]", "spark.driver.memory": "4g", **_SMALL_DATA},
    "large": {
        "spark.master": "local[*]",
        "spark.driver.memory": "4g",
        "spark.sql.shuffle.partitions": "8",
        # Delta replays its log into this many partitions (default 50: 50 tasks per snapshot).
        "spark.databricks.delta.snapshotPartitions": "8",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        **_FEW_LISTING_TASKS,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    },
    # 3g: one test session runs a whole pipeline and hundreds of small lakes. At 2g, with the
    # caches bronze used to leave behind, a full GC left 1.6 GB live and a late test ran out.
    "test": {"spark.master": "local[2]", "spark.driver.memory": "3g", **_SMALL_DATA},
    "cluster": {},  # master, executors and memory come from spark-submit
}

# The driver JVM's code cache, where the JIT keeps compiled code, for a driver started on this
# machine. A `make run` compiles ~100,000 methods (Spark's planner, Delta, MLlib and the
# classes Spark generates per query), and the JVM's default 240 MB (half of it for code still
# being profiled) had that half full 90 s into the run and near full to its end (JFR's
# jdk.CodeCacheStatistics, 2026-12-07: 3.3 MB of 117 MB free). At 512 MB it keeps 170 MB free
# and the JIT's compile time was 438 -> 410 s; `make run`'s wall time moved inside this
# two-core machine's noise (pipeline 451.5 and 457.1 s without, 420.1 and 477.1 s with). Kept
# because a full segment makes the JVM flush and compile again, worst in the longest JVMs (a
# test session lives 40 minutes). Reserved address space, filled only as code is compiled.
_LOCAL_DRIVER_JAVA_OPTIONS = "-XX:ReservedCodeCacheSize=512m"
_LOCAL_DRIVER_PROFILES = ("local", "large", "test")
DRIVER_OPTIONS = "spark.driver.extraJavaOptions"  # one setting holds all the driver's options

# Every profile: the same instants everywhere, Parquet that any Delta reader understands.
_COMMON = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.sources.partitionOverwriteMode": "static",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Lets the delta-rs engine's SQL tables (a Python data source) prune files by partition.
    "spark.sql.python.filterPushdown.enabled": "true",
}


class JavaError(RuntimeError):
    """No usable JVM for Spark."""


class DeltaConnectorError(JavaError):
    """``tables.engine: delta-spark`` was asked for, but the connector's jars did not load."""


@dataclass(frozen=True)
class ConnectorStatus:
    """What :func:`build_session` did about the Delta connector, and why.

    Attributes:
        requested: whether the session asked Spark for the connector's jars.
        loaded: whether the connector's classes are on the session's classpath.
        coordinates: the Maven coordinates asked for ("" when none were).
        reason: one sentence saying what happened.
    """

    requested: bool
    loaded: bool
    coordinates: str
    reason: str


_status: ConnectorStatus | None = None


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
    if cfg.tables.engine in ("auto", "delta-spark"):
        settings.update(delta_settings())
    jars = [j for j in (settings.get("spark.jars", ""), _splink_jar()) if j]
    if jars:
        settings["spark.jars"] = ",".join(jars)
    from cardlake.console import jvm_log_settings  # the driver JVM logs into the run's log file

    extra = {k: str(v) for k, v in cfg.spark.conf.items()}
    # The driver's JVM options add up, the config's last (a later option wins in the JVM).
    driver_options = [
        _LOCAL_DRIVER_JAVA_OPTIONS if cfg.spark.profile in _LOCAL_DRIVER_PROFILES else "",
        jvm_log_settings().get(DRIVER_OPTIONS, ""),
        extra.pop(DRIVER_OPTIONS, ""),
    ]
    if joined := " ".join(o for o in driver_options if o):
        settings[DRIVER_OPTIONS] = joined
    # Packages asked for in spark.conf (a Kafka source, say) come beside the connector's, and a
    # lake or landing zone on S3 brings Hadoop's S3A connector (its endpoint and credentials are
    # the user's: spark.conf's spark.hadoop.fs.s3a.* and the AWS environment).
    wanted = [settings.get(PACKAGES_KEY, ""), *extra.pop(PACKAGES_KEY, "").split(",")]
    if any(root.startswith("s3a://") for root in (cfg.paths.lake_root, cfg.paths.landing_root)):
        wanted.append(s3a_coordinates())
        settings.setdefault(IVY_KEY, ivy_dir())
    packages = ",".join(dict.fromkeys(p.strip() for p in wanted if p.strip()))
    if packages:
        settings[PACKAGES_KEY] = packages
    settings.update(extra)
    from cardlake.class_archive import with_archive  # a local driver maps the built archive

    return with_archive(settings)


def delta_coordinates(spark_version: str | None = None) -> str:
    """The connector's Maven coordinates for a Spark version (default: the installed pyspark)."""
    if spark_version is None:
        import pyspark

        spark_version = pyspark.__version__
    spark_minor = ".".join(spark_version.split(".")[:2])
    return f"io.delta:delta-spark_{spark_minor}_{SCALA_BINARY}:{DELTA_VERSION}"


def hadoop_version() -> str:
    """The Hadoop version of the jars inside the installed pyspark (hadoop-client-api-X.jar)."""
    import pyspark

    jars = os.path.join(os.path.dirname(pyspark.__file__), "jars")
    found = sorted(n for n in os.listdir(jars) if n.startswith("hadoop-client-api-"))
    if not found:
        raise JavaError(f"no hadoop-client-api jar in {jars}")
    return found[0].removeprefix("hadoop-client-api-").removesuffix(".jar")


def s3a_coordinates() -> str:
    """Maven coordinates of Hadoop's S3A connector at the Hadoop version inside pyspark."""
    return f"org.apache.hadoop:hadoop-aws:{hadoop_version()}"


def ivy_dir() -> str:
    """Spark's Ivy home for resolved packages: ``$CARDLAKE_IVY_DIR``, else the user cache."""
    explicit = os.environ.get("CARDLAKE_IVY_DIR")
    if explicit:
        return explicit
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "cardlake", "ivy")


def delta_settings() -> dict[str, str]:
    """Session settings that load the Delta connector: its package, extension and catalog."""
    return {
        PACKAGES_KEY: delta_coordinates(),
        "spark.jars.excludes": ",".join(DELTA_EXCLUDES),
        IVY_KEY: ivy_dir(),
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
    }


def _without_delta(settings: dict[str, str], coordinates: str) -> dict[str, str]:
    # The same session minus the connector (other packages asked for in spark.conf stay).
    out = {
        k: v
        for k, v in settings.items()
        if k not in ("spark.sql.extensions", "spark.sql.catalog.spark_catalog")
        and k not in ("spark.jars.excludes", PACKAGES_KEY)
    }
    others = [p for p in settings.get(PACKAGES_KEY, "").split(",") if p and p != coordinates]
    if others:
        out[PACKAGES_KEY] = ",".join(others)
    return out


def _cached_jar(settings: dict[str, str], coordinates: str) -> str:
    group, artifact, version = coordinates.split(":")
    return os.path.join(
        settings.get(IVY_KEY, ivy_dir()),
        "cache",
        group,
        artifact,
        "jars",
        f"{artifact}-{version}.jar",
    )


def connector_status() -> ConnectorStatus | None:
    """What the last :func:`build_session` of this process did about the Delta connector."""
    return _status


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
    global _status
    find_java()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    settings = profile_settings(cfg)
    coordinates = delta_coordinates() if cfg.tables.engine != "delta-rs" else ""
    requested = bool(coordinates) and coordinates in settings.get(PACKAGES_KEY, "")
    try:
        spark = _start(cfg, settings)
    except Exception as exc:
        if not requested or not _gateway_exited(exc):
            raise
        where = _cached_jar(settings, coordinates)
        why = (
            f"Spark could not resolve {coordinates} (not in the Ivy cache "
            f"{settings.get(IVY_KEY, ivy_dir())} and not downloadable from Maven Central here; "
            "Spark's resolver printed its report above)"
            if not os.path.exists(where)
            else f"the JVM did not start with {coordinates} (Spark's report is above)"
        )
        if cfg.tables.engine == "delta-spark":
            raise DeltaConnectorError(
                f"tables.engine is delta-spark, but {why}. Give the machine Maven access, or "
                "set tables.engine: auto to run on the embedded delta-rs engine"
            ) from exc
        _status = ConnectorStatus(True, False, coordinates, why)
        log.warning("%s; running on the embedded delta-rs engine instead", why)
        return _start(cfg, _without_delta(settings, coordinates))
    loaded = delta_spark_loaded(spark)
    if not requested:
        reason = (
            "tables.engine is delta-rs, so the session did not ask for the Delta connector"
            if cfg.tables.engine == "delta-rs"
            else f"spark.conf removed {coordinates} from {PACKAGES_KEY}"
        )
    elif loaded:
        reason = f"loaded {coordinates}"
    else:
        reason = (
            f"asked for {coordinates}, but its classes are not on the classpath (the session "
            "was already running without them)"
        )
    _status = ConnectorStatus(requested, loaded, coordinates, reason)
    return spark


def build_logged_session(
    cfg: Config, *, command: str, console_level: int = logging.WARNING
) -> SparkSession:
    """:func:`build_session` for a command-line script (``bench/``) whose console is for its own
    lines: Python's logging and the JVM's output (Ivy's resolution report, log4j) go to a log
    file under ``$TMPDIR/cardlake-logs`` (named once on stdout), as a ``cardlake`` run's go to
    its lake's log (:mod:`cardlake.console`)."""
    import tempfile

    from cardlake.console import jvm_output_to_log, log_file_for, say, setup_logging

    log_file = log_file_for(Path(tempfile.gettempdir()) / "cardlake-logs", command)
    setup_logging(log_file, console_level=console_level)
    say(f"{command}: Spark's and the libraries' logs go to {log_file}")
    with jvm_output_to_log():
        return build_session(cfg)


def _start(cfg: Config, settings: dict[str, str]) -> SparkSession:
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(cfg.spark.app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(cfg.spark.log_level)
    return spark


def _gateway_exited(exc: BaseException) -> bool:
    # The JVM exits before handing Py4J its port when Spark's resolver cannot fetch a package.
    return "JAVA_GATEWAY_EXITED" in str(getattr(exc, "_errorClass", "")) or (
        "Java gateway process exited" in str(exc)
    )


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


def submit_args() -> list[str]:
    """``spark-submit`` arguments that load the pinned Delta connector on a cluster.

    Under ``spark-submit`` the JVM resolves packages before Python runs, so a cluster job must
    be submitted with these (``python -m cardlake.spark --submit-args`` prints them).
    """
    settings = delta_settings()
    return [
        "--packages",
        settings[PACKAGES_KEY],
        "--exclude-packages",
        settings["spark.jars.excludes"],
        "--conf",
        f"spark.sql.extensions={DELTA_EXTENSION}",
        "--conf",
        f"spark.sql.catalog.spark_catalog={DELTA_CATALOG}",
    ]


def main() -> int:
    """``python -m cardlake.spark``: report the JVM Spark will use, or say what to install.

    ``--submit-args`` prints the spark-submit arguments that load the Delta connector instead.
    """
    if "--submit-args" in sys.argv[1:]:
        print(" ".join(submit_args()))
        return 0
    try:
        java = find_java()
    except JavaError as exc:
        print(f"cardlake: {exc}", file=sys.stderr)
        return 3
    print(f"java: {java.version} ({java.executable})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
