"""What JDBC users of the SQL server may see: masked views by role, and the guard that holds it.

The server registers each lake table once, in a schema no JDBC user may read
(``_lake_<layer>``), and publishes views over it:

- ``silver.*`` and ``gold.*``: every column through its mask (:mod:`cardlake.governance.masking`);
- ``bronze_clear.*``, ``silver_clear.*``, ``gold_clear.*``: the same tables in clear.

``conf/governance.yaml`` says which schemas each role reads (by default analysts the masked
ones, privileged users all). Users authenticate by LDAP (HiveServer2's own provider) and take
the role of their directory group. The guard, a Spark session extension compiled from
``jvm/CardlakeSqlGuard.java``, checks every plan run for a JDBC user: views of the role's
schemas only (nothing below them, no table and no file path directly), no command but catalog
browsing (no SET, ADD JAR, CREATE FUNCTION, writes), no reflection (``reflect``,
``java_method``) and no user-defined or Hive functions.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from cardlake.errors import ConnectorMissing
from cardlake.governance.masking import mask_sql, quote
from cardlake.governance.settings import GovernanceSettings, SqlAccessSettings
from cardlake.tables.catalog import SQL_LAYERS, committed_tables, mirror_latest, source_for

if TYPE_CHECKING:
    from deltalake import DeltaTable
    from pyspark.sql import SparkSession
    from pyspark.sql.types import StructField

GUARD_SOURCE = Path(__file__).with_name("jvm") / "CardlakeSqlGuard.java"
GUARD_CLASS = "cardlake.sqlguard.CardlakeSqlGuard"
MASKED_LAYERS = ("silver", "gold", "ops")
# Operational tables worth a query (as ops.* masked, ops_clear.* in clear); the rest of _ops
# (manifests, logs, the suppression list) stays out of SQL.
OPS_TABLES = ("data_dictionary", "dq_results", "erasure_audit", "lineage")
CLEAR_SUFFIX = "_clear"
RAW_PREFIX = "_lake_"
LDAP_PORTS = {"ldap": 389, "ldaps": 636}
DIRECTORY_TIMEOUT_S = 5.0
# A query planned on a snapshot that has since been replaced still reads its links: they are
# removed this long after the replacement (longer than any BI query, shorter than a workday).
MIRROR_GRACE_S = 600.0

log = logging.getLogger(__name__)


class SqlAccessError(ConnectorMissing):
    """The guard cannot be built or the directory is unreachable; the message says why.

    A missing piece of the environment (JDK, directory server), so it exits as one (code 3).
    """


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cardlake"


def guard_jar(cache_dir: Path | None = None) -> Path:
    """The guard's jar, compiled with ``javac`` against this pyspark's jars (cached by content)."""
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    digest = hashlib.sha256(GUARD_SOURCE.read_bytes() + pyspark.__version__.encode()).hexdigest()
    target = (cache_dir or _cache_dir()) / f"cardlake-sqlguard-{digest[:16]}.jar"
    if target.is_file():
        return target
    javac = shutil.which("javac")
    if javac is None:
        raise SqlAccessError(
            "the SQL guard is compiled with javac: install a JDK "
            "(apt-get install openjdk-17-jdk-headless)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        result = subprocess.run(
            [javac, "-nowarn", "-d", work, "-cp", f"{jars}/*", str(GUARD_SOURCE)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise SqlAccessError(f"javac failed on {GUARD_SOURCE}: {result.stderr[-2000:]}")
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        with zipfile.ZipFile(partial, "w") as jar:
            for path in sorted(Path(work).rglob("*.class")):
                jar.write(path, path.relative_to(work).as_posix())
        partial.replace(target)
    return target


def check_directory(url: str, *, timeout_s: float = DIRECTORY_TIMEOUT_S) -> None:
    """Raises :class:`SqlAccessError` naming ``url`` unless its host accepts a connection."""
    parts = urlsplit(url)
    if parts.scheme not in LDAP_PORTS or not parts.hostname:
        raise SqlAccessError(f"sql_server.ldap.url {url!r} is not an ldap:// or ldaps:// URL")
    port = parts.port or LDAP_PORTS[parts.scheme]
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise SqlAccessError(
            f"the directory {url} is unreachable ({exc.strerror or exc}): SQL users log in "
            "against it; start it, or point --ldap-url (conf/governance.yaml "
            "sql_server.ldap.url) at one"
        ) from None


def server_settings(access: SqlAccessSettings, *, host: str, port: int) -> dict[str, str]:
    """HiveServer2 settings (as ``spark.hadoop.*``) and the guard's settings for the session."""
    ldap = access.ldap
    hive = {
        "hive.server2.thrift.bind.host": host,
        "hive.server2.thrift.port": str(port),
        "hive.server2.transport.mode": "binary",
        "hive.server2.authentication": "LDAP",
        "hive.server2.authentication.ldap.url": ldap.url,
        "hive.server2.authentication.ldap.baseDN": ldap.people_base,
        "hive.server2.enable.doAs": "false",
    }
    return {
        **{f"spark.hadoop.{k}": v for k, v in hive.items()},
        # No SQL over raw files, no ${env:...} substitution; the guard refuses SET, so users
        # cannot turn these back on.
        "spark.sql.runSQLOnFiles": "false",
        "spark.sql.variable.substitute": "false",
        "spark.cardlake.sqlguard.ldap.url": ldap.url,
        "spark.cardlake.sqlguard.ldap.userDnPattern": f"uid=%s,{ldap.people_base}",
        "spark.cardlake.sqlguard.ldap.groupBase": ldap.group_base,
        "spark.cardlake.sqlguard.roles": ",".join(f"{r}={g}" for r, g in access.roles.items()),
        "spark.cardlake.sqlguard.schemas": ";".join(
            f"{role}={'|'.join(schemas)}" for role, schemas in access.schemas.items()
        ),
    }


def ldap_system_properties(access: SqlAccessSettings) -> dict[str, str]:
    """JVM system properties the LDAP provider reads (it builds its own ``HiveConf``, which
    takes system properties, not the session's Hadoop settings)."""
    return {
        "hive.server2.authentication.ldap.url": access.ldap.url,
        "hive.server2.authentication.ldap.baseDN": access.ldap.people_base,
    }


def with_guard(settings: dict[str, str], jar: Path) -> dict[str, str]:
    """``settings`` with the guard's jar and extension added to any already there."""
    out = dict(settings)
    out["spark.jars"] = ",".join(j for j in (settings.get("spark.jars", ""), str(jar)) if j)
    out["spark.sql.extensions"] = ",".join(
        e for e in (settings.get("spark.sql.extensions", ""), GUARD_CLASS) if e
    )
    return out


def _lake_tables(lake_root: str) -> list[tuple[str, str, str]]:
    # (schema, table, path): the SQL layers, and the published _ops tables as schema "ops".
    return [
        ("ops" if layer == "_ops" else layer, name, path)
        for layer, name, path in committed_tables(lake_root, (*SQL_LAYERS, "_ops"))
        if layer != "_ops" or name in OPS_TABLES
    ]


def _location(path: str) -> str:
    return path.replace("\\", "\\\\").replace("'", "\\'")


def _register_raw(
    spark: SparkSession,
    *,
    layer: str,
    name: str,
    path: str,
    engine: str,
    mirrors: MirroredTables | None,
) -> str:
    raw = f"{quote(RAW_PREFIX + layer)}.{quote(name)}"
    if engine == "delta-spark":
        spark.sql(f"DROP TABLE IF EXISTS {raw}")
        spark.sql(f"CREATE TABLE {raw} USING delta LOCATION '{_location(path)}'")
    elif mirrors is None or not mirrors.register(layer=layer, name=name, path=path):
        spark.sql(f"DROP TABLE IF EXISTS {raw}")
        _register_source(spark, raw, layer=layer, name=name, path=path)
    return raw


def _register_source(spark: SparkSession, table: str, *, layer: str, name: str, path: str) -> None:
    source = source_for(layer, name, path)
    spark.dataSource.register(source)
    spark.sql(f"CREATE TABLE {table} USING {source.name()}")


class MirroredTables:
    """The delta-rs engine's tables for the SQL server, scanned by Spark's own Parquet reader.

    ``_lake_<layer>.<name>`` is a view over ``_lake_<layer>.<name>__v<version>``, an external
    Parquet table over the links :func:`~cardlake.tables.catalog.mirror_latest` makes to exactly
    that version's data files: column pruning and vectorised decoding, which the Python data
    source cannot give. :meth:`refresh` (every ``refresh_seconds`` in :meth:`watch`) links a
    table whose log has a new commit and points the view at it in one catalog update, so a
    query sees every commit made ``refresh_seconds`` (plus the linking) before it starts.
    A table a plain Parquet scan would misread stays on the Python data source.
    """

    def __init__(self, spark: SparkSession, *, folder: str, refresh_seconds: float) -> None:
        self.refresh_seconds = refresh_seconds
        self._spark = spark
        self._folder = folder
        self._tables: dict[str, tuple[DeltaTable, str, int]] = {}  # "gold.x": table, path, version
        self._retired: list[tuple[float, str, str]] = []  # (drop after, table, its links)

    def register(self, *, layer: str, name: str, path: str) -> bool:
        """Points ``_lake_<layer>.<name>`` at the latest snapshot; False if it cannot be."""
        from deltalake import DeltaTable

        table = DeltaTable(path)
        if not self._link(table, path, layer, name):
            return False
        self._tables[f"{layer}.{name}"] = (table, path, table.version())
        return True

    def _link(self, table: DeltaTable, path: str, layer: str, name: str) -> bool:
        mirror = mirror_latest(table, path, os.path.join(self._folder, f"{layer}.{name}"))
        if mirror is None:
            return False
        versioned = f"{quote(RAW_PREFIX + layer)}.{quote(f'{name}__v{mirror.version}')}"
        ddl = self._spark._jvm.org.apache.spark.sql.types.DataType.fromJson(  # type: ignore[union-attr]
            mirror.schema.json()
        ).toDDL()
        by = ", ".join(quote(c) for c in mirror.partition_columns)
        self._spark.sql(f"DROP TABLE IF EXISTS {versioned}")
        self._spark.sql(
            f"CREATE TABLE {versioned} ({ddl}) USING parquet "
            f"{f'PARTITIONED BY ({by}) ' if by else ''}"
            f"LOCATION '{_location(mirror.folder)}'"
        )
        if by:
            self._spark.sql(f"ALTER TABLE {versioned} RECOVER PARTITIONS")
        columns = ", ".join(quote(f.name) for f in mirror.schema.fields)  # the log's order
        _view(self._spark, f"{RAW_PREFIX}{layer}.{name}", f"SELECT {columns} FROM {versioned}")
        return True

    def refresh(self) -> list[str]:
        """Re-links every table whose log has moved on; returns their names (``gold.x``)."""
        moved = []
        for label, (table, path, version) in list(self._tables.items()):
            table.update_incremental()
            if table.version() == version:
                continue
            layer, _, name = label.partition(".")
            if self._link(table, path, layer, name):
                self._tables[label] = (table, path, table.version())
            else:  # deletion vectors or the like since: the Python source reads or refuses them
                fallback = f"{quote(RAW_PREFIX + layer)}.{quote(name + '__latest')}"
                self._spark.sql(f"DROP TABLE IF EXISTS {fallback}")
                _register_source(self._spark, fallback, layer=layer, name=name, path=path)
                _view(self._spark, f"{RAW_PREFIX}{label}", f"SELECT * FROM {fallback}")
                del self._tables[label]
            replaced = f"{quote(RAW_PREFIX + layer)}.{quote(f'{name}__v{version}')}"
            links = os.path.join(self._folder, label, f"v{version}")
            self._retired.append((time.monotonic() + MIRROR_GRACE_S, replaced, links))
            moved.append(label)
        now = time.monotonic()
        for entry in [r for r in self._retired if r[0] <= now]:
            self._spark.sql(f"DROP TABLE IF EXISTS {entry[1]}")
            shutil.rmtree(entry[2], ignore_errors=True)  # links only: the data stays
            self._retired.remove(entry)
        return moved

    def watch(self, stop: threading.Event) -> None:
        """Refreshes every ``refresh_seconds`` until ``stop`` is set (run it in a thread)."""
        while not stop.wait(self.refresh_seconds):
            try:
                moved = self.refresh()
            except Exception:  # a table being rewritten or removed: the next round retries
                log.warning(
                    "refreshing the SQL tables failed; retrying in %s s",
                    self.refresh_seconds,
                    exc_info=True,
                )
                continue
            if moved:
                log.info("new commits linked: %s", ", ".join(moved))


def publish(
    spark: SparkSession,
    governance: GovernanceSettings,
    *,
    lake_root: str,
    engine: str,
    mirrors: MirroredTables | None = None,
) -> list[str]:
    """Registers the lake's tables out of users' reach and publishes the views over them.

    On the delta-rs engine, ``mirrors`` (when given) reads the tables with Spark's Parquet scan,
    refreshed by its own :meth:`MirroredTables.watch`; without it, through the Python source.

    Returns:
        The views published, e.g. ``["gold.kpi_monthly", "gold_clear.kpi_monthly", ...]``.
    """
    published: list[str] = []
    for layer in (*SQL_LAYERS, "ops"):
        for schema in (RAW_PREFIX + layer, layer + CLEAR_SUFFIX, layer):
            spark.sql(f"CREATE DATABASE IF NOT EXISTS {quote(schema)}")
    for layer, name, path in _lake_tables(lake_root):
        raw = _register_raw(
            spark, layer=layer, name=name, path=path, engine=engine, mirrors=mirrors
        )
        clear = f"{layer}{CLEAR_SUFFIX}.{name}"
        _view(spark, clear, f"SELECT * FROM {raw}")
        published.append(clear)
        # The plain layer name is the masked view (or nothing for bronze): a client that does
        # not know about roles never meets a clear value by default.
        spark.sql(f"DROP TABLE IF EXISTS {quote(layer)}.{quote(name)}")
        spark.sql(f"DROP VIEW IF EXISTS {quote(layer)}.{quote(name)}")
        if layer in MASKED_LAYERS:
            fields = spark.table(raw).schema.fields
            table = f"_ops.{name}" if layer == "ops" else f"{layer}.{name}"
            columns = _masked_columns(governance, table, fields)
            _view(spark, f"{layer}.{name}", f"SELECT {columns} FROM {raw}")
            published.append(f"{layer}.{name}")
    return published


def publish_parquet(
    spark: SparkSession, governance: GovernanceSettings, *, name: str, path: str
) -> list[str]:
    """Publishes a plain Parquet folder as ``name`` (``"gold.x"``) and its clear twin, the way
    :func:`publish` does a lake table: the baseline ``bench/bench_sql.py`` compares against.

    Returns:
        The views published, e.g. ``["gold_clear.x", "gold.x"]``.
    """
    layer, _, table = name.partition(".")
    if layer not in MASKED_LAYERS or not table:
        raise SqlAccessError(
            f"a Parquet view is named <layer>.<table>, layer in {MASKED_LAYERS}: {name!r}"
        )
    raw = f"{quote(RAW_PREFIX + layer)}.{quote(table)}"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {quote(RAW_PREFIX + layer)}")
    spark.sql(f"DROP TABLE IF EXISTS {raw}")
    spark.sql(f"CREATE TABLE {raw} USING parquet LOCATION '{_location(path)}'")
    # A partitioned table's partitions live in the catalog: found on disk once, here.
    if (
        spark.sql(f"DESCRIBE TABLE EXTENDED {raw}")
        .filter("col_name = '# Partition Information'")
        .count()
    ):
        spark.sql(f"ALTER TABLE {raw} RECOVER PARTITIONS")
    clear = f"{layer}{CLEAR_SUFFIX}.{table}"
    _view(spark, clear, f"SELECT * FROM {raw}")
    columns = _masked_columns(governance, name, spark.table(raw).schema.fields)
    _view(spark, name, f"SELECT {columns} FROM {raw}")
    return [clear, name]


def _masked_columns(
    governance: GovernanceSettings, table: str, fields: Sequence[StructField]
) -> str:
    parts = []
    for field in fields:
        rule = governance.rule(table, field.name)
        parts.append(mask_sql(field.name, None if rule is None else rule.mask, field.dataType))
    return ", ".join(parts)


def _view(spark: SparkSession, name: str, select: str) -> None:
    # An existing view is re-pointed by ALTER VIEW ... AS, one catalog update. Spark's CREATE OR
    # REPLACE VIEW drops the view and creates it again, and a query analysed between the two
    # (a SQL client while refresh re-links a table) failed with TABLE_OR_VIEW_NOT_FOUND.
    schema, _, table = name.partition(".")
    view = f"{quote(schema)}.{quote(table)}"
    spark.sql(f"{'ALTER' if spark.catalog.tableExists(view) else 'CREATE'} VIEW {view} AS {select}")
