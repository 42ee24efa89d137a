"""Spark Thrift (HiveServer2) JDBC/ODBC server over the lake, for authenticated SQL users.

    python jobs/sql_server.py --env local                 # jdbc:hive2://127.0.0.1:10000
    python jobs/sql_server.py --env local --port 10001 --ldap-url ldap://dir.example:389

Users log in with their directory account (LDAP, ``conf/governance.yaml`` sql_server.ldap)::

    beeline -u jdbc:hive2://127.0.0.1:10000 -n ana -p '<password>'

and take the role of their directory group (``sql_server.roles``): analysts read ``silver.*``,
``gold.*`` and ``ops.*`` through their column masks, privileged users also the ``*_clear``
schemas. The tables themselves (``_lake_*``), file paths, reflection, SET and ADD JAR are
refused by the guard (:mod:`cardlake.governance.sql_access`). There is no unauthenticated mode.

The server runs inside this PySpark session, which registers the lake's tables (one shared
session for every connection). With delta-spark, tables resolve their latest commit at every
query. With the embedded delta-rs engine, Spark scans the files of each table's latest snapshot
as plain Parquet, and a watcher thread links a table's new commit within
``sql_server.refresh_seconds`` (conf/gold.yaml). Ctrl-C or SIGTERM stops the server and the
session; exit 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import signal
import sys
import tempfile
import threading
from typing import Any

from cardlake.config import Config
from cardlake.jobs import run_job

log = logging.getLogger("cardlake.sql_server")
READY = "cardlake sql-server: listening on"

# Delta's state of a table in one partition: delta-spark lists a query's files with a Spark job
# over that cached state (its filesForScan, for partition pruning and data skipping), one task
# per partition, on every query. The `large` profile's 8 (for the pipeline's log replays) made
# that job 8 tasks, 0.18-0.23 s of a BI query on 2 loaded cores; 1 task takes 0.03-0.07 s.
# bench/bench_sql.py --transactions 10000000 --repeat 9, one after the other, load 12-13:
# 8 partitions Delta 2.02 s / Parquet 1.46 s (1.38), the job's query 0.64 s;
# 1 partition Delta 1.35 s / Parquet 1.24 s (1.09), 0.26 s. A local master only: a cluster
# replays a large log faster in parallel.
LOCAL_SCAN_SETTINGS = {"spark.databricks.delta.snapshotPartitions": "1"}


def scan_settings(master: str) -> dict[str, str]:
    """Session settings that make the server's queries over Delta tables cheaper on ``master``."""
    return dict(LOCAL_SCAN_SETTINGS) if master.startswith("local") else {}


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (default: conf/gold.yaml sql_server.host)")
    parser.add_argument("--port", type=int, help="port (default: conf/gold.yaml sql_server.port)")
    parser.add_argument(
        "--ldap-url",
        help="directory users log in to (default: conf/governance.yaml sql_server.ldap.url)",
    )
    parser.add_argument(
        "--parquet-view",
        action="append",
        default=[],
        metavar="LAYER.NAME=PATH",
        help="also publish a plain Parquet folder as a view, masked like the "
        "lake's tables (bench/bench_sql.py's baseline); repeatable",
    )


def run(_: Any, cfg: Config, args: argparse.Namespace) -> None:
    from cardlake.gold.config import load_gold_config
    from cardlake.governance import sql_access
    from cardlake.governance.settings import load_governance
    from cardlake.spark import build_session, profile_settings
    from cardlake.tables.layer import choose_engine

    listen = load_gold_config(cfg.env).sql_server
    host, port = args.host or listen.host, args.port or listen.port
    governance = load_governance(cfg.env)
    access = governance.sql_server
    if args.ldap_url:
        access = dataclasses.replace(
            access, ldap=dataclasses.replace(access.ldap, url=args.ldap_url)
        )
    governance = dataclasses.replace(governance, sql_server=access)
    # Before the session starts: a server nobody can log in to is no use.
    sql_access.check_directory(access.ldap.url)
    jar = sql_access.guard_jar()
    profile = profile_settings(cfg)
    # Every JDBC connection shares this session, where the tables' data sources are registered;
    # the guard's jar and extension join the connector's (static settings, fixed at start).
    # The scan settings come first: the config's own spark.conf has the last word.
    conf = {
        **scan_settings(profile.get("spark.master", "")),
        **cfg.spark.conf,
        "spark.sql.hive.thriftServer.singleSession": "true",
        "spark.ui.enabled": "false",
        **sql_access.with_guard(
            {k: profile[k] for k in ("spark.jars", "spark.sql.extensions") if k in profile}, jar
        ),
        **sql_access.server_settings(access, host=host, port=port),
    }
    spark = build_session(dataclasses.replace(cfg, spark=dataclasses.replace(cfg.spark, conf=conf)))
    engine = choose_engine(spark, cfg.tables.engine).name
    links = tempfile.mkdtemp(prefix="cardlake-sql-snapshots-")
    mirrors = (
        sql_access.MirroredTables(spark, folder=links, refresh_seconds=listen.refresh_seconds)
        if engine == "delta-rs"
        else None
    )
    names = sql_access.publish(
        spark, governance, lake_root=cfg.paths.lake_root, engine=engine, mirrors=mirrors
    )
    for item in args.parquet_view:
        name, _, path = item.partition("=")
        names += sql_access.publish_parquet(spark, governance, name=name, path=path)
    jvm = spark._jvm
    if jvm is None:  # a Spark Connect session: no JVM to start the Thrift server in
        raise RuntimeError("the SQL server needs a classic Spark session with a JVM")
    for key, value in sql_access.ldap_system_properties(access).items():
        jvm.java.lang.System.setProperty(key, value)
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    server = jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2.startWithSparkSession(
        spark._jsparkSession, False
    )
    if mirrors is not None:
        threading.Thread(
            target=mirrors.watch, args=(stop,), name="sql-snapshots", daemon=True
        ).start()
    print(
        f"{READY} jdbc:hive2://{host}:{port} ({len(names)} views, {engine}, LDAP "
        f"{access.ldap.url})",
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        spark.stop()
        shutil.rmtree(links, ignore_errors=True)  # links only: the lake's files stay
        print("cardlake sql-server: stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    # The session is built in run(): the server needs settings fixed at session start.
    return run_job(
        run,
        description=__doc__.splitlines()[0],
        add_arguments=_arguments,
        argv=argv,
        needs_spark=False,
    )


if __name__ == "__main__":
    sys.exit(main())
