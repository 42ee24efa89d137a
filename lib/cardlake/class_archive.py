"""A class-data-sharing archive for the driver JVM: Spark's classes loaded once per machine.

Every fresh driver JVM (a ``cardlake`` command, a crash test's run, a notebook's kernel) loads
and verifies some tens of thousands of Spark, Scala, Hadoop and Delta classes before its first
query. The JDK can dump the classes one run loaded into an archive
(``-XX:ArchiveClassesAtExit``) and map it into later JVMs (``-XX:SharedArchiveFile``), which
then skip parsing and verifying them. ``python bench/bench_jvm_start.py`` measures the gain.

The archive belongs to one JDK and one pyspark install (its folder, version and jars): its name
carries a digest of both, so another JDK or another install looks for (and builds) its own.
``make setup`` builds it once (``python -m cardlake.class_archive``, about a minute); sessions
started without one run as before. The JVM checks the archive itself and ignores one that does
not match its class path (``-Xshare:auto``, the default); its notes on that are silenced.

``CARDLAKE_CLASS_ARCHIVE=off`` turns it off; ``CARDLAKE_CLASS_ARCHIVE_DIR`` moves the cache.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from cardlake.spark import DRIVER_OPTIONS, find_java

if TYPE_CHECKING:
    import pandas as pd

    from cardlake.config import Config

log = logging.getLogger(__name__)

SWITCH_VAR = "CARDLAKE_CLASS_ARCHIVE"
DIR_VAR = "CARDLAKE_CLASS_ARCHIVE_DIR"
_QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"
BUILD_TIMEOUT_S = 900


def enabled() -> bool:
    return os.environ.get(SWITCH_VAR, "on").lower() not in ("off", "0", "false", "no")


def archive_path() -> Path:
    """Where this JDK's and this pyspark's archive is (or would be)."""
    root = os.environ.get(DIR_VAR) or str(Path.home() / ".cache" / "cardlake" / "class-archive")
    # Every session's settings ask for it: worked out once per JDK a process may be pointed at.
    return Path(root) / _archive_name(os.environ.get("JAVA_HOME"), shutil.which("java"))


@functools.cache
def _archive_name(java_home: str | None, java_on_path: str | None) -> str:
    """The archive's file name; the arguments are what :func:`find_java` looks at."""
    import pyspark

    java = find_java()
    jars = _jars_folder()
    digest = hashlib.sha256()
    # The JVM checks an archive against the class path it was dumped with: another install
    # of pyspark (another clone's .venv) needs its own.
    for part in (os.path.realpath(java.executable), java.version, str(jars.resolve())):
        digest.update(part.encode() + b"\0")
    # It also checks each jar's size and modification time: a .venv made again at the same
    # path (`make clean`, `make setup`) holds the same jars with new times, and its JVM would
    # refuse the old archive ("A jar file is not the one used while building").
    for jar in sorted(jars.glob("*.jar")):
        stat = jar.stat()
        digest.update(f"{jar.name}:{stat.st_size}:{stat.st_mtime_ns}".encode() + b"\0")
    return f"spark-{pyspark.__version__}-{digest.hexdigest()[:16]}.jsa"


def _jars_folder() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def _install_file(archive: Path) -> Path:
    """The file beside ``archive`` naming the pyspark jars folder it was dumped from."""
    return archive.with_suffix(".for")


def _name_install(archive: Path) -> None:
    _install_file(archive).write_text(f"{_jars_folder().resolve()}\n")


def remove_orphans(ours: Path) -> list[Path]:
    """Deletes the archives beside ``ours`` whose pyspark install is gone (a deleted clone's
    ``.venv``; 236 MB each) or is ours, installed again since: each archive's ``.for`` file
    names the jars folder it was dumped from. Returns what it deleted. One without that file
    predates it and goes too (its install's ``make setup`` builds it again in about a minute);
    ``ours`` always stays."""
    if ours.is_file() and not _install_file(ours).is_file():
        _name_install(ours)
    ours_from = str(_jars_folder().resolve())
    gone = []
    for archive in ours.parent.glob("spark-*.jsa"):
        source = _install_file(archive)
        dumped_from = source.read_text().strip() if source.is_file() else ""
        if archive == ours or (dumped_from not in ("", ours_from) and Path(dumped_from).is_dir()):
            continue
        archive.unlink(missing_ok=True)
        source.unlink(missing_ok=True)
        gone.append(archive)
    return gone


def with_archive(settings: dict[str, str]) -> dict[str, str]:
    """``settings`` with the archive among the driver's JVM options, when one is built.

    Only a driver started on this machine (a ``local`` master) can map a file from this
    machine's cache; a cluster's driver and executors start elsewhere.
    """
    if not settings.get("spark.master", "").startswith("local"):
        return settings
    options = java_options()
    if not options:
        return settings
    current = settings.get(DRIVER_OPTIONS, "")
    return {**settings, DRIVER_OPTIONS: f"{options} {current}".strip()}


def java_options() -> str:
    """The JVM options that map this machine's archive; "" when it is off or not built.

    For JVMs started from the installed pyspark's class path on this machine: a local driver,
    the standalone cluster's daemons (``infra/standalone/cluster.py``).
    """
    if not enabled():
        return ""
    try:
        path = archive_path()
    except Exception:  # no JVM found: build_session says so with its own message
        return ""
    # Checked here: a JVM given a missing archive also drops the JDK's own default one.
    return f"-XX:SharedArchiveFile={path} {_QUIET}" if path.is_file() else ""


def build(*, force: bool = False) -> Path | None:
    """Builds the archive (unless one exists) by running :func:`_workload` in a child JVM.

    Returns the archive's path, or None when the JVM did not write one (the reason is logged;
    sessions then start without it).
    """
    path = archive_path()
    if path.is_file() and not force:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    env = {**os.environ, SWITCH_VAR: "off", "_CARDLAKE_ARCHIVE_TO": str(partial)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cardlake.class_archive", "--workload"],
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    finally:
        shutil.rmtree(partial.with_suffix(".work"), ignore_errors=True)
    if done.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
        partial.unlink(missing_ok=True)
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        log.warning("no class archive built (exit %d): %s", done.returncode, " | ".join(tail))
        return None
    _name_install(path)
    os.replace(partial, path)  # readers never map a half-written archive
    _remove_orphans_noting(path)
    return path


def remove() -> None:
    """Deletes this install's archive (``make clean``)."""
    path = archive_path()
    for file in (path, _install_file(path)):
        file.unlink(missing_ok=True)


def _remove_orphans_noting(ours: Path) -> None:
    for orphan in remove_orphans(ours):
        log.warning("class archive: removed %s (its pyspark install is gone or new)", orphan.name)


def _workload(out: str) -> None:
    """What a typical run's driver loads: Delta writes, merges and reads, the file readers,
    an Arrow-backed pandas function and an MLlib fit. Runs in the JVM that dumps the archive."""
    import pandas as pd
    from pyspark import SparkContext
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import functions as F

    from cardlake.config import load_config
    from cardlake.spark import build_session

    cfg = load_config("local")
    options = f"-XX:ArchiveClassesAtExit={out} {_QUIET}"
    cfg = _with_driver_options(cfg, options)
    spark = build_session(cfg)
    work = Path(out).with_suffix(".work")  # beside the archive; build() removes it
    rows = spark.range(2000).select(
        F.col("id"),
        (F.col("id") % 7).cast("string").alias("k"),
        (F.col("id") % 2).cast("double").alias("label"),
        F.lit("2024-01").alias("month"),
    )
    for kind in ("csv", "json", "parquet"):
        rows.write.mode("overwrite").option("header", "true").format(kind).save(f"{work}/{kind}")
        spark.read.schema(rows.schema).option("header", "true").format(kind).load(
            f"{work}/{kind}"
        ).count()
    table = f"{work}/delta"
    try:
        rows.write.format("delta").partitionBy("month").mode("overwrite").save(table)
        rows.limit(10).write.format("delta").mode("append").save(table)
        from delta.tables import DeltaTable

        target = DeltaTable.forPath(spark, table)
        target.alias("t").merge(rows.limit(50).alias("s"), "t.id = s.id").whenMatchedUpdateAll()
        target.delete("id < 5")
        spark.read.format("delta").load(table).groupBy("k").count().collect()
    except Exception as exc:  # delta-rs sessions (no connector): the rest still counts
        log.info("class archive workload without Delta: %s", exc)

    def double(frames: Iterable[pd.DataFrame]) -> Iterable[pd.DataFrame]:
        for frame in frames:
            yield frame.assign(id=frame["id"] * 2)

    rows.mapInPandas(double, rows.schema).count()
    spark.createDataFrame(pd.DataFrame({"a": [1, 2]})).toPandas()
    features = VectorAssembler(inputCols=["id"], outputCol="features").transform(rows)
    LogisticRegression(maxIter=2).fit(features)
    gateway = SparkContext._gateway
    spark.stop()
    proc = getattr(gateway, "proc", None)
    if proc is not None and proc.stdin is not None:
        proc.stdin.close()  # the gateway exits when its stdin closes; the JVM dumps on exit
        proc.wait(timeout=BUILD_TIMEOUT_S)


def _with_driver_options(cfg: Config, options: str) -> Config:
    import dataclasses

    conf = {**cfg.spark.conf, DRIVER_OPTIONS: options}
    return dataclasses.replace(cfg, spark=dataclasses.replace(cfg.spark, conf=conf))


def main(argv: list[str] | None = None) -> int:
    """``python -m cardlake.class_archive``: build this machine's archive unless it exists."""
    args = sys.argv[1:] if argv is None else argv
    if "--workload" in args:
        _workload(os.environ["_CARDLAKE_ARCHIVE_TO"])
        return 0
    if not enabled():
        print(f"class archive: off ({SWITCH_VAR})")
        return 0
    started = time.perf_counter()
    existed = archive_path().is_file() and "--force" not in args
    if not existed:
        print("class archive: building Spark's once for this machine (about a minute)", flush=True)
    path = build(force="--force" in args)
    if path is None:
        print("class archive: not built; Spark starts without it (see the warning above)")
    elif existed:
        _remove_orphans_noting(path)
        print(f"class archive: {path}")
    else:
        took = time.perf_counter() - started
        print(f"class archive: built in {took:.0f}s ({path})")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    sys.exit(main())
