"""Generate the synthetic landing zone and its ground truth.

    python jobs/generate_data.py                      # full history
    python jobs/generate_data.py --month 2024-07      # only that month's drop
    python jobs/generate_data.py --stream --rate 50 --max-events 2000

No Spark: the generator is plain numpy/pyarrow, so this job runs with ``python`` as well as
``spark-submit``. Exit codes: 0 success, 2 bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from cardlake.config import load_config
from cardlake.synth import generate, stream
from cardlake.synth.sources import EVENTS_DIR

log = logging.getLogger("cardlake.jobs.generate_data")
EXIT_OK, EXIT_BAD_ARGS = 0, 2
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def _month(value: str) -> str:
    if not _MONTH.match(value):
        raise argparse.ArgumentTypeError(f"expected YYYY-MM, got {value!r}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line arguments (argparse exits with code 2 on bad ones)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=os.environ.get("CARDLAKE_ENV", "local"))
    parser.add_argument("--month", type=_month, help="write only this month's drop")
    parser.add_argument("--stream", action="store_true", help="write transaction event files")
    parser.add_argument("--rate", type=float, default=100.0, help="stream events per second")
    parser.add_argument("--max-events", type=int, default=1000, help="stream stops after these")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="stream time limit")
    args = parser.parse_args(argv)
    if args.stream and args.month:
        parser.error("--stream replays one month itself; use --month only without --stream")
    if args.max_events < 0 or args.rate < 0:
        parser.error("--max-events and --rate must not be negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the generator; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        args = parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        cfg = load_config(args.env)
    except Exception as exc:  # unknown env or bad config is a usage error, not a crash
        log.error("configuration: %s", exc)
        return EXIT_BAD_ARGS
    from cardlake.config import load_settings
    from cardlake.synth.params import SynthParams

    params = load_settings(SynthParams, "base", env=cfg.env, section="synth")
    if args.month and args.month not in params.months():
        log.error("--month %s is outside the history %s..%s", args.month,
                  params.months()[0], params.months()[-1])
        return EXIT_BAD_ARGS
    if args.stream:
        out = Path(cfg.paths.landing_root) / EVENTS_DIR
        s = stream(landing_dir=out, params=params, rate_per_second=args.rate,
                   max_events=args.max_events, max_seconds=args.max_seconds)
        log.info("stream: %d events in %d files to %s in %.1fs", s.events, s.files, out,
                 s.seconds)
        return EXIT_OK
    summary = generate(
        landing_root=cfg.paths.landing_root, truth_root=cfg.paths.truth_root, params=params,
        months=[args.month] if args.month else None,
    )
    log.info("generated %s..%s: %d transactions, %d files, %d bad records in %.1fs",
             summary.months[0], summary.months[-1], summary.transactions, summary.files,
             summary.bad_records, summary.seconds)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
