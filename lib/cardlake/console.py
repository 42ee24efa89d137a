"""What a person sees: one line per stage with progress and time; library logs go to a file.

:func:`setup_logging` sends every Python logger (Spark's py4j, Great Expectations, MLflow,
Splink, ...) to a log file at INFO and to the console at WARNING only, one line each, without
stack traces (those stay in the file). :func:`jvm_log_settings` points the JVM's log4j at the
same file (``spark.py`` adds them to the session). :class:`StageLine` prints a stage's line,
redrawn with Spark's task progress on a terminal, and its wall time when done.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark import SparkContext

LOG_FILE_VAR = "CARDLAKE_LOG_FILE"
LOG4J2_PROPERTIES = Path(__file__).with_name("log4j2.properties")
_HANDLER_MARK = "_cardlake_handler"
_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that speak at INFO through Python logging; they reach the console only at WARNING.
LIBRARY_LOGGERS = (
    "py4j",
    "pyspark",
    "great_expectations",
    "mlflow",
    "splink",
    "alembic",
    "urllib3",
    "matplotlib",
    "numba",
    "sqlalchemy",
    "duckdb",
    "py.warnings",
)

log = logging.getLogger("cardlake")


# A line that only announces a message ("WARNING:", "-- WARNING --"), as Splink's are framed.
_BANNER = re.compile(r"^[-=*#\s]*(warning|error|note)?[-=*#:\s]*$", re.IGNORECASE)
CONSOLE_WIDTH = 240


class _OneLine(logging.Formatter):
    """``cardlake: warning: name: the message's lines joined`` (no banners, no traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        lines = [line.strip() for line in record.getMessage().splitlines()]
        text = " ".join(line for line in lines if not _BANNER.match(line))
        if len(text) > CONSOLE_WIDTH:
            text = text[: CONSOLE_WIDTH - 3].rstrip() + "..."
        return f"cardlake: {record.levelname.lower()}: {record.name}: {text}"


def log_file_for(log_dir: str | Path, command: str) -> Path:
    """``<log_dir>/<UTC time>-<command>-<pid>.log``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(log_dir) / f"{stamp}-{command}-{os.getpid()}.log"


def setup_logging(log_file: Path | None, *, console_level: int = logging.WARNING) -> None:
    """Routes every logger to ``log_file`` (INFO, with tracebacks) and the console (one line).

    Idempotent: the handlers of an earlier call are replaced. ``log_file`` None logs to the
    console only (jobs that write no lake).
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level)
    console.setFormatter(_OneLine())
    # Python warnings (deprecations, MLflow's schema hints) are for developers: the file only.
    # So are Splink's training notes (max_pairs, levels not observed, parameters left at their
    # defaults): every training run makes them, nobody running a job can act on them, and the
    # matcher's quality is reported against truth in the run's summary instead.
    console.addFilter(
        lambda record: (
            not getattr(record, "cardlake_file_only", False)
            and record.name != "py.warnings"
            and not (record.name.startswith("splink") and record.levelno < logging.ERROR)
        )
    )
    setattr(console, _HANDLER_MARK, True)
    root.addHandler(console)
    logging.captureWarnings(True)
    _adopt_library_loggers()
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # and keeps it from adding one later
    if log_file is None:
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(log_file, mode="a", encoding="utf-8")
    to_file.setLevel(logging.INFO)
    to_file.setFormatter(logging.Formatter(_FILE_FORMAT))
    setattr(to_file, _HANDLER_MARK, True)
    root.addHandler(to_file)
    for name in LIBRARY_LOGGERS:  # their usual level in the file; the console filters anyway
        logging.getLogger(name).setLevel(logging.INFO)
    # One line per call or statement at INFO (the root's level here): py4j's Java calls, the SQL
    # MLflow's store runs through SQLAlchemy (three quarters of a run's log before this), and
    # Great Expectations' import-time notes on functions it skips documenting (~70 per run).
    for chatty in ("py4j", "sqlalchemy", "alembic", "great_expectations._docs_decorators"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    os.environ[LOG_FILE_VAR] = str(log_file)  # the JVM (started later) writes here too


def _adopt_library_loggers() -> None:
    """Libraries that install their own console handler (MLflow does, on import) would print
    multi-line records beside ours: their handlers go, their records reach the root's."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True


def jvm_log_settings() -> dict[str, str]:
    """Spark settings that send the driver JVM's log4j output to the run's log file.

    Empty when no log file is set up (tests, notebooks): Spark's own defaults then apply.
    """
    log_file = os.environ.get(LOG_FILE_VAR)
    if not log_file:
        return {}
    options = f"-Dlog4j2.configurationFile=file:{LOG4J2_PROPERTIES} -Dcardlake.log.file={log_file}"
    return {"spark.driver.extraJavaOptions": options}


@contextmanager
def jvm_output_to_log() -> Iterator[None]:
    """While the JVM starts, its stdout and stderr (the launcher's Ivy resolution, JDK notes,
    anything printed outside log4j) become the run's log file, for the JVM's whole life.

    The JVM is a child process: it inherits file descriptors 1 and 2 as they are when it starts.
    Python's own descriptors are restored at once. Without a log file this does nothing.
    """
    log_file = os.environ.get(LOG_FILE_VAR)
    if not log_file:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    target = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, target):
            os.close(fd)


@contextmanager
def library_output_to_log() -> Iterator[None]:
    """While a stage runs, what Python code prints to ``sys.stdout`` and ``sys.stderr`` (MLflow's
    registry notes, raw warnings, fitting progress bars) goes to the run's log file.

    Handlers and stage lines made before keep the real console. Without a log file this does
    nothing.
    """
    log_file = os.environ.get(LOG_FILE_VAR)
    if not log_file:
        yield
        return
    with (
        open(log_file, "a", encoding="utf-8", buffering=1) as out,
        redirect_stdout(out),
        redirect_stderr(out),
    ):
        yield


# ------------------------------------------------------------------------------ stage lines


def _progress(sc: SparkContext | None) -> tuple[int, int] | None:
    # Tasks done and tasks in total over the active stages, from Spark's status tracker.
    if sc is None:
        return None
    try:
        tracker = sc.statusTracker()
        found = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
    except Exception:  # the session is stopping; progress is cosmetic
        return None
    infos = [i for i in found if i is not None]
    if not infos:
        return None
    done: int = sum(int(i.numCompletedTasks) for i in infos)
    return done, sum(int(i.numTasks) for i in infos)


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = int(width * done / total) if total else 0
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total} tasks"


@dataclass
class StageLine:
    """One stage's console line: redrawn with progress on a terminal, final with its time."""

    name: str
    description: str
    spark_context: Callable[[], SparkContext | None]
    stream: IO[str] = sys.stdout
    interval: float = 0.5

    def __post_init__(self) -> None:
        self.tty = self.stream.isatty()
        self._stop = threading.Event()
        self._started = time.perf_counter()
        self._thread: threading.Thread | None = None

    def _draw(self, text: str, *, final: bool = False) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        elif final:
            self.stream.write(text + "\n")
        self.stream.flush()

    def _head(self) -> str:
        return f"{self.name:<9} {time.perf_counter() - self._started:7.1f}s"

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            progress = _progress(self.spark_context())
            detail = _bar(*progress) if progress else self.description
            self._draw(f"  {self._head()}  {detail}")

    def start(self) -> StageLine:
        self._started = time.perf_counter()
        if self.tty:
            self._draw(f"  {self._head()}  {self.description}")
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def finish(self, outcome: str, note: str = "") -> float:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        seconds = time.perf_counter() - self._started
        mark = {"done": "ok", "failed": "FAILED", "skipped": "skipped"}.get(outcome, outcome)
        self._draw(
            f"{mark:>6} {self.name:<9} {seconds:7.1f}s  {note or self.description}", final=True
        )
        return seconds


@contextmanager
def stage_line(
    name: str,
    description: str,
    spark_context: Callable[[], SparkContext | None],
    stream: IO[str] | None = None,
) -> Iterator[StageLine]:
    """A :class:`StageLine` that ends as ``FAILED`` when the block raises."""
    line = StageLine(name, description, spark_context, stream or sys.stdout).start()
    try:
        yield line
    except BaseException:
        line.finish("failed")
        raise


def say(text: str = "", stream: IO[str] | None = None) -> None:
    """A line for people (summaries, hints), on stdout."""
    out = stream or sys.stdout
    out.write(text + "\n")
    out.flush()


def format_table(rows: list[tuple[Any, ...]], indent: str = "  ") -> list[str]:
    """Left-aligned columns, as text lines."""
    if not rows:
        return []
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in rows
    ]
