"""One pipeline run writes a lake at a time: a lock file under ``<lake_root>/_ops``.

The lock is a small JSON file created with ``O_CREAT | O_EXCL`` (atomic on a local or NFS file
system), holding the holder's pid, host, command and start time. A lock left by a process that
no longer runs on this host is stale and taken over (with a warning naming the old holder).
A lock held from another host is never taken over automatically: its holder may be alive;
delete the file once you know it is not.

On an S3 lake (``s3a://``, ``s3://``) the lock is an object created with a conditional write
(``If-None-Match: *``, which S3 has honoured since 2024): of two runs racing, S3 lets exactly
one create it, as ``O_EXCL`` does on a file system. Such a holder is on another machine as far
as this one can tell, so it is never taken over automatically. Other object stores need a
coordination service, and the harness refuses them rather than pretend.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from cardlake.config import S3_SCHEMES, is_object_store, local_path
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
    """``<lake_root>/_ops/pipeline.lock`` of a local (or mounted) lake root."""
    if is_object_store(lake_root):
        raise LakeLocked(
            f"{lake_root}: the run lock needs a local or mounted lake root or S3; another "
            "object store needs a coordination service (see the README)"
        )
    return Path(local_path(lake_root)) / "_ops" / LOCK_NAME


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _holder_of(text: str | bytes) -> Holder | None:
    try:
        return Holder(**json.loads(text))
    except (ValueError, TypeError):
        return None


def read_holder(path: Path) -> Holder | None:
    """The current holder, or None when there is no lock (or it is unreadable: being written)."""
    try:
        return _holder_of(path.read_text())
    except FileNotFoundError:
        return None


class _LockFile:
    """The lock as a file, created with ``O_CREAT | O_EXCL``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.local = True

    def create(self, payload: str) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as out:
            out.write(payload)
        return True

    def holder(self) -> Holder | None:
        return read_holder(self.path)

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


class _LockObject:
    """The lock as an S3 object, created with a conditional write (``If-None-Match: *``).

    boto3 finds the endpoint and credentials as every S3 client does (``AWS_ENDPOINT_URL``,
    ``AWS_ACCESS_KEY_ID`` ..., the instance profile).
    """

    def __init__(self, uri: str) -> None:
        import boto3

        bucket, _, prefix = uri.split("://", 1)[1].partition("/")
        self.bucket = bucket
        self.key = "/".join(p for p in (prefix.strip("/"), "_ops", LOCK_NAME) if p)
        self.path = f"s3://{bucket}/{self.key}"
        self.local = False
        self._s3 = boto3.client("s3")

    def create(self, payload: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._s3.put_object(
                Bucket=self.bucket, Key=self.key, Body=payload.encode(), IfNoneMatch="*"
            )
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (409, 412):  # someone else created it (412), or is creating it (409)
                return False
            raise
        return True

    def _read(self) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            body: bytes = self._s3.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return body

    def holder(self) -> Holder | None:
        body = self._read()
        return None if body is None else _holder_of(body)

    def delete(self) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=self.key)


def _store(lake_root: str) -> _LockFile | _LockObject:
    if lake_root.startswith(S3_SCHEMES):
        return _LockObject(lake_root)
    return _LockFile(lock_path(lake_root))


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
        self.store = _store(lake_root)
        self.path = self.store.path
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
        if not self.store.create(json.dumps(asdict(self.holder))):
            current = self.store.holder()
            if current is None:  # a holder between create and write, a torn file, just gone
                return Holder(pid=-1, host="?", command="?", started_at="?")
            if self.store.local and current.host == self.holder.host and not _alive(current.pid):
                log.warning("taking over a stale lake lock: %s no longer runs", current.describe())
                self.store.delete()
                return self._try_once()
            return current
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
            current = self.store.holder()
            if current is not None and (current.pid, current.host) == (
                self.holder.pid,
                self.holder.host,
            ):
                self.store.delete()
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
