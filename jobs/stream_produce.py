"""Replay one month's card transactions as events, to event files or a Kafka topic.

    python jobs/stream_produce.py --env local --rate 200 --max-events 2000           # files
    python jobs/stream_produce.py --env local --source kafka --rate 500 --max-seconds 60

Cards travel as bronze's tokens; the truth (is fraud, true probability) goes to
``<truth_root>/stream/``. Exit codes: 0 done, 1 the broker did not take the events, 2 bad
arguments or configuration.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stream_produce", description=__doc__.split("\n")[0])
    parser.add_argument("--env", default=os.environ.get("CARDLAKE_ENV", "local"))
    parser.add_argument(
        "--source", choices=("files", "kafka"), default=os.environ.get("STREAM_SOURCE", "files")
    )
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--topic", default="card-events")
    parser.add_argument("--landing-root")
    parser.add_argument("--truth-root")
    parser.add_argument("--month", help="YYYY-MM to replay (default: the last generated month)")
    parser.add_argument("--rate", type=float, default=100.0, help="events per second (0: max)")
    parser.add_argument("--max-events", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--events-per-file", type=int, default=50)
    parser.add_argument("--malformed-every", type=int, default=0)
    parser.add_argument("--duplicate-every", type=int, default=0)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    if args.max_events < 0 or args.events_per_file < 1:
        print("stream_produce: --max-events must be >= 0, --events-per-file >= 1", file=sys.stderr)
        return 2

    from cardlake.bronze.contracts import load_bronze_config
    from cardlake.config import ConfigError, load_config
    from cardlake.synth.stream import params_of, publish, stream, write_truth

    overrides = {
        k: v
        for k, v in (
            ("paths.landing_root", args.landing_root),
            ("paths.truth_root", args.truth_root),
        )
        if v
    }
    try:
        cfg = load_config(args.env, overrides=overrides)
        key = load_bronze_config(args.env).token_key(args.env)
    except ConfigError as exc:
        print(f"stream_produce: {exc}", file=sys.stderr)
        return 2
    common = {
        "params": params_of(cfg.synth),
        "rate_per_second": args.rate,
        "max_events": args.max_events,
        "max_seconds": args.max_seconds,
        "month": args.month,
        "token_key": key,
        "malformed_every": args.malformed_every,
        "duplicate_every": args.duplicate_every,
    }
    try:
        if args.source == "kafka":
            summary = publish(bootstrap=args.bootstrap, topic=args.topic, **common)
        else:
            summary = stream(
                landing_dir=Path(cfg.paths.landing_root) / "events",
                events_per_file=args.events_per_file,
                **common,
            )
    except RuntimeError as exc:
        print(f"stream_produce: {exc}", file=sys.stderr)
        return 1
    truth = write_truth(cfg.paths.truth_root, summary)
    print(
        f"stream_produce: {summary.events} events of {summary.month} in {summary.seconds:.1f} s "
        f"({args.source}); truth in {truth}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
