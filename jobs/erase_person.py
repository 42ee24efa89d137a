"""Erase one person from the whole lake (right to be forgotten), and keep them out.

    python jobs/erase_person.py --env local --customer-key CK0123456789
    python jobs/erase_person.py --env local --email someone@example.org
    python jobs/erase_person.py --env local --source-record-id CRM000123

Every table, quarantine row, text file and old table version that names the person goes (see
``cardlake.governance.erasure``); a keyed digest of their identifiers joins the suppression list
bronze consults, and ``_ops.erasure_audit`` gets a row without personal data. Prints what
changed (tables and counts, never values). Exit 0 done, 1 nobody matched or a file could not be
erased, 2 bad arguments, 5 another run holds the lake's lock (``--wait [SECONDS]`` waits for it).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cardlake.config import Config
from cardlake.jobs import JobFailed, run_job


def _arguments(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--customer-key", help="the person's customer key (CK...)")
    who.add_argument("--email", help="an e-mail address the lake holds for the person")
    who.add_argument("--source-record-id", help="a source record id (crm, fin, app, ...)")
    parser.add_argument(
        "--requested-by",
        default="erase_person",
        help="ticket or role asking (kept in the audit; never the person)",
    )


def run(spark: Any, cfg: Config, args: argparse.Namespace) -> None:
    from cardlake.bronze.contracts import load_bronze_config
    from cardlake.governance.erasure import ErasureError, ErasureRequest, erase
    from cardlake.tables import Tables

    key = load_bronze_config(cfg.env).token_key(cfg.env)
    tables = Tables.from_config(spark, cfg)
    try:
        result = erase(
            tables,
            ErasureRequest(
                customer_key=args.customer_key,
                email=args.email,
                source_record_id=args.source_record_id,
            ),
            key=key,
            requested_by=args.requested_by,
        )
    except ErasureError as exc:
        raise JobFailed(str(exc)) from exc
    print(
        f"erasure {result.request_id}: {result.rows_removed} rows removed from "
        f"{len(result.tables_changed)} tables ({', '.join(result.tables_changed) or 'none'}); "
        f"{result.references_removed} references in other people's rows removed; "
        f"{len(result.files_redacted)} files redacted"
    )
    if result.files_not_handled:
        raise JobFailed(
            "binary files under the lake hold the person and were not changed: "
            + ", ".join(result.files_not_handled)
        )


def main(argv: list[str] | None = None) -> int:
    return run_job(
        run,
        description=__doc__.splitlines()[0],
        add_arguments=_arguments,
        argv=argv,
        writes_lake=True,
    )


if __name__ == "__main__":
    sys.exit(main())
