"""Spark Thrift (HiveServer2) JDBC/ODBC server over the lake: ``bronze``, ``silver``, ``gold``.

    python jobs/sql_server.py --env local                 # jdbc:hive2://127.0.0.1:10000
    python jobs/sql_server.py --env local --port 10001    # another port

Tableau, Power BI (Spark connector), DBeaver or beeline connect to
``jdbc:hive2://127.0.0.1:10000`` (no authentication; loopback only unless ``--host`` or
``conf/gold.yaml`` says otherwise). The server runs inside this PySpark session, which registers
the lake's tables (the embedded engine's tables are a Python data source, visible only to
sessions that registered it, hence one shared session for every connection). Tables resolve
their latest commit at every query. Ctrl-C or SIGTERM stops the server and the session; exit 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from cardlake.config import Config
from cardlake.jobs import run_job

log = logging.getLogger("cardlake.sql_server")
READY = "cardlake sql-server: listening on"


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (default: conf/gold.yaml sql_server.host)")
    parser.add_argument("--port", type=int, help="port (default: conf/gold.yaml sql_server.port)")


def server_settings(host: str, port: int) -> dict[str, str]:
    """Thrift settings: bind address and port, binary transport, one shared session."""
    return {
        "hive.server2.thrift.bind.host": host,
        "hive.server2.thrift.port": str(port),
        "hive.server2.transport.mode": "binary",
        "hive.server2.authentication": "NONE",
    }


def run(_: Any, cfg: Config, args: argparse.Namespace) -> None:
    import dataclasses

    from cardlake.gold.config import load_gold_config
    from cardlake.spark import build_session
    from cardlake.tables import Tables

    settings = load_gold_config(cfg.env).sql_server
    host, port = args.host or settings.host, args.port or settings.port
    # Every JDBC connection shares this session, where the tables' data sources are registered
    # (a static setting: it must be there when the session starts).
    conf = {
        **cfg.spark.conf,
        "spark.sql.hive.thriftServer.singleSession": "true",
        "spark.ui.enabled": "false",
        **{f"spark.hadoop.{k}": v for k, v in server_settings(host, port).items()},
    }
    spark = build_session(dataclasses.replace(cfg, spark=dataclasses.replace(cfg.spark, conf=conf)))
    tables = Tables.from_config(spark, cfg)
    names = tables.register_sql()
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    jvm = spark._jvm
    server = jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2.startWithSparkSession(
        spark._jsparkSession, False
    )
    print(f"{READY} jdbc:hive2://{host}:{port} ({len(names)} tables)", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        spark.stop()
        print("cardlake sql-server: stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    # The session is built in run(): the server needs settings fixed at session start.
    return run_job(run, description=__doc__.splitlines()[0], add_arguments=_arguments,
                   argv=argv, needs_spark=False)


if __name__ == "__main__":
    sys.exit(main())
