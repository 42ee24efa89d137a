"""Interactive Spark SQL over the lake: ``bronze.*``, ``silver.*`` and ``gold.*`` by name.

    make sql                         # interactive; end statements with ';', quit with \\q
    echo "select 1;" | make sql      # or pipe statements in

Tables are registered at start and resolve their latest commit at every query.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cardlake.config import Config
from cardlake.jobs import run_job
from cardlake.tables import Tables

PROMPT, CONTINUATION = "cardlake> ", "       -> "
MAX_ROWS = 200


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-e", "--execute", help="run these statements and exit")


def _statements(stream: Any, interactive: bool) -> Any:
    buffer: list[str] = []
    while True:
        if interactive:
            print(CONTINUATION if buffer else PROMPT, end="", flush=True)
        line = stream.readline()
        if not line:
            break
        if not buffer and line.strip() in ("\\q", "quit", "exit"):
            break
        buffer.append(line)
        text = "".join(buffer).strip()
        if text.endswith(";"):
            buffer = []
            for statement in text.split(";"):
                if statement.strip():
                    yield statement.strip()
    rest = "".join(buffer).strip()
    if rest:
        yield rest


def run(spark: Any, cfg: Config, args: argparse.Namespace) -> None:
    tables = Tables.from_config(spark, cfg)
    names = tables.register_sql()
    interactive = args.execute is None and sys.stdin.isatty()
    if interactive:
        print(f"{len(names)} tables: {', '.join(names) or '(none yet: make run)'}")
    import io

    source = io.StringIO(args.execute) if args.execute is not None else sys.stdin
    for statement in _statements(source, interactive):
        try:
            result = spark.sql(statement)
            if result.columns:
                result.show(MAX_ROWS, truncate=False)
        except Exception as exc:  # show the error and keep the shell alive
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    return run_job(run, description=__doc__.splitlines()[0], add_arguments=_arguments, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
