"""The fraud stream: card events to scored alerts, exactly once (``make stream``).

    python jobs/stream.py --env local                      # event files in <landing>/events
    STREAM_SOURCE=kafka python jobs/stream.py --env local  # the topic on 127.0.0.1:9092

Runs until interrupted (Ctrl-C stops the queries cleanly; a kill -9 loses nothing either: the
next start resumes from the checkpoints), or until no event arrived for ``--idle-stop`` seconds.
Exit codes: 0 done, 1 the stream failed, 2 bad arguments or configuration, 3 no Java/connector.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stream", description=__doc__.split("\n")[0])
    parser.add_argument("--env", default=os.environ.get("CARDLAKE_ENV", "local"))
    parser.add_argument("--lake-root")
    parser.add_argument("--landing-root")
    parser.add_argument("--source", choices=("files", "kafka"))
    parser.add_argument("--bootstrap")
    parser.add_argument("--topic")
    parser.add_argument("--alerts-topic")
    parser.add_argument("--events-dir")
    parser.add_argument("--watermark")
    parser.add_argument("--trigger-seconds", type=float)
    parser.add_argument("--max-per-trigger", type=int)
    parser.add_argument("--model-refresh-seconds", type=float)
    parser.add_argument("--metrics-path")
    parser.add_argument("--driver-memory", help="Spark driver memory, e.g. 2g")
    parser.add_argument(
        "--idle-stop",
        type=float,
        default=0.0,
        help="stop after this many seconds without input (0: run until killed)",
    )
    parser.add_argument("--max-seconds", type=float, default=float("inf"))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2

    from cardlake.config import ConfigError, load_config
    from cardlake.spark import JavaError, build_session
    from cardlake.stream import job
    from cardlake.tables import Tables

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    overrides: dict[str, object] = {}
    if args.lake_root:
        overrides["paths.lake_root"] = args.lake_root
    if args.landing_root:
        overrides["paths.landing_root"] = args.landing_root
    if args.driver_memory:
        overrides["spark.driver_memory"] = args.driver_memory
    try:
        cfg = load_config(args.env, overrides=overrides)
        settings = job.StreamSettings.from_env(
            source=args.source,
            bootstrap=args.bootstrap,
            topic=args.topic,
            alerts_topic=args.alerts_topic,
            events_dir=args.events_dir,
            watermark=args.watermark,
            trigger_seconds=args.trigger_seconds,
            max_per_trigger=args.max_per_trigger,
            model_refresh_seconds=args.model_refresh_seconds,
            metrics_path=args.metrics_path,
        )
    except (ConfigError, ValueError) as exc:
        print(f"stream: {exc}", file=sys.stderr)
        return 2
    try:
        spark = build_session(job.session_config(cfg, settings))
    except JavaError as exc:
        print(f"stream: {exc}", file=sys.stderr)
        return 3
    tables = Tables.from_config(spark, cfg)
    running = job.start(spark, cfg, tables, settings)
    print(
        f"stream: {settings.source} -> {job.ALERTS_TABLE}, {job.SCORED_TABLE}, "
        f"{job.QUARANTINE_TABLE} under {cfg.paths.lake_root}",
        flush=True,
    )
    try:
        job.await_idle(running, idle_seconds=args.idle_stop, max_seconds=args.max_seconds)
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        print(f"stream: failed: {str(exc)[:2000]}", file=sys.stderr)
        return 1
    finally:
        running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
