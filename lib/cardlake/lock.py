"""One pipeline run writes a lake at a time: a lock file under ``<lake_root>/_ops``.

The lock is a small JSON file created with ``O_CREAT | O_EXCL`` (atomic on a local or NFS file
system), holding the holder's pid, host, command and start time. A lock left by a process that
no longer runs on this host is stale and taken over (with a warning naming the old holder).
A lock held from another host is never taken over automatically: its holder may be alive;
delete the file once you know it is not.

Lakes on object storage (``s3a://``) need a coordination service for this guarantee (a lock
table, or conditional writes); there the harness refuses ``--lock`` rather than pretend.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from cardlake.errors import LakeLocked

LOCK_NAME = "pipeline.lock"
log = logging.getLogger("cardlake.lock")


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    command: str
    started_at: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.started_at} ({self.command})"


def lock_path(lake_root: str) -> Path:
    """``<lake_root>/_ops/pipeline.lock``; local lake roots only."""
    if "://" in lake_root and not lake_root.startswith("file://"):
        raise LakeLocked(
            f"{lake_root}: the run lock needs a local or mounted lake root; an object store "
            "needs a coordination service (see the README)"
        )
    return Path(lake_root.removeprefix("file://")) / "_ops" / LOCK_NAME


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def read_holder(path: Path) -> Holder | None:
    """The current holder, or None when there is no lock (or it is unreadable: being written)."""
    try:
        data = json.loads(path.read_text())
        return Holder(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        return None


class LakeLock:
    """``with LakeLock(lake_root, command="run"):`` holds the lake for one run.

    Args:
        lake_root: the lake's folder.
        command: what the holder runs (shown to whoever waits).
        wait: seconds to wait for a held lock (0: fail at once; None: wait for ever).
        poll: seconds between attempts while waiting.

    Raises:
        LakeLocked: the lock is held by a live process (or from another host) after ``wait``.
    """

    def __init__(
        self, lake_root: str, *, command: str, wait: float | None = 0.0, poll: float = 1.0
    ) -> None:
        self.path = lock_path(lake_root)
        self.command = command
        self.wait = wait
        self.poll = poll
        self.holder = Holder(
            pid=os.getpid(),
            host=socket.gethostname(),
            command=command,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self._held = False

    def _try_once(self) -> Holder | None:
        """Takes the lock, or returns who holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
            current = read_holder(self.path)
            if current is None:  # a holder between create and write, or a torn file
                return Holder(pid=-1, host="?", command="?", started_at="?")
            if current.host == self.holder.host and not _alive(current.pid):
                log.warning("taking over a stale lake lock: %s no longer runs", current.describe())
                self.path.unlink(missing_ok=True)
                return self._try_once()
            return current
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(self.holder), out)
        self._held = True
        return None

    def acquire(self) -> LakeLock:
        deadline = None if self.wait is None else time.monotonic() + self.wait
        announced = False
        while True:
            holder = self._try_once()
            if holder is None:
                return self
            if deadline is not None and time.monotonic() >= deadline:
                raise LakeLocked(
                    f"another run holds the lake: {holder.describe()}; lock file {self.path} "
                    "(wait with --wait, or delete the file if that run is gone)"
                )
            if not announced:
                log.warning("waiting for the lake lock held by %s", holder.describe())
                announced = True
            time.sleep(self.poll)

    def release(self) -> None:
        if self._held:
            current = read_holder(self.path)
            if current is not None and (current.pid, current.host) == (
                self.holder.pid,
                self.holder.host,
            ):
                self.path.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> LakeLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
