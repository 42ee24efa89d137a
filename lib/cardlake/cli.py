"""``cardlake``: the one harness behind every job, ``make`` target and scheduler call.

    cardlake run [--month 2025-06] [--only bronze,silver] [--wait [SECONDS]]
    cardlake generate | bronze | silver | gold | ml   [--month YYYY-MM] [--env test]
    cardlake --help

It loads the settings once, takes the lake's lock, builds the SparkSession and the ``Tables``
once, runs the stages with one console line each, prints a summary, and turns the outcome into
an exit code that means the same for every job:

- 0: done (including "nothing new to do");
- 1: the data failed a check (the message names the file, row, field or expectation);
- 2: bad arguments or configuration (an unknown stage in ``--only`` included);
- 3: the environment is not usable (no suitable Java, a configured connector missing);
- 4: a crash: an unexpected exception (its traceback is in the run's log file);
- 5: another run holds the lake's lock (``--wait`` waits for it instead).

``jobs/*.py`` are thin shells over :func:`main` for ``spark-submit``.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import yaml

from cardlake.config import (
    ENV_VAR,
    Config,
    ConfigError,
    Settings,
    default_env,
    is_object_store,
    load_all,
    load_config,
    local_path,
)
from cardlake.console import log_file_for, say, setup_logging
from cardlake.errors import ConnectorMissing, JobFailed, LakeLocked
from cardlake.months import parse_month

if TYPE_CHECKING:
    from cardlake.pipeline import Lake, Stage

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_CRASH = 4
EXIT_LOCKED = 5

log = logging.getLogger("cardlake")
_FILE_ONLY = {"cardlake_file_only": True}


def month_arg(value: str) -> str:
    """argparse type for ``YYYY-MM``."""
    try:
        return parse_month(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--env",
        default=None,
        help=f"config overlay: local, test, cluster (default: ${ENV_VAR}, then local)",
    )
    common.add_argument("--month", type=month_arg, help="process only this month (YYYY-MM)")
    common.add_argument("--lake-root", help="override paths.lake_root (a folder or URI)")
    common.add_argument("--landing-root", help="override paths.landing_root")
    common.add_argument("--truth-root", help="override paths.truth_root")
    common.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="settings",
        help="override any setting by its dotted key, the value read as YAML "
        "(--set synth.n_customers=300 --set gold.features.lookback_months=6)",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="library logs on the console too (INFO), not only in the log file",
    )
    return common


def base_parser(description: str) -> argparse.ArgumentParser:
    """The options every job takes: ``--env``, ``--month``, ``--lake-root`` and the paths."""
    return argparse.ArgumentParser(description=description, parents=[_common()])


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line path options as dotted config overrides."""
    overrides: dict[str, Any] = {}
    for item in getattr(args, "settings", None) or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML: {exc}") from None
    for option in ("lake_root", "landing_root", "truth_root"):
        if getattr(args, option, None):
            overrides[f"paths.{option}"] = getattr(args, option)
    return overrides


def _wait_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        nargs="?",
        type=float,
        const=-1.0,
        default=0.0,
        metavar="SECONDS",
        help="if another run holds the lake, wait for it (for ever, or SECONDS) instead of "
        "exiting with 5",
    )


def build_parser() -> argparse.ArgumentParser:
    """``cardlake`` and its commands."""
    from cardlake.bronze.contracts import INGEST_ORDER
    from cardlake.pipeline import STAGE_NAMES

    parser = argparse.ArgumentParser(
        prog="cardlake",
        description="Cardlake: landing → bronze → silver → gold → models on Delta tables.",
        epilog="Exit codes: 0 done, 1 data failed a check, 2 usage or configuration, "
        "3 no Java or connector, 4 crash, 5 the lake is locked by another run.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _common()

    run = commands.add_parser("run", parents=[common], help="every stage in order (make run)")
    run.add_argument("--only", help=f"comma-separated stages, of: {', '.join(STAGE_NAMES)}")
    run.add_argument(
        "--full-resolve",
        action="store_true",
        help="silver: retrain the matcher and resolve every person record",
    )
    _wait_arg(run)

    generate = commands.add_parser(
        "generate", parents=[common], help="the synthetic landing zone and its truth (no Spark)"
    )
    generate.add_argument("--stream", action="store_true", help="write transaction event files")
    generate.add_argument("--rate", type=float, default=100.0, help="stream events per second")
    generate.add_argument("--max-events", type=int, default=1000, help="stream stops after these")
    generate.add_argument("--max-seconds", type=float, default=60.0, help="stream time limit")

    bronze = commands.add_parser(
        "bronze", parents=[common], help="landing files into bronze, bad records into quarantine"
    )
    bronze.add_argument("--source", choices=INGEST_ORDER, help="only this source (default: all)")
    _wait_arg(bronze)
    silver = commands.add_parser(
        "silver", parents=[common], help="cleaned tables, resolved customers, stable keys"
    )
    silver.add_argument(
        "--full-resolve",
        action="store_true",
        help="retrain the matcher and resolve every person record again",
    )
    _wait_arg(silver)
    gold = commands.add_parser(
        "gold", parents=[common], help="star schema, monthly customer features, KPIs"
    )
    _wait_arg(gold)
    ml = commands.add_parser("ml", parents=[common], help="train, register and score the models")
    ml.add_argument(
        "--model",
        action="append",
        help="only this model: segmentation, engagement, fraud or risk (repeatable; default: all)",
    )
    _wait_arg(ml)
    analytics = commands.add_parser(
        "analytics",
        parents=[common],
        help="the analysts' tables after the models: RFM, service, debt, segments, 360",
    )
    _wait_arg(analytics)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``cardlake`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "generate":
        if args.stream and args.month:
            return _usage("--stream replays one month itself; use --month only without --stream")
        if args.max_events < 0 or args.rate < 0:
            return _usage("--max-events and --rate must not be negative")
    return _run_command(args)


def _usage(message: str) -> int:
    print(f"cardlake: usage: {message}", file=sys.stderr)
    return EXIT_USAGE


def _stage_options(args: argparse.Namespace) -> tuple[list[str] | None, dict[str, dict[str, Any]]]:
    options: dict[str, dict[str, Any]] = {}
    if getattr(args, "full_resolve", False):
        options["silver"] = {"full_resolve": True}
    if getattr(args, "source", None):
        options["bronze"] = {"sources": [args.source]}
    if getattr(args, "model", None):
        options["ml"] = {"models": list(args.model)}
    if args.command == "run":
        only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
        return only, options
    return [args.command], options


def _log_dir(cfg: Config) -> Path:
    # Logs sit beside the lake they describe; a lake on object storage logs to a local folder.
    root = cfg.paths.lake_root
    if is_object_store(root):
        return Path(tempfile.gettempdir()) / "cardlake-logs"
    return Path(local_path(root)) / "_ops" / "logs"


def _run_command(args: argparse.Namespace) -> int:
    from cardlake.pipeline import SECTIONS, Lake, run_stages, select

    started = time.perf_counter()
    only, options = _stage_options(args)
    try:
        stages = select(only)
        settings = load_all(args.env, sections=SECTIONS, overrides=overrides_from(args))
    except ConfigError as exc:
        print(f"cardlake: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "generate" and args.stream:
        return _guarded(lambda: _stream(settings, args), log_file=None)
    cfg = settings.config
    writes_lake = any(s.needs_lake for s in stages)
    # The log file sits in the lake it describes; a run that writes no lake logs nowhere.
    log_file = log_file_for(_log_dir(cfg), args.command) if writes_lake else None
    setup_logging(log_file, console_level=logging.INFO if args.verbose else logging.WARNING)
    say(
        f"cardlake {args.command}: env {cfg.env}, lake {cfg.paths.lake_root}"
        + (f", month {args.month}" if args.month else "")
    )
    if log_file:
        say(f"  log: {log_file}")
    lake = Lake(settings)

    def body() -> None:
        from cardlake.lock import LakeLock

        def on_stage(stage: Stage) -> _StageContext:
            return _StageContext(stage, lake)

        if writes_lake:
            wait = getattr(args, "wait", 0.0)
            with LakeLock(
                cfg.paths.lake_root,
                command=" ".join(sys.argv[1:]) or args.command,
                wait=None if wait is not None and wait < 0 else wait,
            ):
                outcomes = run_stages(
                    lake, stages, month=args.month, options=options, on_stage=on_stage
                )
        else:
            outcomes = run_stages(
                lake, stages, month=args.month, options=options, on_stage=on_stage
            )
        from cardlake.summary import print_summary

        print_summary(lake, outcomes, seconds=time.perf_counter() - started)

    try:
        return _guarded(body, log_file=log_file)
    finally:
        if lake.spark is not None:
            lake.spark.stop()


class _StageContext:
    """The console line of one stage, ended with its outcome."""

    def __init__(self, stage: Stage, lake: Lake) -> None:
        from cardlake.console import StageLine

        self.line = StageLine(stage.name, stage.description, lake.spark_context)

    def __enter__(self) -> _StageContext:
        self.line.start()
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        self.line.finish("failed" if kind is not None else "done")


def _stream(settings: Settings, args: argparse.Namespace) -> None:
    from cardlake.synth import stream
    from cardlake.synth.params import SynthParams
    from cardlake.synth.sources import EVENTS_DIR

    root = settings.config.paths.landing_root
    if is_object_store(root):
        raise ConfigError(
            f"paths.landing_root {root}: the event generator writes to a local landing folder "
            "(give --landing-root a folder; the stream job itself reads events from either)"
        )
    out = Path(local_path(root)) / EVENTS_DIR
    s = stream(
        landing_dir=out,
        params=settings.of(SynthParams),
        rate_per_second=args.rate,
        max_events=args.max_events,
        max_seconds=args.max_seconds,
    )
    say(f"stream: {s.events} events in {s.files} files to {out} in {s.seconds:.1f}s")


def exit_code_for(exc: BaseException) -> tuple[int, str]:
    """The exit code of an exception, and the one line a person reads about it."""
    from cardlake.spark import JavaError
    from cardlake.tables import ConcurrentModificationError, TableError

    if isinstance(exc, LakeLocked):
        return EXIT_LOCKED, f"lake locked: {exc}"
    if isinstance(exc, ConfigError):
        return EXIT_USAGE, f"configuration error: {exc}"
    if isinstance(exc, JavaError | ConnectorMissing):
        return EXIT_ENVIRONMENT, str(exc)
    if isinstance(exc, ConcurrentModificationError):
        return EXIT_FAILED, f"concurrent change, nothing committed; re-run: {exc}"
    if isinstance(exc, JobFailed | TableError):
        return EXIT_FAILED, f"failed a check: {exc}"
    first = (str(exc).strip().splitlines() or [""])[0]
    return EXIT_CRASH, f"crashed: {type(exc).__name__}: {first}"


def _guarded(body: Callable[[], Any], *, log_file: Path | None) -> int:
    try:
        body()
    except KeyboardInterrupt:
        print("cardlake: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        code, message = exit_code_for(exc)
        log.error("exit %d: %s", code, message, exc_info=True, extra=_FILE_ONLY)
        where = f" (traceback in {log_file})" if log_file and code == EXIT_CRASH else ""
        print(f"cardlake: {message}{where}", file=sys.stderr)
        return code
    return EXIT_OK


# ------------------------------------------------------------------------------ other jobs


def run_job(
    # Any: the SparkSession, or None with needs_spark=False (one type for both would refuse
    # every run that takes a SparkSession); the result is ignored.
    run: Callable[[Any, Config, argparse.Namespace], Any],
    *,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: list[str] | None = None,
    needs_spark: bool = True,
    writes_lake: bool = False,
) -> int:
    """The harness for jobs that are not pipeline stages (maintenance, erasure, SQL, the matcher).

    Parses arguments, loads config, builds the session, calls ``run(spark, cfg, args)`` and
    maps the outcome to the exit codes above.

    Args:
        writes_lake: the job changes the lake (maintenance, erasure): it takes the lake's lock
            before the session is built, as ``cardlake`` does, exits 5 naming the holder when
            another run has it (``--wait`` waits), and releases it when ``run`` returns or
            raises. Jobs that only read take no lock.
    """
    setup_logging(None)
    parser = base_parser(description)
    if add_arguments:
        add_arguments(parser)
    if writes_lake:
        _wait_arg(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        cfg = load_config(args.env or default_env(), overrides=overrides_from(args))
    except ConfigError as exc:
        print(f"cardlake: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    def body() -> None:
        spark = None
        if needs_spark:
            from cardlake.spark import build_session

            spark = build_session(cfg)
        run(spark, cfg, args)

    def locked_body() -> None:
        from cardlake.lock import LakeLock

        # The job's file name, not its arguments: an erasure's arguments name the person, and
        # the holder is written into the lake and printed to whoever waits.
        command = Path(inspect.getfile(run)).name
        with LakeLock(
            cfg.paths.lake_root, command=command, wait=None if args.wait < 0 else args.wait
        ):
            body()

    return _guarded(locked_body if writes_lake else body, log_file=None)


def exit_now(code: int) -> NoReturn:
    """Ends the process with ``code`` once logs, stdout and stderr are flushed, skipping the
    interpreter's teardown.

    pyarrow's C++ thread pools and delta-rs's runtime can race when the interpreter shuts down
    and abort the process ("terminate called without an active exception", SIGABRT, exit 134;
    delta-io/delta-rs#2184, pola-rs/polars#24169): the lineage command died so after printing
    its graph in 2 of 30 runs on this machine. A command that only reads through them and
    holds nothing to close (no Spark session, no writer) ends here instead.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
