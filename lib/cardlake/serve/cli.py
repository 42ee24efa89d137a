"""Command lines of ``jobs/dashboard.py`` and ``jobs/report.py`` (no Spark session needed).

Both take the options every job takes (``--env``, ``--lake-root``, ``--month``) and resolve the
lake root through the one config loader; exit codes as in :mod:`cardlake.jobs`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from cardlake.config import PROJECT_ROOT, ConfigError, load_config
from cardlake.jobs import EXIT_FAILED, EXIT_OK, EXIT_USAGE, base_parser, overrides_from
from cardlake.serve.masking import DEFAULT_ROLE, ROLES

ROLE_VAR = "CARDLAKE_DASHBOARD_ROLE"
REPORTS_DIR = str(PROJECT_ROOT / "reports")
log = logging.getLogger("cardlake.serve")


def _lake_root(args: argparse.Namespace) -> str:
    cfg = load_config(args.env, overrides=overrides_from(args))
    return cfg.paths.lake_root


def dashboard_main(argv: list[str] | None = None) -> int:
    parser = base_parser("Serve the Cardlake dashboard (read-only on the lake)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default loopback: 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8050)
    parser.add_argument(
        "--role",
        choices=ROLES,
        default=os.environ.get(ROLE_VAR, DEFAULT_ROLE),
        help=f"viewer role: analyst sees personal fields masked (${ROLE_VAR})",
    )
    parser.add_argument(
        "--reports-dir",
        default=REPORTS_DIR,
        help="where `make report` writes (profiling reports are linked)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        lake_root = _lake_root(args)
    except ConfigError as exc:
        print(f"cardlake: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from cardlake.serve.app import serve

    serve(
        lake_root,
        host=args.host,
        port=args.port,
        role=args.role,
        profiles_dir=os.path.join(args.reports_dir, "profiling"),
    )
    return EXIT_OK


def report_main(argv: list[str] | None = None) -> int:
    parser = base_parser("Write the monthly executive report (HTML and PDF) under reports/")
    parser.add_argument("--out", default=REPORTS_DIR, help="output folder (default reports/)")
    parser.add_argument("--no-pdf", action="store_true", help="write the HTML only")
    parser.add_argument(
        "--no-profiles", action="store_true", help="skip the per-source data profiling reports"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        lake_root = _lake_root(args)
    except ConfigError as exc:
        print(f"cardlake: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from cardlake.serve.lake import TableNotBuilt
    from cardlake.serve.report import ReportError, write_report

    try:
        paths = write_report(
            lake_root,
            args.out,
            month=args.month,
            pdf=not args.no_pdf,
            profiles=not args.no_profiles,
        )
    except TableNotBuilt as missing:
        print(
            f"cardlake: {missing.name} is not built yet: run `make run` (or the stage that "
            "writes it) first",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except ReportError as exc:
        print(f"cardlake: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for path in paths:
        print(path)
    return EXIT_OK
